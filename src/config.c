/*
 * config.c - see config.h.
 *
 * Every value is validated where it is read and reported with its position;
 * loading goes on after an error so that `sovgate check` shows every problem
 * at once, and the half-built config is freed at the end if any was found.
 */
#include "config.h"
#include "util.h"
#include "yamltree.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR "/var"
#endif

void
limits_defaults(struct limits *l)
{
	memset(l, 0, sizeof(*l));
	l->max_body = 8ULL * 1024 * 1024;
	l->max_header_size = 16 * 1024;
	l->max_headers = 100;
	l->max_json_depth = 64;
	l->max_connections = 4096;
	l->header_timeout_ms = 10000;
	l->body_timeout_ms = 30000;
	l->keepalive_timeout_ms = 75000;
	l->upstream_connect_timeout_ms = 5000;
	l->upstream_first_byte_timeout_ms = 120000;
	l->stream_idle_timeout_ms = 300000;
	l->drain_timeout_ms = 30000;
	l->log_timeout_ms = 5000;
}

char *
path_dirname(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	return xstrndup(path, (size_t)(slash - path));
}

char *
path_resolve(const char *dir, const char *p)
{
	size_t dl, rl;
	char *r;

	if (p == NULL)
		return NULL;
	if (p[0] == '/' || dir == NULL) {
		r = xstrdup(p);
		rl = strlen(r);
		while (rl > 1 && r[rl - 1] == '/')
			r[--rl] = '\0';
		return r;
	}
	dl = strlen(dir);
	/* "policy/" and "./policy" both name the same directory */
	while (p[0] == '.' && p[1] == '/')
		p += 2;
	if (p[0] == '\0' || strcmp(p, ".") == 0)
		return xstrdup(dir);
	r = xasprintf("%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", p);
	/* "policy/" and "policy" are the same directory: one spelling
	 * keeps messages (dir//file) and comparisons tidy */
	rl = strlen(r);
	while (rl > 1 && r[rl - 1] == '/')
		r[--rl] = '\0';
	return r;
}

/* An absolute version of the config file's own path: realpath when it
 * exists (it does, we just read it), else cwd + path. */
static char *
absolute_path(const char *path)
{
	char buf[PATH_MAX];
	char cwd[PATH_MAX];

	if (realpath(path, buf) != NULL)
		return xstrdup(buf);
	if (path[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
		return xstrdup(path);
	return xasprintf("%s/%s", cwd, path);
}

/* "host:port" or "[v6]:port"; port 1..65535. */
int
listen_addr_valid(const char *s)
{
	const char *colon;
	char *end;
	long port;

	if (s == NULL || *s == '\0')
		return 0;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':' || rb == s + 1)
			return 0;
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || colon == s || memchr(s, ':',
		    (size_t)(colon - s)) != NULL)
			return 0;
	}
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || colon[1] == '\0' || port < 1 ||
	    port > 65535)
		return 0;
	return 1;
}

static void
set_str(char **dst, const struct ynode *n, const char *what, struct diags *d)
{
	const char *s = ynode_str(n, what, d);

	if (s != NULL) {
		free(*dst);
		*dst = xstrdup(s);
	}
}

static void
set_path(char **dst, const struct ynode *n, const char *what,
    const char *dir, struct diags *d)
{
	const char *s = ynode_str(n, what, d);

	if (s != NULL) {
		free(*dst);
		*dst = path_resolve(dir, s);
	}
}

static void
get_size(const struct ynode *m, const char *key, uint64_t *out,
    struct diags *d)
{
	const struct ynode *n = ynode_get(m, key);

	if (n == NULL)
		return;
	if (n->type != YN_SCALAR || parse_size(n->str, out) < 0 || *out == 0)
		ynode_diag(n, d, DIAG_ERROR, "limits.%s: '%s' is not a size; "
		    "write e.g. 8MiB, 512KiB or a number of bytes", key,
		    n->type == YN_SCALAR ? n->str : "?");
}

static void
get_duration(const struct ynode *m, const char *key, const char *ctx,
    int64_t *out, struct diags *d)
{
	const struct ynode *n = ynode_get(m, key);

	if (n == NULL)
		return;
	if (n->type != YN_SCALAR || parse_duration_ms(n->str, out) < 0)
		ynode_diag(n, d, DIAG_ERROR, "%s%s: '%s' is not a duration; "
		    "write e.g. 250ms, 10s, 5m", ctx, key,
		    n->type == YN_SCALAR ? n->str : "?");
}

