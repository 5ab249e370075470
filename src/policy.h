/*
 * policy.h - the routing policy (SPEC §4.3): levels, what findings raise
 * them to, client floors, routes with requirements and preferences, tests.
 * Immutable after load; owned by a snapshot.
 */
#ifndef SOVGATE_POLICY_H
#define SOVGATE_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include "diag.h"
#include "backend.h"
#include "classify.h"

#define LEVEL_DENY (-2)		/* a finding rule's action is deny */
#define LEVEL_NONE (-1)

struct finding_rule {
	char *type;		/* full type or category */
	int level;		/* index in levels, or LEVEL_DENY */
	int line, col;
	const char *file;	/* one of policy->files */
};

struct bulk_rule {
	char *type;		/* full type or category */
	unsigned at_least;
	int level;		/* or LEVEL_DENY */
	int line, col;
};

struct custom_rule {
	struct custom_def def;	/* compiled by the snapshot's classifier */
	int level;		/* or LEVEL_DENY */
};

struct client_floor {
	char *client;
	int level;
	const char *file;	/* one of policy->files */
	int line, col;
};

struct requirement {
	int has_hosting;	enum hosting hosting;
	char **operator_in;	size_t noperator_in;	/* NULL = no rule */
	char **data_in;		size_t ndata_in;
	int has_cloud_act;	int cloud_act;		/* only false is useful */
	int has_key_custody;	enum key_custody key_custody;
	int has_retention_max;	int64_t retention_max_ms;	/* 0 = none */
	char **backends;	size_t nbackends;
};

struct route {
	int level;
	int defined;		/* the policy has a route for this level */
	struct requirement req;
	char **prefer;		/* backend names, in order */
	size_t nprefer;
	const char *file;	/* one of policy->files */
	int line, col;
};

struct policy_test {
	char *name;
	char *body;		/* a full request body (text: shorthand expanded) */
	char *endpoint;		/* default /v1/chat/completions */
	char *client;		/* optional */
	char **header_names, **header_values;	/* optional */
	size_t nheaders;
	/* expectations; NULL/-1 when not given */
	char *expect_level;
	char *expect_backend;
	char **expect_backend_in;	size_t nexpect_backend_in;
	char *expect_action;		/* allow | deny */
	char *text;		/* the text shorthand as written, or NULL */
	const char *file;	/* one of policy->files */
	int line, col;
};

struct policy {
	char *name;
	char *file;		/* a file, or the directory it came from */
	char sha256[65];	/* of the policy's bytes (files in name order) */
	char **levels;
	int nlevels;
	struct finding_rule *findings;	size_t nfindings;
	struct bulk_rule *bulk;		size_t nbulk;
	struct custom_rule *custom;	size_t ncustom;
	struct client_floor *floors;	size_t nfloors;
	struct route *routes;		/* nlevels of them, index = level */
	struct policy_test *tests;	size_t ntests;
	/* additions */
	char **files;		/* every file read, in name order (owned);
				   the const char *file fields point here */
	size_t nfiles;
	const char *findings_file;	/* where classify.findings is */
	int findings_line, findings_col;
	char *test_model;	/* model used by text-shorthand tests */
};

/* Load a file or a directory of *.yaml (merged in name order; a directory
 * holds one policy split over files). Cross-checks against the backends
 * (prefer names, impossible prefer entries). NULL on error. */
struct policy *policy_load(const char *path, const struct backend_set *bs,
    struct diags *d);
void policy_free(struct policy *p);	/* NULL is a no-op */
int policy_level_index(const struct policy *p, const char *name);

/* ---- deciding ---- */

struct decide_input {
	const struct scan *scan;	/* findings of the request */
	const char *client;		/* authenticated client name or NULL */
	const char *model;		/* requested model */
	int declared_level;		/* from X-Sovgate-Classification, or -1 */
	int ignore_credentials;		/* policy test / replay: judge the
					   policy, not this host's env */
};

enum verdict {
	V_ALLOWED,		/* a candidate, in prefer order */
	V_NOT_PREFERRED,	/* not in the route's prefer list */
	V_REQUIREMENT,		/* fails a require key */
	V_NO_MODEL,		/* does not serve the requested model */
	V_DOWN,			/* marked down by health checks */
	V_NO_CREDENTIALS,	/* its secrets were missing at load */
	V_DENIED,		/* the request is refused by a finding */
};

struct backend_verdict {
	const struct backend *b;
	enum verdict verdict;
	char reason[160];	/* "operator_country US not in [EU]" */
};

#define DECIDE_MAX_BACKENDS 64

struct decision {
	int level;		/* final level index */
	int deny;		/* 1 when refused */
	char deny_code[32];	/* "finding_denied", "no_allowed_backend", ... */
	char reason[512];	/* human sentence for the error message */
	char level_rule[128];	/* what set the level: "finding iban",
				   "floor hr-portal", "header", "bulk email>=20",
				   "custom project.x", "default" */
	struct backend_verdict verdicts[DECIDE_MAX_BACKENDS];
	size_t nverdicts;	/* one per backend in the set */
	const struct backend *candidates[DECIDE_MAX_BACKENDS];
	size_t ncandidates;	/* allowed, in prefer order */
};

/* Health predicate: nonzero when a backend is down now. May be NULL. */
typedef int (*backend_down_fn)(void *ud, const struct backend *b);

/* Pure function of its inputs. Returns 0; the outcome is in out. */
int policy_decide(const struct policy *p, const struct backend_set *bs,
    const struct decide_input *in, backend_down_fn is_down, void *ud,
    struct decision *out);
const char *verdict_name(enum verdict v);
/* [{"backend":"x","verdict":"allowed","reason":"..."}] */
char *decision_candidates_json(const struct decision *d);

/* ---- additions ---- */
/* {"policy","policy_sha256","level","level_rule","action","backend"
 * [,"deny_code","reason"]}: one decision in a line, e.g. the shadow
 * policy's verdict stored beside the real one (dlog shadow_json). */
char *decision_summary_json(const struct policy *p, const struct decision *d);
/* Like policy_load, but returns what could be loaded despite errors (NULL
 * only when the files cannot be read or parsed, or define no levels): for
 * `check`, which lints a broken policy too. Never serve from it. */
struct policy *policy_load_partial(const char *path,
    const struct backend_set *bs, struct diags *d);
/* 0 when b satisfies every key of r; else -1 and the first failure in
 * reason ("operator_country US not in [EU]"). */
int requirement_check(const struct requirement *r, const struct backend *b,
    char *reason, size_t len);
/* "operated under EU law and processing data in the EEA" ("" when r has no
 * keys), for messages. */
void requirement_describe(const struct requirement *r, char *out,
    size_t len);
/* Category of a finding type: "national_id" for "national_id.fr_nir". */
size_t finding_category_len(const char *type);
/* Whether the policy names type by full name or category in findings,
 * bulk or custom (for `check`'s "never mentioned" warnings). */
int policy_mentions_type(const struct policy *p, const char *type);

#endif
