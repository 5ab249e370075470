/*
 * cli.c - see cli.h: the officer's and the developer's commands.
 *
 * Every command loads what it needs the same way serve does (config ->
 * backends -> policy -> classifier) so that what they report is what the
 * gateway would do. Secrets are loaded (credentials decide whether a backend
 * is a candidate) but never printed.
 *
 * Exit codes (SPEC §2): 0 ok, 1 a problem found (check, policy test), 2 a
 * usage or runtime error.
 */
#include "cli.h"
#include "backend.h"
#include "classify.h"
#include "config.h"
#include "diag.h"
#include "dlog.h"
#include "extract.h"
#include "policy.h"
#include "snapshot.h"
#include "util.h"
#include "yamltree.h"

#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Everything a command may need; each part NULL when not loaded. */
struct loaded {
	struct gw_config *cfg;
	struct backend_set *bs;
	struct policy *pol;
	struct policy *shadow;
	struct classifier *clf;
};

static void
loaded_free(struct loaded *L)
{
	classifier_free(L->clf);
	policy_free(L->shadow);
	policy_free(L->pol);
	backends_free(L->bs);
	config_free(L->cfg);
	memset(L, 0, sizeof(*L));
}

/* Load as far as possible, collecting every problem in d. policy_path
 * overrides the config's policy when not NULL. Returns 0 when everything
 * loaded without error. */
static int
load_all(const char *config_path, const char *policy_path, struct loaded *L,
    struct diags *d)
{
	size_t errs0 = d->nerrors;

	memset(L, 0, sizeof(*L));
	L->cfg = config_load(config_path, d);
	if (L->cfg == NULL)
		return -1;
	L->bs = backends_load(L->cfg->backends_path, d);
	L->pol = policy_load(policy_path ? policy_path : L->cfg->policy_path,
	    L->bs, d);
	if (policy_path == NULL && L->cfg->shadow_policy_path != NULL)
		L->shadow = policy_load(L->cfg->shadow_policy_path, L->bs, d);
	if (L->pol != NULL)
		L->clf = classifier_for(L->pol, L->shadow, d);
	return d->nerrors > errs0 || L->bs == NULL || L->pol == NULL ||
	    L->clf == NULL ? -1 : 0;
}

/* Whole input: a file, or stdin for NULL and "-". NULL with a message
 * printed on failure. */
