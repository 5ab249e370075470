/*
 * extract.h - from a request body to the texts a model would see.
 *
 * Parses the body with limits (size, nesting depth, valid UTF-8, no lone
 * surrogates), then walks it per endpoint: chat message content strings and
 * parts, tool-call arguments (themselves JSON: their strings are decoded and
 * scanned; if they are not valid JSON the raw string is scanned), tool
 * results, embeddings input, FIM prompt/suffix.
 */
#ifndef SOVGATE_EXTRACT_H
#define SOVGATE_EXTRACT_H

#include <stddef.h>
#include <jansson.h>
#include "classify.h"

enum endpoint { EP_CHAT, EP_EMBEDDINGS, EP_FIM, EP_UNKNOWN };

enum endpoint endpoint_from_path(const char *path);
const char *endpoint_path(enum endpoint ep);

/* Parse and validate. NULL on failure with a client-facing reason in err
 * (e.g. "invalid JSON at byte 17: ...", "nesting deeper than 64"). */
json_t *request_parse(const char *body, size_t len, int max_depth,
    char *err, size_t errlen);
/* What the body's text can be forwarded as: with unique keys in every
 * object, the parsed tree and the text mean the same to any JSON parser,
 * so the text may go upstream with only its "model" value replaced. */
struct request_text {
	int unique_keys;	/* no object repeats a key (decoded) */
	size_t model_at;	/* the top-level "model" value's bytes, */
	size_t model_len;	/* 0 if there is none */
};
json_t *request_parse_ex(const char *body, size_t len, int max_depth,
    struct request_text *text, char *err, size_t errlen);

/* One member of a JSON object read in place (json_object_members). */
struct json_member {
	const char *key;	/* decoded, NUL-terminated */
	size_t klen;
	const char *raw;	/* the value's JSON text, as written */
	size_t rawlen;
	const char *str;	/* a string value decoded (valid during the */
	size_t slen;		/* callback only); NULL for other values */
};
typedef void (*member_cb)(void *ud, const struct json_member *m);

/* The members of the JSON object in text, in order, without building it
 * (a JSONL record holding a whole request as one string). Validated like
 * request_parse; returns 0, or -1 with the reason in err. */
int json_object_members(const char *text, size_t len, int max_depth,
    member_cb cb, void *ud, char *err, size_t errlen);

/* One line of `classify --jsonl` input, {"id": any, "endpoint": "...",
 * "body": "a whole request"}, read in place: the body is decoded once,
 * into a buffer kept from line to line. Zero it before the first read. */
struct jsonl_rec {
	const char *id;		/* its JSON text, in the line; NULL if absent */
	size_t idlen;
	char *ep;		/* decoded endpoint, or NULL */
	int body_str;		/* "body" is present and a string */
	char *body;		/* decoded body */
	size_t blen, bcap;
};
/* 0, or -1 if the line is not a JSON object (err says why). */
int jsonl_rec_read(struct jsonl_rec *r, const char *line, size_t len,
    char *err, size_t errlen);
/* Free what r holds, wiping the body (it held a request). */
void jsonl_rec_clear(struct jsonl_rec *r);

typedef void (*text_cb)(void *ud, const char *text, size_t len);
/* Call cb for every text; returns the number of texts, or -1 if the shape
 * is invalid for the endpoint (err says why). */
int extract_texts(const json_t *root, enum endpoint ep, text_cb cb, void *ud,
    char *err, size_t errlen);

/* extract_texts + classifier_scan into s (which the caller reset). */
int classify_request(const struct classifier *c, struct scan *s,
    const json_t *root, enum endpoint ep, char *err, size_t errlen);

#endif
