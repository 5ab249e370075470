/*
 * check_config.c - the YAML tree, the gateway config and backend
 * descriptors: every value validated with its position.
 *
 * Fixtures are written to a fresh temporary directory per test, so the
 * suite needs nothing from the source tree and runs under distcheck.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "config.h"
#include "diag.h"
#include "snapshot.h"
#include "util.h"
#include "yamltree.h"
#include "testutil.h"


/* Writes tmpdir/name (creating one level of subdirectory); returns the
 * path in a static buffer. */
static void
dump(const struct diags *d)
{
	diags_print(d, stderr);
}

/* ---- yamltree ---- */

static struct ydoc *
yparse(const char *text, struct diags *d)
{
	return ydoc_load_mem("t.yaml", text, strlen(text), d);
}

START_TEST(test_yaml_tree_positions)
{
	struct diags *d = diags_new();
	struct ydoc *doc = yparse("a: 1\nb:\n  - x\n  - 'y'\nc: {k: v}\n", d);
	const struct ynode *b, *c;
	long long v;

	ck_assert_ptr_nonnull(doc);
	ck_assert_int_eq(doc->root->type, YN_MAP);
	ck_assert_int_eq(ynode_int(ynode_get(doc->root, "a"), &v, d), 0);
	ck_assert_int_eq(v, 1);
	b = ynode_get(doc->root, "b");
	ck_assert_int_eq(b->type, YN_SEQ);
	ck_assert_uint_eq(b->n, 2);
	ck_assert_int_eq(b->items[1]->line, 4);
	ck_assert_int_eq(b->items[1]->col, 5);
	ck_assert(b->items[0]->plain);
	ck_assert(!b->items[1]->plain);
	c = ynode_get(doc->root, "c");
	ck_assert_str_eq(ynode_get(c, "k")->str, "v");
	ck_assert_int_eq(ynode_key_of(doc->root, "c")->line, 5);
	ck_assert_int_eq(ynode_key_of(doc->root, "c")->col, 1);
	ck_assert_ptr_null(ynode_get(doc->root, "zz"));
	ck_assert_uint_eq(d->n, 0);
	ydoc_free(doc);
	ydoc_free(NULL);
	diags_free(d);
}
END_TEST

START_TEST(test_yaml_rejects_aliases)
{
	struct diags *d = diags_new();
	const char *bomb =
	    "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
	    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
	    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n";

	ck_assert_ptr_null(yparse(bomb, d));
	ck_assert(has_diag(d, DIAG_ERROR, 1, "anchors"));
	diags_free(d);
	d = diags_new();
	ck_assert_ptr_null(yparse("a: *x\n", d));
	/* an alias to an undefined anchor is a libyaml error or ours;
	 * either way it is refused with a position */
	ck_assert_uint_ge(d->nerrors, 1);
	ck_assert_int_eq(d->v[0].line, 1);
	diags_free(d);
}
END_TEST

START_TEST(test_yaml_duplicate_keys)
{
	struct diags *d = diags_new();

	ck_assert_ptr_null(yparse("a: 1\nb: 2\na: 3\n", d));
	ck_assert(has_diag(d, DIAG_ERROR, 3, "duplicate key 'a'"));
	ck_assert(has_diag(d, DIAG_ERROR, 3, "line 1"));
	diags_free(d);
}
END_TEST

START_TEST(test_yaml_depth_and_size)
{
	struct diags *d = diags_new();
	size_t n = 10 * 1024 * 1024, i;
	char *deep = malloc(n + 1);

	/* 10 MB of nesting: refused by size, no crash, no hang */
	for (i = 0; i < n; i++)
		deep[i] = '[';
	deep[n] = '\0';
	ck_assert_ptr_null(ydoc_load_mem("deep.yaml", deep, n, d));
	ck_assert(has_diag(d, DIAG_ERROR, 0, "MiB"));
	diags_free(d);
	/* under the size bound, depth is what stops it */
	d = diags_new();
	deep[100000] = '\0';
	ck_assert_ptr_null(ydoc_load_mem("deep.yaml", deep, 100000, d));
	ck_assert(has_diag(d, DIAG_ERROR, 1, "nesting deeper than 64"));
	free(deep);
	diags_free(d);
}
END_TEST

START_TEST(test_yaml_syntax_errors)
{
	struct diags *d = diags_new();

	ck_assert_ptr_null(yparse("a:\n\tb: 1\n", d));
	ck_assert_uint_ge(d->nerrors, 1);
	ck_assert_int_eq(d->v[0].line, 2);
	ck_assert_str_eq(d->v[0].file, "t.yaml");
	ck_assert(strstr(d->v[0].msg, "tab") != NULL);
	diags_free(d);

	d = diags_new();
	ck_assert_ptr_null(yparse("a: [1, 2\nb: 3\n", d));
	ck_assert_uint_ge(d->nerrors, 1);
	ck_assert_int_gt(d->v[0].line, 0);
	ck_assert_int_gt(d->v[0].col, 0);
	diags_free(d);

	d = diags_new();
	ck_assert_ptr_null(yparse("a: 1\n---\nb: 2\n", d));
	ck_assert(has_diag(d, DIAG_ERROR, 2, "second"));
	diags_free(d);
}
END_TEST