static char *
read_input(const char *cmd, const char *arg, size_t *len)
{
	char *buf;
	size_t cap = 65536, n = 0, r;

	if (arg != NULL && strcmp(arg, "-") != 0) {
		buf = read_file(arg, len);
		if (buf == NULL)
			fprintf(stderr, "sovgate %s: cannot read %s: %s\n", cmd,
			    arg, strerror(errno));
		return buf;
	}
	buf = xmalloc(cap + 1);
	while ((r = fread(buf + n, 1, cap - n, stdin)) > 0) {
		n += r;
		if (n == cap) {
			cap *= 2;
			buf = xrealloc(buf, cap + 1);
		}
	}
	if (ferror(stdin)) {
		fprintf(stderr, "sovgate %s: cannot read standard input: %s\n",
		    cmd, strerror(errno));
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* Which endpoint a bare body is for, from its shape: chat has messages,
 * FIM has prompt, embeddings have input. */
static enum endpoint
guess_endpoint(const json_t *root)
{
	if (json_object_get(root, "messages") != NULL)
		return EP_CHAT;
	if (json_object_get(root, "prompt") != NULL)
		return EP_FIM;
	if (json_object_get(root, "input") != NULL)
		return EP_EMBEDDINGS;
	return EP_CHAT;
}

static const char *
level_str(const struct policy *p, int level)
{
	if (p == NULL || level < 0 || level >= p->nlevels)
		return "?";
	return p->levels[level];
}

/* ---- check ---- */

static int
type_is_builtin(const char *t)
{
	size_t i;

	for (i = 0; classify_builtin_types[i]; i++)
		if (strcmp(classify_builtin_types[i], t) == 0)
			return 1;
	return 0;
}

static int
category_is_builtin(const char *t)
{
	size_t i, l = strlen(t);

	for (i = 0; classify_builtin_types[i]; i++) {
		const char *b = classify_builtin_types[i];

		if (strncmp(b, t, l) == 0 && (b[l] == '\0' || b[l] == '.'))
			return 1;
	}
	return 0;
}

/* A type written in findings or bulk that no detector produces: almost
 * always a typo, and a typo here silently lets data through. */
static void
lint_unknown_type(const struct policy *p, const char *type, const char *file,
    int line, int col, struct diags *d)
{
	size_t n = 0;
	const char *close;

	if (type_is_builtin(type) || category_is_builtin(type))
		return;
	if (strcmp(type, "custom") == 0)
		return;
	if (strncmp(type, "custom.", 7) == 0) {
		size_t i;

		for (i = 0; i < p->ncustom; i++)
			if (strcmp(p->custom[i].def.name, type + 7) == 0)
				return;
		diags_add(d, DIAG_WARNING, file, line, col, "finding type '%s' "
		    "names no custom detector of this policy", type);
		return;
	}
	while (classify_builtin_types[n])
		n++;
	close = closest_name(type, classify_builtin_types, n);
	if (close)
		diags_add(d, DIAG_WARNING, file, line, col, "finding type '%s' "
		    "is not produced by any detector (did you mean '%s'?); "
		    "this rule never applies", type, close);
	else
		diags_add(d, DIAG_WARNING, file, line, col, "finding type '%s' "
		    "is not produced by any detector; this rule never applies",
		    type);
}

/* Built-in finding types the policy never names raise nothing: one
 * warning per category, listing its unnamed types. */
static void
lint_unmentioned(const struct policy *p, struct diags *d)
{
	size_t i, j;
	const char *file = p->findings_file ? p->findings_file :
	    p->nfiles ? p->files[0] : p->file;
	int line = p->findings_file ? p->findings_line : 1;
	int col = p->findings_file ? p->findings_col : 1;

	for (i = 0; classify_builtin_types[i]; i++) {
		const char *t = classify_builtin_types[i];
		size_t cl = finding_category_len(t);
		char list[512];
		size_t off = 0, n = 0, total = 0;
		int seen = 0;

		/* handle each category once, at its first type */
		for (j = 0; j < i; j++)
			if (finding_category_len(classify_builtin_types[j]) ==
			    cl && strncmp(classify_builtin_types[j], t, cl) == 0)
				seen = 1;
		if (seen)
			continue;
		list[0] = '\0';
		for (j = i; classify_builtin_types[j]; j++) {
			const char *u = classify_builtin_types[j];

			if (finding_category_len(u) != cl ||
			    strncmp(u, t, cl) != 0)
				continue;
			total++;
			if (policy_mentions_type(p, u))
				continue;
			n++;
			if (off < sizeof(list))
				off += (size_t)snprintf(list + off,
				    sizeof(list) - off, "%s%s", n > 1 ? ", " : "",
				    u);
		}
		if (n == 0)
			continue;
		if (n == total && total == 1 && t[cl] == '\0')
			diags_add(d, DIAG_WARNING, file, line, col, "finding "
			    "type '%s' is never named in classify.findings or "
			    "bulk: it raises nothing; add e.g. '%s: %s'", t, t,
			    p->levels[p->nlevels > 1 ? 1 : 0]);
		else if (n == total)
			diags_add(d, DIAG_WARNING, file, line, col, "finding "
			    "category '%.*s' (%s) is never named in "
			    "classify.findings or bulk: its types raise nothing; "
			    "add e.g. '%.*s: %s'", (int)cl, t, list, (int)cl, t,
			    p->levels[p->nlevels > 1 ? 1 : 0]);
		else
			diags_add(d, DIAG_WARNING, file, line, col, "finding "
			    "type%s %s %s named neither by type nor by category "
			    "'%.*s': %s nothing", n == 1 ? "" : "s", list,
			    n == 1 ? "is" : "are", (int)cl, t, n == 1 ?
			    "it raises" : "they raise");
	}
}

static int
has_floor(const struct policy *p, const char *client)
{
	size_t i;

	for (i = 0; i < p->nfloors; i++)
		if (strcmp(p->floors[i].client, client) == 0)
			return 1;
	return 0;
}

static void
lint_policy(const struct gw_config *cfg, const struct policy *p,
    struct diags *d)
{
	size_t i;

	for (i = 0; i < p->nfindings; i++)
		lint_unknown_type(p, p->findings[i].type, p->findings[i].file,
		    p->findings[i].line, p->findings[i].col, d);
	for (i = 0; i < p->nbulk; i++)
		lint_unknown_type(p, p->bulk[i].type, p->findings_file ?
		    p->findings_file : p->file, p->bulk[i].line,
		    p->bulk[i].col, d);
	lint_unmentioned(p, d);
	for (i = 0; cfg && i < p->nfloors; i++)
		if (config_client_by_name(cfg, p->floors[i].client) == NULL)
			diags_add(d, DIAG_WARNING, p->floors[i].file,
			    p->floors[i].line, p->floors[i].col, "client '%s' "
			    "has a floor but is not a client in %s; check the "
			    "name", p->floors[i].client, cfg->path);
	for (i = 0; cfg && i < p->ntests; i++)
		if (p->tests[i].client && config_client_by_name(cfg,
		    p->tests[i].client) == NULL && !has_floor(p,
		    p->tests[i].client))	/* else warned above */
			diags_add(d, DIAG_WARNING, p->tests[i].file,
			    p->tests[i].line, p->tests[i].col, "test '%s' uses "
			    "client '%s', which the config does not define",
			    p->tests[i].name, p->tests[i].client);
}

static void
lint_key_file(const struct gw_config *cfg, struct diags *d)
{
	struct stat st;
	unsigned char key[32];

	if (cfg->fingerprint_key_file == NULL)
		return;
	if (stat(cfg->fingerprint_key_file, &st) != 0)
		return;		/* serve creates it, mode 0600 */
	/* Reads the key to check it; it goes nowhere else. */
	fpkey_load(cfg->fingerprint_key_file, 0, key, d);
	explicit_bzero(key, sizeof(key));
}

int
cmd_check(const char *config_path, int argc, char **argv)
{
	struct diags *d;
	struct loaded L;
	int rc;

	if (argc > 0) {
		fprintf(stderr, "sovgate check: unexpected argument '%s'; usage: "
		    "sovgate [-c CONFIG] check\n", argv[0]);
		return 2;
	}
	d = diags_new();
	load_all(config_path, NULL, &L, d);
	if (L.cfg)
		lint_key_file(L.cfg, d);
	if (L.pol) {
		lint_policy(L.cfg, L.pol, d);
	} else if (L.cfg) {
		/* The policy has errors: still lint what can be read of it,
		 * so the officer sees every problem in one run. Its load
		 * problems are already in d. */
		struct diags *scratch = diags_new();
		struct policy *pp = policy_load_partial(L.cfg->policy_path,
		    L.bs, scratch);

		if (pp)
			lint_policy(L.cfg, pp, d);
		policy_free(pp);
		diags_free(scratch);
	}
	if (L.shadow)
		lint_policy(L.cfg, L.shadow, d);
	diags_print(d, stdout);
	if (d->nerrors > 0) {
		printf("%zu error%s, %zu warning%s: fix the errors above; "
		    "nothing was changed\n", d->nerrors, d->nerrors == 1 ? "" :
		    "s", d->nwarnings, d->nwarnings == 1 ? "" : "s");
		rc = 1;
	} else {
		printf("ok: %zu backend%s, policy %s (sha256 %s)%s", L.bs->n,
		    L.bs->n == 1 ? "" : "s", L.pol->name, L.pol->sha256,
		    L.shadow ? "" : "\n");
		if (L.shadow)
			printf(", shadow policy %s (sha256 %s)\n",
			    L.shadow->name, L.shadow->sha256);
		if (d->nwarnings)
			printf("%zu warning%s\n", d->nwarnings,
			    d->nwarnings == 1 ? "" : "s");
		rc = 0;
	}
	loaded_free(&L);
	diags_free(d);
	return rc;
}

/* ---- classify ---- */

struct classify_ctx {
	struct loaded L;
	int have_policy;
	int max_depth;
	struct scan *scan;
	FILE *out;
};

/* Print one result line for body; id_json is the id as JSON ("null" when
 * absent). Returns 0, or -1 when the body could not be classified (an
 * error object was printed instead). */
static int
classify_one(struct classify_ctx *C, const char *id_json, const char *body,
    size_t len, const char *endpoint)
{
	char err[256];
	json_t *root, *m;
	char *findings;
	enum endpoint ep;
	struct decision dec;
	const char *level = NULL, *action = NULL;

	root = request_parse(body, len, C->max_depth, err, sizeof(err));
	if (root == NULL)
		goto bad;
	/* the endpoint a JSONL record names wins over the body's shape */
	ep = endpoint ? endpoint_from_path(endpoint) : EP_UNKNOWN;
	if (ep == EP_UNKNOWN)
		ep = guess_endpoint(root);
	scan_reset(C->scan);
	if (classify_request(C->L.clf, C->scan, root, ep, err,
	    sizeof(err)) < 0) {
		json_decref(root);
		goto bad;
	}
	if (C->have_policy) {
		struct decide_input in;

		memset(&in, 0, sizeof(in));
		m = json_object_get(root, "model");
		in.scan = C->scan;
		in.model = json_is_string(m) ? json_string_value(m) :
		    C->L.pol->test_model;
		in.declared_level = -1;
		if (policy_decide(C->L.pol, C->L.bs, &in, NULL, NULL,
		    &dec) < 0) {
			snprintf(err, sizeof(err), "the policy could not decide");
			json_decref(root);
			goto bad;
		}
		level = C->L.pol->levels[dec.level];
		action = dec.deny ? "deny" : "allow";
	}
	findings = scan_findings_json(C->scan);
	/* level names are validated identifiers: no escaping needed */
	fprintf(C->out, "{\"id\":%s,\"level\":%s%s%s,\"action\":%s%s%s,"
	    "\"findings\":%s}\n", id_json, level ? "\"" : "",
	    level ? level : "null", level ? "\"" : "", action ? "\"" : "",
	    action ? action : "null", action ? "\"" : "", findings);
	free(findings);
	json_decref(root);
	scan_reset(C->scan);
	return 0;
bad:
	{
		json_t *e = json_string(err);
		char *es = json_dumps(e, JSON_ENCODE_ANY);

		fprintf(C->out, "{\"id\":%s,\"error\":%s}\n", id_json,
		    es ? es : "\"?\"");
		free(es);
		json_decref(e);
	}
	scan_reset(C->scan);
	return -1;
}

/* The id as the result line shows it: a plain string or integer as
 * written, anything else as jansson writes it compactly. */
static char *
jsonl_id(const struct jsonl_rec *r)
{
	size_t i;
	json_t *v;
	char *out;

	if (r->id == NULL)
		return xstrdup("null");
	if (r->idlen >= 2 && r->id[0] == '"' &&
	    memchr(r->id, '\\', r->idlen) == NULL)
		return xstrndup(r->id, r->idlen);
	for (i = 0; i < r->idlen && r->id[i] >= '0' && r->id[i] <= '9'; i++)
		;
	if (i == r->idlen && i < 19 && (r->id[0] != '0' || i == 1))
		return xstrndup(r->id, r->idlen);
	v = json_loadb(r->id, r->idlen, JSON_DECODE_ANY, NULL);
	out = v != NULL ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
	json_decref(v);
	return out != NULL ? out : xstrdup("null");
}

static int
classify_jsonl(struct classify_ctx *C, FILE *in)
{
	char *line = NULL, *id_json;
	size_t cap = 0;
	ssize_t n;
	unsigned long lineno = 0;
	int bad = 0;
	struct jsonl_rec r;

	memset(&r, 0, sizeof(r));
	while ((n = getline(&line, &cap, in)) >= 0) {
		char perr[128];

		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		/* The record is read in place, not built as a tree: its body
		 * (a whole request as a string) is decoded once, into a
		 * buffer kept from line to line. */
		if (jsonl_rec_read(&r, line, (size_t)n, perr,
		    sizeof(perr)) < 0) {
			fprintf(C->out, "{\"id\":null,\"error\":\"line %lu is not "
			    "a JSON object\"}\n", lineno);
			bad = 1;
			continue;
		}
		id_json = jsonl_id(&r);
		if (!r.body_str) {
			fprintf(C->out, "{\"id\":%s,\"error\":\"line %lu has no "
			    "\\\"body\\\" string\"}\n", id_json, lineno);
			bad = 1;
		} else if (classify_one(C, id_json, r.body, r.blen, r.ep) < 0) {
			bad = 1;
		}
		free(id_json);
	}
	free(line);
	jsonl_rec_clear(&r);
	return bad;
}

int
cmd_classify(const char *config_path, int argc, char **argv)
{
	struct classify_ctx C;
	struct diags *d = diags_new();
	const char *file = NULL;
	int jsonl = 0, i, rc = 0, bad;
	struct stat st;

	memset(&C, 0, sizeof(C));
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--jsonl") == 0)
			jsonl = 1;
		else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "sovgate classify: unknown option '%s'; "
			    "usage: sovgate classify [--jsonl] [FILE|-]\n",
			    argv[i]);
			diags_free(d);
			return 2;
		} else if (file != NULL) {
			fprintf(stderr, "sovgate classify: one input at a time "
			    "('%s' and '%s'); usage: sovgate classify [--jsonl] "
			    "[FILE|-]\n", file, argv[i]);
			diags_free(d);
			return 2;
		} else
			file = argv[i];
	}
	/* Without a config there is no policy: classify anyway (a developer
	 * checking the detectors needs no gateway set up) and print level
	 * and action as null. A config that exists but is broken is an
	 * error: levels from a half-loaded policy would be wrong. */
	C.max_depth = 64;
	if (stat(config_path, &st) != 0 && errno == ENOENT) {
		fprintf(stderr, "sovgate classify: no config at %s: classifying "
		    "without a policy (level and action are null; pass -c "
		    "CONFIG for the policy's verdict)\n", config_path);
		C.L.clf = classifier_new(NULL, 0, d);
		if (C.L.clf == NULL) {
			diags_print(d, stderr);
			diags_free(d);
			return 2;
		}
	} else {
		if (load_all(config_path, NULL, &C.L, d) < 0) {
			diags_print(d, stderr);
			fprintf(stderr, "sovgate classify: cannot load the "
			    "configuration from %s; run 'sovgate check -c %s' "
			    "and fix what it reports\n", config_path,
			    config_path);
			loaded_free(&C.L);
			diags_free(d);
			return 2;
		}
		C.have_policy = 1;
		C.max_depth = C.L.cfg->limits.max_json_depth;
	}
	diags_free(d);
	C.scan = scan_new();
	C.out = stdout;
	if (jsonl) {
		FILE *in = stdin;

		if (file && strcmp(file, "-") != 0) {
			in = fopen(file, "r");
			if (in == NULL) {
				fprintf(stderr, "sovgate classify: cannot read "
				    "%s: %s\n", file, strerror(errno));
				rc = 2;
				goto out;
			}
		}
		bad = classify_jsonl(&C, in);
		if (in != stdin)
			fclose(in);
	} else {
		size_t len;
		char *body = read_input("classify", file, &len);

		if (body == NULL) {
			rc = 2;
			goto out;
		}
		bad = classify_one(&C, "null", body, len, NULL) < 0;
		free(body);
	}
	/* Inputs that could not be classified were reported in place (an
	 * "error" member) so the output stays aligned with the input; the
	 * exit code still says something was wrong. */
	if (bad)
		rc = 2;
