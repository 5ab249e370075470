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

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct series *all;
static char *policy_name, *policy_sha;
static atomic_long open_conns;

/* Label values come from configuration, but escape anyway. */
static void
esc(char *out, size_t outlen, const char *v)
{
	size_t o = 0;

	for (; v && *v && o + 3 < outlen; v++) {
		if (*v == '"' || *v == '\\') {
			out[o++] = '\\';
			out[o++] = *v;
		} else if (*v == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *v;
		}
	}
	out[o] = '\0';
}

/*
 * Series are found through a hash of name and labels: every request
 * updates a few, and walking the list comparing strings grew with the
 * number of clients, levels, backends and statuses seen.
 */
#define HBUCKETS 1024
static struct series *htab[HBUCKETS];

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

/* Caller holds mu. */
static struct series *
get(const char *name, const char *labels, int hist)
{
	struct series *s;
	uint64_t h = series_hash(name, labels);

	for (s = htab[h % HBUCKETS]; s; s = s->hnext)
		if (s->hash == h && strcmp(s->name, name) == 0 &&
		    strcmp(s->labels, labels) == 0)
			return s;
	s = xcalloc(1, sizeof(*s));
	s->name = xstrdup(name);
	s->labels = xstrdup(labels);
	s->hist = hist;
	s->hash = h;
	s->hnext = htab[h % HBUCKETS];
	htab[h % HBUCKETS] = s;
	/* Keep series of one metric together for rendering. */
	{
		struct series **pp = &all, *last = NULL;

		for (; *pp; pp = &(*pp)->next)
			if (strcmp((*pp)->name, name) == 0)
				last = *pp;
		if (last) {
			s->next = last->next;
			last->next = s;
		} else {
			s->next = all;
			all = s;
		}
	}
	return s;
}

static void
inc(const char *name, const char *labels, double by)
{
	pthread_mutex_lock(&mu);
	get(name, labels, 0)->value += by;
	pthread_mutex_unlock(&mu);
}

static void
observe(const char *name, const char *labels, double v)
{
	struct series *s;
	int i;

	pthread_mutex_lock(&mu);
	s = get(name, labels, 1);
	for (i = 0; i < NBUCKETS; i++)
		if (v <= buckets[i])
			s->bucket[i]++;
	s->count++;
	s->sum += v;
	pthread_mutex_unlock(&mu);
}

void
metrics_request(const char *client, const char *level, const char *backend,
    const char *action, int status, double seconds)
{
	char c[128], l[64], b[128], a[16], labels[512];

	esc(c, sizeof(c), client ? client : "");
	esc(l, sizeof(l), level ? level : "");
	esc(b, sizeof(b), backend ? backend : "");
	esc(a, sizeof(a), action ? action : "");
	snprintf(labels, sizeof(labels),
	    "client=\"%s\",level=\"%s\",backend=\"%s\",action=\"%s\","
	    "status=\"%d\"", c, l, b, a, status);
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
	char b[128], r[32], labels[256];

	esc(b, sizeof(b), backend);
	esc(r, sizeof(r), result);
	snprintf(labels, sizeof(labels), "backend=\"%s\",result=\"%s\"", b, r);
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

void
metrics_render(struct evbuffer *out, metrics_gauge_fn extra)
{
	struct series *s;
	const char *last = "";
	int i;

	pthread_mutex_lock(&mu);
	for (s = all; s; s = s->next) {
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
	evbuffer_add_printf(out, "# HELP sovgate_client_connections Open client "
	    "connections.\n# TYPE sovgate_client_connections gauge\n"
	    "sovgate_client_connections %ld\n", atomic_load(&open_conns));
	if (extra)
		extra(out);
}
