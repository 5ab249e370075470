/*
 * http.h - HTTP/1.1 message heads and an llhttp-based incremental parser
 * bounded in header bytes and header count, fed from evbuffers.
 *
 * Request smuggling: llhttp (in strict mode, which we never relax) rejects
 * a duplicate Content-Length and Content-Length together with
 * Transfer-Encoding; we check both again on the collected headers so the
 * rule does not depend on a parser flag.
 */
#ifndef SOVGATE_HTTP_H
#define SOVGATE_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <llhttp.h>

#include "util.h"

struct evbuffer;

struct http_header {
	char *name;
	char *value;
	size_t nlen;		/* strlen(name): compared before the bytes */
};

/* Is h named lname (a lowercase literal)? Length first: most names differ
 * in length, and a parsed head is searched a hundred times per request. */
#define HTTP_NAME_IS(h, lname) ((h)->nlen == sizeof(lname) - 1 && \
	ascii_ncasecmp((h)->name, (lname), sizeof(lname) - 1) == 0)

struct http_head {
	int is_request;
	char *method;		/* requests: "POST" */
	char *url;		/* requests: "/v1/chat/completions?x" */
	int status;		/* responses */
	int http_major, http_minor;
	struct http_header *h;	/* names and values point into buf */
	size_t nh, cap;
	char *buf;		/* "name\0value\0" for each header */
	size_t blen, bcap;
	int64_t content_length;	/* -1 when absent */
	int chunked;
	int keep_alive;		/* after this message */
};

void http_head_init(struct http_head *hd, int is_request);
void http_head_clear(struct http_head *hd);	/* frees contents */
/* Forgets the contents but keeps the buffers for the next message of a
 * keep-alive connection (no allocation per header once warm). */
void http_head_reset(struct http_head *hd);
void http_head_add(struct http_head *hd, const char *name, size_t nlen,
    const char *value, size_t vlen);
/* First header of that name (case-insensitive) or NULL. */
const char *http_head_get(const struct http_head *hd, const char *name);
/* A table of lowercase header names with their lengths (HTTP_NAME), for
 * filters that run on every header: lengths are compared first. */
struct http_name {
	const char *s;
	size_t len;
};
#define HTTP_NAME(lit)	{ (lit), sizeof(lit) - 1 }
int http_name_in(const char *name, size_t len, const struct http_name *tab,
    size_t ntab);
/* Hop-by-hop per RFC 9110 7.6.1, plus any header named in Connection. */
int http_is_hop_by_hop(const struct http_head *hd, const char *name);

enum http_parse_result {
	HP_MORE,	/* need more bytes */
	HP_PAUSED,	/* a message completed; the rest stays in the buffer */
	HP_ERROR,	/* malformed or over a limit: see status/error */
};

struct http_parser;

struct http_parser_cb {
	/* The head is complete: return 0 to go on, -1 to stop with
	 * HP_ERROR (the callback sets the status it wants via
	 * http_parser_fail). */
	int (*on_head)(void *arg, struct http_head *hd);
	/* A piece of body (already de-chunked). Same return convention. */
	int (*on_body)(void *arg, const char *p, size_t n);
	/* The message is complete; the parser pauses after it. */
	void (*on_complete)(void *arg);
};

struct http_parser *http_parser_new(int is_request, size_t max_head_bytes,
    size_t max_headers, const struct http_parser_cb *cb, void *arg);
void http_parser_free(struct http_parser *p);	/* NULL is a no-op */
/* Prepare for the next message on the same connection. */
void http_parser_reset(struct http_parser *p);
/* Consume what is in buf (drains what was parsed). */
enum http_parse_result http_parser_feed(struct http_parser *p,
    struct evbuffer *buf);
/* The peer closed: a response delimited by EOF completes here. Returns
 * HP_PAUSED if that completed a message, HP_ERROR if the message was cut. */
enum http_parse_result http_parser_eof(struct http_parser *p);
/* Make the current feed fail with this HTTP status and reason. */
void http_parser_fail(struct http_parser *p, int status, const char *why);
int http_parser_error_status(const struct http_parser *p);	/* 400, 413, 431 */
const char *http_parser_error(const struct http_parser *p);
/* Bytes of the current message seen so far (head included). */
uint64_t http_parser_bytes(const struct http_parser *p);
/* 1 once any byte of the current message was parsed. */
int http_parser_started(const struct http_parser *p);
struct http_head *http_parser_head(struct http_parser *p);

const char *http_reason(int status);

/*
 * Writing heads without printf: formatting was the largest user-space cost
 * of a proxied request after the JSON work. Each appends to out.
 */
void http_add_str(struct evbuffer *out, const char *s);
void http_add_uint(struct evbuffer *out, uint64_t v);
void http_add_hex(struct evbuffer *out, uint64_t v);
/* "NAME: VALUE\r\n" */
void http_add_header(struct evbuffer *out, const char *name,
    const char *value);
/* "HTTP/1.1 STATUS REASON\r\n" */
void http_add_status_line(struct evbuffer *out, int status);

#endif
