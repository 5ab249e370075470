/*
 * check_walbuf.c - the WAL write-gathering VFS: a commit is one write, it
 * is in the file when COMMIT returns (another connection and a process
 * that survives our crash both see it), and big, spilled and rolled-back
 * transactions leave a sound database.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "walbuf.h"
#include "testutil.h"

static sqlite3 *
open_db(const char *path, int gather)
{
	sqlite3 *db = NULL;

	ck_assert_int_eq(walbuf_register(), 0);
	ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE, gather ? WALBUF_VFS : NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 2000);
	return db;
}

static void
exec_ok(sqlite3 *db, const char *sql)
{
	char *err = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &err);

	ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, err ? err : "?");
	sqlite3_free(err);
}

static long long
count(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	long long n;

	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static void
assert_sound(sqlite3 *db)
{
	sqlite3_stmt *st;

	ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1,
	    &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
}

/* A log-like table: rows of some hundred bytes, two indexes. */
static sqlite3 *
make_log(const char *name, int page_size)
{
	char sql[200];
	sqlite3 *db = open_db(sub_path(name), 1);

	snprintf(sql, sizeof(sql), "PRAGMA page_size=%d", page_size);
	exec_ok(db, sql);
	exec_ok(db, "PRAGMA journal_mode=WAL");
	exec_ok(db, "PRAGMA synchronous=NORMAL");
	exec_ok(db, "CREATE TABLE d (seq INTEGER PRIMARY KEY, id TEXT UNIQUE,"
	    " ts INTEGER, body TEXT)");
	exec_ok(db, "CREATE INDEX d_ts ON d (ts)");
	return db;
}

static void
insert_rows(sqlite3 *db, int from, int n, int bytes)
{
	char sql[300];

	snprintf(sql, sizeof(sql), "WITH RECURSIVE k(i) AS (SELECT %d UNION "
	    "ALL SELECT i + 1 FROM k WHERE i < %d) INSERT INTO d (id, ts, body)"
	    " SELECT printf('id-%%08d', i), i, hex(randomblob(%d)) FROM k",
	    from, from + n - 1, bytes / 2);
	exec_ok(db, sql);
}

START_TEST(test_commit_is_one_write)
{
	uint64_t sys0, req0, sys1, req1;
	sqlite3 *db;

	tmp_make("walbuf");
	db = make_log("a.db", 2048);
	insert_rows(db, 1, 10, 100);	/* the WAL exists, its header written */
	walbuf_stats(&sys0, &req0);
	exec_ok(db, "BEGIN");
	insert_rows(db, 11, 20, 600);	/* several pages of each b-tree */
	exec_ok(db, "COMMIT");
	walbuf_stats(&sys1, &req1);
	/* SQLite asked for a header and a page per frame... */
	ck_assert_uint_ge(req1 - req0, 8);
	/* ...and the file got one write. */
	ck_assert_uint_eq(sys1 - sys0, 1);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM d"), 30);
	sqlite3_close(db);
	tmp_remove();
}
END_TEST

/* Each commit is readable by another connection (not gathering) as soon
 * as COMMIT returns, and a checkpoint through it copies sound pages. */
START_TEST(test_commit_visible_to_reader)
{
	sqlite3 *db, *rd;
	int i;

	tmp_make("walbuf");
	db = make_log("b.db", 2048);
	rd = open_db(sub_path("b.db"), 0);
	for (i = 0; i < 200; i++) {
		exec_ok(db, "BEGIN");
		insert_rows(db, i * 5 + 1, 5, 700);
		exec_ok(db, "COMMIT");
		ck_assert_int_eq(count(rd, "SELECT count(*) FROM d"),
		    (i + 1) * 5);
		ck_assert_int_eq(count(rd, "SELECT max(ts) FROM d"),
		    (i + 1) * 5);
		if (i % 50 == 49)
			exec_ok(rd, "PRAGMA wal_checkpoint(RESTART)");
	}
	assert_sound(rd);
	sqlite3_close(rd);
	sqlite3_close(db);
	tmp_remove();
}
END_TEST

/* A process that dies right after COMMIT returned (no close, no flush at
 * exit) has its transaction in the file. */
START_TEST(test_commit_survives_crash)
{
	sqlite3 *db;
	pid_t pid;
	int status;

	tmp_make("walbuf");
	db = make_log("c.db", 2048);
	sqlite3_close(db);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int i;

		db = open_db(sub_path("c.db"), 1);
		/* As the decision log: no sync to flush for us at commit. */
		exec_ok(db, "PRAGMA synchronous=NORMAL");
		for (i = 0; i < 50; i++) {
			exec_ok(db, "BEGIN");
			insert_rows(db, i * 7 + 1, 7, 500);
			exec_ok(db, "COMMIT");
		}
		_exit(0);	/* right after the last COMMIT */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Recovery rebuilds the wal-index from the frames and their
	 * checksums: every committed frame must be there and valid. */
	unlink(sub_path("c.db-shm"));
	db = open_db(sub_path("c.db"), 0);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM d"), 350);
	assert_sound(db);
	sqlite3_close(db);
	tmp_remove();
}
END_TEST

/* Bigger than what one write may carry; then a transaction that spills
 * pages to the WAL before its commit and rewrites them in place (SQLite
 * then repairs checksums after the commit frame), then a rollback of a
 * spilled transaction. Each time: the data, and a recovery from the file
 * alone, are right. */
START_TEST(test_big_spilled_and_rolled_back)
{
	sqlite3 *db, *rd;
	pid_t pid;
	int status;

	tmp_make("walbuf");
	db = make_log("d.db", 4096);
	exec_ok(db, "BEGIN");
	insert_rows(db, 1, 400, 1000);	/* some 500 KB of frames */
	exec_ok(db, "COMMIT");
	rd = open_db(sub_path("d.db"), 0);
	ck_assert_int_eq(count(rd, "SELECT count(*) FROM d"), 400);
	sqlite3_close(rd);
	sqlite3_close(db);

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		db = open_db(sub_path("d.db"), 1);
		exec_ok(db, "PRAGMA synchronous=NORMAL");
		exec_ok(db, "PRAGMA cache_size=10");	/* pages spill */
		exec_ok(db, "BEGIN");
		insert_rows(db, 1001, 300, 1000);
		exec_ok(db, "UPDATE d SET body = lower(body) WHERE ts > 1000");
		exec_ok(db, "UPDATE d SET ts = ts + 1000000 WHERE ts > 1000");
		exec_ok(db, "COMMIT");
		exec_ok(db, "BEGIN");
		insert_rows(db, 5000, 300, 1000);
		exec_ok(db, "ROLLBACK");
		exec_ok(db, "BEGIN");
		insert_rows(db, 9001, 3, 100);
		exec_ok(db, "COMMIT");
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	unlink(sub_path("d.db-shm"));
	db = open_db(sub_path("d.db"), 0);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM d"), 703);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM d WHERE ts > "
	    "1000000"), 300);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM d WHERE ts "
	    "BETWEEN 5000 AND 5299"), 0);
	ck_assert_int_eq(count(db, "SELECT count(*) FROM d WHERE body <> "
	    "lower(body) AND ts > 1000000"), 0);
	assert_sound(db);
	sqlite3_close(db);
	tmp_remove();
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("walbuf");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_commit_is_one_write);
	tcase_add_test(tc, test_commit_visible_to_reader);
	tcase_add_test(tc, test_commit_survives_crash);
	tcase_add_test(tc, test_big_spilled_and_rolled_back);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
