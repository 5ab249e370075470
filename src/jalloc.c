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

#include <event2/event.h>
#include <jansson.h>
#include <sqlite3.h>

#define JA_CLASSES	64		/* up to 64 * 16 + 8 = 1032 bytes */
#define JA_SMALL_MAX	(16 * JA_CLASSES + 8)
#define JA_KEEP_BYTES	(32 * 1024)	/* kept free per class and thread */
/*
 * Big classes: 2^b + 8 usable bytes for b = 11..14 (2056 to 16392), the
 * sizes of libevent's buffer chains (1 KB doubled until the data fits, 8
 * KB for a socket read). glibc's thread cache stops at 1032 bytes, so
 * each of them went through _int_malloc, often after malloc_consolidate;
 * a request made about ten.
 */
#define JA_BIG_MIN	11
#define JA_BIG		4
#define JA_BIG_KEEP	(64 * 1024)	/* per big class and thread */
#define JA_SLOTS	(JA_CLASSES + 1 + JA_BIG)

struct ja_free {
	struct ja_free *next;
};

struct ja_cache {
	struct ja_free *head[JA_SLOTS];	/* [1..64] small, then big */
	unsigned n[JA_SLOTS];
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

	for (k = 1; k < JA_SLOTS; k++)
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

/* The slot and block size for a request of n bytes; 0 if none. */
static size_t
slot_of(size_t n, size_t *size)
{
	size_t m = n <= 24 ? 1 : (n - 8 + 15) / 16, b;

	if (m <= JA_CLASSES) {
		*size = 16 * m + 8;
		return m;
	}
	for (b = 0; b < JA_BIG; b++)
		if (n <= ((size_t)1 << (JA_BIG_MIN + b)) + 8) {
			*size = ((size_t)1 << (JA_BIG_MIN + b)) + 8;
			return JA_CLASSES + 1 + b;
		}
	return 0;
}

void *
jalloc_malloc(size_t n)
{
	size_t size, m = slot_of(n, &size);
	struct ja_cache *c;
	struct ja_free *f;

	if (m == 0)
		return malloc(n);
	c = cache_get();
	if ((f = c->head[m]) != NULL) {
		c->head[m] = f->next;
		c->n[m]--;
		return f;
	}
	return malloc(size);
}

void *
jalloc_realloc(void *p, size_t n)
{
	if (p == NULL)
		return jalloc_malloc(n);
	if (n == 0) {
		jalloc_free(p);
		return NULL;
	}
	/* Blocks are malloc's own: realloc may move them anywhere. */
	return malloc_usable_size(p) >= n ? p : realloc(p, n);
}

void
jalloc_free(void *p)
{
	size_t u, m, size = 0;
	struct ja_cache *c;

	if (p == NULL)
		return;
	u = malloc_usable_size(p);
	m = u >= 24 ? slot_of(u, &size) : 0;
	/* Only exact class sizes (a block from malloc(n) of another size
	 * may have more room: it is not the class's, so it goes back). */
	if (m == 0 || u != size || (c = cache_get())->n[m] * u >=
	    (m <= JA_CLASSES ? JA_KEEP_BYTES : JA_BIG_KEEP)) {
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
	/* Small classes only: SQLite's page buffers (a 2 KB page and its
	 * header) would take a 4 KB class each, for the whole page cache. */
	if (n <= 0)
		return NULL;
	return n <= JA_SMALL_MAX ? jalloc_malloc((size_t)n) :
	    malloc((size_t)n);
}

static void *
sq_realloc(void *p, int n)
{
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
	size_t size;

	return n > 0 && n <= JA_SMALL_MAX &&
	    slot_of((size_t)n, &size) != 0 ? (int)size : n;
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

	if (SG_ASAN)
		return;
	json_set_alloc_funcs(jalloc_malloc, jalloc_free);
	event_set_mem_functions(jalloc_malloc, jalloc_realloc, jalloc_free);
	if (sqlite3_config(SQLITE_CONFIG_MALLOC, &sq) != SQLITE_OK)
		fatal("jalloc: SQLite refused its allocator");
}
