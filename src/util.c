/*
 * util.c - see util.h.
 */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

static enum log_level g_level = LOG_LVL_INFO;
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;

void
log_set_level(enum log_level lvl)
{
	g_level = lvl;
}

static void
vlog(enum log_level lvl, const char *fmt, va_list ap)
{
	static const char *names[] = { "debug", "info", "warn", "error" };
	char ts[32];

	if (lvl < g_level)
		return;
	fmt_rfc3339_ms(now_ms(), ts, sizeof(ts));
	/* One write per line under a lock so lines of threads do not mix. */
	pthread_mutex_lock(&g_log_mu);
	fprintf(stderr, "%s %s ", ts, names[lvl]);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	fflush(stderr);
	pthread_mutex_unlock(&g_log_mu);
}

void
log_lock(void)
{
	pthread_mutex_lock(&g_log_mu);
}

void
log_unlock(void)
{
	pthread_mutex_unlock(&g_log_mu);
}

void
log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(lvl, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	fputs("sovgate: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		fatal("out of memory allocating %zu bytes", n);
	return p;
}

void *
xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);

	if (p == NULL)
		fatal("out of memory allocating %zu x %zu bytes", n, sz);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		fatal("out of memory reallocating %zu bytes", n);
	return q;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
xconcat(const char *first, ...)
{
	va_list ap;
	const char *p;
	size_t n = 0;
	char *out, *o;

	va_start(ap, first);
	for (p = first; p != NULL; p = va_arg(ap, const char *))
		n += strlen(p);
	va_end(ap);
	o = out = xmalloc(n + 1);
	va_start(ap, first);
	for (p = first; p != NULL; p = va_arg(ap, const char *)) {
		size_t l = strlen(p);

		memcpy(o, p, l);
		o += l;
	}
	va_end(ap);
	*o = '\0';
	return out;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap, ap2;
	int n;
	char *p;

	va_start(ap, fmt);
	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		fatal("xasprintf: bad format");
	p = xmalloc((size_t)n + 1);
	vsnprintf(p, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	return p;
}

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
fmt_rfc3339_ms(int64_t ms, char *out, size_t outlen)
{
	/* The date and time of day are formatted once per second and
	 * thread: the access log stamps every request. */
	static __thread int64_t cached_sec = -1;
	static __thread char cached[64];
	int64_t sec = ms / 1000;
	int frac = (int)(ms % 1000);

	if (ms < 0 || outlen < 25) {
		time_t t = (time_t)sec;
		struct tm tm;

		gmtime_r(&t, &tm);
		snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, frac < 0 ? -frac : frac);
		return;
	}
	if (sec != cached_sec) {
		time_t t = (time_t)sec;
		struct tm tm;

		gmtime_r(&t, &tm);
		snprintf(cached, sizeof(cached), "%04d-%02d-%02dT%02d:%02d:%02d",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
		cached_sec = sec;
	}
	memcpy(out, cached, 19);
	out[19] = '.';
	out[20] = (char)('0' + frac / 100);
	out[21] = (char)('0' + frac / 10 % 10);
	out[22] = (char)('0' + frac % 10);
	out[23] = 'Z';
	out[24] = '\0';
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), no timezone games. */
static int64_t
days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int era = (y >= 0 ? y : y - 399) / 400;
	int yoe = y - era * 400;
	int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (int64_t)era * 146097 + doe - 719468;
}

int
parse_time_arg(const char *s, int64_t *out_ms)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
	const char *p;
	int64_t ms = 0;

	if (s == NULL || *s == '\0')
		return -1;
	if (s[0] == '-' && isdigit((unsigned char)s[1])) {
		int64_t dur;

		if (parse_duration_ms(s + 1, &dur) < 0)
			return -1;
		*out_ms = now_ms() - dur;
		return 0;
	}
	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31)
		return -1;
	p = s + 10;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		int k = 0;

		if (sscanf(p + 1, "%2d:%2d:%2d%n", &h, &mi, &sec, &k) != 3 ||
		    k != 8)
			return -1;
		if (h > 23 || mi > 59 || sec > 60)
			return -1;
		p += 1 + k;
		if (*p == '.') {
			int digits = 0;

			p++;
			while (isdigit((unsigned char)*p)) {
				if (digits < 3)
					ms = ms * 10 + (*p - '0');
				digits++;
				p++;
			}
			if (digits == 0)
				return -1;
			while (digits < 3) {
				ms *= 10;
				digits++;
			}
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int oh, om, sign = *p == '-' ? -1 : 1, k2 = 0;

			if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k2) != 2 ||
			    k2 != 5)
				return -1;
			/* local = UTC + offset, so UTC = local - offset */
			h -= sign * oh;
			mi -= sign * om;
			p += 1 + k2;
		} else {
			return -1;
		}
	}
	if (*p != '\0')
		return -1;
	*out_ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 +
	    (int64_t)sec * 1000 + ms;
	return 0;
}

