/*
 * jsonout.c - compact JSON text from a jansson tree (see jsonout.h).
 */
#include "jsonout.h"
#include "util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* jansson's own limit on the depth it dumps. */
#define OUT_MAX_DEPTH	2048

static void
out_u16(struct sb *o, unsigned v)
{
	static const char hx[] = "0123456789ABCDEF";	/* jansson: %04X */
	char b[6] = { '\\', 'u', hx[(v >> 12) & 15], hx[(v >> 8) & 15],
		hx[(v >> 4) & 15], hx[v & 15] };

	sb_add(o, b, 6);
}

/*
 * A string as jansson writes it with JSON_ENSURE_ASCII. jansson keeps
 * strings valid UTF-8 (json_string checks), so the decoder below trusts
 * the lead byte's length; a truncated sequence still fails cleanly.
 */
int
json_out_string(struct sb *o, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;

	sb_grow(o, n + 2);
	sb_ch(o, '"');
	while (p < end) {
		const unsigned char *run = p;
		unsigned cp;
		size_t len;

		/* the common case: printable ASCII copied as a run */
		while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' &&
		    *p != '\\')
			p++;
		if (p > run)
			sb_add(o, (const char *)run, (size_t)(p - run));
		if (p == end)
			break;
		switch (*p) {
		case '"':  sb_add(o, "\\\"", 2); p++; continue;
		case '\\': sb_add(o, "\\\\", 2); p++; continue;
		case '\b': sb_add(o, "\\b", 2); p++; continue;
		case '\f': sb_add(o, "\\f", 2); p++; continue;
		case '\n': sb_add(o, "\\n", 2); p++; continue;
		case '\r': sb_add(o, "\\r", 2); p++; continue;
		case '\t': sb_add(o, "\\t", 2); p++; continue;
		default:
			break;
		}
		if (*p < 0x20) {
			out_u16(o, *p++);
			continue;
		}
		if (*p >= 0xf0) {
			len = 4;
			cp = *p & 0x07;
		} else if (*p >= 0xe0) {
			len = 3;
			cp = *p & 0x0f;
		} else if (*p >= 0xc0) {
			len = 2;
			cp = *p & 0x1f;
		} else {
			return -1;	/* a continuation byte first */
		}
		if ((size_t)(end - p) < len)
			return -1;
		for (size_t i = 1; i < len; i++)
			cp = (cp << 6) | (p[i] & 0x3f);
		p += len;
		if (cp < 0x10000) {
			out_u16(o, cp);
		} else {
			cp -= 0x10000;
			out_u16(o, 0xd800 | (cp >> 10));
			out_u16(o, 0xdc00 | (cp & 0x3ff));
		}
	}
	sb_ch(o, '"');
	return 0;
}

/* jansson's jsonp_dtostr at its default precision (17): "%.17g", then a
 * ".0" if it reads as an integer, and no '+' or leading zeros in the
 * exponent. The "C" locale is assumed, as everywhere in sovgate. */
static int
out_real(struct sb *o, double v)
{
	char b[64], *e, *from;
	int n;

	if (!isfinite(v))
		return -1;
	n = snprintf(b, sizeof(b), "%.17g", v);
	if (n < 0 || (size_t)n >= sizeof(b) - 3)
		return -1;
	if (strchr(b, '.') == NULL && strchr(b, 'e') == NULL) {
		memcpy(b + n, ".0", 3);
		n += 2;
	}
	if ((e = strchr(b, 'e')) != NULL) {
		e++;
		from = e + 1;
		if (*e == '-')
			e++;
		while (*from == '0')
			from++;
		if (from != e) {
			memmove(e, from, (size_t)(b + n - from) + 1);
			n -= (int)(from - e);
		}
	}
	sb_add(o, b, (size_t)n);
	return 0;
}

static int
out_value(struct sb *o, const json_t *j, int depth)
{
	size_t i, n;

	if (depth > OUT_MAX_DEPTH)
		return -1;
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		void *it = json_object_iter((json_t *)j);
		int first = 1;

		sb_ch(o, '{');
		for (; it; it = json_object_iter_next((json_t *)j, it)) {
			if (!first)
				sb_ch(o, ',');
			first = 0;
			if (json_out_string(o, json_object_iter_key(it),
			    json_object_iter_key_len(it)) < 0)
				return -1;
			sb_ch(o, ':');
			if (out_value(o, json_object_iter_value(it), depth + 1)
			    < 0)
				return -1;
		}
		sb_ch(o, '}');
		return 0;
	}
	case JSON_ARRAY:
		sb_ch(o, '[');
		n = json_array_size(j);
		for (i = 0; i < n; i++) {
			if (i)
				sb_ch(o, ',');
			if (out_value(o, json_array_get(j, i), depth + 1) < 0)
				return -1;
		}
		sb_ch(o, ']');
		return 0;
	case JSON_STRING:
		return json_out_string(o, json_string_value(j),
		    json_string_length(j));
	case JSON_INTEGER:
		sb_int(o, json_integer_value(j));
		return 0;
	case JSON_REAL:
		return out_real(o, json_real_value(j));
	case JSON_TRUE:
		sb_add(o, "true", 4);
		return 0;
	case JSON_FALSE:
		sb_add(o, "false", 5);
		return 0;
	case JSON_NULL:
		sb_add(o, "null", 4);
		return 0;
	}
	return -1;
}

char *
json_out_compact(const json_t *j, size_t *len)
{
	struct sb o = { NULL, 0, 0 };

	if (j == NULL)
		return NULL;
	if (out_value(&o, j, 1) < 0) {
		free(o.p);
		return NULL;
	}
	if (len)
		*len = o.n;
	return sb_take(&o);
}
