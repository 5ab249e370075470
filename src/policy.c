/*
 * policy.c - see policy.h.
 *
 * Loading is strict because the policy is written by compliance officers
 * and a silently ignored line is a data leak: unknown keys, unknown level
 * names, prefer entries that can never qualify are errors; suspicious but
 * legal shapes (a higher level allowing what a lower one forbids, a level
 * without a route) are warnings.
 *
 * Deciding (policy_decide) is a pure function over immutable inputs: it
 * allocates nothing and writes only into the caller's struct decision, so
 * every worker thread can call it on a shared policy.
 */
#include "policy.h"
#include "jsonout.h"
#include "config.h"
#include "util.h"
#include "yamltree.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_LEVELS 32

/* ---- freeing ---- */

static void
strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static void
requirement_free(struct requirement *r)
{
	strv_free(r->operator_in, r->noperator_in);
	strv_free(r->data_in, r->ndata_in);
	strv_free(r->backends, r->nbackends);
}

void
policy_free(struct policy *p)
{
	size_t i;

	if (p == NULL)
		return;
	free(p->name);
	free(p->file);
	strv_free(p->levels, (size_t)(p->nlevels > 0 ? p->nlevels : 0));
	for (i = 0; i < p->nfindings; i++)
		free(p->findings[i].type);
	free(p->findings);
	for (i = 0; i < p->nbulk; i++)
		free(p->bulk[i].type);
	free(p->bulk);
	for (i = 0; i < p->ncustom; i++) {
		free(p->custom[i].def.name);
		strv_free(p->custom[i].def.words, p->custom[i].def.nwords);
		free(p->custom[i].def.regex);
	}
	free(p->custom);
	for (i = 0; i < p->nfloors; i++)
		free(p->floors[i].client);
	free(p->floors);
	for (i = 0; p->routes && i < (size_t)p->nlevels; i++) {
		requirement_free(&p->routes[i].req);
		strv_free(p->routes[i].prefer, p->routes[i].nprefer);
	}
	free(p->routes);
	for (i = 0; i < p->ntests; i++) {
		struct policy_test *t = &p->tests[i];

		free(t->name);
		free(t->body);
		free(t->endpoint);
		free(t->client);
		strv_free(t->header_names, t->nheaders);
		strv_free(t->header_values, t->nheaders);
		free(t->expect_level);
		free(t->expect_backend);
		strv_free(t->expect_backend_in, t->nexpect_backend_in);
		free(t->expect_action);
		free(t->text);
	}
	free(p->tests);
	strv_free(p->files, p->nfiles);
	free(p->test_model);
	free(p);
}

int
policy_level_index(const struct policy *p, const char *name)
{
	int i;

	if (p == NULL || name == NULL)
		return -1;
	for (i = 0; i < p->nlevels; i++)
		if (strcmp(p->levels[i], name) == 0)
			return i;
	/* a header is typed by people: accept any case */
	for (i = 0; i < p->nlevels; i++)
		if (ascii_casecmp(p->levels[i], name) == 0)
			return i;
	return -1;
}

/* ---- small helpers ---- */

size_t
finding_category_len(const char *type)
{
	const char *dot;

	/* custom.NAME types keep their whole name as the "full" type; their
	 * category is "custom" */
	dot = strchr(type, '.');
	return dot ? (size_t)(dot - type) : strlen(type);
}

static int
type_name_valid(const char *s)
{
	size_t i;

	if (s == NULL || *s == '\0' || strlen(s) > 64 || *s == '.')
		return 0;
	for (i = 0; s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' &&
		    s[i] <= '9') || s[i] == '_' || s[i] == '.' || s[i] == '-'))
			return 0;
	return s[i - 1] != '.';
}

static void
join_levels(const struct policy *p, char *out, size_t len)
{
	size_t off = 0;
	int i;

	out[0] = '\0';
	for (i = 0; i < p->nlevels && off < len; i++)
		off += (size_t)snprintf(out + off, len - off, "%s%s",
		    i ? ", " : "", p->levels[i]);
}

/* A level name (or deny when allowed) -> index; LEVEL_NONE and an error
 * otherwise. */
static int
level_of(const struct policy *p, const struct ynode *n, int allow_deny,
    const char *what, struct diags *d)
{
	const char *close;
	char list[256];
	int i;

	if (ynode_expect(n, YN_SCALAR, what, d) < 0)
		return LEVEL_NONE;
	if (allow_deny && strcmp(n->str, "deny") == 0)
		return LEVEL_DENY;
	for (i = 0; i < p->nlevels; i++)
		if (strcmp(p->levels[i], n->str) == 0)
			return i;
	join_levels(p, list, sizeof(list));
	close = closest_name(n->str, (const char *const *)p->levels,
	    (size_t)p->nlevels);
	if (close == NULL && allow_deny && edit_distance(n->str, "deny") <= 1)
		close = "deny";
	if (close)
		ynode_diag(n, d, DIAG_ERROR, "%s: undefined level '%s' (did you "
		    "mean '%s'?)", what, n->str, close);
	else
		ynode_diag(n, d, DIAG_ERROR, "%s: undefined level '%s'; the "
		    "levels are: %s%s", what, n->str, list,
		    allow_deny ? " (or deny)" : "");
	return LEVEL_NONE;
}

static char **
str_list(const struct ynode *n, const char *what, size_t *count,
    struct diags *d)
{
	char **v;
	size_t i;

	*count = 0;
	if (n->type == YN_SCALAR && !ynode_is_null(n)) {
		/* a single item written without brackets */
		v = xcalloc(1, sizeof(*v));
		v[0] = xstrdup(n->str);
		*count = 1;
		return v;
	}
	if (ynode_expect(n, YN_SEQ, what, d) < 0)
		return NULL;
	v = xcalloc(n->n ? n->n : 1, sizeof(*v));
	for (i = 0; i < n->n; i++) {
		const char *s = ynode_str(n->items[i], what, d);

		if (s != NULL)
			v[(*count)++] = xstrdup(s);
	}
	return v;
}

/* ---- requirements ---- */

static void
fmt_list(char **v, size_t n, char *out, size_t len)
{
	size_t i, off;

	off = (size_t)snprintf(out, len, "[");
	for (i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(out + off, len - off, "%s%s",
		    i ? ", " : "", v[i]);
	if (off < len)
		snprintf(out + off, len - off, "]");
}

static int
in_regions(char **regions, size_t n, const char *cc)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (region_contains(regions[i], cc))
			return 1;
	return 0;
}

