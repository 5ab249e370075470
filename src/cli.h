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

#endif
