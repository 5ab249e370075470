/*
 * adapter.c - the table of backend kinds and the helpers adapters share.
 */
#include "adapter.h"
#include "jsonout.h"
#include "util.h"
#include "buildconf.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

const struct adapter *
adapter_for(enum backend_kind k)
{
	switch (k) {
	case BK_OPENAI:
		return &adapter_openai;
	case BK_MISTRAL:
		return &adapter_mistral;
	case BK_AZURE:
		return &adapter_azure;
	case BK_BEDROCK:
		return &adapter_bedrock;
	case BK_VERTEX:
		return &adapter_vertex;
	}
	return NULL;
}

/*
 * Client headers that never go upstream: our own and the client's
 * credentials (SPEC §3), framing (we re-frame), encodings (we read the
 * stream for usage, so it must arrive as identity), and credentials or
 * routing headers of the clouds we sign for, so a client cannot smuggle its
 * own.
 */
static int
client_header_blocked(const struct http_head *hd, const char *name)
{
	static const struct http_name blocked[] = {
		HTTP_NAME("authorization"), HTTP_NAME("host"),
		HTTP_NAME("content-length"), HTTP_NAME("content-type"),
		HTTP_NAME("accept-encoding"), HTTP_NAME("content-encoding"),
		HTTP_NAME("cookie"), HTTP_NAME("expect"), HTTP_NAME("api-key"),
		HTTP_NAME("x-api-key"), HTTP_NAME("x-forwarded-for"),
		HTTP_NAME("forwarded"), HTTP_NAME("x-real-ip"),
		HTTP_NAME("accept"), HTTP_NAME("user-agent"),
	}, prefixes[] = {
		HTTP_NAME("x-sovgate-"), HTTP_NAME("x-amz-"),
		HTTP_NAME("x-goog-"), HTTP_NAME("x-ms-"), HTTP_NAME("proxy-"),
	};
	size_t i, n = strlen(name);

	/* This runs for every client header. */
	if (http_name_in(name, n, blocked, ARRAY_LEN(blocked)))
		return 1;
	for (i = 0; i < ARRAY_LEN(prefixes); i++)
		if (prefixes[i].len <= n &&
		    ascii_ncasecmp(name, prefixes[i].s, prefixes[i].len) == 0)
			return 1;
	return http_is_hop_by_hop(hd, name);
}

static int
header_value_safe(const char *v)
{
	for (; *v; v++)
		if (*v == '\r' || *v == '\n')
			return 0;
	return 1;
}

void
fwd_ctx_set_text(struct fwd_ctx *c, const char *raw, size_t len,
    const struct request_text *t)
{
	c->raw = NULL;
	if (!t->unique_keys || t->model_len == 0)
		return;
	c->raw = raw;
	c->raw_len = len;
	c->model_at = t->model_at;
	c->model_len = t->model_len;
}

void
adapter_write_head(const struct fwd_ctx *c, struct evbuffer *out,
    const char *method, const char *path, const char *extra_headers,
    size_t body_len)
{
	adapter_write_head_accept(c, out, method, path, c->stream ?
	    "text/event-stream" : "application/json", extra_headers, body_len);
}

void
adapter_write_head_accept(const struct fwd_ctx *c, struct evbuffer *out,
    const char *method, const char *path, const char *accept,
    const char *extra_headers, size_t body_len)
{
	const struct http_head *hd = c->client;
	char *host = adapter_host_header(c->b);
	size_t i;

	http_add_str(out, method);
	evbuffer_add(out, " ", 1);
	http_add_str(out, path);
	http_add_str(out, " HTTP/1.1\r\n");
	http_add_header(out, "Host", host);
	free(host);
	http_add_str(out, "Content-Type: application/json\r\n"
	    "Content-Length: ");
	http_add_uint(out, body_len);
	http_add_str(out, "\r\n");
	http_add_header(out, "Accept", accept);
	http_add_str(out, "Accept-Encoding: identity\r\n"
	    "User-Agent: sovgate/" PACKAGE_VERSION "\r\n");
	if (extra_headers)
		evbuffer_add(out, extra_headers, strlen(extra_headers));
	for (i = 0; hd && i < hd->nh; i++) {
		if (client_header_blocked(hd, hd->h[i].name) ||
		    !header_value_safe(hd->h[i].value))
			continue;
		http_add_header(out, hd->h[i].name, hd->h[i].value);
	}
	evbuffer_add(out, "\r\n", 2);
}

char *
adapter_host_header(const struct backend *b)
{
	int default_port = b->use_tls ? 443 : 80;

	char port[16];

	if (b->port == default_port)
		return xstrdup(b->host);
	port[sizeof(port) - 1] = '\0';
	return xconcat(b->host, ":", fmt_i64_before(port + sizeof(port) - 1,
	    b->port), (char *)NULL);
}

char *
adapter_openai_path(const struct backend *b, enum endpoint ep)
{
	const char *base = b->base_path ? b->base_path : "";
	size_t bl = strlen(base);
	const char *tail = endpoint_path(ep);	/* "/v1/chat/completions" */

	/* An endpoint written as ".../v1" already names the API version. */
	if (bl >= 3 && strcmp(base + bl - 3, "/v1") == 0)
		tail += 3;
	return xconcat(base, tail, (char *)NULL);
}

void
adapter_mistral_fields(json_t *body)
{
	json_t *seed = json_object_get(body, "seed");

	/* Mistral's API rejects OpenAI-only fields instead of ignoring them;
	 * keep the client's intent where it has a Mistral name. */
	json_object_del(body, "stream_options");
	if (seed != NULL) {
		json_incref(seed);
		json_object_del(body, "seed");
		if (json_object_get(body, "random_seed") == NULL)
			json_object_set(body, "random_seed", seed);
		json_decref(seed);
	}
}

char *
adapter_dump(json_t *body, size_t *len)
{
	return json_out_compact(body, len);
}
