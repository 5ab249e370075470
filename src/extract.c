/*
 * extract.c - from a request body to the texts a model would see.
 *
 * request_parse() is a strict parser of its own (see below) that builds a
 * jansson tree. Duplicate keys are accepted as every mainstream JSON parser
 * does; the last one wins, which is also what the upstream sees: such a
 * body is re-serialised from the tree, never forwarded as it was written
 * (request_parse_ex reports it).
 */
#include <errno.h>
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"
#include "util.h"

#define DEFAULT_MAX_DEPTH 64

static const struct {
	const char *path;
	enum endpoint ep;
} endpoints[] = {
	{"/v1/chat/completions", EP_CHAT},
	{"/v1/embeddings", EP_EMBEDDINGS},
	{"/v1/fim/completions", EP_FIM},
};

enum endpoint
endpoint_from_path(const char *path)
{
	size_t i, n;

	if (path == NULL)
		return EP_UNKNOWN;
	n = strcspn(path, "?#");
	if (n > 1 && path[n - 1] == '/')
		n--;
	for (i = 0; i < ARRAY_LEN(endpoints); i++)
		if (strlen(endpoints[i].path) == n &&
		    memcmp(endpoints[i].path, path, n) == 0)
			return endpoints[i].ep;
	return EP_UNKNOWN;
}

const char *
endpoint_path(enum endpoint ep)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(endpoints); i++)
		if (endpoints[i].ep == ep)
			return endpoints[i].path;
	return "/";
}

/*
 * A strict RFC 8259 parser that builds the same jansson tree jansson
 * would (jansson's own reader runs at a fraction of the speed we need on
 * string-heavy bodies: it reads one character at a time through a stream).
 * It enforces what the gateway promises clients: valid UTF-8 (no overlong
 * forms, no encoded surrogates), no control characters or NUL in strings,
 * \u escapes with paired surrogates only, no trailing garbage, and a
 * nesting limit checked as it descends.
 */
struct jp {
	const unsigned char *s;
	size_t n, i;
	int depth, max_depth;
	char *buf;		/* scratch for strings with escapes */
	size_t cap;
	const char *why;	/* first error */
	size_t at;
	int skip;		/* validate only: every value is json_null() */
	int dup;		/* an object repeated a key */
	size_t model_at, model_len;	/* top-level "model" value's text */
};

/* 0: plain string byte; 1: '"', '\\' or control; 2: non-ASCII */
static const unsigned char str_class[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
#define X16 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2
	X16, X16, X16, X16, X16, X16, X16, X16
#undef X16
};

/*
 * Bytes a string scan must stop at: '"', '\\', control characters and
 * non-ASCII (validated as UTF-8 one sequence at a time). Sixteen at a time
 * with SSE2 (every x86-64 has it), eight with SWAR elsewhere; the result is
 * a mask with bit k set for byte k (the SWAR one may also flag a plain byte
 * after a special one, which only costs a byte-wise look).
 */
#if defined(__SSE2__)
#include <emmintrin.h>
#define STR_BLOCK 16
static inline unsigned
str_special(const unsigned char *s)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
	__m128i m = _mm_or_si128(
	    _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
	    _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
	    /* signed: below 0x20, and every byte >= 0x80 */
	    _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));

	return (unsigned)_mm_movemask_epi8(m);
}
#else
#define STR_BLOCK 8
static inline unsigned
str_special(const unsigned char *s)
{
	uint64_t x, q, b, m;
	unsigned r = 0, k;

	memcpy(&x, s, 8);
	q = x ^ 0x2222222222222222ULL;
	b = x ^ 0x5c5c5c5c5c5c5c5cULL;
	m = (x | ((x - 0x2020202020202020ULL) & ~x) |
	    ((q - 0x0101010101010101ULL) & ~q) |
	    ((b - 0x0101010101010101ULL) & ~b)) & 0x8080808080808080ULL;
	if (m == 0)
		return 0;
	for (k = 0; k < 8; k++)		/* exact, whatever the byte order */
		if (str_class[s[k]] != 0)
			r |= 1u << k;
	return r;
}
#endif

static inline unsigned
ctz_u(unsigned m)
{
	return (unsigned)__builtin_ctz(m);
}

#if defined(__SSE2__)
static inline unsigned
ctz64(uint64_t m)
{
	return (unsigned)__builtin_ctzll(m);
}

