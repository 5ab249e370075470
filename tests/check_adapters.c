/*
 * check_adapters.c - the azure, bedrock and vertex adapters: the requests
 * they build (paths, headers, signatures, translated bodies), the answers
 * they translate back (JSON, event streams into SSE, errors), tool calls
 * and tool results through a whole round trip, and the service-account
 * token machinery against a token endpoint run by the test.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "adapter.h"
#include "eventstream.h"
#include "gauth.h"
#include "http.h"
#include "mailbox.h"
#include "sigv4.h"
#include "util.h"
#include "testutil.h"

/* ------------------------------------------------------------------ */
/* helpers                                                              */

static void
backend_init(struct backend *b, enum backend_kind k, const char *host,
    int port, int tls, const char *base)
{
	memset(b, 0, sizeof(*b));
	b->name = "test-backend";
	b->kind = k;
	b->host = (char *)host;
	b->port = port;
	b->use_tls = tls;
	b->base_path = (char *)base;
}

/* A built request split into request line, headers and body. */
struct built {
	char *text;
	char *line;
	struct http_head hd;
	json_t *body;
	const char *raw_body;
	size_t raw_len;
};

static void
built_parse(struct evbuffer *out, struct built *r)
{
	size_t n = evbuffer_get_length(out);
	char *p, *e, *line;

	memset(r, 0, sizeof(*r));
	r->text = xstrndup((const char *)evbuffer_pullup(out, -1), n);
	http_head_init(&r->hd, 1);
	e = strstr(r->text, "\r\n\r\n");
	ck_assert_ptr_nonnull(e);
	*e = '\0';
	r->raw_body = e + 4;
	r->raw_len = n - (size_t)(e + 4 - r->text);
	p = r->text;
	line = p;
	p = strstr(p, "\r\n");
	ck_assert_ptr_nonnull(p);
	*p = '\0';
	r->line = line;
	for (p += 2; p && *p; ) {
		char *nl = strstr(p, "\r\n"), *colon;

		if (nl)
			*nl = '\0';
		colon = strchr(p, ':');
		ck_assert_ptr_nonnull(colon);
		http_head_add(&r->hd, p, (size_t)(colon - p), colon + 2,
		    strlen(colon + 2));
		p = nl ? nl + 2 : NULL;
	}
	r->body = json_loadb(r->raw_body, r->raw_len, 0, NULL);
	ck_assert_ptr_nonnull(r->body);
	ck_assert_int_eq(atoi(http_head_get(&r->hd, "content-length")),
	    (int)r->raw_len);
}

static void
built_free(struct built *r)
{
	http_head_clear(&r->hd);
	json_decref(r->body);
	free(r->text);
}

static int
build(const struct adapter *ad, struct fwd_ctx *c, struct built *r,
    char *err, size_t errlen)
{
	struct evbuffer *out = evbuffer_new();
	int rc = ad->build(c, out, err, errlen);

	if (rc == 0)
		built_parse(out, r);
	evbuffer_free(out);
	return rc;
}

static json_t *
J(const char *s)
{
	json_error_t e;
	json_t *o = json_loads(s, 0, &e);

	ck_assert_msg(o != NULL, "bad test JSON: %s", e.text);
	return o;
}

/* Runs the response hooks over body (cut in pieces of step bytes). */
struct answer {
	int rc_body, rc_end;
	char *out;
	const char *ctype;
	char err[256];
};

static void
answer(const struct adapter *ad, struct fwd_ctx *c, int status,
    const char *ctype, const char *errtype, const void *body, size_t len,
    size_t step, int complete, struct answer *a)
{
	struct http_head up;
	struct evbuffer *out = evbuffer_new();
	void *st;
	size_t off;

	memset(a, 0, sizeof(*a));
	http_head_init(&up, 0);
	up.status = status;
	if (ctype)
		http_head_add(&up, "Content-Type", 12, ctype, strlen(ctype));
	if (errtype)
		http_head_add(&up, "x-amzn-ErrorType", 16, errtype,
		    strlen(errtype));
	st = ad->resp_new(c, status, &up);
	a->ctype = ad->resp_content_type(st);
	for (off = 0; off < len && a->rc_body == 0; off += step) {
		size_t n = len - off < step ? len - off : step;

		a->rc_body = ad->resp_body(st, (const char *)body + off, n,
		    out);
	}
	if (a->rc_body == 0)
		a->rc_end = ad->resp_end(st, complete, out);
	else
		(void)ad->resp_end(st, 0, out);
	if (ad->resp_error && ad->resp_error(st))
		snprintf(a->err, sizeof(a->err), "%s", ad->resp_error(st));
	evbuffer_add(out, "", 1);
	a->out = xstrdup((const char *)evbuffer_pullup(out, -1));
	ad->resp_free(st);
	evbuffer_free(out);
	http_head_clear(&up);
}

/* SSE "data:" payloads of an output, in order (the last may be
 * "[DONE]"). */
static json_t *
sse_events(const char *s, int *done, int *errors)
{
	json_t *arr = json_array();
	const char *p = s;

	*done = 0;
	*errors = 0;
	while ((p = strstr(p, "data: ")) != NULL) {
		const char *e = strstr(p, "\n\n");

		ck_assert_ptr_nonnull(e);
		p += 6;
		if (strncmp(p, "[DONE]", 6) == 0) {
			*done = 1;
		} else {
			json_t *o = json_loadb(p, (size_t)(e - p), JSON_ALLOW_NUL,
			    NULL);

			ck_assert_msg(o != NULL, "bad SSE data: %.*s",
			    (int)(e - p), p);
			if (json_object_get(o, "error"))
				(*errors)++;
			json_array_append_new(arr, o);
		}
		p = e + 2;
	}
	return arr;
}

static char *
shared_file(const char *rel, size_t *len)
{
	const char *sd = getenv("SHARED_DIR");
	char path[4096];

	if (sd == NULL)
		return NULL;
	snprintf(path, sizeof(path), "%s/%s", sd, rel);
	return read_file(path, len);
}

/* ------------------------------------------------------------------ */
/* openai: the client's text forwarded with only the model replaced      */

/* Parses text as the gateway does and fills c for backend b. */
static json_t *
parse_for(struct fwd_ctx *c, const struct backend *b, const char *text,
    const char *model_id)
{
	struct request_text rt;
	char err[256];
	json_t *j = request_parse_ex(text, strlen(text), 64, &rt, err,
	    sizeof(err));

	ck_assert_msg(j != NULL, "%s", err);
	memset(c, 0, sizeof(*c));
	c->b = b;
	c->ep = EP_CHAT;
	c->body = j;
	c->model_id = model_id;
	fwd_ctx_set_text(c, text, strlen(text), &rt);
	return j;
}

