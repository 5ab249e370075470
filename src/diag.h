/*
 * diag.h - a collector of problems found while loading configuration,
 * printed as "FILE:LINE:COL: severity: message" (sovgate check).
 */
#ifndef SOVGATE_DIAG_H
#define SOVGATE_DIAG_H

#include <stdio.h>
#include <stddef.h>

enum diag_severity { DIAG_ERROR, DIAG_WARNING };

struct diag {
	enum diag_severity sev;
	char *file;		/* may be NULL */
	int line, col;		/* 1-based; 0 when unknown */
	char *msg;
};

struct diags {
	struct diag *v;
	size_t n, cap;
	size_t nerrors, nwarnings;
};

struct diags *diags_new(void);
void diags_free(struct diags *d);	/* NULL is a no-op */
void diags_add(struct diags *d, enum diag_severity sev, const char *file,
    int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* One line per problem, in the order found. */
void diags_print(const struct diags *d, FILE *out);
/* First error as one line (for reload logs); "" if none. Static buffer-free:
 * writes into buf. */
const char *diags_first_error(const struct diags *d, char *buf, size_t len);

#endif
