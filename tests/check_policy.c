/*
 * check_policy.c - policy loading, cross-checks against the backends, and
 * every routing rule of SPEC §4.3.
 *
 * Scans are filled by hand (struct scan is plain data) so these tests do
 * not depend on the classifier.
 */
#include <check.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "classify.h"
#include "cli.h"
#include "diag.h"
#include "policy.h"
#include "snapshot.h"
#include "util.h"
#include "testutil.h"

static struct backend_set *bs;
static struct policy *pol;

/* The SPEC's five pipes. */
static void
put_backends(void)
{
	put("backends/onprem-vllm.yaml",
	    "name: onprem-vllm\nkind: openai\nendpoint: http://127.0.0.1:8000\n"
	    "operator: Example Hospital\noperator_country: FR\n"
	    "data_countries: [FR]\nhosting: self\nkey_custody: customer\n"
	    "models: {mistral-large-latest: mistral-large,\n"
	    "         mistral-small-latest: mistral-small}\n");
	put("backends/mistral-eu.yaml",
	    "name: mistral-eu\nkind: mistral\noperator: Mistral AI SAS\n"
	    "operator_country: FR\ndata_countries: [FR, SE]\nhosting: vendor\n"
	    "retention: 30d\nauth: {type: bearer, key_env: T_POL_MISTRAL}\n"
	    "models: {mistral-large-latest: mistral-large-latest,\n"
	    "         codestral-latest: codestral-latest}\n");
	put("backends/azure-sweden.yaml",
	    "name: azure-sweden\nkind: azure\n"
	    "endpoint: https://x.services.ai.azure.com/models\n"
	    "operator: Microsoft Ireland Operations Ltd\noperator_country: IE\n"
	    "parent_country: US\ndata_countries: [SE]\nhosting: vendor\n"
	    "retention: 30d\nauth: {type: api-key, key_env: T_POL_AZURE}\n"
	    "models: {mistral-large-latest: Mistral-Large-2411}\n");
	put("backends/bedrock-paris.yaml",
	    "name: bedrock-paris\nkind: bedrock\nregion: eu-west-3\n"
	    "operator: Amazon Web Services EMEA SARL\noperator_country: LU\n"
	    "parent_country: US\ndata_countries: [FR]\nhosting: vendor\n"
	    "key_custody: provider\nretention: none\n"
	    "auth: {type: aws-sigv4, access_key_env: T_POL_AK,\n"
	    "       secret_key_env: T_POL_SK}\n"
	    "models: {mistral-large-latest: mistral.mistral-large-2407-v1:0}\n");
	put("backends/vertex-netherlands.yaml",
	    "name: vertex-netherlands\nkind: vertex\nregion: europe-west4\n"
	    "project: p\noperator: Google Cloud EMEA Ltd\noperator_country: IE\n"
	    "parent_country: US\ndata_countries: [NL]\nhosting: vendor\n"
	    "retention: 1d\nauth: {type: bearer, key_env: T_POL_VERTEX}\n"
	    "models: {mistral-large-latest: mistral-large-2411}\n");
}

static const char *spec_policy =
    "name: hospital-default\n"
    "levels: [public, internal, confidential, restricted]\n"
    "classify:\n"
    "  findings:\n"
    "    email: internal\n"
    "    phone: internal\n"
    "    ip_address: internal\n"
    "    iban: confidential\n"
    "    payment_card: confidential\n"
    "    national_id: confidential\n"
    "    national_id.uk_nino: internal\n"
    "    date_of_birth: confidential\n"
    "    health: restricted\n"
    "    marking: restricted\n"
    "    credential: deny\n"
    "  bulk:\n"
    "    - {type: email, at_least: 20, level: confidential}\n"
    "    - {type: payment_card, at_least: 50, level: deny}\n"
    "  custom:\n"
    "    - {name: project.nightingale, words: [Nightingale, NGL-2025], "
    "level: confidential}\n"
    "    - {name: corp.hostname, regex: '\\b[a-z0-9-]+\\.corp\\.example\\b',"
    " level: internal}\n"
    "clients:\n"
    "  hr-portal: {floor: confidential}\n"
    "routes:\n"
    "  restricted:\n"
    "    require: {hosting: self}\n"
    "    prefer: [onprem-vllm]\n"
    "  confidential:\n"
    "    require: {operator_in: [EU], data_in: [EU], cloud_act: false}\n"
    "    prefer: [onprem-vllm, mistral-eu]\n"
    "  internal:\n"
    "    require: {data_in: [EEA]}\n"
    "    prefer: [mistral-eu, onprem-vllm, azure-sweden, bedrock-paris, "
    "vertex-netherlands]\n"
    "  public:\n"
    "    prefer: [mistral-eu, azure-sweden, bedrock-paris, "
    "vertex-netherlands, onprem-vllm]\n"
    "tests:\n"
    "  - name: an IBAN stays with EU-operated backends\n"
    "    text: \"Refund IBAN FR76 3000 6000 0112 3456 7890 189\"\n"
    "    expect: {level: confidential, backend: onprem-vllm}\n"
    "  - name: secrets never leave\n"
    "    text: \"export KEY=AKIAIOSFODNN7EXAMPLE\"\n"
    "    expect: {action: deny}\n"
    "  - name: a body\n"
    "    body: {model: codestral-latest, messages: [{role: user, "
    "content: hi}], max_tokens: 5, stream: false}\n"
    "    client: hr-portal\n"
    "    headers: {X-Sovgate-Classification: internal}\n"
    "    expect: {backend_in: [onprem-vllm, mistral-eu]}\n";

