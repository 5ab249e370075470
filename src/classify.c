/*
 * classify.c - the classifier framework (SPEC §6): normalisation with an
 * offset map, the one-pass lexicon matcher (Aho-Corasick over the folded
 * text, shared by the built-in lexicons and the policy's custom words), the
 * policy's custom regexes (PCRE2 JIT), overlap resolution and the per-request
 * bookkeeping of distinct values.
 *
 * Cost model: one pass to normalise (which also folds), one pass for digit
 * runs, one automaton pass over the folded text, then detectors that only
 * look at the places those passes found (digit runs, '@', lexicon hits), so
 * the total stays linear in the input and nothing backtracks.
 *
 * The scan's working memory (struct spriv) grows to the largest text seen
 * and is then reused: the hot path does not allocate once warm.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "classify.h"
#include "detect.h"
#include "util.h"

/* ------------------------------------------------------------------ */
/* built-in type names                                                 */

const char *const classify_builtin_types[] = {
	"email", "phone", "iban", "payment_card",
	NID_TYPES(NID_NAME_)
	"date_of_birth", "health",
	"credential.aws_access_key", "credential.github_token",
	"credential.private_key", "credential.jwt", "credential.slack_token",
	"credential.openai_api_key", "credential.generic",
	"ip_address", "marking",
	NULL
};

/* ------------------------------------------------------------------ */
/* folding: lower case, accents stripped, for lexicon matching          */

/* U+0100..U+017F to their base letter (Œœ and Ĳĳ are handled apart). */
static const char latin_ext_a[129] =
    "aaaaaaccccccccddddeeeeeeeeeegggggggghhhhiiiiiiiiiiiijjkkk"
    "llllllllllnnnnnnnnnoooooooorrrrrrssssssssttttttuuuuuuuuuuuuwwyyyzzzzzzs";

/* U+00C0..U+00FF; '*' marks a two-letter expansion handled in code. */
static const char latin1_fold[65] =
    "aaaaaa*ceeeeiiiidnooooo*ouuuuyt*aaaaaa*ceeeeiiiidnooooo*ouuuuyty";

/* ASCII expansion of a code point for folding; returns its length (0 if
 * the code point has none and is copied as UTF-8). */
static size_t
fold_cp(uint32_t cp, char out[2])
{
	if (cp >= 0xC0 && cp <= 0xFF) {
		char c = latin1_fold[cp - 0xC0];

		if (c != '*') {
			out[0] = c;
			return 1;
		}
		switch (cp) {
		case 0xC6: case 0xE6: out[0] = 'a'; out[1] = 'e'; return 2;
		case 0xDF: out[0] = 's'; out[1] = 's'; return 2;
		case 0xD7: out[0] = 'x'; return 1;	/* multiplication sign */
		case 0xF7: out[0] = '/'; return 1;
		}
		return 0;
	}
	if (cp >= 0x100 && cp <= 0x17F) {
		if (cp == 0x152 || cp == 0x153) {
			out[0] = 'o'; out[1] = 'e';
			return 2;
		}
		if (cp == 0x132 || cp == 0x133) {
			out[0] = 'i'; out[1] = 'j';
			return 2;
		}
		out[0] = latin_ext_a[cp - 0x100];
		return 1;
	}
	return 0;
}

/* Decode one UTF-8 sequence at p (n > 0 bytes left). Returns its length,
 * or 0 if malformed (the caller copies one byte). */
static size_t
utf8_dec(const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned char c = p[0];

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF && n >= 2 && (p[1] & 0xC0) == 0x80) {
		*cp = ((uint32_t)(c & 0x1F) << 6) | (p[1] & 0x3F);
		return 2;
	}
	if (c >= 0xE0 && c <= 0xEF && n >= 3 && (p[1] & 0xC0) == 0x80 &&
	    (p[2] & 0xC0) == 0x80) {
		*cp = ((uint32_t)(c & 0x0F) << 12) |
		    ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
		return *cp >= 0x800 ? 3 : 0;
	}
	if (c >= 0xF0 && c <= 0xF4 && n >= 4 && (p[1] & 0xC0) == 0x80 &&
	    (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80) {
		*cp = ((uint32_t)(c & 0x07) << 18) |
		    ((uint32_t)(p[1] & 0x3F) << 12) |
		    ((uint32_t)(p[2] & 0x3F) << 6) | (p[3] & 0x3F);
		return *cp >= 0x10000 ? 4 : 0;
	}
	return 0;
}

/* Fold a whole UTF-8 string (lexicon words), into a new string. */
static char *
fold_string(const char *w)
{
	size_t n = strlen(w), i = 0, k = 0;
	char *out = xmalloc(2 * n + 1);

	while (i < n) {
		uint32_t cp;
		size_t l = utf8_dec((const unsigned char *)w + i, n - i, &cp);
		char tmp[2];
		size_t fl;

		if (l == 0)
			l = 1, cp = 0xFFFD;
		if (cp < 0x80) {
			out[k++] = (cp >= 'A' && cp <= 'Z') ? (char)(cp + 32) :
			    (char)cp;
		} else if ((fl = fold_cp(cp, tmp)) > 0) {
			memcpy(out + k, tmp, fl);
			k += fl;
		} else if (cp == 0x2019) {	/* typographic apostrophe */
			out[k++] = '\'';
		} else {
			memcpy(out + k, w + i, l);
			k += l;
		}
		i += l;
	}
	out[k] = '\0';
	return out;
}

/* ------------------------------------------------------------------ */
/* Aho-Corasick automaton over byte classes                              */

struct ac {
	uint8_t cls[256];
	uint32_t ncls;
	int shared;		/* some bytes share a class: check matches */
	size_t maxlen;		/* longest pattern */
	/* Transitions. States are numbered breadth-first, so the shallow
	 * ones that ordinary text keeps visiting share a few cache lines.
	 * 16-bit entries when the automaton is small enough (it is, built
	 * in), where the states that report something are numbered from
	 * repbit on and the others below it: the number itself says so and
	 * the scan needs no mask on its critical path (a seventh of the
	 * time). Otherwise 32-bit entries whose top bit (AC_OUT) says so. */
	uint16_t *d16;
	uint32_t repbit;
	uint32_t *delta;
	/* per state, together (one cache miss per report): the first
	 * pattern ending there (-1 none) and the next suffix state with
	 * output (0 none) */
	struct acrep {
		int32_t out;
		uint32_t dlink;
	} *rep;
	/* Length of the one pattern a state reports when that pattern needs
	 * a word boundary before it, else 0: most reports are short words
	 * inside longer ones ("tin" in "continue"), rejected by one look
	 * at the byte before without leaving the scan loop. */
	uint8_t *sbl;
	uint32_t nstates;
};

struct pattern {
	char *w;		/* folded */
	uint32_t len;
	uint32_t kind, ids;
	int32_t custom;
	int32_t next;		/* next pattern ending in the same state */
	/* what report() needs, here so that it need not read w: */
	uint8_t bstart;		/* needs a word boundary before */
	uint8_t bend;		/* needs one after (or inflections, LX_STEM) */
	uint8_t exact;		/* no byte of a shared class: no check */
};

