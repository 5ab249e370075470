/*
 * check_eventstream.c - the event-stream decoder against the frames in
 * $SHARED_DIR/vectors/bedrock-eventstream (encoded by the reference
 * codec): every header type, a good ConverseStream fed in pieces of every
 * size, a broken CRC, an exception frame, and corruption anywhere.
 * Skips (77) when the vectors are not there.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "eventstream.h"
#include "util.h"
#include "testutil.h"

static char vecdir[4096];

static unsigned char *
load(const char *name, size_t *len)
{
	char path[4200];
	char *s;

	snprintf(path, sizeof(path), "%s/%s", vecdir, name);
	s = read_file(path, len);
	ck_assert_msg(s != NULL, "cannot read %s", path);
	return (unsigned char *)s;
}

static json_t *
expected(const char *name)
{
	char path[4200];
	json_t *root, *o;

	snprintf(path, sizeof(path), "%s/expected.json", vecdir);
	root = json_load_file(path, 0, NULL);
	ck_assert_ptr_nonnull(root);
	o = json_incref(json_object_get(root, name));
	json_decref(root);
	ck_assert_ptr_nonnull(o);
	return o;
}

/* What a ConverseStream consumer reads. */
struct collect {
	int frames;
	char types[16][64];
	char text[1024];
	char stop[64];
	json_int_t in, out, total;
	char exception[64];
	char exc_msg[256];
	int text_at_exception;
};

static int
on_msg(void *arg, const struct es_message *m)
{
	struct collect *c = arg;
	char *et = es_header_str(m, ":event-type");
	json_t *o = json_loadb((const char *)m->payload, m->payload_len, 0,
	    NULL);

	if (es_header_is(m, ":message-type", "exception")) {
		char *x = es_header_str(m, ":exception-type");

		ck_assert_ptr_nonnull(x);
		snprintf(c->exception, sizeof(c->exception), "%s", x);
		free(x);
		if (o && json_is_string(json_object_get(o, "message")))
			snprintf(c->exc_msg, sizeof(c->exc_msg), "%s",
			    json_string_value(json_object_get(o, "message")));
		c->text_at_exception = (int)strlen(c->text);
	} else {
		ck_assert(es_header_is(m, ":message-type", "event"));
		ck_assert(es_header_is(m, ":content-type", "application/json"));
		ck_assert_ptr_nonnull(et);
		ck_assert_ptr_nonnull(o);
		if (c->frames < 16)
			snprintf(c->types[c->frames], 64, "%s", et);
		if (strcmp(et, "contentBlockDelta") == 0) {
			json_t *t = json_object_get(json_object_get(o, "delta"),
			    "text");

			if (json_is_string(t))
				strncat(c->text, json_string_value(t),
				    sizeof(c->text) - strlen(c->text) - 1);
		} else if (strcmp(et, "messageStop") == 0) {
			snprintf(c->stop, sizeof(c->stop), "%s",
			    json_string_value(json_object_get(o, "stopReason")));
		} else if (strcmp(et, "metadata") == 0) {
			json_t *u = json_object_get(o, "usage");

			c->in = json_integer_value(json_object_get(u,
			    "inputTokens"));
			c->out = json_integer_value(json_object_get(u,
			    "outputTokens"));
			c->total = json_integer_value(json_object_get(u,
			    "totalTokens"));
		}
	}
	c->frames++;
	free(et);
	json_decref(o);
	return 0;
}

/* Feeds buf in pieces of `step` bytes; returns the feed result. */
static int
decode(const unsigned char *buf, size_t len, size_t step,
    struct collect *c, size_t *pending, char *err, size_t errlen)
{
	struct es_decoder *d = es_decoder_new(0);
	size_t off;
	int rc = 0;

	memset(c, 0, sizeof(*c));
	for (off = 0; off < len && rc == 0; off += step) {
		size_t n = len - off < step ? len - off : step;

		rc = es_decoder_feed(d, buf + off, n, on_msg, c, err, errlen);
	}
	if (pending)
		*pending = es_decoder_pending(d);
	es_decoder_free(d);
	return rc;
}

START_TEST(test_crc32)
{
	/* The check value of CRC-32/IEEE. */
	ck_assert_uint_eq(es_crc32(0, "123456789", 9), 0xCBF43926u);
	ck_assert_uint_eq(es_crc32(es_crc32(0, "1234", 4), "56789", 5),
	    0xCBF43926u);
	ck_assert_uint_eq(es_crc32(0, "", 0), 0);
}
END_TEST

