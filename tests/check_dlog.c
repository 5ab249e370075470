/*
 * check_dlog.c - the decision log: schema and migrations, the writer
 * (group commit, callbacks exactly once, failure and recovery), the hash
 * chains (the documented encoding, tampering of every kind), prune, and
 * the `log` subcommands.
 *
 * src/dlog.c embeds sql/schema.sql as a C string; after editing the file,
 * regenerate the string between the @SCHEMA_V1_BEGIN@/@SCHEMA_V1_END@
 * markers with:
 *   python3 -c 'import re;s=open("sql/schema.sql").read().rstrip("\n").split("\n");
 *   c=open("src/dlog.c").read();a=c.index("/" "* @SCHEMA_V1_BEGIN@ *" "/")+27;
 *   b=c.index("/" "* @SCHEMA_V1_END@");q=lambda l:"\"%s\\n\""%l.replace("\\","\\\\")
 *   .replace("\"","\\\"").replace("\t","\\t");
 *   open("src/dlog.c","w").write(c[:a]+"\n".join(map(q,s))+"\n"+c[b:])'
 * (test_schema_file_matches_embedded fails until they agree).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdarg.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "dlog.h"
#include "logcmd.h"
#include "mailbox.h"
#include "util.h"
#include "testutil.h"

/* ------------------------------------------------------------------ */
/* helpers                                                              */

static char tmpdir[256];

static void
setup_tmp(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/check_dlog.XXXXXX",
	    t && *t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
rm_tmp(void)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
}

static char *
tpath(const char *name)
{
	return xasprintf("%s/%s", tmpdir, name);
}

static struct event_base *base;
static struct mailbox *mb;

static void
setup_loop(void)
{
	setup_tmp();
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	mb = mailbox_new(base);
}

static void
teardown_loop(void)
{
	mailbox_free(mb);
	event_base_free(base);
	mb = NULL;
	base = NULL;
	rm_tmp();
}

#define MAXCB 4096
struct cbrec {
	int calls;		/* how often this callback ran */
	int status;
	int order;		/* when, among all callbacks */
	int row_seen;		/* the row was committed when it ran */
};
static struct cbrec cbs[MAXCB];
static int ncalls;
static sqlite3 *check_db;	/* a second connection, to see commits */

static int
row_exists(sqlite3 *db, const char *id)
{
	sqlite3_stmt *st;
	int found;

	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT 1 FROM decisions "
	    "WHERE id = ?1", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return found;
}

static char cb_ids[MAXCB][37];

static void
on_logged(void *arg, int status)
{
	intptr_t i = (intptr_t)arg;

	cbs[i].calls++;
	cbs[i].status = status;
	cbs[i].order = ncalls++;
	if (check_db != NULL)
		cbs[i].row_seen = row_exists(check_db, cb_ids[i]);
}

static void
reset_cbs(void)
{
	memset(cbs, 0, sizeof(cbs));
	ncalls = 0;
}

/* Run the loop until n callbacks ran, or 10 s. */
static void
pump(int n)
{
	int64_t end = mono_ms() + 10000;

	while (ncalls < n && mono_ms() < end) {
		event_base_loop(base, EVLOOP_NONBLOCK);
		usleep(500);
	}
	event_base_loop(base, EVLOOP_NONBLOCK);
}

/* The outcome of mk_decision(i, ...) at ts, status 200. */
static struct dlog_outcome *
mk_outcome(int i, int64_t ts)
{
	struct dlog_outcome *o = dlog_outcome_new();

	snprintf(o->decision_id, sizeof(o->decision_id),
	    "00000000-0000-4000-8000-%012d", i);
	o->ts_ms = ts;
	o->status = 200;
	return o;
}

static struct dlog_decision *
mk_decision(int i, int64_t ts, int nfp)
{
	struct dlog_decision *d = dlog_decision_new();
	int k;

	snprintf(d->id, sizeof(d->id), "00000000-0000-4000-8000-%012d", i);
	d->ts_ms = ts;
	d->client = xstrdup(i % 2 ? "claims-app" : "hr-portal");
	d->endpoint = xstrdup("/v1/chat/completions");
	d->model = xstrdup("mistral-large-latest");
	d->findings_json = xstrdup(nfp ? "{\"iban\":1,\"national_id.fr_nir\":1}"
	    : "{}");
	d->level = xstrdup(nfp ? "confidential" : "public");
	d->level_rule = xstrdup(nfp ? "finding iban" : "default");
	d->policy_name = xstrdup("hospital-default");
	memset(d->policy_sha256, 'a', 64);
	d->action = xstrdup(i % 7 == 3 ? "deny" : "allow");
	if (i % 7 == 3)
		d->reason = xstrdup("no_allowed_backend: none");
	d->candidates_json = xstrdup("[{\"backend\":\"onprem-vllm\","
	    "\"verdict\":\"allowed\",\"reason\":\"ok\"}]");
	if (i % 7 != 3) {
		d->backend = xstrdup(i % 3 ? "onprem-vllm" : "azure-sweden");
		d->backend_facts_json = xstrdup(i % 3 ?
		    "{\"operator_country\":\"FR\",\"parent_country\":\"FR\","
		    "\"cloud_act\":false}" :
		    "{\"operator_country\":\"IE\",\"parent_country\":\"US\","
		    "\"cloud_act\":true}");
		d->cloud_act = i % 3 ? 0 : 1;
	}
	if (nfp) {
		d->fps = xcalloc((size_t)nfp, sizeof(*d->fps));
		for (k = 0; k < nfp; k++) {
			char v[64];

			d->fps[k].type = xstrdup(k % 2 ? "national_id.fr_nir" :
			    "iban");
			snprintf(v, sizeof(v), "value-%d-%d", i, k);
			sha256_hex(v, strlen(v), d->fps[k].hmac);
		}
		d->nfps = (size_t)nfp;
	}
	return d;
}

static sqlite3 *
open_plain(const char *path)
{
	sqlite3 *db;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static void
exec_ok(sqlite3 *db, const char *sql)
{
	char *e = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &e) != SQLITE_OK)
		ck_abort_msg("%s: %s", sql, e);
}

static int64_t
q_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v = -1;

	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK,
	    "%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static char *
q_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	char *v = NULL;

	ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK,
	    "%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		v = xstrdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return v;
}

/* A log with n decisions (ts 1000 s apart from t0), outcomes for the
 * allowed ones, and a start event; written through the real writer. */
static char *
make_log(int n, int64_t t0)
{
	static int nlogs;
	char err[512], name[32];
	char *path;
	struct dlog *l;
	int i;

	snprintf(name, sizeof(name), "decisions%d.db", ++nlogs);
	path = tpath(name);
	l = dlog_open(path, DUR_STRICT, 5, err, sizeof(err));

	ck_assert_msg(l != NULL, "%s", err);
	dlog_submit_event(l, "start", "{\"policy\":\"hospital-default\","
	    "\"policy_sha256\":\"aaaa\"}");
	for (i = 0; i < n; i++) {
		struct dlog_decision *d = mk_decision(i + 1, t0 + i * 1000,
		    i % 2 ? 2 : 0);

		ck_assert_int_eq(dlog_submit_decision(l, d, NULL, NULL, NULL),
		    0);
		if (i % 7 != 2) {
			struct dlog_outcome *o = dlog_outcome_new();

			snprintf(o->decision_id, sizeof(o->decision_id),
			    "00000000-0000-4000-8000-%012d", i + 1);
			o->ts_ms = t0 + i * 1000 + 300;
			o->status = 200;
			o->attempts = 1;
			o->attempts_json = xstrdup((i + 1) % 3 ?
			    "[{\"backend\":\"onprem-vllm\",\"result\":\"ok\"}]" :
			    "[{\"backend\":\"azure-sweden\",\"result\":\"ok\"}]");
			o->backend = xstrdup((i + 1) % 3 ? "onprem-vllm" :
			    "azure-sweden");
			o->latency_ms = 250;
			o->total_tokens = 42;
			dlog_submit_outcome(l, o);
		}
	}
	dlog_close(l);
	return path;
}

/* ------------------------------------------------------------------ */
/* schema                                                               */

static char *
read_schema_file(void)
{
	const char *dirs[] = { getenv("SOVGATE_SRCDIR"), getenv("srcdir"), ".",
	    ".." };
	size_t i, len;

	for (i = 0; i < ARRAY_LEN(dirs); i++) {
		char *p, *s;

		if (dirs[i] == NULL)
			continue;
		p = xasprintf("%s/sql/schema.sql", dirs[i]);
		s = read_file(p, &len);
		free(p);
		if (s != NULL)
			return s;
	}
	ck_abort_msg("sql/schema.sql not found (set SOVGATE_SRCDIR)");
	return NULL;
}

/* Every schema object as text, for comparing two databases. Tables are
 * described by their columns (ALTER TABLE rewrites CREATE text), the rest
 * by their SQL with whitespace squeezed. */
