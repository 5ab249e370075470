/*
 * adapter_bedrock.c - kind `bedrock`: Amazon Bedrock Runtime's Converse
 * API, SigV4-signed (service "bedrock", the descriptor's region, optional
 * session token).
 *
 * Requests: OpenAI chat completions become POST /model/{modelId}/converse
 * (or /converse-stream): system messages go to "system"; user, assistant
 * and tool messages become "messages" with text, image, toolUse and
 * toolResult blocks (consecutive messages of one role merged, as Converse
 * wants alternating roles); max_tokens, temperature, top_p and stop go to
 * "inferenceConfig"; tools and tool_choice to "toolConfig".
 *
 * Answers: a Converse JSON document becomes a chat.completion; a
 * ConverseStream event stream (application/vnd.amazon.eventstream, every
 * frame's CRCs verified) becomes chat.completion.chunk SSE events ending
 * in "data: [DONE]". The finishing chunk carries finish_reason and usage
 * (as Mistral's API does); a client that asked for
 * stream_options.include_usage also gets OpenAI's usage-only chunk.
 * Bedrock's errors ({"message"} with x-amzn-ErrorType) become OpenAI
 * error objects.
 *
 * Failures the adapter detects in an answer (a broken frame, an exception
 * frame, malformed JSON, an unexpected content type, a cut stream) make
 * resp_body or resp_end return -1 without writing anything more, with the
 * reason available from resp_error: the proxy then fails over if nothing
 * reached the client yet (a JSON answer is only written once it has been
 * translated whole), or ends the stream with its SSE error event, and
 * logs the outcome.
 */
#include "adapter.h"
#include "eventstream.h"
#include "sigv4.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/crypto.h>

/* A non-stream Converse answer is buffered whole to be translated. */
#define BEDROCK_MAX_BODY	(16u * 1024 * 1024)

/* ------------------------------------------------------------------ */
/* request translation                                                  */

static const char *
str_of(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* "data:image/png;base64,AAAA" -> {"image":{"format":"png","source":
 * {"bytes":"AAAA"}}}; Converse takes no image URLs. */
static json_t *
image_block(const char *url, char *err, size_t errlen)
{
	const char *semi, *comma, *fmt;

	if (url == NULL || strncmp(url, "data:image/", 11) != 0 ||
	    (semi = strstr(url, ";base64,")) == NULL) {
		snprintf(err, errlen, "Bedrock accepts images only as base64 "
		    "data: URLs");
		return NULL;
	}
	comma = semi + 7;
	fmt = url + 11;
	if ((size_t)(semi - fmt) > 8) {
		snprintf(err, errlen, "unsupported image format");
		return NULL;
	}
	{
		char f[9];

		memcpy(f, fmt, (size_t)(semi - fmt));
		f[semi - fmt] = '\0';
		if (strcmp(f, "jpg") == 0)
			strcpy(f, "jpeg");
		return json_pack("{s:{s:s, s:{s:s}}}", "image", "format", f,
		    "source", "bytes", comma + 1);
	}
}

/* Appends the blocks of an OpenAI message content (string or parts) to
 * blocks; with text_only, images are refused. */
static int
add_content(json_t *blocks, const json_t *content, int text_only, char *err,
    size_t errlen)
{
	size_t i;
	const json_t *part;

	if (content == NULL || json_is_null(content))
		return 0;
	if (json_is_string(content)) {
		/* Converse rejects blank text blocks. */
		if (json_string_length(content) > 0)
			json_array_append_new(blocks, json_pack("{s:O}", "text",
			    content));
		return 0;
	}
	if (!json_is_array(content)) {
		snprintf(err, errlen, "message content must be a string or an "
		    "array of parts");
		return -1;
	}
	json_array_foreach(content, i, part) {
		const char *type = str_of(part, "type");

		if (type && strcmp(type, "text") == 0) {
			json_t *t = json_object_get(part, "text");

			if (json_is_string(t) && json_string_length(t) > 0)
				json_array_append_new(blocks,
				    json_pack("{s:O}", "text", t));
		} else if (type && strcmp(type, "image_url") == 0 &&
		    !text_only) {
			const json_t *iu = json_object_get(part, "image_url");
			json_t *b = image_block(json_is_string(iu) ?
			    json_string_value(iu) : str_of(iu, "url"), err,
			    errlen);

			if (b == NULL)
				return -1;
			json_array_append_new(blocks, b);
		} else {
			snprintf(err, errlen, "content part of type '%s' is not "
			    "supported by Bedrock", type ? type : "?");
			return -1;
		}
	}
	return 0;
}

/* Appends blocks as a message of role, merging into the previous message
 * when it has the same role. */
static void
push_message(json_t *msgs, const char *role, json_t *blocks)
{
	json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);

	if (json_array_size(blocks) == 0) {
		json_decref(blocks);
		return;
	}
	if (last && json_array_size(msgs) > 0 &&
	    strcmp(str_of(last, "role"), role) == 0) {
		json_array_extend(json_object_get(last, "content"), blocks);
		json_decref(blocks);
		return;
	}
	json_array_append_new(msgs, json_pack("{s:s, s:o}", "role", role,
	    "content", blocks));
}

