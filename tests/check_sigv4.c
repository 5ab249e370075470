/*
 * check_sigv4.c - SigV4 against every case of the AWS test suite in
 * $SHARED_DIR/vectors/aws-sigv4 (canonical request, string to sign and
 * Authorization header), plus Bedrock's double-encoded model path.
 * Skips (77) when the vectors are not there.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sigv4.h"
#include "util.h"
#include "testutil.h"

#define AK "AKIDEXAMPLE"
#define SK "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define DATE "20150830T123600Z"

static char vecdir[4096];

struct parsed {
	char *method, *path, *query;
	struct sigv4_header h[32];
	size_t nh;
	char *body;
	size_t body_len;
	char *buf;
};

/* The suite's .req files: "METHOD PATH HTTP/1.1", "Name:value" lines, a
 * continuation line (leading white space) adds a value that the suite's
 * canonical form joins with a comma, then an optional blank line and
 * body. */
static int
parse_req(const char *text, size_t len, struct parsed *r)
{
	char *s = xstrndup(text, len), *line, *nl, *sp, *http, *q;
	char *vals[32];

	memset(r, 0, sizeof(*r));
	r->buf = s;
	nl = strchr(s, '\n');
	if (nl == NULL)
		nl = s + strlen(s);
	else
		*nl++ = '\0';
	sp = strchr(s, ' ');
	http = strstr(s, " HTTP/");
	if (sp == NULL || http == NULL || http < sp)
		return -1;
	*sp = '\0';
	*http = '\0';
	r->method = s;
	r->path = sp + 1;
	q = strchr(r->path, '?');
	if (q) {
		*q = '\0';
		r->query = q + 1;
	}
	for (line = nl; line && *line; line = nl) {
		char *colon;

		nl = strchr(line, '\n');
		if (nl)
			*nl++ = '\0';
		if (*line == '\0') {
			/* blank line: the body follows */
			if (nl) {
				r->body = nl;
				r->body_len = strlen(nl);
			}
			break;
		}
		if ((*line == ' ' || *line == '\t') && r->nh > 0) {
			char *prev = vals[r->nh - 1];

			while (*line == ' ' || *line == '\t')
				line++;
			vals[r->nh - 1] = xasprintf("%s,%s", prev, line);
			free(prev);
			r->h[r->nh - 1].value = vals[r->nh - 1];
			continue;
		}
		colon = strchr(line, ':');
		if (colon == NULL || r->nh == 32)
			return -1;
		*colon = '\0';
		r->h[r->nh].name = line;
		vals[r->nh] = xstrdup(colon + 1);
		r->h[r->nh].value = vals[r->nh];
		r->nh++;
	}
	return 0;
}

static void
parsed_free(struct parsed *r)
{
	size_t i;

	for (i = 0; i < r->nh; i++)
		free((char *)r->h[i].value);
	free(r->buf);
}

static char *
slurp(const char *dir, const char *name, const char *ext, size_t *len)
{
	char path[4600];
	size_t n;
	char *s;

	snprintf(path, sizeof(path), "%s/%s.%s", dir, name, ext);
	s = read_file(path, &n);
	if (s && len)
		*len = n;
	return s;
}

static int ncases, nfailed;

static void
run_case(const char *dir, const char *name)
{
	size_t rl;
	char *req = slurp(dir, name, "req", &rl);
	char *creq_exp = slurp(dir, name, "creq", NULL);
	char *sts_exp = slurp(dir, name, "sts", NULL);
	char *authz_exp = slurp(dir, name, "authz", NULL);
	struct parsed p;
	struct sigv4_request r;
	struct sigv4_creds k = { AK, SK, "us-east-1", "service" };
	char *creq, *sts, *authz, sig[65];

	ck_assert_msg(req && creq_exp && sts_exp && authz_exp,
	    "%s: a vector file is missing", name);
	ck_assert_msg(parse_req(req, rl, &p) == 0, "%s: cannot parse .req",
	    name);
	memset(&r, 0, sizeof(r));
	r.method = p.method;
	r.path = p.path;
	r.query = p.query;
	r.headers = p.h;
	r.nheaders = p.nh;
	r.payload = p.body;
	r.payload_len = p.body_len;
	creq = sigv4_canonical_request(&r, SIGV4_NORMALIZE_PATH, NULL);
	sts = sigv4_string_to_sign(DATE, "us-east-1", "service", creq);
	sigv4_signature(SK, DATE, "us-east-1", "service", sts, sig);
	authz = sigv4_authorization(&r, &k, DATE, SIGV4_NORMALIZE_PATH);
	ncases++;
	if (strcmp(creq, creq_exp) != 0 || strcmp(sts, sts_exp) != 0 ||
	    strcmp(authz, authz_exp) != 0) {
		nfailed++;
		fprintf(stderr, "%s:\n--- creq\n%s\n--- expected\n%s\n--- sts\n"
		    "%s\n--- expected\n%s\n--- authz\n%s\n--- expected\n%s\n",
		    name, creq, creq_exp, sts, sts_exp, authz, authz_exp);
	}
	ck_assert_msg(strstr(authz_exp, sig) != NULL, "%s: signature", name);
	free(creq);
	free(sts);
	free(authz);
	parsed_free(&p);
	free(req);
	free(creq_exp);
	free(sts_exp);
	free(authz_exp);
}