START_TEST(test_openai_forwards_text)
{
	struct backend b;
	struct fwd_ctx c;
	struct built r;
	char err[256];
	/* Spacing, escapes, key order and a real's spelling survive. */
	const char *text = " {\"messages\": [{\"role\":\"user\",\"content\":"
	    "\"caf\\u00e9 \\\"x\\\"\"}],\n \"model\" : \"alias\" ,"
	    "\"temperature\":0.50}";
	json_t *j;

	backend_init(&b, BK_OPENAI, "127.0.0.1", 8000, 0, "");
	b.auth.type = AUTH_NONE;
	j = parse_for(&c, &b, text, "org/model \"v2\"");
	ck_assert_ptr_nonnull(c.raw);
	ck_assert_int_eq(build(&adapter_openai, &c, &r, err, sizeof(err)), 0);
	ck_assert_str_eq(r.line, "POST /v1/chat/completions HTTP/1.1");
	ck_assert_uint_eq(r.raw_len, strlen(text) - strlen("\"alias\"") +
	    strlen("\"org/model \\\"v2\\\"\""));
	ck_assert(memcmp(r.raw_body, " {\"messages\": [{\"role\":\"user\","
	    "\"content\":\"caf\\u00e9 \\\"x\\\"\"}],\n \"model\" : "
	    "\"org/model \\\"v2\\\"\" ,\"temperature\":0.50}",
	    r.raw_len) == 0);
	/* the tree was left as the client sent it */
	ck_assert_str_eq(json_string_value(json_object_get(j, "model")),
	    "alias");
	built_free(&r);
	json_decref(j);
}
END_TEST

/* A repeated key (even spelled with an escape, even nested) means the
 * text could mean something else to the upstream's parser: the body is
 * written out from the tree that was classified. */
START_TEST(test_openai_duplicate_keys_reserialised)
{
	static const char *dups[] = {
		"{\"model\":\"alias\",\"messages\":[],\"messages\":[{\"role\":"
		    "\"user\",\"content\":\"second\"}]}",
		"{\"model\":\"alias\",\"mod\\u0065l\":\"other\"}",
		"{\"model\":\"alias\",\"messages\":[{\"role\":\"user\","
		    "\"content\":\"a\",\"content\":\"b\"}]}",
	};
	struct backend b;
	struct fwd_ctx c;
	struct built r;
	char err[256];
	size_t i;

	backend_init(&b, BK_OPENAI, "127.0.0.1", 8000, 0, "");
	b.auth.type = AUTH_NONE;
	for (i = 0; i < sizeof(dups) / sizeof(dups[0]); i++) {
		json_t *j = parse_for(&c, &b, dups[i], "real-id");
		char *want;

		ck_assert_msg(c.raw == NULL, "dup %zu forwarded as text", i);
		ck_assert_int_eq(build(&adapter_openai, &c, &r, err,
		    sizeof(err)), 0);
		/* exactly the tree, with the model set */
		want = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
		ck_assert_uint_eq(r.raw_len, strlen(want));
		ck_assert(memcmp(r.raw_body, want, r.raw_len) == 0);
		ck_assert_str_eq(json_string_value(json_object_get(r.body,
		    "model")), "real-id");
		free(want);
		built_free(&r);
		json_decref(j);
	}
	/* Nested "model" keys are not the request's model. */
	{
		const char *t = "{\"metadata\":{\"model\":\"x\"},\"model\":\"m\"}";
		json_t *j = parse_for(&c, &b, t, "real-id");

		ck_assert_ptr_nonnull(c.raw);
		ck_assert_uint_eq(c.model_at, strlen(t) - strlen("\"m\"}"));
		ck_assert_uint_eq(c.model_len, 3);
		json_decref(j);
	}
}
END_TEST

/* ------------------------------------------------------------------ */
/* azure                                                                */

START_TEST(test_azure_serverless)
{
	struct backend b;
	struct fwd_ctx c;
	struct built r;
	char err[256];
	json_t *body = J("{\"model\":\"mistral-large\",\"messages\":"
	    "[{\"role\":\"user\",\"content\":\"hi\"}]}");

	backend_init(&b, BK_AZURE, "m-large.swedencentral.models.ai.azure.com",
	    443, 1, "");
	b.auth.type = AUTH_API_KEY;
	b.auth.key = "azure-secret-key";
	memset(&c, 0, sizeof(c));
	c.b = &b;
	c.ep = EP_CHAT;
	c.body = body;
	c.model_id = "Mistral-Large-2411";
	ck_assert_int_eq(build(&adapter_azure, &c, &r, err, sizeof(err)), 0);
	ck_assert_str_eq(r.line, "POST /v1/chat/completions HTTP/1.1");
	ck_assert_str_eq(http_head_get(&r.hd, "host"),
	    "m-large.swedencentral.models.ai.azure.com");
	ck_assert_str_eq(http_head_get(&r.hd, "api-key"), "azure-secret-key");
	ck_assert_ptr_null(http_head_get(&r.hd, "authorization"));
	ck_assert_str_eq(json_string_value(json_object_get(r.body, "model")),
	    "Mistral-Large-2411");
	built_free(&r);

	/* api_version configured: sent to serverless too. */
	b.api_version = "2024-05-01-preview";
	b.auth.type = AUTH_BEARER;
	ck_assert_int_eq(build(&adapter_azure, &c, &r, err, sizeof(err)), 0);
	ck_assert_str_eq(r.line, "POST /v1/chat/completions?api-version="
	    "2024-05-01-preview HTTP/1.1");
	ck_assert_str_eq(http_head_get(&r.hd, "authorization"),
	    "Bearer azure-secret-key");
	built_free(&r);

	/* Missing secret: refused, and no secret in the message. */
	b.auth.key = NULL;
	b.auth.key_env = "AZURE_KEY";
	ck_assert_int_eq(build(&adapter_azure, &c, &r, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "AZURE_KEY"));
	/* An api_version that would break the URL is refused. */
	b.auth.key = "k";
	b.api_version = "2024&x=1";
	ck_assert_int_eq(build(&adapter_azure, &c, &r, err, sizeof(err)), -1);
	json_decref(body);
}
END_TEST