static char *
describe_schema(sqlite3 *db)
{
	sqlite3_stmt *st, *ti;
	size_t cap = 65536, len = 0;
	char *out = xmalloc(cap);

	out[0] = '\0';
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT type, name, tbl_name, "
	    "coalesce(sql, '') FROM sqlite_master ORDER BY type, name", -1, &st,
	    NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(st, 0);
		const char *name = (const char *)sqlite3_column_text(st, 1);
		const char *sql = (const char *)sqlite3_column_text(st, 3);
		char line[8192];
		int n;

		if (strcmp(type, "table") == 0) {
			char *q = xasprintf("SELECT name, type, \"notnull\", "
			    "coalesce(dflt_value, ''), pk FROM "
			    "pragma_table_info('%s')", name);

			n = snprintf(line, sizeof(line), "table %s:", name);
			ck_assert_int_eq(sqlite3_prepare_v2(db, q, -1, &ti,
			    NULL), SQLITE_OK);
			while (sqlite3_step(ti) == SQLITE_ROW && n < 8000)
				n += snprintf(line + n, sizeof(line) - (size_t)n,
				    " %s %s %d %s %d;", sqlite3_column_text(ti,
				    0), sqlite3_column_text(ti, 1),
				    sqlite3_column_int(ti, 2),
				    sqlite3_column_text(ti, 3),
				    sqlite3_column_int(ti, 4));
			sqlite3_finalize(ti);
			free(q);
		} else {
			const char *p;
			int sp = 0;

			n = snprintf(line, sizeof(line), "%s %s: ", type, name);
			for (p = sql; *p && n < 8000; p++) {
				if (*p == ' ' || *p == '\t' || *p == '\n') {
					sp = 1;
					continue;
				}
				if (sp)
					line[n++] = ' ';
				sp = 0;
				line[n++] = *p;
			}
			line[n] = '\0';
		}
		while (len + (size_t)n + 2 > cap)
			out = xrealloc(out, cap *= 2);
		memcpy(out + len, line, (size_t)n);
		len += (size_t)n;
		out[len++] = '\n';
		out[len] = '\0';
	}
	sqlite3_finalize(st);
	return out;
}

START_TEST(test_schema_file_matches_embedded)
{
	char *file = read_schema_file();
	char err[512];
	char *p1 = tpath("from_file.db"), *p2 = tpath("migrated.db");
	sqlite3 *a, *b;
	char *da, *db_;

	/* While there is one version, migration 1 is the file itself. */
	if (dlog_schema_version() == 1)
		ck_assert_msg(strcmp(file, dlog_migration_sql(1)) == 0,
		    "sql/schema.sql and the schema embedded in src/dlog.c "
		    "differ: regenerate it (see the top of this file)");
	a = open_plain(p1);
	exec_ok(a, file);
	b = dlog_open_db(p2, 1, err, sizeof(err));
	ck_assert_msg(b != NULL, "%s", err);
	da = describe_schema(a);
	db_ = describe_schema(b);
	ck_assert_str_eq(da, db_);
	ck_assert_int_eq(q_int(a, "PRAGMA user_version"),
	    dlog_schema_version());
	ck_assert_int_eq(q_int(b, "PRAGMA user_version"),
	    dlog_schema_version());
	sqlite3_close(a);
	sqlite3_close(b);
	free(da);
	free(db_);
	free(file);
	free(p1);
	free(p2);
}
END_TEST

START_TEST(test_open_creates_wal_and_reopens)
{
	char err[512];
	char *path = tpath("d.db");
	struct dlog *l = dlog_open(path, DUR_STRICT, 5, err, sizeof(err));
	sqlite3 *db;
	char *mode;

	ck_assert_msg(l != NULL, "%s", err);
	ck_assert_int_eq(dlog_healthy(l), 1);
	ck_assert_uint_eq(dlog_queue_depth(l), 0);
	dlog_close(l);
	/* Reopening migrates nothing and keeps the data. */
	l = dlog_open(path, DUR_BATCHED, 5, err, sizeof(err));
	ck_assert_msg(l != NULL, "%s", err);
	dlog_close(l);
	db = dlog_open_db(path, 0, err, sizeof(err));
	ck_assert_msg(db != NULL, "%s", err);
	mode = q_text(db, "PRAGMA journal_mode");
	ck_assert_str_eq(mode, "wal");
	ck_assert_int_eq(q_int(db, "PRAGMA user_version"),
	    dlog_schema_version());
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM chain_state"), 3);
	/* A new log is made with 2 KB pages (fewer WAL bytes per commit). */
	ck_assert_int_eq(q_int(db, "PRAGMA page_size"), 2048);
	free(mode);
	sqlite3_close(db);
	free(path);
}
END_TEST

/* A version-1 log with rows is migrated in place when opened: the rows
 * stay, the backend index goes, and the chain still verifies. */
START_TEST(test_migrates_v1)
{
	char err[512];
	char *path = tpath("d.db");
	sqlite3 *db = open_plain(path);
	struct dlog *l;
	struct dlog_verify_report rep;

	ck_assert_int_eq(dlog_migrate_to(db, 1, err, sizeof(err)), 0);
	ck_assert_int_eq(q_int(db, "PRAGMA user_version"), 1);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM sqlite_master WHERE "
	    "name = 'decisions_backend'"), 1);
	sqlite3_close(db);
	l = dlog_open(path, DUR_STRICT, 5, err, sizeof(err));
	ck_assert_msg(l != NULL, "%s", err);
	reset_cbs();
	ck_assert_int_eq(dlog_submit_decision(l, mk_decision(1, 1000, 1), mb,
	    on_logged, (void *)(intptr_t)0), 0);
	pump(1);
	dlog_close(l);
	db = dlog_open_db(path, 0, err, sizeof(err));
	ck_assert_msg(db != NULL, "%s", err);
	ck_assert_int_eq(q_int(db, "PRAGMA user_version"),
	    dlog_schema_version());
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM sqlite_master WHERE "
	    "name = 'decisions_backend'"), 0);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM decisions"), 1);
	ck_assert_int_eq(dlog_verify(db, &rep, err, sizeof(err)), 0);
	sqlite3_close(db);
	free(path);
}
END_TEST

START_TEST(test_open_errors)
{
	char err[512];
	char *p;
	struct dlog *l;
	sqlite3 *db;
	FILE *f;

	/* a directory that does not exist */
	p = tpath("nodir/sub/d.db");
	l = dlog_open(p, DUR_STRICT, 5, err, sizeof(err));
	ck_assert_ptr_null(l);
	ck_assert_msg(strstr(err, "nodir/sub/d.db") != NULL, "%s", err);
	ck_assert_msg(strstr(err, "directory") != NULL, "%s", err);
	free(p);
	/* missing, for the CLI */
	p = tpath("missing.db");
	db = dlog_open_db(p, 0, err, sizeof(err));
	ck_assert_ptr_null(db);
	ck_assert_msg(strstr(err, "no decision log") != NULL, "%s", err);
	free(p);
	/* not a database */
	p = tpath("garbage.db");
	f = fopen(p, "w");
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < 200; i++)
		fputs("this is not a sqlite database at all ", f);
	fclose(f);
	db = dlog_open_db(p, 0, err, sizeof(err));
	ck_assert_ptr_null(db);
	ck_assert_msg(strstr(err, "corrupt") != NULL, "%s", err);
	l = dlog_open(p, DUR_STRICT, 5, err, sizeof(err));
	ck_assert_ptr_null(l);
	ck_assert_msg(strstr(err, "corrupt") != NULL, "%s", err);
	free(p);
	/* some other application's database */
	p = tpath("other.db");
	db = open_plain(p);
	exec_ok(db, "CREATE TABLE t(x)");
	sqlite3_close(db);
	l = dlog_open(p, DUR_STRICT, 5, err, sizeof(err));
	ck_assert_ptr_null(l);
	ck_assert_msg(strstr(err, "not a sovgate decision log") != NULL, "%s",
	    err);
	db = dlog_open_db(p, 0, err, sizeof(err));
	ck_assert_ptr_null(db);
	ck_assert_msg(strstr(err, "not a sovgate decision log") != NULL, "%s",
	    err);
	free(p);
	/* a newer schema */
	p = tpath("newer.db");
	l = dlog_open(p, DUR_STRICT, 5, err, sizeof(err));
	ck_assert_ptr_nonnull(l);
	dlog_close(l);
	db = open_plain(p);
	exec_ok(db, "PRAGMA user_version = 99");
	sqlite3_close(db);
	l = dlog_open(p, DUR_STRICT, 5, err, sizeof(err));
	ck_assert_ptr_null(l);
	ck_assert_msg(strstr(err, "newer") != NULL, "%s", err);
	free(p);
}
END_TEST

/* ------------------------------------------------------------------ */
/* the writer                                                           */

START_TEST(test_strict_commits_before_callback)
{
	char err[512];
	char *path = tpath("d.db");
	struct dlog *l = dlog_open(path, DUR_STRICT, 5, err, sizeof(err));
	int i, n = 300;
	sqlite3 *db;

	ck_assert_msg(l != NULL, "%s", err);
	check_db = dlog_open_db(path, 0, err, sizeof(err));
	ck_assert_ptr_nonnull(check_db);
	reset_cbs();
	for (i = 0; i < n; i++) {
		struct dlog_decision *d = mk_decision(i, 1000 + i, i % 3);

		memcpy(cb_ids[i], d->id, 37);
		ck_assert_int_eq(dlog_submit_decision(l, d, mb, on_logged,
		    (void *)(intptr_t)i), 0);
	}
	pump(n);
	ck_assert_int_eq(ncalls, n);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(cbs[i].calls, 1);
		ck_assert_int_eq(cbs[i].status, 1);
		/* in submission order, and already durable */
		ck_assert_int_eq(cbs[i].order, i);
		ck_assert_msg(cbs[i].row_seen, "decision %d called back before "
		    "its row was committed", i);
	}
	dlog_close(l);
	/* nothing more after close */
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(ncalls, n);
	sqlite3_close(check_db);
	check_db = NULL;

	db = dlog_open_db(path, 0, err, sizeof(err));
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM decisions"), n);
	/* seq order is submission order */
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM decisions WHERE "
	    "ts_ms <> 1000 + seq - 1"), 0);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM fingerprints"),
	    (n / 3) * 1 + (n / 3) * 2);
	sqlite3_close(db);
	free(path);
}
END_TEST

