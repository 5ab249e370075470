/*
 * testutil.h - what the Check suites share: a temporary directory with
 * files written into it, diagnostics lookup, and running a suite.
 * Header-only (static inline): each suite is one translation unit.
 */
#ifndef SOVGATE_TESTUTIL_H
#define SOVGATE_TESTUTIL_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "diag.h"

static char tmpdir[256];

/* A fresh directory under $TMPDIR; tag names the suite. */
static inline void
tmp_make(const char *tag)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/sovgate-%s-XXXXXX",
	    t && *t ? t : "/tmp", tag);
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static inline void
tmp_remove(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

/* tmpdir/name, in a static buffer. */
static inline const char *
sub_path(const char *name)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

/* Writes tmpdir/name (creating one level of subdirectory); returns the
 * path in a static buffer. */
static inline const char *
put(const char *name, const char *text)
{
	static char path[512];
	char dir[512];
	char *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	*slash = '\0';
	mkdir(dir, 0700);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* 1 if some diagnostic of that severity contains needle (and, when
 * line > 0, is at that line). */
static inline int
has_diag(const struct diags *d, enum diag_severity sev, int line,
    const char *needle)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (d->v[i].sev == sev && strstr(d->v[i].msg, needle) &&
		    (line <= 0 || d->v[i].line == line))
			return 1;
	return 0;
}

/* Run every test of s; the exit status for main. */
static inline int
run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