int
requirement_check(const struct requirement *r, const struct backend *b,
    char *reason, size_t len)
{
	char list[96], a[32], m[32];
	size_t i;

	if (r->has_hosting && b->hosting != r->hosting) {
		snprintf(reason, len, "hosting %s, route requires %s",
		    b->hosting == HOST_SELF ? "self" : "vendor",
		    r->hosting == HOST_SELF ? "self" : "vendor");
		return -1;
	}
	if (r->operator_in) {
		fmt_list(r->operator_in, r->noperator_in, list, sizeof(list));
		if (!in_regions(r->operator_in, r->noperator_in,
		    b->operator_country)) {
			snprintf(reason, len, "operator_country %s not in %s",
			    b->operator_country, list);
			return -1;
		}
		if (!in_regions(r->operator_in, r->noperator_in,
		    b->parent_country)) {
			snprintf(reason, len, "parent_country %s not in %s",
			    b->parent_country, list);
			return -1;
		}
	}
	if (r->data_in) {
		fmt_list(r->data_in, r->ndata_in, list, sizeof(list));
		for (i = 0; i < b->ndata; i++)
			if (!in_regions(r->data_in, r->ndata_in,
			    b->data_countries[i])) {
				snprintf(reason, len, "data_countries %s not "
				    "in %s", b->data_countries[i], list);
				return -1;
			}
	}
	if (r->has_cloud_act && b->cloud_act != r->cloud_act) {
		if (b->cloud_act)
			snprintf(reason, len, "cloud_act: %s %s is subject to "
			    "the US CLOUD Act", strcmp(b->operator_country,
			    "US") == 0 ? "operator_country" : "parent_country",
			    "US");
		else
			snprintf(reason, len, "cloud_act false, route "
			    "requires true");
		return -1;
	}
	if (r->has_key_custody && b->key_custody != r->key_custody) {
		snprintf(reason, len, "key_custody %s, route requires %s",
		    b->key_custody == KEYS_CUSTOMER ? "customer" : "provider",
		    r->key_custody == KEYS_CUSTOMER ? "customer" : "provider");
		return -1;
	}
	if (r->has_retention_max && b->retention_ms > r->retention_max_ms) {
		duration_format(b->retention_ms, a, sizeof(a));
		duration_format(r->retention_max_ms, m, sizeof(m));
		snprintf(reason, len, "retention %s exceeds retention_max %s",
		    a, m);
		return -1;
	}
	if (r->backends) {
		for (i = 0; i < r->nbackends; i++)
			if (strcmp(r->backends[i], b->name) == 0)
				break;
		if (i == r->nbackends) {
			fmt_list(r->backends, r->nbackends, list, sizeof(list));
			snprintf(reason, len, "not in require.backends %s",
			    list);
			return -1;
		}
	}
	return 0;
}

static void
regions_phrase(char **v, size_t n, int law, char *out, size_t len)
{
	size_t i, off = 0;

	out[0] = '\0';
	for (i = 0; i < n && off < len; i++) {
		const char *r = v[i];
		const char *the = (!law && (strcmp(r, "EU") == 0 ||
		    strcmp(r, "EEA") == 0)) ? "the " : "";

		off += (size_t)snprintf(out + off, len - off, "%s%s%s",
		    i == 0 ? "" : i + 1 == n ? " or " : ", ", the, r);
	}
}

void
requirement_describe(const struct requirement *r, char *out, size_t len)
{
	char parts[7][128];
	char tmp[96];
	size_t np = 0, i, off = 0;

	if (r->has_hosting)
		snprintf(parts[np++], sizeof(parts[0]), "%s",
		    r->hosting == HOST_SELF ? "hosted on your own "
		    "infrastructure" : "hosted by a vendor");
	if (r->operator_in) {
		regions_phrase(r->operator_in, r->noperator_in, 1, tmp,
		    sizeof(tmp));
		snprintf(parts[np++], sizeof(parts[0]), "operated under %s law",
		    tmp);
	}
	if (r->data_in) {
		regions_phrase(r->data_in, r->ndata_in, 0, tmp, sizeof(tmp));
		snprintf(parts[np++], sizeof(parts[0]), "processing data only "
		    "in %s", tmp);
	}
	if (r->has_cloud_act && !r->cloud_act)
		snprintf(parts[np++], sizeof(parts[0]), "out of the US CLOUD "
		    "Act's reach");
	if (r->has_key_custody)
		snprintf(parts[np++], sizeof(parts[0]), "%s",
		    r->key_custody == KEYS_CUSTOMER ? "with keys in your "
		    "custody" : "with provider-held keys");
	if (r->has_retention_max) {
		if (r->retention_max_ms == 0)
			snprintf(parts[np++], sizeof(parts[0]), "retaining "
			    "nothing");
		else {
			duration_format(r->retention_max_ms, tmp, sizeof(tmp));
			snprintf(parts[np++], sizeof(parts[0]), "retaining data "
			    "at most %s", tmp);
		}
	}
	if (r->backends) {
		fmt_list(r->backends, r->nbackends, tmp, sizeof(tmp));
		snprintf(parts[np++], sizeof(parts[0]), "named in %s", tmp);
	}
	out[0] = '\0';
	for (i = 0; i < np && off < len; i++)
		off += (size_t)snprintf(out + off, len - off, "%s%s",
		    i == 0 ? "" : i + 1 == np ? " and " : ", ", parts[i]);
}

/* ---- loading ---- */

struct loader {
	struct policy *p;
	const struct backend_set *bs;
	struct diags *d;
	size_t cap_findings, cap_bulk, cap_custom, cap_floors, cap_tests;
	/* where name and levels were set, for duplicates across files */
	const struct ynode *name_at, *levels_at;
};

#define GROW(arr, n, cap) do {						\
	if ((n) == (cap)) {						\
		(cap) = (cap) ? (cap) * 2 : 8;				\
		(arr) = xrealloc((arr), (cap) * sizeof(*(arr)));	\
	}								\
} while (0)

static const char *
file_of(struct loader *L, const char *name)
{
	size_t i;

	for (i = 0; i < L->p->nfiles; i++)
		if (strcmp(L->p->files[i], name) == 0)
			return L->p->files[i];
	return NULL;
}

static void
load_levels(struct loader *L, const struct ynode *n)
{
	struct policy *p = L->p;
	size_t i;
	int j;

	if (ynode_expect(n, YN_SEQ, "levels", L->d) < 0)
		return;
	if (n->n == 0 || n->n > MAX_LEVELS) {
		ynode_diag(n, L->d, DIAG_ERROR, "levels must list 1 to %d level "
		    "names, lowest first", MAX_LEVELS);
		return;
	}
	p->levels = xcalloc(n->n, sizeof(*p->levels));
	for (i = 0; i < n->n; i++) {
		const struct ynode *it = n->items[i];
		const char *s = ynode_str(it, "a level name", L->d);

		if (s == NULL)
			continue;
		if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(s) ||
		    strlen(s) > 64) {
			ynode_diag(it, L->d, DIAG_ERROR, "level name '%s' may "
			    "hold only letters, digits, '_' and '-'", s);
			continue;
		}
		if (strcmp(s, "deny") == 0) {
			ynode_diag(it, L->d, DIAG_ERROR, "'deny' is an action, "
			    "not a level name; choose another name");
			continue;
		}
		for (j = 0; j < p->nlevels; j++)
			if (strcmp(p->levels[j], s) == 0)
				break;
		if (j < p->nlevels) {
			ynode_diag(it, L->d, DIAG_ERROR, "level '%s' is listed "
			    "twice", s);
			continue;
		}
		p->levels[p->nlevels++] = xstrdup(s);
	}
	p->routes = xcalloc((size_t)p->nlevels ? (size_t)p->nlevels : 1,
	    sizeof(*p->routes));
	for (j = 0; j < p->nlevels; j++)
		p->routes[j].level = j;
}

static void
load_findings(struct loader *L, const struct ynode *m)
{
	struct policy *p = L->p;
	size_t i, j;

	if (ynode_is_null(m))
		return;
	if (ynode_expect(m, YN_MAP, "classify.findings", L->d) < 0)
		return;
	if (p->findings_file == NULL) {
		p->findings_file = file_of(L, m->file);
		p->findings_line = m->line;
		p->findings_col = m->col;
	}
	for (i = 0; i < m->n; i++) {
		const struct ynode *k = m->keys[i];
		int lvl;

		if (!type_name_valid(k->str)) {
			ynode_diag(k, L->d, DIAG_ERROR, "'%s' is not a finding "
			    "type name (lowercase letters, digits, '_', "
			    "category.subtype)", k->str);
			continue;
		}
		for (j = 0; j < p->nfindings; j++)
			if (strcmp(p->findings[j].type, k->str) == 0)
				break;
		if (j < p->nfindings) {
			ynode_diag(k, L->d, DIAG_ERROR, "finding type '%s' "
			    "already has a rule (line %d)", k->str,
			    p->findings[j].line);
			continue;
		}
		lvl = level_of(p, m->items[i], 1, k->str, L->d);
		if (lvl == LEVEL_NONE)
			continue;
		GROW(p->findings, p->nfindings, L->cap_findings);
		p->findings[p->nfindings].type = xstrdup(k->str);
		p->findings[p->nfindings].level = lvl;
		p->findings[p->nfindings].line = k->line;
		p->findings[p->nfindings].col = k->col;
		p->findings[p->nfindings].file = file_of(L, k->file);
		p->nfindings++;
	}
}

