/*
 * gauth.c - see gauth.h.
 *
 * Why a background thread with blocking I/O rather than a non-blocking
 * exchange on the event loop: a token is fetched about once an hour per
 * service account, and the exchange needs DNS (getaddrinfo), a TLS
 * handshake, a file read (the key may have been rotated) and an RSA
 * signature — each blocking or CPU-bound, and none of it on a worker's
 * critical path. A short-lived detached thread per refresh does all of it
 * with plain blocking calls under socket timeouts, so the code is simple
 * to audit, and the workers only ever take a mutex for a few
 * instructions. At most one refresh per source runs at a time; every
 * request that needs a token while none is valid joins the waiters and is
 * woken through its own worker's mailbox (mailbox_post), so its callback
 * runs on its own loop.
 *
 * Ahead of expiry (the last quarter of the token's life, at most five
 * minutes) the first request to notice starts a refresh and goes on with
 * the still-valid token; nobody waits. A failed exchange is remembered for
 * a few seconds so a broken token endpoint fails requests over at once
 * instead of stacking them up.
 */
#include "gauth.h"
#include "http.h"
#include "mailbox.h"
#include "util.h"
#include "buildconf.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define GAUTH_IO_TIMEOUT_MS	10000
#define GAUTH_MAX_RESPONSE	(64 * 1024)
#define GAUTH_FAIL_HOLD_MS	5000
#define GAUTH_JWT_LIFETIME_S	3600

struct waiter {
	struct gauth *g;
	struct mailbox *mb;
	adapter_ready_fn ready;
	void *arg;
	int posted;		/* handed to the mailbox: the callback frees */
	int cancelled;
	char err[160];
	struct waiter *next;
};

struct gauth {
	char *key;		/* registry key: path or "inline:<sha256>" */
	char *path;		/* credentials file, or NULL */
	char *inline_json;	/* or the document itself */
	char *ca_file;		/* extra CA for the token endpoint */
	char *token;
	int64_t expires_mono, refresh_mono;
	int refreshing;
	int64_t fail_until;
	char last_err[160];
	struct waiter *waiters;
	struct gauth *next;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static struct gauth *g_all;
static int g_inflight;

static void
wipe_free(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/* ------------------------------------------------------------------ */
/* JWT                                                                  */

char *
gauth_b64url(const void *p, size_t n)
{
	size_t cap = 4 * ((n + 2) / 3) + 1, i, j;
	char *o = xmalloc(cap);
	int len = EVP_EncodeBlock((unsigned char *)o, p, (int)n);

	for (i = 0, j = 0; i < (size_t)len; i++) {
		char c = o[i];

		if (c == '=')
			break;
		o[j++] = c == '+' ? '-' : c == '/' ? '_' : c;
	}
	o[j] = '\0';
	return o;
}

char *
gauth_make_jwt(const char *sa_json, int64_t now_s, char *err, size_t errlen)
{
	json_t *sa = json_loads(sa_json, 0, NULL), *hdr = NULL, *cl = NULL;
	const char *email, *pem, *uri, *kid;
	char *h64 = NULL, *c64 = NULL, *s64 = NULL, *signing = NULL;
	char *hs = NULL, *cs = NULL, *jwt = NULL;
	unsigned char *sig = NULL;
	size_t siglen = 0;
	BIO *bio = NULL;
	EVP_PKEY *pkey = NULL;
	EVP_MD_CTX *md = NULL;

	if (sa == NULL) {
		snprintf(err, errlen, "the service-account file is not JSON");
		return NULL;
	}
	email = json_string_value(json_object_get(sa, "client_email"));
	pem = json_string_value(json_object_get(sa, "private_key"));
	uri = json_string_value(json_object_get(sa, "token_uri"));
	kid = json_string_value(json_object_get(sa, "private_key_id"));
	if (uri == NULL)
		uri = GAUTH_DEFAULT_TOKEN_URI;
	if (email == NULL || pem == NULL) {
		snprintf(err, errlen, "the service-account file lacks "
		    "client_email or private_key");
		goto out;
	}
	bio = BIO_new_mem_buf(pem, -1);
	pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	if (pkey == NULL || !EVP_PKEY_is_a(pkey, "RSA")) {
		snprintf(err, errlen, "the service account's private_key is not "
		    "an RSA key in PEM");
		goto out;
	}
	hdr = kid ? json_pack("{s:s, s:s, s:s}", "alg", "RS256", "typ", "JWT",
	    "kid", kid) : json_pack("{s:s, s:s}", "alg", "RS256", "typ", "JWT");
	cl = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", email, "scope",
	    GAUTH_SCOPE, "aud", uri, "iat", (json_int_t)now_s,
	    "exp", (json_int_t)(now_s + GAUTH_JWT_LIFETIME_S));
	hs = json_dumps(hdr, JSON_COMPACT);
	cs = json_dumps(cl, JSON_COMPACT);
	h64 = gauth_b64url(hs, strlen(hs));
	c64 = gauth_b64url(cs, strlen(cs));
	signing = xasprintf("%s.%s", h64, c64);
	md = EVP_MD_CTX_new();
	if (md == NULL ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (unsigned char *)signing,
	    strlen(signing)) != 1) {
		snprintf(err, errlen, "cannot sign the token request (RS256)");
		goto out;
	}
	sig = xmalloc(siglen);
	if (EVP_DigestSign(md, sig, &siglen, (unsigned char *)signing,
	    strlen(signing)) != 1) {
		snprintf(err, errlen, "cannot sign the token request (RS256)");
		goto out;
	}
	s64 = gauth_b64url(sig, siglen);
	jwt = xasprintf("%s.%s", signing, s64);
out:
	ERR_clear_error();
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(pkey);
	BIO_free(bio);
	free(sig);
	free(s64);
	free(signing);
	free(h64);
	free(c64);
	free(hs);
	free(cs);
	json_decref(hdr);
	json_decref(cl);
	if (sa) {
		/* The document holds the private key: wipe our copy of it. */
		json_t *pk = json_object_get(sa, "private_key");

		if (json_is_string(pk))
			OPENSSL_cleanse((char *)json_string_value(pk),
			    json_string_length(pk));
		json_decref(sa);
	}
	return jwt;
}

