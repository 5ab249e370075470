/*
 * logcmd.c - `sovgate log ...` (being written: query, verify, export,
 * prune, find-value).
 */
#include "logcmd.h"

#include <stdio.h>

int
cmd_log(int argc, char **argv, const char *db_path)
{
	(void)argc;
	(void)argv;
	(void)db_path;
	fprintf(stderr, "sovgate log: not implemented yet\n");
	return 2;
}