/* For 64 bytes at s: backslashes in *bs, and in *ot the other bytes a
 * string scan stops at ('"', control characters, non-ASCII). */
static inline void
str_masks64(const unsigned char *s, uint64_t *bs, uint64_t *ot)
{
	const __m128i bsl = _mm_set1_epi8('\\'), quo = _mm_set1_epi8('"');
	const __m128i ctl = _mm_set1_epi8(0x20);
	__m128i v0 = _mm_loadu_si128((const __m128i *)(const void *)s);
	__m128i v1 = _mm_loadu_si128((const __m128i *)(const void *)(s + 16));
	__m128i v2 = _mm_loadu_si128((const __m128i *)(const void *)(s + 32));
	__m128i v3 = _mm_loadu_si128((const __m128i *)(const void *)(s + 48));

#define BS_(v) ((uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, bsl)))
#define OT_(v) ((uint64_t)(unsigned)_mm_movemask_epi8(_mm_or_si128(	\
	_mm_cmpeq_epi8(v, quo), _mm_cmplt_epi8(v, ctl))))
	*bs = BS_(v0) | BS_(v1) << 16 | BS_(v2) << 32 | BS_(v3) << 48;
	*ot = OT_(v0) | OT_(v1) << 16 | OT_(v2) << 32 | OT_(v3) << 48;
#undef BS_
#undef OT_
}

/* Copy up to 64 bytes as 64: no length-dependent branch to mispredict
 * (the caller leaves room to read and write the whole 64). */
static inline void
copy64(char *dst, const unsigned char *src)
{
	memcpy(dst, src, 64);
}

/* What a two-character escape stands for; 0 for \u and invalid ones. */
static const char esc_simple[256] = {
	['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b',
	['f'] = '\f', ['n'] = '\n', ['r'] = '\r', ['t'] = '\t',
};
#endif

static json_t *
jp_fail(struct jp *p, const char *why)
{
	if (p->why == NULL) {
		p->why = why;
		p->at = p->i;
	}
	return NULL;
}

static void
jp_ws(struct jp *p)
{
	while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\n' ||
	    p->s[p->i] == '\r' || p->s[p->i] == '\t'))
		p->i++;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];

	if (c >= 0xC2 && c <= 0xDF)
		return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			return 0;
		if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))
			return 0;	/* overlong, or a surrogate */
		return 3;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
		    (s[3] & 0xC0) != 0x80)
			return 0;
		if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))
			return 0;
		return 4;
	}
	return 0;
}

static int
hex4(const unsigned char *s, unsigned *v)
{
	int k;

	*v = 0;
	for (k = 0; k < 4; k++) {
		unsigned c = s[k], d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		*v = *v * 16 + d;
	}
	return 0;
}

/* Parse a string at p->i (on the opening quote). On success *out and *len
 * point either into the input (no escapes) or into p->buf. */
