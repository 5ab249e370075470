/*
 * upstream.c - see upstream.h.
 */
#include "upstream.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <event2/event.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#define POOL_MAX_IDLE_PER_KEY	64
#define POOL_IDLE_TIMEOUT_S	30

struct upstream_pool {
	struct event_base *base;
	struct evdns_base *dns;
	struct upconn *idle;	/* all keys; small, scanned linearly */
	size_t nidle;
};

static atomic_long open_count;

/* ---- TLS contexts, built at load time and kept for the process ---- */

struct tls_ctx_entry {
	char *key;		/* "ca|cert|key" */
	SSL_CTX *ctx;
	struct tls_ctx_entry *next;
};

static struct tls_ctx_entry *tls_ctxs;
static pthread_mutex_t tls_mu = PTHREAD_MUTEX_INITIALIZER;

static char *
tls_key_of(const struct backend *b)
{
	return xasprintf("%s|%s|%s", b->tls.ca_file ? b->tls.ca_file : "",
	    b->tls.cert ? b->tls.cert : "", b->tls.key ? b->tls.key : "");
}

static SSL_CTX *
tls_ctx_find(const char *key)
{
	struct tls_ctx_entry *e;
	SSL_CTX *ctx = NULL;

	pthread_mutex_lock(&tls_mu);
	for (e = tls_ctxs; e; e = e->next)
		if (strcmp(e->key, key) == 0) {
			ctx = e->ctx;
			break;
		}
	pthread_mutex_unlock(&tls_mu);
	return ctx;
}

static void
tls_diag(struct diags *d, const struct backend *b, const char *what,
    const char *path)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	ERR_error_string_n(e, buf, sizeof(buf));
	diags_add(d, DIAG_ERROR, b->file, b->line, b->col,
	    "backend '%s': cannot load %s '%s': %s", b->name, what,
	    path, e ? buf : "unknown error");
	ERR_clear_error();
}

static SSL_CTX *
tls_ctx_build(const struct backend *b, struct diags *d)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (b->tls.ca_file) {
		if (SSL_CTX_load_verify_locations(ctx, b->tls.ca_file,
		    NULL) != 1) {
			tls_diag(d, b, "CA file", b->tls.ca_file);
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		tls_diag(d, b, "system CA store", "default");
		goto fail;
	}
	if (b->tls.cert) {
		if (SSL_CTX_use_certificate_chain_file(ctx, b->tls.cert) != 1) {
			tls_diag(d, b, "client certificate", b->tls.cert);
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx,
		    b->tls.key ? b->tls.key : b->tls.cert,
		    SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			tls_diag(d, b, "client key",
			    b->tls.key ? b->tls.key : b->tls.cert);
			goto fail;
		}
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int
upstream_tls_prepare(const struct backend_set *bs, struct diags *d)
{
	size_t i;
	int rc = 0;

	for (i = 0; bs && i < bs->n; i++) {
		const struct backend *b = bs->v[i];
		char *key;
		SSL_CTX *ctx;
		struct tls_ctx_entry *e;

		if (!b->use_tls)
			continue;
		key = tls_key_of(b);
		if (tls_ctx_find(key) != NULL) {
			free(key);
			continue;
		}
		ctx = tls_ctx_build(b, d);
		if (ctx == NULL) {
			free(key);
			rc = -1;
			continue;
		}
		e = xcalloc(1, sizeof(*e));
		e->key = key;
		e->ctx = ctx;
		pthread_mutex_lock(&tls_mu);
		e->next = tls_ctxs;
		tls_ctxs = e;
		pthread_mutex_unlock(&tls_mu);
	}
	return rc;
}

/* ---- pool ---- */

struct upstream_pool *
upstream_pool_new(struct event_base *base, struct evdns_base *dns)
{
	struct upstream_pool *p = xcalloc(1, sizeof(*p));

	p->base = base;
	p->dns = dns;
	return p;
}

static void
upconn_free(struct upconn *u)
{
	if (u->bev) {
		bufferevent_free(u->bev);
		atomic_fetch_sub(&open_count, 1);
	}
	free(u->key);
	free(u);
}

void
upstream_pool_free(struct upstream_pool *p)
{
	struct upconn *u, *next;

	if (p == NULL)
		return;
	for (u = p->idle; u; u = next) {
		next = u->next;
		upconn_free(u);
	}
	free(p);
}

size_t
upstream_pool_idle(const struct upstream_pool *p)
{
	return p->nidle;
}

static void
pool_unlink(struct upconn *u)
{
	struct upstream_pool *p = u->pool;
	struct upconn **pp;

	for (pp = &p->idle; *pp; pp = &(*pp)->next)
		if (*pp == u) {
			*pp = u->next;
			p->nidle--;
			break;
		}
	u->next = NULL;
}

/* An idle connection that becomes readable was closed by the server (or
 * sent something it should not have): either way it is gone. */
static void
idle_read_cb(struct bufferevent *bev, void *arg)
{
	struct upconn *u = arg;

	(void)bev;
	pool_unlink(u);
	upconn_free(u);
}

static void
idle_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct upconn *u = arg;

	(void)bev;
	(void)what;
	pool_unlink(u);
	upconn_free(u);
}

static char *
pool_key_of(const struct backend *b)
{
	char port[16];

	if (b->pool_key)
		return xstrdup(b->pool_key);
	port[sizeof(port) - 1] = '\0';
	return xconcat(b->use_tls ? "https://" : "http://", b->host, ":",
	    fmt_i64_before(port + sizeof(port) - 1, b->port), (char *)NULL);
}

void
upstream_release(struct upconn *u, int reusable)
{
	struct upstream_pool *p;
	struct timeval tv = { POOL_IDLE_TIMEOUT_S, 0 };
	struct upconn *x;
	size_t same = 0;

	if (u == NULL)
		return;
	p = u->pool;
	if (reusable && u->bev &&
	    evbuffer_get_length(bufferevent_get_input(u->bev)) == 0) {
		for (x = p->idle; x; x = x->next)
			if (strcmp(x->key, u->key) == 0)
				same++;
		if (same < POOL_MAX_IDLE_PER_KEY) {
			u->ready = NULL;
			u->arg = NULL;
			u->idle_since = mono_ms();
			bufferevent_setcb(u->bev, idle_read_cb, NULL,
			    idle_event_cb, u);
			bufferevent_set_timeouts(u->bev, &tv, NULL);
			bufferevent_enable(u->bev, EV_READ);
			u->next = p->idle;
			p->idle = u;
			p->nidle++;
			return;
		}
	}
	upconn_free(u);
}

void
upstream_close(struct upconn *u)
{
	if (u == NULL)
		return;
	upconn_free(u);
}

static void
connect_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct upconn *u = arg;
	char err[600];
	void (*ready)(struct upconn *, int, const char *, void *) = u->ready;
	void *rarg = u->arg;

	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;
		evutil_socket_t fd = bufferevent_getfd(bev);

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		u->connecting = 0;
		bufferevent_set_timeouts(bev, NULL, NULL);
		ready(u, 1, NULL, rarg);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		snprintf(err, sizeof(err), "connect to %s timed out", u->host);
	} else {
		unsigned long se = bufferevent_get_openssl_error(bev);
		int dnserr = bufferevent_socket_get_dns_error(bev);

		if (dnserr)
			snprintf(err, sizeof(err), "cannot resolve %s: %s",
			    u->host, evutil_gai_strerror(dnserr));
		else if (se) {
			char sb[200];

			ERR_error_string_n(se, sb, sizeof(sb));
			snprintf(err, sizeof(err), "TLS with %s failed: %s",
			    u->host, sb);
		} else
			snprintf(err, sizeof(err), "connect to %s failed: %s",
			    u->host, evutil_socket_error_to_string(
			    EVUTIL_SOCKET_ERROR()));
	}
	u->connecting = 0;
	ready(u, 0, err, rarg);
}