static void
setup(void)
{
	struct diags *d = diags_new();

	tmp_make("pol");
	setenv("T_POL_MISTRAL", "k1", 1);
	setenv("T_POL_AZURE", "k2", 1);
	setenv("T_POL_AK", "k3", 1);
	setenv("T_POL_SK", "k4", 1);
	setenv("T_POL_VERTEX", "k5", 1);
	put_backends();
	bs = backends_load(sub_path("backends"), d);
	if (bs == NULL)
		diags_print(d, stderr);
	ck_assert_ptr_nonnull(bs);
	pol = policy_load(put("policy.yaml", spec_policy), bs, d);
	if (pol == NULL || d->n)
		diags_print(d, stderr);
	ck_assert_ptr_nonnull(pol);
	ck_assert_uint_eq(d->n, 0);
	diags_free(d);
}

static void
teardown(void)
{
	policy_free(pol);
	backends_free(bs);
	pol = NULL;
	bs = NULL;
	tmp_remove();
}

/* ---- helpers to decide ---- */

static struct scan sc;

static void
scan_set(const char *type, unsigned count)
{
	size_t i;

	for (i = 0; i < sc.ntypes; i++)
		if (strcmp(sc.types[i].type, type) == 0) {
			sc.types[i].count = count;
			return;
		}
	sc.types[sc.ntypes].type = type;
	sc.types[sc.ntypes].count = count;
	sc.ntypes++;
}

static void
decide_full(const char *client, const char *model, int declared,
    backend_down_fn down, struct decision *out)
{
	struct decide_input in;

	memset(&in, 0, sizeof(in));
	in.scan = &sc;
	in.client = client;
	in.model = model;
	in.declared_level = declared;
	ck_assert_int_eq(policy_decide(pol, bs, &in, down, NULL, out), 0);
}

static void
decide(struct decision *out)
{
	decide_full(NULL, "mistral-large-latest", -1, NULL, out);
}

static const char *
level_name(const struct decision *d)
{
	return pol->levels[d->level];
}

static const char *
first(const struct decision *d)
{
	return d->ncandidates ? d->candidates[0]->name : "(none)";
}

static const struct backend_verdict *
verdict_of(const struct decision *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->nverdicts; i++)
		if (strcmp(d->verdicts[i].b->name, name) == 0)
			return &d->verdicts[i];
	ck_abort_msg("no verdict for %s", name);
	return NULL;
}

/* ---- loading ---- */

START_TEST(test_load_spec_policy)
{
	char hex[65];
	size_t len;
	char *bytes = read_file(sub_path("policy.yaml"), &len);

	ck_assert_str_eq(pol->name, "hospital-default");
	ck_assert_int_eq(pol->nlevels, 4);
	ck_assert_int_eq(policy_level_index(pol, "confidential"), 2);
	ck_assert_int_eq(policy_level_index(pol, "Restricted"), 3);
	ck_assert_int_eq(policy_level_index(pol, "secret"), -1);
	ck_assert_uint_eq(pol->nfindings, 11);
	ck_assert_uint_eq(pol->nbulk, 2);
	ck_assert_uint_eq(pol->ncustom, 2);
	ck_assert_str_eq(pol->custom[0].def.name, "project.nightingale");
	ck_assert_uint_eq(pol->custom[0].def.nwords, 2);
	ck_assert_int_eq(pol->custom[0].def.line, 20);
	ck_assert_ptr_nonnull(pol->custom[1].def.regex);
	ck_assert_int_eq(pol->custom[1].def.regex_line, 21);
	ck_assert_ptr_nonnull(pol->custom[1].def.file);
	ck_assert_uint_eq(pol->nfloors, 1);
	ck_assert(pol->routes[3].defined);
	ck_assert(pol->routes[3].req.has_hosting);
	ck_assert_uint_eq(pol->routes[1].nprefer, 5);
	ck_assert_uint_eq(pol->ntests, 3);
	/* sha256 of the file's bytes */
	sha256_hex(bytes, len, hex);
	ck_assert_str_eq(pol->sha256, hex);
	free(bytes);
	/* the text shorthand expands to a chat body with a served model */
	{
		json_t *j = json_loads(pol->tests[0].body, 0, NULL);

		ck_assert_ptr_nonnull(j);
		ck_assert_str_eq(json_string_value(json_object_get(j, "model")),
		    "mistral-large-latest");
		ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
		    json_object_get(j, "messages"), 0), "content")),
		    "Refund IBAN FR76 3000 6000 0112 3456 7890 189");
		json_decref(j);
		j = json_loads(pol->tests[2].body, 0, NULL);
		ck_assert_ptr_nonnull(j);
		ck_assert(json_is_integer(json_object_get(j, "max_tokens")));
		ck_assert(json_is_false(json_object_get(j, "stream")));
		json_decref(j);
	}
	ck_assert_str_eq(pol->tests[0].expect_level, "confidential");
	ck_assert_str_eq(pol->tests[1].expect_action, "deny");
	ck_assert_str_eq(pol->tests[2].client, "hr-portal");
	ck_assert_uint_eq(pol->tests[2].nheaders, 1);
	ck_assert_uint_eq(pol->tests[2].nexpect_backend_in, 2);
	ck_assert_str_eq(pol->tests[2].endpoint, "/v1/chat/completions");
	ck_assert(policy_mentions_type(pol, "national_id.fr_nir"));
	ck_assert(policy_mentions_type(pol, "email"));
	ck_assert(!policy_mentions_type(pol, "credentialx"));
	policy_free(NULL);
}
END_TEST