static int
jp_string(struct jp *p, const char **out, size_t *len)
{
	const unsigned char *s = p->s;
	size_t n = p->n, i = p->i + 1, start = i, o, l;
	char *b;
	unsigned m;

	/* no escape yet: nothing to copy, only to validate */
	for (;;) {
		while (i + STR_BLOCK <= n) {
			if ((m = str_special(s + i)) != 0) {
				i += ctz_u(m);
				break;
			}
			i += STR_BLOCK;
		}
		while (i < n && str_class[s[i]] == 0)
			i++;
		if (i >= n)
			goto unterminated;
		if (s[i] == '"') {
			*out = (const char *)s + start;
			*len = i - start;
			p->i = i + 1;
			return 0;
		}
		if (s[i] == '\\')
			break;
		if (s[i] < 0x80)
			goto control;
		if ((l = utf8_len(s + i, n - i)) == 0)
			goto bad_utf8;
		i += l;
	}
	/*
	 * An escape: decode into the scratch buffer from here on. Decoding
	 * never lengthens (an escape is longer than what it stands for), so
	 * the rest of the input plus one block of slack bounds the output and
	 * lets plain stretches be copied a whole block at a time.
	 */
	if (p->cap < n - start + STR_BLOCK) {
		free(p->buf);
		p->cap = n - start + STR_BLOCK;
		p->buf = xmalloc(p->cap);
	}
	b = p->buf;
	o = i - start;
	memcpy(b, s + start, o);
	for (;;) {
		unsigned char c;

#if defined(__SSE2__)
		/*
		 * Escape-dense text (a JSON text inside a string: every quote
		 * and backslash escaped) 64 bytes at a time: the masks of a
		 * chunk do not depend on what it holds, and the simple escapes
		 * in it are decoded from them by bit arithmetic. Finding each
		 * special by a load that waited for the previous one cost
		 * more than all the copying. Anything else (\u, a special that
		 * is not an escape, an escape across the chunk's end) is left
		 * to the byte-wise code below. Stretches are copied 64 bytes
		 * at a time whatever their length (a length-dependent loop
		 * mispredicts). The chunk loop stops 128 bytes short of the
		 * input's end, so reads stay within the input and writes (the
		 * output never ahead of the input) within the buffer.
		 */
		while (i + 128 <= n) {
			uint64_t bs, ot;
			unsigned k, pos = 0, stop, e;
			char d;

			str_masks64(s + i, &bs, &ot);
			if ((bs | ot) == 0) {
				memcpy(b + o, s + i, 64);
				i += 64;
				o += 64;
				continue;
			}
			stop = ot != 0 ? ctz64(ot) : 64;
			while (bs != 0) {
				k = ctz64(bs);
				if (k >= stop || k == 63 ||
				    (d = esc_simple[s[i + k + 1]]) == 0)
					break;
				copy64(b + o, s + i + pos);
				o += k - pos;
				b[o++] = d;
				pos = k + 2;
				bs &= ~(3ULL << k);	/* the escaped byte too */
				ot &= ~(2ULL << k);
				stop = ot != 0 ? ctz64(ot) : 64;
			}
			e = bs != 0 && ctz64(bs) < stop ? ctz64(bs) : stop;
			if (e < 64) {
				copy64(b + o, s + i + pos);
				o += e - pos;
				i += e;
				break;
			}
			/* a constant step: the next chunk's loads need not
			 * wait for this one's masks */
			copy64(b + o, s + i + pos);
			o += 64 - pos;
			i += 64;
		}
#endif
		while (i + STR_BLOCK <= n) {
			memcpy(b + o, s + i, STR_BLOCK);
			if ((m = str_special(s + i)) != 0) {
				m = ctz_u(m);
				i += m;
				o += m;
				break;
			}
			i += STR_BLOCK;
			o += STR_BLOCK;
		}
		while (i < n && str_class[s[i]] == 0)
			b[o++] = (char)s[i++];
		if (i >= n)
			goto unterminated;
		c = s[i];
		if (c == '"')
			break;
		if (c >= 0x80) {
			if ((l = utf8_len(s + i, n - i)) == 0)
				goto bad_utf8;
			memcpy(b + o, s + i, l);
			o += l;
			i += l;
			continue;
		}
		if (c != '\\')
			goto control;
		if (i + 1 >= n)
			goto unterminated;
		c = s[++i];
		switch (c) {
		case '"': case '\\': case '/':
			b[o++] = (char)c; i++; continue;
		case 'b': b[o++] = '\b'; i++; continue;
		case 'f': b[o++] = '\f'; i++; continue;
		case 'n': b[o++] = '\n'; i++; continue;
		case 'r': b[o++] = '\r'; i++; continue;
		case 't': b[o++] = '\t'; i++; continue;
		case 'u': {
			unsigned cp, lo;

			if (i + 5 > n || hex4(s + i + 1, &cp) < 0) {
				p->i = i;
				jp_fail(p, "invalid \\u escape");
				return -1;
			}
			i += 5;
			if (cp >= 0xDC00 && cp <= 0xDFFF) {
				p->i = i;
				jp_fail(p, "lone surrogate in \\u escape");
				return -1;
			}
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (i + 6 > n || s[i] != '\\' ||
				    s[i + 1] != 'u' || hex4(s + i + 2, &lo) < 0 ||
				    lo < 0xDC00 || lo > 0xDFFF) {
					p->i = i;
					jp_fail(p, "lone surrogate in \\u escape");
					return -1;
				}
				i += 6;
				cp = 0x10000 + ((cp - 0xD800) << 10) +
				    (lo - 0xDC00);
			}
			if (cp == 0) {
				p->i = i;
				jp_fail(p, "\\u0000 is not allowed in strings");
				return -1;
			}
			if (cp < 0x80) {
				b[o++] = (char)cp;
			} else if (cp < 0x800) {
				b[o++] = (char)(0xC0 | (cp >> 6));
				b[o++] = (char)(0x80 | (cp & 0x3F));
			} else if (cp < 0x10000) {
				b[o++] = (char)(0xE0 | (cp >> 12));
				b[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
				b[o++] = (char)(0x80 | (cp & 0x3F));
			} else {
				b[o++] = (char)(0xF0 | (cp >> 18));
				b[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
				b[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
				b[o++] = (char)(0x80 | (cp & 0x3F));
			}
			continue;
		}
		default:
			p->i = i;
			jp_fail(p, "invalid escape in string");
			return -1;
		}
	}
	*out = b;
	*len = o;
	p->i = i + 1;
	return 0;
unterminated:
	p->i = i;
	jp_fail(p, "unterminated string");
	return -1;
control:
	p->i = i;
	jp_fail(p, "control character in string");
	return -1;
bad_utf8:
	p->i = i;
	jp_fail(p, "invalid UTF-8 in string");
	return -1;
}

static json_t *jp_value(struct jp *p);

static json_t *
jp_number(struct jp *p)
{
	const unsigned char *s = p->s;
	size_t i = p->i, st = i;
	int real = 0;
	char tmp[64], *end, *num;

	if (s[i] == '-')
		i++;
	if (i >= p->n || !(s[i] >= '0' && s[i] <= '9'))
		return jp_fail(p, "invalid number");
	if (s[i] == '0')
		i++;
	else
		while (i < p->n && s[i] >= '0' && s[i] <= '9')
			i++;
	if (i < p->n && s[i] == '.') {
		real = 1;
		i++;
		if (i >= p->n || !(s[i] >= '0' && s[i] <= '9'))
			return jp_fail(p, "invalid number");
		while (i < p->n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i < p->n && (s[i] == 'e' || s[i] == 'E')) {
		real = 1;
		i++;
		if (i < p->n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= p->n || !(s[i] >= '0' && s[i] <= '9'))
			return jp_fail(p, "invalid number");
		while (i < p->n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i - st >= sizeof(tmp) && !real)
		return jp_fail(p, "too big integer");
	/* reals may carry any number of digits: long ones go to the heap */
	num = i - st < sizeof(tmp) ? tmp : xmalloc(i - st + 1);
	memcpy(num, s + st, i - st);
	num[i - st] = '\0';
	p->i = i;
	errno = 0;
	if (!real) {
		long long v = strtoll(num, &end, 10);

		if (errno == ERANGE)
			return jp_fail(p, "too big integer");
		return p->skip ? json_null() : json_integer((json_int_t)v);
	} else {
		double d;
		const char *dp = localeconv()->decimal_point;

		/* strtod reads the locale's decimal point, JSON has '.' */
		if (dp != NULL && dp[0] != '.' && dp[0] != '\0' &&
		    dp[1] == '\0') {
			char *dot = strchr(num, '.');

			if (dot != NULL)
				*dot = dp[0];
		}
		d = strtod(num, &end);
		if (num != tmp)
			free(num);
		if (errno == ERANGE && (d > 1 || d < -1))
			return jp_fail(p, "real number overflow");
		return p->skip ? json_null() : json_real(d);
	}
}

static json_t *
jp_value(struct jp *p)
{
	const unsigned char *s = p->s;
	json_t *v = NULL;

	jp_ws(p);
	if (p->i >= p->n)
		return jp_fail(p, "unexpected end of input");
	switch (s[p->i]) {
	case '{': {
		const char *k;
		size_t kl, at;
		char kbuf[256], *key;

		if (++p->depth > p->max_depth)
			return jp_fail(p, "nesting too deep");
		p->i++;
		/* json_null() is a static singleton: a skipped value costs
		 * no allocation, and json_decref of it does nothing. */
		v = p->skip ? json_null() : json_object();
		jp_ws(p);
		if (p->i < p->n && s[p->i] == '}') {
			p->i++;
			break;
		}
		for (;;) {
			json_t *x;

			jp_ws(p);
			if (p->i >= p->n || s[p->i] != '"')
				goto bad_obj;
			if (jp_string(p, &k, &kl) < 0)
				goto fail_obj;
			/* the key must outlive the next string's decoding
			 * (a skipped object keeps none) */
			if (p->skip)
				kl = 0;
			key = kl < sizeof(kbuf) ? kbuf : xmalloc(kl + 1);
			memcpy(key, k, kl);
			key[kl] = '\0';
			jp_ws(p);
			if (p->i >= p->n || s[p->i] != ':') {
				if (key != kbuf)
					free(key);
				goto bad_obj;
			}
			p->i++;
			jp_ws(p);
			at = p->i;
			x = jp_value(p);
			if (x == NULL) {
				if (key != kbuf)
					free(key);
				goto fail_obj;
			}
			if (!p->skip) {
				size_t before = json_object_size(v);

				json_object_set_new_nocheck(v, key, x);
				/* Set, not added: the key came before. */
				if (json_object_size(v) == before)
					p->dup = 1;
				if (p->depth == 1 && strcmp(key, "model") == 0) {
					p->model_at = at;
					p->model_len = p->i - at;
				}
			}
			if (key != kbuf)
				free(key);
			jp_ws(p);
			if (p->i < p->n && s[p->i] == ',') {
				p->i++;
				continue;
			}
			if (p->i < p->n && s[p->i] == '}') {
				p->i++;
				break;
			}
			goto bad_obj;
		}
		p->depth--;
		return v;
bad_obj:
		jp_fail(p, "expected '\"', ':', ',' or '}' in object");
fail_obj:
		json_decref(v);
		return NULL;
	}
	case '[':
		if (++p->depth > p->max_depth)
			return jp_fail(p, "nesting too deep");
		p->i++;
		v = p->skip ? json_null() : json_array();
		jp_ws(p);
		if (p->i < p->n && s[p->i] == ']') {
			p->i++;
			break;
		}
		for (;;) {
			json_t *x = jp_value(p);

			if (x == NULL) {
				json_decref(v);
				return NULL;
			}
			if (!p->skip)
				json_array_append_new(v, x);
			jp_ws(p);
			if (p->i < p->n && s[p->i] == ',') {
				p->i++;
				continue;
			}
			if (p->i < p->n && s[p->i] == ']') {
				p->i++;
				break;
			}
			json_decref(v);
			return jp_fail(p, "expected ',' or ']' in array");
		}
		break;
	case '"': {
		const char *str;
		size_t l;

		if (jp_string(p, &str, &l) < 0)
			return NULL;
		return p->skip ? json_null() : json_stringn_nocheck(str, l);
	}
	case 't':
		if (p->n - p->i >= 4 && memcmp(s + p->i, "true", 4) == 0) {
			p->i += 4;
			return json_true();
		}
		return jp_fail(p, "invalid literal");
	case 'f':
		if (p->n - p->i >= 5 && memcmp(s + p->i, "false", 5) == 0) {
			p->i += 5;
			return json_false();
		}
		return jp_fail(p, "invalid literal");
	case 'n':
		if (p->n - p->i >= 4 && memcmp(s + p->i, "null", 4) == 0) {
			p->i += 4;
			return json_null();
		}
		return jp_fail(p, "invalid literal");
	default:
		if (s[p->i] == '-' || (s[p->i] >= '0' && s[p->i] <= '9'))
			return jp_number(p);
		return jp_fail(p, "unexpected character");
	}
	/* empty object or array */
	p->depth--;
	return v;
}

/* The message for a failed parse, as request_parse writes it. */
static void
jp_error(const struct jp *p, int max_depth, char *err, size_t errlen)
{
	if (strcmp(p->why, "nesting too deep") == 0)
		snprintf(err, errlen, "JSON nesting deeper than %d (at byte %zu)",
		    max_depth, p->at);
	else
		snprintf(err, errlen, "invalid JSON at byte %zu: %s", p->at,
		    p->why);
}

json_t *
request_parse(const char *body, size_t len, int max_depth, char *err,
    size_t errlen)
{
	return request_parse_ex(body, len, max_depth, NULL, err, errlen);
}

json_t *
request_parse_ex(const char *body, size_t len, int max_depth,
    struct request_text *text, char *err, size_t errlen)
{
	struct jp p;
	json_t *root;

	if (max_depth <= 0)
		max_depth = DEFAULT_MAX_DEPTH;
	if (len == 0) {
		snprintf(err, errlen, "empty request body: send a JSON object");
		return NULL;
	}
	memset(&p, 0, sizeof(p));
	p.s = (const unsigned char *)body;
	p.n = len;
	p.max_depth = max_depth;
	jp_ws(&p);
	if (p.i < p.n && p.s[p.i] != '{') {
		snprintf(err, errlen, "the request body must be a JSON object");
		return NULL;
	}
	root = jp_value(&p);
	if (root != NULL) {
		jp_ws(&p);
		if (p.i < p.n) {
			json_decref(root);
			root = jp_fail(&p, "trailing data after the JSON value");
		}
	}
	free(p.buf);
	if (root == NULL) {
		jp_error(&p, max_depth, err, errlen);
		return NULL;
	}
	if (text != NULL) {
		text->unique_keys = !p.dup;
		text->model_at = p.model_at;
		text->model_len = p.model_len;
	}
	return root;
}

int
json_object_members(const char *text, size_t len, int max_depth,
    member_cb cb, void *ud, char *err, size_t errlen)
{
	struct jp p;
	const unsigned char *s = (const unsigned char *)text;
	char kbuf[256], *key = NULL;
	int rc = -1;

	if (max_depth <= 0)
		max_depth = DEFAULT_MAX_DEPTH;
	memset(&p, 0, sizeof(p));
	p.s = s;
	p.n = len;
	p.max_depth = max_depth;
	p.depth = 1;
	p.skip = 1;	/* members' values are validated, never built */
	jp_ws(&p);
	if (p.i >= p.n || s[p.i] != '{') {
		snprintf(err, errlen, "not a JSON object");
		return -1;
	}
	p.i++;
	jp_ws(&p);
	if (p.i < p.n && s[p.i] == '}') {
		p.i++;
		goto end;
	}
	for (;;) {
		struct json_member m;
		const char *k;
		size_t kl, vs;

		jp_ws(&p);
		if (p.i >= p.n || s[p.i] != '"')
			goto bad;
		if (jp_string(&p, &k, &kl) < 0)
			goto fail;
		/* the key must outlive the value's decoding */
		key = kl < sizeof(kbuf) ? kbuf : xmalloc(kl + 1);
		memcpy(key, k, kl);
		key[kl] = '\0';
		jp_ws(&p);
		if (p.i >= p.n || s[p.i] != ':')
			goto bad;
		p.i++;
		jp_ws(&p);
		vs = p.i;
		memset(&m, 0, sizeof(m));
		if (p.i < p.n && s[p.i] == '"') {
			if (jp_string(&p, &m.str, &m.slen) < 0)
				goto fail;
		} else {
			json_t *v = jp_value(&p);

			if (v == NULL)
				goto fail;
			json_decref(v);
		}
		m.key = key;
		m.klen = kl;
		m.raw = text + vs;
		m.rawlen = p.i - vs;
		cb(ud, &m);
		if (key != kbuf)
			free(key);
		key = NULL;
		jp_ws(&p);
		if (p.i < p.n && s[p.i] == ',') {
			p.i++;
			continue;
		}
		if (p.i < p.n && s[p.i] == '}') {
			p.i++;
			break;
		}
		goto bad;
	}
end:
	jp_ws(&p);
	if (p.i < p.n) {
		jp_fail(&p, "trailing data after the JSON value");
		goto fail;
	}
	rc = 0;
	goto out;
bad:
	jp_fail(&p, "expected '\"', ':', ',' or '}' in object");
fail:
	jp_error(&p, max_depth, err, errlen);
out:
	if (key != NULL && key != kbuf)
		free(key);
	free(p.buf);
	return rc;
}

static void
jsonl_member(void *ud, const struct json_member *m)
{
	struct jsonl_rec *r = ud;

	if (strcmp(m->key, "id") == 0) {
		r->id = m->raw;
		r->idlen = m->rawlen;
	} else if (strcmp(m->key, "endpoint") == 0) {
		free(r->ep);
		r->ep = m->str != NULL ? xstrndup(m->str, m->slen) : NULL;
	} else if (strcmp(m->key, "body") == 0) {
		r->body_str = m->str != NULL;
		if (m->str == NULL)
			return;
		if (m->slen + 1 > r->bcap) {
			if (r->body != NULL)
				memset(r->body, 0, r->bcap);
			free(r->body);
			r->bcap = m->slen + 1;
			r->body = xmalloc(r->bcap);
		}
		memcpy(r->body, m->str, m->slen);
		r->body[m->slen] = '\0';
		r->blen = m->slen;
	}
}

int
jsonl_rec_read(struct jsonl_rec *r, const char *line, size_t len, char *err,
    size_t errlen)
{
	r->id = NULL;
	r->idlen = 0;
	r->body_str = 0;
	free(r->ep);
	r->ep = NULL;
	return json_object_members(line, len, DEFAULT_MAX_DEPTH, jsonl_member,
	    r, err, errlen);
}

void
jsonl_rec_clear(struct jsonl_rec *r)
{
	free(r->ep);
	if (r->body != NULL)
		memset(r->body, 0, r->bcap);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* Any JSON value (tool-call arguments), with the same checks; NULL if
 * the text is not exactly one valid JSON value. */
static json_t *
parse_any(const char *s, size_t n)
{
	struct jp p;
	json_t *v;

	memset(&p, 0, sizeof(p));
	p.s = (const unsigned char *)s;
	p.n = n;
	p.max_depth = DEFAULT_MAX_DEPTH;
	v = jp_value(&p);
	if (v != NULL) {
		jp_ws(&p);
		if (p.i < p.n) {
			json_decref(v);
			v = NULL;
		}
	}
	free(p.buf);
	return v;
}

/* ------------------------------------------------------------------ */

struct walk {
	text_cb cb;
	void *ud;
	int n;
};

static void
emit(struct walk *w, const char *s, size_t n)
{
	w->cb(w->ud, s, n);
	w->n++;
}

/* Every string, key and number of a decoded value: what a model reads in
 * tool-call arguments. Depth is bounded by the parse-time check. */
static void
walk_value(struct walk *w, const json_t *v, int depth)
{
	const char *k;
	json_t *x;
	size_t i;
	char num[64];

	if (depth > 2 * DEFAULT_MAX_DEPTH)
		return;
	switch (json_typeof(v)) {
	case JSON_STRING:
		emit(w, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		/* {"card": 4111111111111111}: digits the model sees */
		snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
		    json_integer_value(v));
		emit(w, num, strlen(num));
		break;
	case JSON_OBJECT:
		json_object_foreach((json_t *)v, k, x) {
			emit(w, k, strlen(k));
			walk_value(w, x, depth + 1);
		}
		break;
	case JSON_ARRAY:
		json_array_foreach(v, i, x)
			walk_value(w, x, depth + 1);
		break;
	default:
		break;
	}
}

/* Tool-call arguments are JSON text inside a string: scan what it encodes
 * (escapes decoded), or the raw string when it is not valid JSON. */
static void
walk_arguments(struct walk *w, const json_t *args)
{
	if (json_is_string(args)) {
		const char *s = json_string_value(args);
		size_t n = json_string_length(args);
		json_t *inner;

		inner = parse_any(s, n);
		if (inner != NULL) {
			walk_value(w, inner, 0);
			json_decref(inner);
		} else {
			emit(w, s, n);
		}
	} else if (json_is_object(args) || json_is_array(args)) {
		walk_value(w, args, 0);
	}
}

/* message content: a string, or an array of parts */
static int
walk_content(struct walk *w, const json_t *c, int depth, char *err,
    size_t errlen)
{
	size_t i;
	json_t *part;

	if (c == NULL || json_is_null(c))
		return 0;
	if (json_is_string(c)) {
		emit(w, json_string_value(c), json_string_length(c));
		return 0;
	}
	if (!json_is_array(c)) {
		snprintf(err, errlen, "message \"content\" must be a string "
		    "or an array of parts");
		return -1;
	}
	json_array_foreach(c, i, part) {
		json_t *t;

		if (json_is_string(part)) {
			emit(w, json_string_value(part),
			    json_string_length(part));
			continue;
		}
		if (!json_is_object(part))
			continue;
		t = json_object_get(part, "text");
		if (json_is_string(t))
			emit(w, json_string_value(t), json_string_length(t));
		else if (json_is_object(t))	/* {"text": {"value": ...}} */
			walk_value(w, t, 0);
		/* tool results carried as parts */
		t = json_object_get(part, "content");
		if (t != NULL && depth < 4 &&
		    walk_content(w, t, depth + 1, err, errlen) < 0)
			return -1;
		t = json_object_get(part, "input");
		if (t != NULL)
			walk_arguments(w, t);
	}
	return 0;
}

static int
extract_chat(const json_t *root, struct walk *w, char *err, size_t errlen)
{
	const json_t *msgs = json_object_get(root, "messages");
	size_t i;
	json_t *m;

	if (!json_is_array(msgs)) {
		snprintf(err, errlen, "\"messages\" must be an array of "
		    "messages");
		return -1;
	}
	json_array_foreach(msgs, i, m) {
		json_t *tc, *fc, *call;
		size_t j;

		if (!json_is_object(m)) {
			snprintf(err, errlen, "messages[%zu] must be an object",
			    i);
			return -1;
		}
		if (walk_content(w, json_object_get(m, "content"), 0, err,
		    errlen) < 0)
			return -1;
		tc = json_object_get(m, "tool_calls");
		if (json_is_array(tc)) {
			json_array_foreach(tc, j, call) {
				json_t *fn = json_object_get(call, "function");

				if (json_is_object(fn))
					walk_arguments(w,
					    json_object_get(fn, "arguments"));
			}
		}
		fc = json_object_get(m, "function_call");	/* legacy */
		if (json_is_object(fc))
			walk_arguments(w, json_object_get(fc, "arguments"));
	}
	return 0;
}

static int
extract_embeddings(const json_t *root, struct walk *w, char *err,
    size_t errlen)
{
	const json_t *in = json_object_get(root, "input");
	size_t i;
	json_t *x;

	if (json_is_string(in)) {
		emit(w, json_string_value(in), json_string_length(in));
		return 0;
	}
	if (!json_is_array(in)) {
		snprintf(err, errlen, "\"input\" must be a string or an array "
		    "of strings or token arrays");
		return -1;
	}
	json_array_foreach(in, i, x) {
		if (json_is_string(x))
			emit(w, json_string_value(x), json_string_length(x));
		else if (json_is_integer(x) || json_is_array(x))
			continue;	/* tokens: nothing to read as text */
		else {
			snprintf(err, errlen, "input[%zu] must be a string or "
			    "tokens", i);
			return -1;
		}
	}
	return 0;
}

static int
extract_fim(const json_t *root, struct walk *w, char *err, size_t errlen)
{
	const json_t *p = json_object_get(root, "prompt");
	const json_t *s = json_object_get(root, "suffix");

	if (!json_is_string(p)) {
		snprintf(err, errlen, "\"prompt\" must be a string");
		return -1;
	}
	emit(w, json_string_value(p), json_string_length(p));
	if (json_is_string(s))
		emit(w, json_string_value(s), json_string_length(s));
	else if (s != NULL && !json_is_null(s)) {
		snprintf(err, errlen, "\"suffix\" must be a string");
		return -1;
	}
	return 0;
}

int
extract_texts(const json_t *root, enum endpoint ep, text_cb cb, void *ud,
    char *err, size_t errlen)
{
	struct walk w = { cb, ud, 0 };
	int rc;

	if (!json_is_object(root)) {
		snprintf(err, errlen, "the request body must be a JSON object");
		return -1;
	}
	switch (ep) {
	case EP_CHAT:
		rc = extract_chat(root, &w, err, errlen);
		break;
	case EP_EMBEDDINGS:
		rc = extract_embeddings(root, &w, err, errlen);
		break;
	case EP_FIM:
		rc = extract_fim(root, &w, err, errlen);
		break;
	default:
		snprintf(err, errlen, "unknown endpoint");
		return -1;
	}
	return rc < 0 ? -1 : w.n;
}

struct scan_ud {
	const struct classifier *c;
	struct scan *s;
};

static void
scan_cb(void *ud, const char *text, size_t len)
{
	struct scan_ud *u = ud;

	classifier_scan(u->c, u->s, text, len);
}

int
classify_request(const struct classifier *c, struct scan *s,
    const json_t *root, enum endpoint ep, char *err, size_t errlen)
{
	struct scan_ud u = { c, s };

	if (c == NULL || s == NULL) {
		snprintf(err, errlen, "classifier unavailable");
		return -1;
	}
	return extract_texts(root, ep, scan_cb, &u, err, errlen) < 0 ? -1 : 0;
}
