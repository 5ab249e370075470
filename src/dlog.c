/*
 * dlog.c - the decision log (see dlog.h and sql/schema.sql).
 *
 * Threads: event loops call the submit functions, which only take the
 * queue mutex, append and signal. One writer thread owns the SQLite
 * connection of a struct dlog and does every statement on it.
 *
 * Strict durability is group commit: the writer takes everything that is
 * waiting, writes it in one transaction, commits (synchronous=FULL), and
 * only then posts each decision's callback with status 1 (0 when the
 * transaction failed). Requests that arrive while a commit runs form the
 * next group, so the commit rate adapts to the load with no timer.
 * Batched durability answers at enqueue time and the writer commits every
 * batch_interval_ms.
 *
 * Outcomes and events share the transactions but have their own queue
 * budget: when that is full they are dropped and counted, never making a
 * decision wait.
 *
 * Hash chains: the writer reads each chain's head from chain_state inside
 * its write transaction (BEGIN IMMEDIATE), so another process appending to
 * the same chain (`log prune` records an event) cannot fork it. It reads
 * them only when the database's data version moved since its own last
 * commit: otherwise they are the ones that commit wrote.
 */
#include "dlog.h"
#include "util.h"
#include "walbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#define GENESIS_HASH \
	"0000000000000000000000000000000000000000000000000000000000000000"

/* Queue budgets: decisions are refused (the request gets 503) past the
 * first; outcomes and events are dropped past the second. */
#define DLOG_MAX_DECISIONS	16384
#define DLOG_MAX_OTHERS		16384
/* How long the writer waits for a lock held by another process before the
 * batch fails; below the server's log_timeout so the request hears a clear
 * "not logged" rather than its own timer. */
#define DLOG_WRITER_BUSY_MS	2000
/* How often an unhealthy log tries a small write to see if it recovered. */
#define DLOG_PROBE_MS		500
#define DLOG_CLI_BUSY_MS	5000

/* ------------------------------------------------------------------ */
/* schema and migrations                                                */

/*
 * migrations[i] takes a database from user_version i to i + 1. A new
 * database runs all of them. migrations[0] is the text of sql/schema.sql
 * for version 1; tests/check_dlog.c proves that the schema these produce is
 * the schema of sql/schema.sql. When the schema changes: keep these as they
 * are, append a migration, and update sql/schema.sql to the result.
 */
/* sql/schema.sql as a C string, byte for byte (check_dlog compares them);
 * regenerate with the python snippet at the top of tests/check_dlog.c. */
static const char schema_v1[] =
/* @SCHEMA_V1_BEGIN@ */
"-- sovgate decision log, schema version 1 (PRAGMA user_version = 1).\n"
"--\n"
"-- This file is the readable truth of the schema. The binary carries the\n"
"-- same statements as migrations (src/dlog.c); tests/check_dlog.c builds a\n"
"-- database from this file and one from the embedded migrations and fails\n"
"-- when they differ. To change the schema: add a migration in src/dlog.c,\n"
"-- change this file to the resulting schema, and bump user_version here.\n"
"--\n"
"-- Times are UTC milliseconds since the epoch (ts_ms). The views below add\n"
"-- an RFC 3339 \"ts\" column for people.\n"
"--\n"
"-- Nothing here ever holds a finding's value: findings are type counts, and\n"
"-- fingerprints are HMAC-SHA256(fingerprint key, normalised value) (SPEC §8).\n"
"--\n"
"-- ---------------------------------------------------------------------\n"
"-- The hash chains\n"
"-- ---------------------------------------------------------------------\n"
"-- decisions, outcomes and events each form their own chain, in seq order.\n"
"-- For every row:\n"
"--   prev_hash = row_hash of the previous row of the same table, or the\n"
"--               table's anchor (chain_state.anchor_hash) for the first row;\n"
"--               the anchor of a never-pruned table is 64 zeros (genesis);\n"
"--   row_hash  = lowercase hex SHA-256 of the canonical encoding\n"
"--\n"
"--     \"sovgate-chain-v1\" 0x0A  <table name>  0x0A  <prev_hash: 64 hex chars>\n"
"--     then every chained field below, in the order listed, each encoded as\n"
"--       NULL     -> \"n\"\n"
"--       integer  -> \"i\" <decimal, \"-\" sign when negative> \";\"\n"
"--       text     -> \"t\" <byte length in decimal> \":\" <the UTF-8 bytes>\n"
"--       real     -> \"r\" <printf %.17g> \";\"       (never written by sovgate)\n"
"--       blob     -> \"b\" <byte length in decimal> \":\" <the bytes>\n"
"--     by the value's SQLite storage class, so changing a value's type is a\n"
"--     change too. Length prefixes make the encoding unambiguous.\n"
"--\n"
"--   decisions: id, ts_ms, client, endpoint, model, findings_json,\n"
"--     declared_level, level, level_rule, policy_name, policy_sha256, action,\n"
"--     reason, candidates_json, backend, backend_facts_json, cloud_act,\n"
"--     shadow_json, then the decision's fingerprints: their count (integer),\n"
"--     then type and hmac (text, text) of each, sorted by type then hmac in\n"
"--     byte order. Deleting or forging a fingerprint thus breaks the chain.\n"
"--   outcomes: decision_id, ts_ms, status, attempts, attempts_json, backend,\n"
"--     latency_ms, ttfb_ms, bytes_in, bytes_out, prompt_tokens,\n"
"--     completion_tokens, total_tokens, error.\n"
"--   events: ts_ms, kind, detail_json.\n"
"--\n"
"-- seq is not hashed: the order is protected by the links themselves, which\n"
"-- lets `log verify` tell a deleted, inserted or reordered row from a\n"
"-- modified one. chain_state.head_* records the last row of each chain so\n"
"-- that deleting the newest rows is detected too. `log prune` deletes a\n"
"-- prefix of each chain and moves anchor_* to the last deleted row, so the\n"
"-- remaining rows still verify; the prune itself is an event.\n"
"--\n"
"-- A chain without a key proves the log was not edited by anyone who could\n"
"-- not also recompute every later hash; export the head hash (`log verify`\n"
"-- prints it) to somewhere the gateway's host cannot write to make that\n"
"-- evidence independent.\n"
"\n"
"CREATE TABLE decisions (\n"
"\tseq                INTEGER PRIMARY KEY,\n"
"\tid                 TEXT NOT NULL UNIQUE,     -- UUID, X-Sovgate-Decision\n"
"\tts_ms              INTEGER NOT NULL,\n"
"\tclient             TEXT,                     -- NULL if unauthenticated\n"
"\tendpoint           TEXT,                     -- /v1/chat/completions\n"
"\tmodel              TEXT,                     -- as requested\n"
"\tfindings_json      TEXT NOT NULL DEFAULT '{}', -- {\"iban\":1}: types and counts\n"
"\tdeclared_level     TEXT,                     -- X-Sovgate-Classification\n"
"\tlevel              TEXT,                     -- final level\n"
"\tlevel_rule         TEXT,                     -- what set the level\n"
"\tpolicy_name        TEXT,\n"
"\tpolicy_sha256      TEXT,\n"
"\taction             TEXT NOT NULL,            -- allow | deny | error\n"
"\treason             TEXT,                     -- deny/error code and message\n"
"\tcandidates_json    TEXT,                     -- every backend, verdict, reason\n"
"\tbackend            TEXT,                     -- chosen (first candidate)\n"
"\tbackend_facts_json TEXT,                     -- its derived facts\n"
"\tcloud_act          INTEGER NOT NULL DEFAULT 0, -- of the chosen backend\n"
"\tshadow_json        TEXT,                     -- shadow policy's decision\n"
"\tprev_hash          TEXT NOT NULL,\n"
"\trow_hash           TEXT NOT NULL\n"
");\n"
"CREATE INDEX decisions_ts ON decisions (ts_ms);\n"
"CREATE INDEX decisions_client_ts ON decisions (client, ts_ms);\n"
"CREATE INDEX decisions_backend ON decisions (backend);\n"
"\n"
"-- One row per distinct finding value of a decision.\n"
"CREATE TABLE fingerprints (\n"
"\tdecision_id TEXT NOT NULL,                   -- decisions.id\n"
"\ttype        TEXT NOT NULL,                   -- iban, national_id.fr_nir, ...\n"
"\thmac        TEXT NOT NULL                    -- hex HMAC-SHA256\n"
");\n"
"CREATE INDEX fingerprints_hmac ON fingerprints (hmac);\n"
"CREATE INDEX fingerprints_decision ON fingerprints (decision_id);\n"
"\n"
"-- What happened to a decision once it was made; written later, never by\n"
"-- rewriting the decision row. Unknown numbers are NULL.\n"
"CREATE TABLE outcomes (\n"
"\tseq               INTEGER PRIMARY KEY,\n"
"\tdecision_id       TEXT NOT NULL,             -- decisions.id\n"
"\tts_ms             INTEGER NOT NULL,\n"
"\tstatus            INTEGER,                   -- HTTP status sent to the client\n"
"\tattempts          INTEGER,\n"
"\tattempts_json     TEXT,                      -- [{\"backend\",\"result\",\"status\",\"ms\"}]\n"
"\tbackend           TEXT,                      -- the one that answered\n"
"\tlatency_ms        INTEGER,\n"
"\tttfb_ms           INTEGER,\n"
"\tbytes_in          INTEGER,\n"
"\tbytes_out         INTEGER,\n"
"\tprompt_tokens     INTEGER,\n"
"\tcompletion_tokens INTEGER,\n"
"\ttotal_tokens      INTEGER,\n"
"\terror             TEXT,\n"
"\tprev_hash         TEXT NOT NULL,\n"
"\trow_hash          TEXT NOT NULL\n"
");\n"
"CREATE INDEX outcomes_decision ON outcomes (decision_id);\n"
"\n"
"-- Operational events: start, stop, reload (accepted or rejected, with the\n"
"-- policy's name and SHA-256), prune.\n"
"CREATE TABLE events (\n"
"\tseq         INTEGER PRIMARY KEY,\n"
"\tts_ms       INTEGER NOT NULL,\n"
"\tkind        TEXT NOT NULL,\n"
"\tdetail_json TEXT,\n"
"\tprev_hash   TEXT NOT NULL,\n"
"\trow_hash    TEXT NOT NULL\n"
");\n"
"CREATE INDEX events_ts ON events (ts_ms);\n"
"\n"
"-- Anchor and head of each chain (see above).\n"
"CREATE TABLE chain_state (\n"
"\tchain       TEXT PRIMARY KEY,                -- decisions | outcomes | events\n"
"\tanchor_seq  INTEGER NOT NULL,                -- last pruned seq (0: none)\n"
"\tanchor_hash TEXT NOT NULL,                   -- its row_hash, or genesis\n"
"\thead_seq    INTEGER NOT NULL,                -- last row's seq (0: none)\n"
"\thead_hash   TEXT NOT NULL                    -- last row's row_hash\n"
");\n"
"INSERT INTO chain_state VALUES\n"
"\t('decisions', 0, '0000000000000000000000000000000000000000000000000000000000000000',\n"
"\t 0, '0000000000000000000000000000000000000000000000000000000000000000'),\n"
"\t('outcomes', 0, '0000000000000000000000000000000000000000000000000000000000000000',\n"
"\t 0, '0000000000000000000000000000000000000000000000000000000000000000'),\n"
"\t('events', 0, '0000000000000000000000000000000000000000000000000000000000000000',\n"
"\t 0, '0000000000000000000000000000000000000000000000000000000000000000');\n"
"\n"
"-- Small facts about the log itself (created_ms, last_probe_ms).\n"
"CREATE TABLE meta (\n"
"\tkey   TEXT PRIMARY KEY,\n"
"\tvalue TEXT\n"
");\n"
"\n"
"-- ---------------------------------------------------------------------\n"
"-- Incident-response views (examples in sql/README.md and\n"
"-- sql/incidents.sql). Filter them with WHERE like any table.\n"
"-- ---------------------------------------------------------------------\n"
"\n"
"-- Every decision with its outcome and readable time: the base of the\n"
"-- other views and of `sovgate log query`.\n"
"CREATE VIEW decision_log AS\n"
"SELECT d.seq, d.id AS decision_id, d.ts_ms,\n"
"       strftime('%Y-%m-%dT%H:%M:%S', d.ts_ms / 1000, 'unixepoch')\n"
"           || printf('.%03dZ', d.ts_ms % 1000) AS ts,\n"
"       d.client, d.endpoint, d.model, d.findings_json, d.declared_level,\n"
"       d.level, d.level_rule, d.policy_name, d.policy_sha256, d.action,\n"
"       d.reason, d.backend, d.cloud_act,\n"
"       json_extract(d.backend_facts_json, '$.operator_country') AS operator_country,\n"
"       json_extract(d.backend_facts_json, '$.parent_country') AS parent_country,\n"
"       o.status, o.backend AS answered_by, o.attempts, o.attempts_json,\n"
"       o.latency_ms, o.prompt_tokens, o.completion_tokens, o.total_tokens,\n"
"       o.error\n"
"FROM decisions d\n"
"LEFT JOIN outcomes o ON o.seq = (SELECT max(seq) FROM outcomes x\n"
"                                 WHERE x.decision_id = d.id);\n"
"\n"
"-- The facts last logged for each backend (as a chosen backend).\n"
"CREATE VIEW backend_facts AS\n"
"SELECT d.backend, d.backend_facts_json AS facts_json, d.cloud_act,\n"
"       json_extract(d.backend_facts_json, '$.operator_country') AS operator_country,\n"
"       json_extract(d.backend_facts_json, '$.parent_country') AS parent_country\n"
"FROM decisions d\n"
"WHERE d.seq = (SELECT max(seq) FROM decisions x WHERE x.backend = d.backend);\n"
"\n"
"-- Sensitive requests (any finding, or a declared level) that reached a\n"
"-- backend whose operator or parent is subject to the US CLOUD Act: the\n"
"-- chosen backend, or any backend an attempt was sent to (failover).\n"
"CREATE VIEW sensitive_to_cloud_act AS\n"
"SELECT l.ts, l.decision_id, l.client, l.model, l.level, l.findings_json,\n"
"       l.policy_name, l.policy_sha256, l.backend, l.answered_by,\n"
"       l.attempts_json, l.status, l.ts_ms\n"
"FROM decision_log l\n"
"WHERE l.action = 'allow'\n"
"  AND (l.findings_json NOT IN ('{}', '') OR l.declared_level IS NOT NULL)\n"
"  AND (l.cloud_act = 1\n"
"       OR EXISTS (SELECT 1 FROM json_each(coalesce(l.attempts_json, '[]')) a\n"
"                  JOIN backend_facts f\n"
"                    ON f.backend = json_extract(a.value, '$.backend')\n"
"                  WHERE f.cloud_act = 1));\n"
"\n"
"-- Denials by client and reason, with counts and the time span.\n"
"CREATE VIEW denials_by_client AS\n"
"SELECT d.client, d.reason, count(*) AS denials,\n"
"       strftime('%Y-%m-%dT%H:%M:%SZ', min(d.ts_ms) / 1000, 'unixepoch') AS first_ts,\n"
"       strftime('%Y-%m-%dT%H:%M:%SZ', max(d.ts_ms) / 1000, 'unixepoch') AS last_ts,\n"
"       min(d.ts_ms) AS first_ts_ms, max(d.ts_ms) AS last_ts_ms\n"
"FROM decisions d\n"
"WHERE d.action = 'deny'\n"
"GROUP BY d.client, d.reason;\n"
"\n"
"-- Everything one client sent in a window:\n"
"--   SELECT * FROM client_activity\n"
"--   WHERE client = 'claims-app' AND ts >= '2026-11-01' AND ts < '2026-11-08';\n"
"CREATE VIEW client_activity AS\n"
"SELECT l.client, l.ts, l.decision_id, l.endpoint, l.model, l.findings_json,\n"
"       l.declared_level, l.level, l.action, l.reason, l.backend,\n"
"       l.answered_by, l.status, l.attempts, l.latency_ms, l.total_tokens,\n"
"       l.policy_name, l.ts_ms\n"
"FROM decision_log l;\n"
"\n"
"-- Which policy was in force from when: every start and accepted reload.\n"
"CREATE VIEW policy_history AS\n"
"SELECT e.seq, strftime('%Y-%m-%dT%H:%M:%S', e.ts_ms / 1000, 'unixepoch')\n"
"           || printf('.%03dZ', e.ts_ms % 1000) AS ts,\n"
"       e.kind, json_extract(e.detail_json, '$.result') AS result,\n"
"       json_extract(e.detail_json, '$.policy') AS policy_name,\n"
"       json_extract(e.detail_json, '$.policy_sha256') AS policy_sha256,\n"
"       e.ts_ms\n"
"FROM events e\n"
"WHERE e.kind IN ('start', 'reload');\n"
"\n"
"-- Decisions whose level differs from the last comparable decision (same\n"
"-- client, findings and declared level) made under a different policy, i.e.\n"
"-- requests a policy reload classified differently.\n"
"CREATE VIEW level_changes_after_reload AS\n"
"SELECT d.ts, d.decision_id, d.client, d.findings_json, d.declared_level,\n"
"       p.level AS level_before, d.level AS level_after,\n"
"       p.policy_name AS policy_before, p.policy_sha256 AS policy_sha256_before,\n"
"       d.policy_name AS policy_after, d.policy_sha256 AS policy_sha256_after,\n"
"       p.id AS compared_with, d.ts_ms\n"
"FROM decision_log d\n"
"JOIN decisions p ON p.seq = (\n"
"\tSELECT x.seq FROM decisions x\n"
"\tWHERE x.seq < d.seq AND x.policy_sha256 IS NOT d.policy_sha256\n"
"\t  AND x.client IS d.client AND x.findings_json = d.findings_json\n"
"\t  AND x.declared_level IS d.declared_level AND x.level IS NOT NULL\n"
"\tORDER BY x.seq DESC LIMIT 1)\n"
"WHERE d.level IS NOT NULL AND p.level <> d.level;\n"
"\n"
"PRAGMA user_version = 1;\n"
/* @SCHEMA_V1_END@ */
;

