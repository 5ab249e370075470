/*
 * backend.c - see backend.h.
 *
 * A descriptor states facts a buyer audits (operator, its law, where data is
 * processed, key custody, retention), so every field is checked strictly:
 * an unknown key or a malformed country code is an error, never a guess.
 * Secrets are resolved from the environment here, once, and only ever kept
 * in struct backend_auth; no message in this file prints one.
 */
#include "backend.h"
#include "config.h"
#include "policy.h"
#include "util.h"
#include "yamltree.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- countries and regions ---- */

static const char eu27[] = "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV "
    "LT LU MT NL PL PT RO SK SI ES SE";
static const char eea_extra[] = "IS LI NO";

/* ISO 3166-1 alpha-2, officially assigned codes. */
static const char iso3166[] =
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI "
    "BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN "
    "CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK "
    "FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM "
    "HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN "
    "KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK "
    "ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP "
    "NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW "
    "SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF "
    "TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI "
    "VN VU WF WS YE YT ZA ZM ZW";

static int
in_list(const char *list, const char *cc)
{
	const char *p;

	if (strlen(cc) != 2)
		return 0;
	for (p = list; *p; p += (p[2] == ' ') ? 3 : 2)
		if (p[0] == cc[0] && p[1] == cc[1])
			return 1;
	return 0;
}

int
country_code_valid(const char *cc)
{
	return cc != NULL && strlen(cc) == 2 && in_list(iso3166, cc);
}

int
region_name_valid(const char *r)
{
	return r != NULL && (strcmp(r, "EU") == 0 || strcmp(r, "EEA") == 0 ||
	    country_code_valid(r));
}

int
region_contains(const char *region, const char *cc)
{
	if (region == NULL || cc == NULL)
		return 0;
	if (strcmp(region, "EU") == 0)
		return in_list(eu27, cc);
	if (strcmp(region, "EEA") == 0)
		return in_list(eu27, cc) || in_list(eea_extra, cc);
	return ascii_casecmp(region, cc) == 0;
}

/* ---- names ---- */

static const char *const kind_names[] = { "openai", "mistral", "azure",
	"bedrock", "vertex", NULL };
static const char *const auth_names[] = { "none", "bearer", "api-key",
	"aws-sigv4", "google-service-account", NULL };

const char *
backend_kind_name(enum backend_kind k)
{
	if ((unsigned)k < ARRAY_LEN(kind_names) - 1)
		return kind_names[k];
	return "?";
}

const char *
auth_type_name(enum auth_type t)
{
	if ((unsigned)t < ARRAY_LEN(auth_names) - 1)
		return auth_names[t];
	return "?";
}

/* Index of s in a NULL-terminated list, or -1 with an error naming the
 * choices (and the closest one). */
static int
pick(const struct ynode *n, const char *what, const char *const *names,
    struct diags *d)
{
	size_t i;
	const char *s, *close;
	char list[256];
	size_t off = 0;

	if (ynode_expect(n, YN_SCALAR, what, d) < 0)
		return -1;
	s = n->str;
	for (i = 0; names[i]; i++)
		if (strcmp(s, names[i]) == 0)
			return (int)i;
	list[0] = '\0';
	for (i = 0; names[i] && off < sizeof(list); i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
		    i ? ", " : "", names[i]);
	close = closest_name(s, names, i);
	if (close)
		ynode_diag(n, d, DIAG_ERROR, "%s: unknown value '%s' (did you "
		    "mean '%s'?)", what, s, close);
	else
		ynode_diag(n, d, DIAG_ERROR, "%s: unknown value '%s'; expected "
		    "one of: %s", what, s, list);
	return -1;
}

static int
get_country(const struct ynode *n, const char *what, char out[3],
    struct diags *d)
{
	if (ynode_expect(n, YN_SCALAR, what, d) < 0)
		return -1;
	if (country_code_valid(n->str)) {
		memcpy(out, n->str, 3);
		return 0;
	}
	if (strcmp(n->str, "UK") == 0)
		ynode_diag(n, d, DIAG_ERROR, "%s: 'UK' is not an ISO 3166-1 "
		    "code; the United Kingdom is 'GB'", what);
	else if (strcmp(n->str, "EL") == 0)
		ynode_diag(n, d, DIAG_ERROR, "%s: 'EL' is the EU's code for "
		    "Greece; ISO 3166-1 (used here) says 'GR'", what);
	else if (strlen(n->str) == 2 && country_code_valid((char[3]){
	    (char)(n->str[0] & ~0x20), (char)(n->str[1] & ~0x20), 0 }))
		ynode_diag(n, d, DIAG_ERROR, "%s: write country codes in "
		    "capitals ('%c%c')", what, n->str[0] & ~0x20,
		    n->str[1] & ~0x20);
	else
		ynode_diag(n, d, DIAG_ERROR, "%s: '%s' is not an ISO 3166-1 "
		    "alpha-2 country code (e.g. FR, DE, IE, US)", what,
		    n->str);
	return -1;
}