static int
add_tool_calls(json_t *blocks, const json_t *calls, char *err, size_t errlen)
{
	size_t i;
	const json_t *tc;

	if (calls == NULL || json_is_null(calls))
		return 0;
	if (!json_is_array(calls))
		goto bad;
	json_array_foreach(calls, i, tc) {
		const json_t *fn = json_object_get(tc, "function");
		const char *id = str_of(tc, "id"), *name = str_of(fn, "name");
		const char *args = str_of(fn, "arguments");
		json_t *input;

		if (id == NULL || name == NULL)
			goto bad;
		if (args == NULL || *args == '\0') {
			input = json_object();
		} else {
			input = json_loads(args, JSON_DECODE_ANY, NULL);
			if (input == NULL) {
				snprintf(err, errlen, "tool call '%s' has "
				    "arguments that are not JSON", id);
				return -1;
			}
		}
		json_array_append_new(blocks, json_pack("{s:{s:s, s:s, s:o}}",
		    "toolUse", "toolUseId", id, "name", name, "input", input));
	}
	return 0;
bad:
	snprintf(err, errlen, "malformed tool_calls in an assistant message");
	return -1;
}

static json_t *
tool_result_block(const json_t *m, char *err, size_t errlen)
{
	const char *id = str_of(m, "tool_call_id");
	json_t *content = json_array();

	if (id == NULL) {
		json_decref(content);
		snprintf(err, errlen, "tool message without tool_call_id");
		return NULL;
	}
	if (add_content(content, json_object_get(m, "content"), 1, err,
	    errlen) < 0) {
		json_decref(content);
		return NULL;
	}
	/* A tool result must say something, even when it is empty. */
	if (json_array_size(content) == 0)
		json_array_append_new(content, json_pack("{s:s}", "text", ""));
	return json_pack("{s:{s:s, s:o}}", "toolResult", "toolUseId", id,
	    "content", content);
}

static int
has_tool_blocks(const json_t *msgs)
{
	size_t i, j;
	const json_t *m, *b;

	json_array_foreach(msgs, i, m) {
		json_array_foreach(json_object_get(m, "content"), j, b) {
			if (json_object_get(b, "toolUse") ||
			    json_object_get(b, "toolResult"))
				return 1;
		}
	}
	return 0;
}

static int
tool_config(json_t *out, const json_t *body, const json_t *msgs, char *err,
    size_t errlen)
{
	const json_t *tools = json_object_get(body, "tools");
	const json_t *choice = json_object_get(body, "tool_choice");
	json_t *specs, *tc, *ch = NULL;
	const json_t *t;
	size_t i;

	if (tools == NULL || json_is_null(tools) ||
	    (json_is_array(tools) && json_array_size(tools) == 0))
		return 0;
	if (!json_is_array(tools))
		goto bad;
	if (json_is_string(choice) &&
	    strcmp(json_string_value(choice), "none") == 0 &&
	    !has_tool_blocks(msgs))
		return 0;	/* no tools offered, none in the history */
	specs = json_array();
	json_array_foreach(tools, i, t) {
		const json_t *fn = json_object_get(t, "function");
		const char *name = str_of(fn, "name");
		json_t *params = json_object_get(fn, "parameters");
		json_t *spec, *schema;

		if (name == NULL) {
			json_decref(specs);
			goto bad;
		}
		schema = params ? json_incref(params) : json_pack("{s:s, s:{}}",
		    "type", "object", "properties");
		spec = json_pack("{s:s, s:{s:o}}", "name", name, "inputSchema",
		    "json", schema);
		if (str_of(fn, "description"))
			json_object_set(spec, "description",
			    json_object_get(fn, "description"));
		json_array_append_new(specs, json_pack("{s:o}", "toolSpec",
		    spec));
	}
	tc = json_pack("{s:o}", "tools", specs);
	if (json_is_string(choice)) {
		const char *c = json_string_value(choice);

		if (strcmp(c, "auto") == 0)
			ch = json_pack("{s:{}}", "auto");
		else if (strcmp(c, "required") == 0 || strcmp(c, "any") == 0)
			ch = json_pack("{s:{}}", "any");
	} else if (json_is_object(choice)) {
		const char *n = str_of(json_object_get(choice, "function"),
		    "name");

		if (n == NULL) {
			json_decref(tc);
			snprintf(err, errlen, "tool_choice names no function");
			return -1;
		}
		ch = json_pack("{s:{s:s}}", "tool", "name", n);
	}
	if (ch)
		json_object_set_new(tc, "toolChoice", ch);
	json_object_set_new(out, "toolConfig", tc);
	return 0;
bad:
	snprintf(err, errlen, "malformed tools");
	return -1;
}