static void
load_bulk(struct loader *L, const struct ynode *seq)
{
	static const char *const known[] = { "type", "at_least", "level",
		NULL };
	struct policy *p = L->p;
	size_t i;

	if (ynode_is_null(seq))
		return;
	if (ynode_expect(seq, YN_SEQ, "classify.bulk", L->d) < 0)
		return;
	for (i = 0; i < seq->n; i++) {
		const struct ynode *m = seq->items[i];
		const struct ynode *tn, *an, *ln;
		long long al;
		int lvl;

		if (ynode_expect(m, YN_MAP, "a bulk rule", L->d) < 0)
			continue;
		ynode_check_keys(m, known, L->d);
		tn = ynode_get(m, "type");
		an = ynode_get(m, "at_least");
		ln = ynode_get(m, "level");
		if (tn == NULL || an == NULL || ln == NULL) {
			ynode_diag(m, L->d, DIAG_ERROR, "a bulk rule needs type, "
			    "at_least and level, e.g. {type: email, at_least: "
			    "20, level: confidential}");
			continue;
		}
		if (ynode_expect(tn, YN_SCALAR, "bulk type", L->d) < 0)
			continue;
		if (!type_name_valid(tn->str)) {
			ynode_diag(tn, L->d, DIAG_ERROR, "'%s' is not a finding "
			    "type name", tn->str);
			continue;
		}
		if (ynode_int(an, &al, L->d) < 0)
			continue;
		if (al < 1 || al > 1000000) {
			ynode_diag(an, L->d, DIAG_ERROR, "at_least must be "
			    "between 1 and 1000000");
			continue;
		}
		lvl = level_of(p, ln, 1, "bulk level", L->d);
		if (lvl == LEVEL_NONE)
			continue;
		GROW(p->bulk, p->nbulk, L->cap_bulk);
		p->bulk[p->nbulk].type = xstrdup(tn->str);
		p->bulk[p->nbulk].at_least = (unsigned)al;
		p->bulk[p->nbulk].level = lvl;
		p->bulk[p->nbulk].line = m->line;
		p->bulk[p->nbulk].col = m->col;
		p->nbulk++;
	}
}

static void
load_custom(struct loader *L, const struct ynode *seq)
{
	static const char *const known[] = { "name", "words", "regex",
		"level", NULL };
	struct policy *p = L->p;
	size_t i, j;

	if (ynode_is_null(seq))
		return;
	if (ynode_expect(seq, YN_SEQ, "classify.custom", L->d) < 0)
		return;
	for (i = 0; i < seq->n; i++) {
		const struct ynode *m = seq->items[i];
		const struct ynode *nn, *wn, *rn, *ln;
		struct custom_rule *cr;
		const char *name;
		int lvl;

		if (ynode_expect(m, YN_MAP, "a custom detector", L->d) < 0)
			continue;
		ynode_check_keys(m, known, L->d);
		nn = ynode_get(m, "name");
		wn = ynode_get(m, "words");
		rn = ynode_get(m, "regex");
		ln = ynode_get(m, "level");
		if (nn == NULL || ln == NULL || (wn == NULL && rn == NULL)) {
			ynode_diag(m, L->d, DIAG_ERROR, "a custom detector needs "
			    "name, level and words or regex, e.g. {name: "
			    "project.x, words: [X], level: internal}");
			continue;
		}
		name = ynode_str(nn, "custom name", L->d);
		if (name == NULL)
			continue;
		if (strncmp(name, "custom.", 7) == 0)
			name += 7;	/* the type will be custom.NAME anyway */
		if (!type_name_valid(name)) {
			ynode_diag(nn, L->d, DIAG_ERROR, "custom name '%s' may "
			    "hold only lowercase letters, digits, '_', '-' and "
			    "'.'", name);
			continue;
		}
		for (j = 0; j < p->ncustom; j++)
			if (strcmp(p->custom[j].def.name, name) == 0)
				break;
		if (j < p->ncustom) {
			ynode_diag(nn, L->d, DIAG_ERROR, "custom detector '%s' "
			    "is defined twice (line %d)", name,
			    p->custom[j].def.line);
			continue;
		}
		lvl = level_of(p, ln, 1, "custom level", L->d);
		if (lvl == LEVEL_NONE)
			continue;
		GROW(p->custom, p->ncustom, L->cap_custom);
		cr = &p->custom[p->ncustom];
		memset(cr, 0, sizeof(*cr));
		cr->level = lvl;
		cr->def.name = xstrdup(name);
		cr->def.file = file_of(L, m->file);
		cr->def.line = m->line;
		cr->def.col = m->col;
		if (wn != NULL) {
			cr->def.words = str_list(wn, "custom words",
			    &cr->def.nwords, L->d);
			for (j = 0; j < cr->def.nwords; j++)
				if (cr->def.words[j][0] == '\0')
					ynode_diag(wn, L->d, DIAG_ERROR, "custom "
					    "words must not be empty");
			if (cr->def.nwords == 0)
				ynode_diag(wn, L->d, DIAG_ERROR, "words is "
				    "empty; list at least one word");
		}
		if (rn != NULL) {
			const char *re = ynode_str(rn, "custom regex", L->d);

			if (re) {
				cr->def.regex = xstrdup(re);
				cr->def.regex_line = rn->line;
				cr->def.regex_col = rn->col;
				if (*re == '\0')
					ynode_diag(rn, L->d, DIAG_ERROR,
					    "regex is empty");
			}
		}
		p->ncustom++;
	}
}

static void
load_classify(struct loader *L, const struct ynode *m)
{
	static const char *const known[] = { "findings", "bulk", "custom",
		NULL };

	if (ynode_is_null(m))
		return;
	if (ynode_expect(m, YN_MAP, "classify", L->d) < 0)
		return;
	ynode_check_keys(m, known, L->d);
	load_findings(L, ynode_get(m, "findings"));
	load_bulk(L, ynode_get(m, "bulk"));
	load_custom(L, ynode_get(m, "custom"));
}

static void
load_floors(struct loader *L, const struct ynode *m)
{
	static const char *const known[] = { "floor", NULL };
	struct policy *p = L->p;
	size_t i, j;

	if (ynode_is_null(m))
		return;
	if (ynode_expect(m, YN_MAP, "clients", L->d) < 0)
		return;
	for (i = 0; i < m->n; i++) {
		const struct ynode *k = m->keys[i], *v = m->items[i];
		const struct ynode *fn;
		int lvl;

		if (ynode_expect(v, YN_MAP, k->str, L->d) < 0)
			continue;
		ynode_check_keys(v, known, L->d);
		fn = ynode_get(v, "floor");
		if (fn == NULL) {
			ynode_diag(v, L->d, DIAG_ERROR, "client '%s' needs "
			    "floor: LEVEL", k->str);
			continue;
		}
		for (j = 0; j < p->nfloors; j++)
			if (strcmp(p->floors[j].client, k->str) == 0)
				break;
		if (j < p->nfloors) {
			ynode_diag(k, L->d, DIAG_ERROR, "client '%s' already has "
			    "a floor (line %d)", k->str, p->floors[j].line);
			continue;
		}
		lvl = level_of(p, fn, 0, "floor", L->d);
		if (lvl < 0)
			continue;
		GROW(p->floors, p->nfloors, L->cap_floors);
		p->floors[p->nfloors].client = xstrdup(k->str);
		p->floors[p->nfloors].level = lvl;
		p->floors[p->nfloors].file = file_of(L, k->file);
		p->floors[p->nfloors].line = k->line;
		p->floors[p->nfloors].col = k->col;
		p->nfloors++;
	}
}

