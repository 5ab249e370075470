/*
 * classify.h - the classifier: finds sensitive values in decoded request
 * text (SPEC §6).
 *
 * A classifier is immutable once built (it holds the policy's custom
 * detectors compiled) and is shared by every worker thread. A scan holds one
 * request's results; it is reused across requests by one thread, so the hot
 * path does not allocate.
 *
 * Values: each finding's normalised value is kept in the scan only until the
 * scan is reset, so the caller can compute the keyed fingerprint of SPEC §8.
 * Nothing else keeps it.
 */
#ifndef SOVGATE_CLASSIFY_H
#define SOVGATE_CLASSIFY_H

#include <stddef.h>
#include "diag.h"

/* A policy's custom detector (SPEC §4.3 classify.custom). */
struct custom_def {
	char *name;		/* "project.nightingale"; the type is custom.NAME */
	char **words;		/* words or phrases, matched case-insensitively */
	size_t nwords;
	char *regex;		/* PCRE2 pattern or NULL */
	/* where it was written, for diagnostics */
	const char *file;
	int line, col;		/* of the detector */
	int regex_line, regex_col;
};

#define SCAN_MAX_TYPES	64
#define SCAN_MAX_VALUES	256
#define SCAN_VALUE_MAX	128

struct scan_type_count {
	const char *type;	/* static, or owned by the classifier */
	unsigned count;		/* distinct values */
};

struct scan_value {
	const char *type;
	unsigned len;
	char value[SCAN_VALUE_MAX];	/* normalised, not NUL-terminated */
};

struct scan {
	struct scan_type_count types[SCAN_MAX_TYPES];
	size_t ntypes;
	struct scan_value *values;	/* SCAN_MAX_VALUES of them */
	size_t nvalues;
	size_t dropped_values;	/* distinct values past SCAN_MAX_VALUES */
	size_t bytes_scanned;
	void *priv;		/* working memory of the classifier */
};

struct classifier;

/* Build from the policy's custom detectors (may be none). Bad patterns are
 * reported in d with their position; returns NULL then. */
struct classifier *classifier_new(const struct custom_def *defs, size_t n,
    struct diags *d);
void classifier_free(struct classifier *c);	/* NULL is a no-op */

struct scan *scan_new(void);
void scan_reset(struct scan *s);	/* forget every value and count */
void scan_free(struct scan *s);		/* NULL is a no-op */

/* Scan one piece of text (UTF-8, already JSON-decoded) and add its findings
 * to s. A value seen twice in one request counts once. */
void classifier_scan(const struct classifier *c, struct scan *s,
    const char *text, size_t len);

/* Count of a type in s (0 if absent). */
unsigned scan_count(const struct scan *s, const char *type);
/* {"iban":1,"email":2} into a new string, types sorted by name. */
char *scan_findings_json(const struct scan *s);

/* Offset in the original text of an offset in the normalised text of the
 * last text scanned (normalisation drops zero-width characters and
 * shortens full-width forms). */
size_t scan_orig_offset(const struct scan *s, size_t norm_off);

/* Every built-in finding type name (NULL-terminated), for `check`. */
extern const char *const classify_builtin_types[];

#endif
