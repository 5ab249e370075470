/*
 * check_extract.c - request parsing with limits, and the texts each
 * endpoint exposes to the model (and so to the classifier).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "extract.h"
#include "testutil.h"

static json_t *
parse(const char *body, char *err)
{
	return request_parse(body, strlen(body), 64, err, 256);
}

/* collects texts joined by '|' */
struct col {
	char buf[4096];
	int n;
};

static void
col_cb(void *ud, const char *text, size_t len)
{
	struct col *c = ud;
	size_t l = strlen(c->buf);

	if (l + len + 2 < sizeof(c->buf)) {
		if (c->n++ > 0)
			strcat(c->buf, "|");
		strncat(c->buf, text, len);
	}
}

static int
texts(const char *body, enum endpoint ep, struct col *c, char *err)
{
	json_t *root = parse(body, err);
	int n;

	memset(c, 0, sizeof(*c));
	ck_assert_msg(root != NULL, "parse failed: %s", err);
	n = extract_texts(root, ep, col_cb, c, err, 256);
	json_decref(root);
	return n;
}

START_TEST(test_endpoints)
{
	ck_assert_int_eq(endpoint_from_path("/v1/chat/completions"), EP_CHAT);
	ck_assert_int_eq(endpoint_from_path("/v1/embeddings?x=1"),
	    EP_EMBEDDINGS);
	ck_assert_int_eq(endpoint_from_path("/v1/fim/completions/"), EP_FIM);
	ck_assert_int_eq(endpoint_from_path("/v1/models"), EP_UNKNOWN);
	ck_assert_int_eq(endpoint_from_path("/v1/chat/completionsX"),
	    EP_UNKNOWN);
	ck_assert_int_eq(endpoint_from_path(NULL), EP_UNKNOWN);
	ck_assert_str_eq(endpoint_path(EP_CHAT), "/v1/chat/completions");
	ck_assert_str_eq(endpoint_path(EP_FIM), "/v1/fim/completions");
}
END_TEST

START_TEST(test_parse_errors)
{
	char err[256];
	char deep[400];
	json_t *ok;
	int i;

	ck_assert_ptr_null(parse("{\"a\":", err));
	ck_assert_ptr_nonnull(strstr(err, "invalid JSON at byte"));
	ck_assert_ptr_null(parse("", err));
	ck_assert_ptr_null(parse("[1,2]", err));
	ck_assert_ptr_nonnull(strstr(err, "object"));
	/* invalid UTF-8 */
	ck_assert_ptr_null(parse("{\"a\":\"\xff\"}", err));
	/* lone surrogates and NUL escapes */
	ck_assert_ptr_null(parse("{\"a\":\"\\ud800\"}", err));
	ck_assert_ptr_null(parse("{\"a\":\"\\udc00x\"}", err));
	ck_assert_ptr_null(parse("{\"a\":\"x\\u0000\"}", err));
	/* a raw NUL byte */
	ck_assert_ptr_null(request_parse("{\"a\":\"x\0\"}", 9, 64, err, 256));
	/* nesting */
	strcpy(deep, "{\"a\":");
	for (i = 5; i < 105; i++)
		deep[i] = '[';
	ck_assert_ptr_null(request_parse(deep, 105, 64, err, 256));
	ck_assert_ptr_nonnull(strstr(err, "nesting deeper than 64"));
	/* 63 levels inside the object are fine */
	strcpy(deep, "{\"a\":");
	for (i = 0; i < 63; i++)
		deep[5 + i] = '[';
	for (i = 0; i < 63; i++)
		deep[68 + i] = ']';
	deep[131] = '}';
	ok = request_parse(deep, 132, 64, err, 256);
	ck_assert_msg(ok != NULL, "%s", err);
	json_decref(ok);
	/* numbers, literals, escapes, trailing data */
	ok = parse("{\"a\":[-1.5e3,0,true,false,null,\"\\t\\/\"]}", err);
	ck_assert_msg(ok != NULL, "%s", err);
	ck_assert(json_real_value(json_array_get(json_object_get(ok, "a"), 0))
	    == -1500.0);
	ck_assert_str_eq(json_string_value(json_array_get(
	    json_object_get(ok, "a"), 5)), "\t/");
	json_decref(ok);
	/* reals of any length, as jansson reads them */
	ok = parse("{\"t\":0.66666666666666666666666666666666666666666666666"
	    "666666666666666666666666666666666663}", err);
	ck_assert_msg(ok != NULL, "%s", err);
	json_decref(ok);
	ck_assert_ptr_null(parse("{\"a\":01}", err));
	ck_assert_ptr_null(parse("{\"a\":1} x", err));
	ck_assert_ptr_null(parse("{\"a\":tru}", err));
	ck_assert_ptr_null(parse("{\"a\":\"\t\"}", err));	/* raw tab */
	ck_assert_ptr_null(parse("{\"a\":99999999999999999999}", err));
	ck_assert_ptr_null(parse("{\"a\":\"\xed\xa0\x80\"}", err));
	ck_assert_ptr_null(parse("{\"a\":\"\xc0\xaf\"}", err));
	ck_assert_ptr_null(parse("{\"a\" 1}", err));
	ck_assert_ptr_null(parse("{\"a\":[1,]}", err));
	/* brackets inside strings do not count */
	{
		json_t *j = parse("{\"a\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
		    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"\"}",
		    err);

		ck_assert_ptr_nonnull(j);
		json_decref(j);
	}
	/* duplicate keys are accepted (last wins) */
	{
		json_t *j = parse("{\"model\":\"a\",\"model\":\"b\"}", err);

		ck_assert_ptr_nonnull(j);
		ck_assert_str_eq(json_string_value(json_object_get(j, "model")),
		    "b");
		json_decref(j);
	}
}
END_TEST

