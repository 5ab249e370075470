/*
 * eventstream.h - the AWS event-stream framing
 * (application/vnd.amazon.eventstream) that Bedrock's ConverseStream
 * answers in: an incremental decoder that verifies both CRCs of every
 * frame and rejects the stream at the first bad one, and an encoder (for
 * tests, mocks and the benchmark).
 *
 * Frame: u32 total_len | u32 headers_len | u32 prelude_crc | headers |
 * payload | u32 message_crc, big-endian; CRC-32 (IEEE). A header is
 * u8 name_len | name | u8 type | value.
 */
#ifndef SOVGATE_EVENTSTREAM_H
#define SOVGATE_EVENTSTREAM_H

#include <stddef.h>
#include <stdint.h>

enum es_type {
	ES_TRUE = 0, ES_FALSE = 1, ES_BYTE = 2, ES_INT16 = 3, ES_INT32 = 4,
	ES_INT64 = 5, ES_BYTES = 6, ES_STRING = 7, ES_TIMESTAMP = 8,
	ES_UUID = 9
};

#define ES_MAX_HEADERS		64
/* Frames larger than this are refused (Bedrock's events are small). */
#define ES_DEFAULT_MAX_FRAME	(16u * 1024 * 1024)
#define ES_PRELUDE_LEN		12
#define ES_MIN_FRAME		16

struct es_header {
	const char *name;	/* not NUL-terminated */
	size_t nlen;
	enum es_type type;
	int64_t i;		/* bool, byte, int16/32/64, timestamp (ms) */
	const unsigned char *v;	/* bytes, string, uuid (16 bytes) */
	size_t vlen;
};

struct es_message {
	struct es_header h[ES_MAX_HEADERS];
	size_t nh;
	const unsigned char *payload;
	size_t payload_len;
};

/* CRC-32/IEEE, continuing from crc (0 to start). */
uint32_t es_crc32(uint32_t crc, const void *p, size_t n);

/* Parse one whole frame of exactly len bytes (CRCs checked). The message
 * points into buf. 0, or -1 with a reason in err. */
int es_parse_frame(const unsigned char *buf, size_t len,
    struct es_message *m, char *err, size_t errlen);

/* The first header of that name, or NULL. */
const struct es_header *es_header_get(const struct es_message *m,
    const char *name);
/* A string header's value as a new C string, or NULL if absent or not a
 * string. */
char *es_header_str(const struct es_message *m, const char *name);
/* 1 if the header is a string equal to s. */
int es_header_is(const struct es_message *m, const char *name,
    const char *s);

/* Incremental decoding of a byte stream cut anywhere. */
struct es_decoder;
/* Return 0 to go on, -1 to stop (es_decoder_feed then returns -1). */
typedef int (*es_message_fn)(void *arg, const struct es_message *m);

struct es_decoder *es_decoder_new(size_t max_frame);	/* 0: default */
void es_decoder_free(struct es_decoder *d);		/* NULL is a no-op */
/* Calls cb for every complete frame. 0, or -1 on a bad frame (err says
 * why; the decoder stays failed) or when cb returned -1. */
int es_decoder_feed(struct es_decoder *d, const void *p, size_t n,
    es_message_fn cb, void *arg, char *err, size_t errlen);
/* Bytes of an incomplete frame held (non-zero at the end of a stream
 * means it was cut). */
size_t es_decoder_pending(const struct es_decoder *d);

/* Encoding: string headers only (what event streams carry). Returns a
 * new buffer of *len bytes. */
struct es_hdr_in {
	const char *name, *value;
};
unsigned char *es_encode(const struct es_hdr_in *h, size_t nh,
    const void *payload, size_t plen, size_t *len);

#endif
