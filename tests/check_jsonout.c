/*
 * check_jsonout.c - the fast serialiser writes what json_dumps writes.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsonout.h"
#include "testutil.h"

/* Both serialisations of the tree parsed from text must be identical. */
static void
same_as_jansson(const char *text)
{
	json_error_t je;
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	char *want, *got;
	size_t len = 0;

	ck_assert_msg(j != NULL, "%s: %s", text, je.text);
	want = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII |
	    JSON_ENCODE_ANY);
	got = json_out_compact(j, &len);
	ck_assert_ptr_nonnull(want);
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, want);
	ck_assert_uint_eq(len, strlen(want));
	free(want);
	free(got);
	json_decref(j);
}

START_TEST(test_shapes)
{
	same_as_jansson("{}");
	same_as_jansson("[]");
	same_as_jansson("{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
	    "\"content\":\"hi\"}],\"stream\":true,\"n\":null,\"x\":false}");
	same_as_jansson("{\"b\":1,\"a\":2,\"c\":{\"z\":[1,[2,[3,{}]],[]]}}");
	same_as_jansson("[\"a\",1,-1,0,9223372036854775807,"
	    "-9223372036854775808]");
}
END_TEST

START_TEST(test_reals)
{
	same_as_jansson("[0.7,1.0,-2.5,1e20,1e-5,1.5e300,-0.0,123456789.125,"
	    "3.141592653589793,1e+21,2.2250738585072014e-308]");
	same_as_jansson("{\"temperature\":0.2,\"top_p\":1.0}");
}
END_TEST

START_TEST(test_strings)
{
	/* escapes, controls, non-ASCII in the BMP and above, NUL */
	same_as_jansson("[\"quote \\\" backslash \\\\ slash / tab \\t\"]");
	same_as_jansson("[\"\\b\\f\\n\\r\\u0001\\u001f\\u007f\"]");
	same_as_jansson("[\"é ü ß — € 中文 \\u2028 \\u2029\"]");
	same_as_jansson("[\"emoji 😀 and \\ud83d\\ude00 \\uFEFF\"]");
	same_as_jansson("[\"nul \\u0000 inside\"]");
	same_as_jansson("{\"kéy\\n\":\"v\",\"\":1}");
}
END_TEST

START_TEST(test_limits)
{
	json_t *j = json_array(), *inner = j;
	char *s;
	size_t len, i;

	/* deep but allowed */
	for (i = 0; i < 100; i++) {
		json_t *a = json_array();

		json_array_append_new(inner, a);
		inner = a;
	}
	s = json_out_compact(j, &len);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(len, 202);
	free(s);
	json_decref(j);
	ck_assert_ptr_null(json_out_compact(NULL, &len));
	/* a large string grows the buffer */
	{
		char *big = malloc(100001);

		memset(big, 'x', 100000);
		big[100000] = '\0';
		j = json_pack("{s:s}", "k", big);
		s = json_out_compact(j, &len);
		ck_assert_uint_eq(len, 100000 + 8);
		free(s);
		free(big);
		json_decref(j);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("jsonout");
	TCase *tc = tcase_create("jsonout");

	tcase_add_test(tc, test_shapes);
	tcase_add_test(tc, test_reals);
	tcase_add_test(tc, test_strings);
	tcase_add_test(tc, test_limits);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