/* ---- endpoint ---- */

/* Split an http(s) URL into its parts. Refuses what we cannot honour
 * faithfully: user info (credentials in URLs end up in logs), queries and
 * fragments. On error returns -1 with a reason in err. */
int
endpoint_parse(const char *url, int *use_tls, char **host, int *port,
    char **base_path, char *err, size_t errlen)
{
	const char *p, *hs, *he, *ps;
	size_t l;
	long pv = -1;

	*host = NULL;
	*base_path = NULL;
	if (strncmp(url, "https://", 8) == 0) {
		*use_tls = 1;
		p = url + 8;
	} else if (strncmp(url, "http://", 7) == 0) {
		*use_tls = 0;
		p = url + 7;
	} else {
		snprintf(err, errlen, "must start with https:// (or http:// "
		    "for a local server)");
		return -1;
	}
	ps = p + strcspn(p, "/?#");
	if (memchr(p, '@', (size_t)(ps - p)) != NULL) {
		snprintf(err, errlen, "must not contain user:password@; give "
		    "credentials with auth:");
		return -1;
	}
	if (*p == '[') {
		hs = p + 1;
		he = memchr(hs, ']', (size_t)(ps - hs));
		if (he == NULL || he == hs) {
			snprintf(err, errlen, "bad IPv6 address in brackets");
			return -1;
		}
		p = he + 1;
	} else {
		hs = p;
		he = p + strcspn(p, ":/?#");
		p = he;
	}
	if (he == hs) {
		snprintf(err, errlen, "has no host name");
		return -1;
	}
	if (*p == ':') {
		char *end;

		pv = strtol(p + 1, &end, 10);
		if (end == p + 1 || end != ps || pv < 1 || pv > 65535) {
			snprintf(err, errlen, "has a bad port");
			return -1;
		}
	} else if (p != ps) {
		snprintf(err, errlen, "is not a URL");
		return -1;
	}
	if (strpbrk(ps, "?#") != NULL) {
		snprintf(err, errlen, "must not have a query or fragment");
		return -1;
	}
	*port = pv > 0 ? (int)pv : (*use_tls ? 443 : 80);
	*host = xstrndup(hs, (size_t)(he - hs));
	l = strlen(ps);
	while (l > 0 && ps[l - 1] == '/')
		l--;
	*base_path = xstrndup(ps, l);
	return 0;
}

/* ---- freeing ---- */

static void
backend_free(struct backend *b)
{
	size_t i;

	if (b == NULL)
		return;
	free(b->name);
	free(b->file);
	free(b->endpoint);
	free(b->host);
	free(b->base_path);
	free(b->pool_key);
	free(b->region);
	free(b->project);
	free(b->api_version);
	free(b->operator_name);
	free(b->facts_json);
	free(b->data_countries);
	free(b->auth.key_env);
	free(b->auth.access_key_env);
	free(b->auth.secret_key_env);
	free(b->auth.session_token_env);
	free(b->auth.credentials_file);
	/* secrets: wipe before release */
	if (b->auth.key)
		explicit_bzero(b->auth.key, strlen(b->auth.key));
	if (b->auth.access_key)
		explicit_bzero(b->auth.access_key, strlen(b->auth.access_key));
	if (b->auth.secret_key)
		explicit_bzero(b->auth.secret_key, strlen(b->auth.secret_key));
	if (b->auth.session_token)
		explicit_bzero(b->auth.session_token,
		    strlen(b->auth.session_token));
	free(b->auth.key);
	free(b->auth.access_key);
	free(b->auth.secret_key);
	free(b->auth.session_token);
	free(b->tls.ca_file);
	free(b->tls.cert);
	free(b->tls.key);
	free(b->tls.server_name);
	for (i = 0; i < b->nmodels; i++) {
		free(b->models[i].name);
		free(b->models[i].id);
	}
	free(b->models);
	free(b);
}

void
backends_free(struct backend_set *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n; i++)
		backend_free(s->v[i]);
	free(s->v);
	free(s);
}

/* ---- one descriptor ---- */

static char *
dup_str(const struct ynode *n, const char *what, struct diags *d)
{
	const char *s = ynode_str(n, what, d);

	return s ? xstrdup(s) : NULL;
}