/*
 * v2: no index on decisions.backend. A log has a handful of backends, so
 * the index selects a large share of the table (a scan in ts or seq order
 * is as good, and --backend queries are nearly always time-bounded); yet
 * every decision paid an index insert and a dirty page per commit for
 * it: about a tenth of the writer's CPU in the dlog microbench.
 */
static const char schema_v2[] =
"DROP INDEX IF EXISTS decisions_backend;\n";

static const char *const migrations[] = {
	schema_v1,
	schema_v2,
};
#define DLOG_SCHEMA_VERSION ((int)ARRAY_LEN(migrations))

int
dlog_schema_version(void)
{
	return DLOG_SCHEMA_VERSION;
}

const char *
dlog_migration_sql(int v)
{
	return v >= 1 && v <= DLOG_SCHEMA_VERSION ? migrations[v - 1] : NULL;
}

int
dlog_migrate_to(struct sqlite3 *db, int to, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	char *emsg = NULL;
	int v = 0, ntables = 0;

	if (to < 0 || to > DLOG_SCHEMA_VERSION)
		to = DLOG_SCHEMA_VERSION;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &emsg) != SQLITE_OK)
		goto fail;
	/* Read the version inside the transaction: another process may have
	 * migrated the file since we looked. */
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) !=
	    SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
		goto fail_db;
	v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (v > DLOG_SCHEMA_VERSION) {
		snprintf(err, errlen, "the decision log has schema version %d, "
		    "newer than this sovgate understands (%d); use a newer "
		    "sovgate", v, DLOG_SCHEMA_VERSION);
		goto fail_quiet;
	}
	if (v == 0) {
		if (sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master",
		    -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) !=
		    SQLITE_ROW)
			goto fail_db;
		ntables = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
		st = NULL;
		if (ntables > 0) {
			snprintf(err, errlen, "it is a SQLite database but not a "
			    "sovgate decision log (it has other tables and no "
			    "schema version); point log.database at a new file");
			goto fail_quiet;
		}
	}
	for (; v < to; v++) {
		char pragma[64];

		if (sqlite3_exec(db, migrations[v], NULL, NULL, &emsg) !=
		    SQLITE_OK)
			goto fail;
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d",
		    v + 1);
		if (sqlite3_exec(db, pragma, NULL, NULL, &emsg) != SQLITE_OK)
			goto fail;
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, &emsg) != SQLITE_OK)
		goto fail;
	return 0;
fail_db:
	snprintf(err, errlen, "%s", sqlite3_errmsg(db));
	goto fail_quiet;
fail:
	snprintf(err, errlen, "schema migration to version %d failed: %s",
	    v + 1, emsg ? emsg : sqlite3_errmsg(db));
fail_quiet:
	sqlite3_free(emsg);
	sqlite3_finalize(st);
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* A message for a failed open or first read that tells the user what to
 * do, from SQLite's code. */
static void
open_error(const char *path, int rc, const char *detail, int rw, char *err,
    size_t errlen)
{
	switch (rc & 0xff) {
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		snprintf(err, errlen, "%s is not a SQLite database or is "
		    "corrupt (%s); restore it from a backup or move it aside",
		    path, detail);
		break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		snprintf(err, errlen, "%s is locked by another process (%s); "
		    "try again, or find the process holding it (fuser %s)",
		    path, detail, path);
		break;
	case SQLITE_CANTOPEN:
		snprintf(err, errlen, "cannot open %s (%s); %s", path, detail,
		    rw ? "create its directory and make it writable by the "
		    "gateway's user" : "check the path and its permissions");
		break;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		snprintf(err, errlen, "%s is not writable (%s); fix its "
		    "permissions or those of its directory", path, detail);
		break;
	case SQLITE_FULL:
		snprintf(err, errlen, "the disk holding %s is full (%s)", path,
		    detail);
		break;
	default:
		snprintf(err, errlen, "%s: %s", path, detail);
	}
}

/* Process-wide SQLite settings, before its first use. Memory statistics
 * take a global mutex around every allocation SQLite makes; nothing of
 * ours reads them. */
static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;
static int walbuf_ok;

static void
sqlite_setup(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	/* After the configuration: registering initialises SQLite. */
	walbuf_ok = walbuf_register() == 0;
}