static void
inference_config(json_t *out, const json_t *body)
{
	json_t *ic = json_object();
	const json_t *v;

	v = json_object_get(body, "max_completion_tokens");
	if (!json_is_integer(v))
		v = json_object_get(body, "max_tokens");
	if (json_is_integer(v))
		json_object_set(ic, "maxTokens", (json_t *)v);
	v = json_object_get(body, "temperature");
	if (json_is_number(v))
		json_object_set(ic, "temperature", (json_t *)v);
	v = json_object_get(body, "top_p");
	if (json_is_number(v))
		json_object_set(ic, "topP", (json_t *)v);
	v = json_object_get(body, "stop");
	if (json_is_string(v))
		json_object_set_new(ic, "stopSequences", json_pack("[O]", v));
	else if (json_is_array(v) && json_array_size(v) > 0)
		json_object_set(ic, "stopSequences", (json_t *)v);
	if (json_object_size(ic) > 0)
		json_object_set_new(out, "inferenceConfig", ic);
	else
		json_decref(ic);
}

/* The Converse request body for an OpenAI chat request. */
static json_t *
bedrock_converse_request(const json_t *body, char *err, size_t errlen)
{
	const json_t *msgs = json_object_get(body, "messages"), *m;
	json_t *out, *system, *cmsgs;
	size_t i;

	if (!json_is_array(msgs)) {
		snprintf(err, errlen, "messages must be an array");
		return NULL;
	}
	system = json_array();
	cmsgs = json_array();
	json_array_foreach(msgs, i, m) {
		const char *role = str_of(m, "role");
		json_t *blocks = json_array(), *b;

		if (role == NULL)
			goto bad_role;
		if (strcmp(role, "system") == 0 ||
		    strcmp(role, "developer") == 0) {
			if (add_content(system, json_object_get(m, "content"), 1,
			    err, errlen) < 0)
				goto fail_blocks;
			json_decref(blocks);
		} else if (strcmp(role, "user") == 0) {
			if (add_content(blocks, json_object_get(m, "content"), 0,
			    err, errlen) < 0)
				goto fail_blocks;
			push_message(cmsgs, "user", blocks);
		} else if (strcmp(role, "assistant") == 0) {
			if (add_content(blocks, json_object_get(m, "content"), 1,
			    err, errlen) < 0 ||
			    add_tool_calls(blocks, json_object_get(m,
			    "tool_calls"), err, errlen) < 0)
				goto fail_blocks;
			push_message(cmsgs, "assistant", blocks);
		} else if (strcmp(role, "tool") == 0) {
			/* Results go back as the user's turn. */
			if ((b = tool_result_block(m, err, errlen)) == NULL)
				goto fail_blocks;
			json_array_append_new(blocks, b);
			push_message(cmsgs, "user", blocks);
		} else {
			json_decref(blocks);
			goto bad_role;
		}
		continue;
fail_blocks:
		json_decref(blocks);
		goto fail;
	}
	out = json_pack("{s:o}", "messages", cmsgs);
	if (json_array_size(system) > 0)
		json_object_set_new(out, "system", system);
	else
		json_decref(system);
	inference_config(out, body);
	if (tool_config(out, body, json_object_get(out, "messages"), err,
	    errlen) < 0) {
		json_decref(out);
		return NULL;
	}
	return out;
bad_role:
	snprintf(err, errlen, "message %zu has no supported role", i);
fail:
	json_decref(system);
	json_decref(cmsgs);
	return NULL;
}

