/*
 * tlsserver.c - see tlsserver.h.
 */
#include "tlsserver.h"
#include "util.h"

#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

static void
ssl_diag(struct diags *d, const char *file, const char *what)
{
	char buf[256];
	unsigned long e = ERR_get_error();

	ERR_error_string_n(e, buf, sizeof(buf));
	diags_add(d, DIAG_ERROR, file, 0, 0, "%s: %s", what,
	    e ? buf : "unknown error");
	ERR_clear_error();
}

/* Only HTTP/1.1 is spoken: say so in ALPN rather than let a client
 * assume h2. */
static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char h11[] = "\x08http/1.1";
	unsigned char *o;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&o, outlen, h11, sizeof(h11) - 1, in,
	    inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	*out = o;
	return SSL_TLSEXT_ERR_OK;
}

static void
ctx_free(void *p)
{
	SSL_CTX_free(p);
}

int
tlsserver_prepare(struct snapshot *s, struct diags *d)
{
	const struct gw_config *c = s->cfg;
	SSL_CTX *ctx;
	X509 *cert;

	if (c->tls_cert == NULL || c->tls_key == NULL)
		return 0;
	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		ssl_diag(d, c->path, "cannot create a TLS context");
		return -1;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* TLS 1.2: forward-secret AEAD suites only; 1.3 keeps its defaults. */
	if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
		ssl_diag(d, c->path, "cipher list");
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_NO_RENEGOTIATION);
	/* Session tickets stay on; their keys belong to this context, so
	 * every reload rotates them. */
	SSL_CTX_set_num_tickets(ctx, 2);
	if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1) {
		ssl_diag(d, c->tls_cert, "cannot load tls.cert");
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) != 1) {
		ssl_diag(d, c->tls_key, "cannot load tls.key");
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_diag(d, c->tls_key, "tls.key does not match tls.cert");
		goto fail;
	}
	cert = SSL_CTX_get0_certificate(ctx);
	if (cert && X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
		diags_add(d, DIAG_ERROR, c->tls_cert, 0, 0,
		    "tls.cert has expired: renew it before loading it");
		goto fail;
	}
	if (cert && X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
		diags_add(d, DIAG_ERROR, c->tls_cert, 0, 0,
		    "tls.cert is not valid yet");
		goto fail;
	}
	if (c->tls_client_ca) {
		STACK_OF(X509_NAME) *names;

		/* Verify a certificate if the client sends one (a bad one
		 * fails the handshake); clients without one can still use a
		 * bearer key. */
		if (SSL_CTX_load_verify_locations(ctx, c->tls_client_ca,
		    NULL) != 1) {
			ssl_diag(d, c->tls_client_ca,
			    "cannot load tls.client_ca");
			goto fail;
		}
		names = SSL_load_client_CA_file(c->tls_client_ca);
		if (names)
			SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		SSL_CTX_set_verify_depth(ctx, 4);
	}
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	s->tls_ctx = ctx;
	s->tls_ctx_free = ctx_free;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return -1;
}
