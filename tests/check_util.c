/*
 * check_util.c - sizes, durations, times, hex, uuids.
 */
#include <check.h>
#include <errno.h>
#include <sched.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

#include <jansson.h>

#include "jalloc.h"
#include "util.h"
#include "testutil.h"

START_TEST(test_parse_size)
{
	uint64_t v;

	ck_assert_int_eq(parse_size("8MiB", &v), 0);
	ck_assert_uint_eq(v, 8ULL * 1024 * 1024);
	ck_assert_int_eq(parse_size("512KiB", &v), 0);
	ck_assert_uint_eq(v, 512ULL * 1024);
	ck_assert_int_eq(parse_size("1MB", &v), 0);
	ck_assert_uint_eq(v, 1000000ULL);
	ck_assert_int_eq(parse_size("1024", &v), 0);
	ck_assert_uint_eq(v, 1024);
	ck_assert_int_eq(parse_size("8 MiB", &v), 0);
	ck_assert_int_eq(parse_size("-1", &v), -1);
	ck_assert_int_eq(parse_size("8XB", &v), -1);
	ck_assert_int_eq(parse_size("", &v), -1);
	ck_assert_int_eq(parse_size("99999999999999999999GiB", &v), -1);
}
END_TEST

START_TEST(test_parse_duration)
{
	int64_t v;

	ck_assert_int_eq(parse_duration_ms("10s", &v), 0);
	ck_assert_int_eq(v, 10000);
	ck_assert_int_eq(parse_duration_ms("250ms", &v), 0);
	ck_assert_int_eq(v, 250);
	ck_assert_int_eq(parse_duration_ms("5m", &v), 0);
	ck_assert_int_eq(v, 300000);
	ck_assert_int_eq(parse_duration_ms("30d", &v), 0);
	ck_assert_int_eq(v, 30LL * 86400000);
	ck_assert_int_eq(parse_duration_ms("0", &v), 0);
	ck_assert_int_eq(v, 0);
	ck_assert_int_eq(parse_duration_ms("10", &v), -1);	/* unit? */
	ck_assert_int_eq(parse_duration_ms("10x", &v), -1);
	ck_assert_int_eq(parse_duration_ms("-5s", &v), -1);
}
END_TEST

START_TEST(test_parse_time)
{
	int64_t v, now;

	ck_assert_int_eq(parse_time_arg("1970-01-01T00:00:00Z", &v), 0);
	ck_assert_int_eq(v, 0);
	ck_assert_int_eq(parse_time_arg("2026-11-28T09:03:24.123Z", &v), 0);
	ck_assert_int_eq(v, 1795856604123LL);
	ck_assert_int_eq(parse_time_arg("2026-11-28T10:03:24+01:00", &v), 0);
	ck_assert_int_eq(v, 1795856604000LL);
	ck_assert_int_eq(parse_time_arg("2026-11-28", &v), 0);
	ck_assert_int_eq(v, 1795824000000LL);
	now = now_ms();
	ck_assert_int_eq(parse_time_arg("-24h", &v), 0);
	ck_assert(v <= now - 86400000 && v > now - 86400000 - 5000);
	ck_assert_int_eq(parse_time_arg("yesterday", &v), -1);
	ck_assert_int_eq(parse_time_arg("2026-13-01", &v), -1);
	ck_assert_int_eq(parse_time_arg("2026-11-28T25:00:00Z", &v), -1);
	ck_assert_int_eq(parse_time_arg("2026-11-28T10:00:00", &v), -1);
}
END_TEST

