/*
 * dlog.h - the decision log (SPEC §7): SQLite, one writer thread fed by a
 * bounded queue, group commit. Never called in a way that blocks an event
 * loop: submit functions only take a mutex and signal.
 *
 * Decision rows are hash-chained (prev_hash, row_hash) by the writer, in
 * commit order. Outcomes go to their own table and never rewrite a decision.
 */
#ifndef SOVGATE_DLOG_H
#define SOVGATE_DLOG_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "mailbox.h"

struct dlog;

struct dlog_fingerprint {
	char *type;
	char hmac[65];		/* hex HMAC-SHA256(key, normalised value) */
};

/* Every char* is owned by the record and freed with it. */
struct dlog_decision {
	char id[37];
	int64_t ts_ms;
	char *client;		/* NULL if unauthenticated */
	char *endpoint;		/* "/v1/chat/completions" */
	char *model;		/* requested */
	char *findings_json;	/* {"iban":1} */
	char *declared_level;	/* NULL if none */
	char *level;		/* final level name */
	char *level_rule;	/* what set it */
	char *policy_name;
	char policy_sha256[65];
	char *action;		/* allow | deny | error */
	char *reason;		/* deny/error code and message; NULL on allow */
	char *candidates_json;	/* every backend with its verdict */
	char *backend;		/* first candidate, NULL on deny */
	char *backend_facts_json;	/* derived facts of that backend */
	int cloud_act;		/* of that backend */
	char *shadow_json;	/* shadow policy decision, or NULL */
	struct dlog_fingerprint *fps;
	size_t nfps;
	void *packed;	/* internal: the block the fields moved into */
};

struct dlog_outcome {
	char decision_id[37];
	int64_t ts_ms;
	int status;		/* HTTP status sent to the client */
	int attempts;
	char *attempts_json;	/* [{"backend":..,"result":..,"status":..,"ms":..}] */
	char *backend;		/* that answered, or NULL */
	int64_t latency_ms, ttfb_ms;	/* -1 unknown */
	int64_t bytes_in, bytes_out;
	int64_t prompt_tokens, completion_tokens, total_tokens;	/* -1 */
	char *error;		/* NULL if none */
	void *packed;	/* internal: the block the fields moved into */
};

struct dlog_decision *dlog_decision_new(void);
void dlog_decision_free(struct dlog_decision *d);	/* NULL is a no-op */
struct dlog_outcome *dlog_outcome_new(void);
void dlog_outcome_free(struct dlog_outcome *o);	/* NULL is a no-op */

/* Open (creating and migrating the schema), start the writer thread.
 * NULL on failure with the reason in err. */
struct dlog *dlog_open(const char *path, enum durability dur,
    int64_t batch_interval_ms, char *err, size_t errlen);
/* How hard a commit is: NORMAL survives a crash of the process (WAL
 * written), FULL also a power cut (WAL fsynced at every commit). */
enum dlog_sync { DLOG_SYNC_NORMAL, DLOG_SYNC_FULL };
struct dlog *dlog_open_ex(const char *path, enum durability dur,
    int64_t batch_interval_ms, enum dlog_sync sync, char *err, size_t errlen);
/* Drain the queue, commit, stop the thread, close. NULL is a no-op. */
void dlog_close(struct dlog *l);

/*
 * Takes ownership of d. When the row is durable (strict: committed;
 * batched: queued) cb(arg, 1) runs on mb's loop; on failure cb(arg, 0).
 * cb always runs exactly once, unless this returns -1 (queue full or log
 * failed): then nothing runs and d has been freed.
 */
int dlog_submit_decision(struct dlog *l, struct dlog_decision *d,
    struct mailbox *mb, mailbox_fn cb, void *arg);
/*
 * A batch: the decisions and outcomes one worker gathers during one turn of
 * its event loop, handed to the writer together (one lock, one wake-up).
 * Under load that is what lets a group commit hold several requests: the
 * writer otherwise woke for each decision and committed it alone, writing
 * the same few pages to the WAL per request. Owned by one thread.
 */