START_TEST(test_yaml_check_keys)
{
	static const char *const known[] = { "listen", "backends", "policy",
		NULL };
	struct diags *d = diags_new();
	struct ydoc *doc = yparse("listen: x\nbakends: y\nzzzzzzzz: 1\n", d);

	ck_assert_ptr_nonnull(doc);
	ck_assert_int_eq(ynode_check_keys(doc->root, known, d), 2);
	ck_assert(has_diag(d, DIAG_ERROR, 2, "did you mean 'backends'"));
	ck_assert(has_diag(d, DIAG_ERROR, 3, "expected one of"));
	ck_assert_int_eq(d->v[0].col, 1);
	ydoc_free(doc);
	diags_free(d);
	ck_assert_uint_eq(edit_distance("kitten", "sitting"), 3);
}
END_TEST

START_TEST(test_yaml_scalars)
{
	struct diags *d = diags_new();
	struct ydoc *doc = yparse("t: true\nf: false\nq: 'true'\nn: 12x\n"
	    "e:\nz: ~\n", d);
	int b;
	long long v;

	ck_assert_ptr_nonnull(doc);
	ck_assert_int_eq(ynode_bool(ynode_get(doc->root, "t"), &b, d), 0);
	ck_assert_int_eq(b, 1);
	ck_assert_int_eq(ynode_bool(ynode_get(doc->root, "f"), &b, d), 0);
	ck_assert_int_eq(b, 0);
	ck_assert_int_eq(ynode_bool(ynode_get(doc->root, "q"), &b, d), -1);
	ck_assert_int_eq(ynode_int(ynode_get(doc->root, "n"), &v, d), -1);
	ck_assert(has_diag(d, DIAG_ERROR, 4, "whole number"));
	ck_assert(ynode_is_null(ynode_get(doc->root, "e")));
	ck_assert(ynode_is_null(ynode_get(doc->root, "z")));
	ydoc_free(doc);
	diags_free(d);
}
END_TEST

/* ---- config ---- */

static const char *full_config =
    "listen: 0.0.0.0:8443\n"
    "admin_listen: off\n"
    "tls: {cert: tls/gw.crt, key: /dev/null}\n"
    "policy: policy/\n"
    "backends: ./backends\n"
    "shadow_policy: candidate.yaml\n"
    "log:\n"
    "  database: db/decisions.db\n"
    "  durability: batched\n"
    "  batch_interval: 20ms\n"
    "  fingerprint_key_file: fp.key\n"
    "clients:\n"
    "  - {name: claims-app, key_sha256: "
    "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}\n"
    "  - name: hr-portal\n"
    "    key_sha256: "
    "60303AE22B998861BCE3B28F33EEC1BE758A213C86C93C076DBE9F558C11C752\n"
    "limits: {max_body: 1MiB, header_timeout: 3s,\n"
    "         upstream_first_byte_timeout: 2m, max_headers: 50}\n"
    "workers: 4\n"
    "cpu_affinity: off\n"
    "user: sovgate\n";

START_TEST(test_config_full)
{
	struct diags *d = diags_new();
	const char *path;
	struct gw_config *c;
	char buf[600];

	tmp_make("cfg");
	put("tls/gw.crt", "not checked beyond being readable\n");
	path = put("sovgate.yaml", full_config);
	c = config_load(path, d);
	if (c == NULL)
		dump(d);
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(d->nerrors, 0);
	ck_assert_str_eq(c->listen, "0.0.0.0:8443");
	ck_assert_ptr_null(c->admin_listen);
	snprintf(buf, sizeof(buf), "%s/tls/gw.crt", c->dir);
	ck_assert_str_eq(c->tls_cert, buf);
	ck_assert_str_eq(c->tls_key, "/dev/null");
	/* "policy/" resolves without its trailing slash */
	snprintf(buf, sizeof(buf), "%s/policy", c->dir);
	ck_assert_str_eq(c->policy_path, buf);
	snprintf(buf, sizeof(buf), "%s/backends", c->dir);
	ck_assert_str_eq(c->backends_path, buf);
	snprintf(buf, sizeof(buf), "%s/candidate.yaml", c->dir);
	ck_assert_str_eq(c->shadow_policy_path, buf);
	snprintf(buf, sizeof(buf), "%s/db/decisions.db", c->dir);
	ck_assert_str_eq(c->log_database, buf);
	snprintf(buf, sizeof(buf), "%s/fp.key", c->dir);
	ck_assert_str_eq(c->fingerprint_key_file, buf);
	ck_assert_int_eq(c->durability, DUR_BATCHED);
	ck_assert_int_eq(c->batch_interval_ms, 20);
	ck_assert_uint_eq(c->nclients, 2);
	ck_assert_uint_eq(c->limits.max_body, 1024 * 1024);
	ck_assert_int_eq(c->limits.header_timeout_ms, 3000);
	ck_assert_int_eq(c->limits.upstream_first_byte_timeout_ms, 120000);
	ck_assert_int_eq(c->limits.max_headers, 50);
	/* untouched limits keep their defaults */
	ck_assert_int_eq(c->limits.stream_idle_timeout_ms, 300000);
	ck_assert_int_eq(c->workers, 4);
	ck_assert_int_eq(c->cpu_affinity, 0);
	ck_assert_str_eq(c->user, "sovgate");
	ck_assert(c->path[0] == '/');

	/* sha256("test") and sha256("test2"); upper-case hex accepted */
	ck_assert_ptr_nonnull(config_find_client(c, "test", 4));
	ck_assert_str_eq(config_find_client(c, "test", 4)->name,
	    "claims-app");
	ck_assert_str_eq(config_find_client(c, "test2", 5)->name,
	    "hr-portal");
	ck_assert_ptr_null(config_find_client(c, "test3", 5));
	ck_assert_ptr_null(config_find_client(c, "tes", 3));
	ck_assert_ptr_null(config_find_client(c, "", 0));
	ck_assert_str_eq(config_client_by_name(c, "hr-portal")->name,
	    "hr-portal");
	ck_assert_ptr_null(config_client_by_name(c, "nobody"));
	config_free(c);
	config_free(NULL);
	diags_free(d);
	tmp_remove();
}
END_TEST