START_TEST(test_load_errors)
{
	struct diags *d = diags_new();

	ck_assert_ptr_null(policy_load(put("bad.yaml",
	    "name: p\n"						/* 1 */
	    "levels: [public, internal]\n"			/* 2 */
	    "classify:\n"					/* 3 */
	    "  findings: {email: internl, iban: secret}\n"	/* 4 */
	    "  bulk: [{type: email, at_least: 0, level: internal}]\n"	/* 5 */
	    "clients: {a: {floor: top}}\n"			/* 6 */
	    "routes:\n"						/* 7 */
	    "  internal:\n"					/* 8 */
	    "    require: {hosting: self, data_in: [Europe], cloudact: false}\n"
	    "    prefer: [onprem-vlm, azure-sweden]\n"		/* 10 */
	    "  public:\n"					/* 11 */
	    "    prefer: [onprem-vllm]\n"			/* 12 */
	    "  secret: {prefer: []}\n"				/* 13 */
	    "tests:\n"						/* 14 */
	    "  - {name: t, text: x, expect: {level: nope, backend: zz}}\n"
	    "  - {name: u, expect: {action: maybe}}\n"		/* 16 */
	    "polcy: x\n"					/* 17 */
	    ), bs, d));
	ck_assert(has_diag(d, DIAG_ERROR, 4, "did you mean 'internal'"));
	ck_assert(has_diag(d, DIAG_ERROR, 4, "undefined level 'secret'"));
	ck_assert(has_diag(d, DIAG_ERROR, 5, "at_least"));
	ck_assert(has_diag(d, DIAG_ERROR, 6, "undefined level 'top'"));
	ck_assert(has_diag(d, DIAG_ERROR, 9, "'Europe' is not a region"));
	ck_assert(has_diag(d, DIAG_ERROR, 9, "did you mean 'cloud_act'"));
	ck_assert(has_diag(d, DIAG_ERROR, 10,
	    "unknown backend 'onprem-vlm' (did you mean 'onprem-vllm'?)"));
	ck_assert(has_diag(d, DIAG_ERROR, 10, "can never satisfy"));
	ck_assert(has_diag(d, DIAG_ERROR, 13, "undefined level 'secret'"));
	ck_assert(has_diag(d, DIAG_ERROR, 15, "undefined level 'nope'"));
	ck_assert(has_diag(d, DIAG_ERROR, 15, "unknown backend 'zz'"));
	ck_assert(has_diag(d, DIAG_ERROR, 16, "exactly one of text"));
	ck_assert(has_diag(d, DIAG_ERROR, 16, "allow or deny"));
	ck_assert(has_diag(d, DIAG_ERROR, 17, "did you mean 'policy'") ||
	    has_diag(d, DIAG_ERROR, 17, "unknown key 'polcy'"));
	diags_free(d);

	d = diags_new();
	ck_assert_ptr_null(policy_load(put("nolevels.yaml", "name: x\n"), bs,
	    d));
	ck_assert(has_diag(d, DIAG_ERROR, 1, "levels"));
	diags_free(d);

	d = diags_new();
	ck_assert_ptr_null(policy_load(put("alias.yaml",
	    "name: x\nlevels: &l [a, b]\n"), bs, d));
	ck_assert(has_diag(d, DIAG_ERROR, 2, "anchors"));
	diags_free(d);

	d = diags_new();
	ck_assert_ptr_null(policy_load(sub_path("missing.yaml"), bs, d));
	ck_assert(has_diag(d, DIAG_ERROR, 0, "cannot read the policy"));
	diags_free(d);
}
END_TEST

START_TEST(test_load_warnings)
{
	struct diags *d = diags_new();
	struct policy *p;

	/* a higher level allowing what a lower one forbids; a level with
	 * no route */
	p = policy_load(put("warn.yaml",
	    "name: w\n"
	    "levels: [public, internal, confidential, restricted]\n"
	    "routes:\n"
	    "  public:\n"
	    "    require: {cloud_act: false}\n"
	    "    prefer: [mistral-eu]\n"
	    "  internal:\n"				/* 7 */
	    "    prefer: [azure-sweden, mistral-eu]\n"
	    "  confidential:\n"
	    "    prefer: [onprem-vllm]\n"), bs, d);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(d->nerrors, 0);
	ck_assert(has_diag(d, DIAG_WARNING, 7, "level 'internal' allows "
	    "backend 'azure-sweden', which the lower level 'public' forbids"));
	ck_assert(has_diag(d, DIAG_WARNING, 0, "level 'restricted' has no "
	    "route"));
	policy_free(p);
	diags_free(d);
}
END_TEST

