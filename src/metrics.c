/*
 * metrics.c - see metrics.h.
 */
#include "metrics.h"
#include "util.h"

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#define NBUCKETS 14
static const double buckets[NBUCKETS] = { 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30 };

struct series {
	char *name;		/* metric name */
	char *labels;		/* rendered label set: a="x",b="y" */
	double value;		/* counter */
	int hist;		/* histogram: counts below */
	uint64_t bucket[NBUCKETS];
	uint64_t count;
	double sum;
	struct series *next;	/* rendering order: one metric together */
	struct series *hnext;	/* hash chain */
	uint64_t hash;
};

/*
 * Every thread that counts gets its own shard: a table of series and the
 * mutex that guards it. Workers used to share one mutex and took it
 * several times per request; with two workers it was contended and its
 * unlock (the futex wake-up) showed at ~1% of a worker's CPU. Now a
 * worker's lock is only ever contended by a scrape, which merges the
 * shards (metrics_render). Shards live until exit: threads are few and
 * long-lived (the workers, the admin listener, the main thread).
 */
#define HBUCKETS 1024

struct shard {
	pthread_mutex_t mu;
	struct series *htab[HBUCKETS];
	struct series *all;	/* rendering order: one metric together */
	struct shard *next;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;	/* what follows */
static struct shard *shards;
static char *policy_name, *policy_sha;
static atomic_long open_conns;
static _Thread_local struct shard *mine;

/* Label values come from configuration, but escape anyway. Appends v to
 * out at *o, never past outlen - 1, and keeps out NUL-terminated. */
static void
esc_at(char *out, size_t *o, size_t outlen, const char *v)
{
	size_t i = *o;

	for (; v && *v && i + 3 < outlen; v++) {
		if (*v == '"' || *v == '\\') {
			out[i++] = '\\';
			out[i++] = *v;
		} else if (*v == '\n') {
			out[i++] = '\\';
			out[i++] = 'n';
		} else {
			out[i++] = *v;
		}
	}
	out[i] = '\0';
	*o = i;
}

static void
esc(char *out, size_t outlen, const char *v)
{
	size_t o = 0;

	esc_at(out, &o, outlen, v);
}

/* A literal part of a label set (short, ours). */
static void
lit_at(char *out, size_t *o, size_t outlen, const char *v)
{
	size_t n = strlen(v);

	if (*o + n >= outlen)
		n = outlen - 1 - *o;
	memcpy(out + *o, v, n);
	*o += n;
	out[*o] = '\0';
}

/*
 * Series are found through a hash of name and labels: every request
 * updates a few, and walking the list comparing strings grew with the
 * number of clients, levels, backends and statuses seen.
 */
static uint64_t
series_hash(const char *name, const char *labels)
{
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */
	const unsigned char *p;

	for (p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	h = (h ^ 0x01) * 1099511628211ULL;
	for (p = (const unsigned char *)labels; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return h;
}

/* Caller holds sh->mu (or owns sh alone). */
static struct series *
get(struct shard *sh, const char *name, const char *labels, int hist)
{
	struct series *s;
	uint64_t h = series_hash(name, labels);

	for (s = sh->htab[h % HBUCKETS]; s; s = s->hnext)
		if (s->hash == h && strcmp(s->name, name) == 0 &&
		    strcmp(s->labels, labels) == 0)
			return s;
	s = xcalloc(1, sizeof(*s));
	s->name = xstrdup(name);
	s->labels = xstrdup(labels);
	s->hist = hist;
	s->hash = h;
	s->hnext = sh->htab[h % HBUCKETS];
	sh->htab[h % HBUCKETS] = s;
	/* Keep series of one metric together for rendering. */
	{
		struct series **pp = &sh->all, *last = NULL;

		for (; *pp; pp = &(*pp)->next)
			if (strcmp((*pp)->name, name) == 0)
				last = *pp;
		if (last) {
			s->next = last->next;
			last->next = s;
		} else {
			s->next = sh->all;
			sh->all = s;
		}
	}
	return s;
}

/* This thread's shard, made at its first count. Locked on return. */
static struct shard *
my_shard_lock(void)
{
	if (mine == NULL) {
		struct shard *sh = xcalloc(1, sizeof(*sh));

		pthread_mutex_init(&sh->mu, NULL);
		pthread_mutex_lock(&mu);
		sh->next = shards;
		shards = sh;
		pthread_mutex_unlock(&mu);
		mine = sh;
	}
	pthread_mutex_lock(&mine->mu);
	return mine;
}

static void
inc(const char *name, const char *labels, double by)
{
	struct shard *sh = my_shard_lock();

	get(sh, name, labels, 0)->value += by;
	pthread_mutex_unlock(&sh->mu);
}

static void
observe(const char *name, const char *labels, double v)
{
	struct shard *sh = my_shard_lock();
	struct series *s = get(sh, name, labels, 1);
	int i;

	for (i = 0; i < NBUCKETS; i++)
		if (v <= buckets[i])
			s->bucket[i]++;
	s->count++;
	s->sum += v;
	pthread_mutex_unlock(&sh->mu);
}

void
metrics_request(const char *client, const char *level, const char *backend,
    const char *action, int status, double seconds)
{
	char labels[512], st[16];
	size_t o = 0;

	/* Once per request: pieces, not printf. */
	lit_at(labels, &o, sizeof(labels), "client=\"");
	esc_at(labels, &o, sizeof(labels), client ? client : "");
	lit_at(labels, &o, sizeof(labels), "\",level=\"");
	esc_at(labels, &o, sizeof(labels), level ? level : "");
	lit_at(labels, &o, sizeof(labels), "\",backend=\"");
	esc_at(labels, &o, sizeof(labels), backend ? backend : "");
	lit_at(labels, &o, sizeof(labels), "\",action=\"");
	esc_at(labels, &o, sizeof(labels), action ? action : "");
	lit_at(labels, &o, sizeof(labels), "\",status=\"");
	st[sizeof(st) - 1] = '\0';
	lit_at(labels, &o, sizeof(labels), fmt_i64_before(st + sizeof(st) - 1,
	    status));
	lit_at(labels, &o, sizeof(labels), "\"");
	inc("sovgate_requests_total", labels, 1);
	observe("sovgate_request_duration_seconds", "", seconds);
}

void
metrics_ttfb(double seconds)
{
	observe("sovgate_stream_first_byte_seconds", "", seconds);
}

void
metrics_attempt(const char *backend, const char *result)
{
	char labels[256];
	size_t o = 0;

	lit_at(labels, &o, sizeof(labels), "backend=\"");
	esc_at(labels, &o, sizeof(labels), backend);
	lit_at(labels, &o, sizeof(labels), "\",result=\"");
	esc_at(labels, &o, sizeof(labels), result);
	lit_at(labels, &o, sizeof(labels), "\"");
	inc("sovgate_upstream_attempts_total", labels, 1);
}

void
metrics_failover(void)
{
	inc("sovgate_failovers_total", "", 1);
}

void
metrics_finding(const char *type, unsigned count)
{
	char t[128], labels[160];

	esc(t, sizeof(t), type);
	snprintf(labels, sizeof(labels), "type=\"%s\"", t);
	inc("sovgate_findings_total", labels, count);
}

void
metrics_denial(const char *reason, int fault)
{
	char r[64], labels[128];

	esc(r, sizeof(r), reason);
	snprintf(labels, sizeof(labels), "reason=\"%s\",cause=\"%s\"", r,
	    fault ? "fault" : "policy");
	inc("sovgate_denials_total", labels, 1);
}

void
metrics_reload(int ok)
{
	inc("sovgate_reloads_total", ok ? "result=\"accepted\"" :
	    "result=\"rejected\"", 1);
}

void
metrics_set_policy(const char *name, const char *sha256)
{
	pthread_mutex_lock(&mu);
	free(policy_name);
	free(policy_sha);
	policy_name = xstrdup(name);
	policy_sha = xstrdup(sha256);
	pthread_mutex_unlock(&mu);
}

void
metrics_conn(int delta)
{
	atomic_fetch_add(&open_conns, delta);
}

static const char *
help_of(const char *name)
{
	static const struct { const char *n, *h, *t; } help[] = {
		{ "sovgate_requests_total", "Requests answered, by client, "
		    "level, backend, action and status.", "counter" },
		{ "sovgate_request_duration_seconds", "Time from a request's "
		    "last byte to its answer's last byte.", "histogram" },
		{ "sovgate_stream_first_byte_seconds", "Time to the first body "
		    "byte sent to the client.", "histogram" },
		{ "sovgate_upstream_attempts_total", "Upstream attempts by "
		    "backend and result.", "counter" },
		{ "sovgate_failovers_total", "Attempts that moved on to the "
		    "next allowed candidate.", "counter" },
		{ "sovgate_findings_total", "Findings by type (distinct values "
		    "per request).", "counter" },
		{ "sovgate_denials_total", "Refused requests by reason; "
		    "cause=fault when the log or classifier failed.", "counter" },
		{ "sovgate_reloads_total", "Configuration reloads by result.",
		    "counter" },
	};
	size_t i;

	for (i = 0; i < ARRAY_LEN(help); i++)
		if (strcmp(help[i].n, name) == 0)
			return help[i].h;
	return "";
}

static const char *
type_of(const struct series *s)
{
	return s->hist ? "histogram" : "counter";
}

/* Every shard's series summed into m (which the caller owns alone).
 * Caller holds mu, so no shard is added meanwhile. */
static void
merge_shards(struct shard *m)
{
	struct shard *sh;
	struct series *s, *t;
	int i;

	for (sh = shards; sh; sh = sh->next) {
		pthread_mutex_lock(&sh->mu);
		for (s = sh->all; s; s = s->next) {
			t = get(m, s->name, s->labels, s->hist);
			t->value += s->value;
			for (i = 0; i < NBUCKETS; i++)
				t->bucket[i] += s->bucket[i];
			t->count += s->count;
			t->sum += s->sum;
		}
		pthread_mutex_unlock(&sh->mu);
	}
}

void
metrics_render(struct evbuffer *out, metrics_gauge_fn extra)
{
	struct shard *m = xcalloc(1, sizeof(*m));
	struct series *s, *next;
	const char *last = "";
	int i;

	pthread_mutex_lock(&mu);
	merge_shards(m);
	for (s = m->all; s; s = s->next) {
		if (strcmp(s->name, last) != 0) {
			evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n",
			    s->name, help_of(s->name), s->name, type_of(s));
			last = s->name;
		}
		if (!s->hist) {
			evbuffer_add_printf(out, "%s{%s} %.17g\n", s->name,
			    s->labels, s->value);
			continue;
		}
		for (i = 0; i < NBUCKETS; i++)
			evbuffer_add_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n",
			    s->name, s->labels, s->labels[0] ? "," : "",
			    buckets[i], (unsigned long long)s->bucket[i]);
		evbuffer_add_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n"
		    "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", s->name, s->labels,
		    s->labels[0] ? "," : "", (unsigned long long)s->count,
		    s->name, s->labels, s->sum, s->name, s->labels,
		    (unsigned long long)s->count);
	}
	if (policy_name) {
		char n[256];

		esc(n, sizeof(n), policy_name);
		evbuffer_add_printf(out, "# HELP sovgate_policy_info The policy "
		    "in force.\n# TYPE sovgate_policy_info gauge\n"
		    "sovgate_policy_info{name=\"%s\",sha256=\"%s\"} 1\n", n,
		    policy_sha);
	}
	pthread_mutex_unlock(&mu);
	for (s = m->all; s; s = next) {
		next = s->next;
		free(s->name);
		free(s->labels);
		free(s);
	}
	free(m);
	evbuffer_add_printf(out, "# HELP sovgate_client_connections Open client "
	    "connections.\n# TYPE sovgate_client_connections gauge\n"
	    "sovgate_client_connections %ld\n", atomic_load(&open_conns));
	if (extra)
		extra(out);
}