int
parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	while (*end == ' ')
		end++;
	if (*end == '\0' || strcmp(end, "B") == 0)
		mul = 1;
	else if (strcmp(end, "KiB") == 0 || strcmp(end, "K") == 0 ||
	    strcmp(end, "k") == 0)
		mul = 1024ULL;
	else if (strcmp(end, "MiB") == 0 || strcmp(end, "M") == 0)
		mul = 1024ULL * 1024;
	else if (strcmp(end, "GiB") == 0 || strcmp(end, "G") == 0)
		mul = 1024ULL * 1024 * 1024;
	else if (strcmp(end, "KB") == 0 || strcmp(end, "kB") == 0)
		mul = 1000ULL;
	else if (strcmp(end, "MB") == 0)
		mul = 1000ULL * 1000;
	else if (strcmp(end, "GB") == 0)
		mul = 1000ULL * 1000 * 1000;
	else
		return -1;
	if (v > UINT64_MAX / mul)
		return -1;
	*out = (uint64_t)v * mul;
	return 0;
}

int
parse_duration_ms(const char *s, int64_t *out)
{
	char *end;
	double v;
	double mul;

	if (s == NULL || !(isdigit((unsigned char)*s) || *s == '.'))
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || v < 0)
		return -1;
	if (*end == '\0') {
		if (v != 0)	/* a bare number is ambiguous unless 0 */
			return -1;
		mul = 0;
	} else if (strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "s") == 0)
		mul = 1000;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		mul = 60000;
	else if (strcmp(end, "h") == 0)
		mul = 3600000;
	else if (strcmp(end, "d") == 0)
		mul = 86400000;
	else if (strcmp(end, "w") == 0)
		mul = 7 * 86400000.0;
	else if (strcmp(end, "y") == 0)
		mul = 365 * 86400000.0;
	else
		return -1;
	if (v * mul > 9e15)
		return -1;
	*out = (int64_t)(v * mul);
	return 0;
}

char *
fmt_u64_before(char *end, uint64_t v)
{
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return end;
}