static void
get_int(const struct ynode *m, const char *key, int lo, int hi, int *out,
    struct diags *d)
{
	const struct ynode *n = ynode_get(m, key);
	long long v;

	if (n == NULL)
		return;
	if (ynode_int(n, &v, d) < 0)
		return;
	if (v < lo || v > hi) {
		ynode_diag(n, d, DIAG_ERROR, "limits.%s must be between %d and "
		    "%d, not %lld", key, lo, hi, v);
		return;
	}
	*out = (int)v;
}

static void
load_limits(const struct ynode *m, struct limits *l, struct diags *d)
{
	static const char *const known[] = { "max_body", "max_header_size",
		"max_headers", "max_json_depth", "max_connections",
		"header_timeout", "body_timeout", "keepalive_timeout",
		"upstream_connect_timeout", "upstream_first_byte_timeout",
		"stream_idle_timeout", "drain_timeout", "log_timeout", NULL };

	if (ynode_expect(m, YN_MAP, "limits", d) < 0)
		return;
	ynode_check_keys(m, known, d);
	get_size(m, "max_body", &l->max_body, d);
	get_size(m, "max_header_size", &l->max_header_size, d);
	get_int(m, "max_headers", 1, 10000, &l->max_headers, d);
	get_int(m, "max_json_depth", 2, 1024, &l->max_json_depth, d);
	get_int(m, "max_connections", 1, 1000000, &l->max_connections, d);
	get_duration(m, "header_timeout", "limits.", &l->header_timeout_ms, d);
	get_duration(m, "body_timeout", "limits.", &l->body_timeout_ms, d);
	get_duration(m, "keepalive_timeout", "limits.",
	    &l->keepalive_timeout_ms, d);
	get_duration(m, "upstream_connect_timeout", "limits.",
	    &l->upstream_connect_timeout_ms, d);
	get_duration(m, "upstream_first_byte_timeout", "limits.",
	    &l->upstream_first_byte_timeout_ms, d);
	get_duration(m, "stream_idle_timeout", "limits.",
	    &l->stream_idle_timeout_ms, d);
	get_duration(m, "drain_timeout", "limits.", &l->drain_timeout_ms, d);
	get_duration(m, "log_timeout", "limits.", &l->log_timeout_ms, d);
}

/* Which of two words the scalar n is: 0 or 1; -1 for anything else.
 * (Compared as text: YAML 1.1 would have read a bare off as false.) */
static int
word_of(const struct ynode *n, const char *w0, const char *w1)
{
	if (n->type != YN_SCALAR)
		return -1;
	if (strcmp(n->str, w0) == 0)
		return 0;
	return strcmp(n->str, w1) == 0 ? 1 : -1;
}

static void
load_log(const struct ynode *m, struct gw_config *c, struct diags *d)
{
	static const char *const known[] = { "database", "durability",
		"batch_interval", "fingerprint_key_file", "sync", NULL };
	const struct ynode *n;
	int k;

	if (ynode_expect(m, YN_MAP, "log", d) < 0)
		return;
	ynode_check_keys(m, known, d);
	set_path(&c->log_database, ynode_get(m, "database"), "log.database",
	    c->dir, d);
	n = ynode_get(m, "durability");
	if (n != NULL) {
		if ((k = word_of(n, "strict", "batched")) >= 0)
			c->durability = k ? DUR_BATCHED : DUR_STRICT;
		else
			ynode_diag(n, d, DIAG_ERROR, "log.durability must be "
			    "strict or batched, not '%s'",
			    n->type == YN_SCALAR ? n->str : "?");
	}
	n = ynode_get(m, "sync");
	if (n) {
		if ((k = word_of(n, "normal", "full")) >= 0)
			c->log_sync_full = k;
		else
			ynode_diag(n, d, DIAG_ERROR, "log.sync must be normal "
			    "(a commit survives a crash of sovgate) or full (it "
			    "also survives a power cut: one fsync per commit)");
	}
	get_duration(m, "batch_interval", "log.", &c->batch_interval_ms, d);
	n = ynode_get(m, "batch_interval");
	if (n && c->batch_interval_ms <= 0)
		ynode_diag(n, d, DIAG_ERROR, "log.batch_interval must be more "
		    "than 0");
	n = ynode_get(m, "fingerprint_key_file");
	if (n != NULL && ynode_is_null(n)) {
		/* explicitly off: no fingerprints are stored */
		free(c->fingerprint_key_file);
		c->fingerprint_key_file = NULL;
	} else {
		set_path(&c->fingerprint_key_file, n,
		    "log.fingerprint_key_file", c->dir, d);
	}
}