struct classifier {
	struct ac ac;
	struct pattern *pats;
	size_t npats;
	const char **pat_words;
	/* custom detectors */
	size_t ncustom;
	char **custom_types;	/* "custom.NAME" */
	pcre2_code **regex;	/* NULL where the detector has none */
	int *regex_jit;
};

#define AC_OUT	0x80000000u

/* A word byte of the folded text, or of a pure-ASCII text scanned as it
 * is (hence the upper case). */
static inline int
f_word(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
	    c >= 0x80 || (c >= 'A' && c <= 'Z');
}

#define AC_SHIFT 5		/* rows of 32 entries: one cache line */
#define AC_MAX_CLS (1 << AC_SHIFT)

/*
 * Build the automaton from the patterns. Start-up time counts (every
 * `sovgate classify` run pays it), so nothing here touches a full (states x
 * classes) table more than once: the trie is kept as child lists, and the
 * final table is filled breadth-first, where a state's row is its failure
 * state's row (already final, being shallower) with its own children
 * written over it.
 */
/* A transition table of rows rows of entries of size esz, each row on
 * its own cache line(s); the root's row zeroed, the builder writes the
 * others whole. */
static void *
ac_table(size_t rows, size_t esz)
{
	size_t row = ((size_t)1 << AC_SHIFT) * esz;	/* 64 or 128 */
	void *t = aligned_alloc(64, rows * row);

	if (t == NULL)
		fatal("out of memory allocating %zu bytes", rows * row);
	memset(t, 0, row);
	return t;
}

static int
reports(const struct acrep *r)
{
	return r->out >= 0 || r->dlink != 0;
}

/*
 * Renumber a 16-bit automaton (its entries flagged 0x8000 where the target
 * reports) so that the n - nrep states that do not report keep their
 * breadth-first order below a power of two P and the nrep that do follow
 * from P on: P >= both counts, so a state reports iff its bit P is set, and
 * P + nrep <= 2P <= 0x10000 when n < 0x8000. Rows between the two ranges
 * are never reached and stay untouched.
 */
static void
ac_split(struct ac *a)
{
	uint32_t n = a->nstates, nrep = 0, p = 1, st, k, ni = 0, ri = 0;
	uint32_t *perm = xmalloc((size_t)n * sizeof(*perm));
	uint16_t *t;
	struct acrep *rep;
	uint8_t *sbl;

	for (st = 0; st < n; st++)
		nrep += (uint32_t)reports(&a->rep[st]);
	while (p < n - nrep || p < nrep)
		p <<= 1;
	for (st = 0; st < n; st++)	/* the root does not report: 0 */
		perm[st] = reports(&a->rep[st]) ? p + ri++ : ni++;
	t = ac_table(p + nrep, sizeof(*t));
	rep = xcalloc(p + nrep, sizeof(*rep));
	sbl = xcalloc(p + nrep, sizeof(*sbl));
	for (st = 0; st < n; st++) {
		uint16_t *row = t + ((size_t)perm[st] << AC_SHIFT);
		const uint16_t *old = a->d16 + ((size_t)st << AC_SHIFT);

		for (k = 0; k < (1u << AC_SHIFT); k++)
			row[k] = (uint16_t)perm[old[k] & 0x7fff];
		rep[perm[st]].out = a->rep[st].out;
		rep[perm[st]].dlink = perm[a->rep[st].dlink];
		sbl[perm[st]] = a->sbl[st];
	}
	free(a->d16);
	free(a->rep);
	free(a->sbl);
	free(perm);
	a->d16 = t;
	a->rep = rep;
	a->sbl = sbl;
	a->repbit = p;
}

static int
ac_build(struct classifier *c)
{
	struct ac *a = &c->ac;
	size_t i, total = 1;
	uint32_t *child = NULL, *sib = NULL, *order = NULL, *fail = NULL;
	int32_t *tout = NULL;
	uint8_t *ecls = NULL;
	uint32_t n = 1, qh, qt, k;
	int used[256] = { 0 }, rc = -1, nused = 0;

	for (i = 0; i < c->npats; i++) {
		const unsigned char *w = (const unsigned char *)c->pats[i].w;

		total += c->pats[i].len;
		if (c->pats[i].len > a->maxlen)
			a->maxlen = c->pats[i].len;
		for (k = 0; k < c->pats[i].len; k++)
			used[w[k]] = 1;
	}
	/*
	 * Byte classes. The automaton is latency-bound: each step waits for
	 * a table load, so the rows that text keeps visiting (a few hundred
	 * shallow states) must stay in L1. At most AC_MAX_CLS classes keeps a
	 * row of 16-bit entries within one 64-byte line. Letters, space and
	 * the commonest punctuation get a class each; when more bytes are
	 * used than that, the rest share the last class and report() checks
	 * a match's actual bytes (the automaton then matches a pattern's
	 * class sequence, a superset of the pattern).
	 */
	for (k = 0; k < 256; k++)
		nused += used[k];
	a->ncls = 1;
	for (k = 'a'; k <= 'z'; k++)
		if (used[k])
			a->cls[k] = (uint8_t)a->ncls++;
	for (i = 0; i < 4; i++)
		if (used[(unsigned char)" -.'"[i]])
			a->cls[(unsigned char)" -.'"[i]] = (uint8_t)a->ncls++;
	for (k = 0; k < 256; k++) {
		if (!used[k] || a->cls[k] != 0)
			continue;
		if (nused < AC_MAX_CLS || a->ncls < AC_MAX_CLS - 1) {
			a->cls[k] = (uint8_t)a->ncls++;
		} else {
			a->cls[k] = AC_MAX_CLS - 1;
			a->shared = 1;
		}
	}
	if (a->shared)
		a->ncls = AC_MAX_CLS;
	/* Patterns are folded (no upper case), but a pure-ASCII text is
	 * scanned as it is: upper-case letters take their lower case's class
	 * so the automaton folds case itself. */
	for (k = 'A'; k <= 'Z'; k++)
		a->cls[k] = a->cls[k + 32];
	child = xcalloc(total, sizeof(*child));	/* first child, 0 none */
	sib = xcalloc(total, sizeof(*sib));	/* next sibling, 0 none */
	ecls = xcalloc(total, sizeof(*ecls));	/* class of the edge in */
	tout = xmalloc(total * sizeof(*tout));
	for (i = 0; i < total; i++)
		tout[i] = -1;

	/* trie over class sequences; 0 is the root */
	for (i = 0; i < c->npats; i++) {
		const unsigned char *w = (const unsigned char *)c->pats[i].w;
		uint32_t st = 0, u;

		for (k = 0; k < c->pats[i].len; k++) {
			uint8_t e = a->cls[w[k]];

			for (u = child[st]; u != 0 && ecls[u] != e; u = sib[u])
				;
			if (u == 0) {
				u = n++;
				ecls[u] = e;
				sib[u] = child[st];
				child[st] = u;
			}
			st = u;
		}
		c->pats[i].next = tout[st];
		tout[st] = (int32_t)i;
	}
	a->nstates = n;
	/* rows aligned on cache lines; every row is written below */
	if (n < 0x8000)
		a->d16 = ac_table(n, sizeof(*a->d16));
	else
		a->delta = ac_table(n, sizeof(*a->delta));
	a->rep = xcalloc(n, sizeof(*a->rep));
	order = xmalloc((size_t)n * sizeof(*order));	/* new id -> trie */
	fail = xcalloc(n, sizeof(*fail));		/* by new id */

	/* breadth-first; states are numbered in that order, so the shallow
	 * ones that ordinary text keeps visiting share a few cache lines */
	order[0] = 0;
	a->rep[0].out = tout[0];
	qt = 1;
	for (qh = 0; qh < qt; qh++) {
		uint32_t r = order[qh], u;
		size_t row = (size_t)qh << AC_SHIFT;

		if (qh > 0) {
			size_t frow = (size_t)fail[qh] << AC_SHIFT;

			if (a->d16 != NULL)
				memcpy(a->d16 + row, a->d16 + frow,
				    ((size_t)1 << AC_SHIFT) * sizeof(*a->d16));
			else
				memcpy(a->delta + row, a->delta + frow,
				    ((size_t)1 << AC_SHIFT) * sizeof(*a->delta));
		}
		for (u = child[r]; u != 0; u = sib[u]) {
			uint32_t nid = qt++, f;
			int rep;

			order[nid] = u;
			/* the failure of a root child is the root; otherwise
			 * where the parent's failure goes on this class */
			if (qh == 0)
				f = 0;
			else if (a->d16 != NULL)
				f = a->d16[((size_t)fail[qh] << AC_SHIFT) +
				    ecls[u]] & 0x7fff;
			else
				f = a->delta[((size_t)fail[qh] << AC_SHIFT) +
				    ecls[u]] & ~AC_OUT;
			fail[nid] = f;
			a->rep[nid].out = tout[u];
			a->rep[nid].dlink = a->rep[f].out >= 0 ? f :
			    a->rep[f].dlink;
			rep = a->rep[nid].out >= 0 || a->rep[nid].dlink != 0;
			if (a->d16 != NULL)
				a->d16[row + ecls[u]] = (uint16_t)(nid |
				    (rep ? 0x8000u : 0));
			else
				a->delta[row + ecls[u]] = nid |
				    (rep ? AC_OUT : 0);
		}
	}
	rc = qt == n ? 0 : -1;
	for (i = 0; i < c->npats; i++) {
		struct pattern *pt = &c->pats[i];

		pt->bstart = !(pt->kind & LX_ANYSTART) &&
		    f_word((unsigned char)pt->w[0]);
		pt->bend = !(pt->kind & LX_ANYEND) &&
		    f_word((unsigned char)pt->w[pt->len - 1]);
		pt->exact = 1;
		for (k = 0; k < pt->len && a->shared; k++)
			if (a->cls[(unsigned char)pt->w[k]] == AC_MAX_CLS - 1)
				pt->exact = 0;
	}
	a->sbl = xcalloc(n, sizeof(*a->sbl));
	for (k = 1; k < n; k++) {
		const struct acrep *r = &a->rep[k];
		int32_t pi = r->out >= 0 ? r->out : a->rep[r->dlink].out;
		const struct pattern *pt;

		if (pi < 0 || (r->out >= 0 && r->dlink != 0) ||
		    c->pats[pi].next >= 0)
			continue;	/* none, or more than one */
		if (r->out < 0 && a->rep[r->dlink].dlink != 0)
			continue;
		pt = &c->pats[pi];
		if (pt->bstart && pt->len < 256)
			a->sbl[k] = (uint8_t)pt->len;
	}
	free(child);
	free(sib);
	free(ecls);
	free(tout);
	free(order);
	free(fail);
	if (rc == 0 && a->d16 != NULL)
		ac_split(a);
	return rc;
}

