/*
 * adapter-bench.c - what the cloud adapters cost per request, on one core:
 *
 *   sigv4        SigV4 Authorization for a 2 KiB Bedrock body (body hash,
 *                canonical request, string to sign, key derivation, HMACs)
 *   build        the whole Bedrock build(): chat -> Converse translation,
 *                serialisation and signing (10 messages with tools)
 *   crc32        the event-stream CRC, bulk throughput
 *   decode       event-stream decoding (both CRCs, headers) of a
 *                ConverseStream fed in 16 KiB reads
 *   translate    decoding plus translation to chat.completion.chunk SSE
 *                (what a streamed Bedrock answer costs the gateway)
 *
 * Built and run by adapter-bench.sh; prints one line per measure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "adapter.h"
#include "eventstream.h"
#include "sigv4.h"
#include "util.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile size_t sink;

static void
report(const char *name, long ops, double secs, double bytes,
    const char *unit)
{
	printf("%-10s %10.0f %s/s  %8.2f us/%s", name, (double)ops / secs, unit,
	    secs / (double)ops * 1e6, unit);
	if (bytes > 0)
		printf("  %8.1f MB/s", bytes / secs / 1e6);
	printf("\n");
}

static char *
make_body(size_t target)
{
	struct evbuffer *b = evbuffer_new();
	char *s;
	size_t n;

	evbuffer_add_printf(b, "{\"messages\":[{\"role\":\"user\",\"content\":"
	    "[{\"text\":\"");
	while (evbuffer_get_length(b) < target - 16)
		evbuffer_add_printf(b, "Summarise the quarterly report. ");
	evbuffer_add_printf(b, "\"}]}]}");
	n = evbuffer_get_length(b);
	s = xstrndup((const char *)evbuffer_pullup(b, -1), n);
	evbuffer_free(b);
	return s;
}

static void
bench_sigv4(long iters)
{
	char *body = make_body(2048);
	struct sigv4_header h[4] = {
		{ "content-type", "application/json" },
		{ "host", "bedrock-runtime.eu-west-3.amazonaws.com" },
		{ "x-amz-date", "20261128T090000Z" },
		{ "x-amz-security-token", "FQoGZXIvYXdzEPT//////////wEaDEXAMPLE"
		    "TOKENVALUEFORBENCHMARKINGONLY" } };
	struct sigv4_request r = { "POST",
		"/model/mistral.mistral-large-2407-v1%3A0/converse", NULL, h, 4,
		body, strlen(body), NULL };
	struct sigv4_creds k = { "AKIDEXAMPLE",
		"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "eu-west-3",
		"bedrock" };
	double t0;
	long i;

	t0 = now_s();
	for (i = 0; i < iters; i++) {
		char *a = sigv4_authorization(&r, &k, "20261128T090000Z",
		    SIGV4_NORMALIZE_PATH);

		sink += strlen(a);
		free(a);
	}
	report("sigv4", iters, now_s() - t0, 0, "op");
	free(body);
}

static const char *chat =
    "{\"model\":\"mistral-large\",\"max_tokens\":512,\"temperature\":0.3,"
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"lookup\","
    "\"description\":\"Find an order\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"id\":{\"type\":\"string\"}}}}}],\"messages\":["
    "{\"role\":\"system\",\"content\":\"You are a support assistant.\"},"
    "{\"role\":\"user\",\"content\":\"Where is order 42? It was due last "
    "week and the customer is asking again.\"},"
    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\","
    "\"type\":\"function\",\"function\":{\"name\":\"lookup\",\"arguments\":"
    "\"{\\\"id\\\":\\\"42\\\"}\"}}]},"
    "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"shipped on "
    "Monday, tracking FR123456789\"},"
    "{\"role\":\"assistant\",\"content\":\"It shipped on Monday.\"},"
    "{\"role\":\"user\",\"content\":\"Thanks. And order 43?\"},"
    "{\"role\":\"assistant\",\"content\":\"Let me check.\"},"
    "{\"role\":\"user\",\"content\":\"Please do.\"},"
    "{\"role\":\"assistant\",\"content\":\"Order 43 is being packed.\"},"
    "{\"role\":\"user\",\"content\":\"When will it ship?\"}]}";

static void
bench_build(long iters)
{
	struct backend b;
	struct fwd_ctx c;
	char err[256];
	double t0;
	long i;
	json_t *body = json_loads(chat, 0, NULL);

	memset(&b, 0, sizeof(b));
	b.name = "bench";
	b.kind = BK_BEDROCK;
	b.host = "bedrock-runtime.eu-west-3.amazonaws.com";
	b.port = 443;
	b.use_tls = 1;
	b.base_path = "";
	b.region = "eu-west-3";
	b.auth.type = AUTH_SIGV4;
	b.auth.access_key = "AKIDEXAMPLE";
	b.auth.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
	memset(&c, 0, sizeof(c));
	c.b = &b;
	c.ep = EP_CHAT;
	c.body = body;
	c.model_id = "mistral.mistral-large-2407-v1:0";
	t0 = now_s();
	for (i = 0; i < iters; i++) {
		struct evbuffer *out = evbuffer_new();

		if (adapter_bedrock.build(&c, out, err, sizeof(err)) < 0) {
			fprintf(stderr, "build: %s\n", err);
			exit(1);
		}
		sink += evbuffer_get_length(out);
		evbuffer_free(out);
	}
	report("build", iters, now_s() - t0, 0, "op");
	json_decref(body);
}

static void
bench_crc(void)
{
	size_t n = 64u << 20, i;
	unsigned char *buf = xmalloc(n);
	double t0;
	uint32_t crc = 0;
	int rep;

	for (i = 0; i < n; i++)
		buf[i] = (unsigned char)(i * 31);
	t0 = now_s();
	for (rep = 0; rep < 4; rep++)
		crc ^= es_crc32(0, buf, n);
	sink += crc;
	report("crc32", 4, now_s() - t0, 4.0 * (double)n, "64MiB");
	free(buf);
}

/* A ConverseStream of nframes text deltas. */
static unsigned char *
make_stream(int nframes, size_t *len)
{
	struct es_hdr_in h[3] = { { ":event-type", "contentBlockDelta" },
		{ ":content-type", "application/json" },
		{ ":message-type", "event" } };
	struct es_hdr_in hs[3] = { { ":event-type", "messageStart" },
		{ ":content-type", "application/json" },
		{ ":message-type", "event" } };
	struct evbuffer *b = evbuffer_new();
	const char *pl = "{\"contentBlockIndex\":0,\"delta\":{\"text\":\" the "
	    "quarterly\"},\"p\":\"abcdefghijklmnopqrstuvwxyzABCDEFGH\"}";
	const char *start = "{\"role\":\"assistant\"}";
	const char *stop = "{\"stopReason\":\"end_turn\"}";
	const char *meta = "{\"usage\":{\"inputTokens\":10,\"outputTokens\":"
	    "100,\"totalTokens\":110}}";
	unsigned char *f, *out;
	size_t n;
	int i;

	f = es_encode(hs, 3, start, strlen(start), &n);
	evbuffer_add(b, f, n);
	free(f);
	f = es_encode(h, 3, pl, strlen(pl), &n);
	for (i = 0; i < nframes; i++)
		evbuffer_add(b, f, n);
	free(f);
	hs[0].value = "messageStop";
	f = es_encode(hs, 3, stop, strlen(stop), &n);
	evbuffer_add(b, f, n);
	free(f);
	hs[0].value = "metadata";
	f = es_encode(hs, 3, meta, strlen(meta), &n);
	evbuffer_add(b, f, n);
	free(f);
	*len = evbuffer_get_length(b);
	out = xmalloc(*len);
	evbuffer_remove(b, out, *len);
	evbuffer_free(b);
	return out;
}