static void
check_regions(struct loader *L, const struct ynode *n, char **v, size_t nv,
    const char *what)
{
	size_t i;

	for (i = 0; i < nv; i++)
		if (!region_name_valid(v[i]))
			ynode_diag(n->type == YN_SEQ && i < n->n ? n->items[i] :
			    n, L->d, DIAG_ERROR, "%s: '%s' is not a region; "
			    "write EU, EEA or an ISO country code (FR, DE, ...)",
			    what, v[i]);
}

static void
load_require(struct loader *L, struct requirement *r, const struct ynode *m)
{
	static const char *const known[] = { "hosting", "operator_in",
		"data_in", "cloud_act", "key_custody", "retention_max",
		"backends", NULL };
	const struct ynode *n;
	size_t i;

	if (ynode_is_null(m))
		return;
	if (ynode_expect(m, YN_MAP, "require", L->d) < 0)
		return;
	ynode_check_keys(m, known, L->d);
	if ((n = ynode_get(m, "hosting")) != NULL) {
		if (n->type == YN_SCALAR && strcmp(n->str, "self") == 0)
			r->hosting = HOST_SELF;
		else if (n->type == YN_SCALAR && strcmp(n->str, "vendor") == 0)
			r->hosting = HOST_VENDOR;
		else {
			ynode_diag(n, L->d, DIAG_ERROR, "hosting must be self or "
			    "vendor");
			return;
		}
		r->has_hosting = 1;
	}
	if ((n = ynode_get(m, "operator_in")) != NULL) {
		r->operator_in = str_list(n, "operator_in", &r->noperator_in,
		    L->d);
		if (r->operator_in)
			check_regions(L, n, r->operator_in, r->noperator_in,
			    "operator_in");
		if (r->operator_in && r->noperator_in == 0)
			ynode_diag(n, L->d, DIAG_ERROR, "operator_in is empty: "
			    "no backend could ever qualify");
	}
	if ((n = ynode_get(m, "data_in")) != NULL) {
		r->data_in = str_list(n, "data_in", &r->ndata_in, L->d);
		if (r->data_in)
			check_regions(L, n, r->data_in, r->ndata_in, "data_in");
		if (r->data_in && r->ndata_in == 0)
			ynode_diag(n, L->d, DIAG_ERROR, "data_in is empty: no "
			    "backend could ever qualify");
	}
	if ((n = ynode_get(m, "cloud_act")) != NULL) {
		int v;

		if (ynode_bool(n, &v, L->d) == 0) {
			if (v)
				ynode_diag(n, L->d, DIAG_ERROR, "cloud_act: true "
				    "would require US reach; write cloud_act: "
				    "false or leave the key out");
			r->has_cloud_act = 1;
			r->cloud_act = v;
		}
	}
	if ((n = ynode_get(m, "key_custody")) != NULL) {
		if (n->type == YN_SCALAR && strcmp(n->str, "customer") == 0)
			r->key_custody = KEYS_CUSTOMER;
		else if (n->type == YN_SCALAR && strcmp(n->str,
		    "provider") == 0)
			r->key_custody = KEYS_PROVIDER;
		else {
			ynode_diag(n, L->d, DIAG_ERROR, "key_custody must be "
			    "customer (or provider)");
			return;
		}
		r->has_key_custody = 1;
	}
	if ((n = ynode_get(m, "retention_max")) != NULL) {
		if (n->type == YN_SCALAR && (strcmp(n->str, "none") == 0 ||
		    strcmp(n->str, "0") == 0))
			r->retention_max_ms = 0;
		else if (n->type != YN_SCALAR || parse_duration_ms(n->str,
		    &r->retention_max_ms) < 0) {
			ynode_diag(n, L->d, DIAG_ERROR, "retention_max must be 0 "
			    "(none) or a duration such as 30d");
			return;
		}
		r->has_retention_max = 1;
	}
	if ((n = ynode_get(m, "backends")) != NULL) {
		r->backends = str_list(n, "require.backends", &r->nbackends,
		    L->d);
		for (i = 0; L->bs && r->backends && i < r->nbackends; i++)
			if (backends_find(L->bs, r->backends[i]) == NULL)
				ynode_diag(n->type == YN_SEQ ? n->items[i] : n,
				    L->d, DIAG_ERROR, "require.backends names "
				    "unknown backend '%s'", r->backends[i]);
	}
}

static void
backend_names(const struct backend_set *bs, const char **out, size_t max)
{
	size_t i;

	for (i = 0; i < bs->n && i + 1 < max; i++)
		out[i] = bs->v[i]->name;
	out[i] = NULL;
}

static void
load_routes(struct loader *L, const struct ynode *m)
{
	static const char *const known[] = { "require", "prefer", NULL };
	struct policy *p = L->p;
	const char *names[DECIDE_MAX_BACKENDS + 1];
	size_t i, j, k;

	if (ynode_is_null(m))
		return;
	if (ynode_expect(m, YN_MAP, "routes", L->d) < 0)
		return;
	if (L->bs)
		backend_names(L->bs, names, ARRAY_LEN(names));
	for (i = 0; i < m->n; i++) {
		const struct ynode *kn = m->keys[i], *v = m->items[i];
		const struct ynode *pn;
		struct route *rt;
		int lvl = level_of(p, kn, 0, "routes", L->d);

		if (lvl < 0)
			continue;
		rt = &p->routes[lvl];
		if (rt->defined) {
			ynode_diag(kn, L->d, DIAG_ERROR, "level '%s' already has "
			    "a route (line %d)", kn->str, rt->line);
			continue;
		}
		rt->defined = 1;
		rt->file = file_of(L, kn->file);
		rt->line = kn->line;
		rt->col = kn->col;
		if (ynode_is_null(v)) {
			ynode_diag(kn, L->d, DIAG_ERROR, "route '%s' is empty; "
			    "give it prefer: [BACKENDS] (and require: ...)",
			    kn->str);
			continue;
		}
		if (ynode_expect(v, YN_MAP, kn->str, L->d) < 0)
			continue;
		ynode_check_keys(v, known, L->d);
		load_require(L, &rt->req, ynode_get(v, "require"));
		pn = ynode_get(v, "prefer");
		if (pn == NULL) {
			ynode_diag(v, L->d, DIAG_ERROR, "route '%s' needs prefer: "
			    "the backends it may use, most preferred first",
			    kn->str);
			continue;
		}
		rt->prefer = str_list(pn, "prefer", &rt->nprefer, L->d);
		if (rt->prefer && rt->nprefer == 0)
			ynode_diag(pn, L->d, DIAG_WARNING, "route '%s' prefers "
			    "no backend: every request at this level is denied",
			    kn->str);
		for (j = 0; rt->prefer && j < rt->nprefer; j++) {
			const struct ynode *at = pn->type == YN_SEQ &&
			    j < pn->n ? pn->items[j] : pn;
			const struct backend *b;
			char why[160];

			for (k = 0; k < j; k++)
				if (strcmp(rt->prefer[k], rt->prefer[j]) == 0)
					ynode_diag(at, L->d, DIAG_ERROR,
					    "backend '%s' is listed twice in "
					    "prefer", rt->prefer[j]);
			if (L->bs == NULL)
				continue;
			b = backends_find(L->bs, rt->prefer[j]);
			if (b == NULL) {
				const char *c = closest_name(rt->prefer[j],
				    names, L->bs->n);

				if (c)
					ynode_diag(at, L->d, DIAG_ERROR, "prefer "
					    "names unknown backend '%s' (did "
					    "you mean '%s'?)", rt->prefer[j], c);
				else
					ynode_diag(at, L->d, DIAG_ERROR, "prefer "
					    "names unknown backend '%s'; no "
					    "descriptor has this name",
					    rt->prefer[j]);
				continue;
			}
			if (requirement_check(&rt->req, b, why,
			    sizeof(why)) < 0)
				ynode_diag(at, L->d, DIAG_ERROR, "route '%s' "
				    "prefers backend '%s', which can never "
				    "satisfy its require: %s; remove it from "
				    "prefer or fix the descriptor", kn->str,
				    b->name, why);
		}
	}
}

