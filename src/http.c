/*
 * http.c - see http.h.
 */
#include "http.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

struct http_parser {
	llhttp_t ll;
	llhttp_settings_t settings;
	const struct http_parser_cb *cb;
	void *arg;
	struct http_head head;
	size_t max_head, max_headers;
	size_t head_bytes;
	uint64_t msg_bytes;
	int started, head_done, complete;
	/* header being assembled: llhttp may split fields and values */
	char *field, *value, *url, *status_text;
	size_t flen, vlen, ulen;
	size_t fcap, vcap, ucap;	/* field and value buffers are reused */
	int fpending;		/* a field is being assembled */
	int err_status;
	char err[128];
};

void
http_head_init(struct http_head *hd, int is_request)
{
	memset(hd, 0, sizeof(*hd));
	hd->is_request = is_request;
	hd->content_length = -1;
}

void
http_head_clear(struct http_head *hd)
{
	int isreq = hd->is_request;

	free(hd->h);
	free(hd->buf);
	free(hd->method);
	free(hd->url);
	http_head_init(hd, isreq);
}

void
http_head_reset(struct http_head *hd)
{
	struct http_header *h = hd->h;
	char *buf = hd->buf;
	size_t cap = hd->cap, bcap = hd->bcap;
	int isreq = hd->is_request;

	free(hd->method);
	free(hd->url);
	http_head_init(hd, isreq);
	hd->h = h;
	hd->cap = cap;
	hd->buf = buf;
	hd->bcap = bcap;
}

/*
 * Every name and value lives in one buffer: two allocations per header
 * (and two frees) were a visible share of a proxied request. When the
 * buffer moves, the pointers into it move with it.
 */