out:
	fflush(stdout);
	scan_free(C.scan);
	loaded_free(&C.L);
	return rc;
}

/* ---- explain ---- */

static void
print_findings(FILE *out, const struct scan *s)
{
	size_t i;

	if (s->ntypes == 0) {
		fprintf(out, "none\n");
		return;
	}
	for (i = 0; i < s->ntypes; i++)
		fprintf(out, "%s%s %u", i ? ", " : "", s->types[i].type,
		    s->types[i].count);
	fprintf(out, "\n");
}

static void
print_facts(FILE *out, const struct backend *b)
{
	size_t i;

	fprintf(out, "[%s, operator %s", b->hosting == HOST_SELF ? "self" :
	    "vendor", b->operator_country);
	if (strcmp(b->parent_country, b->operator_country) != 0)
		fprintf(out, "/%s", b->parent_country);
	fprintf(out, ", data ");
	for (i = 0; i < b->ndata; i++)
		fprintf(out, "%s%s", i ? "," : "", b->data_countries[i]);
	fprintf(out, "%s]", b->cloud_act ? ", cloud_act" : "");
}

int
cmd_explain(const char *config_path, int argc, char **argv)
{
	struct diags *d;
	struct loaded L;
	const char *client = NULL, *file = NULL, *decl = NULL;
	char *body = NULL, err[256], req[320];
	size_t len, i;
	json_t *root = NULL, *m;
	struct scan *sc = NULL;
	struct decide_input in;
	struct decision *dec = NULL;
	enum endpoint ep;
	const struct route *rt;
	int a, rc = 2;

	memset(&L, 0, sizeof(L));
	for (a = 0; a < argc; a++) {
		if (strcmp(argv[a], "--client") == 0 && a + 1 < argc) {
			client = argv[++a];
		} else if (strcmp(argv[a], "--header") == 0 && a + 1 < argc) {
			const char *h = argv[++a], *colon = strchr(h, ':');

			if (colon == NULL) {
				fprintf(stderr, "sovgate explain: --header '%s' "
				    "is not 'Name: value'\n", h);
				return 2;
			}
			if ((size_t)(colon - h) == strlen("X-Sovgate-"
			    "Classification") && ascii_ncasecmp(h,
			    "X-Sovgate-Classification", (size_t)(colon - h)) == 0) {
				decl = colon + 1;
				while (*decl == ' ' || *decl == '\t')
					decl++;
			}
			/* other headers do not influence the decision */
		} else if ((strcmp(argv[a], "--client") == 0 ||
		    strcmp(argv[a], "--header") == 0)) {
			fprintf(stderr, "sovgate explain: %s needs a value\n",
			    argv[a]);
			return 2;
		} else if (argv[a][0] == '-' && argv[a][1] != '\0') {
			fprintf(stderr, "sovgate explain: unknown option '%s'; "
			    "usage: sovgate explain [--client NAME] [--header "
			    "'K: V'] [FILE|-]\n", argv[a]);
			return 2;
		} else if (file != NULL) {
			fprintf(stderr, "sovgate explain: one request at a "
			    "time; usage: sovgate explain [--client NAME] "
			    "[--header 'K: V'] [FILE|-]\n");
			return 2;
		} else
			file = argv[a];
	}
	d = diags_new();
	if (load_all(config_path, NULL, &L, d) < 0) {
		diags_print(d, stderr);
		fprintf(stderr, "sovgate explain: cannot load the configuration "
		    "from %s; run 'sovgate check -c %s'\n", config_path,
		    config_path);
		goto out;
	}
	if (client && config_client_by_name(L.cfg, client) == NULL) {
		fprintf(stderr, "sovgate explain: unknown client '%s'; use a "
		    "name from clients: in %s\n", client, L.cfg->path);
		goto out;
	}
	memset(&in, 0, sizeof(in));
	in.declared_level = -1;
	if (decl != NULL) {
		in.declared_level = policy_level_index(L.pol, decl);
		if (in.declared_level < 0) {
			char list[256] = "";

			for (a = 0; a < L.pol->nlevels; a++)
				snprintf(list + strlen(list), sizeof(list) -
				    strlen(list), "%s%s", a ? ", " : "",
				    L.pol->levels[a]);
			fprintf(stderr, "sovgate explain: X-Sovgate-"
			    "Classification '%s' is not a level of policy '%s' "
			    "(%s); the gateway would answer 400\n", decl,
			    L.pol->name, list);
			goto out;
		}
	}
	body = read_input("explain", file, &len);
	if (body == NULL)
		goto out;
	root = request_parse(body, len, L.cfg->limits.max_json_depth, err,
	    sizeof(err));
	if (root == NULL) {
		fprintf(stderr, "sovgate explain: the body is invalid (the "
		    "gateway would answer 400): %s\n", err);
		goto out;
	}
	m = json_object_get(root, "model");
	if (!json_is_string(m)) {
		fprintf(stderr, "sovgate explain: the body names no model (the "
		    "gateway would answer 400); add \"model\": \"...\"\n");
		goto out;
	}
	ep = guess_endpoint(root);
	sc = scan_new();
	if (classify_request(L.clf, sc, root, ep, err, sizeof(err)) < 0) {
		fprintf(stderr, "sovgate explain: the body is invalid for %s "
		    "(the gateway would answer 400): %s\n", endpoint_path(ep),
		    err);
		goto out;
	}
	in.scan = sc;
	in.client = client;
	in.model = json_string_value(m);
	dec = xcalloc(1, sizeof(*dec));
	if (policy_decide(L.pol, L.bs, &in, NULL, NULL, dec) < 0) {
		fprintf(stderr, "sovgate explain: the policy could not decide "
		    "(the gateway would answer 503)\n");
		goto out;
	}

	printf("policy    %s (sha256 %s)\n", L.pol->name, L.pol->sha256);
	printf("request   %s, model '%s'", endpoint_path(ep), in.model);
	if (client)
		printf(", client %s", client);
	if (decl)
		printf(", declared level %s", L.pol->levels[in.declared_level]);
	printf("\nfindings  ");
	print_findings(stdout, sc);
	printf("level     %s (set by %s)\n", level_str(L.pol, dec->level),
	    dec->level_rule);
	rt = &L.pol->routes[dec->level];
	if (rt->defined) {
		requirement_describe(&rt->req, req, sizeof(req));
		printf("route     routes.%s: %s%s; prefer ",
		    L.pol->levels[dec->level], req[0] ? "only backends " :
		    "no requirements", req);
		for (i = 0; i < rt->nprefer; i++)
			printf("%s%s", i ? ", " : "", rt->prefer[i]);
		printf("\n");
	} else {
		printf("route     none for level %s\n",
		    L.pol->levels[dec->level]);
	}
	printf("backends  (health is not known outside the gateway: all are "
	    "taken as up)\n");
	for (i = 0; i < dec->nverdicts; i++) {
		const struct backend_verdict *v = &dec->verdicts[i];

		printf("  %-20s %-15s %s  ", v->b->name,
		    verdict_name(v->verdict), v->reason);
		print_facts(stdout, v->b);
		printf("\n");
	}
	if (dec->deny) {
		printf("decision  deny (%s): %s\n", dec->deny_code, dec->reason);
	} else {
		printf("decision  allow: try ");
		for (i = 0; i < dec->ncandidates; i++)
			printf("%s%s", i == 0 ? "" : i + 1 == dec->ncandidates ?
			    ", then " : ", ", dec->candidates[i]->name);
		printf("\n");
	}
	rc = 0;
out:
	free(dec);
	scan_free(sc);
	json_decref(root);
	free(body);
	loaded_free(&L);
	diags_free(d);
	return rc;
}