START_TEST(test_azure_foundry)
{
	struct backend b;
	struct fwd_ctx c;
	struct built r;
	char err[256];
	json_t *body = J("{\"model\":\"mistral-large\",\"stream\":true,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");

	backend_init(&b, BK_AZURE, "acme.services.ai.azure.com", 443, 1, "");
	b.auth.type = AUTH_API_KEY;
	b.auth.key = "k1";
	memset(&c, 0, sizeof(c));
	c.b = &b;
	c.ep = EP_CHAT;
	c.body = body;
	c.stream = 1;
	c.model_id = "mistral-large-deploy";
	ck_assert_int_eq(build(&adapter_azure, &c, &r, err, sizeof(err)), 0);
	ck_assert_str_eq(r.line, "POST /models/chat/completions?api-version="
	    "2024-05-01-preview HTTP/1.1");
	ck_assert_str_eq(json_string_value(json_object_get(r.body, "model")),
	    "mistral-large-deploy");
	ck_assert_str_eq(http_head_get(&r.hd, "accept"), "text/event-stream");
	built_free(&r);

	/* An endpoint override (a mock, a private endpoint) keeps the shape;
	 * "/models" at its end selects Foundry. */
	backend_init(&b, BK_AZURE, "127.0.0.1", 18080, 0, "/models");
	b.auth.type = AUTH_API_KEY;
	b.auth.key = "k1";
	b.api_version = "2025-01-01";
	ck_assert_int_eq(build(&adapter_azure, &c, &r, err, sizeof(err)), 0);
	ck_assert_str_eq(r.line, "POST /models/chat/completions?api-version="
	    "2025-01-01 HTTP/1.1");
	ck_assert_str_eq(http_head_get(&r.hd, "host"), "127.0.0.1:18080");
	built_free(&r);
	c.ep = EP_EMBEDDINGS;
	ck_assert_int_eq(build(&adapter_azure, &c, &r, err, sizeof(err)), 0);
	ck_assert_str_eq(r.line, "POST /models/embeddings?api-version="
	    "2025-01-01 HTTP/1.1");
	built_free(&r);
	c.ep = EP_FIM;
	ck_assert_int_eq(build(&adapter_azure, &c, &r, err, sizeof(err)), -1);
	json_decref(body);
}
END_TEST

/* ------------------------------------------------------------------ */
/* bedrock: requests                                                    */

static const char *conversation =
    "{\"model\":\"mistral-large\",\"max_tokens\":200,\"temperature\":0.2,"
    "\"top_p\":0.9,\"stop\":\"END\",\"tool_choice\":\"required\","
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
    "\"description\":\"Weather for a city\",\"parameters\":{\"type\":"
    "\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"
    "\"required\":[\"city\"]}}}],"
    "\"messages\":["
    "{\"role\":\"system\",\"content\":\"You are terse.\"},"
    "{\"role\":\"user\",\"content\":\"Weather in Paris and Lyon?\"},"
    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
    "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
    "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
    "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":"
    "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Lyon\\\"}\"}}]},"
    "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"18C sun\"},"
    "{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":"
    "[{\"type\":\"text\",\"text\":\"15C rain\"}]},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
    "\"Summarise.\"}]}]}";

static void
bedrock_backend(struct backend *b)
{
	backend_init(b, BK_BEDROCK, "bedrock-runtime.eu-west-3.amazonaws.com",
	    443, 1, "");
	b->region = "eu-west-3";
	b->auth.type = AUTH_SIGV4;
	b->auth.access_key = "AKIDEXAMPLE";
	b->auth.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
}

START_TEST(test_bedrock_request)
{
	struct backend b;
	struct fwd_ctx c;
	struct built r;
	char err[256];
	json_t *body = J(conversation), *m, *ic, *tc, *blk;

	bedrock_backend(&b);
	memset(&c, 0, sizeof(c));
	c.b = &b;
	c.ep = EP_CHAT;
	c.body = body;
	c.model_id = "mistral.mistral-large-2407-v1:0";
	ck_assert_int_eq(build(&adapter_bedrock, &c, &r, err, sizeof(err)), 0);
	ck_assert_str_eq(r.line, "POST /model/mistral.mistral-large-2407-v1%3A0"
	    "/converse HTTP/1.1");
	ck_assert_str_eq(http_head_get(&r.hd, "accept"), "application/json");
	/* system */
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    json_object_get(r.body, "system"), 0), "text")), "You are terse.");
	/* user, assistant (two toolUse), user (two toolResult + text):
	 * consecutive user turns merged. */
	m = json_object_get(r.body, "messages");
	ck_assert_uint_eq(json_array_size(m), 3);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(m,
	    1), "role")), "assistant");
	blk = json_object_get(json_array_get(json_object_get(json_array_get(m,
	    1), "content"), 1), "toolUse");
	ck_assert_str_eq(json_string_value(json_object_get(blk, "toolUseId")),
	    "call_2");
	ck_assert_str_eq(json_string_value(json_object_get(blk, "name")),
	    "get_weather");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(blk,
	    "input"), "city")), "Lyon");
	blk = json_object_get(json_array_get(m, 2), "content");
	ck_assert_uint_eq(json_array_size(blk), 3);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    json_array_get(blk, 0), "toolResult"), "toolUseId")), "call_1");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    json_object_get(json_object_get(json_array_get(blk, 1),
	    "toolResult"), "content"), 0), "text")), "15C rain");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(blk,
	    2), "text")), "Summarise.");
	/* inferenceConfig */
	ic = json_object_get(r.body, "inferenceConfig");
	ck_assert_int_eq(json_integer_value(json_object_get(ic, "maxTokens")),
	    200);
	ck_assert(json_real_value(json_object_get(ic, "temperature")) == 0.2);
	ck_assert(json_real_value(json_object_get(ic, "topP")) == 0.9);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(ic,
	    "stopSequences"), 0)), "END");
	/* toolConfig */
	tc = json_object_get(r.body, "toolConfig");
	ck_assert_ptr_nonnull(json_object_get(json_object_get(tc,
	    "toolChoice"), "any"));
	blk = json_object_get(json_array_get(json_object_get(tc, "tools"), 0),
	    "toolSpec");
	ck_assert_str_eq(json_string_value(json_object_get(blk, "name")),
	    "get_weather");
	ck_assert_str_eq(json_string_value(json_object_get(blk,
	    "description")), "Weather for a city");
	ck_assert_ptr_nonnull(json_object_get(json_object_get(json_object_get(
	    json_object_get(blk, "inputSchema"), "json"), "properties"),
	    "city"));
	ck_assert_ptr_null(json_object_get(r.body, "model"));
	built_free(&r);

	/* A named tool choice; streaming goes to converse-stream. */
	json_object_set_new(body, "tool_choice", J("{\"type\":\"function\","
	    "\"function\":{\"name\":\"get_weather\"}}"));
	c.stream = 1;
	ck_assert_int_eq(build(&adapter_bedrock, &c, &r, err, sizeof(err)), 0);
	ck_assert_str_eq(r.line, "POST /model/mistral.mistral-large-2407-v1%3A0"
	    "/converse-stream HTTP/1.1");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    json_object_get(json_object_get(r.body, "toolConfig"),
	    "toolChoice"), "tool"), "name")), "get_weather");
	built_free(&r);

	/* Not chat: refused. Missing keys: named, not shown. */
	c.ep = EP_EMBEDDINGS;
	ck_assert_int_eq(build(&adapter_bedrock, &c, &r, err, sizeof(err)), -1);
	c.ep = EP_CHAT;
	b.auth.secret_key = NULL;
	b.auth.secret_key_env = "AWS_SECRET_ACCESS_KEY";
	ck_assert_int_eq(build(&adapter_bedrock, &c, &r, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "AWS_SECRET_ACCESS_KEY"));
	json_decref(body);
}
END_TEST