static int
is_ip_literal(const char *h)
{
	struct in6_addr a6;
	struct in_addr a4;

	return inet_pton(AF_INET, h, &a4) == 1 ||
	    inet_pton(AF_INET6, h, &a6) == 1;
}

struct upconn *
upstream_get(struct upstream_pool *p, const struct backend *b,
    int64_t connect_timeout_ms,
    void (*ready)(struct upconn *, int, const char *, void *), void *arg,
    int *now, char *err, size_t errlen)
{
	char *key = pool_key_of(b);
	struct upconn *u;
	struct timeval tv;
	const char *sni;

	*now = 0;
	for (u = p->idle; u; u = u->next)
		if (strcmp(u->key, key) == 0)
			break;
	if (u != NULL) {
		pool_unlink(u);
		free(key);
		u->reused = 1;
		bufferevent_setcb(u->bev, NULL, NULL, NULL, NULL);
		bufferevent_set_timeouts(u->bev, NULL, NULL);
		*now = 1;
		return u;
	}

	u = xcalloc(1, sizeof(*u));
	u->pool = p;
	u->key = key;
	u->ready = ready;
	u->arg = arg;
	u->connecting = 1;
	snprintf(u->host, sizeof(u->host), "%s", b->host);
	if (b->use_tls) {
		char *tk = tls_key_of(b);
		SSL_CTX *ctx = tls_ctx_find(tk);
		SSL *ssl;

		free(tk);
		if (ctx == NULL) {
			snprintf(err, errlen, "no TLS context for backend '%s'",
			    b->name);
			goto fail;
		}
		ssl = SSL_new(ctx);
		if (ssl == NULL) {
			snprintf(err, errlen, "SSL_new failed");
			goto fail;
		}
		sni = b->tls.server_name ? b->tls.server_name : b->host;
		/* Host-name verification is always on: a certificate for
		 * another name is a failed connection, whatever the CA. */
		if (is_ip_literal(sni)) {
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), sni);
		} else {
			SSL_set_tlsext_host_name(ssl, sni);
			SSL_set1_host(ssl, sni);
		}
		u->bev = bufferevent_openssl_socket_new(p->base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (u->bev == NULL) {
			SSL_free(ssl);
			snprintf(err, errlen, "cannot create TLS connection");
			goto fail;
		}
		bufferevent_openssl_set_allow_dirty_shutdown(u->bev, 1);
	} else {
		u->bev = bufferevent_socket_new(p->base, -1,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (u->bev == NULL) {
			snprintf(err, errlen, "cannot create connection");
			goto fail;
		}
	}
	atomic_fetch_add(&open_count, 1);
	tv.tv_sec = connect_timeout_ms / 1000;
	tv.tv_usec = (connect_timeout_ms % 1000) * 1000;
	bufferevent_set_timeouts(u->bev, &tv, &tv);
	bufferevent_setcb(u->bev, NULL, NULL, connect_event_cb, u);
	bufferevent_enable(u->bev, EV_READ | EV_WRITE);
	/* evdns keeps the lookup off the loop; an IP literal is parsed
	 * without a query. */
	if (bufferevent_socket_connect_hostname(u->bev, p->dns, AF_UNSPEC,
	    b->host, b->port) < 0) {
		snprintf(err, errlen, "cannot connect to %s:%d", b->host,
		    b->port);
		goto fail;
	}
	return u;
fail:
	upconn_free(u);
	return NULL;
}

long
upstream_open_count(void)
{
	return atomic_load(&open_count);
}
