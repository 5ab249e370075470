/*
 * yamltree.c - see yamltree.h.
 *
 * libyaml's event parser is driven by hand (not yaml_parser_load) because
 * the document loader expands aliases: we want to refuse them at the first
 * sight, bound depth while parsing, and keep every node's position.
 *
 * Ownership: a ydoc owns every node and every string below it; nodes point
 * at the document's file name, so a node must not outlive its ydoc.
 */
#include "yamltree.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

static void
ynode_free(struct ynode *n)
{
	size_t i;

	if (n == NULL)
		return;
	for (i = 0; i < n->n; i++) {
		ynode_free(n->items[i]);
		if (n->keys)
			ynode_free(n->keys[i]);
	}
	free(n->items);
	free(n->keys);
	free(n->str);
	free(n);
}

void
ydoc_free(struct ydoc *doc)
{
	if (doc == NULL)
		return;
	ynode_free(doc->root);
	free(doc->file);
	free(doc);
}

/* ---- building ---- */

struct frame {
	struct ynode *node;
	size_t cap;
	struct ynode *pending_key;	/* map: key waiting for its value */
};

struct builder {
	struct ydoc *doc;
	struct diags *d;
	const char *buf;
	size_t len;
	struct frame stack[YTREE_MAX_DEPTH + 1];
	int depth;
	size_t nodes;
	int failed;
};