START_TEST(test_load_directory_merge)
{
	struct diags *d = diags_new();
	struct policy *p;
	char *all;
	size_t la, lb;
	char *a, *b, hex[65];

	put("pdir/10-levels.yaml", "name: split\nlevels: [low, high]\n");
	put("pdir/20-findings.yaml",
	    "classify: {findings: {iban: high}}\n");
	put("pdir/30-routes.yaml",
	    "routes:\n  low: {prefer: [mistral-eu]}\n"
	    "  high: {require: {hosting: self}, prefer: [onprem-vllm]}\n");
	put("pdir/notes.txt", "ignored\n");
	p = policy_load(sub_path("pdir"), bs, d);
	if (p == NULL)
		diags_print(d, stderr);
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->name, "split");
	ck_assert_uint_eq(p->nfiles, 3);
	ck_assert_uint_eq(p->nfindings, 1);
	ck_assert(p->routes[1].defined);
	/* sha256 over the files' bytes in name order */
	a = read_file(sub_path("pdir/10-levels.yaml"), &la);
	b = read_file(sub_path("pdir/20-findings.yaml"), &lb);
	{
		size_t lc;
		char *c = read_file(sub_path("pdir/30-routes.yaml"), &lc);

		all = malloc(la + lb + lc);
		memcpy(all, a, la);
		memcpy(all + la, b, lb);
		memcpy(all + la + lb, c, lc);
		sha256_hex(all, la + lb + lc, hex);
		free(c);
	}
	ck_assert_str_eq(p->sha256, hex);
	free(a);
	free(b);
	free(all);
	policy_free(p);
	diags_free(d);

	/* duplicates across files are errors */
	d = diags_new();
	put("pdup/a.yaml", "name: one\nlevels: [x]\n"
	    "classify: {findings: {iban: x}}\nroutes: {x: {prefer: [mistral-eu]}}\n");
	put("pdup/b.yaml", "name: two\nclassify: {findings: {iban: x}}\n"
	    "routes: {x: {prefer: [onprem-vllm]}}\n");
	ck_assert_ptr_null(policy_load(sub_path("pdup"), bs, d));
	ck_assert(has_diag(d, DIAG_ERROR, 1, "name is already set"));
	ck_assert(has_diag(d, DIAG_ERROR, 2, "already has a rule"));
	ck_assert(has_diag(d, DIAG_ERROR, 3, "already has a route"));
	diags_free(d);
}
END_TEST

/* ---- deciding ---- */

START_TEST(test_nothing_found_is_lowest)
{
	struct decision d;
	char *j;

	memset(&sc, 0, sizeof(sc));
	decide(&d);
	ck_assert_str_eq(level_name(&d), "public");
	ck_assert_str_eq(d.level_rule, "default");
	ck_assert_int_eq(d.deny, 0);
	ck_assert_uint_eq(d.nverdicts, 5);
	ck_assert_uint_eq(d.ncandidates, 5);
	/* prefer order, not set order */
	ck_assert_str_eq(d.candidates[0]->name, "mistral-eu");
	ck_assert_str_eq(d.candidates[1]->name, "azure-sweden");
	ck_assert_str_eq(d.candidates[4]->name, "onprem-vllm");
	ck_assert_int_eq(verdict_of(&d, "bedrock-paris")->verdict, V_ALLOWED);
	j = decision_candidates_json(&d);
	ck_assert(strstr(j, "{\"backend\":\"azure-sweden\",\"verdict\":"
	    "\"allowed\",\"reason\":\"rank 2 in routes.public.prefer\"}"));
	free(j);
}
END_TEST

START_TEST(test_finding_levels)
{
	struct decision d;

	memset(&sc, 0, sizeof(sc));
	scan_set("email", 1);
	decide(&d);
	ck_assert_str_eq(level_name(&d), "internal");
	ck_assert_str_eq(d.level_rule, "finding email");
	/* internal requires data in the EEA: all five qualify */
	ck_assert_uint_eq(d.ncandidates, 5);
	ck_assert_str_eq(first(&d), "mistral-eu");

	scan_set("iban", 1);
	decide(&d);
	ck_assert_str_eq(level_name(&d), "confidential");
	ck_assert_str_eq(d.level_rule, "finding iban");
	ck_assert_uint_eq(d.ncandidates, 2);
	ck_assert_str_eq(d.candidates[0]->name, "onprem-vllm");
	ck_assert_str_eq(d.candidates[1]->name, "mistral-eu");
	ck_assert_int_eq(verdict_of(&d, "azure-sweden")->verdict,
	    V_NOT_PREFERRED);

	scan_set("health", 1);
	decide(&d);
	ck_assert_str_eq(level_name(&d), "restricted");
	ck_assert_uint_eq(d.ncandidates, 1);
	ck_assert_str_eq(first(&d), "onprem-vllm");
}
END_TEST