/* ------------------------------------------------------------------ */
/* a small blocking HTTP(S) client for the token endpoint                */

struct url {
	int tls;
	char host[256];
	int port;
	char path[1024];
};

static int
parse_url(const char *u, struct url *o)
{
	const char *h, *e, *slash;
	size_t hl;

	memset(o, 0, sizeof(*o));
	if (strncmp(u, "https://", 8) == 0) {
		o->tls = 1;
		o->port = 443;
		h = u + 8;
	} else if (strncmp(u, "http://", 7) == 0) {
		o->port = 80;
		h = u + 7;
	} else {
		return -1;
	}
	slash = strchr(h, '/');
	e = slash ? slash : h + strlen(h);
	if (*h == '[') {
		const char *rb = memchr(h, ']', (size_t)(e - h));

		if (rb == NULL)
			return -1;
		hl = (size_t)(rb - h - 1);
		if (hl == 0 || hl >= sizeof(o->host))
			return -1;
		memcpy(o->host, h + 1, hl);
		h = rb + 1;
	} else {
		const char *colon = memchr(h, ':', (size_t)(e - h));
		const char *he = colon ? colon : e;

		hl = (size_t)(he - h);
		if (hl == 0 || hl >= sizeof(o->host))
			return -1;
		memcpy(o->host, h, hl);
		h = he;
	}
	if (*h == ':') {
		char *end;
		long p = strtol(h + 1, &end, 10);

		if (end != e || p <= 0 || p > 65535)
			return -1;
		o->port = (int)p;
	} else if (h != e) {
		return -1;
	}
	snprintf(o->path, sizeof(o->path), "%s", slash ? slash : "/");
	return 0;
}