static int
is_hex64(const char *s)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f') || (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return s[64] == '\0';
}

static void
load_clients(const struct ynode *seq, struct gw_config *c, struct diags *d)
{
	static const char *const known[] = { "name", "key_sha256",
		"cert_sha256", NULL };
	size_t i, j;

	if (ynode_is_null(seq))
		return;
	if (ynode_expect(seq, YN_SEQ, "clients", d) < 0)
		return;
	c->clients = xcalloc(seq->n ? seq->n : 1, sizeof(*c->clients));
	for (i = 0; i < seq->n; i++) {
		const struct ynode *m = seq->items[i];
		const struct ynode *nn, *kn, *cn;
		const char *name, *key, *cert = NULL;
		struct client_def *cd;

		if (ynode_expect(m, YN_MAP, "a client", d) < 0)
			continue;
		ynode_check_keys(m, known, d);
		nn = ynode_get(m, "name");
		kn = ynode_get(m, "key_sha256");
		cn = ynode_get(m, "cert_sha256");
		if (nn == NULL) {
			ynode_diag(m, d, DIAG_ERROR, "client without a name; "
			    "add name: ...");
			continue;
		}
		name = ynode_str(nn, "client name", d);
		if (name == NULL)
			continue;
		if (cn != NULL) {
			char *p, hex[65];
			size_t o = 0;

			cert = ynode_str(cn, "cert_sha256", d);
			if (cert == NULL)
				continue;
			/* Accept openssl's "AB:CD:..." fingerprint form too. */
			for (p = (char *)cert; *p && o < 64; p++)
				if (*p != ':')
					hex[o++] = (char)tolower((unsigned char)*p);
			hex[o] = '\0';
			if (*p != '\0' || !is_hex64(hex)) {
				ynode_diag(cn, d, DIAG_ERROR, "client '%s': "
				    "cert_sha256 must be the certificate's SHA-256 "
				    "fingerprint (openssl x509 -noout -fingerprint "
				    "-sha256)", name);
				continue;
			}
			hex_decode(hex, 64, c->clients[c->nclients].cert_sha256);
			c->clients[c->nclients].has_cert = 1;
		}
		if (kn == NULL && cn == NULL) {
			ynode_diag(m, d, DIAG_ERROR, "client '%s' has no "
			    "key_sha256; add the SHA-256 (64 hex digits) of its "
			    "key, e.g. printf %%s KEY | sha256sum (or cert_sha256 "
			    "with tls.client_ca)", name);
			continue;
		}
		if (kn == NULL) {
			/* certificate-only client: no bearer key matches */
			for (j = 0; j < c->nclients; j++)
				if (strcmp(c->clients[j].name, name) == 0)
					break;
			if (j < c->nclients) {
				ynode_diag(nn, d, DIAG_ERROR, "duplicate client "
				    "name '%s'; client names must be unique",
				    name);
				continue;
			}
			cd = &c->clients[c->nclients];
			cd->has_key = 0;
			cd->name = xstrdup(name);
			c->nclients++;
			continue;
		}
		key = ynode_str(kn, "key_sha256", d);
		if (key == NULL)
			continue;
		if (!is_hex64(key)) {
			/* never echo the value: it may be a raw key pasted
			 * by mistake */
			ynode_diag(kn, d, DIAG_ERROR, "client '%s': key_sha256 "
			    "must be 64 hexadecimal digits (the SHA-256 of the "
			    "key, not the key itself)", name);
			continue;
		}
		for (j = 0; j < c->nclients; j++)
			if (strcmp(c->clients[j].name, name) == 0)
				break;
		if (j < c->nclients) {
			ynode_diag(nn, d, DIAG_ERROR, "duplicate client name "
			    "'%s'; client names must be unique", name);
			continue;
		}
		cd = &c->clients[c->nclients];
		if (hex_decode(key, 64, cd->key_sha256) < 0)
			continue;
		cd->has_key = 1;
		for (j = 0; j < c->nclients; j++)
			if (c->clients[j].has_key &&
			    memcmp(c->clients[j].key_sha256, cd->key_sha256,
			    32) == 0)
				break;
		if (j < c->nclients) {
			ynode_diag(kn, d, DIAG_ERROR, "client '%s' has the same "
			    "key as client '%s'; every client needs its own "
			    "key", name, c->clients[j].name);
			continue;
		}
		cd->name = xstrdup(name);
		c->nclients++;
	}
}