static void
ac_free(struct ac *a)
{
	free(a->d16);
	free(a->delta);
	free(a->rep);
	free(a->sbl);
}

/* ------------------------------------------------------------------ */
/* the scan's working memory                                            */

struct shift {			/* from offset pos on, source = pos + delta */
	uint32_t pos;
	int32_t delta;
};

struct cand {
	uint32_t start, end;
	const char *type;
	int16_t prio;
	uint8_t lost;		/* overlapped by a better candidate */
	uint8_t vlen;
	char val[SCAN_VALUE_MAX];
};

struct spriv {
	char *s, *f;
	size_t cap;		/* of s; f has 2 * cap */
	size_t used, usedf;	/* bytes of s and f written since the reset */
	struct shift *smap, *fmap;
	size_t nsmap, nfmap, smap_cap, fmap_cap;
	struct drun *runs;
	size_t nruns, runs_cap;
	struct dhit *hits;
	size_t nhits, hits_cap;
	/* hits of automaton streams 1..3 on long texts, appended after */
	struct dhit *xhits[4];
	size_t nxhits[4], xhits_cap[4];
	struct cand *cands;
	size_t ncands, cands_cap;
	size_t *act;		/* resolve(): candidates still open */
	size_t act_cap;
	/* distinct (type, value) hashes; open addressing, 0 = empty */
	uint64_t *seen;
	size_t seen_cap, nseen;
	uint32_t *seen_at;	/* the slots in use, to clear only those */
	pcre2_match_data *md;
	const struct classifier *c;
	struct scan *scan;
};

#define GROW(arr, n, cap, min) do {					\
	if ((n) >= (cap)) {						\
		size_t nc_ = (cap) ? (cap) * 2 : (min);			\
		(arr) = xrealloc((arr), nc_ * sizeof(*(arr)));		\
		(cap) = nc_;						\
	}								\
} while (0)

/* Zero what the last texts left in the working copies. */
static void
wipe_work(struct spriv *p)
{
	if (p->used > 0)
		memset(p->s, 0, p->used);
	if (p->usedf > 0)
		memset(p->f, 0, p->usedf);
	p->used = p->usedf = 0;
}

struct scan *
scan_new(void)
{
	struct scan *s = xcalloc(1, sizeof(*s));
	struct spriv *p = xcalloc(1, sizeof(*p));

	s->values = xcalloc(SCAN_MAX_VALUES, sizeof(*s->values));
	p->seen_cap = 1024;
	p->seen = xcalloc(p->seen_cap, sizeof(*p->seen));
	p->seen_at = xcalloc(p->seen_cap / 2, sizeof(*p->seen_at));
	p->md = pcre2_match_data_create(16, NULL);
	p->scan = s;
	s->priv = p;
	return s;
}

void
scan_reset(struct scan *s)
{
	struct spriv *p;

	if (s == NULL)
		return;
	p = s->priv;
	/* Values are the only copies of matched data: wipe, not just forget. */
	memset(s->values, 0, s->nvalues * sizeof(*s->values));
	s->nvalues = 0;
	s->ntypes = 0;
	s->dropped_values = 0;
	s->bytes_scanned = 0;
	/* most requests have a few values: clearing the whole table (8 KB
	 * or more) for them cost more than the rest of the bookkeeping */
	while (p->nseen > 0)
		p->seen[p->seen_at[--p->nseen]] = 0;
	/* the normalised copies of the request's text go with it too */
	wipe_work(p);
}