/*
 * The writer keeps the chain heads of its last commit. Another connection
 * appending to a chain in between (`log prune` records an event) must
 * make it read them again, or the chain forks.
 */
START_TEST(test_heads_follow_other_writers)
{
	char err[512];
	char *path = tpath("heads.db");
	struct dlog *l = dlog_open(path, DUR_STRICT, 5, err, sizeof(err));
	struct dlog_verify_report rep;
	sqlite3 *db;
	int round;

	ck_assert_msg(l != NULL, "%s", err);
	db = dlog_open_db(path, 1, err, sizeof(err));
	ck_assert_msg(db != NULL, "%s", err);
	reset_cbs();
	for (round = 0; round < 3; round++) {
		struct dlog_decision *d = mk_decision(round + 1, 1000 + round,
		    0);

		dlog_submit_event(l, "reload", "{}");
		ck_assert_int_eq(dlog_submit_decision(l, d, mb, on_logged,
		    (void *)(intptr_t)round), 0);
		pump(round + 1);	/* committed: the writer has its heads */
		ck_assert_int_eq(cbs[round].status, 1);
		ck_assert_int_eq(dlog_append_event_db(db, 2000 + round,
		    "prune", "{}", err, sizeof(err)), 0);
	}
	dlog_close(l);
	ck_assert_int_eq(dlog_verify(db, &rep, err, sizeof(err)), 0);
	ck_assert_int_eq(rep.rows[0], 3);
	ck_assert_int_eq(rep.rows[2], 6);
	sqlite3_close(db);
	free(path);
}
END_TEST

START_TEST(test_group_commit)
{
	char err[512];
	char *path = tpath("d.db");
	struct dlog *l = dlog_open(path, DUR_STRICT, 5, err, sizeof(err));
	sqlite3 *locker;
	int i, n = 50;
	uint64_t batches, rows;

	ck_assert_msg(l != NULL, "%s", err);
	/* Hold the write lock so the decisions pile up behind the first
	 * batch; once it is released they must go in one more commit. */
	locker = open_plain(path);
	exec_ok(locker, "BEGIN IMMEDIATE");
	reset_cbs();
	for (i = 0; i < n; i++) {
		struct dlog_decision *d = mk_decision(i, 1000 + i, 0);

		ck_assert_int_eq(dlog_submit_decision(l, d, mb, on_logged,
		    (void *)(intptr_t)i), 0);
		if (i == 0)
			usleep(50000);	/* the writer takes #0 alone */
	}
	usleep(100000);
	ck_assert_int_eq(ncalls, 0);	/* nothing is durable yet */
	exec_ok(locker, "COMMIT");
	pump(n);
	ck_assert_int_eq(ncalls, n);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(cbs[i].calls, 1);
		ck_assert_int_eq(cbs[i].status, 1);
		ck_assert_int_eq(cbs[i].order, i);
	}
	dlog_stats(l, &batches, &rows);
	ck_assert_uint_eq(rows, (uint64_t)n);
	ck_assert_msg(batches <= 3, "%llu transactions for %d decisions",
	    (unsigned long long)batches, n);
	dlog_close(l);
	sqlite3_close(locker);
	free(path);
}
END_TEST

/* Nothing waits for an outcome: in strict mode too it waits for the batch
 * interval (or the close), and decisions commit without it. */
START_TEST(test_strict_outcome_waits_its_interval)
{
	char err[512];
	char *path = tpath("d.db");
	struct dlog *l = dlog_open(path, DUR_STRICT, 60000, err, sizeof(err));
	uint64_t batches, rows;
	sqlite3 *db;

	ck_assert_msg(l != NULL, "%s", err);
	dlog_submit_outcome(l, mk_outcome(1, 1000));
	usleep(100000);
	dlog_stats(l, &batches, &rows);
	ck_assert_uint_eq(rows, 0);	/* not worth a commit of its own */
	ck_assert_uint_eq(dlog_queue_depth(l), 1);
	reset_cbs();
	ck_assert_int_eq(dlog_submit_decision(l, mk_decision(1, 1001, 0), mb,
	    on_logged, (void *)(intptr_t)0), 0);
	pump(1);
	ck_assert_int_eq(cbs[0].status, 1);
	dlog_stats(l, &batches, &rows);
	ck_assert_uint_eq(batches, 1);
	ck_assert_uint_eq(rows, 1);	/* the decision alone */
	dlog_close(l);			/* the close writes the outcome */
	db = dlog_open_db(path, 0, err, sizeof(err));
	ck_assert_msg(db != NULL, "%s", err);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM outcomes"), 1);
	sqlite3_close(db);
	free(path);
}
END_TEST

/* With a short interval the outcome follows on its own. */
START_TEST(test_outcome_written_at_interval)
{
	char err[512];
	char *path = tpath("d.db");
	struct dlog *l = dlog_open(path, DUR_STRICT, 20, err, sizeof(err));
	uint64_t batches, rows = 0;
	int i;

	ck_assert_msg(l != NULL, "%s", err);
	dlog_submit_outcome(l, mk_outcome(1, 1000));
	for (i = 0; i < 200 && rows == 0; i++) {
		usleep(10000);
		dlog_stats(l, &batches, &rows);
	}
	ck_assert_uint_eq(rows, 1);
	ck_assert_uint_eq(dlog_queue_depth(l), 0);
	dlog_close(l);
	free(path);
}
END_TEST

/* A worker's batch goes to the writer whole: its decisions in one
 * transaction, callbacks in order (its outcomes follow at the interval,
 * here at the close); batched mode answers at submission; no log refuses
 * (cb 0). */
START_TEST(test_batch_submit)
{
	char err[512];
	char *path = tpath("d.db");
	struct dlog *l = dlog_open(path, DUR_STRICT, 60000, err, sizeof(err));
	struct dlog_batch *b = dlog_batch_new();
	uint64_t batches, rows;
	sqlite3 *db;
	int i, n = 20;

	ck_assert_msg(l != NULL, "%s", err);
	reset_cbs();
	for (i = 0; i < n; i++) {
		struct dlog_outcome *o = dlog_outcome_new();
		struct dlog_decision *d = mk_decision(i, 1000 + i, 1);

		memcpy(o->decision_id, d->id, 37);
		o->ts_ms = 2000 + i;
		dlog_batch_decision(b, d, mb, on_logged, (void *)(intptr_t)i);
		dlog_batch_outcome(b, o);
	}
	ck_assert_uint_eq(dlog_batch_size(b), 2 * (size_t)n);
	usleep(20000);
	ck_assert_int_eq(ncalls, 0);	/* nothing before submission */
	dlog_batch_submit(l, b);
	ck_assert_uint_eq(dlog_batch_size(b), 0);
	pump(n);
	ck_assert_int_eq(ncalls, n);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(cbs[i].calls, 1);
		ck_assert_int_eq(cbs[i].status, 1);
		ck_assert_int_eq(cbs[i].order, i);
	}
	dlog_stats(l, &batches, &rows);
	ck_assert_uint_eq(batches, 1);
	ck_assert_uint_eq(rows, (uint64_t)n);
	dlog_close(l);
	db = dlog_open_db(path, 0, err, sizeof(err));
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM outcomes o JOIN "
	    "decisions d ON d.id = o.decision_id"), n);
	sqlite3_close(db);

	/* no log: every decision is refused, through its callback */
	reset_cbs();
	dlog_batch_decision(b, mk_decision(0, 1, 0), mb, on_logged,
	    (void *)(intptr_t)0);
	dlog_batch_outcome(b, dlog_outcome_new());
	dlog_batch_submit(NULL, b);
	pump(1);
	ck_assert_int_eq(cbs[0].calls, 1);
	ck_assert_int_eq(cbs[0].status, 0);

	/* batched durability: answered once queued */
	free(path);
	path = tpath("b.db");
	l = dlog_open(path, DUR_BATCHED, 20, err, sizeof(err));
	ck_assert_msg(l != NULL, "%s", err);
	reset_cbs();
	for (i = 0; i < 3; i++)
		dlog_batch_decision(b, mk_decision(i, i, 0), mb, on_logged,
		    (void *)(intptr_t)i);
	dlog_batch_submit(l, b);
	pump(3);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(cbs[i].calls, 1);
		ck_assert_int_eq(cbs[i].status, 1);
	}
	dlog_close(l);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(ncalls, 3);	/* the writer does not answer again */
	dlog_batch_free(b);
	dlog_batch_free(NULL);
	free(path);
}
END_TEST

/* Records are packed into one block at submission: every field and
 * fingerprint must arrive in the database as it was set. */