START_TEST(test_config_defaults)
{
	struct diags *d = diags_new();
	struct gw_config *c;
	char buf[600];

	tmp_make("cfg");
	c = config_load(put("gw.yaml", "clients: []\n"), d);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(c->listen, "127.0.0.1:8443");
	ck_assert_str_eq(c->admin_listen, "127.0.0.1:9464");
	snprintf(buf, sizeof(buf), "%s/policy", c->dir);
	ck_assert_str_eq(c->policy_path, buf);
	ck_assert_int_eq(c->durability, DUR_STRICT);
	ck_assert_int_eq(c->batch_interval_ms, 5);
	ck_assert_uint_eq(c->limits.max_body, 8 * 1024 * 1024);
	ck_assert_int_eq(c->limits.header_timeout_ms, 10000);
	ck_assert_int_eq(c->workers, 0);
	ck_assert_int_eq(c->cpu_affinity, 1);
	ck_assert_ptr_null(c->user);
	ck_assert_ptr_null(c->shadow_policy_path);
	ck_assert_ptr_nonnull(c->fingerprint_key_file);
	ck_assert(strstr(c->fingerprint_key_file, "fingerprint.key"));
	/* no clients: allowed, but warned about */
	ck_assert(has_diag(d, DIAG_WARNING, 0, "no clients"));
	ck_assert_uint_eq(d->nerrors, 0);
	config_free(c);
	diags_free(d);

	d = diags_new();
	c = config_load(put("gw2.yaml", "workers: auto\n"
	    "cpu_affinity: auto\n"
	    "log: {fingerprint_key_file: null}\n"), d);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(c->workers, 0);
	ck_assert_int_eq(c->cpu_affinity, 1);
	ck_assert_ptr_null(c->fingerprint_key_file);
	config_free(c);
	diags_free(d);
	tmp_remove();
}
END_TEST

START_TEST(test_config_cert_clients_and_sync)
{
	struct diags *d = diags_new();
	struct gw_config *c;
	unsigned char fp[32];
	const char *key = "claims-key";

	tmp_make("cfg");
	c = config_load(put("gw.yaml", "clients:\n"
	    "  - {name: bearer, key_sha256: "
	    "\"4d3c49e75a6b4d66f7a1a2bfd9cd7c6b3fe4d7b9a7c1c1e0f7b0b1d4f7f8e9a0\"}\n"
	    "  - {name: batch, cert_sha256: \"FA:55:1E:80:B7:3D:8A:27:43:32:0E:"
	    "3A:FD:F3:59:64:15:CD:47:7C:15:38:73:3E:E8:98:F1:7A:5D:B7:99:CE\"}\n"
	    "log: {sync: full}\n"), d);
	if (c == NULL)
		dump(d);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(c->log_sync_full, 1);
	ck_assert_uint_eq(c->nclients, 2);
	ck_assert(c->clients[0].has_key && !c->clients[0].has_cert);
	ck_assert(!c->clients[1].has_key && c->clients[1].has_cert);
	/* a certificate-only client can never match a bearer key, not even
	 * one whose hash is all zeroes */
	ck_assert_ptr_null(config_find_client(c, key, strlen(key)));
	ck_assert_ptr_null(config_find_client(c, "", 0));
	hex_decode("fa551e80b73d8a2743320e3afdf3596415cd477c1538733ee898f17a5db799ce",
	    64, fp);
	ck_assert_ptr_nonnull(config_find_client_by_cert(c, fp));
	ck_assert_str_eq(config_find_client_by_cert(c, fp)->name, "batch");
	fp[0] ^= 1;
	ck_assert_ptr_null(config_find_client_by_cert(c, fp));
	config_free(c);
	diags_free(d);

	d = diags_new();
	c = config_load(put("gw2.yaml", "clients:\n"
	    "  - {name: x, cert_sha256: \"nothex\"}\n"
	    "log: {sync: sometimes}\n"), d);
	ck_assert_ptr_null(c);
	ck_assert(has_diag(d, DIAG_ERROR, 2, "cert_sha256 must be"));
	ck_assert(has_diag(d, DIAG_ERROR, 3, "log.sync must be"));
	diags_free(d);
	tmp_remove();
}
END_TEST

