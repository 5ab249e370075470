/*
 * jalloc.h - the allocator sovgate gives jansson.
 *
 * A request's parse tree is some thirty to a hundred small nodes made and
 * freed together. glibc's per-thread cache keeps only seven free chunks of
 * a size, so most of them went through _int_malloc and the fast bins
 * (malloc and free were the largest user-space cost of a worker after the
 * kernel's). Here each thread keeps its own free lists of small blocks,
 * bounded per size, and everything larger goes to malloc. SQLite, built
 * without lookaside on Debian, gets the same lists for its cursors and
 * records.
 */
#ifndef SOVGATE_JALLOC_H
#define SOVGATE_JALLOC_H

#include <stddef.h>

/* Install as jansson's, libevent's and SQLite's allocator. Call first
 * thing in main, before any JSON value exists and before SQLite is used:
 * a block must be freed by the allocator that made it (SQLite refuses a
 * late change). Under AddressSanitizer it installs nothing, so that ASan
 * still sees every node's lifetime. */
void jalloc_install(void);

/* The allocator itself (tests call it directly). */
void *jalloc_malloc(size_t n);
void *jalloc_realloc(void *p, size_t n);	/* n = 0 frees */
void jalloc_free(void *p);	/* NULL is a no-op */

#endif
