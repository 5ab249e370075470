/*
 * diag.c - see diag.h.
 */
#include "diag.h"
#include "util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct diags *
diags_new(void)
{
	return xcalloc(1, sizeof(struct diags));
}

void
diags_free(struct diags *d)
{
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->n; i++) {
		free(d->v[i].file);
		free(d->v[i].msg);
	}
	free(d->v);
	free(d);
}

void
diags_add(struct diags *d, enum diag_severity sev, const char *file,
    int line, int col, const char *fmt, ...)
{
	va_list ap;
	char buf[1024];
	struct diag *g;

	if (d == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 8;
		d->v = xrealloc(d->v, d->cap * sizeof(*d->v));
	}
	g = &d->v[d->n++];
	g->sev = sev;
	g->file = file ? xstrdup(file) : NULL;
	g->line = line;
	g->col = col;
	g->msg = xstrdup(buf);
	if (sev == DIAG_ERROR)
		d->nerrors++;
	else
		d->nwarnings++;
}

static void
format_one(const struct diag *g, char *buf, size_t len)
{
	const char *sev = g->sev == DIAG_ERROR ? "error" : "warning";

	if (g->file && g->line > 0)
		snprintf(buf, len, "%s:%d:%d: %s: %s", g->file, g->line,
		    g->col, sev, g->msg);
	else if (g->file)
		snprintf(buf, len, "%s: %s: %s", g->file, sev, g->msg);
	else
		snprintf(buf, len, "%s: %s", sev, g->msg);
}

void
diags_print(const struct diags *d, FILE *out)
{
	char buf[2048];
	size_t i;

	for (i = 0; i < d->n; i++) {
		format_one(&d->v[i], buf, sizeof(buf));
		fprintf(out, "%s\n", buf);
	}
}

const char *
diags_first_error(const struct diags *d, char *buf, size_t len)
{
	size_t i;

	buf[0] = '\0';
	for (i = 0; d && i < d->n; i++) {
		if (d->v[i].sev == DIAG_ERROR) {
			format_one(&d->v[i], buf, len);
			break;
		}
	}
	return buf;
}