static void
berr(struct builder *b, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
berr(struct builder *b, int line, int col, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	diags_add(b->d, DIAG_ERROR, b->doc->file, line, col, "%s", msg);
	b->failed = 1;
}

static struct ynode *
node_new(struct builder *b, enum ynode_type t, const yaml_mark_t *m)
{
	struct ynode *n = xcalloc(1, sizeof(*n));

	n->type = t;
	n->line = (int)m->line + 1;
	n->col = (int)m->column + 1;
	n->file = b->doc->file;
	b->nodes++;
	return n;
}

static int
keys_equal(const struct ynode *a, const struct ynode *b)
{
	return a->len == b->len && memcmp(a->str, b->str, a->len) == 0;
}

/* Attach a finished node to its parent (or make it the root). Takes
 * ownership of n in every case. */
static void
attach(struct builder *b, struct ynode *n)
{
	struct frame *f;
	struct ynode *p;
	size_t i;

	if (b->depth == 0) {
		b->doc->root = n;
		return;
	}
	f = &b->stack[b->depth - 1];
	p = f->node;
	if (p->type == YN_MAP && f->pending_key == NULL) {
		/* a key */
		if (n->type != YN_SCALAR) {
			berr(b, n->line, n->col, "a mapping key must be a plain "
			    "value, not a %s",
			    n->type == YN_MAP ? "mapping" : "list");
			ynode_free(n);
			return;
		}
		for (i = 0; i < p->n; i++)
			if (keys_equal(p->keys[i], n)) {
				berr(b, n->line, n->col, "duplicate key '%s' "
				    "(first at line %d); remove one of them",
				    n->str, p->keys[i]->line);
				break;
			}
		f->pending_key = n;
		return;
	}
	if (p->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 4;
		p->items = xrealloc(p->items, f->cap * sizeof(*p->items));
		if (p->type == YN_MAP)
			p->keys = xrealloc(p->keys, f->cap * sizeof(*p->keys));
	}
	if (p->type == YN_MAP) {
		p->keys[p->n] = f->pending_key;
		f->pending_key = NULL;
	}
	p->items[p->n++] = n;
}

static int
push(struct builder *b, struct ynode *n)
{
	if (b->depth >= YTREE_MAX_DEPTH) {
		berr(b, n->line, n->col, "nesting deeper than %d levels; "
		    "flatten the document", YTREE_MAX_DEPTH);
		ynode_free(n);
		return -1;
	}
	b->stack[b->depth].node = n;
	b->stack[b->depth].cap = 0;
	b->stack[b->depth].pending_key = NULL;
	b->depth++;
	return 0;
}

static void
pop(struct builder *b)
{
	struct frame *f = &b->stack[--b->depth];

	/* A key without a value cannot happen with a well-formed event
	 * stream; free it defensively. */
	ynode_free(f->pending_key);
	f->pending_key = NULL;
	attach(b, f->node);
}

static void
parser_error(struct builder *b, const yaml_parser_t *p)
{
	const char *what = p->problem ? p->problem : "syntax error";
	int line = (int)p->problem_mark.line + 1;
	int col = (int)p->problem_mark.column + 1;
	size_t off = p->problem_mark.index;

	if (p->error == YAML_MEMORY_ERROR) {
		berr(b, 0, 0, "out of memory while parsing");
		return;
	}
	/* Tabs are the most common mistake in hand-edited YAML and
	 * libyaml's wording for them is obscure: say it plainly. */
	if (strstr(what, "tab") != NULL || (b->buf != NULL && off < b->len &&
	    b->buf[off] == '\t')) {
		berr(b, line, col, "tab character: YAML indentation must use "
		    "spaces; replace the tab with spaces");
		return;
	}
	if (p->context != NULL)
		berr(b, line, col, "%s (%s that started at line %d)", what,
		    p->context, (int)p->context_mark.line + 1);
	else
		berr(b, line, col, "%s", what);
}

static int
check_anchor(struct builder *b, const yaml_char_t *anchor,
    const yaml_mark_t *m)
{
	if (anchor == NULL)
		return 0;
	berr(b, (int)m->line + 1, (int)m->column + 1, "anchors (&%s) are not "
	    "supported; write the value out in full", (const char *)anchor);
	return -1;
}

static struct ydoc *
parse(const char *name, const char *buf, size_t len, struct diags *d)
{
	yaml_parser_t p;
	yaml_event_t ev;
	struct builder b;
	int done = 0, ndocs = 0;
	struct ydoc *doc;

	memset(&b, 0, sizeof(b));
	doc = xcalloc(1, sizeof(*doc));
	doc->file = xstrdup(name);
	b.doc = doc;
	b.d = d;
	b.buf = buf;
	b.len = len;

	if (len > YTREE_MAX_SIZE) {
		berr(&b, 0, 0, "file is %zu bytes, more than the %d MiB a "
		    "configuration file may have", len,
		    YTREE_MAX_SIZE / (1024 * 1024));
		goto fail;
	}
	if (!yaml_parser_initialize(&p))
		fatal("yaml_parser_initialize: out of memory");
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);

	while (!done && !b.failed) {
		struct ynode *n;

		if (!yaml_parser_parse(&p, &ev)) {
			parser_error(&b, &p);
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++ndocs > 1)
				berr(&b, (int)ev.start_mark.line + 1,
				    (int)ev.start_mark.column + 1, "a second "
				    "YAML document ('---'); a file holds one "
				    "document: split it into two files");
			break;
		case YAML_ALIAS_EVENT:
			berr(&b, (int)ev.start_mark.line + 1,
			    (int)ev.start_mark.column + 1, "aliases are not "
			    "supported (*%s); write the value out in full",
			    (const char *)ev.data.alias.anchor);
			break;
		case YAML_SCALAR_EVENT:
			if (check_anchor(&b, ev.data.scalar.anchor,
			    &ev.start_mark) < 0)
				break;
			if (memchr(ev.data.scalar.value, '\0',
			    ev.data.scalar.length) != NULL) {
				berr(&b, (int)ev.start_mark.line + 1,
				    (int)ev.start_mark.column + 1,
				    "NUL characters are not allowed in values");
				break;
			}
			n = node_new(&b, YN_SCALAR, &ev.start_mark);
			n->len = ev.data.scalar.length;
			n->str = xstrndup((const char *)ev.data.scalar.value,
			    n->len);
			n->plain = ev.data.scalar.style ==
			    YAML_PLAIN_SCALAR_STYLE && ev.data.scalar.tag == NULL;
			attach(&b, n);
			break;
		case YAML_SEQUENCE_START_EVENT:
			if (check_anchor(&b, ev.data.sequence_start.anchor,
			    &ev.start_mark) < 0)
				break;
			n = node_new(&b, YN_SEQ, &ev.start_mark);
			push(&b, n);
			break;
		case YAML_MAPPING_START_EVENT:
			if (check_anchor(&b, ev.data.mapping_start.anchor,
			    &ev.start_mark) < 0)
				break;
			n = node_new(&b, YN_MAP, &ev.start_mark);
			push(&b, n);
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			if (b.depth > 0)
				pop(&b);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	/* On failure unwind whatever is half built: frames still on the
	 * stack are not attached to anything yet. */
	while (b.depth > 0) {
		struct frame *f = &b.stack[--b.depth];

		ynode_free(f->pending_key);
		ynode_free(f->node);
	}
	if (b.failed)
		goto fail;
	return doc;
fail:
	ydoc_free(doc);
	return NULL;
}

struct ydoc *
ydoc_load_mem(const char *name, const char *buf, size_t len, struct diags *d)
{
	return parse(name, buf, len, d);
}

struct ydoc *
ydoc_load(const char *file, struct diags *d)
{
	struct stat st;
	char *buf;
	size_t len;
	struct ydoc *doc;

	/* Refuse before reading: a 10 GB "config" must not be slurped. */
	if (stat(file, &st) == 0 && S_ISREG(st.st_mode) &&
	    st.st_size > YTREE_MAX_SIZE) {
		diags_add(d, DIAG_ERROR, file, 0, 0, "file is %lld bytes, more "
		    "than the %d MiB a configuration file may have",
		    (long long)st.st_size, YTREE_MAX_SIZE / (1024 * 1024));
		return NULL;
	}
	if (stat(file, &st) == 0 && !S_ISREG(st.st_mode)) {
		diags_add(d, DIAG_ERROR, file, 0, 0, "not a regular file");
		return NULL;
	}
	buf = read_file(file, &len);
	if (buf == NULL) {
		diags_add(d, DIAG_ERROR, file, 0, 0, "cannot read: %s",
		    strerror(errno));
		return NULL;
	}
	doc = parse(file, buf, len, d);
	free(buf);
	return doc;
}

/* ---- access ---- */

const struct ynode *
ynode_get(const struct ynode *m, const char *key)
{
	size_t i, kl;

	if (m == NULL || m->type != YN_MAP || key == NULL)
		return NULL;
	kl = strlen(key);
	for (i = 0; i < m->n; i++)
		if (m->keys[i]->len == kl && memcmp(m->keys[i]->str, key,
		    kl) == 0)
			return m->items[i];
	return NULL;
}

const struct ynode *
ynode_key_of(const struct ynode *m, const char *key)
{
	size_t i;

	if (m == NULL || m->type != YN_MAP || key == NULL)
		return NULL;
	for (i = 0; i < m->n; i++)
		if (strcmp(m->keys[i]->str, key) == 0)
			return m->keys[i];
	return NULL;
}

const char *
ynode_type_name(const struct ynode *n)
{
	if (n == NULL)
		return "nothing";
	switch (n->type) {
	case YN_MAP:
		return "a mapping";
	case YN_SEQ:
		return "a list";
	default:
		return ynode_is_null(n) ? "empty" : "a value";
	}
}

int
ynode_is_null(const struct ynode *n)
{
	if (n == NULL)
		return 1;
	if (n->type != YN_SCALAR || !n->plain)
		return 0;
	return n->len == 0 || strcmp(n->str, "~") == 0 ||
	    strcmp(n->str, "null") == 0 || strcmp(n->str, "Null") == 0 ||
	    strcmp(n->str, "NULL") == 0;
}

void
ynode_diag(const struct ynode *n, struct diags *d, enum diag_severity s,
    const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n == NULL)
		diags_add(d, s, NULL, 0, 0, "%s", msg);
	else
		diags_add(d, s, n->file, n->line, n->col, "%s", msg);
}

