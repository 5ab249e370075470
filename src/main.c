/*
 * main.c - the sovgate command line (SPEC §2): global options, then one
 * subcommand. Everything but argument dispatch lives in the library.
 */
#include "buildconf.h"
#include "cli.h"
#include "config.h"
#include "diag.h"
#include "logcmd.h"
#include "server.h"
#include "jalloc.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: sovgate [-c CONFIG] [-v] COMMAND [ARGS]\n"
	    "\n"
	    "commands:\n"
	    "  serve                         run the gateway in the foreground\n"
	    "  check                         validate config, backends and policy\n"
	    "  classify [--jsonl] [FILE|-]   classify request bodies\n"
	    "  explain [--client NAME] [--header 'K: V'] [FILE|-]\n"
	    "                                dry run of one request\n"
	    "  policy test                   run the policy's tests\n"
	    "  policy replay --policy NEW.yaml [--since T] [--until T]\n"
	    "  log query|verify|find-value|export|prune ...\n"
	    "  version                       print the version\n"
	    "\n"
	    "-c CONFIG defaults to $SOVGATE_CONFIG, else %s/sovgate/sovgate.yaml\n",
	    SYSCONFDIR);
}

/* `log` needs only the database path (and key file): it must work when
 * the policy is broken, which is exactly when a responder needs it. */
static int
run_log(const char *config, int argc, char **argv)
{
	struct diags *d = diags_new();
	struct gw_config *cfg = config_load(config, d);
	int rc;

	if (cfg == NULL) {
		diags_print(d, stderr);
		fprintf(stderr, "sovgate: cannot read the decision log's location "
		    "from %s\n", config);
		diags_free(d);
		return 2;
	}
	diags_free(d);
	rc = cmd_log_ex(argc, argv, cfg->log_database,
	    cfg->fingerprint_key_file);
	config_free(cfg);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *config = getenv("SOVGATE_CONFIG");
	int i = 1;

	jalloc_install();	/* before any JSON value exists */

	if (config == NULL || *config == '\0')
		config = SYSCONFDIR "/sovgate/sovgate.yaml";
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
			if (++i >= argc) {
				fprintf(stderr, "sovgate: -c needs a file name\n");
				return 2;
			}
			config = argv[i];
		} else if (strcmp(argv[i], "-v") == 0) {
			log_set_level(LOG_LVL_DEBUG);
		} else if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("sovgate %s\n", PACKAGE_VERSION);
			return 0;
		} else {
			fprintf(stderr, "sovgate: unknown option '%s'\n\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	/* Options may also follow the command: sovgate check -c FILE. */
	{
		int j;

		for (j = i + 1; j < argc - 1; j++)
			if (strcmp(argv[j], "-c") == 0) {
				config = argv[j + 1];
				memmove(&argv[j], &argv[j + 2],
				    (size_t)(argc - j - 2) * sizeof(*argv));
				argc -= 2;
				argv[argc] = NULL;
				break;
			}
	}
	const char *cmd = argv[i];
	int sub_argc = argc - i - 1;
	char **sub_argv = argv + i + 1;

	if (strcmp(cmd, "serve") == 0)
		return server_run(config);
	if (strcmp(cmd, "check") == 0)
		return cmd_check(config, sub_argc, sub_argv);
	if (strcmp(cmd, "classify") == 0)
		return cmd_classify(config, sub_argc, sub_argv);
	if (strcmp(cmd, "explain") == 0)
		return cmd_explain(config, sub_argc, sub_argv);
	if (strcmp(cmd, "policy") == 0)
		return cmd_policy(config, sub_argc, sub_argv);
	if (strcmp(cmd, "log") == 0)
		return run_log(config, sub_argc, sub_argv);
	if (strcmp(cmd, "version") == 0) {
		printf("sovgate %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "sovgate: unknown command '%s'\n\n", cmd);
	usage(stderr);
	return 2;
}
