/*
 * check_http.c - the bounded llhttp wrapper: framing, smuggling
 * refusals, limits, pipelining, EOF-delimited responses, hop-by-hop.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "http.h"
#include "testutil.h"

struct sink {
	int heads, completes;
	char body[4096];
	size_t blen;
};

static int
on_head(void *arg, struct http_head *hd)
{
	(void)hd;
	((struct sink *)arg)->heads++;
	return 0;
}

static int
on_body(void *arg, const char *p, size_t n)
{
	struct sink *s = arg;

	memcpy(s->body + s->blen, p, n);
	s->blen += n;
	return 0;
}

static void
on_complete(void *arg)
{
	((struct sink *)arg)->completes++;
}

static const struct http_parser_cb cb = { on_head, on_body, on_complete };

static enum http_parse_result
feed(struct http_parser *p, struct evbuffer *b, const char *s)
{
	evbuffer_add(b, s, strlen(s));
	return http_parser_feed(p, b);
}

START_TEST(test_request_cl)
{
	struct sink s = { 0 };
	struct http_parser *p = http_parser_new(1, 8192, 50, &cb, &s);
	struct evbuffer *b = evbuffer_new();
	struct http_head *hd;

	ck_assert_int_eq(feed(p, b, "POST /v1/chat/completions HTTP/1.1\r\n"
	    "Host: x\r\nContent-Length: 5\r\nX-A:  spaced  \r\n\r\nhel"), HP_MORE);
	ck_assert_int_eq(feed(p, b, "lo"), HP_PAUSED);
	hd = http_parser_head(p);
	ck_assert_str_eq(hd->method, "POST");
	ck_assert_str_eq(hd->url, "/v1/chat/completions");
	ck_assert_int_eq(hd->content_length, 5);
	ck_assert_str_eq(http_head_get(hd, "x-a"), "spaced");
	ck_assert_int_eq(hd->keep_alive, 1);
	ck_assert_int_eq(s.blen, 5);
	ck_assert_int_eq(memcmp(s.body, "hello", 5), 0);
	http_parser_free(p);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_pipelined_pause)
{
	struct sink s = { 0 };
	struct http_parser *p = http_parser_new(1, 8192, 50, &cb, &s);
	struct evbuffer *b = evbuffer_new();

	ck_assert_int_eq(feed(p, b, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
	    "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"), HP_PAUSED);
	ck_assert_int_eq(s.completes, 1);
	ck_assert_str_eq(http_parser_head(p)->url, "/a");
	/* the second request waits in the buffer */
	ck_assert_uint_gt(evbuffer_get_length(b), 0);
	http_parser_reset(p);
	ck_assert_int_eq(http_parser_feed(p, b), HP_PAUSED);
	ck_assert_str_eq(http_parser_head(p)->url, "/b");
	ck_assert_int_eq(evbuffer_get_length(b), 0);
	http_parser_free(p);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_chunked_request)
{
	struct sink s = { 0 };
	struct http_parser *p = http_parser_new(1, 8192, 50, &cb, &s);
	struct evbuffer *b = evbuffer_new();

	ck_assert_int_eq(feed(p, b, "POST / HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"),
	    HP_PAUSED);
	ck_assert_int_eq(http_parser_head(p)->chunked, 1);
	ck_assert_int_eq(s.blen, 5);
	http_parser_free(p);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_duplicate_cl)
{
	struct sink s = { 0 };
	struct http_parser *p = http_parser_new(1, 8192, 50, &cb, &s);
	struct evbuffer *b = evbuffer_new();

	ck_assert_int_eq(feed(p, b, "POST / HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"), HP_ERROR);
	ck_assert_int_eq(http_parser_error_status(p), 400);
	ck_assert_int_eq(s.heads, 0);
	http_parser_free(p);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_cl_and_te)
{
	struct sink s = { 0 };
	struct http_parser *p = http_parser_new(1, 8192, 50, &cb, &s);
	struct evbuffer *b = evbuffer_new();

	ck_assert_int_eq(feed(p, b, "POST / HTTP/1.1\r\nHost: x\r\n"
	    "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
	    HP_ERROR);
	ck_assert_int_eq(http_parser_error_status(p), 400);
	ck_assert_int_eq(s.heads, 0);
	http_parser_free(p);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_te_not_chunked)
{
	struct sink s = { 0 };
	struct http_parser *p = http_parser_new(1, 8192, 50, &cb, &s);
	struct evbuffer *b = evbuffer_new();

	ck_assert_int_eq(feed(p, b, "POST / HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), HP_ERROR);
	ck_assert_int_eq(http_parser_error_status(p), 501);
	ck_assert_int_eq(s.heads, 0);
	http_parser_free(p);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_header_limits)
{
	struct sink s = { 0 };
	struct http_parser *p = http_parser_new(1, 256, 3, &cb, &s);
	struct evbuffer *b = evbuffer_new();
	char big[600];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	evbuffer_add_printf(b, "GET / HTTP/1.1\r\nX-Big: %s\r\n\r\n", big);
	ck_assert_int_eq(http_parser_feed(p, b), HP_ERROR);
	ck_assert_int_eq(http_parser_error_status(p), 431);
	http_parser_free(p);
	evbuffer_drain(b, evbuffer_get_length(b));

	p = http_parser_new(1, 8192, 3, &cb, &s);
	ck_assert_int_eq(feed(p, b, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n"
	    "D: 4\r\n\r\n"), HP_ERROR);
	ck_assert_int_eq(http_parser_error_status(p), 431);
	http_parser_free(p);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_garbage)
{
	struct sink s = { 0 };
	struct http_parser *p = http_parser_new(1, 8192, 50, &cb, &s);
	struct evbuffer *b = evbuffer_new();

	ck_assert_int_eq(feed(p, b, "\x16\x03\x01 hello\r\n\r\n"), HP_ERROR);
	ck_assert_int_eq(http_parser_error_status(p), 400);
	http_parser_free(p);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_response_eof_delimited)
{
	struct sink s = { 0 };
	struct http_parser *p = http_parser_new(0, 8192, 50, &cb, &s);
	struct evbuffer *b = evbuffer_new();

	ck_assert_int_eq(feed(p, b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain"
	    "\r\nConnection: close\r\n\r\nsome body"), HP_MORE);
	ck_assert_int_eq(http_parser_head(p)->status, 200);
	ck_assert_int_eq(http_parser_eof(p), HP_PAUSED);
	ck_assert_int_eq(s.blen, 9);
	http_parser_free(p);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_response_truncated)
{
	struct sink s = { 0 };
	struct http_parser *p = http_parser_new(0, 8192, 50, &cb, &s);
	struct evbuffer *b = evbuffer_new();

	ck_assert_int_eq(feed(p, b, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n"
	    "\r\nabc"), HP_MORE);
	ck_assert_int_eq(http_parser_eof(p), HP_ERROR);
	ck_assert_int_eq(http_parser_error_status(p), 502);
	http_parser_free(p);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_hop_by_hop)
{
	struct http_head hd;

	http_head_init(&hd, 1);
	http_head_add(&hd, "Connection", 10, "close, X-Private", 16);
	ck_assert(http_is_hop_by_hop(&hd, "Keep-Alive"));
	ck_assert(http_is_hop_by_hop(&hd, "transfer-encoding"));
	ck_assert(http_is_hop_by_hop(&hd, "x-private"));
	ck_assert(!http_is_hop_by_hop(&hd, "X-Request-Id"));
	http_head_clear(&hd);
}
END_TEST

/* Names and values share one buffer that grows (and moves) as headers
 * arrive, byte by byte here, and is reused by the next message. */
START_TEST(test_many_headers_split_and_reused)
{
	struct sink s = { 0 };
	struct http_parser *p = http_parser_new(1, 65536, 100, &cb, &s);
	struct evbuffer *b = evbuffer_new();
	struct http_head *hd;
	char msg[8192], name[32], want[400];
	size_t n = 0, i, k;
	int round;

	for (round = 0; round < 2; round++) {
		n = (size_t)snprintf(msg, sizeof(msg), "GET /r%d HTTP/1.1\r\n",
		    round);
		for (i = 0; i < 40; i++) {
			memset(want, 'a' + (char)(i % 26), 10 + i * 7);
			want[10 + i * 7] = '\0';
			n += (size_t)snprintf(msg + n, sizeof(msg) - n,
			    "X-H%zu: %s\r\n", i, want);
		}
		n += (size_t)snprintf(msg + n, sizeof(msg) - n, "\r\n");
		for (k = 0; k < n; k++) {
			evbuffer_add(b, msg + k, 1);
			http_parser_feed(p, b);
		}
		ck_assert_int_eq(s.heads, round + 1);
		hd = http_parser_head(p);
		ck_assert_uint_eq(hd->nh, 40);
		for (i = 0; i < 40; i++) {
			snprintf(name, sizeof(name), "x-h%zu", i);
			memset(want, 'a' + (char)(i % 26), 10 + i * 7);
			want[10 + i * 7] = '\0';
			ck_assert_str_eq(http_head_get(hd, name), want);
		}
		http_parser_reset(p);
	}
	http_parser_free(p);
	evbuffer_free(b);
}
END_TEST

/* The printf-free writers produce exactly what printf would. */
START_TEST(test_add_helpers)
{
	struct evbuffer *b = evbuffer_new();
	char big[400], want[512];
	size_t n;

	http_add_status_line(b, 200);
	http_add_header(b, "X-Sovgate-Level", "public");
	http_add_uint(b, 0);
	evbuffer_add(b, " ", 1);
	http_add_uint(b, 18446744073709551615ULL);
	evbuffer_add(b, " ", 1);
	http_add_hex(b, 0);
	evbuffer_add(b, " ", 1);
	http_add_hex(b, 0x1f40);
	evbuffer_add(b, "|", 1);
	http_add_status_line(b, 503);
	n = evbuffer_get_length(b);
	ck_assert_uint_lt(n, sizeof(want));
	memcpy(want, evbuffer_pullup(b, -1), n);
	want[n] = '\0';
	ck_assert_str_eq(want,
	    "HTTP/1.1 200 OK\r\nX-Sovgate-Level: public\r\n0 "
	    "18446744073709551615 0 1f40|HTTP/1.1 503 Service Unavailable\r\n");
	evbuffer_drain(b, n);
	/* a line longer than the one-copy buffer */
	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	http_add_header(b, "X-Long", big);
	snprintf(want, sizeof(want), "X-Long: %s\r\n", big);
	n = evbuffer_get_length(b);
	ck_assert_uint_eq(n, strlen(want));
	ck_assert(memcmp(evbuffer_pullup(b, -1), want, n) == 0);
	evbuffer_free(b);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("parser");

	tcase_add_test(tc, test_request_cl);
	tcase_add_test(tc, test_pipelined_pause);
	tcase_add_test(tc, test_chunked_request);
	tcase_add_test(tc, test_duplicate_cl);
	tcase_add_test(tc, test_cl_and_te);
	tcase_add_test(tc, test_te_not_chunked);
	tcase_add_test(tc, test_header_limits);
	tcase_add_test(tc, test_garbage);
	tcase_add_test(tc, test_response_eof_delimited);
	tcase_add_test(tc, test_response_truncated);
	tcase_add_test(tc, test_hop_by_hop);
	tcase_add_test(tc, test_add_helpers);
	tcase_add_test(tc, test_many_headers_split_and_reused);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