static int
connect_tcp(const struct url *u, char *err, size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[8];
	int fd = -1, rc;
	struct timeval tv;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_UNSPEC;
	snprintf(port, sizeof(port), "%d", u->port);
	rc = getaddrinfo(u->host, port, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "cannot resolve %.100s: %s", u->host,
		    gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd pfd;
		int soerr = 0;
		socklen_t sl = sizeof(soerr);

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd < 0)
			continue;
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
		if (rc < 0 && errno == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			rc = poll(&pfd, 1, GAUTH_IO_TIMEOUT_MS);
			if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR,
			    &soerr, &sl) == 0 && soerr == 0)
				rc = 0;
			else
				rc = -1;
		}
		if (rc == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "cannot connect to %.100s:%d", u->host,
		    u->port);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	tv.tv_sec = GAUTH_IO_TIMEOUT_MS / 1000;
	tv.tv_usec = 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

struct resp {
	int status;
	int done;
	struct evbuffer *body;
	int too_big;
};

static int
r_on_head(void *arg, struct http_head *hd)
{
	((struct resp *)arg)->status = hd->status;
	return 0;
}

static int
r_on_body(void *arg, const char *p, size_t n)
{
	struct resp *r = arg;

	if (evbuffer_get_length(r->body) + n > GAUTH_MAX_RESPONSE) {
		r->too_big = 1;
		return -1;
	}
	evbuffer_add(r->body, p, n);
	return 0;
}

static void
r_on_complete(void *arg)
{
	((struct resp *)arg)->done = 1;
}

/* The name the certificate must carry: a DNS name (also sent as SNI) or
 * an IP address literal (never sent as SNI). */
static int
set_peer_name(SSL *ssl, const char *host)
{
	unsigned char a[16];

	if (inet_pton(AF_INET, host, a) == 1 ||
	    inet_pton(AF_INET6, host, a) == 1)
		return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    host) == 1;
	return SSL_set_tlsext_host_name(ssl, host) == 1 &&
	    SSL_set1_host(ssl, host) == 1;
}

/* POSTs a form and reads the answer (status and body). 0 or -1. */
static int
http_post_form(const char *url, const char *ca_file, const char *form,
    struct resp *r, char *err, size_t errlen)
{
	static const struct http_parser_cb cb = { r_on_head, r_on_body,
		r_on_complete };
	struct url u;
	SSL_CTX *ctx = NULL;
	BIO *bio = NULL;
	SSL *ssl = NULL;
	struct http_parser *hp = NULL;
	struct evbuffer *in = NULL;
	char *req = NULL;
	int fd, rc = -1;
	size_t off, len;
	char buf[4096];