static int
build_bedrock(const struct fwd_ctx *c, struct evbuffer *out, char *err,
    size_t errlen)
{
	const struct backend *b = c->b;
	const struct backend_auth *a = &b->auth;
	json_t *req;
	char *body = NULL, *model = NULL, *path = NULL, *host, *authz, *extra;
	size_t blen = 0;
	char date[17];
	struct sigv4_header h[4];
	struct sigv4_request sr;
	struct sigv4_creds k;
	size_t nh = 0;

	if (c->ep != EP_CHAT) {
		snprintf(err, errlen, "backend '%s' (Bedrock Converse) serves "
		    "chat completions only", b->name);
		return -1;
	}
	if (a->type != AUTH_SIGV4 || a->access_key == NULL ||
	    a->secret_key == NULL) {
		snprintf(err, errlen, "credentials for backend '%s' are missing "
		    "(%s, %s)", b->name,
		    a->access_key_env ? a->access_key_env : "access key",
		    a->secret_key_env ? a->secret_key_env : "secret key");
		return -1;
	}
	if (b->region == NULL || b->host == NULL) {
		snprintf(err, errlen, "backend '%s' has no region", b->name);
		return -1;
	}
	req = bedrock_converse_request(c->body, err, errlen);
	if (req == NULL)
		return -1;
	body = adapter_dump(req, &blen);
	json_decref(req);
	if (body == NULL) {
		snprintf(err, errlen, "cannot serialise the request");
		return -1;
	}
	/* The wire path encodes the model id once (':' -> %3A); the signer
	 * encodes it again in the canonical request. */
	model = sigv4_uri_encode(c->model_id, strlen(c->model_id), 0);
	path = xasprintf("%s/model/%s/%s", b->base_path ? b->base_path : "",
	    model, c->stream ? "converse-stream" : "converse");
	host = adapter_host_header(b);
	sigv4_amz_date(now_ms() / 1000, date);
	h[nh].name = "content-type";
	h[nh++].value = "application/json";
	h[nh].name = "host";
	h[nh++].value = host;
	h[nh].name = "x-amz-date";
	h[nh++].value = date;
	if (a->session_token) {
		h[nh].name = "x-amz-security-token";
		h[nh++].value = a->session_token;
	}
	memset(&sr, 0, sizeof(sr));
	sr.method = "POST";
	sr.path = path;
	sr.headers = h;
	sr.nheaders = nh;
	sr.payload = body;
	sr.payload_len = blen;
	k.access_key = a->access_key;
	k.secret_key = a->secret_key;
	k.region = b->region;
	k.service = "bedrock";
	authz = sigv4_authorization(&sr, &k, date, SIGV4_NORMALIZE_PATH);
	extra = xasprintf("X-Amz-Date: %s\r\n%s%s%sAuthorization: %s\r\n",
	    date, a->session_token ? "X-Amz-Security-Token: " : "",
	    a->session_token ? a->session_token : "",
	    a->session_token ? "\r\n" : "", authz);
	adapter_write_head_accept(c, out, "POST", path, c->stream ?
	    "application/vnd.amazon.eventstream" : "application/json", extra,
	    blen);
	evbuffer_add(out, body, blen);
	OPENSSL_cleanse(extra, strlen(extra));
	free(extra);
	free(authz);
	free(host);
	free(path);
	free(model);
	free(body);
	return 0;
}

/* ------------------------------------------------------------------ */
/* answer translation                                                   */

struct bst {
	int stream;		/* translating a ConverseStream */
	int status;
	int err_mode;		/* an error answer (status >= 400) */
	int bad_ctype;
	int include_usage;
	char id[48];
	char *model;
	int64_t created;
	struct evbuffer *buf;	/* whole body: JSON answers */
	struct es_decoder *dec;
	struct evbuffer *out;	/* during resp_body */
	char *error_type;	/* x-amzn-ErrorType */
	char *text_prefix;	/* a text chunk's SSE line up to the text */
	/* stream state */
	int started, stopped, final_sent, failed;
	const char *finish;
	int have_usage;
	json_int_t in_tok, out_tok, total_tok;
	int *tool_of_block;	/* contentBlockIndex -> tool index + 1 */
	size_t nblocks;
	int ntools;
	char errmsg[256];
};