START_TEST(test_packed_records_round_trip)
{
	char err[512], sql[256], *v;
	char *path = tpath("d.db");
	struct dlog *l = dlog_open(path, DUR_STRICT, 5, err, sizeof(err));
	struct dlog_batch *b = dlog_batch_new();
	struct dlog_decision *d = mk_decision(5, 4242, 3), *want;
	struct dlog_outcome *o = dlog_outcome_new();
	sqlite3 *db;
	size_t i;

	ck_assert_msg(l != NULL, "%s", err);
	d->declared_level = xstrdup("internal");
	d->shadow_json = xstrdup("{\"level\":\"internal\"}");
	memcpy(o->decision_id, d->id, 37);
	o->status = 200;
	o->attempts_json = xstrdup("[{\"backend\":\"onprem-vllm\"}]");
	o->backend = xstrdup("onprem-vllm");
	o->error = xstrdup("none really");
	reset_cbs();
	dlog_batch_decision(b, d, mb, on_logged, (void *)(intptr_t)0);
	dlog_batch_outcome(b, o);
	dlog_batch_submit(l, b);
	pump(1);
	ck_assert_int_eq(cbs[0].status, 1);
	dlog_close(l);
	dlog_batch_free(b);

	want = mk_decision(5, 4242, 3);
	db = dlog_open_db(path, 0, err, sizeof(err));
#define SAME(col, val) do { \
	v = q_text(db, "SELECT " col " FROM decisions"); \
	ck_assert_str_eq(v, val); \
	free(v); \
} while (0)
	SAME("client", want->client);
	SAME("endpoint", want->endpoint);
	SAME("model", want->model);
	SAME("findings_json", want->findings_json);
	SAME("declared_level", "internal");
	SAME("level", want->level);
	SAME("level_rule", want->level_rule);
	SAME("policy_name", want->policy_name);
	SAME("action", want->action);
	SAME("candidates_json", want->candidates_json);
	SAME("backend", want->backend);
	SAME("backend_facts_json", want->backend_facts_json);
	SAME("shadow_json", "{\"level\":\"internal\"}");
#undef SAME
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM fingerprints"),
	    (int)want->nfps);
	for (i = 0; i < want->nfps; i++) {
		/* stored sorted, so look each one up */
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM fingerprints "
		    "WHERE type = '%s' AND hmac = '%s'", want->fps[i].type,
		    want->fps[i].hmac);
		ck_assert_int_eq(q_int(db, sql), 1);
	}
	v = q_text(db, "SELECT attempts_json || '|' || backend || '|' || "
	    "error FROM outcomes");
	ck_assert_str_eq(v, "[{\"backend\":\"onprem-vllm\"}]|onprem-vllm|"
	    "none really");
	free(v);
	sqlite3_close(db);
	dlog_decision_free(want);
	free(path);
}
END_TEST

static long
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* Under steady writes the WAL must be rewound, not grow without bound: a
 * PASSIVE checkpoint alone never lets SQLite start it over. Two phases of
 * one-decision commits with a pause between them: the second must reuse
 * the file the first wrote. */
START_TEST(test_wal_is_rewound)
{
	char err[512];
	char *path = tpath("d.db");
	char *wal = tpath("d.db-wal");
	struct dlog *l = dlog_open(path, DUR_STRICT, 5, err, sizeof(err));
	long s1, s2;
	int i, phase, n = MAXCB < 1500 ? MAXCB : 1500;

	ck_assert_msg(l != NULL, "%s", err);
	for (phase = 0; phase < 2; phase++) {
		reset_cbs();
		for (i = 0; i < n; i++) {
			ck_assert_int_eq(dlog_submit_decision(l,
			    mk_decision(phase * n + i, i, 0), mb, on_logged,
			    (void *)(intptr_t)i), 0);
			pump(i + 1);	/* one commit each, like a client */
		}
		if (phase == 0) {
			s1 = file_size(wal);
			usleep(700000);	/* the checkpointer's turn */
		}
	}
	s2 = file_size(wal);
	ck_assert_msg(s1 > 1000L * 2048, "first phase wrote only %ld bytes "
	    "of WAL", s1);
	ck_assert_msg(s2 < s1 + s1 / 4, "WAL grew from %ld to %ld bytes: "
	    "it was not rewound", s1, s2);
	dlog_close(l);
	free(wal);
	free(path);
}
END_TEST

START_TEST(test_batched_answers_at_once)
{
	char err[512];
	char *path = tpath("d.db");
	struct dlog *l = dlog_open(path, DUR_BATCHED, 20, err, sizeof(err));
	sqlite3 *db;
	int i, n = 100;

	ck_assert_msg(l != NULL, "%s", err);
	reset_cbs();
	for (i = 0; i < n; i++)
		ck_assert_int_eq(dlog_submit_decision(l, mk_decision(i, i, 1),
		    mb, on_logged, (void *)(intptr_t)i), 0);
	pump(n);
	ck_assert_int_eq(ncalls, n);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(cbs[i].calls, 1);
		ck_assert_int_eq(cbs[i].status, 1);
	}
	/* committed within a few batch intervals */
	db = dlog_open_db(path, 0, err, sizeof(err));
	for (i = 0; i < 200 && q_int(db, "SELECT count(*) FROM decisions") <
	    n; i++)
		usleep(10000);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM decisions"), n);
	sqlite3_close(db);
	dlog_close(l);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(ncalls, n);	/* no second call at close */
	free(path);
}
END_TEST

START_TEST(test_close_drains)
{
	char err[512];
	char *path = tpath("d.db");
	struct dlog *l = dlog_open(path, DUR_STRICT, 5, err, sizeof(err));
	sqlite3 *db;
	int i, n = 500;

	ck_assert_msg(l != NULL, "%s", err);
	reset_cbs();
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(dlog_submit_decision(l, mk_decision(i, i, 0),
		    mb, on_logged, (void *)(intptr_t)i), 0);
		if (i % 5 == 0)
			dlog_submit_event(l, "reload", "{\"result\":"
			    "\"accepted\"}");
	}
	dlog_close(l);	/* before any callback ran */
	pump(n);
	ck_assert_int_eq(ncalls, n);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(cbs[i].calls, 1);
		ck_assert_int_eq(cbs[i].status, 1);
	}
	db = dlog_open_db(path, 0, err, sizeof(err));
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM decisions"), n);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM events"), n / 5);
	sqlite3_close(db);
	free(path);
}
END_TEST

START_TEST(test_failure_and_recovery)
{
	char err[512];
	char *path = tpath("d.db");
	struct dlog *l = dlog_open(path, DUR_STRICT, 5, err, sizeof(err));
	sqlite3 *locker;
	int i;

	ck_assert_msg(l != NULL, "%s", err);
	dlog_set_busy_timeout_ms(l, 100);
	/* Another process holds the write lock past the busy timeout. */
	locker = open_plain(path);
	exec_ok(locker, "BEGIN IMMEDIATE");
	reset_cbs();
	for (i = 0; i < 5; i++) {
		struct dlog_outcome *o = dlog_outcome_new();

		ck_assert_int_eq(dlog_submit_decision(l, mk_decision(i, i, 1),
		    mb, on_logged, (void *)(intptr_t)i), 0);
		snprintf(o->decision_id, sizeof(o->decision_id), "x");
		dlog_submit_outcome(l, o);
	}
	pump(5);
	ck_assert_int_eq(ncalls, 5);
	for (i = 0; i < 5; i++) {
		ck_assert_int_eq(cbs[i].calls, 1);
		ck_assert_int_eq(cbs[i].status, 0);	/* -> 503 */
	}
	ck_assert_int_eq(dlog_healthy(l), 0);
	dlog_last_error(l, err, sizeof(err));
	ck_assert_msg(strstr(err, "locked") != NULL, "%s", err);
	/* The outcomes' own transaction fails the same way, a little later. */
	for (i = 0; i < 300 && dlog_dropped(l) < 5; i++)
		usleep(10000);
	ck_assert_uint_ge(dlog_dropped(l), 5);
	/* While failing, new decisions are refused at once (and freed). */
	ck_assert_int_eq(dlog_submit_decision(l, mk_decision(9, 9, 1), mb,
	    on_logged, (void *)(intptr_t)9), -1);
	/* The lock goes away: the writer notices by itself. */
	exec_ok(locker, "ROLLBACK");
	for (i = 0; i < 300 && !dlog_healthy(l); i++)
		usleep(10000);
	ck_assert_int_eq(dlog_healthy(l), 1);
	ck_assert_int_eq(dlog_submit_decision(l, mk_decision(10, 10, 1), mb,
	    on_logged, (void *)(intptr_t)10), 0);
	pump(6);
	ck_assert_int_eq(cbs[10].calls, 1);
	ck_assert_int_eq(cbs[10].status, 1);
	ck_assert_int_eq(cbs[9].calls, 0);
	dlog_close(l);
	ck_assert_int_eq(q_int(locker, "SELECT count(*) FROM decisions"), 1);
	sqlite3_close(locker);
	free(path);
}
END_TEST

START_TEST(test_duplicate_id_fails_only_that_row)
{
	char err[512];
	char *path = tpath("d.db");
	struct dlog *l = dlog_open(path, DUR_STRICT, 5, err, sizeof(err));
	sqlite3 *db;
	struct dlog_verify_report rep;

	ck_assert_msg(l != NULL, "%s", err);
	reset_cbs();
	ck_assert_int_eq(dlog_submit_decision(l, mk_decision(1, 1, 2), mb,
	    on_logged, (void *)(intptr_t)0), 0);
	ck_assert_int_eq(dlog_submit_decision(l, mk_decision(1, 2, 2), mb,
	    on_logged, (void *)(intptr_t)1), 0);
	ck_assert_int_eq(dlog_submit_decision(l, mk_decision(2, 3, 2), mb,
	    on_logged, (void *)(intptr_t)2), 0);
	pump(3);
	ck_assert_int_eq(cbs[0].status, 1);
	ck_assert_int_eq(cbs[1].status, 0);
	ck_assert_int_eq(cbs[2].status, 1);
	ck_assert_int_eq(dlog_healthy(l), 1);
	dlog_close(l);
	db = dlog_open_db(path, 0, err, sizeof(err));
	ck_assert_int_eq(dlog_verify(db, &rep, err, sizeof(err)), 0);
	ck_assert_int_eq(rep.rows[0], 2);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM fingerprints"), 4);
	sqlite3_close(db);
	free(path);
}
END_TEST

/* ------------------------------------------------------------------ */
/* the chains                                                           */