struct sqlite3 *
dlog_open_db(const char *path, int rw, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	struct stat sb;
	int rc, v;

	if (path == NULL || *path == '\0') {
		snprintf(err, errlen, "no decision log path (set log.database)");
		return NULL;
	}
	if (!rw && stat(path, &sb) != 0) {
		snprintf(err, errlen, "no decision log at %s (%s); check "
		    "log.database in the config, or start the gateway once to "
		    "create it", path, strerror(errno));
		return NULL;
	}
	if (rw && path[0] != ':' && strncmp(path, "file:", 5) != 0 &&
	    stat(path, &sb) != 0 && errno == ENOENT) {
		/* A new log is readable by the gateway's group at most: it
		 * names clients and what they sent (-wal and -shm files get
		 * the same mode from SQLite). */
		int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0640);

		if (fd >= 0)
			close(fd);
	}
	pthread_once(&sqlite_once, sqlite_setup);
	/* NOMUTEX: every connection of ours is used by one thread at a
	 * time (the writer's, the checkpointer's, the CLI's), so SQLite's
	 * per-call connection mutex is pure cost. A connection that writes
	 * gathers each commit's WAL frames into one write (walbuf.h). */
	rc = sqlite3_open_v2(path, &db, (rw ? SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE : SQLITE_OPEN_READONLY) | SQLITE_OPEN_NOMUTEX,
	    rw && walbuf_ok ? WALBUF_VFS : NULL);
	if (rc != SQLITE_OK) {
		open_error(path, rc, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc),
		    rw, err, errlen);
		goto fail;
	}
	sqlite3_extended_result_codes(db, 0);
	sqlite3_busy_timeout(db, DLOG_CLI_BUSY_MS);
	/* The first statement that reads the file tells a corrupt or
	 * foreign file apart. */
	rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		open_error(path, rc, sqlite3_errmsg(db), rw, err, errlen);
		goto fail;
	}
	v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	st = NULL;
	if (rw) {
		/*
		 * A new log gets 2 KB pages (it must be set before the first
		 * write). Every commit writes each page it dirtied whole to
		 * the WAL, and the checkpoint copies it again: a decision
		 * and its outcome dirty about seven pages (two tables, four
		 * indexes, the chain heads) for some 1.2 KB of rows. Half
		 * the page halves those bytes and their checksums; the
		 * writer's CPU per request fell by about a tenth. Rows of
		 * policies with many backends still fit in a page (1 KB
		 * pages would overflow them). Existing logs keep theirs.
		 */
		if (v == 0)
			sqlite3_exec(db, "PRAGMA page_size=2048", NULL, NULL,
			    NULL);
		/* WAL: readers (log query, sqlite3) never block the writer. */
		rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st,
		    NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		if (rc != SQLITE_ROW) {
			open_error(path, rc, sqlite3_errmsg(db), rw, err, errlen);
			goto fail;
		}
		if (strcmp((const char *)sqlite3_column_text(st, 0), "wal") !=
		    0) {
			snprintf(err, errlen, "%s: cannot switch to WAL journal "
			    "mode (got %s)", path, sqlite3_column_text(st, 0));
			goto fail;
		}
		sqlite3_finalize(st);
		st = NULL;
		if (v < DLOG_SCHEMA_VERSION || v == 0) {
			char e2[400];

			if (dlog_migrate_to(db, -1, e2, sizeof(e2)) < 0) {
				snprintf(err, errlen, "%s: %s", path, e2);
				goto fail;
			}
		} else if (v > DLOG_SCHEMA_VERSION) {
			snprintf(err, errlen, "%s has schema version %d, newer "
			    "than this sovgate understands (%d); use a newer "
			    "sovgate", path, v, DLOG_SCHEMA_VERSION);
			goto fail;
		}
	} else if (v == 0) {
		snprintf(err, errlen, "%s is not a sovgate decision log (no "
		    "schema); check log.database in the config", path);
		goto fail;
	} else if (v > DLOG_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s has schema version %d, newer than this "
		    "sovgate understands (%d); use a newer sovgate", path, v,
		    DLOG_SCHEMA_VERSION);
		goto fail;
	} else if (v < DLOG_SCHEMA_VERSION) {
		snprintf(err, errlen, "%s has the older schema version %d; "
		    "start the gateway once (it migrates the log) and retry",
		    path, v);
		goto fail;
	}
	return db;
fail:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* records                                                              */

struct dlog_decision *
dlog_decision_new(void)
{
	return xcalloc(1, sizeof(struct dlog_decision));
}

/*
 * Records are built on a worker and freed on the writer thread. With
 * glibc that pattern is slow for many small blocks: the writer's frees
 * land in the worker's arena under its lock, and the worker's next
 * mallocs miss its thread cache (malloc, free and their lock were ~15% of
 * a worker's time). So at submission every string of a record moves into
 * one block, on the submitting thread: two blocks cross threads instead
 * of twenty.
 */
#define DECISION_STRINGS(d) { &(d)->client, &(d)->endpoint, &(d)->model, \
	&(d)->findings_json, &(d)->declared_level, &(d)->level, \
	&(d)->level_rule, &(d)->policy_name, &(d)->action, &(d)->reason, \
	&(d)->candidates_json, &(d)->backend, &(d)->backend_facts_json, \
	&(d)->shadow_json }
#define OUTCOME_STRINGS(o) { &(o)->attempts_json, &(o)->backend, &(o)->error }

static size_t
str_size(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

/* Move the string *fp (if any) to *cur, free the original, point *fp at
 * the copy. */
static void
move_str(char **fp, char **cur)
{
	size_t len = str_size(*fp);

	if (len == 0)
		return;
	memcpy(*cur, *fp, len);
	free(*fp);
	*fp = *cur;
	*cur += len;
}

/* The block holds the fingerprint array first (aligned as malloc
 * aligns), then every string, the fingerprints' type names included. */
static void
decision_pack(struct dlog_decision *d)
{
	char **f[] = DECISION_STRINGS(d);
	size_t i, fpbytes = d->nfps * sizeof(*d->fps), total = fpbytes;
	struct dlog_fingerprint *nf;
	char *cur;

	if (d->packed)
		return;
	for (i = 0; i < ARRAY_LEN(f); i++)
		total += str_size(*f[i]);
	for (i = 0; i < d->nfps; i++)
		total += str_size(d->fps[i].type);
	d->packed = xmalloc(total ? total : 1);
	nf = d->packed;
	cur = (char *)d->packed + fpbytes;
	for (i = 0; i < ARRAY_LEN(f); i++)
		move_str(f[i], &cur);
	for (i = 0; i < d->nfps; i++) {
		nf[i] = d->fps[i];
		move_str(&nf[i].type, &cur);
	}
	free(d->fps);
	d->fps = d->nfps ? nf : NULL;
}

static void
outcome_pack(struct dlog_outcome *o)
{
	char **f[] = OUTCOME_STRINGS(o);
	size_t i, total = 0;
	char *cur;

	if (o->packed)
		return;
	for (i = 0; i < ARRAY_LEN(f); i++)
		total += str_size(*f[i]);
	o->packed = cur = xmalloc(total ? total : 1);
	for (i = 0; i < ARRAY_LEN(f); i++)
		move_str(f[i], &cur);
}

/* Packed or not: a packed record's fields all point into its block. */
void
dlog_decision_free(struct dlog_decision *d)
{
	size_t i;

	if (d == NULL)
		return;
	if (d->packed == NULL) {
		char **f[] = DECISION_STRINGS(d);

		for (i = 0; i < ARRAY_LEN(f); i++)
			free(*f[i]);
		for (i = 0; i < d->nfps; i++)
			free(d->fps[i].type);
		free(d->fps);
	}
	free(d->packed);
	free(d);
}

struct dlog_outcome *
dlog_outcome_new(void)
{
	struct dlog_outcome *o = xcalloc(1, sizeof(*o));

	o->latency_ms = o->ttfb_ms = -1;
	o->prompt_tokens = o->completion_tokens = o->total_tokens = -1;
	return o;
}

void
dlog_outcome_free(struct dlog_outcome *o)
{
	size_t i;

	if (o == NULL)
		return;
	if (o->packed == NULL) {
		char **f[] = OUTCOME_STRINGS(o);

		for (i = 0; i < ARRAY_LEN(f); i++)
			free(*f[i]);
	}
	free(o->packed);
	free(o);
}

/* ------------------------------------------------------------------ */
/* the canonical encoding (sql/schema.sql, "The hash chains")            */

/*
 * A row's canonical encoding is made of some thirty pieces of a few bytes
 * ("t", "12:", the text, ...). They are gathered and handed to SHA-256 in
 * large pieces: one EVP_DigestUpdate per piece was a call through
 * OpenSSL's dispatch and block buffering each time.
 */
struct chash {
	EVP_MD_CTX *md;
	struct gather g;	/* into buf, then md */
	unsigned char buf[2048];
};

static void
sha_sink(void *md, const void *p, size_t n)
{
	EVP_DigestUpdate(md, p, n);
}

/* 0, or -1 if OpenSSL cannot allocate a context. c must stay where it
 * is: its gather points into it. */
static int
ch_init(struct chash *c)
{
	c->md = EVP_MD_CTX_new();
	c->g = (struct gather){ sha_sink, c->md, c->buf, 0, sizeof(c->buf) };
	return c->md != NULL ? 0 : -1;
}

static void
ch_put(struct chash *c, const void *p, size_t len)
{
	gather_add(&c->g, p, len);
}

static void
ch_begin(struct chash *c, const char *table, const char *prev, size_t prevlen)
{
	static const char tag[] = "sovgate-chain-v1\n";

	EVP_DigestInit_ex2(c->md, sha256_md(), NULL);
	c->g.n = 0;
	ch_put(c, tag, sizeof(tag) - 1);
	ch_put(c, table, strlen(table));
	ch_put(c, "\n", 1);
	ch_put(c, prev, prevlen);
}

static void
ch_null(struct chash *c)
{
	ch_put(c, "n", 1);
}

/* The encodings are written by hand: snprintf was a tenth of the
 * writer's time. */
static void
ch_int(struct chash *c, int64_t v)
{
	char b[32], *p = b + sizeof(b) - 1;

	*p = ';';
	p = fmt_i64_before(p, v);
	*--p = 'i';
	ch_put(c, p, (size_t)(b + sizeof(b) - p));
}

static void
ch_bytes(struct chash *c, char kind, const void *p, size_t len)
{
	char b[32], *q = b + sizeof(b) - 1;

	*q = ':';
	q = fmt_u64_before(q, len);
	*--q = kind;
	ch_put(c, q, (size_t)(b + sizeof(b) - q));
	if (len > 0)
		ch_put(c, p, len);
}

/* A text value, NULL as "n". */
static void
ch_text(struct chash *c, const char *s)
{
	if (s == NULL)
		ch_null(c);
	else
		ch_bytes(c, 't', s, strlen(s));
}

/* An integer that is stored as NULL when negative (unknown). */
static void
ch_int_or_null(struct chash *c, int64_t v)
{
	if (v < 0)
		ch_null(c);
	else
		ch_int(c, v);
}

/* A column as stored, by its storage class. */
static void
ch_col(struct chash *c, sqlite3_stmt *st, int i)
{
	char b[40];
	int n;

	switch (sqlite3_column_type(st, i)) {
	case SQLITE_NULL:
		ch_null(c);
		break;
	case SQLITE_INTEGER:
		ch_int(c, sqlite3_column_int64(st, i));
		break;
	case SQLITE_FLOAT:
		n = snprintf(b, sizeof(b), "r%.17g;", sqlite3_column_double(st,
		    i));
		ch_put(c, b, (size_t)n);
		break;
	case SQLITE_BLOB: {
		const void *p = sqlite3_column_blob(st, i);

		ch_bytes(c, 'b', p, (size_t)sqlite3_column_bytes(st, i));
		break;
	}
	default: {
		const unsigned char *p = sqlite3_column_text(st, i);

		ch_bytes(c, 't', p, (size_t)sqlite3_column_bytes(st, i));
		break;
	}
	}
}

static void
ch_end(struct chash *c, char out[65])
{
	unsigned char md[32];
	unsigned int len = sizeof(md);

	gather_flush(&c->g);
	EVP_DigestFinal_ex(c->md, md, &len);
	hex_encode(md, 32, out);
}

/* ------------------------------------------------------------------ */
/* appending to the chains (writer thread, or the CLI in a transaction)  */

enum chain_id { CH_DECISIONS, CH_OUTCOMES, CH_EVENTS, CH_N };
static const char *const chain_names[CH_N] = {
	"decisions", "outcomes", "events"
};

struct head {
	int64_t seq;
	char hash[65];
	int dirty;
};

/* Prepared statements and chain heads of one connection. Owned by
 * whoever writes on that connection; used by one thread at a time. */
struct appender {
	sqlite3 *db;
	struct chash ch;
	sqlite3_stmt *ins_dec, *ins_fp, *ins_out, *ins_evt;
	sqlite3_stmt *get_heads, *set_head;
	struct head heads[CH_N];
};

static const char sql_ins_dec[] =
    "INSERT INTO decisions (seq, id, ts_ms, client, endpoint, model, "
    "findings_json, declared_level, level, level_rule, policy_name, "
    "policy_sha256, action, reason, candidates_json, backend, "
    "backend_facts_json, cloud_act, shadow_json, prev_hash, row_hash) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
    "?15, ?16, ?17, ?18, ?19, ?20, ?21)";
static const char sql_ins_fp[] =
    "INSERT INTO fingerprints (decision_id, type, hmac) VALUES (?1, ?2, ?3)";
static const char sql_ins_out[] =
    "INSERT INTO outcomes (seq, decision_id, ts_ms, status, attempts, "
    "attempts_json, backend, latency_ms, ttfb_ms, bytes_in, bytes_out, "
    "prompt_tokens, completion_tokens, total_tokens, error, prev_hash, "
    "row_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
    "?13, ?14, ?15, ?16, ?17)";
static const char sql_ins_evt[] =
    "INSERT INTO events (seq, ts_ms, kind, detail_json, prev_hash, "
    "row_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

static void
appender_free(struct appender *a)
{
	if (a == NULL)
		return;
	sqlite3_finalize(a->ins_dec);
	sqlite3_finalize(a->ins_fp);
	sqlite3_finalize(a->ins_out);
	sqlite3_finalize(a->ins_evt);
	sqlite3_finalize(a->get_heads);
	sqlite3_finalize(a->set_head);
	EVP_MD_CTX_free(a->ch.md);
	free(a);
}

/* db stays owned by the caller. */
static struct appender *
appender_new(sqlite3 *db, char *err, size_t errlen)
{
	struct appender *a = xcalloc(1, sizeof(*a));

	a->db = db;
	if (ch_init(&a->ch) < 0) {
		snprintf(err, errlen, "cannot allocate a digest context");
		goto fail;
	}
	if (sqlite3_prepare_v2(db, sql_ins_dec, -1, &a->ins_dec, NULL) ||
	    sqlite3_prepare_v2(db, sql_ins_fp, -1, &a->ins_fp, NULL) ||
	    sqlite3_prepare_v2(db, sql_ins_out, -1, &a->ins_out, NULL) ||
	    sqlite3_prepare_v2(db, sql_ins_evt, -1, &a->ins_evt, NULL) ||
	    sqlite3_prepare_v2(db, "SELECT chain, head_seq, head_hash FROM "
	    "chain_state", -1, &a->get_heads, NULL) ||
	    sqlite3_prepare_v2(db, "UPDATE chain_state SET head_seq = ?1, "
	    "head_hash = ?2 WHERE chain = ?3", -1, &a->set_head, NULL)) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		goto fail;
	}
	return a;
fail:
	appender_free(a);
	return NULL;
}