/* YAML node -> JSON, for a test's body written as YAML. */
static json_t *
to_json(const struct ynode *n)
{
	json_t *o;
	size_t i;

	if (n == NULL)
		return json_null();
	switch (n->type) {
	case YN_MAP:
		o = json_object();
		for (i = 0; i < n->n; i++)
			json_object_set_new(o, n->keys[i]->str,
			    to_json(n->items[i]));
		return o;
	case YN_SEQ:
		o = json_array();
		for (i = 0; i < n->n; i++)
			json_array_append_new(o, to_json(n->items[i]));
		return o;
	default:
		if (n->plain) {
			long long ll;
			char *end;
			double dv;
			int b;

			if (ynode_is_null(n))
				return json_null();
			if (ynode_bool(n, &b, NULL) == 0)
				return json_boolean(b);
			if (ynode_int(n, &ll, NULL) == 0)
				return json_integer(ll);
			errno = 0;
			dv = strtod(n->str, &end);
			if (errno == 0 && *end == '\0' && end != n->str)
				return json_real(dv);
		}
		return json_stringn(n->str, n->len);
	}
}

static void
load_tests(struct loader *L, const struct ynode *seq)
{
	static const char *const known[] = { "name", "text", "body",
		"endpoint", "client", "headers", "expect", NULL };
	static const char *const expect_known[] = { "level", "backend",
		"backend_in", "action", NULL };
	struct policy *p = L->p;
	size_t i, j;

	if (ynode_is_null(seq))
		return;
	if (ynode_expect(seq, YN_SEQ, "tests", L->d) < 0)
		return;
	for (i = 0; i < seq->n; i++) {
		const struct ynode *m = seq->items[i];
		const struct ynode *n, *tn, *bn, *en;
		struct policy_test *t;
		size_t errs0 = L->d->nerrors;

		if (ynode_expect(m, YN_MAP, "a test", L->d) < 0)
			continue;
		ynode_check_keys(m, known, L->d);
		GROW(p->tests, p->ntests, L->cap_tests);
		t = &p->tests[p->ntests];
		memset(t, 0, sizeof(*t));
		t->file = file_of(L, m->file);
		t->line = m->line;
		t->col = m->col;
		n = ynode_get(m, "name");
		if (n && ynode_str(n, "test name", L->d))
			t->name = xstrdup(n->str);
		else
			t->name = xasprintf("test at line %d", m->line);
		tn = ynode_get(m, "text");
		bn = ynode_get(m, "body");
		if ((tn == NULL) == (bn == NULL)) {
			ynode_diag(m, L->d, DIAG_ERROR, "test '%s' needs exactly "
			    "one of text (a user message) or body (a whole "
			    "request)", t->name);
		} else if (tn != NULL) {
			if (ynode_expect(tn, YN_SCALAR, "text", L->d) == 0)
				t->text = xstrdup(tn->str);
		} else if (bn->type == YN_SCALAR) {
			json_error_t je;
			json_t *j = json_loadb(bn->str, bn->len, 0, &je);

			if (j == NULL)
				ynode_diag(bn, L->d, DIAG_ERROR, "test '%s': body "
				    "is not valid JSON (%s at character %d)",
				    t->name, je.text, je.position);
			json_decref(j);
			t->body = xstrndup(bn->str, bn->len);
		} else {
			json_t *j = to_json(bn);

			t->body = json_dumps(j, JSON_COMPACT |
			    JSON_PRESERVE_ORDER);
			json_decref(j);
		}
		n = ynode_get(m, "endpoint");
		if (n != NULL && ynode_str(n, "endpoint", L->d)) {
			if (strcmp(n->str, "/v1/chat/completions") != 0 &&
			    strcmp(n->str, "/v1/embeddings") != 0 &&
			    strcmp(n->str, "/v1/fim/completions") != 0)
				ynode_diag(n, L->d, DIAG_ERROR, "endpoint must be "
				    "/v1/chat/completions, /v1/embeddings or "
				    "/v1/fim/completions");
			else
				t->endpoint = xstrdup(n->str);
		}
		if (t->endpoint == NULL)
			t->endpoint = xstrdup("/v1/chat/completions");
		if (t->text && strcmp(t->endpoint, "/v1/chat/completions") != 0)
			ynode_diag(tn, L->d, DIAG_ERROR, "text is a chat message; "
			    "for %s write a body", t->endpoint);
		n = ynode_get(m, "client");
		if (n != NULL && ynode_str(n, "client", L->d))
			t->client = xstrdup(n->str);
		n = ynode_get(m, "headers");
		if (n != NULL && !ynode_is_null(n) &&
		    ynode_expect(n, YN_MAP, "headers", L->d) == 0) {
			t->header_names = xcalloc(n->n ? n->n : 1,
			    sizeof(char *));
			t->header_values = xcalloc(n->n ? n->n : 1,
			    sizeof(char *));
			for (j = 0; j < n->n; j++) {
				const char *v = ynode_str(n->items[j],
				    "a header value", L->d);

				if (v == NULL)
					continue;
				t->header_names[t->nheaders] =
				    xstrdup(n->keys[j]->str);
				t->header_values[t->nheaders] = xstrdup(v);
				t->nheaders++;
			}
		}
		en = ynode_get(m, "expect");
		if (en == NULL || ynode_is_null(en)) {
			ynode_diag(m, L->d, DIAG_ERROR, "test '%s' needs expect: "
			    "{level, backend, backend_in, action}", t->name);
		} else if (ynode_expect(en, YN_MAP, "expect", L->d) == 0) {
			ynode_check_keys(en, expect_known, L->d);
			if (en->n == 0)
				ynode_diag(en, L->d, DIAG_ERROR, "expect is "
				    "empty");
			n = ynode_get(en, "level");
			if (n && level_of(p, n, 0, "expect.level", L->d) >= 0)
				t->expect_level = xstrdup(n->str);
			n = ynode_get(en, "backend");
			if (n && ynode_str(n, "expect.backend", L->d)) {
				t->expect_backend = xstrdup(n->str);
				if (L->bs && !backends_find(L->bs, n->str))
					ynode_diag(n, L->d, DIAG_ERROR,
					    "expect.backend names unknown "
					    "backend '%s'", n->str);
			}
			n = ynode_get(en, "backend_in");
			if (n) {
				t->expect_backend_in = str_list(n,
				    "expect.backend_in",
				    &t->nexpect_backend_in, L->d);
				for (j = 0; L->bs && j <
				    t->nexpect_backend_in; j++)
					if (!backends_find(L->bs,
					    t->expect_backend_in[j]))
						ynode_diag(n, L->d, DIAG_ERROR,
						    "expect.backend_in names "
						    "unknown backend '%s'",
						    t->expect_backend_in[j]);
			}
			n = ynode_get(en, "action");
			if (n && ynode_str(n, "expect.action", L->d)) {
				if (strcmp(n->str, "allow") == 0 ||
				    strcmp(n->str, "deny") == 0)
					t->expect_action = xstrdup(n->str);
				else
					ynode_diag(n, L->d, DIAG_ERROR,
					    "expect.action must be allow or "
					    "deny");
			}
		}
		(void)errs0;
		p->ntests++;
	}
}

/* The model text-shorthand tests ask for: the one served by the most of
 * the backends the routes prefer (ties: by name), so that tests exercise
 * routing rather than model filtering. "default" without backends. */