/* The documented encoding, written again independently of dlog.c. */
static void
enc_col(EVP_MD_CTX *c, sqlite3_stmt *st, int i)
{
	char b[64];
	int n;

	switch (sqlite3_column_type(st, i)) {
	case SQLITE_NULL:
		EVP_DigestUpdate(c, "n", 1);
		break;
	case SQLITE_INTEGER:
		n = snprintf(b, sizeof(b), "i%lld;",
		    (long long)sqlite3_column_int64(st, i));
		EVP_DigestUpdate(c, b, (size_t)n);
		break;
	default:
		n = snprintf(b, sizeof(b), "t%d:", sqlite3_column_bytes(st, i));
		EVP_DigestUpdate(c, b, (size_t)n);
		EVP_DigestUpdate(c, sqlite3_column_text(st, i),
		    (size_t)sqlite3_column_bytes(st, i));
	}
}

/* row_hash of decision seq as the schema's comment defines it. */
static void
spec_decision_hash(sqlite3 *db, int64_t seq, char out[65])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	sqlite3_stmt *st, *fp;
	unsigned char md[32];
	unsigned int mdlen;
	char b[32];
	int i, n;
	int64_t count;

	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT prev_hash, id, ts_ms, "
	    "client, endpoint, model, findings_json, declared_level, level, "
	    "level_rule, policy_name, policy_sha256, action, reason, "
	    "candidates_json, backend, backend_facts_json, cloud_act, "
	    "shadow_json FROM decisions WHERE seq = ?1", -1, &st, NULL),
	    SQLITE_OK);
	sqlite3_bind_int64(st, 1, seq);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	EVP_DigestInit_ex(c, EVP_sha256(), NULL);
	EVP_DigestUpdate(c, "sovgate-chain-v1\ndecisions\n", 27);
	EVP_DigestUpdate(c, sqlite3_column_text(st, 0), 64);
	for (i = 1; i < 19; i++)
		enc_col(c, st, i);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT type, hmac FROM "
	    "fingerprints WHERE decision_id = ?1 ORDER BY type, hmac", -1, &fp,
	    NULL), SQLITE_OK);
	sqlite3_bind_text(fp, 1, (const char *)sqlite3_column_text(st, 1), -1,
	    SQLITE_TRANSIENT);
	for (count = 0; sqlite3_step(fp) == SQLITE_ROW; count++)
		;
	n = snprintf(b, sizeof(b), "i%lld;", (long long)count);
	EVP_DigestUpdate(c, b, (size_t)n);
	sqlite3_reset(fp);
	while (sqlite3_step(fp) == SQLITE_ROW) {
		enc_col(c, fp, 0);
		enc_col(c, fp, 1);
	}
	sqlite3_finalize(fp);
	sqlite3_finalize(st);
	EVP_DigestFinal_ex(c, md, &mdlen);
	EVP_MD_CTX_free(c);
	hex_encode(md, 32, out);
}

START_TEST(test_chain_linkage_and_encoding)
{
	char err[512];
	char *path = make_log(20, 1000000);
	sqlite3 *db = dlog_open_db(path, 0, err, sizeof(err));
	sqlite3_stmt *st;
	char prev[65] = "0000000000000000000000000000000000000000000000000000"
	    "000000000000";
	struct dlog_verify_report rep;
	int64_t seq = 0;

	ck_assert_msg(db != NULL, "%s", err);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT seq, prev_hash, "
	    "row_hash FROM decisions ORDER BY seq", -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		char h[65];

		ck_assert_int_eq(sqlite3_column_int64(st, 0), ++seq);
		ck_assert_str_eq((const char *)sqlite3_column_text(st, 1), prev);
		spec_decision_hash(db, seq, h);
		ck_assert_str_eq((const char *)sqlite3_column_text(st, 2), h);
		snprintf(prev, sizeof(prev), "%s", h);
	}
	sqlite3_finalize(st);
	ck_assert_int_eq(seq, 20);
	ck_assert_int_eq(dlog_verify(db, &rep, err, sizeof(err)), 0);
	ck_assert_int_eq(rep.rows[0], 20);
	ck_assert_int_eq(rep.rows[1], 17);
	ck_assert_int_eq(rep.rows[2], 1);
	ck_assert_str_eq(rep.head, prev);
	sqlite3_close(db);
	free(path);
}
END_TEST

/* Tamper through a plain connection, then verify; returns the report. */
static int
tamper_and_verify(int nrows, const char *sql, struct dlog_verify_report *rep)
{
	char err[512];
	char *path = make_log(nrows, 1000000);
	sqlite3 *db = open_plain(path);
	int rc;

	if (sql != NULL)
		exec_ok(db, sql);
	sqlite3_close(db);
	db = dlog_open_db(path, 0, err, sizeof(err));
	ck_assert_msg(db != NULL, "%s", err);
	rc = dlog_verify(db, rep, err, sizeof(err));
	ck_assert_msg(rc >= 0, "%s", err);
	sqlite3_close(db);
	free(path);
	return rc;
}

#define ID(n) "00000000-0000-4000-8000-0000000000" #n

START_TEST(test_tamper_field)
{
	struct dlog_verify_report rep;

	ck_assert_int_eq(tamper_and_verify(10, "UPDATE decisions SET level = "
	    "'public' WHERE seq = 4", &rep), 1);
	ck_assert_str_eq(rep.chain, "decisions");
	ck_assert_int_eq(rep.bad_seq, 4);
	ck_assert_str_eq(rep.bad_label, ID(04));
	ck_assert_msg(strstr(rep.problem, "modified") != NULL, "%s",
	    rep.problem);
	/* a type change is a change too */
	ck_assert_int_eq(tamper_and_verify(10, "UPDATE decisions SET cloud_act "
	    "= '0' WHERE seq = 6", &rep), 1);
	ck_assert_int_eq(rep.bad_seq, 6);
	/* so is a fingerprint removed, or added */
	ck_assert_int_eq(tamper_and_verify(10, "DELETE FROM fingerprints WHERE "
	    "rowid = (SELECT min(rowid) FROM fingerprints WHERE decision_id = '"
	    ID(08) "')", &rep), 1);
	ck_assert_int_eq(rep.bad_seq, 8);
	ck_assert_int_eq(tamper_and_verify(10, "INSERT INTO fingerprints VALUES"
	    "('" ID(03) "', 'email', 'ab')", &rep), 1);
	ck_assert_int_eq(rep.bad_seq, 3);
	ck_assert_int_eq(tamper_and_verify(10, "INSERT INTO fingerprints VALUES"
	    "('nobody', 'email', 'ab')", &rep), 1);
	ck_assert_str_eq(rep.chain, "fingerprints");
	/* outcomes and events are chained as well */
	ck_assert_int_eq(tamper_and_verify(10, "UPDATE outcomes SET backend = "
	    "'onprem-vllm', attempts_json = '[]' WHERE seq = 3", &rep), 1);
	ck_assert_str_eq(rep.chain, "outcomes");
	ck_assert_int_eq(rep.bad_seq, 3);
	ck_assert_int_eq(tamper_and_verify(3, "UPDATE events SET detail_json = "
	    "'{}'", &rep), 1);
	ck_assert_str_eq(rep.chain, "events");
	ck_assert_int_eq(rep.bad_seq, 1);
	/* untouched */
	ck_assert_int_eq(tamper_and_verify(10, NULL, &rep), 0);
}
END_TEST

START_TEST(test_tamper_delete)
{
	struct dlog_verify_report rep;

	ck_assert_int_eq(tamper_and_verify(10, "DELETE FROM decisions WHERE "
	    "seq = 5", &rep), 1);
	/* named: the row after the hole, which no longer links */
	ck_assert_int_eq(rep.bad_seq, 6);
	ck_assert_str_eq(rep.bad_label, ID(06));
	ck_assert_msg(strstr(rep.problem, "deleted") != NULL, "%s",
	    rep.problem);
	ck_assert_int_eq(tamper_and_verify(10, "DELETE FROM decisions WHERE "
	    "seq = 1", &rep), 1);
	ck_assert_int_eq(rep.bad_seq, 2);
	ck_assert_msg(strstr(rep.problem, "deleted") != NULL, "%s",
	    rep.problem);
	/* the newest rows: caught by the recorded head */
	ck_assert_int_eq(tamper_and_verify(10, "DELETE FROM decisions WHERE "
	    "seq >= 9", &rep), 1);
	ck_assert_msg(strstr(rep.problem, "after seq 8 were deleted") != NULL,
	    "%s", rep.problem);
	ck_assert_int_eq(tamper_and_verify(10, "DELETE FROM decisions", &rep),
	    1);
	ck_assert_msg(strstr(rep.problem, "deleted") != NULL, "%s",
	    rep.problem);
}
END_TEST

/* Insert a forged decision after seq `after`, with a correct prev_hash
 * and row_hash (someone who knows the encoding), renumbering the rest. */