static const char *
finish_reason(const char *stop)
{
	if (stop == NULL)
		return "stop";
	if (strcmp(stop, "max_tokens") == 0 ||
	    strcmp(stop, "model_context_window_exceeded") == 0)
		return "length";
	if (strcmp(stop, "tool_use") == 0)
		return "tool_calls";
	if (strcmp(stop, "content_filtered") == 0 ||
	    strcmp(stop, "guardrail_intervened") == 0)
		return "content_filter";
	return "stop";	/* end_turn, stop_sequence */
}

static void *
bedrock_resp_new(const struct fwd_ctx *c, int status,
    const struct http_head *up)
{
	struct bst *st = xcalloc(1, sizeof(*st));
	const char *ct = http_head_get(up, "content-type");
	const char *et = http_head_get(up, "x-amzn-errortype");
	const char *rid = http_head_get(up, "x-amzn-requestid");
	char uuid[37];
	json_t *so = json_object_get(c->body, "stream_options");

	st->status = status;
	st->err_mode = status >= 300;
	st->stream = c->stream && !st->err_mode;
	st->model = xstrdup(c->model_id);
	st->created = now_ms() / 1000;
	st->include_usage = json_is_true(json_object_get(so, "include_usage"));
	if (rid && strlen(rid) < 36 + 1 && strspn(rid,
	    "0123456789abcdefABCDEF-") == strlen(rid))
		snprintf(st->id, sizeof(st->id), "chatcmpl-%s", rid);
	else {
		uuid_v4(uuid);
		snprintf(st->id, sizeof(st->id), "chatcmpl-%s", uuid);
	}
	{
		/* Text deltas are one per token: their line is written
		 * directly around the escaped text, not packed and dumped. */
		json_t *idj = json_string(st->id), *mj = json_string(st->model);
		char *ids = json_dumps(idj, JSON_ENCODE_ANY);
		char *ms = json_dumps(mj, JSON_ENCODE_ANY);

		st->text_prefix = xasprintf("data: {\"id\":%s,\"object\":"
		    "\"chat.completion.chunk\",\"created\":%lld,\"model\":%s,"
		    "\"choices\":[{\"index\":0,\"delta\":{\"content\":",
		    ids ? ids : "\"\"", (long long)st->created,
		    ms ? ms : "\"\"");
		free(ids);
		free(ms);
		json_decref(idj);
		json_decref(mj);
	}
	if (et) {
		size_t n = strcspn(et, ":");

		st->error_type = xstrndup(et, n);
	}
	if (st->stream) {
		if (ct == NULL || ascii_ncasecmp(ct,
		    "application/vnd.amazon.eventstream", 34) != 0)
			st->bad_ctype = 1;
		st->dec = es_decoder_new(0);
	} else {
		if (!st->err_mode && (ct == NULL ||
		    ascii_ncasecmp(ct, "application/json", 16) != 0))
			st->bad_ctype = 1;
		st->buf = evbuffer_new();
	}
	if (st->bad_ctype)
		snprintf(st->errmsg, sizeof(st->errmsg), "Bedrock answered an "
		    "unexpected content type (%.80s)", ct ? ct : "none");
	return st;
}

static const char *
bedrock_resp_content_type(void *arg)
{
	struct bst *st = arg;

	return st->stream ? "text/event-stream" : "application/json";
}

static void
emit_json(struct evbuffer *out, json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT);

	evbuffer_add_printf(out, "data: %s\n\n", s);
	free(s);
	json_decref(o);
}

/* One chat.completion.chunk; steals delta and usage. */
static void
emit_chunk(struct bst *st, json_t *delta, const char *finish, json_t *usage)
{
	json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:o}]}",
	    "id", st->id, "object", "chat.completion.chunk",
	    "created", (json_int_t)st->created, "model", st->model,
	    "choices", "index", 0, "delta", delta,
	    "finish_reason", finish ? json_string(finish) : json_null());

	if (usage)
		json_object_set_new(o, "usage", usage);
	emit_json(st->out, o);
}

static json_t *
usage_json(const struct bst *st)
{
	return json_pack("{s:I, s:I, s:I}", "prompt_tokens", st->in_tok,
	    "completion_tokens", st->out_tok, "total_tokens", st->total_tok);
}

static void
emit_final(struct bst *st)
{
	emit_chunk(st, json_object(), st->finish ? st->finish : "stop",
	    st->have_usage ? usage_json(st) : NULL);
	if (st->have_usage && st->include_usage) {
		json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}",
		    "id", st->id, "object", "chat.completion.chunk",
		    "created", (json_int_t)st->created, "model", st->model,
		    "choices", "usage", usage_json(st));

		emit_json(st->out, o);
	}
	st->final_sent = 1;
}