struct dlog_batch;
struct dlog_batch *dlog_batch_new(void);
/* Frees what it still holds without telling anyone. NULL is a no-op. */
void dlog_batch_free(struct dlog_batch *b);
/* Take ownership of d / o. The decision's cb runs exactly once, after
 * dlog_batch_submit, as with dlog_submit_decision; a refusal (queue full,
 * log failing, l NULL) is cb(arg, 0) instead of a -1 here. */
void dlog_batch_decision(struct dlog_batch *b, struct dlog_decision *d,
    struct mailbox *mb, mailbox_fn cb, void *arg);
void dlog_batch_outcome(struct dlog_batch *b, struct dlog_outcome *o);
size_t dlog_batch_size(const struct dlog_batch *b);
/* Queue everything in b, in order, and leave b empty. */
void dlog_batch_submit(struct dlog *l, struct dlog_batch *b);

/* Takes ownership of o. Best effort: dropped (and counted) when full. */
void dlog_submit_outcome(struct dlog *l, struct dlog_outcome *o);
/* An operational event (start, stop, reload): kind and a JSON detail. */
void dlog_submit_event(struct dlog *l, const char *kind, const char *detail_json);

/* Health and metrics; thread-safe. */
int dlog_healthy(struct dlog *l);	/* last write succeeded */
size_t dlog_queue_depth(struct dlog *l);

/* Synchronous open for the CLI (read-only unless rw), applying migrations
 * when rw. NULL and a message in err. */
struct sqlite3 *dlog_open_db(const char *path, int rw, char *err, size_t errlen);

/* ---- additions ---- */

/* Outcomes and events dropped because their queue was full or their
 * transaction failed (for metrics). */
uint64_t dlog_dropped(struct dlog *l);
/* Why the last write failed ("" when healthy), for /readyz and logs. */
void dlog_last_error(struct dlog *l, char *out, size_t outlen);
/* Transactions committed and rows written so far (tests, metrics). */
void dlog_stats(struct dlog *l, uint64_t *batches, uint64_t *rows);
/* How long the writer waits for a lock held by another process before a
 * batch fails (default 2000 ms). Tests shorten it. */
void dlog_set_busy_timeout_ms(struct dlog *l, int ms);

/* The schema version this binary writes, and the text of migration v
 * (1-based: it takes a database from v - 1 to v); NULL if out of range. */
int dlog_schema_version(void);
const char *dlog_migration_sql(int v);
/* Migrate db up to version to (-1: the latest) in one transaction. */
int dlog_migrate_to(struct sqlite3 *db, int to, char *err, size_t errlen);

/* `log verify`: walk the three hash chains (sql/schema.sql documents the
 * encoding). Returns 0 intact, 1 broken (the first problem in rep), -1 on
 * a database error (err). */
struct dlog_verify_report {
	int64_t rows[3];	/* decisions, outcomes, events checked */
	int nproblems;
	char chain[16];		/* where the first problem is */
	int64_t bad_seq;	/* its row (0: not one row) */
	char bad_label[64];	/* decision id / outcome's decision / kind */
	char problem[640];	/* a sentence naming the row */
	char head[65];		/* the decisions chain's last row_hash */
};
int dlog_verify(struct sqlite3 *db, struct dlog_verify_report *rep,
    char *err, size_t errlen);

/* `log prune`: delete the rows of every chain older than before_ms (a
 * prefix in seq order), move the anchors so the rest still verifies, and
 * record a "prune" event. Refuses (1, reason in err) when the log does not
 * verify. 0 ok, -1 database error. */
struct dlog_prune_report {
	int64_t rows[3];	/* decisions, outcomes, events deleted */
	int64_t fingerprints;
};
int dlog_prune(struct sqlite3 *db, int64_t before_ms,
    struct dlog_prune_report *rep, char *err, size_t errlen);

/* Append one event to the events chain on a CLI connection (its own
 * transaction). 0 or -1 with err. */
int dlog_append_event_db(struct sqlite3 *db, int64_t ts_ms, const char *kind,
    const char *detail_json, char *err, size_t errlen);

#endif