/* The signature on the wire verifies against what was sent. */
START_TEST(test_bedrock_signature)
{
	struct backend b;
	struct fwd_ctx c;
	struct built r;
	char err[256], *authz, *exp;
	json_t *body = J("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
	    "\"content\":\"hi\"}]}");
	struct sigv4_header h[4];
	struct sigv4_request sr;
	struct sigv4_creds k;

	bedrock_backend(&b);
	b.host = "127.0.0.1";
	b.port = 4566;
	b.use_tls = 0;
	b.auth.session_token = "FQoGZXIvYXdzEXAMPLETOKEN";
	memset(&c, 0, sizeof(c));
	c.b = &b;
	c.ep = EP_CHAT;
	c.body = body;
	c.model_id = "mistral.mistral-large-2407-v1:0";
	ck_assert_int_eq(build(&adapter_bedrock, &c, &r, err, sizeof(err)), 0);
	authz = (char *)http_head_get(&r.hd, "authorization");
	ck_assert_ptr_nonnull(authz);
	ck_assert_ptr_nonnull(strstr(authz, "/eu-west-3/bedrock/aws4_request, "
	    "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, "
	    "Signature="));
	ck_assert_str_eq(http_head_get(&r.hd, "x-amz-security-token"),
	    "FQoGZXIvYXdzEXAMPLETOKEN");
	h[0].name = "Content-Type";
	h[0].value = http_head_get(&r.hd, "content-type");
	h[1].name = "Host";
	h[1].value = http_head_get(&r.hd, "host");
	h[2].name = "X-Amz-Date";
	h[2].value = http_head_get(&r.hd, "x-amz-date");
	h[3].name = "X-Amz-Security-Token";
	h[3].value = http_head_get(&r.hd, "x-amz-security-token");
	ck_assert_str_eq(h[1].value, "127.0.0.1:4566");
	memset(&sr, 0, sizeof(sr));
	sr.method = "POST";
	sr.path = "/model/mistral.mistral-large-2407-v1%3A0/converse";
	sr.headers = h;
	sr.nheaders = 4;
	sr.payload = r.raw_body;
	sr.payload_len = r.raw_len;
	k.access_key = "AKIDEXAMPLE";
	k.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
	k.region = "eu-west-3";
	k.service = "bedrock";
	exp = sigv4_authorization(&sr, &k, h[2].value, SIGV4_NORMALIZE_PATH);
	ck_assert_str_eq(authz, exp);
	/* The secret never travels. */
	ck_assert_ptr_null(strstr(r.text, "wJalrXUtnFEMI"));
	free(exp);
	built_free(&r);
	json_decref(body);
}
END_TEST

/* ------------------------------------------------------------------ */
/* bedrock: answers                                                     */

static void
bedrock_ctx(struct fwd_ctx *c, struct backend *b, json_t *body, int stream)
{
	bedrock_backend(b);
	memset(c, 0, sizeof(*c));
	c->b = b;
	c->ep = EP_CHAT;
	c->body = body;
	c->stream = stream;
	c->model_id = "mistral.mistral-large-2407-v1:0";
}

/* Tools through a whole round trip: Converse's toolUse answer becomes
 * OpenAI tool_calls; the client sends them back with the results; they
 * become the same toolUse and matching toolResult blocks. */
START_TEST(test_bedrock_tool_round_trip)
{
	struct backend b;
	struct fwd_ctx c;
	struct answer a;
	struct built r;
	char err[256];
	json_t *req = J("{\"model\":\"mistral-large\",\"tools\":[{\"type\":"
	    "\"function\",\"function\":{\"name\":\"lookup\",\"parameters\":"
	    "{\"type\":\"object\"}}}],\"messages\":[{\"role\":\"user\","
	    "\"content\":\"Find order 42\"}]}");
	const char *conv = "{\"output\":{\"message\":{\"role\":\"assistant\","
	    "\"content\":[{\"text\":\"Looking it up.\"},{\"toolUse\":"
	    "{\"toolUseId\":\"tooluse_abc\",\"name\":\"lookup\",\"input\":"
	    "{\"order\":42,\"deep\":{\"x\":[1,2]}}}}]}},\"stopReason\":"
	    "\"tool_use\",\"usage\":{\"inputTokens\":30,\"outputTokens\":9,"
	    "\"totalTokens\":39},\"metrics\":{\"latencyMs\":100}}";
	json_t *resp, *msg, *call, *blocks, *tu, *tr;

	bedrock_ctx(&c, &b, req, 0);
	answer(&adapter_bedrock, &c, 200, "application/json", NULL, conv,
	    strlen(conv), 7, 1, &a);
	ck_assert_int_eq(a.rc_body, 0);
	ck_assert_int_eq(a.rc_end, 0);
	ck_assert_str_eq(a.ctype, "application/json");
	resp = J(a.out);
	ck_assert_str_eq(json_string_value(json_object_get(resp, "object")),
	    "chat.completion");
	msg = json_object_get(json_array_get(json_object_get(resp, "choices"),
	    0), "message");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    json_object_get(resp, "choices"), 0), "finish_reason")),
	    "tool_calls");
	ck_assert_str_eq(json_string_value(json_object_get(msg, "content")),
	    "Looking it up.");
	call = json_array_get(json_object_get(msg, "tool_calls"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(call, "id")),
	    "tooluse_abc");
	ck_assert_str_eq(json_string_value(json_object_get(call, "type")),
	    "function");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    resp, "usage"), "total_tokens")), 39);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    resp, "usage"), "prompt_tokens")), 30);
	/* The client appends the assistant turn and the tool's result. */
	json_array_append(json_object_get(req, "messages"), msg);
	json_array_append_new(json_object_get(req, "messages"), J(
	    "{\"role\":\"tool\",\"tool_call_id\":\"tooluse_abc\",\"content\":"
	    "\"{\\\"status\\\":\\\"shipped\\\"}\"}"));
	ck_assert_int_eq(build(&adapter_bedrock, &c, &r, err, sizeof(err)), 0);
	blocks = json_object_get(json_array_get(json_object_get(r.body,
	    "messages"), 1), "content");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    blocks, 0), "text")), "Looking it up.");
	tu = json_object_get(json_array_get(blocks, 1), "toolUse");
	ck_assert_str_eq(json_string_value(json_object_get(tu, "toolUseId")),
	    "tooluse_abc");
	ck_assert_str_eq(json_string_value(json_object_get(tu, "name")),
	    "lookup");
	{
		json_t *orig = J("{\"order\":42,\"deep\":{\"x\":[1,2]}}");

		ck_assert(json_equal(json_object_get(tu, "input"), orig));
		json_decref(orig);
	}
	tr = json_object_get(json_array_get(json_object_get(json_array_get(
	    json_object_get(r.body, "messages"), 2), "content"), 0),
	    "toolResult");
	ck_assert_str_eq(json_string_value(json_object_get(tr, "toolUseId")),
	    "tooluse_abc");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    json_object_get(tr, "content"), 0), "text")),
	    "{\"status\":\"shipped\"}");
	ck_assert_ptr_nonnull(json_object_get(r.body, "toolConfig"));
	built_free(&r);
	json_decref(resp);
	free(a.out);
	json_decref(req);
}
END_TEST

