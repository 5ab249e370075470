/*
 * health.h - passive backend health shared by every worker: consecutive
 * failures mark a backend down for a back-off period, after which a single
 * request is let through (half-open). Keyed by backend name so that it
 * survives reloads. Lock-free reads on the hot path.
 */
#ifndef SOVGATE_HEALTH_H
#define SOVGATE_HEALTH_H

#include "backend.h"

void health_init(int fail_threshold, int64_t backoff_ms);
/* 1 if the backend should be skipped now. When the back-off has expired,
 * exactly one caller gets 0 (the probe) and the others 1 until it reports. */
int health_is_down(void *ud, const struct backend *b);
void health_report(const struct backend *b, int ok);
/* For explain/metrics: 1 if currently marked down. Does not claim probes. */
int health_peek_down(const char *name);

#endif
