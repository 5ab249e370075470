/*
 * upstream.h - connections to backends: non-blocking DNS (evdns), TCP,
 * TLS with chain and host-name verification and SNI, and a keep-alive pool
 * per worker. HTTP over the connection is the proxy's business (proxy.c).
 *
 * Ownership: an upconn belongs to whoever got it from upstream_get until
 * they hand it back with upstream_release (pooled or closed) or
 * upstream_close.
 */
#ifndef SOVGATE_UPSTREAM_H
#define SOVGATE_UPSTREAM_H

#include <stdint.h>
#include "backend.h"
#include "diag.h"

struct event_base;
struct evdns_base;
struct bufferevent;
struct upstream_pool;

struct upconn {
	struct upstream_pool *pool;
	struct bufferevent *bev;
	char *key;
	int reused;		/* came out of the idle pool */
	int connecting;
	int64_t idle_since;
	struct upconn *next;	/* idle list */
	void (*ready)(struct upconn *u, int ok, const char *err, void *arg);
	void *arg;
	char host[256];
};

struct upstream_pool *upstream_pool_new(struct event_base *base,
    struct evdns_base *dns);
void upstream_pool_free(struct upstream_pool *p);	/* NULL is a no-op */
size_t upstream_pool_idle(const struct upstream_pool *p);

/*
 * Get a connection to b. If an idle one is pooled, it is returned at once
 * with *now set to 1 (ready is not called). Otherwise a connection starts
 * and ready(u, ok, err, arg) is called later exactly once, unless the
 * caller closes u first. Returns NULL (with err) if it cannot even start.
 */
struct upconn *upstream_get(struct upstream_pool *p, const struct backend *b,
    int64_t connect_timeout_ms,
    void (*ready)(struct upconn *, int, const char *, void *), void *arg,
    int *now, char *err, size_t errlen);
/* Hand back: reusable connections go to the idle pool, others close. */
void upstream_release(struct upconn *u, int reusable);
void upstream_close(struct upconn *u);	/* NULL is a no-op */

/* Build the TLS contexts the backends need (reads CA and key files, so it
 * runs at load time, off the event loops). -1 with diags on error. */
int upstream_tls_prepare(const struct backend_set *bs, struct diags *d);

/* Count of open upstream connections in this process (metrics). */
long upstream_open_count(void);

#endif