	if (parse_url(url, &u) < 0) {
		snprintf(err, errlen, "token_uri is not an http(s) URL");
		return -1;
	}
	fd = connect_tcp(&u, err, errlen);
	if (fd < 0)
		return -1;
	bio = BIO_new_socket(fd, BIO_CLOSE);
	if (bio == NULL) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (u.tls) {
		BIO *sb;

		ctx = SSL_CTX_new(TLS_client_method());
		if (ctx == NULL ||
		    !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
		    SSL_CTX_set_default_verify_paths(ctx) != 1 ||
		    (ca_file && SSL_CTX_load_verify_locations(ctx, ca_file,
		    NULL) != 1)) {
			snprintf(err, errlen, "cannot set up TLS for the token "
			    "endpoint");
			goto out;
		}
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		ssl = SSL_new(ctx);
		if (ssl == NULL || !set_peer_name(ssl, u.host)) {
			snprintf(err, errlen, "cannot set up TLS for the token "
			    "endpoint");
			goto out;
		}
		SSL_set_bio(ssl, bio, bio);
		bio = NULL;
		if (SSL_connect(ssl) != 1) {
			long v = SSL_get_verify_result(ssl);

			snprintf(err, errlen, "TLS handshake with %.100s failed%s%.60s",
			    u.host, v != X509_V_OK ? ": " : "",
			    v != X509_V_OK ? X509_verify_cert_error_string(v) :
			    "");
			goto out;
		}
		sb = BIO_new(BIO_f_ssl());
		if (sb == NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		BIO_set_ssl(sb, ssl, BIO_CLOSE);
		ssl = NULL;
		bio = sb;
	}
	if ((u.tls && u.port == 443) || (!u.tls && u.port == 80))
		req = xasprintf("POST %s HTTP/1.1\r\nHost: %s\r\n", u.path,
		    u.host);
	else
		req = xasprintf("POST %s HTTP/1.1\r\nHost: %s:%d\r\n", u.path,
		    u.host, u.port);
	{
		char *full = xasprintf("%sContent-Type: application/"
		    "x-www-form-urlencoded\r\nContent-Length: %zu\r\n"
		    "Accept: application/json\r\nConnection: close\r\n"
		    "User-Agent: sovgate/" PACKAGE_VERSION "\r\n\r\n%s", req,
		    strlen(form), form);

		free(req);
		req = full;
	}
	len = strlen(req);
	for (off = 0; off < len;) {
		int n = BIO_write(bio, req + off, (int)(len - off));

		if (n <= 0) {
			snprintf(err, errlen, "cannot send to the token "
			    "endpoint");
			goto out;
		}
		off += (size_t)n;
	}
	r->body = evbuffer_new();
	in = evbuffer_new();
	hp = http_parser_new(0, 16 * 1024, 100, &cb, r);
	for (;;) {
		int n = BIO_read(bio, buf, sizeof(buf));
		enum http_parse_result pr;

		if (n <= 0) {
			pr = http_parser_eof(hp);
			if (pr == HP_PAUSED || r->done)
				break;
			snprintf(err, errlen, "the token endpoint closed the "
			    "connection mid-answer");
			goto out;
		}
		evbuffer_add(in, buf, (size_t)n);
		pr = http_parser_feed(hp, in);
		if (pr == HP_ERROR) {
			snprintf(err, errlen, "the token endpoint sent %s",
			    r->too_big ? "too large an answer" :
			    "a malformed answer");
			goto out;
		}
		if (pr == HP_PAUSED || r->done)
			break;
	}
	rc = 0;
out:
	if (req) {
		OPENSSL_cleanse(req, strlen(req));
		free(req);
	}
	http_parser_free(hp);
	if (in)
		evbuffer_free(in);
	BIO_free_all(bio);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

/* ------------------------------------------------------------------ */
/* the exchange                                                         */

/* Fetches a token: 0 with *token and *expires_in, or -1 with err. */
static int
exchange(const char *sa_json, const char *ca_file, char **token,
    int64_t *expires_in, char *err, size_t errlen)
{
	json_t *sa = json_loads(sa_json, 0, NULL), *o = NULL;
	const char *uri;
	char *jwt, *form;
	struct resp r;
	int rc = -1;

	memset(&r, 0, sizeof(r));
	if (sa == NULL) {
		snprintf(err, errlen, "the service-account file is not JSON");
		return -1;
	}
	uri = json_string_value(json_object_get(sa, "token_uri"));
	if (uri == NULL)
		uri = GAUTH_DEFAULT_TOKEN_URI;
	jwt = gauth_make_jwt(sa_json, now_ms() / 1000, err, errlen);
	if (jwt == NULL)
		goto out;
	form = xasprintf("grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3A"
	    "grant-type%%3Ajwt-bearer&assertion=%s", jwt);
	wipe_free(jwt);
	rc = http_post_form(uri, ca_file, form, &r, err, errlen);
	wipe_free(form);
	if (rc < 0)
		goto out;
	rc = -1;
	o = json_loadb((const char *)evbuffer_pullup(r.body, -1),
	    evbuffer_get_length(r.body), 0, NULL);
	if (r.status != 200) {
		const char *e = json_string_value(json_object_get(o, "error"));
		const char *d = json_string_value(json_object_get(o,
		    "error_description"));

		snprintf(err, errlen, "the token endpoint answered %d%s%.40s"
		    "%s%.60s", r.status, e ? ": " : "", e ? e : "",
		    d ? " - " : "", d ? d : "");
		goto out;
	}
	if (!json_is_string(json_object_get(o, "access_token")) ||
	    json_string_length(json_object_get(o, "access_token")) == 0) {
		snprintf(err, errlen, "the token endpoint's answer has no "
		    "access_token");
		goto out;
	}
	{
		const char *t = json_string_value(json_object_get(o,
		    "access_token"));
		size_t i;

		/* It goes into a header: refuse anything but a token68. */
		for (i = 0; t[i]; i++)
			if ((unsigned char)t[i] <= ' ' ||
			    (unsigned char)t[i] >= 0x7f)
				break;
		if (t[i]) {
			snprintf(err, errlen, "the token endpoint's "
			    "access_token has invalid characters");
			goto out;
		}
		*token = xstrdup(t);
	}
	*expires_in = json_integer_value(json_object_get(o, "expires_in"));
	if (*expires_in <= 0)
		*expires_in = 3600;
	rc = 0;
out:
	if (o) {
		json_t *t = json_object_get(o, "access_token");

		if (json_is_string(t))
			OPENSSL_cleanse((char *)json_string_value(t),
			    json_string_length(t));
		json_decref(o);
	}
	if (r.body) {
		size_t n = evbuffer_get_length(r.body);

		if (n)
			OPENSSL_cleanse(evbuffer_pullup(r.body, -1), n);
		evbuffer_free(r.body);
	}
	json_decref(sa);
	return rc;
}

static void
waiter_cb(void *arg, int ok)
{
	struct waiter *w = arg;
	int cancelled;

	pthread_mutex_lock(&g_mu);
	cancelled = w->cancelled;
	pthread_mutex_unlock(&g_mu);
	if (!cancelled)
		w->ready(w->arg, ok, ok ? NULL : w->err);
	free(w);
}

static void *
refresh_main(void *arg)
{
	struct gauth *g = arg;
	char *path, *json = NULL, *ca, *token = NULL;
	char err[160] = "";
	int64_t expires_in = 0;
	struct waiter *w, *list, *next;
	int ok = 0;
	size_t len;

	pthread_mutex_lock(&g_mu);
	path = g->path ? xstrdup(g->path) : NULL;
	json = g->inline_json ? xstrdup(g->inline_json) : NULL;
	ca = g->ca_file ? xstrdup(g->ca_file) : NULL;
	pthread_mutex_unlock(&g_mu);
	/* The file is read at every refresh so a rotated key is picked up. */
	if (json == NULL && path) {
		json = read_file(path, &len);
		if (json == NULL)
			snprintf(err, sizeof(err), "cannot read the "
			    "service-account file %.100s: %s", path,
			    strerror(errno));
	}
	if (json && exchange(json, ca, &token, &expires_in, err,
	    sizeof(err)) == 0)
		ok = 1;
	wipe_free(json);
	free(ca);

	pthread_mutex_lock(&g_mu);
	if (ok) {
		int64_t now = mono_ms(), life = expires_in * 1000;
		int64_t ahead = life / 4;

		if (ahead > 300000)
			ahead = 300000;
		wipe_free(g->token);
		g->token = token;
		/* A token is not used in its last 30 s (clock skew, the
		 * request's own transit); it is renewed ahead of that. */
		g->expires_mono = now + life - (life > 60000 ? 30000 : life / 2);
		g->refresh_mono = now + life - ahead;
		g->fail_until = 0;
		g->last_err[0] = '\0';
	} else {
		g->fail_until = mono_ms() + GAUTH_FAIL_HOLD_MS;
		snprintf(g->last_err, sizeof(g->last_err), "%s", err);
		log_warn("google-service-account token refresh for %s failed: "
		    "%s", path ? path : "inline credentials", err);
	}
	free(path);
	g->refreshing = 0;
	list = g->waiters;
	g->waiters = NULL;
	for (w = list; w; w = w->next) {
		w->posted = 1;
		if (!ok)
			snprintf(w->err, sizeof(w->err), "%s", err);
	}
	pthread_mutex_unlock(&g_mu);
	/* A posted waiter is freed only by its callback, so it outlives a
	 * cancel that races with this loop. */
	for (w = list; w; w = next) {
		next = w->next;
		mailbox_post(w->mb, waiter_cb, w, ok);
	}
	pthread_mutex_lock(&g_mu);
	g_inflight--;
	pthread_cond_broadcast(&g_cv);
	pthread_mutex_unlock(&g_mu);
	return NULL;
}

/* With g_mu held. */
static int
start_refresh(struct gauth *g, char *err, size_t errlen)
{
	pthread_t th;
	pthread_attr_t at;
	int rc;

	if (g->refreshing)
		return 0;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &at, refresh_main, g);
	pthread_attr_destroy(&at);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start a token refresh: %s",
		    strerror(rc));
		return -1;
	}
	g->refreshing = 1;
	g_inflight++;
	return 0;
}