START_TEST(test_config_errors)
{
	struct diags *d = diags_new();
	struct gw_config *c;

	tmp_make("cfg");
	c = config_load(put("bad.yaml",
	    "listen: localhost\n"				/* 1 */
	    "polcy: p/\n"					/* 2 */
	    "log: {durability: sometimes, batch_interval: soon}\n"	/* 3 */
	    "clients:\n"					/* 4 */
	    "  - {name: a, key_sha256: sk-live-12345}\n"	/* 5 */
	    "  - {name: a, key_sha256: "			/* 6 */
	    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n"
	    "  - {name: b, key_sha256: "			/* 7 */
	    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n"
	    "limits: {max_body: lots, header_timeout: 10, max_json_depth: 0}\n"
	    "workers: many\n"					/* 9 */
	    "tls: {cert: nothere.crt, key: nothere.key}\n"	/* 10 */
	    "cpu_affinity: yes\n"				/* 11 */
	    ), d);
	ck_assert_ptr_null(c);
	ck_assert(has_diag(d, DIAG_ERROR, 1, "HOST:PORT"));
	ck_assert(has_diag(d, DIAG_ERROR, 2, "did you mean 'policy'"));
	ck_assert(has_diag(d, DIAG_ERROR, 3, "strict or batched"));
	ck_assert(has_diag(d, DIAG_ERROR, 3, "not a duration"));
	ck_assert(has_diag(d, DIAG_ERROR, 5, "64 hexadecimal"));
	ck_assert(has_diag(d, DIAG_ERROR, 7, "same key as client 'a'"));
	ck_assert(has_diag(d, DIAG_ERROR, 8, "not a size"));
	ck_assert(has_diag(d, DIAG_ERROR, 8, "not a duration"));
	ck_assert(has_diag(d, DIAG_ERROR, 8, "max_json_depth"));
	ck_assert(has_diag(d, DIAG_ERROR, 9, "workers"));
	ck_assert(has_diag(d, DIAG_ERROR, 10, "nothere.crt"));
	ck_assert(has_diag(d, DIAG_ERROR, 11, "cpu_affinity must be auto or off"));
	/* a raw key pasted in place of its hash is never echoed */
	{
		size_t i;

		for (i = 0; i < d->n; i++)
			ck_assert(strstr(d->v[i].msg, "sk-live") == NULL);
	}
	diags_free(d);

	d = diags_new();
	ck_assert_ptr_null(config_load(put("dup.yaml",
	    "clients:\n  - {name: a, key_sha256: "
	    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}\n"
	    "  - {name: a, key_sha256: "
	    "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752}\n"),
	    d));
	ck_assert(has_diag(d, DIAG_ERROR, 3, "duplicate client name"));
	diags_free(d);

	d = diags_new();
	ck_assert_ptr_null(config_load("/nonexistent/sovgate.yaml", d));
	ck_assert(has_diag(d, DIAG_ERROR, 0, "cannot read the gateway config"));
	ck_assert(has_diag(d, DIAG_ERROR, 0, "SOVGATE_CONFIG"));
	diags_free(d);
	tmp_remove();
}
END_TEST

/* ---- backends ---- */

static const char *bedrock_paris =
    "name: bedrock-paris\n"
    "kind: bedrock\n"
    "endpoint: https://bedrock-runtime.eu-west-3.amazonaws.com\n"
    "region: eu-west-3\n"
    "operator: Amazon Web Services EMEA SARL\n"
    "operator_country: LU\n"
    "parent_country: US\n"
    "data_countries: [FR]\n"
    "hosting: vendor\n"
    "key_custody: provider\n"
    "retention: none\n"
    "auth: {type: aws-sigv4, access_key_env: T_AWS_AK,\n"
    "       secret_key_env: T_AWS_SK, session_token_env: T_AWS_ST}\n"
    "models:\n"
    "  mistral-large-latest: mistral.mistral-large-2407-v1:0\n";