void
scan_free(struct scan *s)
{
	struct spriv *p;

	if (s == NULL)
		return;
	p = s->priv;
	scan_reset(s);
	if (p != NULL) {
		free(p->s);
		free(p->f);
		free(p->smap);
		free(p->fmap);
		free(p->runs);
		free(p->hits);
		free(p->xhits[1]);
		free(p->xhits[2]);
		free(p->xhits[3]);
		if (p->cands != NULL)
			memset(p->cands, 0, p->cands_cap * sizeof(*p->cands));
		free(p->cands);
		free(p->act);
		free(p->seen);
		free(p->seen_at);
		pcre2_match_data_free(p->md);
		free(p);
	}
	free(s->values);
	free(s);
}

unsigned
scan_count(const struct scan *s, const char *type)
{
	size_t i;

	for (i = 0; i < s->ntypes; i++)
		if (strcmp(s->types[i].type, type) == 0)
			return s->types[i].count;
	return 0;
}

/* Append a JSON string for t (escaped as jansson's compact dump does) at o;
 * returns the end. o has room for 6 bytes a byte of t, plus 2. */
static char *
put_json_string(char *o, const char *t)
{
	static const char hex[] = "0123456789ABCDEF";

	*o++ = '"';
	for (; *t != '\0'; t++) {
		unsigned char c = (unsigned char)*t;

		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c < 0x20) {
			const char *e = strchr("\bb\ff\nn\rr\tt", c);

			*o++ = '\\';
			if (e != NULL && c != 0) {
				*o++ = e[1];
			} else {
				memcpy(o, "u00", 3);
				o[3] = hex[c >> 4];
				o[4] = hex[c & 15];
				o += 5;
			}
		} else {
			*o++ = (char)c;
		}
	}
	*o++ = '"';
	return o;
}

/* {"type":count,...} sorted by type, as jansson's compact, sorted dump
 * would write it, without building a jansson object for every request. */
char *
scan_findings_json(const struct scan *s)
{
	const struct scan_type_count *t[SCAN_MAX_TYPES];
	size_t n = s->ntypes, i, j, len = 3;
	char *out, *o;

	for (i = 0; i < n; i++) {
		const struct scan_type_count *x = &s->types[i];

		for (j = i; j > 0 && strcmp(t[j - 1]->type, x->type) > 0; j--)
			t[j] = t[j - 1];
		t[j] = x;
		len += 6 * strlen(x->type) + 2 + 1 + 10 + 1;
	}
	out = o = xmalloc(len);
	*o++ = '{';
	for (i = 0; i < n; i++) {
		if (i > 0)
			*o++ = ',';
		o = put_json_string(o, t[i]->type);
		o += sprintf(o, ":%u", t[i]->count);
	}
	*o++ = '}';
	*o = '\0';
	return out;
}

/* ------------------------------------------------------------------ */
/* results                                                              */

static uint64_t
hash_value(const char *type, const char *v, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	size_t i;

	for (i = 0; type[i] != '\0'; i++)
		h = (h ^ (unsigned char)type[i]) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)v[i]) * 1099511628211ULL;
	h ^= h >> 29;
	return h ? h : 1;
}

/* 1 if (type, value) was not seen before in this request. */
static int
seen_add(struct spriv *p, uint64_t h)
{
	size_t i, mask;

	if ((p->nseen + 1) * 2 > p->seen_cap) {
		uint64_t *old = p->seen;
		size_t oldcap = p->seen_cap;

		p->seen_cap *= 2;
		p->seen = xcalloc(p->seen_cap, sizeof(*p->seen));
		free(p->seen_at);
		p->seen_at = xcalloc(p->seen_cap / 2, sizeof(*p->seen_at));
		p->nseen = 0;
		for (i = 0; i < oldcap; i++)
			if (old[i] != 0) {
				size_t j = old[i] & (p->seen_cap - 1);

				while (p->seen[j] != 0)
					j = (j + 1) & (p->seen_cap - 1);
				p->seen[j] = old[i];
				p->seen_at[p->nseen++] = (uint32_t)j;
			}
		free(old);
	}
	mask = p->seen_cap - 1;
	for (i = h & mask; p->seen[i] != 0; i = (i + 1) & mask)
		if (p->seen[i] == h)
			return 0;
	p->seen[i] = h;
	p->seen_at[p->nseen++] = (uint32_t)i;
	return 1;
}

static void
commit(struct spriv *p, const struct cand *c)
{
	struct scan *s = p->scan;
	size_t i;

	if (!seen_add(p, hash_value(c->type, c->val, c->vlen)))
		return;
	for (i = 0; i < s->ntypes; i++)
		if (s->types[i].type == c->type ||
		    strcmp(s->types[i].type, c->type) == 0)
			break;
	if (i == s->ntypes) {
		if (s->ntypes == SCAN_MAX_TYPES)
			return;		/* cannot happen with the built-ins */
		s->types[i].type = c->type;
		s->types[i].count = 0;
		s->ntypes++;
	}
	s->types[i].count++;
	if (s->nvalues < SCAN_MAX_VALUES) {
		struct scan_value *v = &s->values[s->nvalues++];

		v->type = c->type;
		v->len = c->vlen;
		memcpy(v->value, c->val, c->vlen);
	} else {
		s->dropped_values++;
	}
}

void
d_emit(const struct dtext *t, const char *type, size_t start, size_t end,
    int prio, int excl, const char *value, size_t vlen)
{
	struct spriv *p = t->ctx;
	struct cand *c, tmp;

	if (excl) {
		GROW(p->cands, p->ncands, p->cands_cap, 64);
		c = &p->cands[p->ncands++];
	} else {
		c = &tmp;	/* takes no part in overlaps: count it now */
	}
	c->start = (uint32_t)start;
	c->end = (uint32_t)end;
	c->type = type;
	c->prio = (int16_t)prio;
	c->lost = 0;
	if (vlen > SCAN_VALUE_MAX) {
		/* Long values (PEM blocks, tokens) are kept by digest: the
		 * fingerprint needs identity, not the secret itself. */
		char hex[65];

		sha256_hex(value, vlen, hex);
		memcpy(c->val, hex, 64);
		c->vlen = 64;
	} else {
		memcpy(c->val, value, vlen);
		c->vlen = (uint8_t)vlen;
	}
	if (!excl) {
		commit(p, c);
		memset(&tmp, 0, sizeof(tmp));
	}
}

static int
cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	if (x->end != y->end)
		return x->end > y->end ? -1 : 1;
	return y->prio - x->prio;
}

/* Whether candidate x beats y when they overlap. */
static int
beats(const struct cand *x, const struct cand *y, size_t xi, size_t yi)
{
	uint32_t lx = x->end - x->start, ly = y->end - y->start;

	if (x->prio != y->prio)
		return x->prio > y->prio;
	if (lx != ly)
		return lx > ly;
	return xi < yi;
}

/* One value yields one finding: among overlapping candidates the highest
 * priority (then the longest) wins; a 16-digit run inside an IBAN is not
 * also a card. A sweep over candidates ordered by start, keeping those that
 * still reach the current one: linear unless values pile up on each other. */
