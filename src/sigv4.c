/*
 * sigv4.c - see sigv4.h. Follows the AWS SigV4 specification; checked
 * against the AWS test suite in tests/check_sigv4.c.
 */
#include "sigv4.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* SHA-256 and HMAC-SHA256 come from util.c, with the digest fetched once:
 * signing a request costs a fraction of what implicit fetches would. */

static EVP_MD_CTX *
md_ctx(void)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	if (c == NULL)
		fatal("out of memory (EVP_MD_CTX)");
	return c;
}

static void
sha256_hex_fast(const void *p, size_t n, char out[65])
{
	EVP_MD_CTX *c = md_ctx();
	unsigned char d[32];

	sha256_2(c, p, n, NULL, 0, d);
	EVP_MD_CTX_free(c);
	hex_encode(d, 32, out);
}

/* ---- a small growing string ---- */

/* ---- encoding ---- */

static int
unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	    c == '~';
}

static void
sb_uri_encode(struct sb *b, const char *s, size_t n, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i;

	sb_grow(b, n * 3);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (unreserved(c) || (keep_slash && c == '/')) {
			b->p[b->n++] = (char)c;
		} else {
			b->p[b->n++] = '%';
			b->p[b->n++] = hex[c >> 4];
			b->p[b->n++] = hex[c & 15];
		}
	}
	b->p[b->n] = '\0';
}

char *
sigv4_uri_encode(const char *s, size_t n, int keep_slash)
{
	struct sb b = { 0 };

	sb_uri_encode(&b, s, n, keep_slash);
	return sb_take(&b);
}

/* Percent-decodes s[0..n) into a new string (invalid escapes kept). */
static char *
pct_decode(const char *s, size_t n, size_t *outlen)
{
	char *o = xmalloc(n + 1);
	size_t i, j = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n &&
		    hex_digit_value(s[i + 1]) >= 0 && hex_digit_value(s[i + 2]) >= 0) {
			o[j++] = (char)(hex_digit_value(s[i + 1]) * 16 + hex_digit_value(s[i + 2]));
			i += 2;
		} else {
			o[j++] = s[i];
		}
	}
	o[j] = '\0';
	*outlen = j;
	return o;
}

/* ---- canonical URI ---- */

static void
canonical_uri(struct sb *b, const char *path, int normalize)
{
	const char **seg;
	size_t *len;
	size_t nseg = 0, cap, i, plen;
	const char *p, *e;
	int trailing;

	if (path == NULL || *path == '\0') {
		sb_ch(b, '/');
		return;
	}
	if (!normalize) {
		sb_uri_encode(b, path, strlen(path), 1);
		return;
	}
	plen = strlen(path);
	cap = plen / 2 + 2;
	seg = xmalloc(cap * sizeof(*seg));
	len = xmalloc(cap * sizeof(*len));
	trailing = path[plen - 1] == '/';
	for (p = path; *p; p = e) {
		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		e = strchr(p, '/');
		if (e == NULL)
			e = p + strlen(p);
		if (e - p == 1 && p[0] == '.') {
			/* "." names the same directory */
		} else if (e - p == 2 && p[0] == '.' && p[1] == '.') {
			if (nseg > 0)
				nseg--;
		} else {
			seg[nseg] = p;
			len[nseg] = (size_t)(e - p);
			nseg++;
		}
	}
	/* A path ending in "." or ".." names a directory as well. */
	if (plen >= 2 && path[plen - 1] == '.' &&
	    (path[plen - 2] == '/' ||
	    (path[plen - 2] == '.' && plen >= 3 && path[plen - 3] == '/')))
		trailing = 1;
	for (i = 0; i < nseg; i++) {
		sb_ch(b, '/');
		sb_uri_encode(b, seg[i], len[i], 0);
	}
	if (nseg == 0 || trailing)
		sb_ch(b, '/');
	free(seg);
	free(len);
}

/* ---- canonical query ---- */

struct qparam {
	char *k, *v;	/* encoded */
};

