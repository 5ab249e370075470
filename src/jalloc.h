/*
 * jalloc.h - the allocator sovgate gives jansson.
 *
 * A request's parse tree is some thirty to a hundred small nodes made and
 * freed together. glibc's per-thread cache keeps only seven free chunks of
 * a size, so most of them went through _int_malloc and the fast bins
 * (malloc and free were the largest user-space cost of a worker after the
 * kernel's). Here each thread keeps its own free lists of small blocks,
 * bounded per size, and everything larger goes to malloc.
 */
#ifndef SOVGATE_JALLOC_H
#define SOVGATE_JALLOC_H

#include <stddef.h>

/* Install as jansson's allocator. Call before anything allocates a JSON
 * value (first thing in main): a value must be freed by the allocator that
 * made it. Under AddressSanitizer it installs nothing, so that ASan still
 * sees every node's lifetime. */
void jalloc_install(void);

/* The allocator itself (tests call it directly). */
void *jalloc_malloc(size_t n);
void jalloc_free(void *p);	/* NULL is a no-op */

#endif