/* A JSON string literal of valid UTF-8 (what jansson hands out). */
static void
add_json_string(struct evbuffer *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;

	evbuffer_add(out, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6];

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		evbuffer_add(out, s + run, i - run);
		run = i + 1;
		esc[0] = '\\';
		switch (c) {
		case '"': case '\\':
			esc[1] = (char)c;
			evbuffer_add(out, esc, 2);
			break;
		case '\n':
			evbuffer_add(out, "\\n", 2);
			break;
		case '\r':
			evbuffer_add(out, "\\r", 2);
			break;
		case '\t':
			evbuffer_add(out, "\\t", 2);
			break;
		default:
			esc[1] = 'u';
			esc[2] = '0';
			esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			evbuffer_add(out, esc, 6);
		}
	}
	evbuffer_add(out, s + run, n - run);
	evbuffer_add(out, "\"", 1);
}

static void
emit_text(struct bst *st, const json_t *t)
{
	static const char tail[] = "},\"finish_reason\":null}]}\n\n";

	evbuffer_add(st->out, st->text_prefix, strlen(st->text_prefix));
	add_json_string(st->out, json_string_value(t), json_string_length(t));
	evbuffer_add(st->out, tail, sizeof(tail) - 1);
}

static void
start_if_needed(struct bst *st)
{
	if (st->started)
		return;
	st->started = 1;
	emit_chunk(st, json_pack("{s:s, s:s}", "role", "assistant",
	    "content", ""), NULL, NULL);
}

static int
tool_index(struct bst *st, json_int_t block, int create)
{
	if (block < 0 || block > 4096)
		return -1;
	if ((size_t)block >= st->nblocks) {
		size_t n = (size_t)block + 1;

		st->tool_of_block = xrealloc(st->tool_of_block,
		    n * sizeof(int));
		memset(st->tool_of_block + st->nblocks, 0,
		    (n - st->nblocks) * sizeof(int));
		st->nblocks = n;
	}
	if (st->tool_of_block[block] == 0 && create)
		st->tool_of_block[block] = ++st->ntools;
	return st->tool_of_block[block] - 1;
}

static int
on_event(void *arg, const struct es_message *m)
{
	struct bst *st = arg;
	char *et;
	json_t *o;

	if (!es_header_is(m, ":message-type", "event")) {
		/* exception or error frame: the stream ends with an error */
		char *x = es_header_str(m, ":exception-type");
		char *code = es_header_str(m, ":error-code");
		char *emsg = es_header_str(m, ":error-message");
		const char *msg = NULL;

		o = json_loadb((const char *)m->payload, m->payload_len, 0,
		    NULL);
		msg = str_of(o, "message");
		if (msg == NULL)
			msg = emsg;
		snprintf(st->errmsg, sizeof(st->errmsg), "Bedrock %s: %.200s",
		    x ? x : code ? code : "error", msg ? msg : "no message");
		free(x);
		free(code);
		free(emsg);
		json_decref(o);
		return -1;
	}
	et = es_header_str(m, ":event-type");
	o = json_loadb((const char *)m->payload, m->payload_len,
	    JSON_ALLOW_NUL, NULL);
	if (et == NULL || !json_is_object(o)) {
		snprintf(st->errmsg, sizeof(st->errmsg), "Bedrock sent a "
		    "malformed event");
		free(et);
		json_decref(o);
		return -1;
	}
	if (strcmp(et, "messageStart") == 0) {
		start_if_needed(st);
	} else if (strcmp(et, "contentBlockStart") == 0) {
		json_t *tu = json_object_get(json_object_get(o, "start"),
		    "toolUse");
		json_int_t bi = json_integer_value(json_object_get(o,
		    "contentBlockIndex"));

		start_if_needed(st);
		if (json_is_object(tu)) {
			int ti = tool_index(st, bi, 1);

			if (ti < 0)
				goto bad;
			emit_chunk(st, json_pack("{s:[{s:i, s:s?, s:s, "
			    "s:{s:s?, s:s}}]}", "tool_calls", "index", ti,
			    "id", str_of(tu, "toolUseId"), "type", "function",
			    "function", "name", str_of(tu, "name"),
			    "arguments", ""), NULL, NULL);
		}
	} else if (strcmp(et, "contentBlockDelta") == 0) {
		json_t *d = json_object_get(o, "delta");
		json_t *t = json_object_get(d, "text");
		json_t *tu = json_object_get(d, "toolUse");
		json_int_t bi = json_integer_value(json_object_get(o,
		    "contentBlockIndex"));

		start_if_needed(st);
		if (json_is_string(t)) {
			emit_text(st, t);
		} else if (json_is_object(tu)) {
			int ti = tool_index(st, bi, 1);
			const char *in = str_of(tu, "input");

			if (ti < 0)
				goto bad;
			emit_chunk(st, json_pack("{s:[{s:i, s:{s:s}}]}",
			    "tool_calls", "index", ti, "function", "arguments",
			    in ? in : ""), NULL, NULL);
		}
		/* reasoning deltas and others: nothing for the client */
	} else if (strcmp(et, "messageStop") == 0) {
		st->stopped = 1;
		st->finish = finish_reason(str_of(o, "stopReason"));
	} else if (strcmp(et, "metadata") == 0) {
		json_t *u = json_object_get(o, "usage");

		if (json_is_object(u)) {
			st->have_usage = 1;
			st->in_tok = json_integer_value(json_object_get(u,
			    "inputTokens"));
			st->out_tok = json_integer_value(json_object_get(u,
			    "outputTokens"));
			st->total_tok = json_integer_value(json_object_get(u,
			    "totalTokens"));
			if (st->total_tok == 0)
				st->total_tok = st->in_tok + st->out_tok;
		}
		if (st->stopped && !st->final_sent)
			emit_final(st);
	}
	free(et);
	json_decref(o);
	return 0;
bad:
	snprintf(st->errmsg, sizeof(st->errmsg), "Bedrock sent a malformed "
	    "event");
	free(et);
	json_decref(o);
	return -1;
}