START_TEST(test_chat)
{
	struct col c;
	char err[256];

	ck_assert_int_eq(texts("{\"messages\":[{\"role\":\"user\","
	    "\"content\":\"caf\\u00e9 \\ud83d\\ude00\"}]}", EP_CHAT, &c, err),
	    1);
	ck_assert_str_eq(c.buf, "caf\xc3\xa9 \xf0\x9f\x98\x80");
	/* parts */
	ck_assert_int_eq(texts("{\"messages\":[{\"role\":\"user\",\"content\":"
	    "[{\"type\":\"text\",\"text\":\"one\"},{\"type\":\"image_url\","
	    "\"image_url\":{\"url\":\"http://x\"}},{\"type\":\"text\","
	    "\"text\":\"two\"}]}]}", EP_CHAT, &c, err), 2);
	ck_assert_str_eq(c.buf, "one|two");
	/* tool calls: arguments decoded as JSON, keys and numbers too */
	ck_assert_int_eq(texts("{\"messages\":[{\"role\":\"assistant\","
	    "\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":"
	    "\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
	    "\"{\\\"iban\\\":\\\"DE89\\\\u0020370\\\",\\\"n\\\":42}\"}}]},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"ok\"}]}",
	    EP_CHAT, &c, err), 5);
	ck_assert_str_eq(c.buf, "iban|DE89 370|n|42|ok");
	/* arguments that are not JSON are scanned raw */
	ck_assert_int_eq(texts("{\"messages\":[{\"role\":\"assistant\","
	    "\"tool_calls\":[{\"function\":{\"arguments\":\"{broken\"}}]}]}",
	    EP_CHAT, &c, err), 1);
	ck_assert_str_eq(c.buf, "{broken");
	/* legacy function_call */
	ck_assert_int_eq(texts("{\"messages\":[{\"role\":\"assistant\","
	    "\"function_call\":{\"name\":\"f\",\"arguments\":\"[\\\"x\\\"]\"}}]}",
	    EP_CHAT, &c, err), 1);
	ck_assert_str_eq(c.buf, "x");
	/* shape errors */
	ck_assert_int_eq(texts("{\"messages\":\"hi\"}", EP_CHAT, &c, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "messages"));
	ck_assert_int_eq(texts("{\"messages\":[3]}", EP_CHAT, &c, err), -1);
	ck_assert_int_eq(texts("{\"messages\":[{\"content\":5}]}", EP_CHAT,
	    &c, err), -1);
}
END_TEST