START_TEST(test_all_header_types)
{
	size_t len;
	unsigned char *b = load("all-header-types.bin", &len);
	json_t *all = expected("all-header-types.bin");
	json_t *exp = json_object_get(all, "headers");
	struct es_message m;
	char err[128];
	const struct es_header *h;

	ck_assert_int_eq(es_parse_frame(b, len, &m, err, sizeof(err)), 0);
	ck_assert_uint_eq(m.nh, json_object_size(exp));
	h = es_header_get(&m, "t");
	ck_assert(h && h->type == ES_TRUE && h->i == 1);
	h = es_header_get(&m, "f");
	ck_assert(h && h->type == ES_FALSE && h->i == 0);
	h = es_header_get(&m, "b");
	ck_assert(h && h->type == ES_BYTE);
	ck_assert_int_eq(h->i, json_integer_value(json_object_get(exp, "b")));
	h = es_header_get(&m, "s");
	ck_assert(h && h->type == ES_INT16);
	ck_assert_int_eq(h->i, json_integer_value(json_object_get(exp, "s")));
	h = es_header_get(&m, "i");
	ck_assert(h && h->type == ES_INT32);
	ck_assert_int_eq(h->i, json_integer_value(json_object_get(exp, "i")));
	h = es_header_get(&m, "bin");
	ck_assert(h && h->type == ES_BYTES && h->vlen == 3);
	ck_assert(memcmp(h->v, "\x01\x02\x03", 3) == 0);
	h = es_header_get(&m, "str");
	ck_assert(h && h->type == ES_STRING);
	ck_assert_uint_eq(h->vlen, strlen(json_string_value(
	    json_object_get(exp, "str"))));
	ck_assert(memcmp(h->v, json_string_value(json_object_get(exp, "str")),
	    h->vlen) == 0);
	h = es_header_get(&m, "ts");	/* expected.json: "ts_ms" */
	ck_assert(h && h->type == ES_TIMESTAMP);
	ck_assert_int_eq(h->i, json_integer_value(json_object_get(exp,
	    "ts_ms")));
	ck_assert_ptr_null(es_header_get(&m, "nope"));
	json_decref(all);
	free(b);
}
END_TEST

START_TEST(test_good_stream_every_split)
{
	size_t len, step, pending, i;
	unsigned char *b = load("converse-stream-ok.bin", &len);
	json_t *exp = expected("converse-stream-ok.bin");
	json_t *u = json_object_get(exp, "usage");
	json_t *types = json_object_get(exp, "event_types");
	struct collect c;
	char err[128];

	/* Cut anywhere: every piece size from one byte to the whole. */
	for (step = 1; step <= len; step++) {
		ck_assert_int_eq(decode(b, len, step, &c, &pending, err,
		    sizeof(err)), 0);
		ck_assert_uint_eq(pending, 0);
		ck_assert_int_eq(c.frames, json_integer_value(json_object_get(
		    exp, "frames")));
		ck_assert_str_eq(c.text, json_string_value(json_object_get(exp,
		    "text")));
		ck_assert_str_eq(c.stop, json_string_value(json_object_get(exp,
		    "stopReason")));
		ck_assert_int_eq(c.in, json_integer_value(json_object_get(u,
		    "inputTokens")));
		ck_assert_int_eq(c.out, json_integer_value(json_object_get(u,
		    "outputTokens")));
		ck_assert_int_eq(c.total, json_integer_value(json_object_get(u,
		    "totalTokens")));
		for (i = 0; i < json_array_size(types); i++)
			ck_assert_str_eq(c.types[i], json_string_value(
			    json_array_get(types, i)));
	}
	json_decref(exp);
	free(b);
}
END_TEST

START_TEST(test_bad_crc_rejected)
{
	size_t len, step;
	unsigned char *b = load("converse-stream-bad-crc.bin", &len);
	struct collect c;
	char err[128];

	for (step = 1; step <= len; step += 13) {
		err[0] = '\0';
		ck_assert_int_eq(decode(b, len, step, &c, NULL, err,
		    sizeof(err)), -1);
		ck_assert_ptr_nonnull(strstr(err, "CRC"));
		/* Nothing of the broken frame or after it is delivered. */
		ck_assert_int_le(c.frames, 1);
	}
	ck_assert_int_eq(decode(b, len, len, &c, NULL, err, sizeof(err)), -1);
	free(b);
}
END_TEST