/* ---- policy test ---- */

int
policy_run_tests(const struct policy *p, const struct backend_set *bs,
    const struct classifier *clf, FILE *out, int *npass, int *nfail)
{
	struct scan *sc = scan_new();
	struct decision *dec = xcalloc(1, sizeof(*dec));
	size_t i, j;

	*npass = *nfail = 0;
	for (i = 0; i < p->ntests; i++) {
		const struct policy_test *t = &p->tests[i];
		struct decide_input in;
		char err[256], why[512];
		json_t *root = NULL, *m;
		const char *got_backend;
		int ok = 1;

		why[0] = '\0';
		memset(&in, 0, sizeof(in));
		in.declared_level = -1;
		/* judge the policy, not this machine's environment */
		in.ignore_credentials = 1;
		in.client = t->client;
		for (j = 0; j < t->nheaders; j++)
			if (ascii_casecmp(t->header_names[j],
			    "X-Sovgate-Classification") == 0) {
				in.declared_level = policy_level_index(p,
				    t->header_values[j]);
				if (in.declared_level < 0) {
					snprintf(why, sizeof(why), "header "
					    "X-Sovgate-Classification names "
					    "unknown level '%s'",
					    t->header_values[j]);
					ok = 0;
				}
			}
		if (ok) {
			root = request_parse(t->body, strlen(t->body), 64, err,
			    sizeof(err));
			if (root == NULL) {
				snprintf(why, sizeof(why), "invalid body: %s",
				    err);
				ok = 0;
			}
		}
		if (ok) {
			scan_reset(sc);
			if (classify_request(clf, sc, root,
			    endpoint_from_path(t->endpoint), err,
			    sizeof(err)) < 0) {
				snprintf(why, sizeof(why), "invalid body for "
				    "%s: %s", t->endpoint, err);
				ok = 0;
			}
		}
		if (ok) {
			m = json_object_get(root, "model");
			in.scan = sc;
			in.model = json_is_string(m) ? json_string_value(m) :
			    "";
			if (policy_decide(p, bs, &in, NULL, NULL, dec) < 0) {
				snprintf(why, sizeof(why), "the policy could "
				    "not decide");
				ok = 0;
			}
		}
		json_decref(root);
		if (ok) {
			const char *lvl = level_str(p, dec->level);

			got_backend = !dec->deny && dec->ncandidates ?
			    dec->candidates[0]->name : NULL;
			if (t->expect_action && strcmp(t->expect_action,
			    dec->deny ? "deny" : "allow") != 0) {
				snprintf(why, sizeof(why), "expected action %s, "
				    "got %s (%.300s)", t->expect_action, dec->deny ?
				    "deny" : "allow", dec->deny ? dec->reason :
				    dec->level_rule);
				ok = 0;
			} else if (t->expect_level && strcmp(t->expect_level,
			    lvl) != 0) {
				snprintf(why, sizeof(why), "expected level %s, "
				    "got %s (set by %s)", t->expect_level, lvl,
				    dec->level_rule);
				ok = 0;
			} else if (t->expect_backend && (got_backend == NULL ||
			    strcmp(got_backend, t->expect_backend) != 0)) {
				snprintf(why, sizeof(why), "expected backend %s, "
				    "got %s (level %s set by %s)",
				    t->expect_backend, got_backend ? got_backend :
				    dec->deny ? "a denial" : "none", lvl,
				    dec->level_rule);
				ok = 0;
			} else if (t->nexpect_backend_in) {
				int found = 0;

				for (j = 0; got_backend && j <
				    t->nexpect_backend_in; j++)
					if (strcmp(got_backend,
					    t->expect_backend_in[j]) == 0)
						found = 1;
				if (!found) {
					snprintf(why, sizeof(why), "expected a "
					    "backend in the list, got %s (level "
					    "%s set by %s)", got_backend ?
					    got_backend : dec->deny ? "a denial" :
					    "none", lvl, dec->level_rule);
					ok = 0;
				}
			}
		}
		if (ok) {
			fprintf(out, "PASS  %s\n", t->name);
			(*npass)++;
		} else {
			fprintf(out, "FAIL  %s (%s:%d): %s\n", t->name,
			    t->file ? t->file : p->file, t->line, why);
			(*nfail)++;
		}
		scan_reset(sc);
	}
	free(dec);
	scan_free(sc);
	return *nfail ? -1 : 0;
}