START_TEST(test_bedrock_errors_and_bad_json)
{
	struct backend b;
	struct fwd_ctx c;
	struct answer a;
	json_t *req = J("{\"model\":\"m\",\"messages\":[]}"), *o;
	const char *e = "{\"message\":\"Malformed input request\"}";

	bedrock_ctx(&c, &b, req, 1);
	/* An error answer to a stream request is JSON, OpenAI-shaped. */
	answer(&adapter_bedrock, &c, 400, "application/json",
	    "ValidationException:http://internal.amazon.com/coral/x/", e,
	    strlen(e), 100, 1, &a);
	ck_assert_int_eq(a.rc_end, 0);
	ck_assert_str_eq(a.ctype, "application/json");
	o = J(a.out);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o,
	    "error"), "message")), "Malformed input request");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o,
	    "error"), "code")), "ValidationException");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o,
	    "error"), "type")), "invalid_request_error");
	json_decref(o);
	free(a.out);

	/* Malformed and truncated JSON, unexpected content type. */
	c.stream = 0;
	answer(&adapter_bedrock, &c, 200, "application/json", NULL,
	    "{\"output\":", 10, 100, 1, &a);
	ck_assert_int_eq(a.rc_end, -1);
	ck_assert_ptr_nonnull(strstr(a.err, "malformed"));
	ck_assert_str_eq(a.out, "");	/* nothing sent: fail over */
	free(a.out);
	answer(&adapter_bedrock, &c, 200, "application/json", NULL,
	    "{\"output\":{}}", 13, 100, 1, &a);
	ck_assert_int_eq(a.rc_end, -1);
	free(a.out);
	answer(&adapter_bedrock, &c, 200, "text/html", NULL, "<html>", 6, 100,
	    1, &a);
	ck_assert_int_eq(a.rc_body, -1);
	ck_assert_ptr_nonnull(strstr(a.err, "content type"));
	free(a.out);
	json_decref(req);
}
END_TEST

START_TEST(test_bedrock_stream_vectors)
{
	struct backend b;
	struct fwd_ctx c;
	struct answer a;
	size_t len, step, i;
	char *ok = shared_file("vectors/bedrock-eventstream/"
	    "converse-stream-ok.bin", &len);
	json_t *req = J("{\"model\":\"m\",\"stream\":true,\"stream_options\":"
	    "{\"include_usage\":true},\"messages\":[]}"), *ev, *last;
	int done, errors;

	if (ok == NULL) {
		json_decref(req);
		return;		/* no vectors: covered by check_eventstream */
	}
	bedrock_ctx(&c, &b, req, 1);
	for (step = 1; step <= len; step += 37) {
		struct evbuffer *text = evbuffer_new();

		answer(&adapter_bedrock, &c, 200,
		    "application/vnd.amazon.eventstream", NULL, ok, len, step, 1,
		    &a);
		ck_assert_int_eq(a.rc_body, 0);
		ck_assert_int_eq(a.rc_end, 0);
		ck_assert_str_eq(a.ctype, "text/event-stream");
		ev = sse_events(a.out, &done, &errors);
		ck_assert_int_eq(done, 1);
		ck_assert_int_eq(errors, 0);
		for (i = 0; i < json_array_size(ev); i++) {
			json_t *o = json_array_get(ev, i);
			json_t *d = json_object_get(json_array_get(
			    json_object_get(o, "choices"), 0), "delta");
			const char *t = json_string_value(json_object_get(d,
			    "content"));

			ck_assert_str_eq(json_string_value(json_object_get(o,
			    "object")), "chat.completion.chunk");
			if (t)
				evbuffer_add(text, t, strlen(t));
		}
		evbuffer_add(text, "", 1);
		ck_assert_str_eq((char *)evbuffer_pullup(text, -1),
		    "Bonjour, le monde");
		/* first chunk: the role; the finishing one: finish_reason
		 * and usage; then OpenAI's usage-only chunk. */
		ck_assert_str_eq(json_string_value(json_object_get(
		    json_object_get(json_array_get(json_object_get(
		    json_array_get(ev, 0), "choices"), 0), "delta"), "role")),
		    "assistant");
		last = json_array_get(ev, json_array_size(ev) - 2);
		ck_assert_str_eq(json_string_value(json_object_get(
		    json_array_get(json_object_get(last, "choices"), 0),
		    "finish_reason")), "stop");
		ck_assert_int_eq(json_integer_value(json_object_get(
		    json_object_get(last, "usage"), "prompt_tokens")), 12);
		ck_assert_int_eq(json_integer_value(json_object_get(
		    json_object_get(last, "usage"), "completion_tokens")), 4);
		ck_assert_int_eq(json_integer_value(json_object_get(
		    json_object_get(last, "usage"), "total_tokens")), 16);
		last = json_array_get(ev, json_array_size(ev) - 1);
		ck_assert_uint_eq(json_array_size(json_object_get(last,
		    "choices")), 0);
		json_decref(ev);
		evbuffer_free(text);
		free(a.out);
	}
	free(ok);

	/* Broken CRC: rejected, no [DONE]. */
	ok = shared_file("vectors/bedrock-eventstream/"
	    "converse-stream-bad-crc.bin", &len);
	ck_assert_ptr_nonnull(ok);
	answer(&adapter_bedrock, &c, 200, "application/vnd.amazon.eventstream",
	    NULL, ok, len, 64, 1, &a);
	ck_assert_int_eq(a.rc_body, -1);
	ck_assert_ptr_nonnull(strstr(a.err, "CRC"));
	ck_assert_ptr_null(strstr(a.out, "[DONE]"));
	free(a.out);
	free(ok);

	/* Exception frame: the text before it reached the client, then the
	 * answer ends in error naming the exception. */
	ok = shared_file("vectors/bedrock-eventstream/"
	    "converse-stream-exception.bin", &len);
	ck_assert_ptr_nonnull(ok);
	answer(&adapter_bedrock, &c, 200, "application/vnd.amazon.eventstream",
	    NULL, ok, len, 1000, 1, &a);
	ck_assert_int_eq(a.rc_body, -1);
	ck_assert_ptr_nonnull(strstr(a.err, "throttlingException"));
	ck_assert_ptr_nonnull(strstr(a.out, "Bonjour"));
	ck_assert_ptr_null(strstr(a.out, "[DONE]"));
	free(a.out);

	/* Cut after a whole frame but before messageStop: an error for the
	 * proxy to report (it writes the SSE error event), no [DONE]. */
	answer(&adapter_bedrock, &c, 200, "application/vnd.amazon.eventstream",
	    NULL, ok, 0x123, 1000, 1, &a);
	ck_assert_int_eq(a.rc_end, -1);
	ck_assert_ptr_nonnull(strstr(a.err, "ended before"));
	ev = sse_events(a.out, &done, &errors);
	ck_assert_int_eq(done, 0);
	ck_assert_int_eq(errors, 0);
	ck_assert_ptr_nonnull(strstr(a.out, "Bonjour"));
	json_decref(ev);
	free(a.out);
	/* An empty answer (nothing written: the proxy can fail over). */
	answer(&adapter_bedrock, &c, 200, "application/vnd.amazon.eventstream",
	    NULL, ok, 0, 1000, 1, &a);
	ck_assert_int_eq(a.rc_end, -1);
	ck_assert_str_eq(a.out, "");
	ev = sse_events(a.out, &done, &errors);
	json_decref(ev);
	free(a.out);
	free(ok);
	json_decref(req);
}
END_TEST