START_TEST(test_exception_surfaced)
{
	size_t len, pending;
	unsigned char *b = load("converse-stream-exception.bin", &len);
	json_t *exp = expected("converse-stream-exception.bin");
	struct collect c;
	char err[128];

	ck_assert_int_eq(decode(b, len, 5, &c, &pending, err, sizeof(err)), 0);
	ck_assert_uint_eq(pending, 0);
	ck_assert_int_eq(c.frames, json_integer_value(json_object_get(exp,
	    "frames")));
	ck_assert_str_eq(c.exception, json_string_value(json_object_get(exp,
	    "exception_type")));
	ck_assert_str_eq(c.text, json_string_value(json_object_get(exp,
	    "text_before")));
	ck_assert_int_eq(c.text_at_exception, (int)strlen(c.text));
	ck_assert(strlen(c.exc_msg) > 0);
	json_decref(exp);
	free(b);
}
END_TEST

/* Any corrupted byte of any frame is caught by one of the two CRCs. */
START_TEST(test_corruption_anywhere)
{
	size_t len, i;
	unsigned char *b = load("converse-stream-ok.bin", &len);
	struct collect c;
	char err[128];

	for (i = 0; i < len; i++) {
		b[i] ^= 0x20;
		ck_assert_msg(decode(b, len, len, &c, NULL, err,
		    sizeof(err)) == -1, "flip at %zu accepted", i);
		b[i] ^= 0x20;
	}
	free(b);
}
END_TEST

START_TEST(test_truncated_pending)
{
	size_t len, pending;
	unsigned char *b = load("converse-stream-ok.bin", &len);
	struct collect c;
	char err[128];

	ck_assert_int_eq(decode(b, len - 3, 64, &c, &pending, err,
	    sizeof(err)), 0);
	ck_assert_uint_gt(pending, 0);
	ck_assert_int_eq(c.frames, 5);
	free(b);
}
END_TEST

START_TEST(test_encode_roundtrip)
{
	struct es_hdr_in h[3] = { { ":message-type", "event" },
		{ ":event-type", "contentBlockDelta" },
		{ ":content-type", "application/json" } };
	const char *pl = "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"hé\"}}";
	size_t len;
	unsigned char *f = es_encode(h, 3, pl, strlen(pl), &len);
	struct es_message m;
	char err[128];

	ck_assert_int_eq(es_parse_frame(f, len, &m, err, sizeof(err)), 0);
	ck_assert_uint_eq(m.nh, 3);
	ck_assert(es_header_is(&m, ":event-type", "contentBlockDelta"));
	ck_assert_uint_eq(m.payload_len, strlen(pl));
	ck_assert(memcmp(m.payload, pl, m.payload_len) == 0);
	/* A frame with a length beyond the limit is refused at once. */
	{
		struct es_decoder *d = es_decoder_new(32);
		struct collect c;

		memset(&c, 0, sizeof(c));
		ck_assert_int_eq(es_decoder_feed(d, f, 12, on_msg, &c, err,
		    sizeof(err)), -1);
		ck_assert_ptr_nonnull(strstr(err, "out of range"));
		es_decoder_free(d);
	}
	free(f);
}
END_TEST

int
main(void)
{
	const char *shared = getenv("SHARED_DIR");
	struct stat st;
	Suite *s;
	TCase *tc;

	if (shared == NULL) {
		fprintf(stderr, "SHARED_DIR is not set: skipping\n");
		return 77;
	}
	snprintf(vecdir, sizeof(vecdir), "%s/vectors/bedrock-eventstream",
	    shared);
	if (stat(vecdir, &st) != 0) {
		fprintf(stderr, "%s not found: skipping\n", vecdir);
		return 77;
	}
	s = suite_create("eventstream");
	tc = tcase_create("core");
	tcase_add_test(tc, test_crc32);
	tcase_add_test(tc, test_all_header_types);
	tcase_add_test(tc, test_good_stream_every_split);
	tcase_add_test(tc, test_bad_crc_rejected);
	tcase_add_test(tc, test_exception_surfaced);
	tcase_add_test(tc, test_corruption_anywhere);
	tcase_add_test(tc, test_truncated_pending);
	tcase_add_test(tc, test_encode_roundtrip);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