static int
policy_test(const char *config_path, int argc, char **argv)
{
	struct diags *d;
	struct loaded L;
	const char *policy_path = NULL;
	int a, np, nf, rc;

	for (a = 0; a < argc; a++) {
		if (strcmp(argv[a], "--policy") == 0 && a + 1 < argc)
			policy_path = argv[++a];
		else {
			fprintf(stderr, "sovgate policy test: unexpected "
			    "argument '%s'; usage: sovgate policy test "
			    "[--policy FILE|DIR]\n", argv[a]);
			return 2;
		}
	}
	d = diags_new();
	if (load_all(config_path, policy_path, &L, d) < 0) {
		diags_print(d, stderr);
		fprintf(stderr, "sovgate policy test: cannot load the "
		    "configuration and policy; run 'sovgate check -c %s'\n",
		    config_path);
		loaded_free(&L);
		diags_free(d);
		return 2;
	}
	diags_free(d);
	if (L.pol->ntests == 0)
		printf("policy %s has no tests: add a tests: list (see "
		    "policy/hospital.yaml)\n", L.pol->name);
	policy_run_tests(L.pol, L.bs, L.clf, stdout, &np, &nf);
	printf("%d passed, %d failed\n", np, nf);
	rc = nf ? 1 : 0;
	loaded_free(&L);
	return rc;
}


