/*
 * admin.h - the admin plane (SPEC §3): GET /healthz, /readyz, /metrics on
 * its own listener (default 127.0.0.1:9464), served by the main thread so
 * that a saturated data plane cannot hide its own state.
 */
#ifndef SOVGATE_ADMIN_H
#define SOVGATE_ADMIN_H

#include <stddef.h>

struct event_base;
struct dlog;
struct admin;

struct admin *admin_new(struct event_base *base, const char *addr,
    struct dlog *log, char *err, size_t errlen);
void admin_free(struct admin *a);	/* NULL is a no-op */

#endif