START_TEST(test_rfc3339_roundtrip)
{
	char buf[32];
	int64_t v;

	fmt_rfc3339_ms(1795856604123LL, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2026-11-28T09:03:24.123Z");
	ck_assert_int_eq(parse_time_arg(buf, &v), 0);
	ck_assert_int_eq(v, 1795856604123LL);
	/* the per-second cache: same second, next second, back again */
	fmt_rfc3339_ms(1795856604007LL, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2026-11-28T09:03:24.007Z");
	fmt_rfc3339_ms(1795856605999LL, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2026-11-28T09:03:25.999Z");
	fmt_rfc3339_ms(1795856604000LL, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2026-11-28T09:03:24.000Z");
	fmt_rfc3339_ms(0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1970-01-01T00:00:00.000Z");
}
END_TEST

START_TEST(test_hex_sha)
{
	char hx[65];
	unsigned char raw[4];

	sha256_hex("test", 4, hx);
	ck_assert_str_eq(hx,
	    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
	ck_assert_int_eq(hex_decode("deadBEEF", 8, raw), 0);
	ck_assert_uint_eq(raw[0], 0xde);
	ck_assert_uint_eq(raw[3], 0xef);
	ck_assert_int_eq(hex_decode("zz", 2, raw), -1);
	ck_assert_int_eq(hex_decode("abc", 3, raw), -1);
}
END_TEST

START_TEST(test_uuid)
{
	char a[37], b[37];

	uuid_v4(a);
	uuid_v4(b);
	ck_assert_int_eq(strlen(a), 36);
	ck_assert(a[14] == '4');
	ck_assert(strchr("89ab", a[19]) != NULL);
	ck_assert_str_ne(a, b);
	for (int i = 0; i < 36; i++)
		ck_assert(i == 8 || i == 13 || i == 18 || i == 23 ?
		    a[i] == '-' : strchr("0123456789abcdef", a[i]) != NULL);
}
END_TEST

START_TEST(test_uuid_v7)
{
	char a[37], b[37], hex[13];
	struct timespec ts;
	long long ms, now;

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	uuid_v7(a);
	usleep(2000);
	uuid_v7(b);
	ck_assert_int_eq(strlen(a), 36);
	ck_assert(a[14] == '7');
	ck_assert(strchr("89ab", a[19]) != NULL);
	/* the first 48 bits are the time in ms, so ids sort by time */
	memcpy(hex, a, 8);
	memcpy(hex + 8, a + 9, 4);
	hex[12] = '\0';
	ms = strtoll(hex, NULL, 16);
	ck_assert_msg(ms >= now && ms < now + 1000, "%lld vs %lld", ms, now);
	ck_assert(strcmp(a, b) < 0);
}
END_TEST

/* RFC 4231 test cases 1 and 6 (a key longer than the block). */
START_TEST(test_hmac_sha256)
{
	unsigned char key[131], mac[32];
	char hex[65];

	memset(key, 0x0b, 20);
	hmac_sha256(NULL, key, 20, "Hi There", 8, mac);
	hex_encode(mac, 32, hex);
	ck_assert_str_eq(hex, "b0344c61d8db38535ca8afceaf0bf12b"
	    "881dc200c9833da726e9376c2e32cff7");
	memset(key, 0xaa, sizeof(key));
	hmac_sha256(NULL, key, sizeof(key), "Test Using Larger Than Block-"
	    "Size Key - Hash Key First", 54, mac);
	hex_encode(mac, 32, hex);
	ck_assert_str_eq(hex, "60e431591ee0b67f0d8a26aacbf5b77f"
	    "8e0bc6213728c5140546040f0ee37f54");
	sha256_hex("abc", 3, hex);
	ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad");
}
END_TEST

static void *
jalloc_thread(void *arg)
{
	void *p = jalloc_malloc(40);

	(void)arg;
	memset(p, 'y', 40);
	jalloc_free(p);	/* kept by this thread, freed when it exits */
	return NULL;
}

START_TEST(test_jalloc)
{
	size_t sizes[] = { 0, 1, 24, 25, 40, 41, 100, 264, 265, 1033, 2056,
	    2057, 5000, 16392, 16393, 70000 };
	size_t i;
	pthread_t th;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char *a = jalloc_malloc(sizes[i]), *b;

		ck_assert_ptr_nonnull(a);
		memset(a, 'x', sizes[i]);
		jalloc_free(a);
		b = jalloc_malloc(sizes[i]);
		ck_assert_ptr_nonnull(b);
		memset(b, 'x', sizes[i]);
		/* blocks are malloc's own: free() may release them */
		free(b);
	}
	/* a size's freed block serves the next request of its class */
	{
		char *a = jalloc_malloc(30), *b;

		jalloc_free(a);
		b = jalloc_malloc(33);
		ck_assert_ptr_eq(a, b);
		jalloc_free(b);
	}
	/* big classes: libevent's 1 KB-doubled chains reuse a block */
	{
		char *a = jalloc_malloc(4096), *b;

		ck_assert_uint_ge(malloc_usable_size(a), 4096);
		jalloc_free(a);
		b = jalloc_malloc(3000);
		ck_assert_ptr_eq(a, b);
		jalloc_free(b);
	}
	/* realloc keeps the content, grows past a class, frees at 0 */
	{
		char *a = jalloc_realloc(NULL, 10);

		memcpy(a, "0123456789", 10);
		a = jalloc_realloc(a, 9000);
		ck_assert(memcmp(a, "0123456789", 10) == 0);
		ck_assert_uint_ge(malloc_usable_size(a), 9000);
		memset(a, 'y', 9000);
		a = jalloc_realloc(a, 100);	/* shrinking may keep it */
		ck_assert(memcmp(a, "yyyy", 4) == 0);
		ck_assert_ptr_null(jalloc_realloc(a, 0));
	}
	/* a block malloc made for another size is simply freed */
	jalloc_free(malloc(29));
	jalloc_free(malloc(3000));
	jalloc_free(NULL);
	ck_assert_int_eq(pthread_create(&th, NULL, jalloc_thread, NULL), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	/* and jansson works through it */
	json_set_alloc_funcs(jalloc_malloc, jalloc_free);
	{
		json_t *o = json_pack("{s:[i,s,{s:b}]}", "a", 1, "two",
		    "three", 1);
		char *s = json_dumps(o, JSON_COMPACT);

		ck_assert_str_eq(s, "{\"a\":[1,\"two\",{\"three\":true}]}");
		free(s);
		json_decref(o);
	}
	json_set_alloc_funcs(malloc, free);
}
END_TEST

/* The gather buffer hands everything on, in order, whatever the sizes. */
static void
sink_to_sb(void *arg, const void *p, size_t n)
{
	struct sb *out = arg;

	ck_assert_uint_gt(n, 0);
	sb_add(out, p, n);
}

START_TEST(test_gather)
{
	struct sb out = { NULL, 0, 0 };
	unsigned char buf[8];
	struct gather g = { sink_to_sb, &out, buf, 0, sizeof(buf) };
	char *s;

	gather_add(&g, "abc", 3);
	gather_add(&g, "defgh", 5);		/* fills the buffer exactly */
	ck_assert_uint_eq(out.n, 0);
	gather_add(&g, "i", 1);			/* spills the first eight */
	ck_assert_uint_eq(out.n, 8);
	gather_add(&g, "0123456789", 10);	/* larger: straight through */
	gather_add(&g, "", 0);
	gather_flush(&g);
	gather_flush(&g);			/* nothing left: no call */
	s = sb_take(&out);
	ck_assert_str_eq(s, "abcdefghi0123456789");
	free(s);
}
END_TEST

START_TEST(test_xconcat)
{
	char *s = xconcat("http://", "h", ":", "8080", (char *)NULL);

	ck_assert_str_eq(s, "http://h:8080");
	free(s);
	s = xconcat("", (char *)NULL);
	ck_assert_str_eq(s, "");
	free(s);
}
END_TEST

START_TEST(test_ct_equal)
{
	ck_assert(ct_equal("abcd", "abcd", 4));
	ck_assert(!ct_equal("abcd", "abce", 4));
	ck_assert_int_eq(ascii_casecmp("Content-Length", "content-length"), 0);
	ck_assert_int_ne(ascii_casecmp("a", "b"), 0);
}
END_TEST

/* Each CPU of the mask once, ascending; a thread pinned to one runs there
 * and nowhere else; a CPU outside the mask or the range is refused. */
static void *
pin_probe(void *arg)
{
	int *cpu = arg;
	cpu_set_t set;

	if (pin_thread(pthread_self(), *cpu) < 0)
		return (void *)1;
	CPU_ZERO(&set);
	if (pthread_getaffinity_np(pthread_self(), sizeof(set), &set) != 0 ||
	    CPU_COUNT(&set) != 1 || !CPU_ISSET(*cpu, &set) ||
	    sched_getcpu() != *cpu)
		return (void *)2;
	return NULL;
}

START_TEST(test_cpus_allowed)
{
	cpu_set_t mask;
	int cpus[CPU_SETSIZE], n, i, few[1], bad;
	pthread_t th;
	void *res;

	CPU_ZERO(&mask);
	ck_assert_int_eq(sched_getaffinity(0, sizeof(mask), &mask), 0);
	n = cpus_allowed(cpus, CPU_SETSIZE);
	ck_assert_int_eq(n, CPU_COUNT(&mask));
	for (i = 0; i < n; i++) {
		ck_assert(CPU_ISSET(cpus[i], &mask));
		if (i > 0)
			ck_assert_int_gt(cpus[i], cpus[i - 1]);
	}
	/* a short array still gets the count */
	ck_assert_int_eq(cpus_allowed(few, 1), n);
	ck_assert_int_eq(few[0], cpus[0]);

	/* pinned in a thread of its own: this one keeps its mask */
	ck_assert_int_eq(pthread_create(&th, NULL, pin_probe, &cpus[n - 1]),
	    0);
	ck_assert_int_eq(pthread_join(th, &res), 0);
	ck_assert_ptr_null(res);
	ck_assert_int_eq(sched_getaffinity(0, sizeof(mask), &mask), 0);
	ck_assert_int_eq(CPU_COUNT(&mask), n);

	errno = 0;
	ck_assert_int_eq(pin_thread(pthread_self(), -1), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(pin_thread(pthread_self(), CPU_SETSIZE), -1);
	bad = (int)sysconf(_SC_NPROCESSORS_CONF);
	if (bad > 0 && bad < CPU_SETSIZE) {
		/* a CPU the machine does not have: the kernel says no */
		ck_assert_int_eq(pthread_create(&th, NULL, pin_probe, &bad), 0);
		ck_assert_int_eq(pthread_join(th, &res), 0);
		ck_assert_ptr_eq(res, (void *)1);
	}
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_parse_size);
	tcase_add_test(tc, test_parse_duration);
	tcase_add_test(tc, test_parse_time);
	tcase_add_test(tc, test_rfc3339_roundtrip);
	tcase_add_test(tc, test_hex_sha);
	tcase_add_test(tc, test_uuid);
	tcase_add_test(tc, test_uuid_v7);
	tcase_add_test(tc, test_hmac_sha256);
	tcase_add_test(tc, test_ct_equal);
	tcase_add_test(tc, test_jalloc);
	tcase_add_test(tc, test_xconcat);
	tcase_add_test(tc, test_gather);
	tcase_add_test(tc, test_cpus_allowed);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
