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
	/* additions */
	struct policy *shadow;	/* config's shadow_policy: evaluated and
				   logged, never enforced; NULL = none */
	void *tls_ctx;		/* listener SSL_CTX (serve only; tlsserver.h),
				   freed with the snapshot */
	void (*tls_ctx_free)(void *);
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

/* ---- additions ---- */
/* The fingerprint key (SPEC §8) from path: exactly 32 bytes are the key,
 * longer contents are condensed with SHA-256; fewer than 32 are refused,
 * and so is a file readable by group or others. When create is set and the
 * file does not exist, 32 random bytes are written to it with mode 0600.
 * 0 on success; -1 with the reason in d. The key is never printed. */
int fpkey_load(const char *path, int create, unsigned char out[32],
    struct diags *d);
/* Body of GET /v1/models: every model name any backend serves, sorted. */
char *models_json_build(const struct backend_set *bs);
/* The classifier for a policy's (and its shadow's) custom detectors. */
struct classifier *classifier_for(const struct policy *p,
    const struct policy *shadow, struct diags *d);

#endif