static void
forge_insert(const char *path, int after, int move_head)
{
	sqlite3 *db = open_plain(path);
	char sql[1024], h[65];
	char *prev;

	exec_ok(db, "BEGIN");
	snprintf(sql, sizeof(sql), "UPDATE decisions SET seq = -seq WHERE seq "
	    "> %d", after);
	exec_ok(db, sql);
	snprintf(sql, sizeof(sql), "UPDATE decisions SET seq = 1 - seq WHERE "
	    "seq < 0");
	exec_ok(db, sql);
	snprintf(sql, sizeof(sql), "SELECT row_hash FROM decisions WHERE seq = "
	    "%d", after);
	prev = q_text(db, sql);
	snprintf(sql, sizeof(sql), "INSERT INTO decisions (seq, id, ts_ms, "
	    "client, findings_json, level, action, backend, cloud_act, "
	    "prev_hash, row_hash) VALUES (%d, 'forged-0000', 5, 'claims-app', "
	    "'{}', 'public', 'allow', 'onprem-vllm', 0, '%s', 'x')", after + 1,
	    prev);
	exec_ok(db, sql);
	spec_decision_hash(db, after + 1, h);
	snprintf(sql, sizeof(sql), "UPDATE decisions SET row_hash = '%s' WHERE "
	    "seq = %d", h, after + 1);
	exec_ok(db, sql);
	if (move_head) {
		snprintf(sql, sizeof(sql), "UPDATE chain_state SET head_seq = "
		    "head_seq + 1 WHERE chain = 'decisions'");
		exec_ok(db, sql);
	}
	exec_ok(db, "COMMIT");
	free(prev);
	sqlite3_close(db);
}

START_TEST(test_tamper_insert)
{
	char err[512];
	char *path = make_log(10, 1000000);
	sqlite3 *db;
	struct dlog_verify_report rep;

	forge_insert(path, 4, 1);
	db = dlog_open_db(path, 0, err, sizeof(err));
	ck_assert_int_eq(dlog_verify(db, &rep, err, sizeof(err)), 1);
	ck_assert_int_eq(rep.bad_seq, 5);
	ck_assert_str_eq(rep.bad_label, "forged-0000");
	ck_assert_msg(strstr(rep.problem, "inserted") != NULL, "%s",
	    rep.problem);
	sqlite3_close(db);
	free(path);

	/* a row with a made-up hash is caught by its own hash */
	ck_assert_int_eq(tamper_and_verify(10, "INSERT INTO decisions (seq, id, "
	    "ts_ms, action, prev_hash, row_hash) VALUES (100, 'late', 1, "
	    "'allow', 'x', 'y')", &rep), 1);
	ck_assert_int_eq(rep.bad_seq, 100);
	ck_assert_str_eq(rep.bad_label, "late");
}
END_TEST

START_TEST(test_tamper_reorder)
{
	struct dlog_verify_report rep;

	/* swap rows 3 and 4 */
	ck_assert_int_eq(tamper_and_verify(10, "UPDATE decisions SET seq = 100 "
	    "WHERE seq = 3; UPDATE decisions SET seq = 3 WHERE seq = 4; "
	    "UPDATE decisions SET seq = 4 WHERE seq = 100", &rep), 1);
	ck_assert_int_eq(rep.bad_seq, 3);
	ck_assert_str_eq(rep.bad_label, ID(04));
	ck_assert_msg(strstr(rep.problem, "order") != NULL, "%s", rep.problem);
}
END_TEST

START_TEST(test_prune)
{
	char err[512];
	char *path = make_log(20, 1000000);
	sqlite3 *db = dlog_open_db(path, 1, err, sizeof(err));
	struct dlog_verify_report rep;
	struct dlog_prune_report pr;
	char *detail;
	struct dlog *l;

	ck_assert_msg(db != NULL, "%s", err);
	/* rows 1..8 have ts < 1000000 + 8000 */
	ck_assert_int_eq(dlog_prune(db, 1000000 + 8000, &pr, err, sizeof(err)),
	    0);
	ck_assert_int_eq(pr.rows[0], 8);
	ck_assert_int_eq(q_int(db, "SELECT min(seq) FROM decisions"), 9);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM fingerprints WHERE "
	    "decision_id NOT IN (SELECT id FROM decisions)"), 0);
	ck_assert_int_eq(q_int(db, "SELECT anchor_seq FROM chain_state WHERE "
	    "chain = 'decisions'"), 8);
	detail = q_text(db, "SELECT detail_json FROM events WHERE kind = "
	    "'prune'");
	ck_assert_ptr_nonnull(detail);
	ck_assert_msg(strstr(detail, "\"decisions\":8") != NULL, "%s", detail);
	free(detail);
	ck_assert_int_eq(dlog_verify(db, &rep, err, sizeof(err)), 0);
	ck_assert_int_eq(rep.rows[0], 12);
	/* pruning again to the same time deletes nothing */
	ck_assert_int_eq(dlog_prune(db, 1000000 + 8000, &pr, err, sizeof(err)),
	    0);
	ck_assert_int_eq(pr.rows[0], 0);
	sqlite3_close(db);
	/* the gateway keeps appending to the pruned chains */
	l = dlog_open(path, DUR_STRICT, 5, err, sizeof(err));
	ck_assert_ptr_nonnull(l);
	dlog_submit_decision(l, mk_decision(77, 5000000, 2), NULL, NULL, NULL);
	dlog_submit_event(l, "stop", NULL);
	dlog_close(l);
	db = dlog_open_db(path, 1, err, sizeof(err));
	ck_assert_int_eq(dlog_verify(db, &rep, err, sizeof(err)), 0);
	ck_assert_int_eq(rep.rows[0], 13);
	/* a deleted anchor-side row after prune is still caught */
	exec_ok(db, "DELETE FROM decisions WHERE seq = 9");
	ck_assert_int_eq(dlog_verify(db, &rep, err, sizeof(err)), 1);
	ck_assert_int_eq(rep.bad_seq, 10);
	/* and a log that does not verify is not pruned */
	ck_assert_int_eq(dlog_prune(db, 1000000 + 15000, &pr, err, sizeof(err)),
	    1);
	ck_assert_msg(strstr(err, "does not verify") != NULL, "%s", err);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM decisions"), 12);
	/* everything */
	sqlite3_close(db);
	free(path);
}
END_TEST