static void
frame(struct evbuffer *b, const char *type, const char *json)
{
	struct es_hdr_in h[3] = { { ":message-type", "event" },
		{ ":event-type", type }, { ":content-type", "application/json" } };
	size_t n;
	unsigned char *f = es_encode(h, 3, json, strlen(json), &n);

	evbuffer_add(b, f, n);
	free(f);
}

/* A streamed tool call: OpenAI's tool_calls deltas, by index. */
START_TEST(test_bedrock_stream_tool_use)
{
	struct backend b;
	struct fwd_ctx c;
	struct answer a;
	struct evbuffer *s = evbuffer_new(), *args = evbuffer_new();
	json_t *req = J("{\"model\":\"m\",\"stream\":true,\"messages\":[]}");
	json_t *ev;
	size_t i;
	int done, errors, saw_id = 0, saw_text = 0;
	const char *fin = NULL;

	frame(s, "messageStart", "{\"role\":\"assistant\"}");
	/* Text that needs escaping on its way into the SSE line. */
	frame(s, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":"
	    "{\"text\":\"Sure: \\\"q\\\" \\\\ \\n\\t\\u0001\\u0000 \\u00e9\\u20ac\"}}");
	frame(s, "contentBlockStop", "{\"contentBlockIndex\":0}");
	frame(s, "contentBlockStart", "{\"contentBlockIndex\":1,\"start\":"
	    "{\"toolUse\":{\"toolUseId\":\"tu_1\",\"name\":\"lookup\"}}}");
	frame(s, "contentBlockDelta", "{\"contentBlockIndex\":1,\"delta\":"
	    "{\"toolUse\":{\"input\":\"{\\\"order\\\":\"}}}");
	frame(s, "contentBlockDelta", "{\"contentBlockIndex\":1,\"delta\":"
	    "{\"toolUse\":{\"input\":\"42}\"}}}");
	frame(s, "contentBlockStop", "{\"contentBlockIndex\":1}");
	frame(s, "messageStop", "{\"stopReason\":\"tool_use\"}");
	frame(s, "metadata", "{\"usage\":{\"inputTokens\":5,\"outputTokens\":7,"
	    "\"totalTokens\":12},\"metrics\":{\"latencyMs\":1}}");
	bedrock_ctx(&c, &b, req, 1);
	answer(&adapter_bedrock, &c, 200, "application/vnd.amazon.eventstream",
	    NULL, evbuffer_pullup(s, -1), evbuffer_get_length(s), 50, 1, &a);
	ck_assert_int_eq(a.rc_end, 0);
	ev = sse_events(a.out, &done, &errors);
	ck_assert_int_eq(done, 1);
	for (i = 0; i < json_array_size(ev); i++) {
		json_t *ch = json_array_get(json_object_get(json_array_get(ev,
		    i), "choices"), 0);
		json_t *tc = json_array_get(json_object_get(json_object_get(ch,
		    "delta"), "tool_calls"), 0);

		if (json_is_string(json_object_get(json_object_get(ch,
		    "delta"), "content")) && !json_object_get(json_object_get(
		    ch, "delta"), "role")) {
			json_t *t = json_object_get(json_object_get(ch,
			    "delta"), "content");

			ck_assert_uint_eq(json_string_length(t), 22);
			ck_assert(memcmp(json_string_value(t),
			    "Sure: \"q\" \\ \n\t\x01\0 \xc3\xa9\xe2\x82\xac", 22) == 0);
			saw_text = 1;
		}
		if (json_string_value(json_object_get(ch, "finish_reason")))
			fin = json_string_value(json_object_get(ch,
			    "finish_reason"));
		if (tc == NULL)
			continue;
		ck_assert_int_eq(json_integer_value(json_object_get(tc,
		    "index")), 0);
		if (json_object_get(tc, "id")) {
			ck_assert_str_eq(json_string_value(json_object_get(tc,
			    "id")), "tu_1");
			ck_assert_str_eq(json_string_value(json_object_get(
			    json_object_get(tc, "function"), "name")),
			    "lookup");
			saw_id = 1;
		}
		{
			const char *ar = json_string_value(json_object_get(
			    json_object_get(tc, "function"), "arguments"));

			if (ar)
				evbuffer_add(args, ar, strlen(ar));
		}
	}
	evbuffer_add(args, "", 1);
	ck_assert_int_eq(saw_id, 1);
	ck_assert_int_eq(saw_text, 1);
	ck_assert_str_eq((char *)evbuffer_pullup(args, -1), "{\"order\":42}");
	ck_assert_str_eq(fin, "tool_calls");
	json_decref(ev);
	free(a.out);
	evbuffer_free(s);
	evbuffer_free(args);
	json_decref(req);
}
END_TEST

/* ------------------------------------------------------------------ */
/* vertex                                                               */

