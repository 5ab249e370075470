/*
 * classify-driver.c - standalone `classify --jsonl` for scoring and
 * benchmarking the classifier before (and independently of) src/cli.c.
 * Reads JSONL records {"id", "endpoint", "body"} and prints
 * {"id": ..., "findings": {...}} per line. Built by classify-bench.sh,
 * not part of the default build.
 *
 *   classify-driver [-q] [-n REPEAT] FILE|-
 *   -q: print nothing (timing only); -n: classify every body N times;
 *   -p: parse the bodies only (to separate JSON cost from classification).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>

#include "classify.h"
#include "extract.h"

int
main(int argc, char **argv)
{
	FILE *in = stdin;
	char *line = NULL, err[256];
	size_t cap = 0;
	ssize_t n;
	int quiet = 0, repeat = 1, i, parse_only = 0;
	struct classifier *c = classifier_new(NULL, 0, NULL);
	struct scan *s = scan_new();
	double t_class = 0;
	size_t bytes = 0, texts = 0;
	struct timespec a, b;
	struct jsonl_rec rec;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-q") == 0)
			quiet = 1;
		else if (strcmp(argv[i], "-p") == 0)
			parse_only = 1;
		else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			repeat = atoi(argv[++i]);
		else if (strcmp(argv[i], "-") != 0 &&
		    (in = fopen(argv[i], "r")) == NULL) {
			perror(argv[i]);
			return 2;
		}
	}
	if (c == NULL)
		return 2;
	memset(&rec, 0, sizeof(rec));
	while ((n = getline(&line, &cap, in)) > 0) {
		int r;
		enum endpoint ep;

		/* The same reader as classify --jsonl. */
		if (jsonl_rec_read(&rec, line, (size_t)n, err, sizeof(err)) < 0 ||
		    !rec.body_str)
			continue;
		ep = rec.ep ? endpoint_from_path(rec.ep) : EP_CHAT;
		clock_gettime(CLOCK_MONOTONIC, &a);
		for (r = 0; r < repeat; r++) {
			json_t *root = request_parse(rec.body, rec.blen, 64,
			    err, sizeof(err));

			scan_reset(s);
			if (root != NULL && !parse_only &&
			    classify_request(c, s, root, ep, err,
			    sizeof(err)) < 0)
				err[0] = err[0];
			json_decref(root);
			bytes += rec.blen;
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		t_class += (double)(b.tv_sec - a.tv_sec) +
		    (double)(b.tv_nsec - a.tv_nsec) / 1e9;
		texts++;
		if (!quiet) {
			char *f = scan_findings_json(s);

			printf("{\"id\":%.*s,\"findings\":%s}\n",
			    rec.id ? (int)rec.idlen : 4, rec.id ? rec.id :
			    "null", f);
			free(f);
		}
	}
	fprintf(stderr, "records %zu, body bytes %zu, parse+classify %.3f s, "
	    "%.1f MB/s\n", texts, bytes, t_class,
	    t_class > 0 ? bytes / t_class / 1e6 : 0.0);
	free(line);
	jsonl_rec_clear(&rec);
	scan_free(s);
	classifier_free(c);
	return 0;
}