static char *
pick_test_model(const struct policy *p, const struct backend_set *bs)
{
	const char *best = NULL;
	size_t bestn = 0, i, j, k, r;

	if (bs == NULL)
		return xstrdup("default");
	for (i = 0; i < bs->n; i++)
		for (j = 0; j < bs->v[i]->nmodels; j++) {
			const char *m = bs->v[i]->models[j].name;
			size_t cnt = 0;

			for (k = 0; k < bs->n; k++) {
				int preferred = 0;

				for (r = 0; r < (size_t)p->nlevels; r++) {
					size_t q;

					for (q = 0; q < p->routes[r].nprefer;
					    q++)
						if (strcmp(p->routes[r].prefer[q],
						    bs->v[k]->name) == 0)
							preferred = 1;
				}
				if (preferred && backend_model_id(bs->v[k], m))
					cnt++;
			}
			if (cnt > bestn || (cnt == bestn && cnt > 0 && best &&
			    strcmp(m, best) < 0)) {
				best = m;
				bestn = cnt;
			}
		}
	return xstrdup(best ? best : "default");
}

static void
expand_tests(struct policy *p)
{
	size_t i;

	for (i = 0; i < p->ntests; i++) {
		struct policy_test *t = &p->tests[i];
		json_t *o;

		if (t->body != NULL || t->text == NULL)
			continue;
		o = json_pack("{s:s, s:[{s:s, s:s}]}", "model", p->test_model,
		    "messages", "role", "user", "content", t->text);
		if (o == NULL)
			fatal("policy tests: cannot build a request body");
		t->body = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(o);
	}
}

/* A higher level should never allow what a lower level forbids: a warning
 * for each backend a route allows that a lower route's require excludes. */
static void
check_monotonic(struct policy *p, const struct backend_set *bs,
    struct diags *d)
{
	int hi, lo;
	size_t j;
	char why[160];

	for (hi = 1; hi < p->nlevels; hi++) {
		const struct route *rh = &p->routes[hi];

		if (!rh->defined)
			continue;
		for (j = 0; j < rh->nprefer; j++) {
			const struct backend *b = backends_find(bs,
			    rh->prefer[j]);

			if (b == NULL || requirement_check(&rh->req, b, why,
			    sizeof(why)) < 0)
				continue;
			for (lo = hi - 1; lo >= 0; lo--) {
				const struct route *rl = &p->routes[lo];

				if (!rl->defined || requirement_check(&rl->req,
				    b, why, sizeof(why)) == 0)
					continue;
				diags_add(d, DIAG_WARNING, rh->file, rh->line,
				    rh->col, "level '%s' allows backend '%s', "
				    "which the lower level '%s' forbids (%s): "
				    "more sensitive data would get weaker "
				    "protection", p->levels[hi], b->name,
				    p->levels[lo], why);
				break;
			}
		}
	}
}

static void
load_doc(struct loader *L, const struct ynode *root)
{
	load_classify(L, ynode_get(root, "classify"));
	load_floors(L, ynode_get(root, "clients"));
	load_routes(L, ynode_get(root, "routes"));
	load_tests(L, ynode_get(root, "tests"));
}

static struct policy *load(const char *path, const struct backend_set *bs,
    struct diags *d, int keep);

struct policy *
policy_load(const char *path, const struct backend_set *bs,
    struct diags *d)
{
	return load(path, bs, d, 0);
}

struct policy *
policy_load_partial(const char *path, const struct backend_set *bs,
    struct diags *d)
{
	return load(path, bs, d, 1);
}

static struct policy *
load(const char *path, const struct backend_set *bs, struct diags *d,
    int keep)
{
	static const char *const known[] = { "name", "description", "levels",
		"classify", "clients", "routes", "tests", NULL };
	struct loader L;
	struct policy *p;
	struct stat st;
	struct ydoc **docs = NULL;
	char *all = NULL;
	size_t allen = 0, i, nf = 0;
	char **files = NULL;
	size_t errs0 = d->nerrors;
	int j;

	memset(&L, 0, sizeof(L));
	if (stat(path, &st) != 0) {
		diags_add(d, DIAG_ERROR, path, 0, 0, "cannot read the policy: "
		    "%s; set policy: in the config to a file or directory",
		    strerror(errno));
		return NULL;
	}
	p = xcalloc(1, sizeof(*p));
	p->file = xstrdup(path);
	L.p = p;
	L.bs = bs;
	L.d = d;
	if (S_ISDIR(st.st_mode)) {
		files = yaml_files_in(path, &nf, d);
		if (nf == 0) {
			if (d->nerrors == errs0)
				diags_add(d, DIAG_ERROR, path, 0, 0, "no *.yaml "
				    "policy files in this directory");
			free(files);
			goto fail;
		}
	} else {
		files = xcalloc(1, sizeof(*files));
		files[0] = xstrdup(path);
		nf = 1;
	}
	p->files = files;
	p->nfiles = nf;
	docs = xcalloc(nf, sizeof(*docs));
	for (i = 0; i < nf; i++) {
		size_t len;
		char *buf = read_file(files[i], &len);

		if (buf == NULL) {
			diags_add(d, DIAG_ERROR, files[i], 0, 0, "cannot read: "
			    "%s", strerror(errno));
			continue;
		}
		/* The recorded SHA-256 is over the bytes as read, so
		 * `cat FILES | sha256sum` reproduces it. */
		all = xrealloc(all, allen + len + 1);
		memcpy(all + allen, buf, len);
		allen += len;
		docs[i] = ydoc_load_mem(files[i], buf, len, d);
		free(buf);
	}
	if (d->nerrors > errs0)
		goto fail;
	sha256_hex(all ? all : "", allen, p->sha256);

	/* pass 1: name and levels, which everything else refers to */
	for (i = 0; i < nf; i++) {
		const struct ynode *r = docs[i]->root, *n;

		if (r == NULL || ynode_is_null(r)) {
			diags_add(d, DIAG_WARNING, files[i], 1, 1, "empty policy "
			    "file");
			continue;
		}
		if (ynode_expect(r, YN_MAP, "a policy file", d) < 0)
			continue;
		ynode_check_keys(r, known, d);
		if ((n = ynode_get(r, "name")) != NULL) {
			if (L.name_at)
				ynode_diag(n, d, DIAG_ERROR, "the policy's name "
				    "is already set at %s:%d", L.name_at->file,
				    L.name_at->line);
			else if (ynode_str(n, "name", d)) {
				p->name = xstrdup(n->str);
				L.name_at = n;
			}
		}
		if ((n = ynode_get(r, "levels")) != NULL) {
			if (L.levels_at)
				ynode_diag(n, d, DIAG_ERROR, "levels are already "
				    "set at %s:%d", L.levels_at->file,
				    L.levels_at->line);
			else {
				L.levels_at = n;
				load_levels(&L, n);
			}
		}
		(void)ynode_get(r, "description");
	}
	if (p->name == NULL)
		diags_add(d, DIAG_ERROR, files[0], 1, 1, "the policy needs a "
		    "name: it is recorded with every decision");
	if (L.levels_at == NULL) {
		diags_add(d, DIAG_ERROR, files[0], 1, 1, "the policy needs "
		    "levels: [lowest, ..., highest]");
		goto fail;
	}
	if (p->nlevels == 0)
		goto fail;
	/* pass 2: everything else, merged across files */
	for (i = 0; i < nf; i++)
		if (docs[i]->root && docs[i]->root->type == YN_MAP)
			load_doc(&L, docs[i]->root);

	for (j = 0; j < p->nlevels; j++)
		if (!p->routes[j].defined)
			diags_add(d, DIAG_WARNING, L.levels_at->file,
			    L.levels_at->line, L.levels_at->col, "level '%s' "
			    "has no route: every request at this level will be "
			    "denied; add routes.%s", p->levels[j],
			    p->levels[j]);
	if (bs != NULL)
		check_monotonic(p, bs, d);
	p->test_model = pick_test_model(p, bs);
	expand_tests(p);

	if (d->nerrors > errs0 && !keep)
		goto fail;
	for (i = 0; i < nf; i++)
		ydoc_free(docs[i]);
	free(docs);
	free(all);
	return p;
fail:
	for (i = 0; docs && i < nf; i++)
		ydoc_free(docs[i]);
	free(docs);
	free(all);
	policy_free(p);
	return NULL;
}