static int
bedrock_resp_body(void *arg, const char *p, size_t n, struct evbuffer *out)
{
	struct bst *st = arg;
	char err[128];

	if (st->failed)
		return -1;
	if (st->bad_ctype) {
		st->failed = 1;
		return -1;
	}
	if (!st->stream) {
		if (evbuffer_get_length(st->buf) + n > BEDROCK_MAX_BODY) {
			snprintf(st->errmsg, sizeof(st->errmsg), "Bedrock's "
			    "answer exceeds %u bytes", BEDROCK_MAX_BODY);
			st->failed = 1;
			return -1;
		}
		evbuffer_add(st->buf, p, n);
		return 0;
	}
	st->out = out;
	if (es_decoder_feed(st->dec, p, n, on_event, st, err,
	    sizeof(err)) < 0) {
		if (st->errmsg[0] == '\0')
			snprintf(st->errmsg, sizeof(st->errmsg), "Bedrock's "
			    "event stream is broken: %s", err);
		st->failed = 1;
		st->out = NULL;
		return -1;
	}
	st->out = NULL;
	return 0;
}

/* Bedrock's error document -> OpenAI's error shape. */
static void
translate_error(struct bst *st, json_t *o, struct evbuffer *out)
{
	const char *msg = str_of(o, "message");
	const char *type;
	json_t *e;
	char *s;

	if (msg == NULL)
		msg = str_of(o, "Message");
	switch (st->status) {
	case 400:
	case 404:
	case 422:
		type = "invalid_request_error";
		break;
	case 401:
	case 403:
		type = "authentication_error";
		break;
	default:
		type = "upstream_error";
	}
	e = json_pack("{s:{s:s, s:s, s:s?}}", "error", "message",
	    msg ? msg : "Bedrock returned an error", "type", type, "code",
	    st->error_type);
	s = json_dumps(e, JSON_COMPACT);
	evbuffer_add(out, s, strlen(s));
	free(s);
	json_decref(e);
}

