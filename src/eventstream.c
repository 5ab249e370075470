/*
 * eventstream.c - see eventstream.h.
 *
 * The decoder keeps only the bytes of the frame being assembled. It checks
 * the prelude CRC as soon as 12 bytes are in, so a corrupt length never
 * makes it wait for (or allocate) a bogus amount of data, and the message
 * CRC before any header or payload byte is looked at.
 */
#include "eventstream.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- CRC-32/IEEE, slicing by 8 ---- */

static uint32_t crc_tab[8][256];
static int crc_ready;

static void
crc_init(void)
{
	uint32_t i, j, c;

	for (i = 0; i < 256; i++) {
		c = i;
		for (j = 0; j < 8; j++)
			c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
		crc_tab[0][i] = c;
	}
	for (i = 0; i < 256; i++)
		for (j = 1; j < 8; j++)
			crc_tab[j][i] = (crc_tab[j - 1][i] >> 8) ^
			    crc_tab[0][crc_tab[j - 1][i] & 0xff];
	__atomic_store_n(&crc_ready, 1, __ATOMIC_RELEASE);
}

uint32_t
es_crc32(uint32_t crc, const void *buf, size_t n)
{
	const unsigned char *p = buf;

	/* Idempotent: two threads racing here compute the same tables. */
	if (!__atomic_load_n(&crc_ready, __ATOMIC_ACQUIRE))
		crc_init();
	crc = ~crc;
	while (n >= 8) {
		uint32_t a = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
		    (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);

		crc = crc_tab[7][a & 0xff] ^ crc_tab[6][(a >> 8) & 0xff] ^
		    crc_tab[5][(a >> 16) & 0xff] ^ crc_tab[4][a >> 24] ^
		    crc_tab[3][p[4]] ^ crc_tab[2][p[5]] ^ crc_tab[1][p[6]] ^
		    crc_tab[0][p[7]];
		p += 8;
		n -= 8;
	}
	while (n--)
		crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static int64_t
be_signed(const unsigned char *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	/* sign-extend from n bytes */
	if (n < 8 && (p[0] & 0x80))
		v |= ~(uint64_t)0 << (n * 8);
	return (int64_t)v;
}

/* Checks the prelude of a frame (12 bytes available). */
static int
check_prelude(const unsigned char *b, size_t max_frame, uint32_t *total,
    uint32_t *hlen, char *err, size_t errlen)
{
	*total = be32(b);
	*hlen = be32(b + 4);
	if (es_crc32(0, b, 8) != be32(b + 8)) {
		snprintf(err, errlen, "event-stream prelude CRC mismatch");
		return -1;
	}
	if (*total < ES_MIN_FRAME || *total > max_frame) {
		snprintf(err, errlen, "event-stream frame length %u out of "
		    "range", (unsigned)*total);
		return -1;
	}
	if (*hlen > *total - ES_MIN_FRAME) {
		snprintf(err, errlen, "event-stream headers length %u exceeds "
		    "the frame", (unsigned)*hlen);
		return -1;
	}
	return 0;
}

int
es_parse_frame(const unsigned char *b, size_t len, struct es_message *m,
    char *err, size_t errlen)
{
	uint32_t total, hlen;
	const unsigned char *p, *end;

	if (len < ES_MIN_FRAME) {
		snprintf(err, errlen, "event-stream frame too short");
		return -1;
	}
	if (check_prelude(b, SIZE_MAX > UINT32_MAX ? UINT32_MAX : SIZE_MAX,
	    &total, &hlen, err, errlen) < 0)
		return -1;
	if (total != len) {
		snprintf(err, errlen, "event-stream frame length mismatch");
		return -1;
	}
	if (es_crc32(0, b, len - 4) != be32(b + len - 4)) {
		snprintf(err, errlen, "event-stream message CRC mismatch");
		return -1;
	}
	m->nh = 0;
	p = b + ES_PRELUDE_LEN;
	end = p + hlen;
	while (p < end) {
		struct es_header *h;
		size_t nl;

		if (m->nh == ES_MAX_HEADERS) {
			snprintf(err, errlen, "event-stream frame has too many "
			    "headers");
			return -1;
		}
		h = &m->h[m->nh];
		memset(h, 0, sizeof(*h));
		nl = *p++;
		if (nl == 0 || (size_t)(end - p) < nl + 1)
			goto bad;
		h->name = (const char *)p;
		h->nlen = nl;
		p += nl;
		h->type = (enum es_type)*p++;
		switch (h->type) {
		case ES_TRUE:
			h->i = 1;
			break;
		case ES_FALSE:
			h->i = 0;
			break;
		case ES_BYTE:
			if (end - p < 1)
				goto bad;
			h->i = be_signed(p, 1);
			p += 1;
			break;
		case ES_INT16:
			if (end - p < 2)
				goto bad;
			h->i = be_signed(p, 2);
			p += 2;
			break;
		case ES_INT32:
			if (end - p < 4)
				goto bad;
			h->i = be_signed(p, 4);
			p += 4;
			break;
		case ES_INT64:
		case ES_TIMESTAMP:
			if (end - p < 8)
				goto bad;
			h->i = be_signed(p, 8);
			p += 8;
			break;
		case ES_BYTES:
		case ES_STRING:
			if (end - p < 2)
				goto bad;
			h->vlen = (size_t)p[0] << 8 | p[1];
			p += 2;
			if ((size_t)(end - p) < h->vlen)
				goto bad;
			h->v = p;
			p += h->vlen;
			break;
		case ES_UUID:
			if (end - p < 16)
				goto bad;
			h->v = p;
			h->vlen = 16;
			p += 16;
			break;
		default:
			snprintf(err, errlen, "event-stream header of unknown "
			    "type %d", (int)h->type);
			return -1;
		}
		m->nh++;
	}
	m->payload = end;
	m->payload_len = total - hlen - ES_MIN_FRAME;
	return 0;
bad:
	snprintf(err, errlen, "event-stream header overruns its section");
	return -1;
}

const struct es_header *
es_header_get(const struct es_message *m, const char *name)
{
	size_t i, n = strlen(name);

	for (i = 0; i < m->nh; i++)
		if (m->h[i].nlen == n && memcmp(m->h[i].name, name, n) == 0)
			return &m->h[i];
	return NULL;
}

char *
es_header_str(const struct es_message *m, const char *name)
{
	const struct es_header *h = es_header_get(m, name);

	if (h == NULL || h->type != ES_STRING)
		return NULL;
	return xstrndup((const char *)h->v, h->vlen);
}

int
es_header_is(const struct es_message *m, const char *name, const char *s)
{
	const struct es_header *h = es_header_get(m, name);
	size_t n = strlen(s);

	return h && h->type == ES_STRING && h->vlen == n &&
	    memcmp(h->v, s, n) == 0;
}

/* ---- incremental decoder ---- */

struct es_decoder {
	unsigned char *buf;
	size_t len, cap;
	size_t need;		/* total length of the frame, once known */
	size_t max_frame;
	int failed;
	struct es_message m;
};

struct es_decoder *
es_decoder_new(size_t max_frame)
{
	struct es_decoder *d = xcalloc(1, sizeof(*d));

	d->max_frame = max_frame ? max_frame : ES_DEFAULT_MAX_FRAME;
	return d;
}

void
es_decoder_free(struct es_decoder *d)
{
	if (d == NULL)
		return;
	free(d->buf);
	free(d);
}

size_t
es_decoder_pending(const struct es_decoder *d)
{
	return d->len;
}

static void
d_append(struct es_decoder *d, const unsigned char *p, size_t n)
{
	if (d->len + n > d->cap) {
		size_t cap = d->cap ? d->cap : 1024;

		while (cap < d->len + n)
			cap *= 2;
		d->buf = xrealloc(d->buf, cap);
		d->cap = cap;
	}
	memcpy(d->buf + d->len, p, n);
	d->len += n;
}

int
es_decoder_feed(struct es_decoder *d, const void *data, size_t n,
    es_message_fn cb, void *arg, char *err, size_t errlen)
{
	const unsigned char *p = data;

	if (d->failed) {
		snprintf(err, errlen, "event-stream decoder already failed");
		return -1;
	}
	while (n > 0) {
		uint32_t total, hlen;
		const unsigned char *frame;
		size_t take;

		if (d->len == 0 && n >= ES_PRELUDE_LEN) {
			/* A frame that starts here and is whole in the
			 * input is parsed in place, without a copy. */
			if (check_prelude(p, d->max_frame, &total, &hlen, err,
			    errlen) < 0)
				goto fail;
			if (n >= total) {
				frame = p;
				p += total;
				n -= total;
				if (es_parse_frame(frame, total, &d->m, err,
				    errlen) < 0)
					goto fail;
				if (cb(arg, &d->m) < 0)
					goto stopped;
				continue;
			}
		}
		if (d->need == 0) {
			take = ES_PRELUDE_LEN - d->len;
			if (take > n)
				take = n;
			d_append(d, p, take);
			p += take;
			n -= take;
			if (d->len < ES_PRELUDE_LEN)
				break;
			if (check_prelude(d->buf, d->max_frame, &total, &hlen,
			    err, errlen) < 0)
				goto fail;
			d->need = total;
		}
		take = d->need - d->len;
		if (take > n)
			take = n;
		d_append(d, p, take);
		p += take;
		n -= take;
		if (d->len < d->need)
			break;
		total = (uint32_t)d->need;
		d->len = 0;
		d->need = 0;
		if (es_parse_frame(d->buf, total, &d->m, err, errlen) < 0)
			goto fail;
		if (cb(arg, &d->m) < 0)
			goto stopped;
	}
	return 0;
stopped:
	snprintf(err, errlen, "event-stream consumer stopped");
fail:
	d->failed = 1;
	return -1;
}

/* ---- encoder ---- */

unsigned char *
es_encode(const struct es_hdr_in *h, size_t nh, const void *payload,
    size_t plen, size_t *len)
{
	size_t hl = 0, total, i, off;
	unsigned char *b;

	for (i = 0; i < nh; i++)
		hl += 1 + strlen(h[i].name) + 1 + 2 + strlen(h[i].value);
	total = ES_MIN_FRAME + hl + plen;
	b = xmalloc(total);
	put_be32(b, (uint32_t)total);
	put_be32(b + 4, (uint32_t)hl);
	put_be32(b + 8, es_crc32(0, b, 8));
	off = ES_PRELUDE_LEN;
	for (i = 0; i < nh; i++) {
		size_t nl = strlen(h[i].name), vl = strlen(h[i].value);

		b[off++] = (unsigned char)nl;
		memcpy(b + off, h[i].name, nl);
		off += nl;
		b[off++] = ES_STRING;
		b[off++] = (unsigned char)(vl >> 8);
		b[off++] = (unsigned char)vl;
		memcpy(b + off, h[i].value, vl);
		off += vl;
	}
	if (plen)
		memcpy(b + off, payload, plen);
	off += plen;
	put_be32(b + off, es_crc32(0, b, off));
	*len = total;
	return b;
}