START_TEST(test_prune_in_chunks)
{
	char err[512];
	char *path = make_log(4600, 1000000);
	sqlite3 *db = dlog_open_db(path, 1, err, sizeof(err));
	struct dlog_verify_report rep;
	struct dlog_prune_report pr;
	struct stat st;

	/* a new log is not world-readable */
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0007, 0);
	/* more rows than one prune transaction takes */
	ck_assert_int_eq(dlog_prune(db, 1000000 + 4500 * 1000, &pr, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(pr.rows[0], 4500);
	ck_assert_int_eq(q_int(db, "SELECT anchor_seq FROM chain_state WHERE "
	    "chain = 'decisions'"), 4500);
	ck_assert_int_eq(dlog_verify(db, &rep, err, sizeof(err)), 0);
	ck_assert_int_eq(rep.rows[0], 100);
	sqlite3_close(db);
	free(path);
}
END_TEST

START_TEST(test_prune_all)
{
	char err[512];
	char *path = make_log(5, 1000000);
	sqlite3 *db = dlog_open_db(path, 1, err, sizeof(err));
	struct dlog_verify_report rep;
	struct dlog_prune_report pr;

	ck_assert_int_eq(dlog_prune(db, now_ms(), &pr, err, sizeof(err)), 0);
	ck_assert_int_eq(pr.rows[0], 5);
	ck_assert_int_eq(pr.rows[2], 1);	/* the start event */
	ck_assert_int_eq(dlog_verify(db, &rep, err, sizeof(err)), 0);
	ck_assert_int_eq(rep.rows[0], 0);
	ck_assert_int_eq(rep.rows[2], 1);	/* the prune event */
	sqlite3_close(db);
	free(path);
}
END_TEST

/* ------------------------------------------------------------------ */
/* the log subcommands                                                  */

/* Run `sovgate log ARGS...` on path; stdout captured into *out. */
static int
run_log(const char *path, const char *key, char **out, ...)
{
	char *argv[32];
	int argc = 0, rc, fd, saved;
	char *cap = tpath("stdout.txt");
	size_t len;
	va_list ap;

	va_start(ap, out);
	while (argc < 31 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	fflush(stdout);
	fd = open(cap, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	saved = dup(STDOUT_FILENO);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	rc = cmd_log_ex(argc, argv, path, key);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	*out = read_file(cap, &len);
	ck_assert_ptr_nonnull(*out);
	free(cap);
	return rc;
}

/* Number of decisions in `log query --format json` output. */
static size_t
json_count(const char *s)
{
	json_error_t e;
	json_t *a = json_loads(s, 0, &e);
	size_t n;

	ck_assert_msg(json_is_array(a), "not a JSON array: %s (%s)", e.text, s);
	n = json_array_size(a);
	json_decref(a);
	return n;
}

static size_t
query_count(const char *path, ...)
{
	char *argv[32], *out;
	int argc = 0, rc, fd, saved;
	char *cap = tpath("q.txt");
	size_t len, n;
	va_list ap;

	argv[argc++] = "query";
	va_start(ap, path);
	while (argc < 29 && (argv[argc] = va_arg(ap, char *)) != NULL)
		argc++;
	va_end(ap);
	argv[argc++] = "--format";
	argv[argc++] = "json";
	argv[argc] = NULL;
	fflush(stdout);
	fd = open(cap, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	saved = dup(STDOUT_FILENO);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	rc = cmd_log(argc, argv, path);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	ck_assert_int_eq(rc, 0);
	out = read_file(cap, &len);
	n = json_count(out);
	free(out);
	free(cap);
	return n;
}

START_TEST(test_query_filters)
{
	int64_t t0 = now_ms() - 20 * 3600 * 1000LL;
	char *path = make_log(20, t0);
	char since[32], *out;

	/* 20 decisions, one per second from t0: mk_decision(i) for i in
	 * 1..20; odd i claims-app; i % 7 == 3 deny; i % 3 == 0 azure-sweden
	 * (IE, US parent, cloud_act), else onprem-vllm (FR); make_log gives
	 * even i two fingerprints and the iban + national_id.fr_nir
	 * findings. */
	ck_assert_uint_eq(query_count(path, NULL), 20);
	ck_assert_uint_eq(query_count(path, "--client", "claims-app", NULL),
	    10);
	ck_assert_uint_eq(query_count(path, "--action", "deny", NULL), 3);
	ck_assert_uint_eq(query_count(path, "--action", "allow", NULL), 17);
	ck_assert_uint_eq(query_count(path, "--action", "error", NULL), 0);
	ck_assert_uint_eq(query_count(path, "--level", "confidential", NULL),
	    10);
	/* a full type, and a category */
	ck_assert_uint_eq(query_count(path, "--type", "iban", NULL), 10);
	ck_assert_uint_eq(query_count(path, "--type", "national_id", NULL), 10);
	ck_assert_uint_eq(query_count(path, "--type", "national_id.fr_nir",
	    NULL), 10);
	ck_assert_uint_eq(query_count(path, "--type", "national", NULL), 0);
	ck_assert_uint_eq(query_count(path, "--type", "national_id.es_dni",
	    NULL), 0);
	/* i % 3 == 0 and not a denial (3, 10, 17): 6, 9, 12, 15, 18 */
	ck_assert_uint_eq(query_count(path, "--operator-country", "us", NULL),
	    5);
	ck_assert_uint_eq(query_count(path, "--operator-country", "IE", NULL),
	    5);
	ck_assert_uint_eq(query_count(path, "--operator-country", "FR", NULL),
	    12);
	ck_assert_uint_eq(query_count(path, "--backend", "azure-sweden", NULL),
	    5);
	/* 6, 12, 18 */
	ck_assert_uint_eq(query_count(path, "--operator-country", "US",
	    "--type", "iban", "--client", "hr-portal", NULL), 3);
	ck_assert_uint_eq(query_count(path, "--decision",
	    "00000000-0000-4000-8000-000000000007", NULL), 1);
	ck_assert_uint_eq(query_count(path, "--decision", "00000000", NULL),
	    20);
	fmt_rfc3339_ms(t0 + 5000, since, sizeof(since));
	ck_assert_uint_eq(query_count(path, "--since", since, NULL), 15);
	ck_assert_uint_eq(query_count(path, "--since", since, "--until",
	    "-1h", NULL), 15);
	ck_assert_uint_eq(query_count(path, "--since", "-1h", NULL), 0);
	ck_assert_uint_eq(query_count(path, "--since", "-21h", "--limit", "4",
	    NULL), 4);

	/* table and csv */
	ck_assert_int_eq(run_log(path, NULL, &out, "query", "--client",
	    "claims-app", NULL), 0);
	ck_assert_msg(strncmp(out, "TIME ", 5) == 0, "%s", out);
	ck_assert_msg(strstr(out, "(10 decisions)\n") != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(run_log(path, NULL, &out, "query", "--format=csv",
	    "--decision", "00000000-0000-4000-8000-000000000002", NULL), 0);
	ck_assert_msg(strncmp(out, "ts,decision_id,client,", 22) == 0, "%s",
	    out);
	ck_assert_msg(strstr(out, "error\r\n") != NULL, "%s", out);
	/* a JSON field holds quotes and commas: quoted, quotes doubled */
	ck_assert_msg(strstr(out, ",\"{\"\"iban\"\":1,\"\"national_id.fr_nir\"\""
	    ":1}\",") != NULL, "%s", out);
	free(out);
	free(path);
}
END_TEST

START_TEST(test_query_usage_errors)
{
	char *path = make_log(2, 1000000), *out, *missing, *bad;
	FILE *f;

	ck_assert_int_eq(run_log(path, NULL, &out, "query", "--since",
	    "yesterday", NULL), 2);
	free(out);
	ck_assert_int_eq(run_log(path, NULL, &out, "query", "--action",
	    "maybe", NULL), 2);
	free(out);
	ck_assert_int_eq(run_log(path, NULL, &out, "query", "--format", "xml",
	    NULL), 2);
	free(out);
	ck_assert_int_eq(run_log(path, NULL, &out, "query", "--operator-country",
	    "USA", NULL), 2);
	free(out);
	ck_assert_int_eq(run_log(path, NULL, &out, "query", "--type", "IBAN'",
	    NULL), 2);
	free(out);
	ck_assert_int_eq(run_log(path, NULL, &out, "query", "--decision",
	    "x' OR 1=1", NULL), 2);
	free(out);
	ck_assert_int_eq(run_log(path, NULL, &out, "query", "--client", NULL),
	    2);
	free(out);
	ck_assert_int_eq(run_log(path, NULL, &out, "query", "--nope", NULL), 2);
	free(out);
	ck_assert_int_eq(run_log(path, NULL, &out, "query", "--client", "a",
	    "--client", "b", NULL), 2);
	free(out);
	ck_assert_int_eq(run_log(path, NULL, &out, "frobnicate", NULL), 2);
	free(out);
	ck_assert_int_eq(run_log(path, NULL, &out, "prune", NULL), 2);
	free(out);
	ck_assert_int_eq(run_log(path, NULL, &out, "prune", "--before",
	    "2999-01-01", NULL), 2);
	free(out);
	/* missing and corrupt logs */
	missing = tpath("missing.db");
	ck_assert_int_eq(run_log(missing, NULL, &out, "query", NULL), 2);
	free(out);
	ck_assert_int_eq(run_log(missing, NULL, &out, "prune", "--before",
	    "-1d", NULL), 2);
	free(out);
	ck_assert_int_eq(access(missing, F_OK), -1);	/* not created */
	bad = tpath("bad.db");
	f = fopen(bad, "w");
	for (int i = 0; i < 100; i++)
		fputs("garbage garbage garbage garbage garbage ", f);
	fclose(f);
	ck_assert_int_eq(run_log(bad, NULL, &out, "verify", NULL), 2);
	free(out);
	ck_assert_int_eq(run_log(bad, NULL, &out, "export", NULL), 2);
	free(out);
	free(missing);
	free(bad);
	free(path);
}
END_TEST

START_TEST(test_verify_export_prune_commands)
{
	char *path = make_log(6, 1000000), *out;
	sqlite3 *db;
	size_t lines = 0;
	const char *p;

	ck_assert_int_eq(run_log(path, NULL, &out, "verify", NULL), 0);
	ck_assert_msg(strstr(out, " rows verified (6 decisions") != NULL, "%s",
	    out);
	free(out);
	ck_assert_int_eq(run_log(path, NULL, &out, "export", NULL), 0);
	for (p = out; *p; p++)
		if (*p == '\n')
			lines++;
	ck_assert_uint_eq(lines, 7);	/* 6 decisions and the start event */
	ck_assert_msg(strstr(out, "\"record\":\"event\"") != NULL, "%s", out);
	free(out);
	/* 1003000 ms: decisions at 1000000, 1001000, 1002000 go */
	ck_assert_int_eq(run_log(path, NULL, &out, "prune", "--before",
	    "1970-01-01T00:16:43Z", NULL), 0);
	ck_assert_msg(strstr(out, "pruned 3 decisions") != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(run_log(path, NULL, &out, "verify", NULL), 0);
	free(out);
	db = open_plain(path);
	exec_ok(db, "UPDATE decisions SET model = 'gpt-4o' WHERE seq = 5");
	sqlite3_close(db);
	ck_assert_int_eq(run_log(path, NULL, &out, "verify", NULL), 1);
	ck_assert_msg(strstr(out, "seq 5 (decision " ID(05) ") was modified")
	    != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(run_log(path, NULL, &out, "prune", "--before", "-1d",
	    NULL), 1);
	free(out);
	free(path);
}
END_TEST

static int
n_common(char a[][65], size_t na, char b[][65], size_t nb)
{
	size_t i, j;
	int n = 0;

	for (i = 0; i < na; i++)
		for (j = 0; j < nb; j++)
			n += strcmp(a[i], b[j]) == 0;
	return n;
}

START_TEST(test_find_value)
{
	unsigned char key[32];
	char h1[16][65], t1[16][64], h2[16][65], t2[16][64];
	size_t n1, n2;
	char *kpath = tpath("fingerprint.key"), *path, *out;
	struct dlog *l;
	struct dlog_decision *d;
	char err[256];
	int fd;

	memset(key, 7, sizeof(key));
	/* one IBAN, written two ways: the classifier's normalisation */
	n1 = logcmd_value_hmacs("FR76 3000 6000 0112 3456 7890 189", key, h1,
	    t1, 16);
	n2 = logcmd_value_hmacs(" fr76-3000-6000-0112-3456-7890-189\n", key, h2,
	    t2, 16);
	ck_assert_uint_ge(n1, 1);
	ck_assert_str_eq(t1[0], "iban");
	ck_assert_str_eq(h1[0], h2[0]);
	/* e-mail: case does not matter */
	n1 = logcmd_value_hmacs("Jane.Doe@Example.COM", key, h1, t1, 16);
	n2 = logcmd_value_hmacs("jane.doe@example.com", key, h2, t2, 16);
	ck_assert_int_ge(n_common(h1, n1, h2, n2), 1);
	/* an identifier the classifier does not know: separators, case */
	n1 = logcmd_value_hmacs("pat-0042.17", key, h1, t1, 16);
	n2 = logcmd_value_hmacs("PAT 004217", key, h2, t2, 16);
	ck_assert_int_ge(n_common(h1, n1, h2, n2), 1);
	/* another key, other fingerprints */
	key[0] ^= 1;
	n2 = logcmd_value_hmacs("pat-0042.17", key, h2, t2, 16);
	ck_assert_int_eq(n_common(h1, n1, h2, n2), 0);
	key[0] ^= 1;

	/* end to end: a decision fingerprinted as the gateway does */
	path = tpath("fv.db");
	l = dlog_open(path, DUR_STRICT, 5, err, sizeof(err));
	ck_assert_ptr_nonnull(l);
	n1 = logcmd_value_hmacs("FR7630006000011234567890189", key, h1, t1, 16);
	d = mk_decision(1, 1000, 0);
	d->fps = xcalloc(1, sizeof(*d->fps));
	d->fps[0].type = xstrdup("iban");
	memcpy(d->fps[0].hmac, h1[0], 65);
	d->nfps = 1;
	dlog_submit_decision(l, d, NULL, NULL, NULL);
	dlog_submit_decision(l, mk_decision(2, 2000, 2), NULL, NULL, NULL);
	dlog_close(l);
	fd = open(kpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_eq(write(fd, key, 32), 32);
	close(fd);
	ck_assert_int_eq(run_log(path, kpath, &out, "find-value",
	    "fr76 3000 6000 0112 3456 7890 189", "--format", "json", NULL), 0);
	ck_assert_uint_eq(json_count(out), 1);
	ck_assert_msg(strstr(out, ID(01)) != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(run_log(path, kpath, &out, "find-value",
	    "DE89370400440532013000", "--format", "json", NULL), 0);
	ck_assert_uint_eq(json_count(out), 0);
	free(out);
	/* a key others can read is refused; no value is a usage error */
	chmod(kpath, 0644);
	ck_assert_int_eq(run_log(path, kpath, &out, "find-value", "x", NULL),
	    2);
	free(out);
	ck_assert_int_eq(run_log(path, kpath, &out, "find-value", NULL), 2);
	free(out);
	free(kpath);
	free(path);
}
END_TEST

/* The incident views of sql/schema.sql, from plain SQL. */
START_TEST(test_views)
{
	char err[256];
	char *path = tpath("v.db");
	struct dlog *l = dlog_open(path, DUR_STRICT, 5, err, sizeof(err));
	struct dlog_decision *d;
	struct dlog_outcome *o;
	sqlite3 *db;
	char *s;

	ck_assert_ptr_nonnull(l);
	dlog_submit_event(l, "start", "{\"policy\":\"p\",\"policy_sha256\":"
	    "\"1111\"}");
	/* policy A: iban -> internal; onprem */
	d = mk_decision(1, 1000, 2);
	free(d->level);
	d->level = xstrdup("internal");
	memset(d->policy_sha256, '1', 64);
	dlog_submit_decision(l, d, NULL, NULL, NULL);
	/* sensitive, straight to a cloud_act backend (azure) */
	d = mk_decision(6, 2000, 2);
	memset(d->policy_sha256, '1', 64);
	free(d->client);
	d->client = xstrdup("direct");
	dlog_submit_decision(l, d, NULL, NULL, NULL);
	/* not sensitive, to a cloud_act backend: not listed */
	dlog_submit_decision(l, mk_decision(9, 2200, 0), NULL, NULL, NULL);
	/* failover: chosen onprem, an attempt went to azure */
	d = mk_decision(4, 2500, 2);
	memset(d->policy_sha256, '1', 64);
	free(d->client);
	d->client = xstrdup("other");
	dlog_submit_decision(l, d, NULL, NULL, NULL);
	o = dlog_outcome_new();
	snprintf(o->decision_id, 37, "%s", ID(04));
	o->ts_ms = 2600;
	o->status = 200;
	o->attempts = 2;
	o->attempts_json = xstrdup("[{\"backend\":\"onprem-vllm\",\"result\":"
	    "\"5xx\"},{\"backend\":\"azure-sweden\",\"result\":\"ok\"}]");
	o->backend = xstrdup("azure-sweden");
	dlog_submit_outcome(l, o);
	dlog_submit_event(l, "reload", "{\"result\":\"accepted\",\"policy\":"
	    "\"p\",\"policy_sha256\":\"2222\"}");
	/* policy B: the same request as #1 is now confidential */
	d = mk_decision(5, 3000, 2);
	free(d->level);
	d->level = xstrdup("confidential");
	memset(d->policy_sha256, '2', 64);
	dlog_submit_decision(l, d, NULL, NULL, NULL);
	/* two denials of hr-portal */
	dlog_submit_decision(l, mk_decision(10, 4000, 0), NULL, NULL, NULL);
	dlog_submit_decision(l, mk_decision(24, 5000, 0), NULL, NULL, NULL);
	dlog_close(l);

	db = dlog_open_db(path, 0, err, sizeof(err));
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM "
	    "sensitive_to_cloud_act"), 2);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM sensitive_to_cloud_act "
	    "WHERE decision_id IN ('" ID(04) "', '" ID(06) "')"), 2);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM "
	    "level_changes_after_reload"), 1);
	s = q_text(db, "SELECT level_before || '>' || level_after || ' ' || "
	    "decision_id || ' ' || compared_with FROM "
	    "level_changes_after_reload");
	ck_assert_str_eq(s, "internal>confidential " ID(05) " " ID(01));
	free(s);
	ck_assert_int_eq(q_int(db, "SELECT denials FROM denials_by_client WHERE "
	    "client = 'hr-portal'"), 2);
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM client_activity WHERE "
	    "client = 'claims-app' AND ts >= '1970-01-01T00:00:02' AND ts < "
	    "'1970-01-01T00:00:04'"), 2);	/* #9 and #5 */
	ck_assert_int_eq(q_int(db, "SELECT count(*) FROM policy_history"), 2);
	sqlite3_close(db);
	free(path);
}
END_TEST

/* ------------------------------------------------------------------ */


/* ---- mailbox batches (the writer's answers) ---- */

static int mb_seen[10][16], mb_nseen[10];

static void
mb_record(void *arg, int status)
{
	int box = (int)(intptr_t)arg;

	ck_assert_int_lt(mb_nseen[box], 16);
	mb_seen[box][mb_nseen[box]++] = status;
}

START_TEST(test_mailbox_batch)
{
	struct mailbox *boxes[10];
	struct mailbox_batch b = MAILBOX_BATCH_INIT;
	int i, k, round;

	boxes[0] = mb;
	for (i = 1; i < 10; i++)
		boxes[i] = mailbox_new(base);
	/* Round 0: four boxes, nothing arrives before the send. Round 1:
	 * ten boxes, more than a batch holds: it sends early, and each
	 * box still sees its messages in order. */
	for (round = 0; round < 2; round++) {
		int nbox = round == 0 ? 4 : 10;

		memset(mb_nseen, 0, sizeof(mb_nseen));
		for (k = 0; k < 3 * nbox; k++)
			mailbox_batch_add(&b, boxes[k % nbox], mb_record,
			    (void *)(intptr_t)(k % nbox), k);
		if (round == 0) {
			event_base_loop(base, EVLOOP_NONBLOCK);
			for (i = 0; i < nbox; i++)
				ck_assert_int_eq(mb_nseen[i], 0);
		}
		mailbox_batch_send(&b);
		ck_assert_int_eq(b.n, 0);
		event_base_loop(base, EVLOOP_NONBLOCK);
		for (i = 0; i < nbox; i++) {
			ck_assert_int_eq(mb_nseen[i], 3);
			for (k = 0; k < 3; k++)
				ck_assert_int_eq(mb_seen[i][k], i + k * nbox);
		}
	}
	mailbox_batch_send(&b);		/* empty: nothing to do */
	for (i = 1; i < 10; i++)
		mailbox_free(boxes[i]);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("dlog");
	TCase *tc = tcase_create("schema");

	evthread_use_pthreads();
	tcase_add_checked_fixture(tc, setup_tmp, rm_tmp);
	tcase_add_test(tc, test_schema_file_matches_embedded);
	tcase_add_test(tc, test_open_creates_wal_and_reopens);
	tcase_add_test(tc, test_open_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("writer");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup_loop, teardown_loop);
	tcase_add_test(tc, test_strict_commits_before_callback);
	tcase_add_test(tc, test_heads_follow_other_writers);
	tcase_add_test(tc, test_group_commit);
	tcase_add_test(tc, test_strict_outcome_waits_its_interval);
	tcase_add_test(tc, test_outcome_written_at_interval);
	tcase_add_test(tc, test_migrates_v1);
	tcase_add_test(tc, test_wal_is_rewound);
	tcase_add_test(tc, test_batch_submit);
	tcase_add_test(tc, test_packed_records_round_trip);
	tcase_add_test(tc, test_batched_answers_at_once);
	tcase_add_test(tc, test_close_drains);
	tcase_add_test(tc, test_failure_and_recovery);
	tcase_add_test(tc, test_duplicate_id_fails_only_that_row);
	tcase_add_test(tc, test_mailbox_batch);
	suite_add_tcase(s, tc);

	tc = tcase_create("chain");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup_tmp, rm_tmp);
	tcase_add_test(tc, test_chain_linkage_and_encoding);
	tcase_add_test(tc, test_tamper_field);
	tcase_add_test(tc, test_tamper_delete);
	tcase_add_test(tc, test_tamper_insert);
	tcase_add_test(tc, test_tamper_reorder);
	tcase_add_test(tc, test_prune);
	tcase_add_test(tc, test_prune_all);
	tcase_add_test(tc, test_prune_in_chunks);
	suite_add_tcase(s, tc);

	tc = tcase_create("commands");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup_tmp, rm_tmp);
	tcase_add_test(tc, test_query_filters);
	tcase_add_test(tc, test_query_usage_errors);
	tcase_add_test(tc, test_verify_export_prune_commands);
	tcase_add_test(tc, test_find_value);
	tcase_add_test(tc, test_views);
	suite_add_tcase(s, tc);

	return run_suite(s);
}