/* ---- policy replay ---- */

/* (old -> new) pairs and how often each occurred. */
struct tally {
	char **keys;
	unsigned *counts;
	size_t n, cap;
};

static void
tally_add(struct tally *t, const char *a, const char *b)
{
	char *k = xasprintf("%s -> %s", a, b);
	size_t i;

	for (i = 0; i < t->n; i++)
		if (strcmp(t->keys[i], k) == 0) {
			t->counts[i]++;
			free(k);
			return;
		}
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 8;
		t->keys = xrealloc(t->keys, t->cap * sizeof(*t->keys));
		t->counts = xrealloc(t->counts, t->cap * sizeof(*t->counts));
	}
	t->keys[t->n] = k;
	t->counts[t->n++] = 1;
}

static void
tally_print(const struct tally *t, const char *what)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		printf("  %-8s %-48s %u\n", what, t->keys[i], t->counts[i]);
}

static void
tally_free(struct tally *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->keys[i]);
	free(t->keys);
	free(t->counts);
}

static const char *
col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *v = sqlite3_column_text(st, i);

	return v ? (const char *)v : NULL;
}

/*
 * Re-decide logged requests under a candidate policy from what the log
 * kept (findings with counts, client, model, declared level). Credentials
 * and health are ignored, as in policy test: the question is what the
 * policy would do. A custom detector the old policy did not have cannot be
 * replayed (the log holds no text), which the report says.
 */