/* A Converse answer -> a chat.completion; -1 if it is not one. */
static int
translate_converse(struct bst *st, json_t *o, struct evbuffer *out)
{
	json_t *msg = json_object_get(json_object_get(o, "output"), "message");
	json_t *content = json_object_get(msg, "content");
	json_t *u = json_object_get(o, "usage");
	json_t *calls = json_array(), *res, *m, *b;
	struct evbuffer *text = evbuffer_new();
	size_t i;
	char *s;

	if (!json_is_array(content)) {
		json_decref(calls);
		evbuffer_free(text);
		return -1;
	}
	json_array_foreach(content, i, b) {
		json_t *t = json_object_get(b, "text");
		json_t *tu = json_object_get(b, "toolUse");

		if (json_is_string(t)) {
			evbuffer_add(text, json_string_value(t),
			    json_string_length(t));
		} else if (json_is_object(tu)) {
			json_t *in = json_object_get(tu, "input");
			char *args = in ? json_dumps(in, JSON_COMPACT |
			    JSON_ENCODE_ANY) : xstrdup("{}");

			json_array_append_new(calls, json_pack("{s:s?, s:s, "
			    "s:{s:s?, s:s}}", "id", str_of(tu, "toolUseId"),
			    "type", "function", "function", "name",
			    str_of(tu, "name"), "arguments", args ? args : "{}"));
			free(args);
		}
	}
	m = json_pack("{s:s}", "role", "assistant");
	if (evbuffer_get_length(text) > 0)
		json_object_set_new(m, "content", json_stringn(
		    (const char *)evbuffer_pullup(text, -1),
		    evbuffer_get_length(text)));
	else if (json_array_size(calls) == 0)
		json_object_set_new(m, "content", json_string(""));
	else
		json_object_set_new(m, "content", json_null());
	if (json_array_size(calls) > 0)
		json_object_set_new(m, "tool_calls", calls);
	else
		json_decref(calls);
	evbuffer_free(text);
	res = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:s}]}",
	    "id", st->id, "object", "chat.completion",
	    "created", (json_int_t)st->created, "model", st->model,
	    "choices", "index", 0, "message", m, "finish_reason",
	    finish_reason(str_of(o, "stopReason")));
	if (res == NULL)
		return -1;
	if (json_is_object(u)) {
		st->in_tok = json_integer_value(json_object_get(u,
		    "inputTokens"));
		st->out_tok = json_integer_value(json_object_get(u,
		    "outputTokens"));
		st->total_tok = json_integer_value(json_object_get(u,
		    "totalTokens"));
		if (st->total_tok == 0)
			st->total_tok = st->in_tok + st->out_tok;
		json_object_set_new(res, "usage", usage_json(st));
	}
	s = json_dumps(res, JSON_COMPACT);
	evbuffer_add(out, s, strlen(s));
	free(s);
	json_decref(res);
	return 0;
}

static int
bedrock_resp_end(void *arg, int complete, struct evbuffer *out)
{
	struct bst *st = arg;
	json_t *o;

	if (!complete || st->failed)
		return -1;	/* the proxy reports the break */
	if (st->stream) {
		st->out = out;
		if (st->bad_ctype || es_decoder_pending(st->dec) > 0 ||
		    !st->stopped) {
			if (!st->bad_ctype)
				snprintf(st->errmsg, sizeof(st->errmsg),
				    "Bedrock's event stream ended before the "
				    "message did");
			st->failed = 1;
			st->out = NULL;
			return -1;
		}
		if (!st->final_sent)
			emit_final(st);
		evbuffer_add(out, "data: [DONE]\n\n", 14);
		st->out = NULL;
		return 0;
	}
	if (st->bad_ctype) {
		st->failed = 1;
		return -1;
	}
	o = json_loadb((const char *)evbuffer_pullup(st->buf, -1),
	    evbuffer_get_length(st->buf), 0, NULL);
	if (st->err_mode) {
		translate_error(st, o, out);
		json_decref(o);
		return 0;
	}
	if (o == NULL || translate_converse(st, o, out) < 0) {
		snprintf(st->errmsg, sizeof(st->errmsg), "Bedrock answered "
		    "malformed JSON");
		st->failed = 1;
		json_decref(o);
		return -1;
	}
	json_decref(o);
	return 0;
}

static const char *
bedrock_resp_error(void *arg)
{
	struct bst *st = arg;

	return st->errmsg[0] ? st->errmsg : NULL;
}

static void
bedrock_resp_free(void *arg)
{
	struct bst *st = arg;

	if (st == NULL)
		return;
	if (st->buf)
		evbuffer_free(st->buf);
	es_decoder_free(st->dec);
	free(st->tool_of_block);
	free(st->error_type);
	free(st->text_prefix);
	free(st->model);
	free(st);
}

const struct adapter adapter_bedrock = {
	.kind = "bedrock",
	.build = build_bedrock,
	.resp_new = bedrock_resp_new,
	.resp_content_type = bedrock_resp_content_type,
	.resp_body = bedrock_resp_body,
	.resp_end = bedrock_resp_end,
	.resp_error = bedrock_resp_error,
	.resp_free = bedrock_resp_free,
};