/* Inside a write transaction: load every chain's head. */
static int
appender_load_heads(struct appender *a)
{
	int rc, i, seen = 0;

	sqlite3_reset(a->get_heads);
	while ((rc = sqlite3_step(a->get_heads)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(
		    a->get_heads, 0);
		const char *h = (const char *)sqlite3_column_text(
		    a->get_heads, 2);

		for (i = 0; i < CH_N; i++) {
			if (name == NULL || strcmp(name, chain_names[i]) != 0)
				continue;
			a->heads[i].seq = sqlite3_column_int64(a->get_heads, 1);
			snprintf(a->heads[i].hash, sizeof(a->heads[i].hash),
			    "%s", h ? h : "");
			a->heads[i].dirty = 0;
			seen |= 1 << i;
		}
	}
	sqlite3_reset(a->get_heads);
	if (rc != SQLITE_DONE)
		return rc;
	return seen == (1 << CH_N) - 1 ? SQLITE_OK : SQLITE_CORRUPT;
}

/* Inside the transaction, before COMMIT: write back the moved heads. */
static int
appender_store_heads(struct appender *a)
{
	int i, rc;

	for (i = 0; i < CH_N; i++) {
		if (!a->heads[i].dirty)
			continue;
		sqlite3_reset(a->set_head);
		sqlite3_bind_int64(a->set_head, 1, a->heads[i].seq);
		sqlite3_bind_text(a->set_head, 2, a->heads[i].hash, -1,
		    SQLITE_STATIC);
		sqlite3_bind_text(a->set_head, 3, chain_names[i], -1,
		    SQLITE_STATIC);
		rc = sqlite3_step(a->set_head);
		sqlite3_reset(a->set_head);
		if (rc != SQLITE_DONE)
			return rc;
		a->heads[i].dirty = 0;
	}
	return SQLITE_OK;
}

static void
bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static void
bind_int_or_null(sqlite3_stmt *st, int i, int64_t v)
{
	if (v < 0)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_int64(st, i, v);
}

static int
cmp_fp(const void *x, const void *y)
{
	const struct dlog_fingerprint *a = x, *b = y;
	int c = strcmp(a->type ? a->type : "", b->type ? b->type : "");

	return c != 0 ? c : strcmp(a->hmac, b->hmac);
}

/* The column values as stored, for hashing and inserting alike. */
static const char *
dec_action(const struct dlog_decision *d)
{
	return d->action ? d->action : "error";
}

static const char *
dec_findings(const struct dlog_decision *d)
{
	return d->findings_json ? d->findings_json : "{}";
}

/* Append one decision to the chain. SQLITE_DONE on success; SQLITE_
 * CONSTRAINT when only this row is bad (a duplicate id); anything else
 * fails the transaction. The heads move only on success. */
static int
append_decision(struct appender *a, struct dlog_decision *d)
{
	struct head *h = &a->heads[CH_DECISIONS];
	sqlite3_stmt *st = a->ins_dec;
	char hash[65];
	size_t i, nfp = 0;
	int rc;

	/* Fingerprints without a type cannot be stored: leave them out of
	 * the row and of its hash alike. */
	for (i = 0; i < d->nfps; i++)
		if (d->fps[i].type != NULL)
			d->fps[nfp++] = d->fps[i];
		else
			free(d->fps[i].type);
	d->nfps = nfp;
	for (i = 0; i < d->nfps; i++)
		d->fps[i].hmac[64] = '\0';
	if (d->nfps > 1)
		qsort(d->fps, d->nfps, sizeof(*d->fps), cmp_fp);
	d->id[36] = '\0';
	d->policy_sha256[64] = '\0';

	ch_begin(&a->ch, "decisions", h->hash, strlen(h->hash));
	ch_text(&a->ch, d->id);
	ch_int(&a->ch, d->ts_ms);
	ch_text(&a->ch, d->client);
	ch_text(&a->ch, d->endpoint);
	ch_text(&a->ch, d->model);
	ch_text(&a->ch, dec_findings(d));
	ch_text(&a->ch, d->declared_level);
	ch_text(&a->ch, d->level);
	ch_text(&a->ch, d->level_rule);
	ch_text(&a->ch, d->policy_name);
	ch_text(&a->ch, d->policy_sha256[0] ? d->policy_sha256 : NULL);
	ch_text(&a->ch, dec_action(d));
	ch_text(&a->ch, d->reason);
	ch_text(&a->ch, d->candidates_json);
	ch_text(&a->ch, d->backend);
	ch_text(&a->ch, d->backend_facts_json);
	ch_int(&a->ch, d->cloud_act ? 1 : 0);
	ch_text(&a->ch, d->shadow_json);
	ch_int(&a->ch, (int64_t)d->nfps);
	for (i = 0; i < d->nfps; i++) {
		ch_text(&a->ch, d->fps[i].type);
		ch_text(&a->ch, d->fps[i].hmac);
	}
	ch_end(&a->ch, hash);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	sqlite3_bind_int64(st, 1, h->seq + 1);
	sqlite3_bind_text(st, 2, d->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, d->ts_ms);
	bind_text_or_null(st, 4, d->client);
	bind_text_or_null(st, 5, d->endpoint);
	bind_text_or_null(st, 6, d->model);
	bind_text_or_null(st, 7, dec_findings(d));
	bind_text_or_null(st, 8, d->declared_level);
	bind_text_or_null(st, 9, d->level);
	bind_text_or_null(st, 10, d->level_rule);
	bind_text_or_null(st, 11, d->policy_name);
	bind_text_or_null(st, 12, d->policy_sha256[0] ? d->policy_sha256 :
	    NULL);
	bind_text_or_null(st, 13, dec_action(d));
	bind_text_or_null(st, 14, d->reason);
	bind_text_or_null(st, 15, d->candidates_json);
	bind_text_or_null(st, 16, d->backend);
	bind_text_or_null(st, 17, d->backend_facts_json);
	sqlite3_bind_int(st, 18, d->cloud_act ? 1 : 0);
	bind_text_or_null(st, 19, d->shadow_json);
	sqlite3_bind_text(st, 20, h->hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 21, hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return rc;
	for (i = 0; i < d->nfps; i++) {
		sqlite3_reset(a->ins_fp);
		sqlite3_bind_text(a->ins_fp, 1, d->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(a->ins_fp, 2, d->fps[i].type, -1,
		    SQLITE_STATIC);
		sqlite3_bind_text(a->ins_fp, 3, d->fps[i].hmac, -1,
		    SQLITE_STATIC);
		rc = sqlite3_step(a->ins_fp);
		sqlite3_reset(a->ins_fp);
		/* The decision row is in: a failure here must fail the whole
		 * transaction, or the chain would not match the table. */
		if (rc != SQLITE_DONE)
			return rc == SQLITE_CONSTRAINT ? SQLITE_ERROR : rc;
	}
	h->seq++;
	memcpy(h->hash, hash, sizeof(hash));
	h->dirty = 1;
	return SQLITE_DONE;
}

static int
append_outcome(struct appender *a, struct dlog_outcome *o)
{
	struct head *h = &a->heads[CH_OUTCOMES];
	sqlite3_stmt *st = a->ins_out;
	char hash[65];
	int rc;

	o->decision_id[36] = '\0';
	ch_begin(&a->ch, "outcomes", h->hash, strlen(h->hash));
	ch_text(&a->ch, o->decision_id);
	ch_int(&a->ch, o->ts_ms);
	ch_int(&a->ch, o->status);
	ch_int(&a->ch, o->attempts);
	ch_text(&a->ch, o->attempts_json);
	ch_text(&a->ch, o->backend);
	ch_int_or_null(&a->ch, o->latency_ms);
	ch_int_or_null(&a->ch, o->ttfb_ms);
	ch_int_or_null(&a->ch, o->bytes_in);
	ch_int_or_null(&a->ch, o->bytes_out);
	ch_int_or_null(&a->ch, o->prompt_tokens);
	ch_int_or_null(&a->ch, o->completion_tokens);
	ch_int_or_null(&a->ch, o->total_tokens);
	ch_text(&a->ch, o->error);
	ch_end(&a->ch, hash);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	sqlite3_bind_int64(st, 1, h->seq + 1);
	sqlite3_bind_text(st, 2, o->decision_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, o->ts_ms);
	sqlite3_bind_int(st, 4, o->status);
	sqlite3_bind_int(st, 5, o->attempts);
	bind_text_or_null(st, 6, o->attempts_json);
	bind_text_or_null(st, 7, o->backend);
	bind_int_or_null(st, 8, o->latency_ms);
	bind_int_or_null(st, 9, o->ttfb_ms);
	bind_int_or_null(st, 10, o->bytes_in);
	bind_int_or_null(st, 11, o->bytes_out);
	bind_int_or_null(st, 12, o->prompt_tokens);
	bind_int_or_null(st, 13, o->completion_tokens);
	bind_int_or_null(st, 14, o->total_tokens);
	bind_text_or_null(st, 15, o->error);
	sqlite3_bind_text(st, 16, h->hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 17, hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return rc;
	h->seq++;
	memcpy(h->hash, hash, sizeof(hash));
	h->dirty = 1;
	return SQLITE_DONE;
}

static int
append_event(struct appender *a, int64_t ts_ms, const char *kind,
    const char *detail)
{
	struct head *h = &a->heads[CH_EVENTS];
	sqlite3_stmt *st = a->ins_evt;
	char hash[65];
	int rc;

	ch_begin(&a->ch, "events", h->hash, strlen(h->hash));
	ch_int(&a->ch, ts_ms);
	ch_text(&a->ch, kind);
	ch_text(&a->ch, detail);
	ch_end(&a->ch, hash);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	sqlite3_bind_int64(st, 1, h->seq + 1);
	sqlite3_bind_int64(st, 2, ts_ms);
	sqlite3_bind_text(st, 3, kind, -1, SQLITE_STATIC);
	bind_text_or_null(st, 4, detail);
	sqlite3_bind_text(st, 5, h->hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return rc;
	h->seq++;
	memcpy(h->hash, hash, sizeof(hash));
	h->dirty = 1;
	return SQLITE_DONE;
}

/* ------------------------------------------------------------------ */
/* the writer                                                           */

enum item_kind { IT_DECISION, IT_OUTCOME, IT_EVENT };

struct item {
	enum item_kind kind;
	struct dlog_decision *d;
	struct dlog_outcome *o;
	char *ev_kind, *ev_detail;
	int64_t ts_ms;
	/* strict mode: whom to tell; NULL in batched mode (told already) */
	struct mailbox *mb;
	mailbox_fn cb;
	void *arg;
	int status;		/* decision: 1 once committed */
	struct item *next;
};

struct dlog {
	sqlite3 *db;		/* the writer thread's */
	sqlite3_stmt *st_begin, *st_commit;	/* on db, prepared once */
	struct appender *ap;
	/* ap's heads are the ones in chain_state while db's data version
	 * is heads_dv (it moves with any commit, ours or another's). */
	int heads_valid;
	unsigned int heads_dv;
	enum durability dur;
	int64_t batch_ms;
	pthread_t th;
	int started;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct item *head, *tail;	/* FIFO: decisions and events */
	size_t ndecisions, nothers;	/* waiting */
	int64_t first_mono;	/* when the oldest waiting item arrived */
	/*
	 * Outcomes wait in their own FIFO for the batch interval, whatever
	 * the durability: nothing waits for them, and a strict commit that
	 * took them along dirtied the outcome table's and index's pages
	 * again for a few rows each time. Gathered, they fill pages.
	 */
	struct item *ohead, *otail;
	size_t nouts;
	int64_t ofirst_mono;
	int stop;

	atomic_int healthy;
	atomic_int busy_ms;
	atomic_size_t depth;
	atomic_ullong dropped;
	char last_error[256];	/* under mu */
	atomic_ullong batches, rows;	/* committed */

	/* Checkpoints run on their own thread and connection: a checkpoint
	 * copies the WAL back into the database and fsyncs it, which took
	 * milliseconds that every waiting request paid when SQLite ran it
	 * inside the writer's commit. */
	sqlite3 *ckdb;
	pthread_t ckth;
	int ckstarted;
	atomic_int ckstop;
	pthread_mutex_t ckmu;
	pthread_cond_t ckcv;
	int ckwanted;		/* under ckmu: the WAL has grown */
	atomic_int ckasked;	/* the writer asked since the last checkpoint */
	atomic_int ckhold;	/* a RESTART waits: start no transaction */
};

#define DLOG_CHECKPOINT_PAGES	1000
#define DLOG_CHECKPOINT_MS	1000
#define DLOG_CHECKPOINT_GAP_MS	250
#define DLOG_RESTART_WAIT_MS	100
/* A WAL larger than this is cut back to it when it is rewound (the
 * journal_size_limit pragma in dlog_open_ex). */
#define DLOG_WAL_KEEP_BYTES	(64 * 1024 * 1024)

/* The writer's commit hook: ask for a checkpoint once the WAL is large. */
static int
wal_grew(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct dlog *l = arg;

	(void)db;
	(void)name;
	/* Asked already: the checkpointer has not run yet. */
	if (pages >= DLOG_CHECKPOINT_PAGES && !atomic_exchange(&l->ckasked,
	    1)) {
		pthread_mutex_lock(&l->ckmu);
		l->ckwanted = 1;
		pthread_cond_signal(&l->ckcv);
		pthread_mutex_unlock(&l->ckmu);
	}
	return SQLITE_OK;
}

/*
 * Copy the WAL into the database, then make the writer start the WAL over.
 *
 * A PASSIVE checkpoint alone never blocks the writer, but under steady
 * writes it never catches up with the WAL's last frame either, and SQLite
 * rewinds the WAL only when every frame has been copied: the file grew
 * without bound (1.6 GB in 8 s of benchmark), and every append extended it,
 * which costs the filesystem a zeroed block per page. So: PASSIVE copies the
 * bulk without blocking anyone, then RESTART copies the few frames written
 * meanwhile while holding the writer off (the writer starts no transaction
 * while ckhold is set, at most DLOG_RESTART_WAIT_MS), and the next
 * transaction writes the WAL from its start. The writer is held for that
 * short tail and the database fsync; it polls finely so it resumes as soon
 * as the checkpoint is done.
 */
static void
checkpoint_once(struct dlog *l)
{
	int logged = 0, copied = 0;

	sqlite3_wal_checkpoint_v2(l->ckdb, NULL, SQLITE_CHECKPOINT_PASSIVE,
	    &logged, &copied);
	if (logged < DLOG_CHECKPOINT_PAGES)
		return;
	/* The writer re-takes the write lock right after each commit, so
	 * under load RESTART starved; ckhold keeps it from starting a new
	 * transaction until this is done (writer_wait_checkpoint). */
	atomic_store(&l->ckhold, 1);
	sqlite3_busy_timeout(l->ckdb, DLOG_RESTART_WAIT_MS);
	sqlite3_wal_checkpoint_v2(l->ckdb, NULL, SQLITE_CHECKPOINT_RESTART,
	    NULL, NULL);
	sqlite3_busy_timeout(l->ckdb, 0);
	atomic_store(&l->ckhold, 0);
}

/* Before a transaction: let a pending RESTART through (bounded wait). */
static void
writer_wait_checkpoint(struct dlog *l)
{
	struct timespec ts = { 0, 100000L };	/* 100 us */
	int i;

	for (i = 0; i < DLOG_RESTART_WAIT_MS * 10 && atomic_load(&l->ckhold);
	    i++)
		nanosleep(&ts, NULL);
}

static void *
checkpointer_main(void *arg)
{
	struct dlog *l = arg;
	struct timespec ts;

	pthread_setname_np(pthread_self(), "sovgate-ckpt");
	pthread_mutex_lock(&l->ckmu);
	while (!atomic_load(&l->ckstop)) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += DLOG_CHECKPOINT_MS / 1000;
		if (!l->ckwanted)
			pthread_cond_timedwait(&l->ckcv, &l->ckmu, &ts);
		if (atomic_load(&l->ckstop))
			break;
		l->ckwanted = 0;
		pthread_mutex_unlock(&l->ckmu);
		checkpoint_once(l);
		atomic_store(&l->ckasked, 0);
		pthread_mutex_lock(&l->ckmu);
		/* At most a few checkpoints a second: under steady writes the
		 * WAL stays above the threshold until the writer restarts
		 * it, and the hook would otherwise ask again at every
		 * commit. */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += DLOG_CHECKPOINT_GAP_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		/* A request made during the gap (ckwanted) is kept: the
		 * writer asks once per checkpoint (ckasked). */
		while (!atomic_load(&l->ckstop) &&
		    pthread_cond_timedwait(&l->ckcv, &l->ckmu, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&l->ckmu);
	return NULL;
}

static void
item_free(struct item *it)
{
	dlog_decision_free(it->d);
	dlog_outcome_free(it->o);
	free(it->ev_kind);
	free(it->ev_detail);
	free(it);
}

static void
set_failed(struct dlog *l, const char *what, int rc)
{
	int was = atomic_exchange(&l->healthy, 0);

	pthread_mutex_lock(&l->mu);
	snprintf(l->last_error, sizeof(l->last_error), "%s: %s", what,
	    sqlite3_errstr(rc));
	pthread_mutex_unlock(&l->mu);
	/* Once per transition: a failing disk must not flood the log. */
	if (was)
		log_err("decision log: %s failed (%s); requests are refused "
		    "(503) until it can write again", what, sqlite3_errstr(rc));
}

static void
set_ok(struct dlog *l)
{
	if (!atomic_exchange(&l->healthy, 1))
		log_info("decision log: writing again");
	pthread_mutex_lock(&l->mu);
	l->last_error[0] = '\0';
	pthread_mutex_unlock(&l->mu);
}

/*
 * The writer's busy handler. SQLite's own sleeps 1, 2, 5, 10... ms between
 * tries, and the lock the writer most often meets is the checkpointer's
 * brief RESTART: polling every 100 us resumes it as soon as that ends.
 * After the first 10 ms it backs off to 1 ms; it gives up after busy_ms
 * (another process holding the database, say), and the batch fails.
 */
static int
writer_busy(void *arg, int tries)
{
	struct dlog *l = arg;
	struct timespec ts = { 0, tries < 100 ? 100000L : 1000000L };
	int64_t waited_us = tries < 100 ? (int64_t)tries * 100 :
	    10000 + (int64_t)(tries - 100) * 1000;

	if (waited_us >= (int64_t)atomic_load(&l->busy_ms) * 1000)
		return 0;
	nanosleep(&ts, NULL);
	return 1;
}

static void
apply_busy_timeout(struct dlog *l)
{
	sqlite3_busy_handler(l->db, writer_busy, l);
}

/* Run a statement without result rows, prepared once (parsing BEGIN and
 * COMMIT at every batch was a few per cent of the writer). */
static int
run_prepared(sqlite3 *db, sqlite3_stmt **st, const char *sql)
{
	int rc;

	if (*st == NULL && (rc = sqlite3_prepare_v2(db, sql, -1, st, NULL)) !=
	    SQLITE_OK)
		return rc;
	rc = sqlite3_step(*st);
	sqlite3_reset(*st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The database's data version as db's pager sees it; 0 or -1. */
static int
data_version(sqlite3 *db, unsigned int *v)
{
	return sqlite3_file_control(db, "main", SQLITE_FCNTL_DATA_VERSION,
	    v) == SQLITE_OK ? 0 : -1;
}

/* Write a group in one transaction. Answers every strict decision. */
static void
write_batch(struct dlog *l, struct item *list)
{
	struct mailbox_batch acks = MAILBOX_BATCH_INIT;
	struct item *it;
	const char *what = "BEGIN";
	int rc, ok = 0, fresh;
	size_t nrows = 0;
	unsigned int dv;

	apply_busy_timeout(l);
	rc = run_prepared(l->db, &l->st_begin, "BEGIN IMMEDIATE");
	if (rc != SQLITE_OK)
		goto done;
	/*
	 * The heads as our last commit left them, unless the database has
	 * changed since (another connection appended to a chain: `log
	 * prune` records an event). BEGIN IMMEDIATE has started the read,
	 * so a change by anyone else shows in the data version now.
	 */
	what = "reading the chain heads";
	fresh = l->heads_valid && data_version(l->db, &dv) == 0 &&
	    dv == l->heads_dv;
	l->heads_valid = 0;	/* until this transaction commits */
	if (!fresh && (rc = appender_load_heads(l->ap)) != SQLITE_OK)
		goto done;
	for (it = list; it; it = it->next) {
		switch (it->kind) {
		case IT_DECISION:
			what = "writing a decision";
			rc = append_decision(l->ap, it->d);
			if (rc == SQLITE_DONE) {
				it->status = 1;
			} else if (rc == SQLITE_CONSTRAINT) {
				/* This row alone (a duplicate id, say). */
				log_err("decision log: decision %s rejected: %s",
				    it->d->id, sqlite3_errmsg(l->db));
			} else {
				goto done;
			}
			break;
		case IT_OUTCOME:
			what = "writing an outcome";
			rc = append_outcome(l->ap, it->o);
			if (rc != SQLITE_DONE && rc != SQLITE_CONSTRAINT)
				goto done;
			break;
		case IT_EVENT:
			what = "writing an event";
			rc = append_event(l->ap, it->ts_ms, it->ev_kind,
			    it->ev_detail);
			if (rc != SQLITE_DONE && rc != SQLITE_CONSTRAINT)
				goto done;
			break;
		}
		nrows++;
	}
	what = "updating the chain heads";
	if ((rc = appender_store_heads(l->ap)) != SQLITE_OK)
		goto done;
	what = "COMMIT";
	rc = run_prepared(l->db, &l->st_commit, "COMMIT");
	if (rc == SQLITE_OK) {
		ok = 1;
		l->heads_valid = data_version(l->db, &l->heads_dv) == 0;
	}
done:
	if (!ok) {
		if (!sqlite3_get_autocommit(l->db))
			sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
		set_failed(l, what, rc);
		for (it = list; it; it = it->next) {
			it->status = 0;
			if (it->kind != IT_DECISION)
				atomic_fetch_add(&l->dropped, 1);
		}
	} else {
		set_ok(l);
		atomic_fetch_add(&l->batches, 1);
		atomic_fetch_add(&l->rows, (unsigned long long)nrows);
	}
	/* Answer only now: a strict decision is durable once COMMIT
	 * returned. Callbacks run on the requests' loops, in order, each
	 * loop woken once for all of its answers (mailbox_batch). */
	for (it = list; it; it = it->next)
		if (it->kind == IT_DECISION && it->mb != NULL && it->cb != NULL)
			mailbox_batch_add(&acks, it->mb, it->cb, it->arg,
			    it->status);
	mailbox_batch_send(&acks);
	while (list) {
		it = list;
		list = it->next;
		item_free(it);
	}
}

/* A small real write, to learn whether an unhealthy log recovered. */
static void
probe(struct dlog *l)
{
	char v[32];
	int rc;
	sqlite3_stmt *st = NULL;

	apply_busy_timeout(l);
	snprintf(v, sizeof(v), "%lld", (long long)now_ms());
	rc = sqlite3_prepare_v2(l->db, "INSERT OR REPLACE INTO meta (key, "
	    "value) VALUES ('last_probe_ms', ?1)", -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, v, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		set_ok(l);
	else
		set_failed(l, "probe write", rc);
}

static void
timespec_in_ms(struct timespec *ts, int64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Append the list that starts at it (and ends at the NULL) to a FIFO. */
static void
fifo_append(struct item **head, struct item **tail, struct item *it)
{
	if (it == NULL)
		return;
	if (*tail)
		(*tail)->next = it;
	else
		*head = it;
	while (it->next)
		it = it->next;
	*tail = it;
}

static void *
writer_main(void *arg)
{
	struct dlog *l = arg;
	struct item *list;
	struct timespec ts;
	int stop, outs_due;

	pthread_setname_np(pthread_self(), "sovgate-log");
	for (;;) {
		pthread_mutex_lock(&l->mu);
		for (;;) {
			int64_t now = mono_ms(), due = INT64_MAX;

			outs_due = l->ohead != NULL && (l->stop ||
			    l->nouts >= DLOG_MAX_OTHERS / 2 ||
			    now - l->ofirst_mono >= l->batch_ms);
			if (outs_due || (l->head != NULL && (l->stop ||
			    (l->dur == DUR_STRICT && l->ndecisions > 0) ||
			    l->ndecisions >= DLOG_MAX_DECISIONS / 2 ||
			    now - l->first_mono >= l->batch_ms)))
				break;	/* something to write now */
			if (l->head == NULL && l->ohead == NULL && l->stop)
				break;
			if (l->head != NULL)
				due = l->first_mono + l->batch_ms;
			if (l->ohead != NULL && l->ofirst_mono + l->batch_ms <
			    due)
				due = l->ofirst_mono + l->batch_ms;
			if (due != INT64_MAX) {
				/* until the oldest waiting item is due */
				timespec_in_ms(&ts, due - now);
				pthread_cond_timedwait(&l->cv, &l->mu, &ts);
			} else if (!atomic_load(&l->healthy)) {
				timespec_in_ms(&ts, DLOG_PROBE_MS);
				if (pthread_cond_timedwait(&l->cv, &l->mu, &ts)
				    != 0 && l->head == NULL)
					break;	/* time to probe */
			} else {
				pthread_cond_wait(&l->cv, &l->mu);
			}
		}
		/* Decisions and events whenever we write; outcomes when due,
		 * after them (they are their own chain). */
		if (outs_due) {
			fifo_append(&l->head, &l->tail, l->ohead);
			l->ohead = l->otail = NULL;
			l->nouts = 0;
		}
		list = l->head;
		l->head = l->tail = NULL;
		l->ndecisions = l->nothers = 0;
		atomic_store(&l->depth, l->nouts);
		stop = l->stop;
		pthread_mutex_unlock(&l->mu);

		if (list != NULL) {
			writer_wait_checkpoint(l);
			write_batch(l, list);
		}
		else if (stop)
			break;
		else if (!atomic_load(&l->healthy))
			probe(l);
	}
	return NULL;
}

struct dlog *
dlog_open(const char *path, enum durability dur, int64_t batch_interval_ms,
    char *err, size_t errlen)
{
	return dlog_open_ex(path, dur, batch_interval_ms,
	    dur == DUR_STRICT ? DLOG_SYNC_FULL : DLOG_SYNC_NORMAL, err, errlen);
}

struct dlog *
dlog_open_ex(const char *path, enum durability dur, int64_t batch_interval_ms,
    enum dlog_sync sync, char *err, size_t errlen)
{
	struct dlog *l = xcalloc(1, sizeof(*l));
	pthread_condattr_t ca;
	sigset_t all, old;
	char e2[300];
	int rc;

	l->dur = dur;
	l->batch_ms = batch_interval_ms > 0 ? batch_interval_ms : 5;
	atomic_init(&l->healthy, 1);
	atomic_init(&l->busy_ms, DLOG_WRITER_BUSY_MS);
	atomic_init(&l->depth, 0);
	atomic_init(&l->dropped, 0);
	atomic_init(&l->batches, 0);
	atomic_init(&l->rows, 0);
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cv, &ca);
	pthread_mutex_init(&l->ckmu, NULL);
	pthread_cond_init(&l->ckcv, &ca);
	pthread_condattr_destroy(&ca);

	l->db = dlog_open_db(path, 1, err, errlen);
	if (l->db == NULL)
		goto fail;
	/*
	 * In WAL mode, NORMAL makes a commit durable once written to the WAL:
	 * it survives a crash of sovgate itself, which is what "forwarded
	 * only after its row is committed" must hold against. FULL also
	 * fsyncs the WAL at every commit so the row survives a power cut,
	 * at the cost of one fsync per group commit (milliseconds on most
	 * disks): log.sync: full.
	 */
	if (sqlite3_exec(l->db, sync == DLOG_SYNC_FULL ?
	    "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", NULL,
	    NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(l->db));
		goto fail;
	}
	l->ap = appender_new(l->db, e2, sizeof(e2));
	if (l->ap == NULL) {
		snprintf(err, errlen, "%s: %s", path, e2);
		goto fail;
	}
	/* Fail at start rather than at the first request: the file may be
	 * read-only or on a full disk. */
	rc = sqlite3_exec(l->db, "INSERT OR IGNORE INTO meta (key, value) "
	    "VALUES ('created_ms', CAST(strftime('%s','now') AS INTEGER) * "
	    "1000)", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		open_error(path, rc, sqlite3_errmsg(l->db), 1, err, errlen);
		goto fail;
	}
	l->ckdb = dlog_open_db(path, 1, e2, sizeof(e2));
	if (l->ckdb != NULL) {
		sqlite3_exec(l->db, "PRAGMA wal_autocheckpoint=0", NULL, NULL,
		    NULL);
		/* = DLOG_WAL_KEEP_BYTES */
		sqlite3_exec(l->db, "PRAGMA journal_size_limit=67108864",
		    NULL, NULL, NULL);
		sqlite3_wal_hook(l->db, wal_grew, l);
	} else {
		/* Without a second connection SQLite checkpoints inline. */
		log_warn("decision log: no checkpoint connection (%s); "
		    "commits will checkpoint inline", e2);
	}
	/* The writer takes no signals: they belong to the main loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	if (l->ckdb != NULL &&
	    pthread_create(&l->ckth, NULL, checkpointer_main, l) == 0)
		l->ckstarted = 1;
	rc = pthread_create(&l->th, NULL, writer_main, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start the log writer: %s",
		    strerror(rc));
		goto fail;
	}
	l->started = 1;
	return l;
fail:
	dlog_close(l);
	return NULL;
}

void
dlog_close(struct dlog *l)
{
	struct item *it, *next;

	if (l == NULL)
		return;
	if (l->started) {
		pthread_mutex_lock(&l->mu);
		l->stop = 1;
		pthread_cond_signal(&l->cv);
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->th, NULL);
	}
	if (l->ckstarted) {
		pthread_mutex_lock(&l->ckmu);
		atomic_store(&l->ckstop, 1);
		pthread_cond_signal(&l->ckcv);
		pthread_mutex_unlock(&l->ckmu);
		pthread_join(l->ckth, NULL);
	}
	if (l->ckdb)
		sqlite3_close(l->ckdb);
	/* Nothing is left unless the thread never ran. */
	fifo_append(&l->head, &l->tail, l->ohead);
	for (it = l->head; it; it = next) {
		next = it->next;
		if (it->kind == IT_DECISION && it->mb && it->cb)
			mailbox_post(it->mb, it->cb, it->arg, 0);
		item_free(it);
	}
	appender_free(l->ap);
	sqlite3_finalize(l->st_begin);
	sqlite3_finalize(l->st_commit);
	if (l->db) {
		/* A clean close checkpoints the WAL into the main file. */
		sqlite3_close(l->db);
	}
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->ckcv);
	pthread_mutex_destroy(&l->ckmu);
	free(l);
}

/* Append; the caller holds l->mu. 0, or -1 when refused (it is then not
 * queued). Sets *wake when the writer must be signalled. */
static int
enqueue_locked(struct dlog *l, struct item *it, int *wake)
{
	int is_dec = it->kind == IT_DECISION;

	if (l->stop || (is_dec && (l->ndecisions >= DLOG_MAX_DECISIONS ||
	    !atomic_load(&l->healthy))) ||
	    (!is_dec && l->nothers + l->nouts >= DLOG_MAX_OTHERS))
		return -1;
	it->next = NULL;
	atomic_fetch_add(&l->depth, 1);
	if (it->kind == IT_OUTCOME) {
		if (l->ohead == NULL) {
			l->ofirst_mono = mono_ms();
			*wake = 1;	/* starts its timer */
		}
		fifo_append(&l->ohead, &l->otail, it);
		if (++l->nouts >= DLOG_MAX_OTHERS / 2)
			*wake = 1;
		return 0;
	}
	if (l->head == NULL)
		l->first_mono = mono_ms();
	fifo_append(&l->head, &l->tail, it);
	if (is_dec)
		l->ndecisions++;
	else
		l->nothers++;
	/* A strict decision wakes the writer at once (group commit); an
	 * event only when it starts a batch, whose timer it starts: events
	 * are not waited for, so they ride along with the next decisions or
	 * go at the batch interval. */
	if ((l->dur == DUR_STRICT && is_dec) || l->head == it ||
	    l->ndecisions >= DLOG_MAX_DECISIONS / 2)
		*wake = 1;
	return 0;
}

static int
enqueue(struct dlog *l, struct item *it)
{
	int rc, wake = 0;

	pthread_mutex_lock(&l->mu);
	rc = enqueue_locked(l, it, &wake);
	pthread_mutex_unlock(&l->mu);
	/* After the unlock (see dlog_batch_submit). */
	if (wake)
		pthread_cond_signal(&l->cv);
	return rc;
}

static struct item *
decision_item(struct dlog_decision *d, struct mailbox *mb, mailbox_fn cb,
    void *arg)
{
	struct item *it = xcalloc(1, sizeof(*it));

	it->kind = IT_DECISION;
	it->d = d;
	it->mb = mb;
	it->cb = cb;
	it->arg = arg;
	return it;
}

int
dlog_submit_decision(struct dlog *l, struct dlog_decision *d,
    struct mailbox *mb, mailbox_fn cb, void *arg)
{
	struct item *it;

	if (l == NULL || d == NULL) {
		dlog_decision_free(d);
		return -1;
	}
	decision_pack(d);
	/* batched: queued is durable enough, and we answer below; the
	 * writer never knows the callback, so it cannot run twice. */
	it = l->dur == DUR_STRICT ? decision_item(d, mb, cb, arg) :
	    decision_item(d, NULL, NULL, NULL);
	if (enqueue(l, it) < 0) {
		item_free(it);
		return -1;
	}
	if (l->dur != DUR_STRICT && mb != NULL && cb != NULL)
		mailbox_post(mb, cb, arg, 1);
	return 0;
}

/* ---- batches ---- */

struct dlog_batch {
	struct item *head, *tail;
	size_t n;
};

struct dlog_batch *
dlog_batch_new(void)
{
	return xcalloc(1, sizeof(struct dlog_batch));
}

static void
batch_add(struct dlog_batch *b, struct item *it)
{
	it->next = NULL;
	if (b->tail)
		b->tail->next = it;
	else
		b->head = it;
	b->tail = it;
	b->n++;
}

void
dlog_batch_decision(struct dlog_batch *b, struct dlog_decision *d,
    struct mailbox *mb, mailbox_fn cb, void *arg)
{
	decision_pack(d);
	batch_add(b, decision_item(d, mb, cb, arg));
}

void
dlog_batch_outcome(struct dlog_batch *b, struct dlog_outcome *o)
{
	struct item *it = xcalloc(1, sizeof(*it));

	outcome_pack(o);
	it->kind = IT_OUTCOME;
	it->o = o;
	batch_add(b, it);
}

size_t
dlog_batch_size(const struct dlog_batch *b)
{
	return b ? b->n : 0;
}

void
dlog_batch_submit(struct dlog *l, struct dlog_batch *b)
{
	struct item *it, *next, *refused = NULL, **rt = &refused;
	int wake = 0;

	it = b->head;
	b->head = b->tail = NULL;
	b->n = 0;
	if (l != NULL)
		pthread_mutex_lock(&l->mu);
	for (; it; it = next) {
		struct item ack = *it;

		next = it->next;
		/* batched: the writer must not know the callback (it is
		 * answered here, once queued). Strict: the writer answers. */
		if (l != NULL && l->dur != DUR_STRICT) {
			it->mb = NULL;
			it->cb = NULL;
		}
		if (l == NULL || enqueue_locked(l, it, &wake) < 0) {
			*it = ack;
			it->next = NULL;
			*rt = it;
			rt = &it->next;
		} else if (ack.kind == IT_DECISION && ack.mb && ack.cb &&
		    l->dur != DUR_STRICT) {
			mailbox_post(ack.mb, ack.cb, ack.arg, 1);
		}
	}
	if (l != NULL) {
		pthread_mutex_unlock(&l->mu);
		/*
		 * Signalled after the unlock: a writer woken while we still
		 * held l->mu went straight back to sleep on it, and our
		 * unlock had to wake it a second time. The writer tests its
		 * queue under l->mu before it waits, so nothing queued here
		 * can be missed. l outlives every submitter (dlog_close runs
		 * after the workers have stopped).
		 */
		if (wake)
			pthread_cond_signal(&l->cv);
	}
	/* Refused decisions are answered "not logged" (their requests fail
	 * closed); refused outcomes are counted as dropped. */
	for (it = refused; it; it = next) {
		next = it->next;
		if (it->kind == IT_DECISION && it->mb && it->cb)
			mailbox_post(it->mb, it->cb, it->arg, 0);
		else if (it->kind != IT_DECISION && l != NULL)
			atomic_fetch_add(&l->dropped, 1);
		item_free(it);
	}
}

void
dlog_batch_free(struct dlog_batch *b)
{
	struct item *it, *next;

	if (b == NULL)
		return;
	for (it = b->head; it; it = next) {
		next = it->next;
		item_free(it);
	}
	free(b);
}

void
dlog_submit_outcome(struct dlog *l, struct dlog_outcome *o)
{
	struct item *it;

	if (l == NULL || o == NULL) {
		dlog_outcome_free(o);
		return;
	}
	outcome_pack(o);
	it = xcalloc(1, sizeof(*it));
	it->kind = IT_OUTCOME;
	it->o = o;
	if (enqueue(l, it) < 0) {
		atomic_fetch_add(&l->dropped, 1);
		item_free(it);
	}
}

void
dlog_submit_event(struct dlog *l, const char *kind, const char *detail_json)
{
	struct item *it;

	if (l == NULL || kind == NULL)
		return;
	it = xcalloc(1, sizeof(*it));
	it->kind = IT_EVENT;
	it->ts_ms = now_ms();
	it->ev_kind = xstrdup(kind);
	it->ev_detail = detail_json ? xstrdup(detail_json) : NULL;
	if (enqueue(l, it) < 0) {
		atomic_fetch_add(&l->dropped, 1);
		item_free(it);
	}
}

int
dlog_healthy(struct dlog *l)
{
	return l != NULL && atomic_load(&l->healthy);
}

size_t
dlog_queue_depth(struct dlog *l)
{
	return l ? atomic_load(&l->depth) : 0;
}

uint64_t
dlog_dropped(struct dlog *l)
{
	return l ? atomic_load(&l->dropped) : 0;
}

void
dlog_last_error(struct dlog *l, char *out, size_t outlen)
{
	if (outlen == 0)
		return;
	out[0] = '\0';
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	snprintf(out, outlen, "%s", l->last_error);
	pthread_mutex_unlock(&l->mu);
}

void
dlog_stats(struct dlog *l, uint64_t *batches, uint64_t *rows)
{
	*batches = l ? atomic_load(&l->batches) : 0;
	*rows = l ? atomic_load(&l->rows) : 0;
}

void
dlog_set_busy_timeout_ms(struct dlog *l, int ms)
{
	if (l != NULL)
		atomic_store(&l->busy_ms, ms < 0 ? 0 : ms);
}

/* ------------------------------------------------------------------ */
/* verify                                                               */

/* How each chain is read back: the chained columns in hash order after
 * seq, prev_hash, row_hash, and a label column for messages. */
static const char *const chain_select[CH_N] = {
	"SELECT seq, prev_hash, row_hash, id, id, ts_ms, client, endpoint, "
	"model, findings_json, declared_level, level, level_rule, policy_name, "
	"policy_sha256, action, reason, candidates_json, backend, "
	"backend_facts_json, cloud_act, shadow_json FROM decisions ORDER BY seq",
	"SELECT seq, prev_hash, row_hash, decision_id, decision_id, ts_ms, "
	"status, attempts, attempts_json, backend, latency_ms, ttfb_ms, "
	"bytes_in, bytes_out, prompt_tokens, completion_tokens, total_tokens, "
	"error FROM outcomes ORDER BY seq",
	"SELECT seq, prev_hash, row_hash, kind, ts_ms, kind, detail_json "
	"FROM events ORDER BY seq",
};
static const char *const chain_label[CH_N] = {
	"decision", "outcome of decision", "event"
};
#define CH_FIRST_FIELD 4

/* Fill in rep's problem for a row (first problem only). */
static void
report(struct dlog_verify_report *rep, enum chain_id c, int64_t seq,
    const char *label, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void
report(struct dlog_verify_report *rep, enum chain_id c, int64_t seq,
    const char *label, const char *fmt, ...)
{
	char what[384];
	va_list ap;

	if (rep->nproblems++ > 0)
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(rep->chain, sizeof(rep->chain), "%s", chain_names[c]);
	rep->bad_seq = seq;
	snprintf(rep->bad_label, sizeof(rep->bad_label), "%s", label ? label :
	    "");
	if (seq > 0)
		snprintf(rep->problem, sizeof(rep->problem), "%s row seq %lld "
		    "(%s %s) %s", chain_names[c], (long long)seq, chain_label[c],
		    label ? label : "?", what);
	else
		snprintf(rep->problem, sizeof(rep->problem), "%s: %s",
		    chain_names[c], what);
}

/* seq of the row whose row_hash is h (and not seq not_seq), or 0. */
static int64_t
find_row_by_hash(sqlite3 *db, enum chain_id c, const char *h, int64_t not_seq)
{
	char sql[128];
	sqlite3_stmt *st = NULL;
	int64_t r = 0;

	snprintf(sql, sizeof(sql), "SELECT seq FROM %s WHERE row_hash = ?1 "
	    "AND seq <> ?2 LIMIT 1", chain_names[c]);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, h, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 2, not_seq);
		if (sqlite3_step(st) == SQLITE_ROW)
			r = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return r;
}

static int
verify_chain(sqlite3 *db, enum chain_id c, struct chash *md,
    struct dlog_verify_report *rep, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL, *fp = NULL, *cs = NULL;
	char expect[65], prev_row[65] = "", prevprev_row[65] = "";
	char hash[65];
	char prev_label[64] = "";
	int64_t anchor_seq, head_seq, last_seq = 0, nrows = 0;
	char anchor_hash[65], head_hash[65];
	int rc, ncol, i, bad = 0;

	if (sqlite3_prepare_v2(db, "SELECT anchor_seq, anchor_hash, head_seq, "
	    "head_hash FROM chain_state WHERE chain = ?1", -1, &cs, NULL) !=
	    SQLITE_OK)
		goto dberr;
	sqlite3_bind_text(cs, 1, chain_names[c], -1, SQLITE_STATIC);
	rc = sqlite3_step(cs);
	if (rc != SQLITE_ROW) {
		if (rc != SQLITE_DONE)
			goto dberr;
		report(rep, c, 0, NULL, "its chain_state row is missing (the "
		    "anchor and head were deleted)");
		sqlite3_finalize(cs);
		return 0;
	}
	anchor_seq = sqlite3_column_int64(cs, 0);
	snprintf(anchor_hash, sizeof(anchor_hash), "%s",
	    (const char *)sqlite3_column_text(cs, 1));
	head_seq = sqlite3_column_int64(cs, 2);
	snprintf(head_hash, sizeof(head_hash), "%s",
	    (const char *)sqlite3_column_text(cs, 3));
	sqlite3_finalize(cs);
	cs = NULL;
	memcpy(expect, anchor_hash, sizeof(expect));

	if (sqlite3_prepare_v2(db, chain_select[c], -1, &st, NULL) != SQLITE_OK)
		goto dberr;
	if (c == CH_DECISIONS && sqlite3_prepare_v2(db, "SELECT type, hmac "
	    "FROM fingerprints WHERE decision_id = ?1 ORDER BY type, hmac", -1,
	    &fp, NULL) != SQLITE_OK)
		goto dberr;
	ncol = sqlite3_column_count(st);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(st, 0);
		const char *prev = (const char *)sqlite3_column_text(st, 1);
		const char *rowh = (const char *)sqlite3_column_text(st, 2);
		const char *lab = (const char *)sqlite3_column_text(st, 3);
		char label[64];
		int content_ok, link_ok;

		snprintf(label, sizeof(label), "%s", lab ? lab : "?");
		if (prev == NULL)
			prev = "";
		if (rowh == NULL)
			rowh = "";
		nrows++;
		ch_begin(md, chain_names[c], prev, strlen(prev));
		for (i = CH_FIRST_FIELD; i < ncol; i++)
			ch_col(md, st, i);
		if (fp != NULL) {
			int64_t n = 0;

			/* Count first: the count precedes the pairs. */
			sqlite3_reset(fp);
			sqlite3_bind_text(fp, 1, lab ? lab : "", -1,
			    SQLITE_TRANSIENT);
			while ((rc = sqlite3_step(fp)) == SQLITE_ROW)
				n++;
			if (rc != SQLITE_DONE)
				goto dberr;
			ch_int(md, n);
			sqlite3_reset(fp);
			while ((rc = sqlite3_step(fp)) == SQLITE_ROW) {
				ch_col(md, fp, 0);
				ch_col(md, fp, 1);
			}
			if (rc != SQLITE_DONE)
				goto dberr;
		}
		ch_end(md, hash);
		content_ok = strcmp(hash, rowh) == 0;
		link_ok = strcmp(prev, expect) == 0;
		if (!link_ok && prevprev_row[0] && strcmp(prev, prevprev_row) ==
		    0) {
			/* This row links to the row before the previous one:
			 * the previous row was slipped in. */
			report(rep, c, last_seq, prev_label, "was inserted: the "
			    "row after it (seq %lld) links past it",
			    (long long)seq);
			bad = 1;
			break;
		}
		if (!link_ok && nrows == 1 && strcmp(prev, GENESIS_HASH) == 0 &&
		    anchor_seq > 0) {
			report(rep, c, seq, label, "links to genesis, but the "
			    "log was pruned up to seq %lld: it was inserted or "
			    "the anchor was altered", (long long)anchor_seq);
			bad = 1;
			break;
		}
		if (!content_ok) {
			report(rep, c, seq, label, "was modified: its content "
			    "does not match its row_hash%s", link_ok ? "" :
			    " (and it does not link to the row before it: "
			    "inserted, or moved)");
			bad = 1;
			break;
		}
		if (!link_ok) {
			int64_t later = find_row_by_hash(db, c, prev, seq);

			if (later > seq)
				report(rep, c, seq, label, "is out of order: it "
				    "links to row seq %lld, which comes after "
				    "it (rows were reordered)", (long long)later);
			else if (later > 0)
				report(rep, c, seq, label, "does not link to the "
				    "row before it but to seq %lld: the rows "
				    "between were deleted or reordered",
				    (long long)later);
			else if (nrows == 1)
				report(rep, c, seq, label, "does not link to the "
				    "chain's anchor (seq %lld): the rows before "
				    "it were deleted", (long long)anchor_seq);
			else if (seq == last_seq + 2)
				report(rep, c, seq, label, "does not link to the "
				    "row before it (seq %lld): row seq %lld was "
				    "deleted", (long long)last_seq,
				    (long long)last_seq + 1);
			else if (seq > last_seq + 2)
				report(rep, c, seq, label, "does not link to the "
				    "row before it (seq %lld): the rows between "
				    "(seq %lld to %lld) were deleted",
				    (long long)last_seq, (long long)last_seq + 1,
				    (long long)seq - 1);
			else
				report(rep, c, seq, label, "does not link to the "
				    "row before it (seq %lld): a row between them "
				    "was deleted, or this one replaced",
				    (long long)last_seq);
			bad = 1;
			break;
		}
		memcpy(prevprev_row, prev_row, sizeof(prevprev_row));
		snprintf(prev_row, sizeof(prev_row), "%s", rowh);
		memcpy(expect, hash, sizeof(expect));
		memcpy(prev_label, label, sizeof(prev_label));
		last_seq = seq;
	}
	if (!bad && rc != SQLITE_DONE)
		goto dberr;
	if (!bad) {
		/* The head: rows deleted or added at the newest end. */
		if (nrows == 0 && head_seq > anchor_seq)
			report(rep, c, 0, NULL, "every row up to seq %lld was "
			    "deleted (the recorded head)", (long long)head_seq);
		else if (nrows > 0 && strcmp(expect, head_hash) != 0) {
			if (last_seq < head_seq)
				report(rep, c, 0, NULL, "the newest rows after seq "
				    "%lld were deleted (the recorded head is seq "
				    "%lld)", (long long)last_seq,
				    (long long)head_seq);
			else
				report(rep, c, last_seq, prev_label, "was "
				    "appended behind the log's back (the recorded "
				    "head is seq %lld)", (long long)head_seq);
		} else if (nrows == 0 && strcmp(anchor_hash, head_hash) != 0)
			report(rep, c, 0, NULL, "its anchor and head disagree "
			    "on an empty chain");
	}
	rep->rows[c] = nrows;
	if (c == CH_DECISIONS)
		snprintf(rep->head, sizeof(rep->head), "%s", expect);
	sqlite3_finalize(st);
	sqlite3_finalize(fp);
	return 0;
dberr:
	snprintf(err, errlen, "%s", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_finalize(fp);
	sqlite3_finalize(cs);
	return -1;
}

int
dlog_verify(struct sqlite3 *db, struct dlog_verify_report *rep, char *err,
    size_t errlen)
{
	struct chash *md = xcalloc(1, sizeof(*md));
	sqlite3_stmt *st = NULL;
	int c, rc = -1, began = 0;

	memset(rep, 0, sizeof(*rep));
	if (ch_init(md) < 0) {
		snprintf(err, errlen, "cannot allocate a digest context");
		free(md);
		return -1;
	}
	/* One read transaction: a consistent snapshot while the gateway
	 * keeps writing. */
	if (sqlite3_get_autocommit(db)) {
		if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
			snprintf(err, errlen, "%s", sqlite3_errmsg(db));
			goto out;
		}
		began = 1;
	}
	for (c = 0; c < CH_N; c++)
		if (verify_chain(db, (enum chain_id)c, md, rep, err, errlen) < 0)
			goto out;
	/* Fingerprints of no decision were slipped in (or their decision
	 * deleted; that shows above). */
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM fingerprints WHERE "
	    "decision_id NOT IN (SELECT id FROM decisions)", -1, &st, NULL) !=
	    SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		goto out;
	}
	if (sqlite3_column_int64(st, 0) > 0 && rep->nproblems == 0) {
		rep->nproblems++;
		snprintf(rep->chain, sizeof(rep->chain), "fingerprints");
		snprintf(rep->problem, sizeof(rep->problem), "fingerprints: %lld "
		    "rows belong to no decision (inserted, or left behind by a "
		    "deleted decision)", (long long)sqlite3_column_int64(st, 0));
	}
	rc = rep->nproblems > 0 ? 1 : 0;
out:
	sqlite3_finalize(st);
	if (began && !sqlite3_get_autocommit(db))
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	EVP_MD_CTX_free(md->md);
	free(md);
	return rc;
}

/* ------------------------------------------------------------------ */
/* prune                                                                */

static int
exec_int64(sqlite3 *db, const char *sql, int64_t a, int64_t *out, int *isnull)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, a);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*isnull = sqlite3_column_type(st, 0) == SQLITE_NULL;
		*out = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		*isnull = 1;
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return rc;
}

/* Rows deleted per transaction: the gateway's writer waits for the lock
 * at most its busy timeout, so one prune transaction must stay short. */
#define PRUNE_CHUNK 2000

/*
 * One transaction of a prune: for each chain, delete up to PRUNE_CHUNK
 * rows of the prefix older than before_ms and move the anchor onto the
 * last row deleted. *more is set when rows remain to delete. The state
 * after every commit verifies, so an interrupted prune leaves a sound log.
 */
static int
prune_chunk(sqlite3 *db, int64_t before_ms, struct dlog_prune_report *rep,
    int64_t cuts[CH_N], char anchors[CH_N][65], int *more, char *err,
    size_t errlen)
{
	sqlite3_stmt *st = NULL;
	char sql[256];
	int c, isnull;
	int64_t dummy;

	*more = 0;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto dberr;
	for (c = 0; c < CH_N; c++) {
		int64_t first_kept, anchor_seq, head_seq, cut;

		/* A prefix in seq order: everything before the first row at
		 * or after the cut-off time. */
		snprintf(sql, sizeof(sql), "SELECT anchor_seq FROM chain_state "
		    "WHERE chain = '%s' AND ?1 = ?1", chain_names[c]);
		if (exec_int64(db, sql, 0, &anchor_seq, &isnull) || isnull)
			goto dberr;
		snprintf(sql, sizeof(sql), "SELECT head_seq FROM chain_state "
		    "WHERE chain = '%s' AND ?1 = ?1", chain_names[c]);
		if (exec_int64(db, sql, 0, &head_seq, &isnull) || isnull)
			goto dberr;
		snprintf(sql, sizeof(sql), "SELECT min(seq) FROM %s WHERE "
		    "ts_ms >= ?1", chain_names[c]);
		if (exec_int64(db, sql, before_ms, &first_kept, &isnull))
			goto dberr;
		if (isnull)
			first_kept = head_seq + 1;
		cut = first_kept - 1;
		if (cut <= anchor_seq)
			continue;
		if (cut > anchor_seq + PRUNE_CHUNK) {
			cut = anchor_seq + PRUNE_CHUNK;
			*more = 1;
		}
		snprintf(sql, sizeof(sql), "SELECT row_hash FROM %s WHERE seq = "
		    "?1", chain_names[c]);
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
			goto dberr;
		sqlite3_bind_int64(st, 1, cut);
		if (sqlite3_step(st) != SQLITE_ROW) {
			snprintf(err, errlen, "%s: no row at seq %lld to anchor "
			    "the chain on; run sovgate log verify",
			    chain_names[c], (long long)cut);
			goto fail;
		}
		snprintf(anchors[c], 65, "%s", (const char *)
		    sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		st = NULL;
		if (c == CH_DECISIONS) {
			if (exec_int64(db, "DELETE FROM fingerprints WHERE "
			    "decision_id IN (SELECT id FROM decisions WHERE seq "
			    "<= ?1)", cut, &dummy, &isnull))
				goto dberr;
			rep->fingerprints += sqlite3_changes(db);
		}
		snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE seq <= ?1",
		    chain_names[c]);
		if (exec_int64(db, sql, cut, &dummy, &isnull))
			goto dberr;
		rep->rows[c] += sqlite3_changes(db);
		if (sqlite3_prepare_v2(db, "UPDATE chain_state SET anchor_seq = "
		    "?1, anchor_hash = ?2 WHERE chain = ?3", -1, &st, NULL) !=
		    SQLITE_OK)
			goto dberr;
		sqlite3_bind_int64(st, 1, cut);
		sqlite3_bind_text(st, 2, anchors[c], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, chain_names[c], -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto dberr;
		sqlite3_finalize(st);
		st = NULL;
		cuts[c] = cut;
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto dberr;
	return 0;
dberr:
	if (sqlite3_errcode(db) == SQLITE_BUSY ||
	    sqlite3_errcode(db) == SQLITE_LOCKED)
		snprintf(err, errlen, "the decision log is locked by another "
		    "process (%s); try again", sqlite3_errmsg(db));
	else
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
fail:
	sqlite3_finalize(st);
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

int
dlog_prune(struct sqlite3 *db, int64_t before_ms,
    struct dlog_prune_report *rep, char *err, size_t errlen)
{
	struct dlog_verify_report vr;
	char tbuf[32], *detail = NULL;
	char anchors[CH_N][65];
	int64_t cuts[CH_N];
	int c, rc, more;

	memset(rep, 0, sizeof(*rep));
	for (c = 0; c < CH_N; c++) {
		cuts[c] = 0;
		anchors[c][0] = '\0';
	}
	/*
	 * Refuse to destroy evidence of tampering: prune only a log that
	 * verifies. The check reads a snapshot without the write lock, so a
	 * running gateway keeps logging meanwhile; the deletes then go in
	 * short transactions, each leaving a log that verifies.
	 */
	rc = dlog_verify(db, &vr, err, errlen);
	if (rc < 0)
		return -1;
	if (rc > 0) {
		snprintf(err, errlen, "the log does not verify, so nothing was "
		    "pruned (the evidence is kept): %s", vr.problem);
		return 1;
	}
	do {
		if (prune_chunk(db, before_ms, rep, cuts, anchors, &more, err,
		    errlen) < 0)
			return -1;
	} while (more);
	/* The prune is itself evidence: an event on the (pruned) chain. */
	fmt_rfc3339_ms(before_ms, tbuf, sizeof(tbuf));
	detail = xasprintf("{\"before\":\"%s\",\"before_ms\":%lld,"
	    "\"decisions\":%lld,\"outcomes\":%lld,\"events\":%lld,"
	    "\"fingerprints\":%lld,\"anchors\":{\"decisions\":{\"seq\":%lld,"
	    "\"hash\":\"%s\"},\"outcomes\":{\"seq\":%lld,\"hash\":\"%s\"},"
	    "\"events\":{\"seq\":%lld,\"hash\":\"%s\"}}}", tbuf,
	    (long long)before_ms, (long long)rep->rows[CH_DECISIONS],
	    (long long)rep->rows[CH_OUTCOMES], (long long)rep->rows[CH_EVENTS],
	    (long long)rep->fingerprints, (long long)cuts[CH_DECISIONS],
	    anchors[CH_DECISIONS], (long long)cuts[CH_OUTCOMES],
	    anchors[CH_OUTCOMES], (long long)cuts[CH_EVENTS],
	    anchors[CH_EVENTS]);
	rc = dlog_append_event_db(db, now_ms(), "prune", detail, err, errlen);
	free(detail);
	return rc < 0 ? -1 : 0;
}

int
dlog_append_event_db(struct sqlite3 *db, int64_t ts_ms, const char *kind,
    const char *detail_json, char *err, size_t errlen)
{
	struct appender *ap = appender_new(db, err, errlen);
	int ret = -1;

	if (ap == NULL)
		return -1;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
	    appender_load_heads(ap) != SQLITE_OK ||
	    append_event(ap, ts_ms, kind, detail_json) != SQLITE_DONE ||
	    appender_store_heads(ap) != SQLITE_OK ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s", sqlite3_errmsg(db));
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	} else {
		ret = 0;
	}
	appender_free(ap);
	return ret;
}