START_TEST(test_full_type_before_category)
{
	struct decision d;

	memset(&sc, 0, sizeof(sc));
	scan_set("national_id.fr_nir", 1);
	decide(&d);
	ck_assert_str_eq(level_name(&d), "confidential");
	ck_assert_str_eq(d.level_rule, "finding national_id.fr_nir via "
	    "national_id");
	/* the full-name rule wins over the category's, even when lower */
	memset(&sc, 0, sizeof(sc));
	scan_set("national_id.uk_nino", 1);
	decide(&d);
	ck_assert_str_eq(level_name(&d), "internal");
	ck_assert_str_eq(d.level_rule, "finding national_id.uk_nino");
	/* a type the policy does not name raises nothing */
	memset(&sc, 0, sizeof(sc));
	scan_set("unheard_of.thing", 3);
	decide(&d);
	ck_assert_str_eq(level_name(&d), "public");
}
END_TEST

START_TEST(test_deny_wins)
{
	struct decision d;
	size_t i;

	memset(&sc, 0, sizeof(sc));
	scan_set("iban", 1);
	scan_set("credential.aws_access_key", 1);
	decide(&d);
	ck_assert_int_eq(d.deny, 1);
	ck_assert_str_eq(d.deny_code, "finding_denied");
	ck_assert_uint_eq(d.ncandidates, 0);
	ck_assert(strstr(d.reason, "credential.aws_access_key"));
	for (i = 0; i < d.nverdicts; i++)
		ck_assert_int_eq(d.verdicts[i].verdict, V_DENIED);
	/* a floor cannot rescue it either */
	decide_full("hr-portal", "mistral-large-latest", 3, NULL, &d);
	ck_assert_int_eq(d.deny, 1);
}
END_TEST

START_TEST(test_bulk_rules)
{
	struct decision d;

	memset(&sc, 0, sizeof(sc));
	scan_set("email", 19);
	decide(&d);
	ck_assert_str_eq(level_name(&d), "internal");
	scan_set("email", 20);
	decide(&d);
	ck_assert_str_eq(level_name(&d), "confidential");
	ck_assert_str_eq(d.level_rule, "bulk email>=20");
	/* bulk by category sums the subtypes; bulk deny */
	memset(&sc, 0, sizeof(sc));
	scan_set("payment_card", 30);
	scan_set("payment_card.amex", 20);
	decide(&d);
	ck_assert_int_eq(d.deny, 1);
	ck_assert_str_eq(d.deny_code, "finding_denied");
}
END_TEST

START_TEST(test_custom_rules)
{
	struct decision d;

	memset(&sc, 0, sizeof(sc));
	scan_set("custom.corp.hostname", 1);
	decide(&d);
	ck_assert_str_eq(level_name(&d), "internal");
	ck_assert_str_eq(d.level_rule, "custom corp.hostname");
	scan_set("custom.project.nightingale", 1);
	decide(&d);
	ck_assert_str_eq(level_name(&d), "confidential");
	ck_assert_str_eq(d.level_rule, "custom project.nightingale");
}
END_TEST

START_TEST(test_floor_and_header)
{
	struct decision d;

	memset(&sc, 0, sizeof(sc));
	decide_full("hr-portal", "mistral-large-latest", -1, NULL, &d);
	ck_assert_str_eq(level_name(&d), "confidential");
	ck_assert_str_eq(d.level_rule, "floor hr-portal");
	/* a header raises ... */
	decide_full("claims-app", "mistral-large-latest", 3, NULL, &d);
	ck_assert_str_eq(level_name(&d), "restricted");
	ck_assert_str_eq(d.level_rule, "header");
	/* ... and never lowers */
	scan_set("iban", 1);
	decide_full("claims-app", "mistral-large-latest", 0, NULL, &d);
	ck_assert_str_eq(level_name(&d), "confidential");
	decide_full("hr-portal", "mistral-large-latest", 1, NULL, &d);
	ck_assert_str_eq(level_name(&d), "confidential");
	ck_assert_str_eq(d.level_rule, "floor hr-portal");
	/* a finding above the floor sets the level */
	scan_set("health", 1);
	decide_full("hr-portal", "mistral-large-latest", -1, NULL, &d);
	ck_assert_str_eq(level_name(&d), "restricted");
	ck_assert_str_eq(d.level_rule, "finding health");
}
END_TEST

START_TEST(test_model_filter_and_deny_reason)
{
	struct decision d;

	memset(&sc, 0, sizeof(sc));
	scan_set("iban", 1);
	decide_full(NULL, "gpt-4o", -1, NULL, &d);
	ck_assert_int_eq(d.deny, 1);
	ck_assert_str_eq(d.deny_code, "no_allowed_backend");
	ck_assert_str_eq(d.reason, "level 'confidential' (found: iban) allows "
	    "only backends operated under EU law, processing data only in the "
	    "EU and out of the US CLOUD Act's reach; none serves model "
	    "'gpt-4o'");
	ck_assert_int_eq(verdict_of(&d, "onprem-vllm")->verdict, V_NO_MODEL);
	ck_assert_str_eq(verdict_of(&d, "onprem-vllm")->reason,
	    "does not serve model 'gpt-4o'");
	/* a model only one preferred backend serves */
	decide_full(NULL, "codestral-latest", -1, NULL, &d);
	ck_assert_uint_eq(d.ncandidates, 1);
	ck_assert_str_eq(first(&d), "mistral-eu");
	memset(&sc, 0, sizeof(sc));
	decide_full(NULL, "mistral-small-latest", -1, NULL, &d);
	ck_assert_uint_eq(d.ncandidates, 1);
	ck_assert_str_eq(first(&d), "onprem-vllm");
}
END_TEST

