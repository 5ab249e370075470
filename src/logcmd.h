/*
 * logcmd.h - `sovgate log ...` subcommands over the decision log.
 */
#ifndef SOVGATE_LOGCMD_H
#define SOVGATE_LOGCMD_H

/* argv[0] is the log subcommand ("query", ...). db_path is the decision
 * log's path from the config. Returns the process exit code (SPEC §2). */
int cmd_log(int argc, char **argv, const char *db_path);

#endif
