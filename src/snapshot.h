/*
 * snapshot.h - one immutable, reference-counted set of config, backends,
 * policy and the classifier built from it. Workers take a reference per
 * request; a reload builds a new snapshot and swaps the current pointer, so
 * a request in flight finishes under the snapshot it started with.
 */
#ifndef SOVGATE_SNAPSHOT_H
#define SOVGATE_SNAPSHOT_H

#include "config.h"
#include "backend.h"
#include "policy.h"
#include "classify.h"
#include "diag.h"

struct snapshot {
	int refcnt;		/* atomic */
	struct gw_config *cfg;
	struct backend_set *backends;
	struct policy *policy;
	struct classifier *clf;
	char *models_json;	/* body of GET /v1/models */
	unsigned char fp_key[32];	/* fingerprint key */
	int has_fp_key;
	unsigned long generation;
};

/* Load everything. NULL if anything fails (every problem in d). The
 * fingerprint key is loaded only when load_key is set (serve). */
struct snapshot *snapshot_load(const char *config_path, int load_key,
    struct diags *d);
struct snapshot *snapshot_ref(struct snapshot *s);
void snapshot_unref(struct snapshot *s);	/* NULL is a no-op */

/* The process-wide current snapshot: get returns a new reference. */
struct snapshot *snapshot_current(void);
/* Takes ownership of s; the previous one is released. */
void snapshot_install(struct snapshot *s);

#endif