static int
count_cb(void *arg, const struct es_message *m)
{
	(*(long *)arg)++;
	sink += m->payload_len;
	return 0;
}

static void
bench_decode(int nframes, int reps)
{
	size_t len, off;
	unsigned char *s = make_stream(nframes, &len);
	char err[128];
	long frames = 0;
	double t0;
	int r;

	t0 = now_s();
	for (r = 0; r < reps; r++) {
		struct es_decoder *d = es_decoder_new(0);

		for (off = 0; off < len; off += 16384) {
			size_t n = len - off < 16384 ? len - off : 16384;

			if (es_decoder_feed(d, s + off, n, count_cb, &frames,
			    err, sizeof(err)) < 0) {
				fprintf(stderr, "decode: %s\n", err);
				exit(1);
			}
		}
		es_decoder_free(d);
	}
	report("decode", frames, now_s() - t0, (double)len * reps, "frame");
	free(s);
}

static void
bench_translate(int nframes, int reps)
{
	size_t len, off;
	unsigned char *s = make_stream(nframes, &len);
	struct backend b;
	struct fwd_ctx c;
	struct http_head up;
	json_t *body = json_loads("{\"model\":\"m\",\"stream\":true,"
	    "\"messages\":[]}", 0, NULL);
	double t0;
	size_t outbytes = 0;
	int r;

	memset(&b, 0, sizeof(b));
	b.name = "bench";
	b.kind = BK_BEDROCK;
	memset(&c, 0, sizeof(c));
	c.b = &b;
	c.ep = EP_CHAT;
	c.body = body;
	c.stream = 1;
	c.model_id = "mistral.mistral-large-2407-v1:0";
	http_head_init(&up, 0);
	http_head_add(&up, "Content-Type", 12,
	    "application/vnd.amazon.eventstream", 34);
	t0 = now_s();
	for (r = 0; r < reps; r++) {
		void *st = adapter_bedrock.resp_new(&c, 200, &up);
		struct evbuffer *out = evbuffer_new();

		for (off = 0; off < len; off += 16384) {
			size_t n = len - off < 16384 ? len - off : 16384;

			if (adapter_bedrock.resp_body(st, (const char *)s + off,
			    n, out) < 0) {
				fprintf(stderr, "translate failed\n");
				exit(1);
			}
			outbytes += evbuffer_get_length(out);
			evbuffer_drain(out, evbuffer_get_length(out));
		}
		if (adapter_bedrock.resp_end(st, 1, out) < 0) {
			fprintf(stderr, "translate end failed\n");
			exit(1);
		}
		evbuffer_free(out);
		adapter_bedrock.resp_free(st);
	}
	report("translate", (long)(nframes + 4) * reps, now_s() - t0,
	    (double)len * reps, "frame");
	sink += outbytes;
	http_head_clear(&up);
	json_decref(body);
	free(s);
}

int
main(int argc, char **argv)
{
	double scale = argc > 1 ? atof(argv[1]) : 1.0;

	if (scale <= 0)
		scale = 1.0;
	bench_sigv4((long)(200000 * scale));
	bench_build((long)(50000 * scale));
	bench_crc();
	bench_decode(10000, (int)(50 * scale));
	bench_translate(10000, (int)(10 * scale));
	return sink == 0;
}
