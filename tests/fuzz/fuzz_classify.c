/*
 * fuzz_classify.c - libFuzzer harness: request parsing, extraction for
 * every endpoint, and classification (with a custom word list and regex),
 * on arbitrary bytes. Also feeds the raw bytes straight to the scanner,
 * which must cope with anything, valid UTF-8 or not. request_parse is
 * checked against jansson's own reader on every input, and the in-place
 * reader json_object_members against both.
 *
 * Built and run by tests/fuzz/run.sh, never by `make check`.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "extract.h"

static struct classifier *clf;
static struct scan *sc;

/* json_object_members: each member's raw text must read (with jansson)
 * as the value, and a string's decoded text must be that string. */
static void
member_check(void *ud, const struct json_member *m)
{
	json_t *v = json_loadb(m->raw, m->rawlen, JSON_DECODE_ANY |
	    JSON_ALLOW_NUL, NULL);

	(*(size_t *)ud)++;
	if (v == NULL || strlen(m->key) != m->klen)
		abort();
	if (m->str != NULL && (!json_is_string(v) ||
	    json_string_length(v) != m->slen ||
	    memcmp(json_string_value(v), m->str, m->slen) != 0))
		abort();
	json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	json_t *root;
	int ep;

	if (clf == NULL) {
		static char *words[] = {"Nightingale", "NGL-2025", "x"};
		struct custom_def d[2];

		memset(d, 0, sizeof(d));
		d[0].name = "project";
		d[0].words = words;
		d[0].nwords = 3;
		d[1].name = "host";
		d[1].regex = "\\b[a-z0-9-]+\\.corp\\.example\\b";
		clf = classifier_new(d, 2, NULL);
		sc = scan_new();
		if (clf == NULL)
			abort();
	}
	scan_reset(sc);
	classifier_scan(clf, sc, (const char *)data, size);
	free(scan_findings_json(sc));

	root = request_parse((const char *)data, size, 64, err, sizeof(err));
	{
		/* differential: our parser must accept exactly what jansson
		 * accepts as an object, and build the same tree (apart from
		 * our nesting limit) */
		json_error_t e;
		json_t *ref = json_loadb((const char *)data, size, 0, &e);

		if (ref != NULL && json_is_object(ref)) {
			/* jansson lets a raw NUL byte through between tokens;
			 * we refuse it, as RFC 8259 does */
			if (root == NULL && strstr(err, "nesting") == NULL &&
			    memchr(data, 0, size) == NULL)
				abort();
			if (root != NULL && !json_equal(root, ref))
				abort();
		} else if (root != NULL) {
			abort();
		}
		json_decref(ref);
	}
	{
		/* the in-place reader accepts what request_parse accepts,
		 * with a callback for every member */
		size_t nm = 0;
		int rc = json_object_members((const char *)data, size, 64,
		    member_check, &nm, err, sizeof(err));

		if ((rc == 0) != (root != NULL) ||
		    (root != NULL && nm < json_object_size(root)))
			abort();
	}
	if (root == NULL)
		return 0;
	for (ep = EP_CHAT; ep <= EP_FIM; ep++) {
		scan_reset(sc);
		(void)classify_request(clf, sc, root, (enum endpoint)ep, err,
		    sizeof(err));
		free(scan_findings_json(sc));
	}
	json_decref(root);
	return 0;
}