START_TEST(test_backend_spec_example)
{
	struct diags *d = diags_new();
	struct backend_set *s;
	const struct backend *b;
	char *facts;

	tmp_make("cfg");
	setenv("T_AWS_AK", "AKIDEXAMPLE", 1);
	setenv("T_AWS_SK", "secret-example", 1);
	unsetenv("T_AWS_ST");
	s = backends_load(put("bedrock-paris.yaml", bedrock_paris), d);
	if (s == NULL)
		dump(d);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(d->n, 0);
	ck_assert_uint_eq(s->n, 1);
	b = backends_find(s, "bedrock-paris");
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(b->kind, BK_BEDROCK);
	ck_assert_str_eq(backend_kind_name(b->kind), "bedrock");
	ck_assert_int_eq(b->use_tls, 1);
	ck_assert_str_eq(b->host, "bedrock-runtime.eu-west-3.amazonaws.com");
	ck_assert_int_eq(b->port, 443);
	ck_assert_str_eq(b->base_path, "");
	ck_assert_str_eq(b->operator_country, "LU");
	ck_assert_str_eq(b->parent_country, "US");
	ck_assert_uint_eq(b->ndata, 1);
	ck_assert_str_eq(b->data_countries[0], "FR");
	ck_assert_int_eq(b->hosting, HOST_VENDOR);
	ck_assert_int_eq(b->key_custody, KEYS_PROVIDER);
	ck_assert_int_eq(b->retention_ms, 0);
	ck_assert_int_eq(b->auth.type, AUTH_SIGV4);
	ck_assert_str_eq(b->auth.access_key, "AKIDEXAMPLE");
	ck_assert_str_eq(b->auth.secret_key, "secret-example");
	ck_assert_ptr_null(b->auth.session_token);
	ck_assert_int_eq(b->auth.missing, 0);
	ck_assert_int_eq(b->cloud_act, 1);
	ck_assert_int_eq(b->njurisdictions, 2);
	ck_assert_str_eq(b->jurisdictions[0], "LU");
	ck_assert_str_eq(b->jurisdictions[1], "US");
	ck_assert_str_eq(backend_model_id(b, "mistral-large-latest"),
	    "mistral.mistral-large-2407-v1:0");
	ck_assert_ptr_null(backend_model_id(b, "gpt-4o"));
	ck_assert_int_eq(b->line, 1);
	facts = backend_facts_json(b);
	ck_assert(strstr(facts, "\"cloud_act\":true"));
	ck_assert(strstr(facts, "\"jurisdictions\":[\"LU\",\"US\"]"));
	ck_assert(strstr(facts, "\"data_countries\":[\"FR\"]"));
	ck_assert(strstr(facts, "\"retention\":\"none\""));
	ck_assert(strstr(facts, "\"hosting\":\"vendor\""));
	/* never a secret in the facts */
	ck_assert(strstr(facts, "AKIDEXAMPLE") == NULL);
	ck_assert(strstr(facts, "secret-example") == NULL);
	free(facts);
	backends_free(s);
	backends_free(NULL);
	diags_free(d);
	tmp_remove();
}
END_TEST

START_TEST(test_backend_defaults_and_env)
{
	struct diags *d = diags_new();
	struct backend_set *s;
	const struct backend *b;
	size_t i;

	tmp_make("cfg");
	unsetenv("T_MISTRAL_KEY_UNSET");
	put("b/20-mistral.yaml",
	    "name: mistral-eu\nkind: mistral\noperator: Mistral AI SAS\n"
	    "operator_country: FR\ndata_countries: FR\nhosting: vendor\n"
	    "retention: 30d\n"
	    "auth: {type: bearer, key_env: T_MISTRAL_KEY_UNSET}\n"
	    "models: {mistral-large-latest: mistral-large-latest}\n");
	put("b/10-onprem.yml",
	    "name: onprem-vllm\nkind: openai\n"
	    "endpoint: http://127.0.0.1:8000/v1/\n"
	    "operator: Example Hospital\noperator_country: FR\n"
	    "data_countries: [FR]\nhosting: self\n"
	    "models: [mistral-small]\n");
	put("b/README.txt", "not a descriptor\n");
	put("b/30-vertex.yaml",
	    "name: vertex-nl\nkind: vertex\nregion: europe-west4\n"
	    "project: p-1\noperator: Google Cloud EMEA Ltd\n"
	    "operator_country: IE\nparent_country: US\n"
	    "data_countries: [NL]\nhosting: vendor\nretention: 1d\n"
	    "auth: {type: google-service-account, credentials_file: sa.json}\n"
	    "models: {m: mistral-large-2411}\n");
	put("b/sa.json", "{}\n");
	put("b/40-azure.yaml",
	    "name: azure-sweden\nkind: azure\n"
	    "endpoint: https://x.services.ai.azure.com:8443/models\n"
	    "operator: Microsoft Ireland Operations Ltd\n"
	    "operator_country: IE\nparent_country: US\n"
	    "data_countries: [SE]\nhosting: vendor\nretention: 30d\n"
	    "auth: {type: api-key, key_env: T_MISTRAL_KEY_UNSET}\n"
	    "tls: {server_name: x.example}\n"
	    "models: {m: m}\n");
	{
		char dir[300];

		snprintf(dir, sizeof(dir), "%s/b", tmpdir);
		s = backends_load(dir, d);
	}
	if (s == NULL)
		dump(d);
	ck_assert_ptr_nonnull(s);
	ck_assert_uint_eq(s->n, 4);
	/* sorted by file name, index set */
	ck_assert_str_eq(s->v[0]->name, "onprem-vllm");
	ck_assert_str_eq(s->v[1]->name, "mistral-eu");
	ck_assert_str_eq(s->v[2]->name, "vertex-nl");
	ck_assert_str_eq(s->v[3]->name, "azure-sweden");
	for (i = 0; i < s->n; i++)
		ck_assert_int_eq(s->v[i]->index, (int)i);

	b = s->v[0];
	ck_assert_int_eq(b->use_tls, 0);
	ck_assert_int_eq(b->port, 8000);
	ck_assert_str_eq(b->base_path, "/v1");
	ck_assert_int_eq(b->auth.type, AUTH_NONE);
	ck_assert_int_eq(b->key_custody, KEYS_CUSTOMER);
	ck_assert_int_eq(b->cloud_act, 0);
	ck_assert_int_eq(b->njurisdictions, 1);
	ck_assert_str_eq(b->parent_country, "FR");
	ck_assert_str_eq(backend_model_id(b, "mistral-small"), "mistral-small");

	b = s->v[1];
	ck_assert_str_eq(b->endpoint, "https://api.mistral.ai");
	ck_assert_str_eq(b->host, "api.mistral.ai");
	ck_assert_int_eq(b->retention_ms, 30LL * 86400000);
	ck_assert_int_eq(b->key_custody, KEYS_PROVIDER);
	ck_assert_int_eq(b->auth.missing, 1);
	ck_assert_ptr_null(b->auth.key);
	ck_assert(has_diag(d, DIAG_WARNING, 8, "T_MISTRAL_KEY_UNSET"));

	b = s->v[2];
	ck_assert_str_eq(b->endpoint,
	    "https://europe-west4-aiplatform.googleapis.com");
	ck_assert_int_eq(b->auth.missing, 0);
	ck_assert(strstr(b->auth.credentials_file, "/b/sa.json"));

	b = s->v[3];
	ck_assert_int_eq(b->port, 8443);
	ck_assert_str_eq(b->base_path, "/models");
	ck_assert_str_eq(b->api_version, "2024-05-01-preview");
	ck_assert_str_eq(b->tls.server_name, "x.example");
	ck_assert(strstr(b->pool_key, "x.example"));
	ck_assert_uint_eq(d->nerrors, 0);
	backends_free(s);
	diags_free(d);
	tmp_remove();
}
END_TEST

