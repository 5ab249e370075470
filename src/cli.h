/*
 * cli.h - the subcommands other than serve and log: check, classify,
 * explain, policy. Each returns the process exit code (SPEC §2).
 */
#ifndef SOVGATE_CLI_H
#define SOVGATE_CLI_H

int cmd_check(const char *config_path, int argc, char **argv);
int cmd_classify(const char *config_path, int argc, char **argv);
int cmd_explain(const char *config_path, int argc, char **argv);
int cmd_policy(const char *config_path, int argc, char **argv);

/* ---- additions ---- */
#include <stdio.h>
struct policy;
struct backend_set;
struct classifier;
/* Run the policy's tests (SPEC §4.3 tests:) with clf, one PASS/FAIL line
 * each on out. Credentials and health are ignored: the tests judge the
 * policy, not the machine. 0 when all pass, -1 otherwise. */
int policy_run_tests(const struct policy *p, const struct backend_set *bs,
    const struct classifier *clf, FILE *out, int *npass, int *nfail);

#endif
