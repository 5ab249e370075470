/*
 * metrics.h - process-wide counters and histograms rendered in the
 * Prometheus text exposition format. Updates take one short mutex; label
 * sets are bounded (clients, levels, backends and finding types all come
 * from the configuration, statuses are three digits).
 */
#ifndef SOVGATE_METRICS_H
#define SOVGATE_METRICS_H

#include <stdint.h>

struct evbuffer;

void metrics_request(const char *client, const char *level,
    const char *backend, const char *action, int status, double seconds);
void metrics_ttfb(double seconds);
void metrics_attempt(const char *backend, const char *result);
void metrics_failover(void);
void metrics_finding(const char *type, unsigned count);
void metrics_denial(const char *reason, int fault);
void metrics_reload(int ok);
void metrics_set_policy(const char *name, const char *sha256);
void metrics_conn(int delta);

/* Gauges computed at scrape time are added by the caller's hook. */
typedef void (*metrics_gauge_fn)(struct evbuffer *out);
void metrics_render(struct evbuffer *out, metrics_gauge_fn extra);

#endif