static void
resolve(struct spriv *p)
{
	size_t i, k, nact = 0;
	struct cand *c = p->cands;
	size_t *act;

	if (p->ncands == 0)
		return;
	if (p->ncands > 1)
		qsort(c, p->ncands, sizeof(*c), cand_cmp);
	if (p->act_cap < p->ncands) {
		p->act = xrealloc(p->act, p->ncands * sizeof(*p->act));
		p->act_cap = p->ncands;
	}
	act = p->act;
	for (i = 0; i < p->ncands; i++) {
		size_t o = 0;

		/* drop candidates that end before this one starts */
		for (k = 0; k < nact; k++)
			if (c[act[k]].end > c[i].start)
				act[o++] = act[k];
		nact = o;
		for (k = 0; k < nact; k++) {
			struct cand *j = &c[act[k]];

			if (beats(j, &c[i], act[k], i))
				c[i].lost = 1;
			else
				j->lost = 1;
		}
		act[nact++] = i;
	}
	for (i = 0; i < p->ncands; i++)
		if (!c[i].lost)
			commit(p, &c[i]);
	memset(c, 0, p->ncands * sizeof(*c));
	p->ncands = 0;
}

/* ------------------------------------------------------------------ */
/* context lookups for detectors                                        */

size_t
d_hits_upto(const struct dtext *t, size_t pos)
{
	size_t lo = 0, hi = t->nhits;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (t->hits[mid].end <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct dhit *
d_ctx_before(const struct dtext *t, size_t pos, size_t win, uint32_t mask)
{
	size_t lo = d_hits_upto(t, pos);

	while (lo > 0) {
		const struct dhit *h = &t->hits[--lo];

		if (h->end + win < pos)
			break;
		if (h->end <= pos && (h->kind & mask))
			return h;
	}
	return NULL;
}

const struct dhit *
d_ctx_after(const struct dtext *t, size_t endpos, size_t win, uint32_t mask)
{
	size_t lo;

	for (lo = d_hits_upto(t, endpos); lo < t->nhits; lo++) {
		const struct dhit *h = &t->hits[lo];

		if (h->start > endpos + win)
			break;
		if (h->start >= endpos && (h->kind & mask))
			return h;
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* normalisation                                                        */

static inline unsigned char
lower_ascii(unsigned char c)
{
	return (unsigned char)(c - 'A') < 26 ? (unsigned char)(c + 32) : c;
}

#define HI8 0x8080808080808080ULL

static void
map_add(struct shift **m, size_t *n, size_t *cap, size_t pos, long delta)
{
	if (*n > 0 && (*m)[*n - 1].delta == (int32_t)delta)
		return;
	if (*n > 0 && (*m)[*n - 1].pos == pos) {
		(*m)[*n - 1].delta = (int32_t)delta;
		return;
	}
	GROW(*m, *n, *cap, 16);
	(*m)[*n].pos = (uint32_t)pos;
	(*m)[*n].delta = (int32_t)delta;
	(*n)++;
}

static size_t
map_lookup(const struct shift *m, size_t n, size_t pos)
{
	size_t lo = 0, hi = n;

	if (n == 0)
		return pos;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (m[mid].pos <= pos)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == 0 ? pos : (size_t)((long)pos + m[lo - 1].delta);
}

/* Room for a text of len bytes in s and its folded twin in f. */
static void
work_reserve(struct spriv *p, size_t len)
{
	size_t cap;

	if (len + 1 <= p->cap)
		return;
	cap = len + 64;
	wipe_work(p);
	free(p->s);
	free(p->f);
	p->s = xmalloc(cap);
	p->f = xmalloc(2 * cap);
	p->cap = cap;
}

/*
 * What a careless or hostile client may send, made plain: zero-width and
 * soft-hyphen characters vanish, every Unicode space becomes ' ', dashes
 * become '-', full-width forms become ASCII. s keeps the case; f is s
 * folded (lower case, Latin accents stripped) for the lexicons. smap maps
 * s offsets to the original text, fmap f offsets to s.
 */
static void
normalise(struct spriv *p, const char *text, size_t len, size_t *sn,
    size_t *fn)
{
	const unsigned char *in = (const unsigned char *)text;
	size_t i = 0, j = 0, k = 0;
	char *s, *f;

	work_reserve(p, len);
	s = p->s;
	f = p->f;
	p->nsmap = p->nfmap = 0;
	while (i < len) {
		uint32_t cp;
		size_t l;
		int sc;		/* ASCII replacement, -1 drop, -2 keep bytes */
		char tmp[2];
		size_t fl;

		/* ASCII fast path, eight bytes at a time: most of any text */
		while (i + 8 <= len) {
			uint64_t x, up;

			memcpy(&x, in + i, 8);
			if (x & HI8)
				break;
			memcpy(s + j, &x, 8);
			/* high bit of each byte: >= 'A' and not > 'Z' */
			up = (x + 0x3f3f3f3f3f3f3f3fULL) &
			    ~(x + 0x2525252525252525ULL) & HI8;
			x |= up >> 2;
			memcpy(f + k, &x, 8);
			i += 8;
			j += 8;
			k += 8;
		}
		if (i >= len)
			break;
		if (in[i] < 0x80) {
			s[j++] = (char)in[i];
			f[k++] = (char)lower_ascii(in[i]);
			i++;
			continue;
		}
		l = utf8_dec(in + i, len - i, &cp);
		if (l == 0) {
			l = 1;
			cp = 0xFFFD;
			sc = -2;
		} else if ((cp >= 0x200B && cp <= 0x200D) || cp == 0x2060 ||
		    cp == 0xFEFF || cp == 0x00AD || cp == 0x180E) {
			sc = -1;
		} else if (cp == 0xA0 || cp == 0x1680 ||
		    (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F ||
		    cp == 0x205F || cp == 0x3000 || cp == 0x2028 ||
		    cp == 0x2029 || cp == 0x85) {
			sc = ' ';
		} else if ((cp >= 0x2010 && cp <= 0x2015) || cp == 0x2212 ||
		    cp == 0xFE63 || cp == 0xFE58) {
			sc = '-';
		} else if (cp >= 0xFF01 && cp <= 0xFF5E) {
			sc = (int)(cp - 0xFF01 + 0x21);
		} else if (cp == 0x2018 || cp == 0x2019) {
			sc = '\'';
		} else if (cp == 0x2024 || cp == 0xFF61) {
			sc = '.';
		} else {
			sc = -2;
		}
		if (sc == -1) {
			/* dropped */
		} else if (sc >= 0) {
			s[j++] = (char)sc;
			f[k++] = (char)lower_ascii((unsigned char)sc);
		} else {
			memcpy(s + j, in + i, l);
			j += l;
			if ((fl = fold_cp(cp, tmp)) > 0) {
				memcpy(f + k, tmp, fl);
				k += fl;
			} else {
				memcpy(f + k, in + i, l);
				k += l;
			}
		}
		i += l;
		map_add(&p->smap, &p->nsmap, &p->smap_cap, j, (long)i - (long)j);
		map_add(&p->fmap, &p->nfmap, &p->fmap_cap, k, (long)j - (long)k);
	}
	s[j] = '\0';
	f[k] = '\0';
	*sn = j;
	*fn = k;
	if (j + 1 > p->used)
		p->used = j + 1;
	if (k + 1 > p->usedf)
		p->usedf = k + 1;
}

/* Whether text is pure ASCII, sixteen bytes at a time. */
static int
all_ascii(const unsigned char *s, size_t n)
{
	size_t i = 0;
	uint64_t acc = 0;

	for (; i + 32 <= n; i += 32) {
		uint64_t x[4];

		memcpy(x, s + i, 32);
		if ((x[0] | x[1] | x[2] | x[3]) & HI8)
			return 0;
	}
	for (; i + 8 <= n; i += 8) {
		uint64_t x;

		memcpy(&x, s + i, 8);
		acc |= x;
	}
	for (; i < n; i++)
		acc |= s[i];
	return (acc & HI8) == 0;
}

/*
 * Pure ASCII needs no normalisation: every character the normaliser
 * rewrites is non-ASCII. The text is copied as it is (the detectors rely on
 * the NUL after it, and the copy is wiped with the request) and the
 * automaton folds case through its byte classes, so there is no folded
 * twin and no offset map: f is s.
 */
static int
ascii_copy(struct spriv *p, const char *text, size_t len)
{
	if (!all_ascii((const unsigned char *)text, len))
		return -1;
	work_reserve(p, len);
	memcpy(p->s, text, len);
	p->s[len] = '\0';
	p->nsmap = p->nfmap = 0;
	if (len + 1 > p->used)
		p->used = len + 1;
	return 0;
}

static uint32_t
run_starts_number(const char *s, size_t st)
{
	unsigned char c;

	if (st == 0)
		return 1;
	c = (unsigned char)s[st - 1];
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_' || c >= 0x80)
		return 0;
	if ((c == ' ' || c == '-' || c == '.' || c == '/' || c == ',') &&
	    st >= 2 && (unsigned char)(s[st - 2] - '0') <= 9)
		return 0;
	return 1;
}

/* Bit k set where s[k] is an ASCII digit, for the n <= 64 bytes at s. */
static inline uint64_t
digit_mask(const char *s, size_t n)
{
	uint64_t m = 0;
	size_t k;

#if defined(__SSE2__)
	if (n == 64) {
		const __m128i lo = _mm_set1_epi8('0' - 1), hi = _mm_set1_epi8('9' + 1);

		for (k = 0; k < 4; k++) {
			__m128i v = _mm_loadu_si128((const __m128i *)(const void *)
			    (s + 16 * k));
			__m128i dg = _mm_and_si128(_mm_cmpgt_epi8(v, lo),
			    _mm_cmplt_epi8(v, hi));

			m |= (uint64_t)(unsigned)_mm_movemask_epi8(dg) << (16 * k);
		}
		return m;
	}
#endif
	for (k = 0; k < n; k++)
		if ((unsigned char)(s[k] - '0') <= 9)
			m |= 1ULL << k;
	return m;
}

static inline void
add_run(struct spriv *p, const char *s, size_t st, size_t end)
{
	GROW(p->runs, p->nruns, p->runs_cap, 64);
	p->runs[p->nruns].start = (uint32_t)st;
	p->runs[p->nruns].end = (uint32_t)end;
	p->runs[p->nruns].seq = run_starts_number(s, st);
	p->nruns++;
}

/*
 * The maximal runs of digits, 64 bytes at a time: a run starts or ends
 * where a byte's digit bit differs from the byte before's, so the edges of
 * a chunk's digit mask are its run boundaries, visited without a
 * per-byte loop (code and tables have a digit every few bytes).
 */
static void
find_runs(struct spriv *p, const char *s, size_t n)
{
	size_t base, st = 0;
	uint64_t prev = 0;	/* the byte before the chunk is a digit */

	p->nruns = 0;
	for (base = 0; base < n; base += 64) {
		size_t m = n - base < 64 ? n - base : 64;
		uint64_t d = digit_mask(s + base, m);
		/* past a short last chunk, the edge after its last digit
		 * still shows (as bit m), ending a run at n */
		uint64_t edge = d ^ ((d << 1) | prev);

		prev = m == 64 ? d >> 63 : 0;
		while (edge != 0) {
			size_t k = base + (size_t)__builtin_ctzll(edge);

			edge &= edge - 1;
			if (k < n && (unsigned char)(s[k] - '0') <= 9)
				st = k;
			else
				add_run(p, s, st, k);
		}
	}
	if (prev)
		add_run(p, s, st, n);
}

/* Whether text (folded, or ASCII in any case) holds the folded word w. */
static int
folded_eq(const char *text, const char *w, size_t n)
{
	size_t k;

	for (k = 0; k < n; k++)
		if (lower_ascii((unsigned char)text[k]) != (unsigned char)w[k])
			return 0;
	return 1;
}

static void
report(struct spriv *p, const struct classifier *c, const char *f,
    size_t fn, uint32_t state, size_t i, int k)
{
	struct dhit **hits = k ? &p->xhits[k] : &p->hits;
	size_t *nhits = k ? &p->nxhits[k] : &p->nhits;
	size_t *cap = k ? &p->xhits_cap[k] : &p->hits_cap;
	const struct ac *a = &c->ac;

	for (;;) {
		int32_t pi;

		for (pi = a->rep[state].out; pi >= 0; pi = c->pats[pi].next) {
			const struct pattern *pt = &c->pats[pi];
			size_t end = i + 1, start = end - pt->len;
			struct dhit *h;

			if (!pt->exact && !folded_eq(f + start, pt->w, pt->len))
				continue;
			if (pt->bstart && start > 0 &&
			    f_word((unsigned char)f[start - 1]))
				continue;
			if (pt->bend && end < fn &&
			    f_word((unsigned char)f[end])) {
				size_t e = end;

				if (!(pt->kind & LX_STEM))
					continue;
				/* a stem takes simple inflections */
				while (e < fn && f_word((unsigned char)f[e]) &&
				    e - end < 6)
					e++;
				if (e < fn && f_word((unsigned char)f[e]))
					continue;
				end = e;
			}
			GROW(*hits, *nhits, *cap, 32);
			h = &(*hits)[(*nhits)++];
			h->start = (uint32_t)map_lookup(p->fmap, p->nfmap, start);
			h->end = (uint32_t)map_lookup(p->fmap, p->nfmap, end);
			h->kind = pt->kind;
			h->ids = pt->ids;
			h->pat = pi;
			h->custom = pt->custom;
			if ((pt->kind & LX_UPPER)) {
				size_t q;

				for (q = h->start; q < h->end; q++)
					if (p->s[q] >= 'a' && p->s[q] <= 'z')
						break;
				if (q < h->end)
					(*nhits)--;
			}
		}
		state = a->rep[state].dlink;
		if (state == 0)
			break;
	}
}

/* Texts from this length on run as four interleaved streams. */
#ifndef AC_SPLIT_MIN
#define AC_SPLIT_MIN 256
#endif

/* A reported state's patterns, unless its one pattern is glued to the word
 * before (the common case, decided without leaving the scan loop). */
#define AC_REPORT(st, pos, k) do {					\
	size_t l_ = sbl[st];						\
	if (l_ == 0 || (pos) < l_ || !f_word(u[(pos) - l_]))		\
		report(p, c, f, fn, (st), (pos), (k));			\
} while (0)

/* One automaton step on the 16-bit table (rows of 1 << AC_SHIFT). */
#define AC_STEP16(st, pos) ((st) = d[((st) << AC_SHIFT) + cls[u[pos]]])

static void
ac_run(struct spriv *p, const struct classifier *c, const char *f, size_t fn)
{
	const struct ac *a = &c->ac;
	const uint8_t *cls = a->cls;
	const unsigned char *u = (const unsigned char *)f;
	const uint8_t *sbl = a->sbl;
	size_t i;

	p->nhits = 0;
	if (a->d16 != NULL && fn >= AC_SPLIT_MIN && fn / 4 > a->maxlen) {
		/*
		 * Each step waits for the previous load, so one stream is
		 * latency-bound: run four independent streams over the four
		 * quarters. Streams 1-3 start maxlen bytes early so that every
		 * pattern ending in their quarter is seen whole, and report
		 * only from their quarter on, so the hits stay ordered by end
		 * once appended in stream order. Reports are rare: one test of
		 * the four entries together keeps them out of the loop.
		 */
		const uint16_t *d = a->d16;
		const uint32_t rb = a->repbit;
		size_t q = fn / 4, k, b1 = q, b2 = 2 * q, b3 = 3 * q;
		uint32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;

		for (k = 1; k < 4; k++)
			p->nxhits[k] = 0;
		for (i = a->maxlen; i > 0; i--) {	/* warm up 1-3 */
			AC_STEP16(s1, b1 - i);
			AC_STEP16(s2, b2 - i);
			AC_STEP16(s3, b3 - i);
		}
		/* The reports are handled outside the inner loop, which so
		 * keeps the four states in registers. */
		for (i = 0; i < q; i++) {
			for (; i < q; i++) {
				AC_STEP16(s0, i);
				AC_STEP16(s1, b1 + i);
				AC_STEP16(s2, b2 + i);
				AC_STEP16(s3, b3 + i);
				if (((s0 | s1 | s2 | s3) & rb) != 0)
					break;
			}
			if (i == q)
				break;
			if (s0 & rb)
				AC_REPORT(s0, i, 0);
			if (s1 & rb)
				AC_REPORT(s1, b1 + i, 1);
			if (s2 & rb)
				AC_REPORT(s2, b2 + i, 2);
			if (s3 & rb)
				AC_REPORT(s3, b3 + i, 3);
		}
		for (i = b3 + q; i < fn; i++) {
			AC_STEP16(s3, i);
			if (s3 & rb)
				AC_REPORT(s3, i, 3);
		}
		for (k = 1; k < 4; k++) {
			size_t m;

			for (m = 0; m < p->nxhits[k]; m++) {
				GROW(p->hits, p->nhits, p->hits_cap, 32);
				p->hits[p->nhits++] = p->xhits[k][m];
			}
		}
		return;
	}
	if (a->d16 != NULL) {
		const uint16_t *d = a->d16;
		const uint32_t rb = a->repbit;
		uint32_t st = 0;

		for (i = 0; i < fn; i++) {
			AC_STEP16(st, i);
			if (st & rb)
				AC_REPORT(st, i, 0);
		}
	} else {
		const uint32_t *d = a->delta;
		uint32_t st = 0;

		for (i = 0; i < fn; i++) {
			uint32_t x = d[((size_t)st << AC_SHIFT) + cls[u[i]]];

			st = x & ~AC_OUT;
			if (x & AC_OUT)
				AC_REPORT(st, i, 0);
		}
	}
}

static void
run_regexes(struct spriv *p, const struct classifier *c, const struct dtext *t)
{
	size_t r;

	for (r = 0; r < c->ncustom; r++) {
		PCRE2_SIZE off = 0;

		if (c->regex[r] == NULL)
			continue;
		while (off <= t->n) {
			int rc;
			PCRE2_SIZE *ov;

			if (c->regex_jit[r])
				rc = pcre2_jit_match(c->regex[r],
				    (PCRE2_SPTR)t->s, t->n, off, 0, p->md, NULL);
			else
				rc = pcre2_match(c->regex[r], (PCRE2_SPTR)t->s,
				    t->n, off, 0, p->md, NULL);
			if (rc < 0)
				break;
			ov = pcre2_get_ovector_pointer(p->md);
			if (ov[1] < ov[0])
				break;	/* \K tricks: ignore */
			d_emit(t, c->custom_types[r], ov[0], ov[1], PRIO_LOW, 0,
			    t->s + ov[0], ov[1] - ov[0]);
			off = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
		}
	}
}

/* Long texts are scanned in pieces of this size, cut at a space, each
 * starting a little before the previous one ended, so that working memory
 * stays bounded whatever the body limit. A value crossing a cut is seen
 * whole in the overlap, and counted once like any repeated value. */
#define SCAN_PIECE	(1u << 20)
#define SCAN_OVERLAP	4096

static void
scan_piece(const struct classifier *c, struct scan *s, const char *text,
    size_t len)
{
	struct spriv *p = s->priv;
	struct dtext t;
	size_t sn, fn, i;

	const char *f;

	p->c = c;
	if (ascii_copy(p, text, len) == 0) {
		sn = fn = len;
		f = p->s;
	} else {
		normalise(p, text, len, &sn, &fn);
		f = p->f;
	}
	find_runs(p, p->s, sn);
	ac_run(p, c, f, fn);

	t.s = p->s;
	t.n = sn;
	t.f = f;
	t.fn = fn;
	t.runs = p->runs;
	t.nruns = p->nruns;
	t.hits = p->hits;
	t.nhits = p->nhits;
	t.pat_words = c->pat_words;
	t.ctx = p;
	t.kinds = 0;
	for (i = 0; i < p->nhits; i++)
		t.kinds |= p->hits[i].kind;
	for (i = 0; i < detector_count; i++)
		detector_table[i].fn(&t);
	/* custom words */
	for (i = 0; i < p->nhits; i++) {
		const struct dhit *h = &p->hits[i];

		if (!(h->kind & LX_CUSTOM))
			continue;
		d_emit(&t, c->custom_types[h->custom], h->start, h->end,
		    PRIO_LOW, 0, c->pats[h->pat].w, c->pats[h->pat].len);
	}
	run_regexes(p, c, &t);
	resolve(p);
}

static int
is_space(char ch)
{
	return ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r';
}

void
classifier_scan(const struct classifier *c, struct scan *s, const char *text,
    size_t len)
{
	size_t off = 0;

	s->bytes_scanned += len;
	while (off < len) {
		size_t end = len, next;

		if (len - off > SCAN_PIECE) {
			end = off + SCAN_PIECE;
			for (next = end; next < len && next - end < 256 &&
			    !is_space(text[next]); next++)
				;
			end = next;
		}
		scan_piece(c, s, text + off, end - off);
		if (end >= len)
			break;
		for (next = end - SCAN_OVERLAP; next < end &&
		    !is_space(text[next]); next++)
			;
		off = next;
	}
}

size_t
scan_orig_offset(const struct scan *s, size_t norm_off)
{
	const struct spriv *p = s->priv;

	return map_lookup(p->smap, p->nsmap, norm_off);
}

/* ------------------------------------------------------------------ */
/* building                                                             */

static void
add_pattern(struct classifier *c, size_t *cap, const char *word,
    uint32_t kind, uint32_t ids, int32_t custom)
{
	struct pattern *pt;
	char *w = fold_string(word);
	size_t len = strlen(w);

	/* trailing '*' in a lexicon word marks a stem */
	if (len > 0 && w[len - 1] == '*') {
		w[--len] = '\0';
		kind |= LX_STEM;
	}
	if (len == 0) {
		free(w);
		return;
	}
	if (c->npats == *cap) {
		*cap = *cap ? *cap * 2 : 1024;
		c->pats = xrealloc(c->pats, *cap * sizeof(*c->pats));
	}
	pt = &c->pats[c->npats++];
	pt->w = w;
	pt->len = (uint32_t)len;
	pt->kind = kind;
	pt->ids = ids;
	pt->custom = custom;
	pt->next = -1;
}

/* Sort keys for the patterns: the first eight bytes big-endian (so that
 * comparing keys compares like strcmp), and the index, which keeps equal
 * patterns in the order they were added. Start-up sorts a few thousand
 * words; comparing them by strcmp through their pointers was a third of
 * building the classifier. */
struct pat_key {
	uint64_t k;
	const struct pattern *p;
	size_t i;
};

static int
pat_key_cmp(const void *a, const void *b)
{
	const struct pat_key *x = a, *y = b;
	int r;

	if (x->k != y->k)
		return x->k < y->k ? -1 : 1;
	if ((r = strcmp(x->p->w, y->p->w)) != 0)	/* rare: same 8 bytes */
		return r;
	if (x->p->custom != y->p->custom)
		return x->p->custom < y->p->custom ? -1 : 1;
	return (x->i > y->i) - (x->i < y->i);
}

/* Merge built-in duplicates (the same word in two lists): one pattern with
 * the union of kinds. Custom words stay separate so each detector counts. */
static void
merge_patterns(struct classifier *c)
{
	size_t i, o = 0;

	if (c->npats == 0)
		return;
	{
		struct pat_key *key = xmalloc(c->npats * sizeof(*key));
		struct pattern *sorted = xmalloc(c->npats * sizeof(*sorted));
		size_t j;

		for (i = 0; i < c->npats; i++) {
			const unsigned char *w =
			    (const unsigned char *)c->pats[i].w;

			key[i].k = 0;
			for (j = 0; j < 8; j++)
				key[i].k = key[i].k << 8 |
				    (j < c->pats[i].len ? w[j] : 0);
			key[i].p = &c->pats[i];
			key[i].i = i;
		}
		qsort(key, c->npats, sizeof(*key), pat_key_cmp);
		for (i = 0; i < c->npats; i++)
			sorted[i] = *key[i].p;
		free(c->pats);
		c->pats = sorted;
		free(key);
	}
	for (i = 0; i < c->npats; i++) {
		if (o > 0 && c->pats[i].custom < 0 &&
		    c->pats[o - 1].custom < 0 &&
		    (c->pats[o - 1].kind & LX_FLAGS) ==
		    (c->pats[i].kind & LX_FLAGS) &&
		    ((c->pats[i].kind & LX_MONTH) == 0 ||
		    c->pats[o - 1].ids == c->pats[i].ids) &&
		    strcmp(c->pats[o - 1].w, c->pats[i].w) == 0) {
			c->pats[o - 1].kind |= c->pats[i].kind;
			c->pats[o - 1].ids |= c->pats[i].ids;
			free(c->pats[i].w);
			continue;
		}
		c->pats[o++] = c->pats[i];
	}
	c->npats = o;
}

struct classifier *
classifier_new(const struct custom_def *defs, size_t n, struct diags *d)
{
	struct classifier *c = xcalloc(1, sizeof(*c));
	size_t cap = 0, i, w;
	int bad = 0;

	for (i = 0; i < lex_builtin_count + lex_health_count; i++) {
		const struct lex_list *ll = i < lex_builtin_count ?
		    &lex_builtin[i] : &lex_health[i - lex_builtin_count];
		const char *list = ll->words, *bar;

		for (;; list = bar + 1) {
			char *one;

			bar = strchr(list, '|');
			one = xstrndup(list, bar ? (size_t)(bar - list) :
			    strlen(list));
			add_pattern(c, &cap, one, ll->kind, ll->ids, -1);
			free(one);
			if (bar == NULL)
				break;
		}
	}
	c->ncustom = n;
	c->custom_types = xcalloc(n + 1, sizeof(*c->custom_types));
	c->regex = xcalloc(n + 1, sizeof(*c->regex));
	c->regex_jit = xcalloc(n + 1, sizeof(*c->regex_jit));
	for (i = 0; i < n; i++) {
		c->custom_types[i] = xasprintf("custom.%s", defs[i].name);
		for (w = 0; w < defs[i].nwords; w++) {
			if (defs[i].words[w] == NULL ||
			    defs[i].words[w][0] == '\0') {
				if (d != NULL)
					diags_add(d, DIAG_ERROR, defs[i].file,
					    defs[i].line, defs[i].col,
					    "custom detector '%s': empty word "
					    "%zu; remove it or give it text",
					    defs[i].name, w + 1);
				bad = 1;
				continue;
			}
			add_pattern(c, &cap, defs[i].words[w], LX_CUSTOM, 0,
			    (int32_t)i);
		}
		if (defs[i].regex != NULL) {
			int err;
			PCRE2_SIZE eoff;
			pcre2_code *re = pcre2_compile(
			    (PCRE2_SPTR)defs[i].regex, PCRE2_ZERO_TERMINATED,
			    PCRE2_UTF | PCRE2_NEVER_BACKSLASH_C, &err, &eoff,
			    NULL);

			if (re == NULL) {
				PCRE2_UCHAR msg[256];

				pcre2_get_error_message(err, msg, sizeof(msg));
				if (d != NULL)
					diags_add(d, DIAG_ERROR, defs[i].file,
					    defs[i].regex_line ?
					    defs[i].regex_line : defs[i].line,
					    defs[i].regex_line ?
					    defs[i].regex_col : defs[i].col,
					    "custom detector '%s': invalid "
					    "regex at pattern offset %zu: %s",
					    defs[i].name, (size_t)eoff,
					    (const char *)msg);
				bad = 1;
				continue;
			}
			c->regex_jit[i] = pcre2_jit_compile(re,
			    PCRE2_JIT_COMPLETE) == 0;
			c->regex[i] = re;
		}
	}
	if (bad)
		goto fail;
	merge_patterns(c);
	if (ac_build(c) < 0) {
		if (d != NULL)
			diags_add(d, DIAG_ERROR, NULL, 0, 0,
			    "classifier: too many distinct characters in "
			    "custom words");
		goto fail;
	}
	c->pat_words = xcalloc(c->npats + 1, sizeof(*c->pat_words));
	for (i = 0; i < c->npats; i++)
		c->pat_words[i] = c->pats[i].w;
	return c;
fail:
	classifier_free(c);
	return NULL;
}

void
classifier_free(struct classifier *c)
{
	size_t i;

	if (c == NULL)
		return;
	ac_free(&c->ac);
	for (i = 0; i < c->npats; i++)
		free(c->pats[i].w);
	free(c->pats);
	free(c->pat_words);
	for (i = 0; i < c->ncustom; i++) {
		free(c->custom_types[i]);
		pcre2_code_free(c->regex[i]);
	}
	free(c->custom_types);
	free(c->regex);
	free(c->regex_jit);
	free(c);
}
