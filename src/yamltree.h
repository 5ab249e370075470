/*
 * yamltree.h - libyaml into a small immutable tree that keeps every node's
 * position, so every later check can report FILE:LINE:COL.
 *
 * Aliases and anchors are rejected (no config needs them, and they are the
 * vector of "billion laughs"); depth is bounded; duplicate map keys are an
 * error; tabs in indentation are reported by libyaml as a scanner error.
 */
#ifndef SOVGATE_YAMLTREE_H
#define SOVGATE_YAMLTREE_H

#include <stddef.h>
#include "diag.h"

#define YTREE_MAX_DEPTH	64		/* nesting of maps and lists */
#define YTREE_MAX_SIZE	(4 * 1024 * 1024)	/* bytes of one file */

enum ynode_type { YN_SCALAR, YN_SEQ, YN_MAP };

struct ynode {
	enum ynode_type type;
	int line, col;		/* 1-based */
	const char *file;	/* owned by the tree's root document */
	/* YN_SCALAR */
	char *str;
	size_t len;
	int plain;		/* unquoted: null/true/numbers are plain only */
	/* YN_SEQ: items; YN_MAP: keys[i] -> items[i] (keys are scalars) */
	struct ynode **items;
	struct ynode **keys;
	size_t n;
};

struct ydoc {
	char *file;
	struct ynode *root;	/* NULL for an empty document */
};

/* Parse FILE. On failure returns NULL and adds the error to d. */
struct ydoc *ydoc_load(const char *file, struct diags *d);
/* Parse from memory (tests); name is used in messages. */
struct ydoc *ydoc_load_mem(const char *name, const char *buf, size_t len,
    struct diags *d);
void ydoc_free(struct ydoc *doc);	/* NULL is a no-op */

/* Map lookup; NULL when absent or when m is not a map. */
const struct ynode *ynode_get(const struct ynode *m, const char *key);
/* Scalar helpers: 0 on success, -1 and a diag otherwise. */
int ynode_bool(const struct ynode *n, int *out, struct diags *d);
int ynode_int(const struct ynode *n, long long *out, struct diags *d);
/* Adds "FILE:LINE:COL" diag about n. */
void ynode_diag(const struct ynode *n, struct diags *d, enum diag_severity s,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Reports every key of map m not in the NULL-terminated list `known`, with
 * a "did you mean" suggestion from the list. Returns the number reported. */
int ynode_check_keys(const struct ynode *m, const char *const *known,
    struct diags *d);

/* ---- additions ---- */
/* The key node of m named key (for positions); NULL when absent. */
const struct ynode *ynode_key_of(const struct ynode *m, const char *key);
/* "a mapping", "a list", "a value", "empty": for type errors. */
const char *ynode_type_name(const struct ynode *n);
/* A plain null, ~, or nothing at all (n == NULL). */
int ynode_is_null(const struct ynode *n);
/* n's text when it is a non-null scalar; else NULL and (when n is not
 * NULL) an error "WHAT must be a text value". Absent (NULL) is no error. */
const char *ynode_str(const struct ynode *n, const char *what,
    struct diags *d);
/* 0 when n is of type t; else -1 and an error "WHAT must be ...". */
int ynode_expect(const struct ynode *n, enum ynode_type t, const char *what,
    struct diags *d);
/* Levenshtein distance; (size_t)-1 for words over 64 bytes. */
size_t edit_distance(const char *a, const char *b);
/* The name in names[0..n) (stops at NULL) close enough to word to be a
 * likely typo, or NULL. */
const char *closest_name(const char *word, const char *const *names,
    size_t n);
/* Paths (dir/NAME) of every *.yaml and *.yml in dir, not hidden, sorted by
 * name; *n gets the count. NULL with an error in d when dir cannot be read
 * (NULL with *n == 0 and no error when it is simply empty). The caller
 * frees each string and the array. */
char **yaml_files_in(const char *dir, size_t *n, struct diags *d);

#endif