static int
down_mistral(void *ud, const struct backend *b)
{
	(void)ud;
	return strcmp(b->name, "mistral-eu") == 0 ||
	    strcmp(b->name, "onprem-vllm") == 0;
}

START_TEST(test_health_and_credentials)
{
	struct decision d;
	struct backend *m = (struct backend *)backends_find(bs, "mistral-eu");

	memset(&sc, 0, sizeof(sc));
	decide_full(NULL, "mistral-large-latest", -1, down_mistral, &d);
	ck_assert_uint_eq(d.ncandidates, 3);
	ck_assert_str_eq(first(&d), "azure-sweden");
	ck_assert_int_eq(verdict_of(&d, "mistral-eu")->verdict, V_DOWN);

	scan_set("iban", 1);
	decide_full(NULL, "mistral-large-latest", -1, down_mistral, &d);
	ck_assert_int_eq(d.deny, 1);
	ck_assert(strstr(d.reason, "onprem-vllm is down"));
	ck_assert(strstr(d.reason, "mistral-eu is down"));

	/* credentials missing at load: never a candidate, unless the
	 * caller judges the policy alone (policy test) */
	m->auth.missing = 1;
	decide(&d);
	ck_assert_uint_eq(d.ncandidates, 1);
	ck_assert_int_eq(verdict_of(&d, "mistral-eu")->verdict,
	    V_NO_CREDENTIALS);
	ck_assert(strstr(verdict_of(&d, "mistral-eu")->reason,
	    "T_POL_MISTRAL"));
	{
		struct decide_input in;

		memset(&in, 0, sizeof(in));
		in.scan = &sc;
		in.model = "mistral-large-latest";
		in.declared_level = -1;
		in.ignore_credentials = 1;
		ck_assert_int_eq(policy_decide(pol, bs, &in, NULL, NULL, &d), 0);
		ck_assert_uint_eq(d.ncandidates, 2);
	}
	m->auth.missing = 0;
}
END_TEST

/* Every require key, each alone, against the five pipes. */
static void
route_check(const char *require, const char *expect_allowed)
{
	struct diags *dg = diags_new();
	struct policy *p;
	char text[1024];
	struct decide_input in;
	struct decision d;
	char got[512] = "";
	size_t i;

	snprintf(text, sizeof(text), "name: r\nlevels: [only]\n"
	    "routes:\n  only:\n    require: %s\n"
	    "    prefer: [onprem-vllm, mistral-eu, azure-sweden, bedrock-paris,"
	    " vertex-netherlands]\n", require);
	/* prefer entries that can never qualify are errors, so load without
	 * the backend cross-checks and decide against the real set */
	p = policy_load(put("route.yaml", text), NULL, dg);
	if (p == NULL)
		diags_print(dg, stderr);
	ck_assert_ptr_nonnull(p);
	memset(&sc, 0, sizeof(sc));
	memset(&in, 0, sizeof(in));
	in.scan = &sc;
	in.model = "mistral-large-latest";
	in.declared_level = -1;
	ck_assert_int_eq(policy_decide(p, bs, &in, NULL, NULL, &d), 0);
	for (i = 0; i < d.ncandidates; i++) {
		strcat(got, i ? " " : "");
		strcat(got, d.candidates[i]->name);
	}
	ck_assert_msg(strcmp(got, expect_allowed) == 0,
	    "require %s: got '%s', expected '%s'", require, got,
	    expect_allowed);
	policy_free(p);
	diags_free(dg);
}

START_TEST(test_require_keys)
{
	route_check("{hosting: self}", "onprem-vllm");
	route_check("{hosting: vendor}",
	    "mistral-eu azure-sweden bedrock-paris vertex-netherlands");
	route_check("{operator_in: [EU]}", "onprem-vllm mistral-eu");
	route_check("{operator_in: [IE, US]}", "azure-sweden vertex-netherlands");
	route_check("{operator_in: [LU, US]}", "bedrock-paris");
	route_check("{data_in: [FR]}", "onprem-vllm bedrock-paris");
	route_check("{data_in: [EU]}", "onprem-vllm mistral-eu azure-sweden "
	    "bedrock-paris vertex-netherlands");
	route_check("{data_in: [FR, NL]}",
	    "onprem-vllm bedrock-paris vertex-netherlands");
	route_check("{cloud_act: false}", "onprem-vllm mistral-eu");
	route_check("{key_custody: customer}", "onprem-vllm");
	route_check("{retention_max: 0}", "onprem-vllm bedrock-paris");
	route_check("{retention_max: 1d}",
	    "onprem-vllm bedrock-paris vertex-netherlands");
	route_check("{retention_max: 30d}", "onprem-vllm mistral-eu "
	    "azure-sweden bedrock-paris vertex-netherlands");
	route_check("{backends: [vertex-netherlands, mistral-eu]}",
	    "mistral-eu vertex-netherlands");
	route_check("{operator_in: [EEA], data_in: [EEA], hosting: vendor}",
	    "mistral-eu");
	route_check("{}", "onprem-vllm mistral-eu azure-sweden bedrock-paris "
	    "vertex-netherlands");
}
END_TEST

