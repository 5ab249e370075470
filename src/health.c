/*
 * health.c - see health.h. A small fixed table keyed by backend name;
 * entries are created under a mutex (rare: once per name) and then read
 * and updated with atomics, so the hot path never takes a lock.
 */
#include "health.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define HEALTH_MAX 256

struct hentry {
	char name[128];
	atomic_int fails;		/* consecutive failures */
	atomic_llong down_until;	/* mono ms; 0 = up */
	atomic_int probing;		/* a half-open probe is in flight */
};

static struct hentry table[HEALTH_MAX];
static atomic_int nentries;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int threshold = 3;
static int64_t backoff = 10000;

void
health_init(int fail_threshold, int64_t backoff_ms)
{
	if (fail_threshold > 0)
		threshold = fail_threshold;
	if (backoff_ms > 0)
		backoff = backoff_ms;
}

static struct hentry *
lookup(const char *name, int create)
{
	int i, n = atomic_load(&nentries);

	for (i = 0; i < n; i++)
		if (strcmp(table[i].name, name) == 0)
			return &table[i];
	if (!create)
		return NULL;
	pthread_mutex_lock(&mu);
	n = atomic_load(&nentries);
	for (i = 0; i < n; i++)
		if (strcmp(table[i].name, name) == 0)
			break;
	if (i == n) {
		if (n == HEALTH_MAX) {
			pthread_mutex_unlock(&mu);
			return NULL;	/* untracked: treated as up */
		}
		snprintf(table[n].name, sizeof(table[n].name), "%s", name);
		atomic_store(&nentries, n + 1);
	}
	pthread_mutex_unlock(&mu);
	return &table[i];
}

int
health_is_down(void *ud, const struct backend *b)
{
	struct hentry *e = lookup(b->name, 0);
	long long until;
	int expected = 0;

	(void)ud;
	if (e == NULL)
		return 0;
	until = atomic_load(&e->down_until);
	if (until == 0)
		return 0;
	if (mono_ms() < until)
		return 1;
	/* Back-off over: let exactly one request through as the probe. */
	if (atomic_compare_exchange_strong(&e->probing, &expected, 1))
		return 0;
	return 1;
}

void
health_report(const struct backend *b, int ok)
{
	struct hentry *e = lookup(b->name, !ok);

	if (e == NULL)
		return;
	if (ok) {
		atomic_store(&e->fails, 0);
		if (atomic_load(&e->down_until) != 0)
			log_info("backend %s is up again", b->name);
		atomic_store(&e->down_until, 0);
		atomic_store(&e->probing, 0);
		return;
	}
	if (atomic_fetch_add(&e->fails, 1) + 1 >= threshold ||
	    atomic_load(&e->probing)) {
		if (atomic_load(&e->down_until) == 0)
			log_warn("backend %s marked down after %d consecutive "
			    "failures", b->name, atomic_load(&e->fails));
		atomic_store(&e->down_until, mono_ms() + backoff);
		atomic_store(&e->probing, 0);
	}
}

int
health_peek_down(const char *name)
{
	struct hentry *e = lookup(name, 0);

	return e != NULL && atomic_load(&e->down_until) != 0 &&
	    mono_ms() < atomic_load(&e->down_until);
}