void
config_free(struct gw_config *c)
{
	size_t i;

	if (c == NULL)
		return;
	free(c->path);
	free(c->dir);
	free(c->listen);
	free(c->admin_listen);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->tls_client_ca);
	free(c->policy_path);
	free(c->backends_path);
	free(c->log_database);
	free(c->fingerprint_key_file);
	free(c->shadow_policy_path);
	for (i = 0; i < c->nclients; i++) {
		free(c->clients[i].name);
		/* the hashes are not secrets, but there is no reason to
		 * leave them in freed memory either */
		memset(c->clients[i].key_sha256, 0, 32);
	}
	free(c->clients);
	free(c->user);
	free(c->log_file);
	free(c);
}

struct gw_config *
config_load(const char *path, struct diags *d)
{
	static const char *const known[] = { "listen", "tls", "admin_listen",
		"policy", "shadow_policy", "backends", "log", "clients",
		"limits", "workers", "cpu_affinity", "user", "log_file",
		NULL };
	static const char *const tls_known[] = { "cert", "key", "client_ca",
		NULL };
	struct gw_config *c;
	struct ydoc *doc;
	const struct ynode *root, *n;
	int k;
	size_t errs0 = d ? d->nerrors : 0;
	struct diags *own = NULL;

	if (d == NULL)
		d = own = diags_new();
	if (access(path, F_OK) != 0) {
		diags_add(d, DIAG_ERROR, path, 0, 0, "cannot read the gateway "
		    "config: %s; pass -c FILE or set SOVGATE_CONFIG",
		    strerror(errno));
		diags_free(own);
		return NULL;
	}
	doc = ydoc_load(path, d);
	if (doc == NULL) {
		diags_free(own);
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->path = absolute_path(path);
	c->dir = path_dirname(c->path);
	c->listen = xstrdup("127.0.0.1:8443");
	c->admin_listen = xstrdup("127.0.0.1:9464");
	c->policy_path = path_resolve(c->dir, "policy");
	c->backends_path = path_resolve(c->dir, "backends");
	c->log_database = xstrdup(LOCALSTATEDIR "/lib/sovgate/decisions.db");
	c->durability = DUR_STRICT;
	c->batch_interval_ms = 5;
	c->workers = 0;
	c->cpu_affinity = 1;
	limits_defaults(&c->limits);

	root = doc->root;
	if (root == NULL || ynode_is_null(root)) {
		diags_add(d, DIAG_ERROR, path, 1, 1, "the config file is empty; "
		    "see contrib/ for an example");
		goto done;
	}
	if (ynode_expect(root, YN_MAP, "the config file", d) < 0)
		goto done;
	ynode_check_keys(root, known, d);

	n = ynode_get(root, "listen");
	if (n != NULL) {
		set_str(&c->listen, n, "listen", d);
		if (n->type == YN_SCALAR && !listen_addr_valid(n->str))
			ynode_diag(n, d, DIAG_ERROR, "listen: '%s' is not "
			    "HOST:PORT (e.g. 127.0.0.1:8443 or [::1]:8443)",
			    n->str);
	}
	n = ynode_get(root, "admin_listen");
	if (n != NULL) {
		if (ynode_is_null(n) || (n->type == YN_SCALAR &&
		    (strcmp(n->str, "off") == 0 || (!n->plain && n->len == 0)))) {
			free(c->admin_listen);
			c->admin_listen = NULL;
		} else {
			set_str(&c->admin_listen, n, "admin_listen", d);
			if (n->type == YN_SCALAR && !listen_addr_valid(n->str))
				ynode_diag(n, d, DIAG_ERROR, "admin_listen: "
				    "'%s' is not HOST:PORT (or off)", n->str);
			else if (c->admin_listen && c->listen &&
			    strcmp(c->admin_listen, c->listen) == 0)
				ynode_diag(n, d, DIAG_ERROR, "admin_listen is "
				    "the data port (%s): the admin plane needs "
				    "its own address", c->listen);
		}
	}
	n = ynode_get(root, "tls");
	if (n != NULL && !ynode_is_null(n) &&
	    ynode_expect(n, YN_MAP, "tls", d) == 0) {
		ynode_check_keys(n, tls_known, d);
		set_path(&c->tls_cert, ynode_get(n, "cert"), "tls.cert",
		    c->dir, d);
		set_path(&c->tls_client_ca, ynode_get(n, "client_ca"),
		    "tls.client_ca", c->dir, d);
		set_path(&c->tls_key, ynode_get(n, "key"), "tls.key", c->dir,
		    d);
		if ((c->tls_cert == NULL) != (c->tls_key == NULL))
			ynode_diag(n, d, DIAG_ERROR, "tls needs both cert and "
			    "key");
		/* found now rather than when serve binds the listener */
		if (c->tls_cert && access(c->tls_cert, R_OK) != 0)
			ynode_diag(ynode_get(n, "cert"), d, DIAG_ERROR,
			    "tls.cert %s: %s", c->tls_cert, strerror(errno));
		if (c->tls_key && access(c->tls_key, R_OK) != 0)
			ynode_diag(ynode_get(n, "key"), d, DIAG_ERROR,
			    "tls.key %s: %s", c->tls_key, strerror(errno));
	}
	set_path(&c->policy_path, ynode_get(root, "policy"), "policy", c->dir,
	    d);
	set_path(&c->backends_path, ynode_get(root, "backends"), "backends",
	    c->dir, d);
	n = ynode_get(root, "shadow_policy");
	if (n != NULL && !ynode_is_null(n))
		set_path(&c->shadow_policy_path, n, "shadow_policy", c->dir, d);

	n = ynode_get(root, "log");
	if (n != NULL)
		load_log(n, c, d);
	if (c->fingerprint_key_file == NULL && !(n &&
	    ynode_key_of(n, "fingerprint_key_file"))) {
		/* Default: beside the database, so that fingerprints
		 * (SPEC §8) are on unless explicitly switched off. */
		char *dir = path_dirname(c->log_database);

		c->fingerprint_key_file = xasprintf("%s/fingerprint.key", dir);
		free(dir);
	}
	load_clients(ynode_get(root, "clients"), c, d);
	if (ynode_get(root, "clients") == NULL || c->nclients == 0)
		diags_add(d, DIAG_WARNING, path, root->line, root->col,
		    "no clients are configured: every request will be refused "
		    "with 401; add clients: [{name: ..., key_sha256: ...}]");
	n = ynode_get(root, "limits");
	if (n != NULL)
		load_limits(n, &c->limits, d);

	n = ynode_get(root, "workers");
	if (n != NULL) {
		long long v;

		if (n->type == YN_SCALAR && strcmp(n->str, "auto") == 0)
			c->workers = 0;
		else if (n->type == YN_SCALAR && n->plain &&
		    ynode_int(n, &v, NULL) == 0 && v >= 1 && v <= 1024)
			c->workers = (int)v;
		else
			ynode_diag(n, d, DIAG_ERROR, "workers must be auto or a "
			    "number from 1 to 1024");
	}
	n = ynode_get(root, "cpu_affinity");
	if (n != NULL) {
		if ((k = word_of(n, "off", "auto")) >= 0)
			c->cpu_affinity = k;
		else
			ynode_diag(n, d, DIAG_ERROR, "cpu_affinity must be auto "
			    "or off");
	}
	set_path(&c->log_file, ynode_get(root, "log_file"), "log_file",
	    c->dir, d);
	n = ynode_get(root, "user");
	if (n != NULL && !ynode_is_null(n))
		set_str(&c->user, n, "user", d);

done:
	ydoc_free(doc);
	if (d->nerrors > errs0) {
		config_free(c);
		c = NULL;
	}
	diags_free(own);
	return c;
}

const struct client_def *
config_find_client(const struct gw_config *c, const char *key, size_t keylen)
{
	unsigned char h[32];
	const struct client_def *found = NULL;
	size_t i;

	if (c == NULL || key == NULL)
		return NULL;
	/* Hash first: equal-length inputs to the comparison, and the raw
	 * key is never compared (or kept) at all. Every client is compared
	 * so that timing does not tell which one matched. */
	sha256_raw(key, keylen, h);
	for (i = 0; i < c->nclients; i++) {
		int eq = ct_equal(h, c->clients[i].key_sha256, 32) &&
		    c->clients[i].has_key;

		if (eq && found == NULL)
			found = &c->clients[i];
	}
	memset(h, 0, sizeof(h));
	return found;
}

const struct client_def *
config_find_client_by_cert(const struct gw_config *c,
    const unsigned char sha256[32])
{
	size_t i;

	for (i = 0; c && i < c->nclients; i++)
		if (c->clients[i].has_cert &&
		    ct_equal(c->clients[i].cert_sha256, sha256, 32))
			return &c->clients[i];
	return NULL;
}

const struct client_def *
config_client_by_name(const struct gw_config *c, const char *name)
{
	size_t i;

	if (c == NULL || name == NULL)
		return NULL;
	for (i = 0; i < c->nclients; i++)
		if (strcmp(c->clients[i].name, name) == 0)
			return &c->clients[i];
	return NULL;
}