int
policy_mentions_type(const struct policy *p, const char *type)
{
	size_t i, cl = finding_category_len(type);

	for (i = 0; i < p->nfindings; i++) {
		const char *t = p->findings[i].type;

		if (strcmp(t, type) == 0 || (strlen(t) == cl &&
		    strncmp(t, type, cl) == 0))
			return 1;
	}
	for (i = 0; i < p->nbulk; i++) {
		const char *t = p->bulk[i].type;

		if (strcmp(t, type) == 0 || (strlen(t) == cl &&
		    strncmp(t, type, cl) == 0))
			return 1;
	}
	return 0;
}

/* ---- deciding ---- */

const char *
verdict_name(enum verdict v)
{
	switch (v) {
	case V_ALLOWED:
		return "allowed";
	case V_NOT_PREFERRED:
		return "not_preferred";
	case V_REQUIREMENT:
		return "requirement";
	case V_NO_MODEL:
		return "no_model";
	case V_DOWN:
		return "down";
	case V_NO_CREDENTIALS:
		return "no_credentials";
	case V_DENIED:
		return "denied";
	}
	return "?";
}

/* The finding rule for a type: full name first, then its category. */
static const struct finding_rule *
find_rule(const struct policy *p, const char *type, int *by_category)
{
	size_t i, cl = finding_category_len(type);

	*by_category = 0;
	for (i = 0; i < p->nfindings; i++)
		if (strcmp(p->findings[i].type, type) == 0)
			return &p->findings[i];
	if (type[cl] == '\0')
		return NULL;
	for (i = 0; i < p->nfindings; i++)
		if (strlen(p->findings[i].type) == cl &&
		    strncmp(p->findings[i].type, type, cl) == 0) {
			*by_category = 1;
			return &p->findings[i];
		}
	return NULL;
}

static const struct custom_rule *
find_custom(const struct policy *p, const char *type)
{
	size_t i;

	if (strncmp(type, "custom.", 7) != 0)
		return NULL;
	for (i = 0; i < p->ncustom; i++)
		if (strcmp(p->custom[i].def.name, type + 7) == 0)
			return &p->custom[i];
	return NULL;
}

/* Sum of counts of types equal to t or in category t. */
static unsigned
count_matching(const struct scan *s, const char *t)
{
	size_t i, tl = strlen(t);
	unsigned n = 0;

	for (i = 0; i < s->ntypes; i++) {
		const char *x = s->types[i].type;

		if (strcmp(x, t) == 0 || (strncmp(x, t, tl) == 0 &&
		    x[tl] == '.'))
			n += s->types[i].count;
	}
	return n;
}

static void
append(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
append(char *buf, size_t len, const char *fmt, ...)
{
	size_t off = strlen(buf);
	va_list ap;

	if (off + 1 >= len)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + off, len - off, fmt, ap);
	va_end(ap);
}

/* The level a scan type raises to (max of its finding rule and, for
 * custom.* types, the detector's own level); LEVEL_NONE when none. */
static int
type_level(const struct policy *p, const char *type, char *rule,
    size_t rlen)
{
	const struct finding_rule *fr;
	const struct custom_rule *cr;
	int by_cat, lvl = LEVEL_NONE;

	fr = find_rule(p, type, &by_cat);
	cr = find_custom(p, type);
	if (cr != NULL) {
		lvl = cr->level;
		snprintf(rule, rlen, "custom %s", cr->def.name);
	}
	if (fr != NULL && lvl != LEVEL_DENY && (fr->level == LEVEL_DENY ||
	    fr->level > lvl)) {
		lvl = fr->level;
		if (by_cat)
			snprintf(rule, rlen, "finding %s via %s", type,
			    fr->type);
		else
			snprintf(rule, rlen, "finding %s", type);
	}
	return lvl;
}

int
policy_decide(const struct policy *p, const struct backend_set *bs,
    const struct decide_input *in, backend_down_fn is_down, void *ud,
    struct decision *out)
{
	const struct scan *s = in->scan;
	const struct route *rt;
	char rule[128], found[160], typelist[128], denied_type[96], req[320];
	char why[160];
	size_t i, j;
	int level = 0, deny = 0;

	/* Only the head: the verdict and candidate arrays (12 KB, most of
	 * the struct) are written up to nverdicts and ncandidates below, and
	 * clearing them all was a quarter of the worker's memset per
	 * request. */
	memset(out, 0, offsetof(struct decision, verdicts));
	out->nverdicts = 0;
	out->ncandidates = 0;
	if (p == NULL || p->nlevels <= 0 || bs == NULL ||
	    bs->n > DECIDE_MAX_BACKENDS || in->declared_level >= p->nlevels)
		return -1;
	snprintf(out->level_rule, sizeof(out->level_rule), "default");
	found[0] = '\0';
	typelist[0] = '\0';
	denied_type[0] = '\0';

	/* the level: max over floor, header, findings, bulk; first to reach
	 * the max names the rule */
	if (in->client != NULL)
		for (i = 0; i < p->nfloors; i++)
			if (strcmp(p->floors[i].client, in->client) == 0 &&
			    p->floors[i].level > level) {
				level = p->floors[i].level;
				snprintf(out->level_rule,
				    sizeof(out->level_rule), "floor %s",
				    in->client);
			}
	if (in->declared_level > level) {
		level = in->declared_level;
		snprintf(out->level_rule, sizeof(out->level_rule), "header");
	}
	for (i = 0; s && i < s->ntypes; i++) {
		int l;

		if (s->types[i].count == 0)
			continue;
		l = type_level(p, s->types[i].type, rule, sizeof(rule));
		if (l == LEVEL_DENY) {
			if (!deny)
				snprintf(denied_type, sizeof(denied_type), "%s",
				    s->types[i].type);
			deny = 1;
		} else if (l > level) {
			level = l;
			snprintf(out->level_rule, sizeof(out->level_rule), "%s",
			    rule);
		}
	}
	for (i = 0; s && i < p->nbulk; i++) {
		const struct bulk_rule *br = &p->bulk[i];
		unsigned n = count_matching(s, br->type);

		if (n < br->at_least)
			continue;
		if (br->level == LEVEL_DENY) {
			if (!deny)
				snprintf(denied_type, sizeof(denied_type),
				    "%u %s (bulk rule: at least %u)", n,
				    br->type, br->at_least);
			deny = 1;
		} else if (br->level > level) {
			level = br->level;
			snprintf(out->level_rule, sizeof(out->level_rule),
			    "bulk %s>=%u", br->type, br->at_least);
		}
	}
	out->level = level;
	/* what was found at the final level, for the message */
	for (i = 0; s && i < s->ntypes; i++) {
		if (s->types[i].count == 0 || type_level(p, s->types[i].type,
		    rule, sizeof(rule)) != level)
			continue;
		append(typelist, sizeof(typelist), "%s%s", typelist[0] ?
		    ", " : "", s->types[i].type);
	}
	if (strncmp(out->level_rule, "floor ", 6) == 0)
		snprintf(found, sizeof(found), "floor of client %s", in->client);
	else if (strcmp(out->level_rule, "header") == 0)
		snprintf(found, sizeof(found), "declared by "
		    "X-Sovgate-Classification");
	else if (strncmp(out->level_rule, "bulk ", 5) == 0)
		snprintf(found, sizeof(found), "bulk rule %s",
		    out->level_rule + 5);
	else if (typelist[0] != '\0')
		snprintf(found, sizeof(found), "found: %s", typelist);
	else
		snprintf(found, sizeof(found), "nothing found");