void
http_head_add(struct http_head *hd, const char *name, size_t nlen,
    const char *value, size_t vlen)
{
	size_t need, i;
	char *q;

	if (hd->nh == hd->cap) {
		hd->cap = hd->cap ? hd->cap * 2 : 16;
		hd->h = xrealloc(hd->h, hd->cap * sizeof(*hd->h));
	}
	/* Optional whitespace around values is not part of them. */
	while (vlen > 0 && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
		vlen--;
	while (vlen > 0 && (*value == ' ' || *value == '\t')) {
		value++;
		vlen--;
	}
	need = hd->blen + nlen + vlen + 2;
	if (need > hd->bcap) {
		hd->bcap = need > 2 * hd->bcap ? need + 256 : 2 * hd->bcap;
		hd->buf = xrealloc(hd->buf, hd->bcap);
		/* The strings sit back to back, in order: walk them. */
		for (i = 0, q = hd->buf; i < hd->nh; i++) {
			hd->h[i].name = q;
			q += strlen(q) + 1;
			hd->h[i].value = q;
			q += strlen(q) + 1;
		}
	}
	hd->h[hd->nh].name = hd->buf + hd->blen;
	hd->h[hd->nh].nlen = nlen;
	memcpy(hd->buf + hd->blen, name, nlen);
	hd->blen += nlen;
	hd->buf[hd->blen++] = '\0';
	hd->h[hd->nh].value = hd->buf + hd->blen;
	memcpy(hd->buf + hd->blen, value, vlen);
	hd->blen += vlen;
	hd->buf[hd->blen++] = '\0';
	hd->nh++;
}

const char *
http_head_get(const struct http_head *hd, const char *name)
{
	size_t i, n = strlen(name);

	for (i = 0; i < hd->nh; i++)
		if (hd->h[i].nlen == n &&
		    ascii_ncasecmp(hd->h[i].name, name, n) == 0)
			return hd->h[i].value;
	return NULL;
}

/* Does the comma-separated list contain token (case-insensitive)? */
static int
list_has_token(const char *list, const char *tok)
{
	size_t tl = strlen(tok);
	const char *p = list;

	while (*p) {
		const char *e;
		size_t n;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		e = p;
		while (*e && *e != ',')
			e++;
		n = (size_t)(e - p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == tl && ascii_ncasecmp(p, tok, n) == 0)
			return 1;
		p = e;
	}
	return 0;
}

int
http_name_in(const char *name, size_t len, const struct http_name *tab,
    size_t ntab)
{
	size_t i;

	for (i = 0; i < ntab; i++)
		if (tab[i].len == len &&
		    ascii_ncasecmp(name, tab[i].s, len) == 0)
			return 1;
	return 0;
}

int
http_is_hop_by_hop(const struct http_head *hd, const char *name)
{
	static const struct http_name hop[] = {
		HTTP_NAME("connection"), HTTP_NAME("keep-alive"),
		HTTP_NAME("proxy-connection"), HTTP_NAME("proxy-authenticate"),
		HTTP_NAME("proxy-authorization"), HTTP_NAME("te"),
		HTTP_NAME("trailer"), HTTP_NAME("transfer-encoding"),
		HTTP_NAME("upgrade"),
	};
	size_t i;

	if (http_name_in(name, strlen(name), hop, ARRAY_LEN(hop)))
		return 1;
	for (i = 0; i < hd->nh; i++)
		if (HTTP_NAME_IS(&hd->h[i], "connection") &&
		    list_has_token(hd->h[i].value, name))
			return 1;
	return 0;
}

/* ---- parser ---- */

static struct http_parser *
P(llhttp_t *ll)
{
	return ll->data;
}

static int
fail(struct http_parser *p, int status, const char *why)
{
	if (p->err_status == 0) {
		p->err_status = status;
		snprintf(p->err, sizeof(p->err), "%s", why);
	}
	return -1;
}

/* Appends to a growing string, bounded by the head limit. */
static int
append(struct http_parser *p, char **s, size_t *len, size_t *cap,
    const char *at, size_t n)
{
	p->head_bytes += n;
	if (p->head_bytes > p->max_head)
		return fail(p, p->head.is_request ? 431 : 502,
		    "header section too large");
	if (*len + n + 1 > *cap) {
		*cap = *len + n + 1 < 64 ? 64 : 2 * (*len + n + 1);
		*s = xrealloc(*s, *cap);
	}
	memcpy(*s + *len, at, n);
	*len += n;
	(*s)[*len] = '\0';
	return 0;
}

static int
on_message_begin(llhttp_t *ll)
{
	struct http_parser *p = P(ll);

	p->started = 1;
	return 0;
}

static int
on_url(llhttp_t *ll, const char *at, size_t n)
{
	struct http_parser *p = P(ll);

	return append(p, &p->url, &p->ulen, &p->ucap, at, n);
}

static int
flush_header(struct http_parser *p)
{
	if (!p->fpending)
		return 0;
	p->fpending = 0;
	if (p->head.nh >= p->max_headers) {
		p->flen = p->vlen = 0;
		return fail(p, p->head.is_request ? 431 : 502,
		    "too many header fields");
	}
	http_head_add(&p->head, p->field, p->flen, p->vlen ? p->value : "",
	    p->vlen);
	p->flen = p->vlen = 0;
	return 0;
}

static int
on_header_field(llhttp_t *ll, const char *at, size_t n)
{
	struct http_parser *p = P(ll);

	p->head_bytes += 4;	/* ": " and CRLF count against the limit */
	p->fpending = 1;
	return append(p, &p->field, &p->flen, &p->fcap, at, n);
}

static int
on_header_value(llhttp_t *ll, const char *at, size_t n)
{
	struct http_parser *p = P(ll);

	return append(p, &p->value, &p->vlen, &p->vcap, at, n);
}

static int
on_header_value_complete(llhttp_t *ll)
{
	return flush_header(P(ll));
}

static int
on_headers_complete(llhttp_t *ll)
{
	struct http_parser *p = P(ll);
	struct http_head *hd = &p->head;
	const char *te = NULL;
	size_t i, ncl = 0, nte = 0;

	if (flush_header(p) < 0)
		return -1;
	hd->http_major = ll->http_major;
	hd->http_minor = ll->http_minor;
	if (hd->is_request) {
		hd->method = xstrdup(llhttp_method_name(ll->method));
		hd->url = p->url ? p->url : xstrdup("");
		p->url = NULL;
		p->ulen = p->ucap = 0;
	} else {
		hd->status = ll->status_code;
	}
	/* Never guess between two framings (request smuggling). One walk
	 * over the headers for both names: this runs for every message. */
	for (i = 0; i < hd->nh; i++) {
		if (HTTP_NAME_IS(&hd->h[i], "content-length"))
			ncl++;
		else if (HTTP_NAME_IS(&hd->h[i], "transfer-encoding") &&
		    nte++ == 0)
			te = hd->h[i].value;
	}
	if (ncl > 1)
		return fail(p, 400, "duplicate Content-Length");
	if (te != NULL && ncl > 0)
		return fail(p, 400,
		    "both Content-Length and Transfer-Encoding");
	if (nte > 1)
		return fail(p, 400, "duplicate Transfer-Encoding");
	/* A request may only be chunked: we do not decode gzip or any other
	 * coding, and passing it on as if it were plain would let a body
	 * through unclassified (RFC 9112 6.1: 501). */
	if (hd->is_request && te != NULL && ascii_casecmp(te, "chunked") != 0)
		return fail(p, 501, "unsupported Transfer-Encoding");
	if (ll->flags & F_CONTENT_LENGTH)
		hd->content_length = (int64_t)ll->content_length;
	hd->chunked = (ll->flags & F_CHUNKED) != 0;
	hd->keep_alive = llhttp_should_keep_alive(ll);
	p->head_done = 1;
	if (p->cb->on_head && p->cb->on_head(p->arg, hd) < 0)
		return fail(p, 400, "rejected");
	return 0;
}

static int
on_body(llhttp_t *ll, const char *at, size_t n)
{
	struct http_parser *p = P(ll);

	if (p->cb->on_body && p->cb->on_body(p->arg, at, n) < 0) {
		fail(p, 400, "rejected");
		return HPE_USER;
	}
	return 0;
}

static int
on_message_complete(llhttp_t *ll)
{
	struct http_parser *p = P(ll);

	p->complete = 1;
	if (p->cb->on_complete)
		p->cb->on_complete(p->arg);
	/* Stop here: a pipelined next request stays in the buffer until this
	 * one has been answered. */
	return HPE_PAUSED;
}

struct http_parser *
http_parser_new(int is_request, size_t max_head_bytes, size_t max_headers,
    const struct http_parser_cb *cb, void *arg)
{
	struct http_parser *p = xcalloc(1, sizeof(*p));

	llhttp_settings_init(&p->settings);
	p->settings.on_message_begin = on_message_begin;
	p->settings.on_url = on_url;
	p->settings.on_header_field = on_header_field;
	p->settings.on_header_value = on_header_value;
	p->settings.on_header_value_complete = on_header_value_complete;
	p->settings.on_headers_complete = on_headers_complete;
	p->settings.on_body = on_body;
	p->settings.on_message_complete = on_message_complete;
	p->cb = cb;
	p->arg = arg;
	p->max_head = max_head_bytes;
	p->max_headers = max_headers;
	http_head_init(&p->head, is_request);
	llhttp_init(&p->ll, is_request ? HTTP_REQUEST : HTTP_RESPONSE,
	    &p->settings);
	p->ll.data = p;
	return p;
}

static void
clear_partial(struct http_parser *p)
{
	free(p->url);
	p->url = NULL;
	p->flen = p->vlen = p->ulen = p->ucap = 0;
	p->fpending = 0;
}

void
http_parser_free(struct http_parser *p)
{
	if (p == NULL)
		return;
	clear_partial(p);
	free(p->field);
	free(p->value);
	http_head_clear(&p->head);
	free(p);
}

void
http_parser_reset(struct http_parser *p)
{
	clear_partial(p);
	http_head_reset(&p->head);
	p->head_bytes = 0;
	p->msg_bytes = 0;
	p->started = p->head_done = p->complete = 0;
	p->err_status = 0;
	p->err[0] = '\0';
	if (llhttp_get_errno(&p->ll) == HPE_PAUSED)
		llhttp_resume(&p->ll);
	else if (llhttp_get_errno(&p->ll) != HPE_OK) {
		llhttp_init(&p->ll, p->head.is_request ? HTTP_REQUEST : HTTP_RESPONSE,
		    &p->settings);
		p->ll.data = p;
	}
}

static enum http_parse_result
parse_error(struct http_parser *p, llhttp_errno_t err)
{
	if (p->err_status == 0) {
		p->err_status = p->head.is_request ? 400 : 502;
		snprintf(p->err, sizeof(p->err), "malformed HTTP: %s",
		    llhttp_errno_name(err));
	}
	return HP_ERROR;
}

enum http_parse_result
http_parser_feed(struct http_parser *p, struct evbuffer *buf)
{
	if (p->complete)
		return HP_PAUSED;
	if (p->err_status)
		return HP_ERROR;
	while (evbuffer_get_length(buf) > 0) {
		struct evbuffer_iovec v;
		llhttp_errno_t err;
		size_t used;

		if (evbuffer_peek(buf, -1, NULL, &v, 1) < 1)
			break;
		err = llhttp_execute(&p->ll, v.iov_base, v.iov_len);
		if (err == HPE_OK) {
			p->msg_bytes += v.iov_len;
			evbuffer_drain(buf, v.iov_len);
			continue;
		}
		if (err == HPE_PAUSED && p->complete) {
			used = (size_t)(llhttp_get_error_pos(&p->ll) -
			    (const char *)v.iov_base);
			p->msg_bytes += used;
			evbuffer_drain(buf, used);
			return HP_PAUSED;
		}
		return parse_error(p, err);
	}
	return p->err_status ? HP_ERROR : HP_MORE;
}

enum http_parse_result
http_parser_eof(struct http_parser *p)
{
	llhttp_errno_t err;

	if (p->complete)
		return HP_PAUSED;
	if (p->err_status)
		return HP_ERROR;
	err = llhttp_finish(&p->ll);
	if (p->complete)
		return HP_PAUSED;
	if (err != HPE_OK)
		return parse_error(p, err);
	if (p->started) {
		fail(p, p->head.is_request ? 400 : 502,
		    "connection closed mid-message");
		return HP_ERROR;
	}
	return HP_MORE;
}

void
http_parser_fail(struct http_parser *p, int status, const char *why)
{
	fail(p, status, why);
}

int
http_parser_error_status(const struct http_parser *p)
{
	return p->err_status;
}

const char *
http_parser_error(const struct http_parser *p)
{
	return p->err;
}

uint64_t
http_parser_bytes(const struct http_parser *p)
{
	return p->msg_bytes;
}

int
http_parser_started(const struct http_parser *p)
{
	return p->started;
}

struct http_head *
http_parser_head(struct http_parser *p)
{
	return &p->head;
}

const char *
http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 422: return "Unprocessable Content";
	case 424: return "Failed Dependency";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return status < 300 ? "OK" : status < 500 ? "Client Error" :
	    "Server Error";
	}
}