START_TEST(test_embeddings_fim)
{
	struct col c;
	char err[256];

	ck_assert_int_eq(texts("{\"input\":\"a\"}", EP_EMBEDDINGS, &c, err),
	    1);
	ck_assert_int_eq(texts("{\"input\":[\"a\",\"b\"]}", EP_EMBEDDINGS, &c,
	    err), 2);
	ck_assert_str_eq(c.buf, "a|b");
	/* token arrays: nothing to read */
	ck_assert_int_eq(texts("{\"input\":[[1,2,3],[4]]}", EP_EMBEDDINGS, &c,
	    err), 0);
	ck_assert_int_eq(texts("{\"input\":[1,2,3]}", EP_EMBEDDINGS, &c, err),
	    0);
	ck_assert_int_eq(texts("{\"input\":{}}", EP_EMBEDDINGS, &c, err), -1);
	ck_assert_int_eq(texts("{}", EP_EMBEDDINGS, &c, err), -1);
	ck_assert_int_eq(texts("{\"prompt\":\"def f(\",\"suffix\":\"return\"}",
	    EP_FIM, &c, err), 2);
	ck_assert_str_eq(c.buf, "def f(|return");
	ck_assert_int_eq(texts("{\"prompt\":1}", EP_FIM, &c, err), -1);
	ck_assert_int_eq(texts("{\"prompt\":\"x\"}", EP_UNKNOWN, &c, err), -1);
}
END_TEST

START_TEST(test_classify_request)
{
	struct classifier *clf = classifier_new(NULL, 0, NULL);
	struct scan *s = scan_new();
	char err[256];
	const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
	    "\"content\":\"IBAN DE89 3704 0044 0532 0130 00\"},{\"role\":"
	    "\"assistant\",\"tool_calls\":[{\"function\":{\"arguments\":"
	    "\"{\\\"to\\\":\\\"jane@example.com\\\",\\\"card\\\":"
	    "4111111111111111}\"}}]}]}";
	json_t *root = parse(body, err);

	ck_assert_ptr_nonnull(root);
	ck_assert_int_eq(classify_request(clf, s, root, EP_CHAT, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(scan_count(s, "iban"), 1);
	ck_assert_uint_eq(scan_count(s, "email"), 1);
	ck_assert_uint_eq(scan_count(s, "payment_card"), 1);
	json_decref(root);
	scan_free(s);
	classifier_free(clf);
}
END_TEST

/*
 * Strings decoded 64 bytes at a time: every kind of escape at every offset
 * around the chunk edges, in strings long enough to take that path, read
 * as jansson reads them; and broken ones refused as jansson refuses them.
 */
START_TEST(test_long_escaped_strings)
{
	static const char *const esc[] = {"\\\"", "\\\\", "\\n",
	    "\\/", "\\t", "\\u00e9", "\\ud83d\\ude00", "\xc3\xa9",
	    "\\", "\\x", "\x01", "\\u12", "\\udc00"};
	char buf[512], err[256];
	size_t e, off, len;

	for (e = 0; e < sizeof(esc) / sizeof(esc[0]); e++)
		for (len = 120; len <= 260; len += 70)
			for (off = 50; off < 140; off++) {
				json_t *a, *b;
				size_t n, k;

				n = (size_t)snprintf(buf, sizeof(buf), "{\"k\":\"");
				for (k = 0; k < len; k++) {
					if (k == off)
						n += (size_t)snprintf(buf + n,
						    sizeof(buf) - n, "%s", esc[e]);
					buf[n++] = k % 7 == 3 ? '\\' : 'a';
					if (k % 7 == 3)
						buf[n++] = k % 2 ? 'n' : '"';
				}
				n += (size_t)snprintf(buf + n, sizeof(buf) - n,
				    "\"}");
				a = json_loadb(buf, n, 0, NULL);
				b = request_parse(buf, n, 64, err, sizeof(err));
				ck_assert_msg((a == NULL) == (b == NULL),
				    "acceptance differs: %s", buf);
				if (a != NULL)
					ck_assert_msg(json_equal(a, b),
					    "value differs: %s", buf);
				json_decref(a);
				json_decref(b);
			}
}
END_TEST

static Suite *
extract_suite(void)
{
	Suite *s = suite_create("extract");
	TCase *tc = tcase_create("extract");

	tcase_add_test(tc, test_endpoints);
	tcase_add_test(tc, test_parse_errors);
	tcase_add_test(tc, test_chat);
	tcase_add_test(tc, test_embeddings_fim);
	tcase_add_test(tc, test_classify_request);
	tcase_add_test(tc, test_long_escaped_strings);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(extract_suite());
}