START_TEST(test_requirement_reasons)
{
	struct decision d;

	memset(&sc, 0, sizeof(sc));
	scan_set("health", 1);
	decide(&d);
	ck_assert_int_eq(verdict_of(&d, "mistral-eu")->verdict,
	    V_NOT_PREFERRED);
	ck_assert_str_eq(verdict_of(&d, "mistral-eu")->reason,
	    "not in routes.restricted.prefer");
	{
		char why[160];
		const struct route *rc = &pol->routes[2];

		ck_assert_int_eq(requirement_check(&rc->req,
		    backends_find(bs, "azure-sweden"), why, sizeof(why)), -1);
		ck_assert_str_eq(why, "parent_country US not in [EU]");
		ck_assert_int_eq(requirement_check(&pol->routes[3].req,
		    backends_find(bs, "mistral-eu"), why, sizeof(why)), -1);
		ck_assert_str_eq(why, "hosting vendor, route requires self");
	}
}
END_TEST

START_TEST(test_no_route)
{
	struct diags *dg = diags_new();
	struct policy *p = policy_load(put("nr.yaml", "name: nr\n"
	    "levels: [low, high]\nclassify: {findings: {iban: high}}\n"
	    "routes: {low: {prefer: [mistral-eu]}}\n"), bs, dg);
	struct decide_input in;
	struct decision d;

	ck_assert_ptr_nonnull(p);
	ck_assert(has_diag(dg, DIAG_WARNING, 0, "no route"));
	memset(&sc, 0, sizeof(sc));
	scan_set("iban", 1);
	memset(&in, 0, sizeof(in));
	in.scan = &sc;
	in.model = "mistral-large-latest";
	in.declared_level = -1;
	ck_assert_int_eq(policy_decide(p, bs, &in, NULL, NULL, &d), 0);
	ck_assert_int_eq(d.deny, 1);
	ck_assert_str_eq(d.deny_code, "no_route");
	/* out-of-range declared level: refuse to decide (fail closed) */
	in.declared_level = 7;
	ck_assert_int_eq(policy_decide(p, bs, &in, NULL, NULL, &d), -1);
	policy_free(p);
	diags_free(dg);
}
END_TEST



START_TEST(test_decision_summary)
{
	struct decision d;
	char *j;

	memset(&sc, 0, sizeof(sc));
	scan_set("iban", 1);
	decide(&d);
	j = decision_summary_json(pol, &d);
	ck_assert(strstr(j, "\"policy\":\"hospital-default\""));
	ck_assert(strstr(j, "\"level\":\"confidential\""));
	ck_assert(strstr(j, "\"action\":\"allow\""));
	ck_assert(strstr(j, "\"backend\":\"onprem-vllm\""));
	free(j);
	decide_full(NULL, "gpt-4o", -1, NULL, &d);
	j = decision_summary_json(pol, &d);
	ck_assert(strstr(j, "\"backend\":null"));
	ck_assert(strstr(j, "\"deny_code\":\"no_allowed_backend\""));
	free(j);
}
END_TEST

/* Runs a command with stdout captured into buf. */
static int
run_captured(int (*fn)(const char *, int, char **), const char *config,
    int argc, char **argv, char *buf, size_t len)
{
	char path[600];
	FILE *f;
	size_t n;
	int rc, saved;

	snprintf(path, sizeof(path), "%s/stdout.txt", tmpdir);
	fflush(stdout);
	saved = dup(1);
	f = fopen(path, "w");
	dup2(fileno(f), 1);
	rc = fn(config, argc, argv);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	fclose(f);
	f = fopen(path, "r");
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	return rc;
}