/* Every directory holding NAME/NAME.req is a case; others are walked. */
static void
walk(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, i;

	ck_assert_msg(d != NULL, "cannot open %s", dir);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		names = xrealloc(names, (n + 1) * sizeof(*names));
		names[n++] = xstrdup(e->d_name);
	}
	closedir(d);
	for (i = 0; i < n; i++) {
		char sub[4200], req[4600];
		struct stat st;

		snprintf(sub, sizeof(sub), "%s/%s", dir, names[i]);
		if (stat(sub, &st) != 0 || !S_ISDIR(st.st_mode)) {
			free(names[i]);
			continue;
		}
		snprintf(req, sizeof(req), "%s/%s.req", sub, names[i]);
		if (stat(req, &st) == 0)
			run_case(sub, names[i]);
		else
			walk(sub);
		free(names[i]);
	}
	free(names);
}

START_TEST(test_suite)
{
	ncases = nfailed = 0;
	walk(vecdir);
	/* 31 cases ship with the suite; all must be found and pass. */
	ck_assert_int_ge(ncases, 31);
	ck_assert_int_eq(nfailed, 0);
}
END_TEST

/* A session token signed as a header gives the suite's "before" case. */
START_TEST(test_session_token)
{
	char dir[4200];
	char *authz_exp, *tok, *authz, *nl;
	struct sigv4_header h[3];
	struct sigv4_request r;
	struct sigv4_creds k = { AK, SK, "us-east-1", "service" };

	snprintf(dir, sizeof(dir), "%s/post-sts-token/post-sts-header-before",
	    vecdir);
	authz_exp = slurp(dir, "post-sts-header-before", "authz", NULL);
	tok = slurp(dir, "post-sts-header-before", "req", NULL);
	ck_assert_ptr_nonnull(authz_exp);
	ck_assert_ptr_nonnull(tok);
	nl = strstr(tok, "X-Amz-Security-Token:");
	ck_assert_ptr_nonnull(nl);
	h[0].name = "Host";
	h[0].value = "example.amazonaws.com";
	h[1].name = "X-Amz-Date";
	h[1].value = DATE;
	h[2].name = "x-amz-security-token";
	h[2].value = nl + strlen("X-Amz-Security-Token:");
	memset(&r, 0, sizeof(r));
	r.method = "POST";
	r.path = "/";
	r.headers = h;
	r.nheaders = 3;
	authz = sigv4_authorization(&r, &k, DATE, SIGV4_NORMALIZE_PATH);
	ck_assert_str_eq(authz, authz_exp);
	free(authz);
	free(authz_exp);
	free(tok);
}
END_TEST

/* Bedrock: the wire path already encodes ':' once; the canonical request
 * encodes it again. */
START_TEST(test_bedrock_double_encoding)
{
	struct sigv4_header h[2] = {
		{ "host", "bedrock-runtime.eu-west-3.amazonaws.com" },
		{ "x-amz-date", DATE } };
	struct sigv4_request r;
	char *creq, *sh = NULL;

	memset(&r, 0, sizeof(r));
	r.method = "POST";
	r.path = "/model/mistral.mistral-large-2407-v1%3A0/converse";
	r.headers = h;
	r.nheaders = 2;
	r.payload = "{}";
	r.payload_len = 2;
	creq = sigv4_canonical_request(&r, SIGV4_NORMALIZE_PATH, &sh);
	ck_assert_ptr_nonnull(strstr(creq,
	    "\n/model/mistral.mistral-large-2407-v1%253A0/converse\n"));
	ck_assert_str_eq(sh, "host;x-amz-date");
	free(creq);
	free(sh);
}
END_TEST

/* The per-thread signing-key cache never serves a key for another
 * secret, day, region or service. */
START_TEST(test_key_cache)
{
	const char *sts = "AWS4-HMAC-SHA256\n" DATE "\nx";
	char a[65], b[65], c[65], d[65], e[65], a2[65];

	sigv4_signature(SK, DATE, "us-east-1", "service", sts, a);
	sigv4_signature("other-secret", DATE, "us-east-1", "service", sts, b);
	sigv4_signature(SK, "20150831T000000Z", "us-east-1", "service", sts, c);
	sigv4_signature(SK, DATE, "eu-west-3", "service", sts, d);
	sigv4_signature(SK, DATE, "us-east-1", "bedrock", sts, e);
	sigv4_signature(SK, DATE, "us-east-1", "service", sts, a2);
	ck_assert_str_eq(a, a2);
	ck_assert_str_ne(a, b);
	ck_assert_str_ne(a, c);
	ck_assert_str_ne(a, d);
	ck_assert_str_ne(a, e);
	/* A secret sharing a prefix with the cached one is another key. */
	sigv4_signature(SK "X", DATE, "us-east-1", "service", sts, b);
	ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(test_amz_date)
{
	char d[17];

	sigv4_amz_date(1440938160, d);
	ck_assert_str_eq(d, DATE);
}
END_TEST

int
main(void)
{
	const char *shared = getenv("SHARED_DIR");
	struct stat st;
	Suite *s;

	if (shared == NULL) {
		fprintf(stderr, "SHARED_DIR is not set: skipping\n");
		return 77;
	}
	snprintf(vecdir, sizeof(vecdir), "%s/vectors/aws-sigv4", shared);
	if (stat(vecdir, &st) != 0) {
		fprintf(stderr, "%s not found: skipping\n", vecdir);
		return 77;
	}
	s = suite_create("sigv4");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_suite);
	tcase_add_test(tc, test_session_token);
	tcase_add_test(tc, test_bedrock_double_encoding);
	tcase_add_test(tc, test_amz_date);
	tcase_add_test(tc, test_key_cache);
	suite_add_tcase(s, tc);
	return run_suite(s);
}