void
http_add_str(struct evbuffer *out, const char *s)
{
	evbuffer_add(out, s, strlen(s));
}

void
http_add_uint(struct evbuffer *out, uint64_t v)
{
	char b[24], *p = fmt_u64_before(b + sizeof(b), v);

	evbuffer_add(out, p, (size_t)(b + sizeof(b) - p));
}

void
http_add_hex(struct evbuffer *out, uint64_t v)
{
	static const char hx[] = "0123456789abcdef";
	char b[24], *p = b + sizeof(b);

	do {
		*--p = hx[v & 15];
		v >>= 4;
	} while (v);
	evbuffer_add(out, p, (size_t)(b + sizeof(b) - p));
}

void
http_add_header(struct evbuffer *out, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	char b[256];

	/* One evbuffer_add for the usual short line. */
	if (nl + vl + 4 <= sizeof(b)) {
		memcpy(b, name, nl);
		b[nl] = ':';
		b[nl + 1] = ' ';
		memcpy(b + nl + 2, value, vl);
		b[nl + 2 + vl] = '\r';
		b[nl + 3 + vl] = '\n';
		evbuffer_add(out, b, nl + vl + 4);
		return;
	}
	evbuffer_add(out, name, nl);
	evbuffer_add(out, ": ", 2);
	evbuffer_add(out, value, vl);
	evbuffer_add(out, "\r\n", 2);
}

void
http_add_status_line(struct evbuffer *out, int status)
{
	char b[16] = "HTTP/1.1 000 ";

	if (status < 100 || status > 999)
		status = 500;
	b[9] = (char)('0' + status / 100);
	b[10] = (char)('0' + status / 10 % 10);
	b[11] = (char)('0' + status % 10);
	evbuffer_add(out, b, 13);
	http_add_str(out, http_reason(status));
	evbuffer_add(out, "\r\n", 2);
}