START_TEST(test_policy_replay)
{
	sqlite3 *db;
	char cfg[600], out[8192];
	char *argv[8];
	const char *src = getenv("SOVGATE_SRCDIR");
	char schema[600];
	size_t len;
	char *sql;

	if (src == NULL || *src == '\0')
		src = ".";
	snprintf(schema, sizeof(schema), "%s/sql/schema.sql", src);
	sql = read_file(schema, &len);
	ck_assert_ptr_nonnull(sql);
	ck_assert_int_eq(sqlite3_open(sub_path("log.db"), &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	free(sql);
	ck_assert_int_eq(sqlite3_exec(db, "INSERT INTO decisions(id, ts_ms, "
	    "client, model, findings_json, declared_level, level, action, "
	    "backend, prev_hash, row_hash) VALUES "
	    "('d1', 1000, 'a', 'mistral-large-latest', '{\"iban\":1}', NULL, "
	    "'confidential', 'allow', 'onprem-vllm', '', ''),"
	    "('d2', 2000, 'a', 'mistral-large-latest', '{\"email\":1}', NULL, "
	    "'internal', 'allow', 'mistral-eu', '', ''),"
	    "('d3', 3000, NULL, NULL, '{}', NULL, NULL, 'error', NULL, '', '')",
	    NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	snprintf(cfg, sizeof(cfg), "policy: policy.yaml\nbackends: backends\n"
	    "log: {database: log.db}\n");
	put("gw.yaml", cfg);
	/* a candidate that sends e-mail addresses to the hospital's own
	 * hardware only */
	put("new.yaml", "name: stricter\nlevels: [public, internal]\n"
	    "classify: {findings: {email: internal}}\n"
	    "routes:\n  public: {prefer: [mistral-eu]}\n"
	    "  internal: {require: {hosting: self}, prefer: [onprem-vllm]}\n");
	argv[0] = "replay";
	argv[1] = "--policy";
	argv[2] = (char *)sub_path("new.yaml");
	argv[2] = strdup(argv[2]);
	ck_assert_int_eq(run_captured(cmd_policy, sub_path("gw.yaml"), 3, argv,
	    out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "3 replayed") == NULL, "%s", out);
	ck_assert_msg(strstr(out, "2 replayed, 2 would change, 1 skipped"),
	    "%s", out);
	ck_assert_msg(strstr(out, "d1 client a model mistral-large-latest: "
	    "level confidential -> public backend onprem-vllm -> mistral-eu"),
	    "%s", out);
	ck_assert_msg(strstr(out, "d2 client a model mistral-large-latest: "
	    "backend mistral-eu -> onprem-vllm"), "%s", out);
	/* a window */
	argv[3] = "--since";
	argv[4] = "1970-01-01T00:00:01.500Z";
	ck_assert_int_eq(run_captured(cmd_policy, sub_path("gw.yaml"), 5, argv,
	    out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "1 replayed, 1 would change"), "%s", out);
	/* usage errors */
	argv[4] = "soon";
	ck_assert_int_eq(run_captured(cmd_policy, sub_path("gw.yaml"), 5, argv,
	    out, sizeof(out)), 2);
	ck_assert_int_eq(run_captured(cmd_policy, sub_path("gw.yaml"), 1, argv,
	    out, sizeof(out)), 2);
	free(argv[2]);
}
END_TEST

/* The shipped examples load without errors or warnings (credentials
 * aside) and their tests pass against the shipped backends. */
START_TEST(test_shipped_examples)
{
	static const char *const policies[] = { "hospital.yaml", "bank.yaml",
		"public-agency.yaml" };
	const char *src = getenv("SOVGATE_SRCDIR");
	char path[1024];
	struct diags *d = diags_new();
	struct backend_set *sbs;
	size_t i, j;

	if (src == NULL || *src == '\0')
		src = ".";
	snprintf(path, sizeof(path), "%s/backends", src);
	sbs = backends_load(path, d);
	if (sbs == NULL)
		diags_print(d, stderr);
	ck_assert_ptr_nonnull(sbs);
	ck_assert_uint_eq(sbs->n, 5);
	for (j = 0; j < d->n; j++)
		ck_assert_msg(strstr(d->v[j].msg, "credential missing"),
		    "unexpected: %s", d->v[j].msg);
	for (i = 0; i < ARRAY_LEN(policies); i++) {
		struct diags *pd = diags_new();
		struct policy *p;
		struct classifier *clf;
		int np, nf;
		FILE *devnull = fopen("/dev/null", "w");

		snprintf(path, sizeof(path), "%s/policy/%s", src, policies[i]);
		p = policy_load(path, sbs, pd);
		if (p == NULL || pd->n)
			diags_print(pd, stderr);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_eq(pd->n, 0);
		ck_assert_uint_ge(p->ntests, 5);
		clf = classifier_for(p, NULL, pd);
		ck_assert_ptr_nonnull(clf);
		policy_run_tests(p, sbs, clf, devnull ? devnull : stderr, &np,
		    &nf);
		if (nf)
			policy_run_tests(p, sbs, clf, stderr, &np, &nf);
		ck_assert_msg(nf == 0, "%s: %d tests failed", policies[i], nf);
		ck_assert_int_eq((size_t)np, p->ntests);
		if (devnull)
			fclose(devnull);
		classifier_free(clf);
		policy_free(p);
		diags_free(pd);
	}
	backends_free(sbs);
	diags_free(d);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("policy");
	TCase *tl = tcase_create("load");
	TCase *td = tcase_create("decide");

	tcase_add_checked_fixture(tl, setup, teardown);
	tcase_add_checked_fixture(td, setup, teardown);
	tcase_add_test(tl, test_load_spec_policy);
	tcase_add_test(tl, test_load_errors);
	tcase_add_test(tl, test_load_warnings);
	tcase_add_test(tl, test_load_directory_merge);
	tcase_add_test(td, test_nothing_found_is_lowest);
	tcase_add_test(td, test_finding_levels);
	tcase_add_test(td, test_full_type_before_category);
	tcase_add_test(td, test_deny_wins);
	tcase_add_test(td, test_bulk_rules);
	tcase_add_test(td, test_custom_rules);
	tcase_add_test(td, test_floor_and_header);
	tcase_add_test(td, test_model_filter_and_deny_reason);
	tcase_add_test(td, test_health_and_credentials);
	tcase_add_test(td, test_require_keys);
	tcase_add_test(td, test_requirement_reasons);
	tcase_add_test(td, test_no_route);
	tcase_add_test(tl, test_shipped_examples);
	tcase_add_test(td, test_decision_summary);
	tcase_add_test(td, test_policy_replay);
	suite_add_tcase(s, tl);
	suite_add_tcase(s, td);
	return run_suite(s);
}