static int
policy_replay(const char *config_path, int argc, char **argv)
{
	const char *newp = NULL, *since = NULL, *until = NULL;
	int64_t since_ms = 0, until_ms = INT64_MAX;
	struct diags *d;
	struct gw_config *cfg = NULL;
	struct backend_set *bs = NULL;
	struct policy *p = NULL;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	struct decision *dec = NULL;
	struct tally tl, tb, ta;
	char err[512];
	unsigned long total = 0, changed = 0, skipped = 0, undeclared = 0;
	int a, rc = 2;

	memset(&tl, 0, sizeof(tl));
	memset(&tb, 0, sizeof(tb));
	memset(&ta, 0, sizeof(ta));
	for (a = 0; a < argc; a++) {
		if (strcmp(argv[a], "--policy") == 0 && a + 1 < argc)
			newp = argv[++a];
		else if (strcmp(argv[a], "--since") == 0 && a + 1 < argc)
			since = argv[++a];
		else if (strcmp(argv[a], "--until") == 0 && a + 1 < argc)
			until = argv[++a];
		else {
			fprintf(stderr, "sovgate policy replay: unexpected "
			    "argument '%s'; usage: sovgate policy replay "
			    "--policy NEW.yaml [--since T] [--until T]\n",
			    argv[a]);
			return 2;
		}
	}
	if (newp == NULL) {
		fprintf(stderr, "sovgate policy replay: name the candidate "
		    "policy with --policy NEW.yaml\n");
		return 2;
	}
	if (since && parse_time_arg(since, &since_ms) < 0) {
		fprintf(stderr, "sovgate policy replay: --since '%s' is not a "
		    "time; use RFC 3339 (2026-11-28T09:00:00Z) or -24h, -7d\n",
		    since);
		return 2;
	}
	if (until && parse_time_arg(until, &until_ms) < 0) {
		fprintf(stderr, "sovgate policy replay: --until '%s' is not a "
		    "time; use RFC 3339 (2026-11-28T09:00:00Z) or -24h, -7d\n",
		    until);
		return 2;
	}
	d = diags_new();
	cfg = config_load(config_path, d);
	if (cfg)
		bs = backends_load(cfg->backends_path, d);
	if (bs)
		p = policy_load(newp, bs, d);
	if (p == NULL) {
		diags_print(d, stderr);
		fprintf(stderr, "sovgate policy replay: cannot load the "
		    "configuration and candidate policy; fix what is listed "
		    "above\n");
		goto out;
	}
	db = dlog_open_db(cfg->log_database, 0, err, sizeof(err));
	if (db == NULL) {
		fprintf(stderr, "sovgate policy replay: %s\n", err);
		goto out;
	}
	if (sqlite3_prepare_v2(db, "SELECT id, ts_ms, client, model, "
	    "findings_json, declared_level, level, action, backend FROM "
	    "decisions WHERE ts_ms >= ?1 AND ts_ms < ?2 ORDER BY seq", -1, &st,
	    NULL) != SQLITE_OK) {
		fprintf(stderr, "sovgate policy replay: cannot read decisions "
		    "from %s: %s\n", cfg->log_database, sqlite3_errmsg(db));
		goto out;
	}
	sqlite3_bind_int64(st, 1, since_ms);
	sqlite3_bind_int64(st, 2, until_ms);
	dec = xcalloc(1, sizeof(*dec));
	printf("replaying decisions from %s under policy %s (sha256 %s)\n",
	    cfg->log_database, p->name, p->sha256);
	printf("decisions that would change:\n");
	for (;;) {
		int step = sqlite3_step(st);
		const char *id, *client, *model, *fj, *decl, *olevel, *oaction,
		    *obackend, *nlevel, *naction, *nbackend;
		struct scan sc;
		struct decide_input in;
		json_t *fo;
		const char *k;
		json_t *v;
		char when[32];

		if (step == SQLITE_DONE)
			break;
		if (step != SQLITE_ROW) {
			fprintf(stderr, "sovgate policy replay: reading %s "
			    "failed: %s\n", cfg->log_database,
			    sqlite3_errmsg(db));
			goto out;
		}
		id = col_text(st, 0);
		client = col_text(st, 2);
		model = col_text(st, 3);
		fj = col_text(st, 4);
		decl = col_text(st, 5);
		olevel = col_text(st, 6);
		oaction = col_text(st, 7);
		obackend = col_text(st, 8);
		/* error rows were never classified: nothing to re-decide */
		if (oaction == NULL || strcmp(oaction, "error") == 0 ||
		    model == NULL) {
			skipped++;
			continue;
		}
		total++;
		memset(&sc, 0, sizeof(sc));
		fo = json_loads(fj ? fj : "{}", 0, NULL);
		json_object_foreach(fo, k, v) {
			if (sc.ntypes < SCAN_MAX_TYPES && json_is_integer(v)) {
				sc.types[sc.ntypes].type = k;
				sc.types[sc.ntypes].count =
				    (unsigned)json_integer_value(v);
				sc.ntypes++;
			}
		}
		memset(&in, 0, sizeof(in));
		in.scan = &sc;
		in.client = client;
		in.model = model;
		in.declared_level = decl ? policy_level_index(p, decl) : -1;
		if (decl && in.declared_level < 0)
			undeclared++;
		in.ignore_credentials = 1;
		if (policy_decide(p, bs, &in, NULL, NULL, dec) < 0) {
			json_decref(fo);
			skipped++;
			continue;
		}
		json_decref(fo);
		nlevel = p->levels[dec->level];
		naction = dec->deny ? "deny" : "allow";
		nbackend = dec->deny || dec->ncandidates == 0 ? "-" :
		    dec->candidates[0]->name;
		if (!obackend)
			obackend = "-";
		if (!olevel)
			olevel = "-";
		if (strcmp(olevel, nlevel) == 0 && strcmp(oaction,
		    naction) == 0 && strcmp(obackend, nbackend) == 0)
			continue;
		changed++;
		if (strcmp(olevel, nlevel) != 0)
			tally_add(&tl, olevel, nlevel);
		if (strcmp(obackend, nbackend) != 0)
			tally_add(&tb, obackend, nbackend);
		if (strcmp(oaction, naction) != 0)
			tally_add(&ta, oaction, naction);
		fmt_rfc3339_ms(sqlite3_column_int64(st, 1), when, sizeof(when));
		printf("  %s %s client %s model %s:", when, id ? id : "?",
		    client ? client : "-", model);
		if (strcmp(olevel, nlevel) != 0)
			printf(" level %s -> %s", olevel, nlevel);
		if (strcmp(oaction, naction) != 0)
			printf(" action %s -> %s", oaction, naction);
		if (strcmp(obackend, nbackend) != 0)
			printf(" backend %s -> %s", obackend, nbackend);
		printf("\n");
	}
	if (changed == 0)
		printf("  none\n");
	printf("summary: %lu replayed, %lu would change, %lu skipped (errors "
	    "or unreadable rows)\n", total, changed, skipped);
	tally_print(&tl, "level");
	tally_print(&tb, "backend");
	tally_print(&ta, "action");
	if (undeclared)
		printf("note: %lu request%s declared a level the candidate "
		    "policy does not have; replayed as undeclared\n", undeclared,
		    undeclared == 1 ? "" : "s");
	if (p->ncustom)
		printf("note: the log keeps findings, not text: custom detectors "
		    "the old policy lacked cannot fire in a replay\n");
	rc = 0;
out:
	free(dec);
	sqlite3_finalize(st);
	if (db)
		sqlite3_close(db);
	tally_free(&tl);
	tally_free(&tb);
	tally_free(&ta);
	policy_free(p);
	backends_free(bs);
	config_free(cfg);
	diags_free(d);
	return rc;
}

int
cmd_policy(const char *config_path, int argc, char **argv)
{
	if (argc < 1) {
		fprintf(stderr, "sovgate policy: which subcommand? usage: "
		    "sovgate policy test [--policy FILE] | sovgate policy "
		    "replay --policy NEW.yaml [--since T] [--until T]\n");
		return 2;
	}
	if (strcmp(argv[0], "test") == 0)
		return policy_test(config_path, argc - 1, argv + 1);
	if (strcmp(argv[0], "replay") == 0)
		return policy_replay(config_path, argc - 1, argv + 1);
	fprintf(stderr, "sovgate policy: unknown subcommand '%s'; use test or "
	    "replay\n", argv[0]);
	return 2;
}