char *
fmt_i64_before(char *end, int64_t v)
{
	end = fmt_u64_before(end, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
	if (v < 0)
		*--end = '-';
	return end;
}

void
sb_grow(struct sb *b, size_t more)
{
	if (b->n + more + 1 <= b->cap)
		return;
	while (b->n + more + 1 > b->cap)
		b->cap = b->cap ? b->cap * 2 : 256;
	b->p = xrealloc(b->p, b->cap);
}

void
sb_add(struct sb *b, const char *s, size_t n)
{
	sb_grow(b, n);
	memcpy(b->p + b->n, s, n);
	b->n += n;
	b->p[b->n] = '\0';
}

void
sb_str(struct sb *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

void
sb_ch(struct sb *b, char c)
{
	if (b->n + 2 > b->cap)
		sb_grow(b, 1);
	b->p[b->n++] = c;
	b->p[b->n] = '\0';
}

void
sb_int(struct sb *b, int64_t v)
{
	char d[24], *p = fmt_i64_before(d + sizeof(d), v);

	sb_add(b, p, (size_t)(d + sizeof(d) - p));
}

char *
sb_take(struct sb *b)
{
	if (b->p == NULL)
		return xstrdup("");
	return b->p;
}

/* Random bytes from a per-thread pool refilled 256 bytes at a time: the
 * DRBG call was a visible cost per request. */
static void
pool_bytes(unsigned char *b, size_t n)
{
	static __thread unsigned char pool[256];
	static __thread size_t used = sizeof(pool);

	if (used + n > sizeof(pool)) {
		if (RAND_bytes(pool, sizeof(pool)) != 1)
			fatal("RAND_bytes failed: no entropy for ids");
		used = 0;
	}
	memcpy(b, pool + used, n);
	OPENSSL_cleanse(pool + used, n);
	used += n;
}

/* 16 bytes as 8-4-4-4-12 lowercase hex. */
static void
uuid_format(const unsigned char b[16], char out[37])
{
	hex_encode(b, 4, out);
	out[8] = '-';
	hex_encode(b + 4, 2, out + 9);
	out[13] = '-';
	hex_encode(b + 6, 2, out + 14);
	out[18] = '-';
	hex_encode(b + 8, 2, out + 19);
	out[23] = '-';
	hex_encode(b + 10, 6, out + 24);
}

void
uuid_v4(char out[37])
{
	unsigned char b[16];

	pool_bytes(b, sizeof(b));
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	uuid_format(b, out);
}

void
uuid_v7(char out[37])
{
	unsigned char b[16];
	struct timespec ts;
	uint64_t ms;
	int i;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	pool_bytes(b + 6, 10);
	for (i = 0; i < 6; i++)
		b[i] = (unsigned char)(ms >> (40 - 8 * i));
	b[6] = (b[6] & 0x0f) | 0x70;
	b[8] = (b[8] & 0x3f) | 0x80;
	uuid_format(b, out);
}

/*
 * SHA-256 fetched once. OpenSSL 3 looks an algorithm up in its provider
 * tables at every implicit use (EVP_sha256(), HMAC()), which cost more
 * than hashing a short string: it was a visible share of a request
 * (client key hash, fingerprints) and of the log writer (row hashes).
 */
static EVP_MD *g_sha256;
static pthread_once_t g_sha256_once = PTHREAD_ONCE_INIT;

static void
sha256_fetch(void)
{
	g_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (g_sha256 == NULL)
		fatal("OpenSSL has no SHA-256");
}

const EVP_MD *
sha256_md(void)
{
	pthread_once(&g_sha256_once, sha256_fetch);
	return g_sha256;
}

void
sha256_2(EVP_MD_CTX *c, const void *a, size_t an, const void *b, size_t bn,
    unsigned char out[32])
{
	if (EVP_DigestInit_ex2(c, sha256_md(), NULL) != 1 ||
	    EVP_DigestUpdate(c, a, an) != 1 ||
	    (bn && EVP_DigestUpdate(c, b, bn) != 1) ||
	    EVP_DigestFinal_ex(c, out, NULL) != 1)
		fatal("SHA-256 failed");
}

/* RFC 2104 over SHA-256 (block size 64). */
void
hmac_sha256(EVP_MD_CTX *c, const void *key, size_t klen, const void *msg,
    size_t mlen, unsigned char out[32])
{
	unsigned char k[64], pad[64], inner[32];
	EVP_MD_CTX *own = NULL;
	size_t i;

	if (c == NULL && (c = own = EVP_MD_CTX_new()) == NULL)
		fatal("out of memory (EVP_MD_CTX)");
	memset(k, 0, sizeof(k));
	if (klen > 64)
		sha256_2(c, key, klen, NULL, 0, k);
	else
		memcpy(k, key, klen);
	for (i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x36;
	sha256_2(c, pad, 64, msg, mlen, inner);
	for (i = 0; i < 64; i++)
		pad[i] = k[i] ^ 0x5c;
	sha256_2(c, pad, 64, inner, 32, out);
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(pad, sizeof(pad));
	OPENSSL_cleanse(inner, sizeof(inner));
	EVP_MD_CTX_free(own);
}

void
sha256_raw(const void *p, size_t n, unsigned char out[32])
{
	unsigned int len = 32;

	if (EVP_Digest(p, n, out, &len, sha256_md(), NULL) != 1)
		fatal("EVP_Digest(sha256) failed");
}

void
hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hx[in[i] >> 4];
		out[2 * i + 1] = hx[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int
hex_digit_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
hex_decode(const char *in, size_t n, unsigned char *out)
{
	size_t i;

	if (n % 2)
		return -1;
	for (i = 0; i < n; i += 2) {
		int hi = hex_digit_value(in[i]), lo = hex_digit_value(in[i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i / 2] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

void
sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char d[32];

	sha256_raw(p, n, d);
	hex_encode(d, 32, out);
}

int
ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

/* ASCII only, whatever the locale: tolower() was a call per byte (through
 * the locale table) in every header comparison. */
static inline int
ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

int
ascii_casecmp(const char *a, const char *b)
{
	for (;; a++, b++) {
		int ca = ascii_lower((unsigned char)*a);
		int cb = ascii_lower((unsigned char)*b);

		if (ca != cb || ca == 0)
			return ca - cb;
	}
}

int
ascii_ncasecmp(const char *a, const char *b, size_t n)
{
	for (; n > 0; n--, a++, b++) {
		int ca = ascii_lower((unsigned char)*a);
		int cb = ascii_lower((unsigned char)*b);

		if (ca != cb || ca == 0)
			return ca - cb;
	}
	return 0;
}

char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0;

	if (f == NULL)
		return NULL;
	for (;;) {
		size_t r;

		if (cap - n < 65536) {
			cap = cap ? cap * 2 : 65536;
			buf = xrealloc(buf, cap + 1);
		}
		r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0) {
			if (ferror(f)) {
				int e = errno;

				free(buf);
				fclose(f);
				errno = e;
				return NULL;
			}
			break;
		}
	}
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

int
cpus_allowed(int *out, int max)
{
	cpu_set_t set;
	int cpu, n = 0;

	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return -1;
	for (cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &set))
			continue;
		if (n < max)
			out[n] = cpu;
		n++;
	}
	return n;
}

int
pin_thread(pthread_t th, int cpu)
{
	cpu_set_t set;
	int rc;

	if (cpu < 0 || cpu >= CPU_SETSIZE) {
		errno = EINVAL;
		return -1;
	}
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	rc = pthread_setaffinity_np(th, sizeof(set), &set);
	if (rc != 0) {
		errno = rc;
		return -1;
	}
	return 0;
}
