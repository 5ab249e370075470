/*
 * util.h - small helpers shared by every subsystem: logging, allocation,
 * time, parsing of sizes and durations, hashing, identifiers.
 */
#ifndef SOVGATE_UTIL_H
#define SOVGATE_UTIL_H

#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <stdarg.h>
#include <string.h>

#include <openssl/types.h>

/* 1 when built with AddressSanitizer: object caches step aside so that
 * ASan sees every lifetime. */
#if defined(__SANITIZE_ADDRESS__)
#define SG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SG_ASAN 1
#endif
#endif
#ifndef SG_ASAN
#define SG_ASAN 0
#endif

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERR };

/* Operational log on stderr: "LEVEL component: message". Thread-safe. */
void log_set_level(enum log_level lvl);
void log_msg(enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_err(...)   log_msg(LOG_LVL_ERR, __VA_ARGS__)

/* For writers of pre-formatted batches (the access log). */
void log_lock(void);
void log_unlock(void);

/* Startup failures and broken invariants only: prints and exits 2. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Allocation that aborts on exhaustion: a gateway that cannot allocate a few
 * bytes cannot do anything useful, and checking every small allocation
 * hides the real error paths. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The strings up to a NULL, end to end, in one allocation (no format). */
char *xconcat(const char *first, ...) __attribute__((sentinel));

/* Wall clock in milliseconds since the epoch, and a monotonic clock. */
int64_t now_ms(void);
int64_t mono_ms(void);
/* "2026-11-28T09:03:24.123Z" into out (at least 25 bytes). */
void fmt_rfc3339_ms(int64_t ms, char *out, size_t outlen);
/* RFC 3339 ("2026-11-28T09:00:00Z", "2026-11-28", with offset) or relative
 * ("-24h", "-7d", "-30m", "-15s") relative to now_ms(). 0 on success. */
int parse_time_arg(const char *s, int64_t *out_ms);

/* "8MiB", "512KiB", "1MB", "1024" -> bytes. 0 on success. */
int parse_size(const char *s, uint64_t *out);
/* "10s", "250ms", "5m", "2h", "30d", "0" -> milliseconds. 0 on success. */
int parse_duration_ms(const char *s, int64_t *out);

/* Decimal digits of v (with a '-' when negative), written backwards so
 * that they end just before end; returns where they start. Room for 20
 * characters is enough. For hot paths where snprintf was a visible cost. */
char *fmt_u64_before(char *end, uint64_t v);
char *fmt_i64_before(char *end, int64_t v);

/*
 * Gathers small pieces in a buffer the caller provides and hands them to
 * sink in large ones: many small calls into OpenSSL's digest or into an
 * evbuffer cost far more than a memcpy each (the log's hash chains, the
 * access log). A piece larger than the buffer goes straight through;
 * gather_flush hands over the rest.
 */
typedef void (*gather_sink)(void *arg, const void *p, size_t n);
struct gather {
	gather_sink sink;
	void *arg;
	unsigned char *b;
	size_t n, cap;
};

static inline void
gather_flush(struct gather *g)
{
	if (g->n > 0)
		g->sink(g->arg, g->b, g->n);
	g->n = 0;
}

static inline void
gather_add(struct gather *g, const void *p, size_t len)
{
	if (len > g->cap - g->n) {
		gather_flush(g);
		if (len >= g->cap) {
			g->sink(g->arg, p, len);
			return;
		}
	}
	memcpy(g->b + g->n, p, len);
	g->n += len;
}

/* A growing NUL-terminated string. Zero-initialise; sb_take hands the
 * text over (an empty string if nothing was added). */
struct sb {
	char *p;
	size_t n, cap;
};
void sb_grow(struct sb *b, size_t more);	/* room for more + NUL */
void sb_add(struct sb *b, const char *s, size_t n);
void sb_str(struct sb *b, const char *s);
void sb_ch(struct sb *b, char c);
void sb_int(struct sb *b, int64_t v);	/* decimal */
char *sb_take(struct sb *b);

/* Random (v4) UUID, 36 chars + NUL. */
void uuid_v4(char out[37]);
/* RFC 9562 version 7: 48 bits of Unix milliseconds, then random bits.
 * Decision ids are v7 so that the log's id indexes grow at their right
 * edge (a random id dirtied a random index page at every insert). */
void uuid_v7(char out[37]);

/* SHA-256, fetched from OpenSSL once (implicit fetches are slow). */
const EVP_MD *sha256_md(void);
/* SHA-256 of a then b (bn may be 0) with the context c. */
void sha256_2(EVP_MD_CTX *c, const void *a, size_t an, const void *b,
    size_t bn, unsigned char out[32]);
/* HMAC-SHA256; c may be NULL (a temporary context is used). */
void hmac_sha256(EVP_MD_CTX *c, const void *key, size_t klen,
    const void *msg, size_t mlen, unsigned char out[32]);
/* SHA-256 of a buffer, as 32 bytes or 64 lowercase hex chars + NUL. */
void sha256_raw(const void *p, size_t n, unsigned char out[32]);
void sha256_hex(const void *p, size_t n, char out[65]);
void hex_encode(const unsigned char *in, size_t n, char *out /* 2n+1 */);
/* 0..15 for a hex digit of either case, -1 otherwise. */
int hex_digit_value(int c);
/* Returns 0 on success; out must hold n/2 bytes. */
int hex_decode(const char *in, size_t n, unsigned char *out);

/* Constant-time comparison: 1 if equal. */
int ct_equal(const void *a, const void *b, size_t n);

/* ASCII case-insensitive helpers. */
int ascii_casecmp(const char *a, const char *b);
int ascii_ncasecmp(const char *a, const char *b, size_t n);

/* The CPUs this process may run on (its affinity mask, which a cpuset or
 * taskset may have narrowed), in ascending order: the first max ids go to
 * out. Returns how many there are (possibly more than max), or -1. */
int cpus_allowed(int *out, int max);
/* Pin thread th to one CPU. 0, or -1 with errno set. */
int pin_thread(pthread_t th, int cpu);

/* Read a whole file; NULL and errno on failure. *len gets its size. */
char *read_file(const char *path, size_t *len);

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