static int
qparam_cmp(const void *a, const void *b)
{
	const struct qparam *x = a, *y = b;
	int c = strcmp(x->k, y->k);

	return c ? c : strcmp(x->v, y->v);
}

static void
canonical_query(struct sb *b, const char *q)
{
	struct qparam *v;
	size_t n = 0, cap = 1, i;
	const char *p, *e, *eq;

	if (q == NULL || *q == '\0')
		return;
	for (p = q; *p; p++)
		if (*p == '&')
			cap++;
	v = xcalloc(cap, sizeof(*v));
	for (p = q; p; p = *e ? e + 1 : NULL) {
		size_t dl;
		char *d;

		e = strchr(p, '&');
		if (e == NULL)
			e = p + strlen(p);
		if (e == p)
			continue;
		eq = memchr(p, '=', (size_t)(e - p));
		if (eq == NULL)
			eq = e;
		d = pct_decode(p, (size_t)(eq - p), &dl);
		v[n].k = sigv4_uri_encode(d, dl, 0);
		free(d);
		if (eq < e) {
			d = pct_decode(eq + 1, (size_t)(e - eq - 1), &dl);
			v[n].v = sigv4_uri_encode(d, dl, 0);
			free(d);
		} else {
			v[n].v = xstrdup("");
		}
		n++;
	}
	qsort(v, n, sizeof(*v), qparam_cmp);
	for (i = 0; i < n; i++) {
		if (i)
			sb_ch(b, '&');
		sb_str(b, v[i].k);
		sb_ch(b, '=');
		sb_str(b, v[i].v);
		free(v[i].k);
		free(v[i].v);
	}
	free(v);
}

/* ---- canonical headers ---- */

struct chdr {
	char *name;	/* lower case */
	const char *value;
	size_t idx;	/* keeps same-name values in their order */
};

static int
chdr_cmp(const void *a, const void *b)
{
	const struct chdr *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Value trimmed, runs of white space (line folds included) collapsed. */
static void
sb_header_value(struct sb *b, const char *v)
{
	int space = 0, any = 0;

	for (; *v; v++) {
		char c = *v;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			space = 1;
			continue;
		}
		if (space && any)
			sb_ch(b, ' ');
		space = 0;
		any = 1;
		sb_ch(b, c);
	}
}

static void
canonical_headers(struct sb *b, struct sb *signed_h,
    const struct sigv4_header *h, size_t nh)
{
	struct chdr *v = xcalloc(nh ? nh : 1, sizeof(*v));
	size_t i, j;

	for (i = 0; i < nh; i++) {
		v[i].name = xstrdup(h[i].name);
		for (j = 0; v[i].name[j]; j++)
			if (v[i].name[j] >= 'A' && v[i].name[j] <= 'Z')
				v[i].name[j] = (char)(v[i].name[j] + 32);
		v[i].value = h[i].value ? h[i].value : "";
		v[i].idx = i;
	}
	qsort(v, nh, sizeof(*v), chdr_cmp);
	for (i = 0; i < nh; i++) {
		if (i > 0 && strcmp(v[i].name, v[i - 1].name) == 0) {
			/* Repeated header: values joined with commas. */
			b->n--;		/* the previous '\n' */
			sb_ch(b, ',');
		} else {
			if (i > 0)
				sb_ch(signed_h, ';');
			sb_str(signed_h, v[i].name);
			sb_str(b, v[i].name);
			sb_ch(b, ':');
		}
		sb_header_value(b, v[i].value);
		sb_ch(b, '\n');
	}
	for (i = 0; i < nh; i++)
		free(v[i].name);
	free(v);
}

