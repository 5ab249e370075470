/*
 * sigv4.h - AWS Signature Version 4 (header-based), as Bedrock Runtime
 * needs it: canonical request, string to sign, signing key and the
 * Authorization header value.
 *
 * The path given is canonicalised by URI-encoding each of its segments
 * once. A caller that sends an already-encoded path on the wire (Bedrock:
 * "/model/mistral.x-v1%3A0/converse") therefore gets the double encoding
 * AWS wants for every service but S3 ("%253A").
 *
 * Secrets: the secret key and the derived keys are wiped after use and
 * never appear in anything this module returns except the signature.
 */
#ifndef SOVGATE_SIGV4_H
#define SOVGATE_SIGV4_H

#include <stddef.h>
#include <stdint.h>

struct sigv4_header {
	const char *name;	/* any case; lower-cased when signed */
	const char *value;	/* trimmed, inner runs of spaces collapsed */
};

struct sigv4_request {
	const char *method;		/* "POST" */
	const char *path;		/* "/model/x%3A0/converse" */
	const char *query;		/* without '?'; NULL or "" for none */
	const struct sigv4_header *headers;	/* every header to sign,
						   host and x-amz-date included */
	size_t nheaders;
	const void *payload;		/* body, hashed unless payload_hash */
	size_t payload_len;
	const char *payload_hash;	/* 64 hex chars, or NULL */
};

struct sigv4_creds {
	const char *access_key;
	const char *secret_key;
	const char *region;
	const char *service;
};

/* Remove "." and ".." segments and empty segments (every service but
 * S3). */
#define SIGV4_NORMALIZE_PATH	1

/* "20150830T123600Z" from seconds since the epoch. */
void sigv4_amz_date(int64_t epoch_s, char out[17]);

/* The canonical request; *signed_headers (if not NULL) gets the
 * "host;x-amz-date" list. Both newly allocated. */
char *sigv4_canonical_request(const struct sigv4_request *r, int flags,
    char **signed_headers);
/* The string to sign for a canonical request. Newly allocated. */
char *sigv4_string_to_sign(const char *amz_date, const char *region,
    const char *service, const char *creq);
/* Hex signature of a string to sign. */
void sigv4_signature(const char *secret_key, const char *amz_date,
    const char *region, const char *service, const char *sts,
    char out[65]);
/* The whole Authorization header value ("AWS4-HMAC-SHA256
 * Credential=..., SignedHeaders=..., Signature=..."). Newly allocated. */
char *sigv4_authorization(const struct sigv4_request *r,
    const struct sigv4_creds *k, const char *amz_date, int flags);

/* URI-encode per SigV4 (unreserved A-Z a-z 0-9 - . _ ~ kept; everything
 * else %XX upper-case), appending to a growing buffer; '/' is kept when
 * keep_slash. Returns a new string. */
char *sigv4_uri_encode(const char *s, size_t n, int keep_slash);

#endif