START_TEST(test_vertex_request)
{
	struct backend b;
	struct fwd_ctx c;
	struct built r;
	char err[256];
	json_t *body = J("{\"model\":\"mistral-large\",\"stream\":true,"
	    "\"stream_options\":{\"include_usage\":true},\"seed\":7,"
	    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");

	backend_init(&b, BK_VERTEX, "europe-west4-aiplatform.googleapis.com",
	    443, 1, "");
	b.project = "acme-prod";
	b.region = "europe-west4";
	b.auth.type = AUTH_BEARER;
	b.auth.key = "ya29.token";
	memset(&c, 0, sizeof(c));
	c.b = &b;
	c.ep = EP_CHAT;
	c.body = body;
	c.stream = 1;
	c.model_id = "mistral-large-2411@001";
	ck_assert_int_eq(build(&adapter_vertex, &c, &r, err, sizeof(err)), 0);
	ck_assert_str_eq(r.line, "POST /v1/projects/acme-prod/locations/"
	    "europe-west4/publishers/mistralai/models/mistral-large-2411@001:"
	    "streamRawPredict HTTP/1.1");
	ck_assert_str_eq(http_head_get(&r.hd, "authorization"),
	    "Bearer ya29.token");
	ck_assert_str_eq(json_string_value(json_object_get(r.body, "model")),
	    "mistral-large-2411");
	ck_assert_ptr_null(json_object_get(r.body, "stream_options"));
	ck_assert_int_eq(json_integer_value(json_object_get(r.body,
	    "random_seed")), 7);
	built_free(&r);
	c.stream = 0;
	ck_assert_int_eq(build(&adapter_vertex, &c, &r, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(r.line, ":rawPredict HTTP/1.1"));
	built_free(&r);
	/* No project: refused. */
	b.project = NULL;
	ck_assert_int_eq(build(&adapter_vertex, &c, &r, err, sizeof(err)), -1);
	json_decref(body);
}
END_TEST

/* ---- a token endpoint run by the test ---- */

struct tokensrv {
	int fd, port;
	int status;
	const char *answer;
	int hits;
	char last_body[8192];
	pthread_t th;
	int stop;
	pthread_mutex_t mu;
	int delay_ms;
};

static void *
tokensrv_main(void *arg)
{
	struct tokensrv *s = arg;

	for (;;) {
		int c = accept(s->fd, NULL, NULL);
		char buf[16384], *hdr_end, *cl, *resp;
		size_t n = 0;
		ssize_t k;

		if (c < 0)
			return NULL;
		pthread_mutex_lock(&s->mu);
		if (s->stop) {
			pthread_mutex_unlock(&s->mu);
			close(c);
			return NULL;
		}
		pthread_mutex_unlock(&s->mu);
		for (;;) {
			k = read(c, buf + n, sizeof(buf) - 1 - n);
			if (k <= 0)
				break;
			n += (size_t)k;
			buf[n] = '\0';
			hdr_end = strstr(buf, "\r\n\r\n");
			cl = strcasestr(buf, "content-length:");
			if (hdr_end && cl && n >= (size_t)(hdr_end + 4 - buf) +
			    (size_t)atoi(cl + 15))
				break;
		}
		hdr_end = strstr(buf, "\r\n\r\n");
		if (s->delay_ms)
			usleep((useconds_t)s->delay_ms * 1000);
		pthread_mutex_lock(&s->mu);
		s->hits++;
		snprintf(s->last_body, sizeof(s->last_body), "%s",
		    hdr_end ? hdr_end + 4 : "");
		pthread_mutex_unlock(&s->mu);
		resp = xasprintf("HTTP/1.1 %d X\r\nContent-Type: application/"
		    "json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
		    s->status, strlen(s->answer), s->answer);
		if (write(c, resp, strlen(resp)) < 0)
			perror("write");
		free(resp);
		close(c);
	}
}

static void
tokensrv_start(struct tokensrv *s, int status, const char *answer)
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int one = 1;

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->mu, NULL);
	s->status = status;
	s->answer = answer;
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(s->fd, 16), 0);
	getsockname(s->fd, (struct sockaddr *)&a, &al);
	s->port = ntohs(a.sin_port);
	pthread_create(&s->th, NULL, tokensrv_main, s);
}

static void
tokensrv_stop(struct tokensrv *s)
{
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	pthread_mutex_unlock(&s->mu);
	shutdown(s->fd, SHUT_RDWR);
	close(s->fd);
	pthread_join(s->th, NULL);
	pthread_mutex_destroy(&s->mu);
}

static EVP_PKEY *test_key;

/* Writes a service-account file for the test key and this endpoint. */
static char *
write_sa(const char *dir, const char *name, int port)
{
	BIO *m = BIO_new(BIO_s_mem());
	char *pem, *path, *uri;
	long n;
	json_t *sa;

	PEM_write_bio_PrivateKey(m, test_key, NULL, NULL, 0, NULL, NULL);
	n = BIO_get_mem_data(m, &pem);
	uri = xasprintf("http://127.0.0.1:%d/token", port);
	sa = json_pack("{s:s, s:s, s:s, s:s#, s:s}", "type", "service_account",
	    "client_email", "gw@acme.iam.gserviceaccount.com",
	    "private_key_id", "kid-1", "private_key", pem, (size_t)n,
	    "token_uri", uri);
	path = xasprintf("%s/%s", dir, name);
	ck_assert_int_eq(json_dump_file(sa, path, 0), 0);
	json_decref(sa);
	BIO_free(m);
	free(uri);
	return path;
}

static unsigned char *
b64url_decode(const char *s, size_t n, size_t *outlen)
{
	char *t = xmalloc(n + 4);
	unsigned char *o = xmalloc(n + 4);
	size_t i, m = n;
	int len;

	for (i = 0; i < n; i++)
		t[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	while (m % 4)
		t[m++] = '=';
	len = EVP_DecodeBlock(o, (unsigned char *)t, (int)m);
	ck_assert_int_ge(len, 0);
	*outlen = (size_t)len - (m - n);
	free(t);
	return o;
}

/* Checks an assertion the way Google does: RS256 over "h.c" with the
 * service account's public key, and the claims. */
static void
check_jwt(const char *jwt, int port)
{
	const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	size_t hl, cl, sl;
	unsigned char *h, *c, *sig;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	json_t *hj, *cj;
	char *aud = xasprintf("http://127.0.0.1:%d/token", port);

	ck_assert_ptr_nonnull(d2);
	h = b64url_decode(jwt, (size_t)(d1 - jwt), &hl);
	c = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &cl);
	sig = b64url_decode(d2 + 1, strlen(d2 + 1), &sl);
	hj = json_loadb((char *)h, hl, 0, NULL);
	cj = json_loadb((char *)c, cl, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(hj, "alg")), "RS256");
	ck_assert_str_eq(json_string_value(json_object_get(hj, "kid")), "kid-1");
	ck_assert_str_eq(json_string_value(json_object_get(cj, "iss")),
	    "gw@acme.iam.gserviceaccount.com");
	ck_assert_str_eq(json_string_value(json_object_get(cj, "scope")),
	    GAUTH_SCOPE);
	ck_assert_str_eq(json_string_value(json_object_get(cj, "aud")), aud);
	ck_assert_int_eq(json_integer_value(json_object_get(cj, "exp")) -
	    json_integer_value(json_object_get(cj, "iat")), 3600);
	ck_assert_int_eq(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL,
	    test_key), 1);
	ck_assert_int_eq(EVP_DigestVerify(md, sig, sl, (unsigned char *)jwt,
	    (size_t)(d2 - jwt)), 1);
	EVP_MD_CTX_free(md);
	json_decref(hj);
	json_decref(cj);
	free(h);
	free(c);
	free(sig);
	free(aud);
}

struct readyrec {
	int calls, ok;
	char err[256];
	struct event_base *base;
};

static void
on_ready(void *arg, int ok, const char *err)
{
	struct readyrec *r = arg;

	r->calls++;
	r->ok = ok;
	snprintf(r->err, sizeof(r->err), "%s", err ? err : "");
	event_base_loopbreak(r->base);
}