START_TEST(test_backend_errors)
{
	struct diags *d = diags_new();
	size_t i;

	tmp_make("cfg");
	ck_assert_ptr_null(backends_load(put("x.yaml",
	    "name: bad one\n"					/* 1 */
	    "kind: mistrall\n"					/* 2 */
	    "operator_country: UK\n"				/* 3 */
	    "parent_country: fr\n"				/* 4 */
	    "data_countries: [FR, XX]\n"			/* 5 */
	    "hosting: cloud\n"					/* 6 */
	    "retention: forever\n"				/* 7 */
	    "auth: {type: bearer, key_env: 'sk-abc123 secret'}\n"	/* 8 */
	    "modles: {}\n"					/* 9 */
	    ), d));
	ck_assert(has_diag(d, DIAG_ERROR, 1, "backend name"));
	ck_assert(has_diag(d, DIAG_ERROR, 2, "did you mean 'mistral'"));
	ck_assert(has_diag(d, DIAG_ERROR, 3, "'GB'"));
	ck_assert(has_diag(d, DIAG_ERROR, 4, "capitals"));
	ck_assert(has_diag(d, DIAG_ERROR, 5, "'XX'"));
	ck_assert(has_diag(d, DIAG_ERROR, 6, "did you mean") ||
	    has_diag(d, DIAG_ERROR, 6, "self, vendor"));
	ck_assert(has_diag(d, DIAG_ERROR, 7, "retention"));
	ck_assert(has_diag(d, DIAG_ERROR, 8, "environment variable"));
	ck_assert(has_diag(d, DIAG_ERROR, 9, "did you mean 'models'"));
	ck_assert(has_diag(d, DIAG_ERROR, 1, "operator"));
	for (i = 0; i < d->n; i++)
		ck_assert(strstr(d->v[i].msg, "sk-abc123") == NULL);
	diags_free(d);

	d = diags_new();
	ck_assert_ptr_null(backends_load(put("y.yaml",
	    "- {name: a, kind: openai, operator: O, operator_country: FR,\n"
	    "   data_countries: [FR], hosting: self}\n"
	    "- {name: b, kind: bedrock, operator: O, operator_country: FR,\n"
	    "   data_countries: [FR], hosting: vendor, retention: none,\n"
	    "   auth: {type: bearer, key_env: K}}\n"
	    "- {name: c, kind: openai, endpoint: 'ftp://x', operator: O,\n"
	    "   operator_country: FR, data_countries: [FR], hosting: self}\n"
	    "- {name: c, kind: openai, endpoint: 'https://u:p@x/', operator: O,\n"
	    "   operator_country: FR, data_countries: [FR], hosting: self}\n"
	    ), d));
	ck_assert(has_diag(d, DIAG_ERROR, 1, "kind openai needs endpoint"));
	ck_assert(has_diag(d, DIAG_ERROR, 3, "kind bedrock needs region"));
	ck_assert(has_diag(d, DIAG_ERROR, 5, "aws-sigv4"));
	ck_assert(has_diag(d, DIAG_ERROR, 0, "https://"));
	ck_assert(has_diag(d, DIAG_ERROR, 0, "user:password"));
	diags_free(d);

	d = diags_new();
	put("dup/a.yaml", "name: same\nkind: openai\nendpoint: http://h:1\n"
	    "operator: O\noperator_country: FR\ndata_countries: [FR]\n"
	    "hosting: self\nmodels: {m: m}\n");
	put("dup/b.yaml", "name: same\nkind: openai\nendpoint: http://h:2\n"
	    "operator: O\noperator_country: FR\ndata_countries: [FR]\n"
	    "hosting: self\nmodels: {m: m}\n");
	{
		char dir[300];

		snprintf(dir, sizeof(dir), "%s/dup", tmpdir);
		ck_assert_ptr_null(backends_load(dir, d));
		ck_assert(has_diag(d, DIAG_ERROR, 1, "duplicate backend name"));
		diags_free(d);
		d = diags_new();
		snprintf(dir, sizeof(dir), "%s/empty", tmpdir);
		mkdir(dir, 0700);
		ck_assert_ptr_null(backends_load(dir, d));
		ck_assert(has_diag(d, DIAG_ERROR, 0, "no *.yaml"));
	}
	diags_free(d);
	tmp_remove();
}
END_TEST

