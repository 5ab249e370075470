/*
 * logcmd.h - `sovgate log ...` subcommands over the decision log.
 */
#ifndef SOVGATE_LOGCMD_H
#define SOVGATE_LOGCMD_H

/* argv[0] is the log subcommand ("query", ...). db_path is the decision
 * log's path from the config. Returns the process exit code (SPEC §2). */
int cmd_log(int argc, char **argv, const char *db_path);

/* ---- additions ---- */
#include <stddef.h>

/* As cmd_log, with the fingerprint key file for `log find-value` (the
 * config's log.fingerprint_key_file). key_file NULL: the file
 * "fingerprint.key" next to the database, the config's default. cmd_log
 * is cmd_log_ex(..., NULL). */
int cmd_log_ex(int argc, char **argv, const char *db_path,
    const char *key_file);

/* The fingerprints find-value searches for VALUE: the classifier's
 * normalised values of what it recognises in VALUE, then the fallbacks
 * (e-mail: lower case; else upper case without spaces, '-', '.', '/';
 * the value as typed). Fills up to max hex HMACs and the type each was
 * normalised as; returns how many. */
size_t logcmd_value_hmacs(const char *value, const unsigned char key[32],
    char hmacs[][65], char types[][64], size_t max);

#endif
