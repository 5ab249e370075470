/*
 * extract.c - from a request body to the texts a model would see.
 *
 * request_parse() checks the nesting depth with a cheap pre-scan before
 * jansson builds anything (jansson recurses, and its own limit is far above
 * ours), then lets jansson enforce the rest: valid UTF-8, no NUL (\u0000 is
 * refused without JSON_ALLOW_NUL), no lone surrogates in \u escapes.
 * Duplicate keys are accepted as every mainstream JSON parser does; jansson
 * keeps the last one, which is also what the upstream sees after our
 * re-serialisation.
 */
#include <stdio.h>
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

/* Depth of arrays and objects, outside strings. Returns the offset where
 * max_depth is first exceeded, or -1. */
static long
depth_exceeded(const char *s, size_t len, int max_depth)
{
	int depth = 0, in_str = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		char c = s[i];

		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		switch (c) {
		case '"':
			in_str = 1;
			break;
		case '[':
		case '{':
			if (++depth > max_depth)
				return (long)i;
			break;
		case ']':
		case '}':
			depth--;
			break;
		}
	}
	return -1;
}

json_t *
request_parse(const char *body, size_t len, int max_depth, char *err,
    size_t errlen)
{
	json_error_t e;
	json_t *root;
	long at;

	if (max_depth <= 0)
		max_depth = DEFAULT_MAX_DEPTH;
	if (len == 0) {
		snprintf(err, errlen, "empty request body: send a JSON object");
		return NULL;
	}
	if ((at = depth_exceeded(body, len, max_depth)) >= 0) {
		snprintf(err, errlen, "JSON nesting deeper than %d (at byte %ld)",
		    max_depth, at);
		return NULL;
	}
	root = json_loadb(body, len, 0, &e);
	if (root == NULL) {
		snprintf(err, errlen, "invalid JSON at byte %d: %s",
		    e.position, e.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		snprintf(err, errlen, "the request body must be a JSON object");
		return NULL;
	}
	return root;
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
		json_t *inner = NULL;
		json_error_t e;

		if (depth_exceeded(s, n, DEFAULT_MAX_DEPTH) < 0)
			inner = json_loadb(s, n, JSON_DECODE_ANY, &e);
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