/* Environment variable names: what a shell can export. */
static int
env_name_valid(const char *s)
{
	size_t i;

	if (s == NULL || !(*s == '_' || (*s >= 'A' && *s <= 'Z') ||
	    (*s >= 'a' && *s <= 'z')))
		return 0;
	for (i = 1; s[i]; i++)
		if (!(s[i] == '_' || (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

static char *
env_name(const struct ynode *m, const char *key, const char *dflt,
    struct diags *d)
{
	const struct ynode *n = ynode_get(m, key);
	const char *s;

	if (n == NULL)
		return dflt ? xstrdup(dflt) : NULL;
	s = ynode_str(n, key, d);
	if (s == NULL)
		return NULL;
	if (!env_name_valid(s)) {
		/* It may be the secret itself, pasted by mistake: do not
		 * echo it. */
		ynode_diag(n, d, DIAG_ERROR, "auth.%s must name an environment "
		    "variable (letters, digits, _), not hold the secret: "
		    "secrets never go in the YAML", key);
		return NULL;
	}
	return xstrdup(s);
}

/* Resolve one secret from the environment. A missing one is a warning:
 * the backend is simply never a candidate until it is provided. */
static char *
secret_from_env(struct backend *b, const struct ynode *pos, const char *var,
    int required, struct diags *d)
{
	const char *v;

	if (var == NULL)
		return NULL;
	v = getenv(var);
	if (v == NULL || *v == '\0') {
		if (required) {
			b->auth.missing = 1;
			ynode_diag(pos, d, DIAG_WARNING, "backend '%s': "
			    "credential missing: environment variable %s is "
			    "not set; the backend will not be used until it is "
			    "(export it and reload)", b->name ? b->name : "?",
			    var);
		}
		return NULL;
	}
	return xstrdup(v);
}

static void
load_auth(struct backend *b, const struct ynode *m, const char *dir,
    struct diags *d)
{
	static const char *const known[] = { "type", "key_env",
		"access_key_env", "secret_key_env", "session_token_env",
		"credentials_file", NULL };
	const struct ynode *tn;
	int t;

	if (m == NULL) {
		/* Only a self-run OpenAI-compatible server may go without:
		 * every vendor needs credentials, and saying which is the
		 * officer's choice, not ours. */
		if (b->kind == BK_OPENAI) {
			b->auth.type = AUTH_NONE;
			return;
		}
		diags_add(d, DIAG_ERROR, b->file, b->line, b->col, "backend "
		    "'%s' of kind %s needs an auth block, e.g. auth: {type: "
		    "%s, ...}", b->name ? b->name : "?",
		    backend_kind_name(b->kind),
		    b->kind == BK_BEDROCK ? "aws-sigv4" : b->kind == BK_VERTEX ?
		    "google-service-account" : b->kind == BK_AZURE ? "api-key" :
		    "bearer");
		return;
	}
	if (ynode_expect(m, YN_MAP, "auth", d) < 0)
		return;
	ynode_check_keys(m, known, d);
	tn = ynode_get(m, "type");
	if (tn == NULL) {
		ynode_diag(m, d, DIAG_ERROR, "auth needs a type: none, bearer, "
		    "api-key, aws-sigv4 or google-service-account");
		return;
	}
	t = pick(tn, "auth.type", auth_names, d);
	if (t < 0)
		return;
	b->auth.type = (enum auth_type)t;
	switch (b->auth.type) {
	case AUTH_NONE:
		break;
	case AUTH_BEARER:
	case AUTH_API_KEY:
		b->auth.key_env = env_name(m, "key_env", NULL, d);
		if (ynode_get(m, "key_env") == NULL)
			ynode_diag(m, d, DIAG_ERROR, "auth type %s needs "
			    "key_env: the environment variable holding the key",
			    auth_type_name(b->auth.type));
		b->auth.key = secret_from_env(b, ynode_get(m, "key_env"),
		    b->auth.key_env, 1, d);
		break;
	case AUTH_SIGV4:
		b->auth.access_key_env = env_name(m, "access_key_env",
		    "AWS_ACCESS_KEY_ID", d);
		b->auth.secret_key_env = env_name(m, "secret_key_env",
		    "AWS_SECRET_ACCESS_KEY", d);
		b->auth.session_token_env = env_name(m, "session_token_env",
		    "AWS_SESSION_TOKEN", d);
		b->auth.access_key = secret_from_env(b, tn,
		    b->auth.access_key_env, 1, d);
		b->auth.secret_key = secret_from_env(b, tn,
		    b->auth.secret_key_env, 1, d);
		/* only temporary credentials have a session token */
		b->auth.session_token = secret_from_env(b, tn,
		    b->auth.session_token_env, 0, d);
		break;
	case AUTH_GSA: {
		const struct ynode *cf = ynode_get(m, "credentials_file");
		const char *s = ynode_str(cf, "auth.credentials_file", d);

		if (cf == NULL) {
			ynode_diag(m, d, DIAG_ERROR, "auth type "
			    "google-service-account needs credentials_file: the "
			    "service account's JSON key file");
			break;
		}
		if (s == NULL)
			break;
		b->auth.credentials_file = path_resolve(dir, s);
		if (access(b->auth.credentials_file, R_OK) != 0) {
			b->auth.missing = 1;
			ynode_diag(cf, d, DIAG_WARNING, "backend '%s': "
			    "credential missing: cannot read %s (%s); the "
			    "backend will not be used until it can",
			    b->name ? b->name : "?", b->auth.credentials_file,
			    strerror(errno));
		}
		break;
	}
	}
	/* the protocols fix which auth each kind can use */
	if (b->kind == BK_BEDROCK && b->auth.type != AUTH_SIGV4)
		ynode_diag(tn, d, DIAG_ERROR, "kind bedrock authenticates with "
		    "aws-sigv4, not %s", auth_type_name(b->auth.type));
	if (b->kind != BK_BEDROCK && b->auth.type == AUTH_SIGV4)
		ynode_diag(tn, d, DIAG_ERROR, "aws-sigv4 is only for kind "
		    "bedrock");
	if (b->kind != BK_VERTEX && b->auth.type == AUTH_GSA)
		ynode_diag(tn, d, DIAG_ERROR, "google-service-account is only "
		    "for kind vertex");
	if (b->kind == BK_VERTEX && b->auth.type != AUTH_GSA &&
	    b->auth.type != AUTH_BEARER)
		ynode_diag(tn, d, DIAG_ERROR, "kind vertex authenticates with "
		    "google-service-account (or bearer), not %s",
		    auth_type_name(b->auth.type));
	if (b->kind == BK_AZURE && b->auth.type != AUTH_API_KEY &&
	    b->auth.type != AUTH_BEARER)
		ynode_diag(tn, d, DIAG_ERROR, "kind azure authenticates with "
		    "api-key (or bearer), not %s", auth_type_name(b->auth.type));
	if (b->kind == BK_MISTRAL && b->auth.type != AUTH_BEARER)
		ynode_diag(tn, d, DIAG_ERROR, "kind mistral authenticates with "
		    "bearer, not %s", auth_type_name(b->auth.type));
}

static void
load_tls(struct backend *b, const struct ynode *m, const char *dir,
    struct diags *d)
{
	static const char *const known[] = { "ca_file", "cert", "key",
		"server_name", NULL };
	const char *s;

	if (ynode_expect(m, YN_MAP, "tls", d) < 0)
		return;
	ynode_check_keys(m, known, d);
	if ((s = ynode_str(ynode_get(m, "ca_file"), "tls.ca_file", d)))
		b->tls.ca_file = path_resolve(dir, s);
	if ((s = ynode_str(ynode_get(m, "cert"), "tls.cert", d)))
		b->tls.cert = path_resolve(dir, s);
	if ((s = ynode_str(ynode_get(m, "key"), "tls.key", d)))
		b->tls.key = path_resolve(dir, s);
	b->tls.server_name = dup_str(ynode_get(m, "server_name"),
	    "tls.server_name", d);
	if ((b->tls.cert == NULL) != (b->tls.key == NULL))
		ynode_diag(m, d, DIAG_ERROR, "tls: mutual TLS needs both cert "
		    "and key");
	if (b->tls.ca_file && access(b->tls.ca_file, R_OK) != 0)
		ynode_diag(ynode_get(m, "ca_file"), d, DIAG_ERROR, "tls.ca_file "
		    "%s: %s", b->tls.ca_file, strerror(errno));
	if (b->tls.cert && access(b->tls.cert, R_OK) != 0)
		ynode_diag(ynode_get(m, "cert"), d, DIAG_ERROR, "tls.cert "
		    "%s: %s", b->tls.cert, strerror(errno));
	if (b->tls.key && access(b->tls.key, R_OK) != 0)
		ynode_diag(ynode_get(m, "key"), d, DIAG_ERROR, "tls.key %s: %s",
		    b->tls.key, strerror(errno));
}

static void
load_models(struct backend *b, const struct ynode *m, struct diags *d)
{
	size_t i, j;

	if (ynode_is_null(m)) {
		diags_add(d, DIAG_WARNING, b->file, b->line, b->col, "backend "
		    "'%s' lists no models: no request can be routed to it; add "
		    "models: {NAME_CLIENTS_USE: BACKEND_MODEL_ID}",
		    b->name ? b->name : "?");
		return;
	}
	if (m->type != YN_MAP && m->type != YN_SEQ) {
		ynode_diag(m, d, DIAG_ERROR, "models must be a mapping from the "
		    "name clients ask for to this backend's model id");
		return;
	}
	b->models = xcalloc(m->n ? m->n : 1, sizeof(*b->models));
	for (i = 0; i < m->n; i++) {
		/* a list entry names a model served under its own name */
		const struct ynode *k = m->type == YN_MAP ? m->keys[i] :
		    m->items[i];
		const struct ynode *v = m->items[i];
		const char *name = ynode_str(k, "a model name", d);
		const char *id = ynode_str(v, "a model id", d);

		if (name == NULL || id == NULL)
			continue;
		for (j = 0; j < b->nmodels; j++)
			if (strcmp(b->models[j].name, name) == 0)
				break;
		if (j < b->nmodels) {
			ynode_diag(k, d, DIAG_ERROR, "model '%s' is listed twice",
			    name);
			continue;
		}
		b->models[b->nmodels].name = xstrdup(name);
		b->models[b->nmodels].id = xstrdup(id);
		b->nmodels++;
	}
}

static int
name_valid(const char *s)
{
	size_t i;

	if (s == NULL || *s == '\0' || strlen(s) > 64)
		return 0;
	for (i = 0; s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return 0;
	return 1;
}

static int64_t
timeout_of(const struct ynode *m, const char *key, struct diags *d)
{
	const struct ynode *n = ynode_get(m, key);
	int64_t v = 0;

	if (n == NULL)
		return 0;
	if (n->type != YN_SCALAR || parse_duration_ms(n->str, &v) < 0 ||
	    v <= 0) {
		ynode_diag(n, d, DIAG_ERROR, "%s must be a duration such as 5s "
		    "or 500ms", key);
		return 0;
	}
	return v;
}

static void
fmt_duration(int64_t ms, char *out, size_t len)
{
	if (ms == 0)
		snprintf(out, len, "none");
	else if (ms % 86400000 == 0)
		snprintf(out, len, "%lldd", (long long)(ms / 86400000));
	else if (ms % 3600000 == 0)
		snprintf(out, len, "%lldh", (long long)(ms / 3600000));
	else if (ms % 60000 == 0)
		snprintf(out, len, "%lldm", (long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(out, len, "%llds", (long long)(ms / 1000));
	else
		snprintf(out, len, "%lldms", (long long)ms);
}

void
duration_format(int64_t ms, char *out, size_t len)
{
	fmt_duration(ms, out, len);
}

/* Plain http to the machine itself crosses no network (a local tunnel or
 * a test double), so it deserves no warning. */
static int
host_is_loopback(const char *h)
{
	return strcmp(h, "localhost") == 0 || strcmp(h, "::1") == 0 ||
	    strncmp(h, "127.", 4) == 0;
}

/* Parse one descriptor (a mapping). NULL on error. */
static struct backend *
backend_parse(const struct ynode *m, const char *file, const char *dir,
    struct diags *d)
{
	static const char *const known[] = { "name", "kind", "endpoint",
		"region", "project", "api_version", "operator",
		"operator_country", "parent_country", "data_countries",
		"hosting", "key_custody", "retention", "auth", "tls", "models",
		"connect_timeout", "first_byte_timeout", "stream_idle_timeout",
		NULL };
	static const char *const hosting_names[] = { "self", "vendor", NULL };
	static const char *const custody_names[] = { "customer", "provider",
		NULL };
	size_t errs0 = d->nerrors;
	struct backend *b;
	const struct ynode *n;
	int v;
	size_t i, j;
	char err[160];

	if (ynode_expect(m, YN_MAP, "a backend descriptor", d) < 0)
		return NULL;
	b = xcalloc(1, sizeof(*b));
	b->file = xstrdup(file);
	b->line = m->line;
	b->col = m->col;
	ynode_check_keys(m, known, d);

	n = ynode_get(m, "name");
	if (n == NULL) {
		ynode_diag(m, d, DIAG_ERROR, "backend without a name; add name: "
		    "...");
	} else if ((b->name = dup_str(n, "name", d)) != NULL) {
		b->line = n->line;
		b->col = n->col;
		if (!name_valid(b->name))
			ynode_diag(n, d, DIAG_ERROR, "backend name '%s' may hold "
			    "only letters, digits, '-', '_' and '.' (at most "
			    "64)", b->name);
	}

	n = ynode_get(m, "kind");
	if (n == NULL)
		ynode_diag(m, d, DIAG_ERROR, "backend '%s' needs a kind: openai, "
		    "mistral, azure, bedrock or vertex", b->name ? b->name : "?");
	else if ((v = pick(n, "kind", kind_names, d)) >= 0)
		b->kind = (enum backend_kind)v;

	b->region = dup_str(ynode_get(m, "region"), "region", d);
	b->project = dup_str(ynode_get(m, "project"), "project", d);
	b->api_version = dup_str(ynode_get(m, "api_version"), "api_version",
	    d);
	b->endpoint = dup_str(ynode_get(m, "endpoint"), "endpoint", d);
	if (b->region && b->kind != BK_BEDROCK && b->kind != BK_VERTEX &&
	    b->kind != BK_AZURE)
		ynode_diag(ynode_get(m, "region"), d, DIAG_WARNING, "region is "
		    "used only by kinds bedrock and vertex; it is ignored here");
	if (b->project && b->kind != BK_VERTEX)
		ynode_diag(ynode_get(m, "project"), d, DIAG_WARNING, "project "
		    "is used only by kind vertex; it is ignored here");
	if (b->api_version && b->kind != BK_AZURE)
		ynode_diag(ynode_get(m, "api_version"), d, DIAG_WARNING,
		    "api_version is used only by kind azure; it is ignored here");

	/* the kind's default endpoint */
	if (b->endpoint == NULL && ynode_get(m, "endpoint") == NULL) {
		switch (b->kind) {
		case BK_MISTRAL:
			b->endpoint = xstrdup("https://api.mistral.ai");
			break;
		case BK_BEDROCK:
			if (b->region)
				b->endpoint = xasprintf("https://bedrock-runtime."
				    "%s.amazonaws.com", b->region);
			else
				ynode_diag(m, d, DIAG_ERROR, "kind bedrock needs "
				    "region (e.g. eu-west-3) or endpoint");
			break;
		case BK_VERTEX:
			if (b->region)
				b->endpoint = xasprintf("https://%s-aiplatform."
				    "googleapis.com", b->region);
			else
				ynode_diag(m, d, DIAG_ERROR, "kind vertex needs "
				    "region (e.g. europe-west4) or endpoint");
			break;
		case BK_AZURE:
			ynode_diag(m, d, DIAG_ERROR, "kind azure needs endpoint: "
			    "your resource's URL, e.g. https://NAME.services."
			    "ai.azure.com/models");
			break;
		case BK_OPENAI:
			ynode_diag(m, d, DIAG_ERROR, "kind openai needs endpoint: "
			    "the URL of your server, e.g. http://10.0.0.5:8000/v1");
			break;
		}
	}
	if (b->kind == BK_VERTEX && b->project == NULL)
		ynode_diag(m, d, DIAG_ERROR, "kind vertex needs project: your "
		    "Google Cloud project id");
	if (b->kind == BK_VERTEX && b->region == NULL && b->endpoint)
		ynode_diag(m, d, DIAG_ERROR, "kind vertex needs region: it is "
		    "part of every request path");
	if (b->kind == BK_BEDROCK && b->region == NULL && b->endpoint)
		ynode_diag(m, d, DIAG_ERROR, "kind bedrock needs region: SigV4 "
		    "signs with it");
	if (b->kind == BK_AZURE && b->api_version == NULL)
		b->api_version = xstrdup("2024-05-01-preview");
	if (b->endpoint) {
		if (endpoint_parse(b->endpoint, &b->use_tls, &b->host, &b->port,
		    &b->base_path, err, sizeof(err)) < 0)
			ynode_diag(ynode_get(m, "endpoint"), d, DIAG_ERROR,
			    "endpoint '%s' %s", b->endpoint, err);
	}

	n = ynode_get(m, "operator");
	if (n == NULL)
		ynode_diag(m, d, DIAG_ERROR, "backend '%s' needs operator: the "
		    "legal entity you contract with (your own organisation "
		    "when self-hosted)", b->name ? b->name : "?");
	else
		b->operator_name = dup_str(n, "operator", d);
	n = ynode_get(m, "operator_country");
	if (n == NULL)
		ynode_diag(m, d, DIAG_ERROR, "backend '%s' needs "
		    "operator_country: the ISO code of the operator's country",
		    b->name ? b->name : "?");
	else
		get_country(n, "operator_country", b->operator_country, d);
	n = ynode_get(m, "parent_country");
	if (n != NULL)
		get_country(n, "parent_country", b->parent_country, d);
	else
		memcpy(b->parent_country, b->operator_country, 3);

	n = ynode_get(m, "data_countries");
	if (n == NULL || ynode_is_null(n)) {
		ynode_diag(n ? n : m, d, DIAG_ERROR, "backend '%s' needs "
		    "data_countries: where prompts are processed and stored, "
		    "e.g. [FR]", b->name ? b->name : "?");
	} else if (n->type == YN_SCALAR) {
		/* one country written without brackets */
		b->data_countries = xcalloc(1, 3);
		if (get_country(n, "data_countries", b->data_countries[0],
		    d) == 0)
			b->ndata = 1;
	} else if (ynode_expect(n, YN_SEQ, "data_countries", d) == 0) {
		if (n->n == 0)
			ynode_diag(n, d, DIAG_ERROR, "data_countries is empty; "
			    "name at least one country");
		b->data_countries = xcalloc(n->n ? n->n : 1, 3);
		for (i = 0; i < n->n; i++) {
			if (get_country(n->items[i], "data_countries",
			    b->data_countries[b->ndata], d) < 0)
				continue;
			for (j = 0; j < b->ndata; j++)
				if (strcmp(b->data_countries[j],
				    b->data_countries[b->ndata]) == 0)
					break;
			if (j == b->ndata)
				b->ndata++;
		}
	}

	n = ynode_get(m, "hosting");
	if (n == NULL)
		ynode_diag(m, d, DIAG_ERROR, "backend '%s' needs hosting: self "
		    "(your hardware) or vendor", b->name ? b->name : "?");
	else if ((v = pick(n, "hosting", hosting_names, d)) >= 0)
		b->hosting = (enum hosting)v;
	n = ynode_get(m, "key_custody");
	if (n == NULL)
		b->key_custody = b->hosting == HOST_SELF ? KEYS_CUSTOMER :
		    KEYS_PROVIDER;
	else if ((v = pick(n, "key_custody", custody_names, d)) >= 0)
		b->key_custody = (enum key_custody)v;
	n = ynode_get(m, "retention");
	if (n == NULL) {
		if (b->hosting == HOST_VENDOR)
			ynode_diag(m, d, DIAG_ERROR, "backend '%s' needs "
			    "retention: none, or how long the vendor keeps "
			    "prompts (e.g. 30d); retention_max checks it",
			    b->name ? b->name : "?");
	} else if (n->type != YN_SCALAR || (strcmp(n->str, "none") != 0 &&
	    parse_duration_ms(n->str, &b->retention_ms) < 0)) {
		ynode_diag(n, d, DIAG_ERROR, "retention must be none or a "
		    "duration such as 30d");
	}

	load_auth(b, ynode_get(m, "auth"), dir, d);
	n = ynode_get(m, "tls");
	if (n != NULL && !ynode_is_null(n))
		load_tls(b, n, dir, d);
	if (n != NULL && b->endpoint && !b->use_tls)
		ynode_diag(n, d, DIAG_WARNING, "tls settings are ignored: the "
		    "endpoint is plain http");
	if (b->host && !b->use_tls && b->hosting == HOST_VENDOR &&
	    !host_is_loopback(b->host))
		ynode_diag(ynode_get(m, "endpoint"), d, DIAG_WARNING, "backend "
		    "'%s' is vendor-hosted but its endpoint is plain http: "
		    "prompts would cross networks unencrypted", b->name ?
		    b->name : "?");
	load_models(b, ynode_get(m, "models"), d);
	b->connect_timeout_ms = timeout_of(m, "connect_timeout", d);
	b->first_byte_timeout_ms = timeout_of(m, "first_byte_timeout", d);
	b->stream_idle_timeout_ms = timeout_of(m, "stream_idle_timeout", d);

	/* derived facts */
	b->cloud_act = strcmp(b->operator_country, "US") == 0 ||
	    strcmp(b->parent_country, "US") == 0;
	if (b->operator_country[0]) {
		memcpy(b->jurisdictions[0], b->operator_country, 3);
		b->njurisdictions = 1;
		if (b->parent_country[0] && strcmp(b->parent_country,
		    b->operator_country) != 0) {
			memcpy(b->jurisdictions[1], b->parent_country, 3);
			b->njurisdictions = 2;
		}
	}
	if (b->host)
		b->pool_key = xasprintf("%s://%s:%d|%s|%s|%s|%s",
		    b->use_tls ? "https" : "http", b->host, b->port,
		    b->tls.ca_file ? b->tls.ca_file : "",
		    b->tls.cert ? b->tls.cert : "",
		    b->tls.key ? b->tls.key : "",
		    b->tls.server_name ? b->tls.server_name : "");

	if (d->nerrors > errs0) {
		backend_free(b);
		return NULL;
	}
	return b;
}

/* ---- files and directories ---- */

static void
set_add(struct backend_set *s, struct backend *b, size_t *cap)
{
	if (s->n == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		s->v = xrealloc(s->v, *cap * sizeof(*s->v));
	}
	s->v[s->n++] = b;
}

static int
load_file(struct backend_set *s, size_t *cap, const char *file,
    struct diags *d)
{
	struct ydoc *doc = ydoc_load(file, d);
	char *dir;
	const struct ynode *r;
	size_t i;
	int rc = 0;

	if (doc == NULL)
		return -1;
	dir = path_dirname(file);
	r = doc->root;
	if (r == NULL || ynode_is_null(r)) {
		diags_add(d, DIAG_ERROR, file, 1, 1, "empty backend descriptor; "
		    "see backends/ in the distribution for examples");
		rc = -1;
	} else if (r->type == YN_SEQ) {
		/* several descriptors in one file */
		for (i = 0; i < r->n; i++) {
			struct backend *b = backend_parse(r->items[i], file, dir,
			    d);

			if (b)
				set_add(s, b, cap);
			else
				rc = -1;
		}
	} else {
		struct backend *b = backend_parse(r, file, dir, d);

		if (b)
			set_add(s, b, cap);
		else
			rc = -1;
	}
	free(dir);
	ydoc_free(doc);
	return rc;
}

struct backend_set *
backends_load(const char *path, struct diags *d)
{
	struct backend_set *s;
	struct stat st;
	size_t cap = 0, i, j;
	size_t errs0 = d->nerrors;

	if (stat(path, &st) != 0) {
		diags_add(d, DIAG_ERROR, path, 0, 0, "cannot read backends: %s; "
		    "set backends: in the config to a file or directory of "
		    "descriptors", strerror(errno));
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	if (S_ISDIR(st.st_mode)) {
		size_t nf;
		char **files = yaml_files_in(path, &nf, d);

		if (files != NULL && nf == 0)
			diags_add(d, DIAG_ERROR, path, 0, 0, "no *.yaml backend "
			    "descriptors in this directory");
		for (i = 0; i < nf; i++) {
			load_file(s, &cap, files[i], d);
			free(files[i]);
		}
		free(files);
		if (files == NULL && nf == 0 && d->nerrors == errs0)
			diags_add(d, DIAG_ERROR, path, 0, 0, "no *.yaml backend "
			    "descriptors in this directory");
	} else {
		load_file(s, &cap, path, d);
	}
	for (i = 0; i < s->n; i++)
		for (j = 0; j < i; j++)
			if (strcmp(s->v[i]->name, s->v[j]->name) == 0) {
				diags_add(d, DIAG_ERROR, s->v[i]->file,
				    s->v[i]->line, s->v[i]->col, "duplicate "
				    "backend name '%s' (also at %s:%d)",
				    s->v[i]->name, s->v[j]->file,
				    s->v[j]->line);
				break;
			}
	if (s->n > DECIDE_MAX_BACKENDS)
		diags_add(d, DIAG_ERROR, path, 0, 0, "%zu backends: at most %d "
		    "are supported", s->n, DECIDE_MAX_BACKENDS);
	if (d->nerrors > errs0) {
		backends_free(s);
		return NULL;
	}
	for (i = 0; i < s->n; i++) {
		s->v[i]->index = (int)i;
		/* Logged with every decision: built once, not per request. */
		s->v[i]->facts_json = backend_facts_json(s->v[i]);
	}
	return s;
}

const struct backend *
backends_find(const struct backend_set *s, const char *name)
{
	size_t i;

	if (s == NULL || name == NULL)
		return NULL;
	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i]->name, name) == 0)
			return s->v[i];
	return NULL;
}

const char *
backend_model_id(const struct backend *b, const char *model)
{
	size_t i;

	if (b == NULL || model == NULL)
		return NULL;
	for (i = 0; i < b->nmodels; i++)
		if (strcmp(b->models[i].name, model) == 0)
			return b->models[i].id;
	return NULL;
}

char *
backend_facts_json(const struct backend *b)
{
	json_t *o, *dc, *j;
	char ret[32];
	char *s;
	size_t i;

	if (b->facts_json)
		return xstrdup(b->facts_json);
	o = json_object();
	dc = json_array();
	j = json_array();
	for (i = 0; i < b->ndata; i++)
		json_array_append_new(dc, json_string(b->data_countries[i]));
	for (i = 0; i < (size_t)b->njurisdictions; i++)
		json_array_append_new(j, json_string(b->jurisdictions[i]));
	fmt_duration(b->retention_ms, ret, sizeof(ret));
	json_object_set_new(o, "kind", json_string(backend_kind_name(b->kind)));
	if (b->operator_name)
		json_object_set_new(o, "operator",
		    json_string(b->operator_name));
	json_object_set_new(o, "operator_country",
	    json_string(b->operator_country));
	json_object_set_new(o, "parent_country",
	    json_string(b->parent_country));
	json_object_set_new(o, "data_countries", dc);
	json_object_set_new(o, "hosting", json_string(b->hosting == HOST_SELF ?
	    "self" : "vendor"));
	json_object_set_new(o, "key_custody", json_string(b->key_custody ==
	    KEYS_CUSTOMER ? "customer" : "provider"));
	json_object_set_new(o, "retention", json_string(ret));
	json_object_set_new(o, "jurisdictions", j);
	json_object_set_new(o, "cloud_act", json_boolean(b->cloud_act));
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (s == NULL)
		fatal("backend_facts_json: out of memory");
	/* jansson allocates with malloc by default: free() releases it */
	return s;
}