START_TEST(test_regions)
{
	ck_assert(region_contains("EU", "FR"));
	ck_assert(region_contains("EU", "IE"));
	ck_assert(region_contains("EU", "SE"));
	ck_assert(region_contains("EU", "GR"));
	ck_assert(!region_contains("EU", "NO"));
	ck_assert(!region_contains("EU", "GB"));
	ck_assert(!region_contains("EU", "US"));
	ck_assert(!region_contains("EU", "CH"));
	ck_assert(region_contains("EEA", "NO"));
	ck_assert(region_contains("EEA", "IS"));
	ck_assert(region_contains("EEA", "LI"));
	ck_assert(region_contains("EEA", "DE"));
	ck_assert(!region_contains("EEA", "CH"));
	ck_assert(!region_contains("EEA", "GB"));
	ck_assert(region_contains("FR", "FR"));
	ck_assert(!region_contains("FR", "DE"));
	ck_assert(!region_contains("EU", ""));
	ck_assert(!region_contains("EU", "F"));
	ck_assert(region_name_valid("EU"));
	ck_assert(region_name_valid("EEA"));
	ck_assert(region_name_valid("CH"));
	ck_assert(!region_name_valid("Europe"));
	ck_assert(!region_name_valid("UK"));
	ck_assert(country_code_valid("US"));
	ck_assert(!country_code_valid("us"));
}
END_TEST

START_TEST(test_endpoint_parse)
{
	int tls, port;
	char *host, *base;
	char err[160];

	ck_assert_int_eq(endpoint_parse("https://[::1]:9443/a/b/", &tls, &host,
	    &port, &base, err, sizeof(err)), 0);
	ck_assert_int_eq(tls, 1);
	ck_assert_str_eq(host, "::1");
	ck_assert_int_eq(port, 9443);
	ck_assert_str_eq(base, "/a/b");
	free(host);
	free(base);
	ck_assert_int_eq(endpoint_parse("http://h", &tls, &host, &port, &base,
	    err, sizeof(err)), 0);
	ck_assert_int_eq(port, 80);
	ck_assert_str_eq(base, "");
	free(host);
	free(base);
	ck_assert_int_eq(endpoint_parse("https://h:0/", &tls, &host, &port,
	    &base, err, sizeof(err)), -1);
	ck_assert_int_eq(endpoint_parse("https://h/?q=1", &tls, &host, &port,
	    &base, err, sizeof(err)), -1);
	ck_assert_int_eq(endpoint_parse("https://:80/", &tls, &host, &port,
	    &base, err, sizeof(err)), -1);
	ck_assert_int_eq(endpoint_parse("h:80", &tls, &host, &port, &base,
	    err, sizeof(err)), -1);
}
END_TEST


/* ---- snapshots ---- */

static void
put_snapshot_fixture(const char *extra_config)
{
	char cfg[1024];

	put("backends/a.yaml", "name: local\nkind: openai\n"
	    "endpoint: http://127.0.0.1:9/v1\noperator: Us\n"
	    "operator_country: FR\ndata_countries: [FR]\nhosting: self\n"
	    "models: {m-two: x, m-one: y}\n");
	put("backends/b.yaml", "name: other\nkind: openai\n"
	    "endpoint: http://127.0.0.1:10\noperator: Us\n"
	    "operator_country: FR\ndata_countries: [FR]\nhosting: self\n"
	    "models: [m-one, m-three]\n");
	put("policy/p.yaml", "name: snap\nlevels: [low, high]\n"
	    "classify:\n  findings: {iban: high}\n"
	    "  custom: [{name: x.y, words: [Zebra], level: high}]\n"
	    "routes:\n  low: {prefer: [local, other]}\n"
	    "  high: {prefer: [local]}\n");
	snprintf(cfg, sizeof(cfg), "log: {database: db/d.db}\n%s",
	    extra_config);
	put("gw.yaml", cfg);
}

