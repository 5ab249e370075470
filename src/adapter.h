/*
 * adapter.h - one backend kind's protocol: how an OpenAI-shaped request is
 * sent to it, and how its answer is turned back into an OpenAI-shaped
 * answer for the client. Each kind is one file (adapter_<kind>.c) that
 * fills a struct adapter; adapter.c holds the table and shared helpers.
 *
 * Contract: build() runs on a worker's event loop and must not block
 * (credentials that need network, like an OAuth token, are obtained ahead
 * of time and cached by the adapter's own machinery). The response hooks
 * see the upstream body already de-chunked and write what the client
 * should receive into `out`, in OpenAI's wire format (JSON, or SSE events
 * for streams).
 */
#ifndef SOVGATE_ADAPTER_H
#define SOVGATE_ADAPTER_H

#include <stddef.h>
#include <jansson.h>

#include "backend.h"
#include "extract.h"
#include "http.h"

struct evbuffer;
struct event_base;
struct evdns_base;
struct mailbox;

/* What an adapter needs to build one upstream request. Read-only. */
struct fwd_ctx {
	const struct backend *b;
	enum endpoint ep;
	json_t *body;		/* the client's parsed request; the adapter
				   may rewrite "model" in place (and mistral
				   its own fields) but nothing else */
	const char *model_id;	/* the backend's id for the requested model */
	int stream;		/* the client asked for a stream */
	const struct http_head *client;	/* the client's request head */
	/* The body as the client sent it, when it may be forwarded as
	 * text with its "model" value (model_at, model_len) replaced
	 * (struct request_text); NULL when it must be re-serialised. */
	const char *raw;
	size_t raw_len, model_at, model_len;
};

/* Lends c the client's body text (raw, len: it must outlive c) when the
 * parser's report t allows forwarding it as text: unique keys and a
 * top-level "model" to replace. Otherwise c->raw stays NULL. */
void fwd_ctx_set_text(struct fwd_ctx *c, const char *raw, size_t len,
    const struct request_text *t);

/* What a worker lends an adapter for credentials that need I/O. */
struct adapter_env {
	struct event_base *base;
	struct evdns_base *dns;
	struct mailbox *mb;	/* runs a function on this worker's loop */
};

typedef void (*adapter_ready_fn)(void *arg, int ok, const char *err);

struct adapter {
	const char *kind;
	/* Optional: make credentials ready (an OAuth access token) before
	 * build(). Returns 1 when ready now, -1 on failure (err set), or 0
	 * when it will call ready(arg, ok, err) later on this worker's loop,
	 * exactly once unless cancel(*handle) is called first. Must never
	 * block the loop. */
	int (*prepare)(const struct fwd_ctx *c, const struct adapter_env *env,
	    adapter_ready_fn ready, void *arg, void **handle, char *err,
	    size_t errlen);
	void (*cancel)(void *handle);
	/* Writes the whole upstream request (head and body) into out.
	 * 0 on success, -1 with a reason in err (no secret in it). */
	int (*build)(const struct fwd_ctx *c, struct evbuffer *out,
	    char *err, size_t errlen);
	/* Response translation; all NULL means the upstream already speaks
	 * OpenAI's format and its body passes through unchanged. */
	void *(*resp_new)(const struct fwd_ctx *c, int status,
	    const struct http_head *upstream);
	/* Content type the client gets (NULL: the upstream's). */
	const char *(*resp_content_type)(void *st);
	int (*resp_body)(void *st, const char *p, size_t n,
	    struct evbuffer *out);
	/* The upstream finished (complete=1) or broke (complete=0). */
	int (*resp_end)(void *st, int complete, struct evbuffer *out);
	void (*resp_free)(void *st);
	/* Optional: why resp_body or resp_end returned -1 (a broken frame,
	 * an in-band exception, malformed JSON), for the client's error
	 * event and the outcome log; NULL if unknown. Never holds a
	 * secret. */
	const char *(*resp_error)(void *st);
};

const struct adapter *adapter_for(enum backend_kind k);

/* ---- helpers for adapters ---- */

/* "POST <path> HTTP/1.1", Host, Content-Type/Length, Accept, User-Agent
 * and the client's end-to-end headers that are safe to pass on (never
 * Authorization, X-Sovgate-*, hop-by-hop, Host, Cookie, framing or
 * encoding headers, nor credentials of other clouds). extra_headers are
 * "Name: value\r\n" lines (may be NULL). */
void adapter_write_head(const struct fwd_ctx *c, struct evbuffer *out,
    const char *method, const char *path, const char *extra_headers,
    size_t body_len);
/* The same with the Accept header chosen by the adapter (a cloud whose
 * answer is not SSE or JSON, like Bedrock's event stream). */
void adapter_write_head_accept(const struct fwd_ctx *c, struct evbuffer *out,
    const char *method, const char *path, const char *accept,
    const char *extra_headers, size_t body_len);
/* Host header value as adapter_write_head writes it ("h" or "h:port"),
 * for signers that must cover it. Returns a new string. */
char *adapter_host_header(const struct backend *b);
/* Path for an OpenAI-style endpoint under the backend's base path:
 * ".../v1/chat/completions" (no doubled /v1). Returns a new string. */
char *adapter_openai_path(const struct backend *b, enum endpoint ep);
/* Mistral's dialect of an OpenAI body (la Plateforme, Vertex): drops
 * stream_options, maps seed to random_seed. Edits body in place. */
void adapter_mistral_fields(json_t *body);
/* Serialise body compactly; NULL on failure. Caller frees. */
char *adapter_dump(json_t *body, size_t *len);

extern const struct adapter adapter_openai;
extern const struct adapter adapter_mistral;
extern const struct adapter adapter_azure;
extern const struct adapter adapter_bedrock;
extern const struct adapter adapter_vertex;

#endif