static void
run_loop(struct event_base *base, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

START_TEST(test_vertex_service_account)
{
	char dir[] = "/tmp/sovgate-gauth-XXXXXX";
	struct tokensrv srv, bad;
	struct backend b;
	struct fwd_ctx c;
	struct built r;
	struct adapter_env env;
	struct readyrec r1 = { 0 }, r2 = { 0 }, r3 = { 0 };
	void *h1 = NULL, *h2 = NULL, *h3 = NULL;
	char err[256], *sa, *sa_bad;
	const char *p;
	json_t *body = J("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
	    "\"content\":\"hi\"}]}");

	ck_assert_ptr_nonnull(mkdtemp(dir));
	tokensrv_start(&srv, 200, "{\"access_token\":\"ya29.test-token-1\","
	    "\"expires_in\":3599,\"token_type\":\"Bearer\"}");
	srv.delay_ms = 100;	/* two requests meet one refresh */
	sa = write_sa(dir, "sa.json", srv.port);
	env.base = event_base_new();
	env.dns = NULL;
	env.mb = mailbox_new(env.base);
	r1.base = r2.base = r3.base = env.base;
	backend_init(&b, BK_VERTEX, "127.0.0.1", 9, 0, "");
	b.project = "p";
	b.region = "europe-west4";
	b.auth.type = AUTH_GSA;
	b.auth.credentials_file = sa;
	memset(&c, 0, sizeof(c));
	c.b = &b;
	c.ep = EP_CHAT;
	c.body = body;
	c.model_id = "mistral-large-2411";

	/* No token yet: both wait on one refresh, and neither blocks. */
	ck_assert_int_eq(adapter_vertex.prepare(&c, &env, on_ready, &r1, &h1,
	    err, sizeof(err)), 0);
	ck_assert_int_eq(adapter_vertex.prepare(&c, &env, on_ready, &r2, &h2,
	    err, sizeof(err)), 0);
	/* build without a token fails cleanly */
	ck_assert_int_eq(build(&adapter_vertex, &c, &r, err, sizeof(err)), -1);
	while (r1.calls + r2.calls < 2)
		run_loop(env.base, 5000);
	ck_assert_int_eq(r1.ok, 1);
	ck_assert_int_eq(r2.ok, 1);
	ck_assert_int_eq(srv.hits, 1);
	p = strstr(srv.last_body, "grant_type=urn%3Aietf%3Aparams%3Aoauth%3A"
	    "grant-type%3Ajwt-bearer&assertion=");
	ck_assert_ptr_nonnull(p);
	check_jwt(strstr(srv.last_body, "assertion=") + 10, srv.port);
	/* Cached: ready at once, no new exchange. */
	ck_assert_int_eq(adapter_vertex.prepare(&c, &env, on_ready, &r3, &h3,
	    err, sizeof(err)), 1);
	ck_assert_int_eq(build(&adapter_vertex, &c, &r, err, sizeof(err)), 0);
	ck_assert_str_eq(http_head_get(&r.hd, "authorization"),
	    "Bearer ya29.test-token-1");
	built_free(&r);
	ck_assert_int_eq(srv.hits, 1);

	/* A 401 from Vertex drops the cached token (the answer itself
	 * passes through: no state). Then a cancelled wait is never called
	 * back. */
	{
		struct http_head up;

		http_head_init(&up, 0);
		ck_assert_ptr_null(adapter_vertex.resp_new(&c, 401, &up));
		http_head_clear(&up);
	}
	ck_assert_ptr_null(gauth_token(gauth_for(&b)));
	memset(&r3, 0, sizeof(r3));
	r3.base = env.base;
	ck_assert_int_eq(adapter_vertex.prepare(&c, &env, on_ready, &r3, &h3,
	    err, sizeof(err)), 0);
	adapter_vertex.cancel(h3);
	run_loop(env.base, 400);
	ck_assert_int_eq(r3.calls, 0);

	/* A failing token endpoint: the waiter gets the reason (and no
	 * secret); the next request fails at once instead of piling up. */
	tokensrv_start(&bad, 400, "{\"error\":\"invalid_grant\","
	    "\"error_description\":\"Invalid JWT Signature.\"}");
	sa_bad = write_sa(dir, "sa-bad.json", bad.port);
	b.auth.credentials_file = sa_bad;
	memset(&r1, 0, sizeof(r1));
	r1.base = env.base;
	ck_assert_int_eq(adapter_vertex.prepare(&c, &env, on_ready, &r1, &h1,
	    err, sizeof(err)), 0);
	while (r1.calls < 1)
		run_loop(env.base, 5000);
	ck_assert_int_eq(r1.ok, 0);
	ck_assert_ptr_nonnull(strstr(r1.err, "400"));
	ck_assert_ptr_nonnull(strstr(r1.err, "invalid_grant"));
	ck_assert_ptr_null(strstr(r1.err, "PRIVATE"));
	ck_assert_ptr_null(strstr(r1.err, "eyJ"));
	ck_assert_int_eq(adapter_vertex.prepare(&c, &env, on_ready, &r1, &h1,
	    err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "invalid_grant"));
	ck_assert_int_eq(bad.hits, 1);

	/* An unreachable endpoint and a missing file fail the same way. */
	b.auth.credentials_file = "/nonexistent/sa.json";
	memset(&r1, 0, sizeof(r1));
	r1.base = env.base;
	ck_assert_int_eq(adapter_vertex.prepare(&c, &env, on_ready, &r1, &h1,
	    err, sizeof(err)), 0);
	while (r1.calls < 1)
		run_loop(env.base, 5000);
	ck_assert_int_eq(r1.ok, 0);
	ck_assert_ptr_nonnull(strstr(r1.err, "cannot read"));

	gauth_shutdown();
	tokensrv_stop(&srv);
	tokensrv_stop(&bad);
	mailbox_free(env.mb);
	event_base_free(env.base);
	unlink(sa);
	unlink(sa_bad);
	rmdir(dir);
	free(sa);
	free(sa_bad);
	json_decref(body);
}
END_TEST

START_TEST(test_b64url)
{
	char *s = gauth_b64url("\xfb\xff\xfe", 3);

	ck_assert_str_eq(s, "-__-");
	free(s);
	s = gauth_b64url("ab", 2);
	ck_assert_str_eq(s, "YWI");
	free(s);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("adapters");
	TCase *tc = tcase_create("core");
	int nf;

	evthread_use_pthreads();
	test_key = EVP_RSA_gen(2048);
	if (test_key == NULL)
		return 99;
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_openai_forwards_text);
	tcase_add_test(tc, test_openai_duplicate_keys_reserialised);
	tcase_add_test(tc, test_azure_serverless);
	tcase_add_test(tc, test_azure_foundry);
	tcase_add_test(tc, test_bedrock_request);
	tcase_add_test(tc, test_bedrock_signature);
	tcase_add_test(tc, test_bedrock_tool_round_trip);
	tcase_add_test(tc, test_bedrock_errors_and_bad_json);
	tcase_add_test(tc, test_bedrock_stream_vectors);
	tcase_add_test(tc, test_bedrock_stream_tool_use);
	tcase_add_test(tc, test_vertex_request);
	tcase_add_test(tc, test_vertex_service_account);
	tcase_add_test(tc, test_b64url);
	suite_add_tcase(s, tc);
	nf = run_suite(s);
	EVP_PKEY_free(test_key);
	return nf;
}