START_TEST(test_snapshot_load)
{
	struct diags *d = diags_new();
	struct snapshot *s, *c;
	struct stat st;
	char key[512];
	unsigned char k2[32];

	tmp_make("cfg");
	put_snapshot_fixture("log: {database: db/d.db, fingerprint_key_file: "
	    "fp.key}\n");
	/* the fixture's config has log twice: a duplicate key, refused */
	ck_assert_ptr_null(snapshot_load(sub_path("gw.yaml"), 0, d));
	ck_assert(has_diag(d, DIAG_ERROR, 2, "duplicate key 'log'"));
	diags_free(d);

	d = diags_new();
	put("gw.yaml", "log: {database: db/d.db, fingerprint_key_file: fp.key}\n"
	    "clients: [{name: c, key_sha256: "
	    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}]\n");
	s = snapshot_load(sub_path("gw.yaml"), 1, d);
	if (s == NULL)
		diags_print(d, stderr);
	ck_assert_ptr_nonnull(s);
	ck_assert_int_eq(s->refcnt, 1);
	ck_assert_uint_eq(s->backends->n, 2);
	ck_assert_str_eq(s->policy->name, "snap");
	ck_assert_ptr_nonnull(s->clf);
	ck_assert_str_eq(s->models_json, "{\"object\":\"list\",\"data\":["
	    "{\"id\":\"m-one\",\"object\":\"model\",\"owned_by\":\"sovgate\"},"
	    "{\"id\":\"m-three\",\"object\":\"model\",\"owned_by\":\"sovgate\"},"
	    "{\"id\":\"m-two\",\"object\":\"model\",\"owned_by\":\"sovgate\"}]}");
	/* the key was created, 0600, and is what the snapshot holds */
	ck_assert(s->has_fp_key);
	snprintf(key, sizeof(key), "%s/fp.key", tmpdir);
	ck_assert_int_eq(stat(key, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(st.st_size, 32);
	ck_assert_int_eq(fpkey_load(key, 0, k2, d), 0);
	ck_assert_int_eq(memcmp(k2, s->fp_key, 32), 0);

	/* current / install / refcounts */
	ck_assert_ptr_null(snapshot_current());
	snapshot_install(snapshot_ref(s));
	ck_assert_int_eq(s->refcnt, 2);
	c = snapshot_current();
	ck_assert_ptr_eq(c, s);
	ck_assert_int_eq(s->refcnt, 3);
	snapshot_unref(c);
	snapshot_unref(s);
	ck_assert_int_eq(s->refcnt, 1);
	/* a second load reuses the key: fingerprints stay comparable */
	c = snapshot_load(sub_path("gw.yaml"), 1, d);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(memcmp(c->fp_key, k2, 32), 0);
	ck_assert_uint_gt(c->generation, s->generation);
	snapshot_install(c);	/* releases s */
	snapshot_install(NULL);
	snapshot_unref(NULL);
	diags_free(d);
	tmp_remove();
}
END_TEST

START_TEST(test_snapshot_key_checks)
{
	struct diags *d = diags_new();
	char key[512];
	unsigned char k[32], k2[32];
	FILE *f;

	tmp_make("cfg");
	snprintf(key, sizeof(key), "%s/k", tmpdir);
	f = fopen(key, "w");
	fputs("0123456789abcdef0123456789abcdef0123456789abcdef\n", f);
	fclose(f);
	chmod(key, 0644);
	ck_assert_int_eq(fpkey_load(key, 1, k, d), -1);
	ck_assert(has_diag(d, DIAG_ERROR, 0, "chmod 600"));
	chmod(key, 0600);
	ck_assert_int_eq(fpkey_load(key, 1, k, d), 0);
	/* longer than 32 bytes: condensed with SHA-256 */
	sha256_raw("0123456789abcdef0123456789abcdef0123456789abcdef\n", 49, k2);
	ck_assert_int_eq(memcmp(k, k2, 32), 0);
	f = fopen(key, "w");
	fputs("short", f);
	fclose(f);
	ck_assert_int_eq(fpkey_load(key, 1, k, d), -1);
	ck_assert(has_diag(d, DIAG_ERROR, 0, "at least 32"));
	snprintf(key, sizeof(key), "%s/none/k", tmpdir);
	ck_assert_int_eq(fpkey_load(key, 1, k, d), -1);
	ck_assert(has_diag(d, DIAG_ERROR, 0, "cannot create"));
	diags_free(d);

	/* a broken policy rejects the whole snapshot */
	d = diags_new();
	put_snapshot_fixture("");
	put("policy/p.yaml", "name: snap\nlevels: [low]\n"
	    "routes: {low: {prefer: [nobody]}}\n");
	ck_assert_ptr_null(snapshot_load(sub_path("gw.yaml"), 0, d));
	ck_assert(has_diag(d, DIAG_ERROR, 3, "unknown backend 'nobody'"));
	diags_free(d);
	tmp_remove();
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("config");
	TCase *ty = tcase_create("yamltree");
	TCase *tc = tcase_create("config");
	TCase *tb = tcase_create("backends");

	tcase_add_test(ty, test_yaml_tree_positions);
	tcase_add_test(ty, test_yaml_rejects_aliases);
	tcase_add_test(ty, test_yaml_duplicate_keys);
	tcase_add_test(ty, test_yaml_depth_and_size);
	tcase_add_test(ty, test_yaml_syntax_errors);
	tcase_add_test(ty, test_yaml_check_keys);
	tcase_add_test(ty, test_yaml_scalars);
	tcase_set_timeout(ty, 30);
	tcase_add_test(tc, test_config_full);
	tcase_add_test(tc, test_config_defaults);
	tcase_add_test(tc, test_config_cert_clients_and_sync);
	tcase_add_test(tc, test_config_errors);
	tcase_add_test(tb, test_backend_spec_example);
	tcase_add_test(tb, test_backend_defaults_and_env);
	tcase_add_test(tb, test_backend_errors);
	tcase_add_test(tb, test_regions);
	tcase_add_test(tb, test_endpoint_parse);
	tcase_add_test(tb, test_snapshot_load);
	tcase_add_test(tb, test_snapshot_key_checks);
	suite_add_tcase(s, ty);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, tb);
	return run_suite(s);
}