const char *
ynode_str(const struct ynode *n, const char *what, struct diags *d)
{
	if (n == NULL) {
		return NULL;
	}
	if (n->type != YN_SCALAR || ynode_is_null(n)) {
		ynode_diag(n, d, DIAG_ERROR, "%s must be a text value, not %s",
		    what, ynode_type_name(n));
		return NULL;
	}
	return n->str;
}

int
ynode_expect(const struct ynode *n, enum ynode_type t, const char *what,
    struct diags *d)
{
	static const char *names[] = { "a text value", "a list", "a mapping" };

	if (n != NULL && n->type == t && !(t == YN_SCALAR && ynode_is_null(n)))
		return 0;
	ynode_diag(n, d, DIAG_ERROR, "%s must be %s, not %s", what, names[t],
	    ynode_type_name(n));
	return -1;
}

int
ynode_bool(const struct ynode *n, int *out, struct diags *d)
{
	static const char *yes[] = { "true", "True", "TRUE" };
	static const char *no[] = { "false", "False", "FALSE" };
	size_t i;

	if (n != NULL && n->type == YN_SCALAR && n->plain) {
		for (i = 0; i < ARRAY_LEN(yes); i++) {
			if (strcmp(n->str, yes[i]) == 0) {
				*out = 1;
				return 0;
			}
			if (strcmp(n->str, no[i]) == 0) {
				*out = 0;
				return 0;
			}
		}
	}
	ynode_diag(n, d, DIAG_ERROR, "expected true or false, not %s%s%s%s",
	    n && n->type == YN_SCALAR ? "'" : "",
	    n && n->type == YN_SCALAR ? n->str : ynode_type_name(n),
	    n && n->type == YN_SCALAR ? "'" : "",
	    n && n->type == YN_SCALAR && !n->plain ? " (quoted)" : "");
	return -1;
}

