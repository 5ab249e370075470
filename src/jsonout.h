/*
 * jsonout.h - compact JSON text from a jansson tree, fast.
 *
 * A request body that repeats a key, and every body an adapter
 * translates, is written out from the tree we classified (so the
 * upstream parses exactly what we looked at: no duplicate keys, no
 * parser differential); a body with unique keys goes as its own text
 * with the model replaced (struct request_text). json_dumps was a large
 * share of a proxied request: it detects cycles by formatting each
 * container's address into a hash table, and writes through a callback
 * per piece. This writer walks the tree once into one growing buffer.
 *
 * The output is what json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII)
 * writes, byte for byte (tests/check_adapters.c compares them): keys in
 * insertion order, non-ASCII as \uXXXX (surrogate pairs above U+FFFF),
 * reals as jansson formats them.
 */
#ifndef SOVGATE_JSONOUT_H
#define SOVGATE_JSONOUT_H

#include <stddef.h>
#include <jansson.h>

#include "util.h"

/* A new NUL-terminated string and its length, or NULL (a tree nested
 * deeper than jansson would dump, or a real that is not finite). */
char *json_out_compact(const json_t *j, size_t *len);
/* Append s (n bytes of UTF-8) as a JSON string literal, escaped as
 * above; -1 if s is not UTF-8 (b then holds a partial literal). */
int json_out_string(struct sb *b, const char *s, size_t n);

#endif
