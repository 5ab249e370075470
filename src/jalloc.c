/*
 * jalloc.c - see jalloc.h.
 *
 * The blocks are malloc's own, so anything jansson hands out (json_dumps'
 * strings) may still be released with free(). A block's size class comes
 * from malloc_usable_size: glibc's chunks are 16-byte multiples with 8
 * usable bytes less, so class m holds blocks of 16m + 8 usable bytes.
 * Free lists are per thread and need no lock: a block freed on another
 * thread than the one that made it joins that thread's list. A thread's
 * lists go back to malloc when it exits (a pthread key destructor).
 */
#include "jalloc.h"
#include "util.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>

#include <jansson.h>
#include <sqlite3.h>

#define JA_CLASSES	64		/* up to 64 * 16 + 8 = 1032 bytes */
#define JA_KEEP_BYTES	(32 * 1024)	/* kept free per class and thread */

struct ja_free {
	struct ja_free *next;
};

struct ja_cache {
	struct ja_free *head[JA_CLASSES + 1];
	unsigned n[JA_CLASSES + 1];
};

static _Thread_local struct ja_cache *cache;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;

static void
cache_drop(void *arg)
{
	struct ja_cache *c = arg;
	struct ja_free *f;
	int k;

	for (k = 1; k <= JA_CLASSES; k++)
		while ((f = c->head[k]) != NULL) {
			c->head[k] = f->next;
			free(f);
		}
	free(c);
	cache = NULL;
}

static void
key_make(void)
{
	if (pthread_key_create(&cache_key, cache_drop) != 0)
		fatal("jalloc: pthread_key_create failed");
}

static struct ja_cache *
cache_get(void)
{
	if (cache == NULL) {
		pthread_once(&cache_once, key_make);
		cache = xcalloc(1, sizeof(*cache));
		pthread_setspecific(cache_key, cache);
	}
	return cache;
}

void *
jalloc_malloc(size_t n)
{
	size_t m = n <= 24 ? 1 : (n - 8 + 15) / 16;
	struct ja_cache *c;
	struct ja_free *f;

	if (m > JA_CLASSES)
		return malloc(n);
	c = cache_get();
	if ((f = c->head[m]) != NULL) {
		c->head[m] = f->next;
		c->n[m]--;
		return f;
	}
	return malloc(16 * m + 8);
}

void
jalloc_free(void *p)
{
	size_t u, m;
	struct ja_cache *c;

	if (p == NULL)
		return;
	u = malloc_usable_size(p);
	m = u >= 24 ? (u - 8) / 16 : 0;
	/* Only exact class sizes (a block from malloc(n) of another size
	 * may have more room: it is not the class's, so it goes back). */
	if (m < 1 || m > JA_CLASSES || u != 16 * m + 8 ||
	    (c = cache_get())->n[m] * u >= JA_KEEP_BYTES) {
		free(p);
		return;
	}
	((struct ja_free *)p)->next = c->head[m];
	c->head[m] = p;
	c->n[m]++;
}

/* SQLite's allocator interface over the same lists. Debian builds SQLite
 * without lookaside (SQLITE_OMIT_LOOKASIDE), so every cursor and record
 * of the log writer was a malloc and a free: seventeen per request, most
 * of them through _int_malloc. */
static void *
sq_malloc(int n)
{
	return n > 0 ? jalloc_malloc((size_t)n) : NULL;
}

static void *
sq_realloc(void *p, int n)
{
	/* Blocks are malloc's own: realloc may move them anywhere. */
	return n > 0 ? realloc(p, (size_t)n) : NULL;
}

static int
sq_size(void *p)
{
	return p ? (int)malloc_usable_size(p) : 0;
}

static int
sq_roundup(int n)
{
	return n <= 24 ? 24 : n <= 16 * JA_CLASSES + 8 ?
	    (int)(16 * (((size_t)n - 8 + 15) / 16) + 8) : n;
}

static int
sq_init(void *arg)
{
	(void)arg;
	return SQLITE_OK;
}

static void
sq_shutdown(void *arg)
{
	(void)arg;
}

void
jalloc_install(void)
{
	static const sqlite3_mem_methods sq = { sq_malloc, jalloc_free,
		sq_realloc, sq_size, sq_roundup, sq_init, sq_shutdown, NULL };

#if defined(__SANITIZE_ADDRESS__)
	return;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	return;
#endif
#endif
	json_set_alloc_funcs(jalloc_malloc, jalloc_free);
	if (sqlite3_config(SQLITE_CONFIG_MALLOC, &sq) != SQLITE_OK)
		fatal("jalloc: SQLite refused its allocator");
}