int
ynode_int(const struct ynode *n, long long *out, struct diags *d)
{
	const char *s;
	char *end;
	long long v;

	if (n == NULL || n->type != YN_SCALAR || !n->plain || n->len == 0)
		goto bad;
	s = n->str;
	if (!(*s == '-' || *s == '+' || (*s >= '0' && *s <= '9')))
		goto bad;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		goto bad;
	*out = v;
	return 0;
bad:
	ynode_diag(n, d, DIAG_ERROR, "expected a whole number, not %s%s%s",
	    n && n->type == YN_SCALAR ? "'" : "",
	    n && n->type == YN_SCALAR ? n->str : ynode_type_name(n),
	    n && n->type == YN_SCALAR ? "'" : "");
	return -1;
}

/* Levenshtein distance, bounded inputs (keys are short). */
size_t
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j;
	size_t *prev, *cur, *t, r;

	if (la > 64 || lb > 64)
		return (size_t)-1;
	prev = xcalloc(lb + 1, sizeof(size_t));
	cur = xcalloc(lb + 1, sizeof(size_t));
	for (j = 0; j <= lb; j++)
		prev[j] = j;
	for (i = 1; i <= la; i++) {
		cur[0] = i;
		for (j = 1; j <= lb; j++) {
			size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
			size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);

			cur[j] = del < ins ? del : ins;
			if (sub < cur[j])
				cur[j] = sub;
		}
		t = prev;
		prev = cur;
		cur = t;
	}
	r = prev[lb];
	free(prev);
	free(cur);
	return r;
}

const char *
closest_name(const char *word, const char *const *names, size_t n)
{
	size_t i, best = (size_t)-1, dist;
	size_t wl = strlen(word);
	size_t limit = wl <= 4 ? 1 : wl <= 8 ? 2 : 3;
	const char *pick = NULL;

	for (i = 0; i < n && names[i]; i++) {
		dist = edit_distance(word, names[i]);
		/* A mere case difference is always a good suggestion. */
		if (ascii_casecmp(word, names[i]) == 0)
			dist = 0;
		if (dist < best) {
			best = dist;
			pick = names[i];
		}
	}
	return best <= limit ? pick : NULL;
}

int
ynode_check_keys(const struct ynode *m, const char *const *known,
    struct diags *d)
{
	size_t i, nk = 0;
	int bad = 0;

	if (m == NULL || m->type != YN_MAP)
		return 0;
	while (known[nk])
		nk++;
	for (i = 0; i < m->n; i++) {
		const struct ynode *k = m->keys[i];
		const char *s;
		size_t j;
		int found = 0;

		for (j = 0; j < nk; j++)
			if (strcmp(k->str, known[j]) == 0)
				found = 1;
		if (found)
			continue;
		bad++;
		s = closest_name(k->str, known, nk);
		if (s != NULL) {
			ynode_diag(k, d, DIAG_ERROR, "unknown key '%s' (did you "
			    "mean '%s'?)", k->str, s);
		} else {
			char list[512];
			size_t off = 0;

			list[0] = '\0';
			for (j = 0; j < nk && off < sizeof(list); j++)
				off += (size_t)snprintf(list + off,
				    sizeof(list) - off, "%s%s", j ? ", " : "",
				    known[j]);
			ynode_diag(k, d, DIAG_ERROR, "unknown key '%s'; "
			    "expected one of: %s", k->str, list);
		}
	}
	return bad;
}

/* ---- directories ---- */

static int
has_yaml_ext(const char *n)
{
	size_t l = strlen(n);

	return n[0] != '.' && ((l > 5 && strcmp(n + l - 5, ".yaml") == 0) ||
	    (l > 4 && strcmp(n + l - 4, ".yml") == 0));
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char **
yaml_files_in(const char *dir, size_t *n, struct diags *d)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	char **v = NULL;
	size_t cap = 0;

	*n = 0;
	if (dp == NULL) {
		diags_add(d, DIAG_ERROR, dir, 0, 0, "cannot read directory: %s",
		    strerror(errno));
		return NULL;
	}
	while ((e = readdir(dp)) != NULL) {
		if (!has_yaml_ext(e->d_name))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[(*n)++] = xasprintf("%s%s%s", dir, dir[0] && dir[strlen(dir) -
		    1] == '/' ? "" : "/", e->d_name);
	}
	closedir(dp);
	if (*n)
		qsort(v, *n, sizeof(*v), cmp_str);
	return v;
}