	rt = &p->routes[level];
	out->nverdicts = bs->n;
	for (i = 0; i < bs->n; i++) {
		out->verdicts[i].b = bs->v[i];
		out->verdicts[i].verdict = V_NOT_PREFERRED;
		out->verdicts[i].reason[0] = '\0';
	}

	if (deny) {
		out->deny = 1;
		snprintf(out->deny_code, sizeof(out->deny_code),
		    "finding_denied");
		snprintf(out->reason, sizeof(out->reason), "the request "
		    "contains %s, which policy '%s' denies outright; remove it "
		    "from the request", denied_type, p->name);
		snprintf(out->level_rule, sizeof(out->level_rule), "deny %s",
		    denied_type);
		for (i = 0; i < bs->n; i++) {
			out->verdicts[i].verdict = V_DENIED;
			snprintf(out->verdicts[i].reason,
			    sizeof(out->verdicts[i].reason), "the request is "
			    "denied (%s)", denied_type);
		}
		return 0;
	}
	if (!rt->defined) {
		out->deny = 1;
		snprintf(out->deny_code, sizeof(out->deny_code), "no_route");
		snprintf(out->reason, sizeof(out->reason), "level '%s' (%s) has "
		    "no route in policy '%s'; nothing may receive it",
		    p->levels[level], found, p->name);
		for (i = 0; i < bs->n; i++)
			snprintf(out->verdicts[i].reason,
			    sizeof(out->verdicts[i].reason), "level '%s' has "
			    "no route", p->levels[level]);
		return 0;
	}

	/* every backend's verdict, in set order */
	for (i = 0; i < bs->n; i++) {
		const struct backend *b = bs->v[i];
		struct backend_verdict *v = &out->verdicts[i];
		size_t rank = 0;

		for (j = 0; j < rt->nprefer; j++)
			if (strcmp(rt->prefer[j], b->name) == 0) {
				rank = j + 1;
				break;
			}
		if (rank == 0) {
			v->verdict = V_NOT_PREFERRED;
			snprintf(v->reason, sizeof(v->reason), "not in "
			    "routes.%s.prefer", p->levels[level]);
		} else if (requirement_check(&rt->req, b, why,
		    sizeof(why)) < 0) {
			v->verdict = V_REQUIREMENT;
			snprintf(v->reason, sizeof(v->reason), "%s", why);
		} else if (backend_model_id(b, in->model) == NULL) {
			v->verdict = V_NO_MODEL;
			snprintf(v->reason, sizeof(v->reason), "does not serve "
			    "model '%.100s'", in->model ? in->model : "");
		} else if (b->auth.missing && !in->ignore_credentials) {
			v->verdict = V_NO_CREDENTIALS;
			snprintf(v->reason, sizeof(v->reason), "credentials "
			    "missing at load (%s)", b->auth.type == AUTH_GSA ?
			    "auth.credentials_file unreadable" :
			    b->auth.type == AUTH_SIGV4 ? "AWS keys not in the "
			    "environment" : b->auth.key_env ? b->auth.key_env :
			    "auth");
		} else if (is_down != NULL && is_down(ud, b)) {
			v->verdict = V_DOWN;
			snprintf(v->reason, sizeof(v->reason), "marked down by "
			    "health checks");
		} else {
			v->verdict = V_ALLOWED;
			snprintf(v->reason, sizeof(v->reason), "rank %zu in "
			    "routes.%s.prefer", rank, p->levels[level]);
		}
	}
	/* candidates in prefer order */
	for (j = 0; j < rt->nprefer; j++)
		for (i = 0; i < bs->n; i++)
			if (out->verdicts[i].verdict == V_ALLOWED &&
			    strcmp(rt->prefer[j], bs->v[i]->name) == 0)
				out->candidates[out->ncandidates++] = bs->v[i];
	if (out->ncandidates > 0)
		return 0;

	/* denied: say why in a sentence an application developer can act
	 * on (SPEC §3's example) */
	out->deny = 1;
	snprintf(out->deny_code, sizeof(out->deny_code), "no_allowed_backend");
	requirement_describe(&rt->req, req, sizeof(req));
	if (req[0])
		snprintf(out->reason, sizeof(out->reason), "level '%s' (%s) "
		    "allows only backends %s", p->levels[level], found, req);
	else
		snprintf(out->reason, sizeof(out->reason), "level '%s' (%s) "
		    "may use only the backends in routes.%s.prefer",
		    p->levels[level], found, p->levels[level]);
	{
		size_t nq = 0, nmodel = 0;

		for (i = 0; i < bs->n; i++) {
			enum verdict v = out->verdicts[i].verdict;

			if (v == V_NOT_PREFERRED || v == V_REQUIREMENT)
				continue;
			nq++;
			if (v == V_NO_MODEL)
				nmodel++;
		}
		if (nq == 0)
			append(out->reason, sizeof(out->reason), "; none of "
			    "its preferred backends qualifies");
		else if (nmodel == nq)
			append(out->reason, sizeof(out->reason), "; none serves "
			    "model '%.100s'", in->model ? in->model : "");
		else {
			int first = 1;

			append(out->reason, sizeof(out->reason), "; ");
			for (i = 0; i < bs->n; i++) {
				const struct backend_verdict *v =
				    &out->verdicts[i];

				if (v->verdict == V_NOT_PREFERRED ||
				    v->verdict == V_REQUIREMENT)
					continue;
				append(out->reason, sizeof(out->reason),
				    "%s%s %s", first ? "" : ", ", v->b->name,
				    v->verdict == V_NO_MODEL ? "does not serve "
				    "this model" : v->verdict == V_DOWN ? "is "
				    "down" : "lacks credentials");
				first = 0;
			}
		}
	}
	return 0;
}

/* A JSON string literal of s. */
static void
sb_json_str(struct sb *b, const char *s)
{
	json_out_string(b, s, strlen(s));
}

char *
decision_candidates_json(const struct decision *d)
{
	/* Built by hand: this runs for every decision, and jansson's object
	 * building was a visible share of the request path. */
	struct sb sb = { NULL, 0, 0 };
	size_t i;

	sb_add(&sb, "[", 1);
	for (i = 0; i < d->nverdicts; i++) {
		const struct backend_verdict *v = &d->verdicts[i];

		if (i)
			sb_add(&sb, ",", 1);
		sb_add(&sb, "{\"backend\":", 11);
		sb_json_str(&sb, v->b ? v->b->name : "?");
		sb_add(&sb, ",\"verdict\":", 11);
		sb_json_str(&sb, verdict_name(v->verdict));
		sb_add(&sb, ",\"reason\":", 10);
		sb_json_str(&sb, v->reason);
		sb_add(&sb, "}", 1);
	}
	sb_add(&sb, "]", 1);
	return sb_take(&sb);
}

char *
decision_summary_json(const struct policy *p, const struct decision *d)
{
	json_t *o = json_object();
	char *s;

	json_object_set_new(o, "policy", json_string(p->name));
	json_object_set_new(o, "policy_sha256", json_string(p->sha256));
	json_object_set_new(o, "level", json_string(d->level >= 0 &&
	    d->level < p->nlevels ? p->levels[d->level] : "?"));
	json_object_set_new(o, "level_rule", json_string(d->level_rule));
	json_object_set_new(o, "action", json_string(d->deny ? "deny" :
	    "allow"));
	json_object_set_new(o, "backend", !d->deny && d->ncandidates ?
	    json_string(d->candidates[0]->name) : json_null());
	if (d->deny) {
		json_object_set_new(o, "deny_code", json_string(d->deny_code));
		json_object_set_new(o, "reason", json_string(d->reason));
	}
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (s == NULL)
		fatal("decision_summary_json: out of memory");
	return s;
}