struct gauth *
gauth_for(const struct backend *b)
{
	const struct backend_auth *a = &b->auth;
	char key[300];
	struct gauth *g;

	if (a->credentials_file) {
		snprintf(key, sizeof(key), "file:%s", a->credentials_file);
	} else if (a->key && a->key[0] == '{') {
		char h[65];

		sha256_hex(a->key, strlen(a->key), h);
		snprintf(key, sizeof(key), "inline:%s", h);
	} else {
		return NULL;
	}
	pthread_mutex_lock(&g_mu);
	for (g = g_all; g; g = g->next)
		if (strcmp(g->key, key) == 0)
			break;
	if (g == NULL) {
		g = xcalloc(1, sizeof(*g));
		g->key = xstrdup(key);
		if (a->credentials_file)
			g->path = xstrdup(a->credentials_file);
		else
			g->inline_json = xstrdup(a->key);
		if (b->tls.ca_file)
			g->ca_file = xstrdup(b->tls.ca_file);
		g->next = g_all;
		g_all = g;
	}
	pthread_mutex_unlock(&g_mu);
	return g;
}

int
gauth_prepare(struct gauth *g, struct mailbox *mb, adapter_ready_fn ready,
    void *arg, void **handle, char *err, size_t errlen)
{
	int64_t now = mono_ms();
	struct waiter *w;
	char serr[128];

	pthread_mutex_lock(&g_mu);
	if (g->token && now < g->expires_mono) {
		if (now >= g->refresh_mono && now >= g->fail_until)
			(void)start_refresh(g, serr, sizeof(serr));
		pthread_mutex_unlock(&g_mu);
		return 1;
	}
	if (now < g->fail_until) {
		snprintf(err, errlen, "no OAuth token: %s", g->last_err);
		pthread_mutex_unlock(&g_mu);
		return -1;
	}
	if (start_refresh(g, err, errlen) < 0) {
		pthread_mutex_unlock(&g_mu);
		return -1;
	}
	w = xcalloc(1, sizeof(*w));
	w->g = g;
	w->mb = mb;
	w->ready = ready;
	w->arg = arg;
	w->next = g->waiters;
	g->waiters = w;
	*handle = w;
	pthread_mutex_unlock(&g_mu);
	return 0;
}