char *
sigv4_canonical_request(const struct sigv4_request *r, int flags,
    char **signed_headers)
{
	struct sb b = { 0 }, sh = { 0 };
	char hash[65];

	sb_str(&b, r->method);
	sb_ch(&b, '\n');
	canonical_uri(&b, r->path, flags & SIGV4_NORMALIZE_PATH);
	sb_ch(&b, '\n');
	canonical_query(&b, r->query);
	sb_ch(&b, '\n');
	canonical_headers(&b, &sh, r->headers, r->nheaders);
	sb_ch(&b, '\n');
	sb_str(&sh, "");
	sb_str(&b, sh.p);
	sb_ch(&b, '\n');
	if (r->payload_hash) {
		sb_str(&b, r->payload_hash);
	} else {
		sha256_hex_fast(r->payload ? r->payload : "", r->payload_len,
		    hash);
		sb_str(&b, hash);
	}
	if (signed_headers)
		*signed_headers = sb_take(&sh);
	else
		free(sh.p);
	return sb_take(&b);
}

char *
sigv4_string_to_sign(const char *amz_date, const char *region,
    const char *service, const char *creq)
{
	char hash[65];

	sha256_hex_fast(creq, strlen(creq), hash);
	return xasprintf("AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s",
	    amz_date, amz_date, region, service, hash);
}

/*
 * The signing key depends only on the secret, the day, the region and the
 * service: each thread keeps the last one it derived (plain storage, no
 * allocation), so a busy worker derives it once a day instead of with
 * four HMACs per request.
 */
struct key_cache {
	int valid;
	char secret[128];
	char date[9], region[32], service[32];
	unsigned char key[32];
};
static __thread struct key_cache t_kc;

void
sigv4_signature(const char *secret_key, const char *amz_date,
    const char *region, const char *service, const char *sts, char out[65])
{
	struct key_cache *kc = &t_kc;
	unsigned char k[32], sig[32];
	size_t slen = strlen(secret_key);
	EVP_MD_CTX *c = md_ctx();
	int cacheable = slen < sizeof(kc->secret) &&
	    strlen(region) < sizeof(kc->region) &&
	    strlen(service) < sizeof(kc->service);

	if (cacheable && kc->valid && strncmp(kc->date, amz_date, 8) == 0 &&
	    strcmp(kc->region, region) == 0 &&
	    strcmp(kc->service, service) == 0 &&
	    strlen(kc->secret) == slen && ct_equal(kc->secret, secret_key,
	    slen)) {
		memcpy(k, kc->key, 32);
	} else {
		char *ks = xmalloc(slen + 5);

		memcpy(ks, "AWS4", 4);
		memcpy(ks + 4, secret_key, slen + 1);
		hmac_sha256(c, ks, slen + 4, amz_date, 8, k);
		OPENSSL_cleanse(ks, slen + 4);
		free(ks);
		hmac_sha256(c, k, 32, region, strlen(region), k);
		hmac_sha256(c, k, 32, service, strlen(service), k);
		hmac_sha256(c, k, 32, "aws4_request", 12, k);
		if (cacheable) {
			OPENSSL_cleanse(kc, sizeof(*kc));
			memcpy(kc->secret, secret_key, slen + 1);
			memcpy(kc->date, amz_date, 8);
			kc->date[8] = '\0';
			strcpy(kc->region, region);
			strcpy(kc->service, service);
			memcpy(kc->key, k, 32);
			kc->valid = 1;
		}
	}
	hmac_sha256(c, k, 32, sts, strlen(sts), sig);
	OPENSSL_cleanse(k, sizeof(k));
	EVP_MD_CTX_free(c);
	hex_encode(sig, 32, out);
}

char *
sigv4_authorization(const struct sigv4_request *r,
    const struct sigv4_creds *k, const char *amz_date, int flags)
{
	char *sh = NULL, *creq, *sts, *out;
	char sig[65];

	creq = sigv4_canonical_request(r, flags, &sh);
	sts = sigv4_string_to_sign(amz_date, k->region, k->service, creq);
	sigv4_signature(k->secret_key, amz_date, k->region, k->service, sts,
	    sig);
	out = xasprintf("AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/aws4_request, "
	    "SignedHeaders=%s, Signature=%s", k->access_key, amz_date,
	    k->region, k->service, sh, sig);
	free(creq);
	free(sts);
	free(sh);
	return out;
}

void
sigv4_amz_date(int64_t epoch_s, char out[17])
{
	time_t t = (time_t)epoch_s;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}