void
gauth_cancel(void *handle)
{
	struct waiter *w = handle, **pp;

	if (w == NULL)
		return;
	pthread_mutex_lock(&g_mu);
	if (w->posted) {
		w->cancelled = 1;	/* the callback frees it */
		pthread_mutex_unlock(&g_mu);
		return;
	}
	for (pp = &w->g->waiters; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	pthread_mutex_unlock(&g_mu);
	free(w);
}

char *
gauth_token(struct gauth *g)
{
	char *t = NULL;

	pthread_mutex_lock(&g_mu);
	if (g->token && mono_ms() < g->expires_mono)
		t = xstrdup(g->token);
	pthread_mutex_unlock(&g_mu);
	return t;
}

void
gauth_invalidate(struct gauth *g)
{
	pthread_mutex_lock(&g_mu);
	wipe_free(g->token);
	g->token = NULL;
	g->expires_mono = g->refresh_mono = 0;
	g->fail_until = 0;
	pthread_mutex_unlock(&g_mu);
}

void
gauth_shutdown(void)
{
	struct gauth *g, *next;
	struct waiter *w, *wn;

	pthread_mutex_lock(&g_mu);
	while (g_inflight > 0)
		pthread_cond_wait(&g_cv, &g_mu);
	for (g = g_all; g; g = next) {
		next = g->next;
		for (w = g->waiters; w; w = wn) {
			wn = w->next;
			free(w);
		}
		wipe_free(g->token);
		wipe_free(g->inline_json);
		free(g->path);
		free(g->ca_file);
		free(g->key);
		free(g);
	}
	g_all = NULL;
	pthread_mutex_unlock(&g_mu);
}
