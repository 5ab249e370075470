/*
 * detect.c - the built-in detectors (SPEC §6, issue 3).
 *
 * Every detector works on the normalised text of struct dtext and starts
 * only where the framework's passes point: digit runs, '@' and ':' found by
 * memchr, and lexicon hits. None of them uses a backtracking matcher, so a
 * text costs time linear in its length whatever it holds.
 *
 * Check digits are validated wherever a type has them. Where a check is weak
 * (about one random number in ten passes), a nearby word naming the type, in
 * any of the six languages, is required; a nearer word naming something else
 * ("order", "tracking", "phone") rules the identifier out.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "detect.h"

const char *const nid_type_names[NID_COUNT] = {
	NID_TYPES(NID_NAME_)
};

static inline int isdig(int c) { return c >= '0' && c <= '9'; }
static inline int isup(int c) { return c >= 'A' && c <= 'Z'; }
static inline int islow(int c) { return c >= 'a' && c <= 'z'; }
static inline int isalph(int c) { return isup(c) || islow(c); }
static inline int isaln(int c) { return isdig(c) || isalph(c); }
static inline int toup(int c) { return islow(c) ? c - 32 : c; }
static inline int tolow(int c) { return isup(c) ? c + 32 : c; }
static inline int ishex(int c)
{
	return isdig(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
/* a byte that continues a word: ASCII alnum or part of a non-ASCII letter */
static inline int iswordb(int c)
{
	return isaln(c) || c == '_' || (unsigned char)c >= 0x80;
}

/* ------------------------------------------------------------------ */
/* check digits                                                        */

int
luhn_ok(const char *d, size_t n)
{
	int sum = 0, dbl = 0;
	size_t i;

	for (i = n; i-- > 0;) {
		int v = d[i] - '0';

		if (dbl) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
		dbl = !dbl;
	}
	return n > 0 && sum % 10 == 0;
}

static int
dnum(const char *d, size_t n)
{
	int v = 0;
	size_t i;

	for (i = 0; i < n; i++)
		v = v * 10 + (d[i] - '0');
	return v;
}

static int
atoi_n(const char *d, size_t n)
{
	return dnum(d, n);
}

/* ISO 13616 registry: country code and total length. */
static const struct { char cc[3]; uint8_t len; } iban_len[] = {
	{"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20},
	{"BE", 16}, {"BG", 22}, {"BH", 22}, {"BI", 27}, {"BR", 29}, {"BY", 28},
	{"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24}, {"DE", 22}, {"DJ", 27},
	{"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18},
	{"FK", 18}, {"FO", 18}, {"FR", 27}, {"GB", 22}, {"GE", 22}, {"GI", 23},
	{"GL", 18}, {"GR", 27}, {"GT", 28}, {"HN", 28}, {"HR", 21}, {"HU", 28},
	{"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27}, {"JO", 30},
	{"KW", 30}, {"KZ", 20}, {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20},
	{"LU", 20}, {"LV", 21}, {"LY", 25}, {"MC", 27}, {"MD", 24}, {"ME", 22},
	{"MK", 19}, {"MN", 20}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NI", 28},
	{"NL", 18}, {"NO", 15}, {"OM", 23}, {"PK", 24}, {"PL", 28}, {"PS", 29},
	{"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"RU", 33}, {"SA", 24},
	{"SC", 31}, {"SD", 18}, {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27},
	{"SO", 23}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24}, {"TR", 26},
	{"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20}, {"YE", 30},
};

static int
iban_country_len(const char *cc)
{
	size_t lo = 0, hi = sizeof(iban_len) / sizeof(iban_len[0]);

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int r = memcmp(iban_len[mid].cc, cc, 2);

		if (r == 0)
			return iban_len[mid].len;
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

int
iban_valid(const char *s, size_t n)
{
	unsigned rem = 0;
	size_t i;

	if (n < 15 || n > 34 || !isup(s[0]) || !isup(s[1]) || !isdig(s[2]) ||
	    !isdig(s[3]) || iban_country_len(s) != (int)n)
		return 0;
	for (i = 0; i < n; i++) {
		int c = s[(i + 4) % n];

		if (isdig(c))
			rem = (rem * 10 + (unsigned)(c - '0')) % 97;
		else if (isup(c))
			rem = (rem * 100 + (unsigned)(c - 'A' + 10)) % 97;
		else
			return 0;
	}
	return rem == 1;
}

int
card_issuer_ok(const char *d, size_t n)
{
	int p2 = dnum(d, 2), p3 = dnum(d, 3), p4 = dnum(d, 4),
	    p6 = dnum(d, 6);

	if (d[0] == '4')				/* Visa */
		return n == 13 || n == 16 || n == 19;
	if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720))
		return n == 16;				/* Mastercard */
	if (p2 == 34 || p2 == 37)
		return n == 15;				/* Amex */
	if (p4 == 6011 || (p3 >= 644 && p3 <= 649) || p2 == 65 ||
	    (p6 >= 622126 && p6 <= 622925))
		return n >= 16 && n <= 19;		/* Discover */
	if (p4 >= 3528 && p4 <= 3589)
		return n >= 16 && n <= 19;		/* JCB */
	if ((p3 >= 300 && p3 <= 305) || p2 == 36 || p2 == 38 || p2 == 39 ||
	    p4 == 3095)
		return n >= 14 && n <= 19;		/* Diners */
	if (p2 == 62 || p2 == 81)
		return n >= 16 && n <= 19;		/* UnionPay */
	if (p4 >= 2200 && p4 <= 2204)
		return n >= 16 && n <= 19;		/* Mir */
	if (p2 == 50 || (p2 >= 56 && p2 <= 69) || p4 == 6759)
		return n >= 12 && n <= 19;		/* Maestro */
	return 0;
}

static int
date_ok(int y, int m, int d)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31};

	if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return 0;
	if (m == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) ||
	    y % 400 == 0))
		return 0;
	return 1;
}

/* Corsica: 2A and 2B count as 19 and 18 in the key computation. */
int
fr_nir_valid(const char *s, size_t n)
{
	char d[16];
	size_t i;
	unsigned long long v = 0;
	int key, mm;

	if (n != 15)
		return 0;
	memcpy(d, s, 15);
	if (d[5] == '2' && (toup(d[6]) == 'A' || toup(d[6]) == 'B')) {
		int b = toup(d[6]) == 'B';

		d[5] = '1';
		d[6] = b ? '8' : '9';
	}
	for (i = 0; i < 15; i++)
		if (!isdig(d[i]))
			return 0;
	if (d[0] != '1' && d[0] != '2' && d[0] != '3' && d[0] != '4' &&
	    d[0] != '7' && d[0] != '8')
		return 0;
	mm = dnum(d + 3, 2);
	if (!((mm >= 1 && mm <= 12) || (mm >= 20 && mm <= 42) ||
	    (mm >= 50 && mm <= 99)))
		return 0;
	for (i = 0; i < 13; i++)
		v = v * 10 + (unsigned)(d[i] - '0');
	key = dnum(d + 13, 2);
	return key >= 1 && key <= 97 && (int)(97 - v % 97) == key;
}

/* ISO 7064 MOD 11,10 plus the digit-repetition rule of the Steuer-ID. */
int
de_tax_id_valid(const char *d, size_t n)
{
	int cnt[10] = {0}, i, prod = 10, twice = 0, thrice = 0;

	if (n != 11 || d[0] == '0')
		return 0;
	for (i = 0; i < 10; i++)
		cnt[d[i] - '0']++;
	for (i = 0; i < 10; i++) {
		if (cnt[i] == 2)
			twice++;
		else if (cnt[i] == 3)
			thrice++;
		else if (cnt[i] > 3)
			return 0;
	}
	if (!((twice == 1 && thrice == 0) || (twice == 0 && thrice == 1)))
		return 0;
	if (thrice == 1) {
		/* a digit may not appear three times in a row */
		for (i = 0; i + 2 < 10; i++)
			if (d[i] == d[i + 1] && d[i] == d[i + 2])
				return 0;
	}
	for (i = 0; i < 10; i++) {
		int sum = (d[i] - '0' + prod) % 10;

		if (sum == 0)
			sum = 10;
		prod = (sum * 2) % 11;
	}
	return (11 - prod) % 10 == d[10] - '0';
}

int
nl_bsn_valid(const char *d, size_t n)
{
	int sum = 0;
	size_t i;

	if (n != 9 || memcmp(d, "000000000", 9) == 0)
		return 0;
	for (i = 0; i < 8; i++)
		sum += (int)(9 - i) * (d[i] - '0');
	sum -= d[8] - '0';
	return sum % 11 == 0;
}

static const char dni_letters[] = "TRWAGMYFPDXBNJZSQVHLCKE";

int
es_dni_valid(const char *s, size_t n)
{
	if (n != 9)
		return 0;
	for (size_t i = 0; i < 8; i++)
		if (!isdig(s[i]))
			return 0;
	return toup(s[8]) == dni_letters[dnum(s, 8) % 23];
}

int
es_nie_valid(const char *s, size_t n)
{
	char d[9];

	if (n != 9)
		return 0;
	switch (toup(s[0])) {
	case 'X': d[0] = '0'; break;
	case 'Y': d[0] = '1'; break;
	case 'Z': d[0] = '2'; break;
	default: return 0;
	}
	memcpy(d + 1, s + 1, 8);
	return es_dni_valid(d, 9);
}

int
it_cf_valid(const char *s, size_t n)
{
	/* values of odd positions (1st, 3rd, ...) for 0-9 and A-Z */
	static const int odd[36] = {1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 1, 0,
	    5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14,
	    16, 10, 22, 25, 24, 23};
	static const char omo[] = "LMNPQRSTUV";	/* digits in omocodia */
	static const char months[] = "ABCDEHLMPRST";
	static const int digpos[] = {6, 7, 9, 10, 12, 13, 14};
	char u[16];
	int sum = 0, i;

	if (n != 16)
		return 0;
	for (i = 0; i < 16; i++) {
		u[i] = (char)toup(s[i]);
		if (!isaln(u[i]))
			return 0;
	}
	for (i = 0; i < 6; i++)
		if (!isup(u[i]))
			return 0;
	if (!isup(u[8]) || strchr(months, u[8]) == NULL || !isup(u[11]) ||
	    !isup(u[15]))
		return 0;
	for (i = 0; i < 7; i++) {
		char c = u[digpos[i]];

		if (!isdig(c) && strchr(omo, c) == NULL)
			return 0;
	}
	for (i = 0; i < 15; i++) {
		int c = u[i], v = isdig(c) ? c - '0' : c - 'A' + 10;

		if ((i % 2) == 0)
			sum += odd[v];
		else
			sum += isdig(c) ? c - '0' : c - 'A';
	}
	return u[15] == 'A' + sum % 26;
}

/* Belgian national number: YYMMDD SSS CC, CC = 97 - (n mod 97), with a
 * leading 2 for people born from 2000. Month or day may be 0 (unknown
 * date), and bis numbers add 20 or 40 to the month. */
int
be_nn_valid(const char *d, size_t n)
{
	unsigned long long v;
	int cc, mm, dd;

	if (n != 11)
		return 0;
	mm = dnum(d + 2, 2);
	dd = dnum(d + 4, 2);
	if (mm > 40)
		mm -= 40;
	else if (mm > 20)
		mm -= 20;
	if (mm > 12 || dd > 31)
		return 0;
	v = (unsigned long long)dnum(d, 9);
	cc = dnum(d + 9, 2);
	if ((int)(97 - v % 97) == cc)
		return 1;
	return (int)(97 - (2000000000ULL + v) % 97) == cc;
}

int
pl_pesel_valid(const char *d, size_t n)
{
	static const int w[] = {1, 3, 7, 9, 1, 3, 7, 9, 1, 3};
	int sum = 0, i, y, m, day;

	if (n != 11)
		return 0;
	for (i = 0; i < 10; i++)
		sum += w[i] * (d[i] - '0');
	if ((10 - sum % 10) % 10 != d[10] - '0')
		return 0;
	y = dnum(d, 2);
	m = dnum(d + 2, 2);
	day = dnum(d + 4, 2);
	if (m > 80)
		y += 1800, m -= 80;
	else if (m > 60)
		y += 2200, m -= 60;
	else if (m > 40)
		y += 2100, m -= 40;
	else if (m > 20)
		y += 2000, m -= 20;
	else
		y += 1900;
	return date_ok(y, m, day);
}

/* Swedish personnummer: (YY)YYMMDD-NNNC, Luhn over the 10-digit form; the
 * day has 60 added for a samordningsnummer. */
int
se_pnr_valid(const char *d, size_t n)
{
	int m, day;

	if (n == 12)
		d += 2, n = 10;
	if (n != 10)
		return 0;
	m = dnum(d + 2, 2);
	day = dnum(d + 4, 2);
	if (day > 60)
		day -= 60;
	if (!date_ok(2000, m, day))
		return 0;
	return luhn_ok(d, 10);
}

int
uk_nino_valid(const char *s, size_t n)
{
	static const char *const bad[] = {"BG", "GB", "KN", "NK", "NT", "TN",
	    "ZZ"};
	size_t i;

	if (n != 9 || !isup(s[0]) || !isup(s[1]))
		return 0;
	if (strchr("DFIQUV", s[0]) || strchr("DFIOQUV", s[1]))
		return 0;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (memcmp(s, bad[i], 2) == 0)
			return 0;
	for (i = 2; i < 8; i++)
		if (!isdig(s[i]))
			return 0;
	return s[8] >= 'A' && s[8] <= 'D';
}

int
uk_nhs_valid(const char *d, size_t n)
{
	int sum = 0, i, c;

	if (n != 10)
		return 0;
	for (i = 0; i < 9; i++)
		sum += (10 - i) * (d[i] - '0');
	c = 11 - sum % 11;
	if (c == 11)
		c = 0;
	return c != 10 && c == d[9] - '0';
}

/* Portuguese NIF: mod 11 over 8 digits, first digit from the valid set. */
static int
pt_nif_valid(const char *d, size_t n)
{
	int sum = 0, i, c;

	if (n != 9 || strchr("1235689", d[0]) == NULL)
		return 0;
	for (i = 0; i < 8; i++)
		sum += (9 - i) * (d[i] - '0');
	c = 11 - sum % 11;
	if (c >= 10)
		c = 0;
	return c == d[8] - '0';
}

/* Austrian social security number: NNNC DDMMYY, weights 3 7 9 _ 5 8 4 2 1 6 */
static int
at_svnr_valid(const char *d, size_t n)
{
	static const int w[] = {3, 7, 9, 0, 5, 8, 4, 2, 1, 6};
	int sum = 0, i;

	if (n != 10 || d[0] == '0')
		return 0;
	for (i = 0; i < 10; i++)
		sum += w[i] * (d[i] - '0');
	if (sum % 11 == 10 || sum % 11 != d[3] - '0')
		return 0;
	return date_ok(2000, dnum(d + 6, 2), dnum(d + 4, 2));
}

/* Finnish henkilötunnus: DDMMYY, century sign, NNN, check character
 * (DDMMYYNNN mod 31). */
static int
fi_hetu_valid(const char *s, size_t n)
{
	static const char chk[] = "0123456789ABCDEFHJKLMNPRSTUVWXY";
	char d[10];
	int i;

	if (n != 11 || strchr("+-ABCDEFUVWXY", toup(s[6])) == NULL)
		return 0;
	for (i = 0; i < 6; i++)
		if (!isdig(s[i]))
			return 0;
	for (i = 7; i < 10; i++)
		if (!isdig(s[i]))
			return 0;
	if (!date_ok(2000, dnum(s + 2, 2), dnum(s, 2)))
		return 0;
	memcpy(d, s, 6);
	memcpy(d + 6, s + 7, 3);
	d[9] = '\0';
	{
		long v = 0;

		for (i = 0; i < 9; i++)
			v = v * 10 + (d[i] - '0');
		return toup(s[10]) == chk[v % 31];
	}
}

/* Irish PPS number: 7 digits, check letter (weights 8..2, mod 23, 0 is
 * W), optional second letter weighted 9. */
static int
ie_pps_valid(const char *s, size_t n)
{
	int sum = 0, i, c;

	if (n != 8 && n != 9)
		return 0;
	for (i = 0; i < 7; i++) {
		if (!isdig(s[i]))
			return 0;
		sum += (8 - i) * (s[i] - '0');
	}
	if (!isalph(s[7]) || (n == 9 && !isalph(s[8])))
		return 0;
	if (n == 9 && toup(s[8]) != 'W')
		sum += 9 * (toup(s[8]) - 'A' + 1);
	c = sum % 23;
	return toup(s[7]) == (c == 0 ? 'W' : 'A' + c - 1);
}

/* ------------------------------------------------------------------ */
/* shared helpers                                                      */

#define D_EMIT(t, type, a, b, prio, v, vl) d_emit(t, type, a, b, prio, 1, v, vl)

/* Is run r the start of a number sequence (not the middle of a grouped
 * number, nor glued to letters)? */
static inline int
seq_start(const struct dtext *t, size_t r)
{
	return (int)t->runs[r].seq;	/* computed with the runs */
}

#define MAXG 24
struct numseq {
	size_t start, end;
	int ng;
	size_t gs[MAXG], ge[MAXG];
	char sep[MAXG];			/* separator before group g */
	char d[64];
	int nd;
};

/* Digits of runs r, r+1, ... joined by one separator from seps. */
static void
numseq(const struct dtext *t, size_t r, const char *seps, struct numseq *q)
{
	size_t i = r;

	q->ng = 0;
	q->nd = 0;
	q->start = t->runs[r].start;
	for (;;) {
		size_t a = t->runs[i].start, b = t->runs[i].end;

		if (q->ng == MAXG || q->nd + (b - a) > 60)
			break;
		q->gs[q->ng] = a;
		q->ge[q->ng] = b;
		q->sep[q->ng] = q->ng == 0 ? 0 : t->s[a - 1];
		q->ng++;
		memcpy(q->d + q->nd, t->s + a, b - a);
		q->nd += (int)(b - a);
		if (i + 1 >= t->nruns || t->runs[i + 1].start != b + 1 ||
		    strchr(seps, t->s[b]) == NULL)
			break;
		i++;
	}
	q->end = q->ge[q->ng - 1];
	q->d[q->nd] = '\0';
}

/* Whether numseq(t, r, seps) can hold min digits: most runs are short
 * and stand alone ("page 3"), and this decides so without building the
 * sequence. */
static inline int
numseq_may_reach(const struct dtext *t, size_t r, const char *seps,
    size_t min)
{
	size_t b = t->runs[r].end;

	return b - t->runs[r].start >= min || (r + 1 < t->nruns &&
	    t->runs[r + 1].start == b + 1 && strchr(seps, t->s[b]) != NULL);
}

/* Whether the character after position e ends a token. */
static int
ends_token(const struct dtext *t, size_t e)
{
	if (e >= t->n)
		return 1;
	if (iswordb((unsigned char)t->s[e]))
		return 0;
	/* "1234.5" or "1234,5": a decimal, not the end of an identifier */
	if ((t->s[e] == '.' || t->s[e] == ',') && e + 1 < t->n &&
	    isdig(t->s[e + 1]))
		return 0;
	return 1;
}

/* Nearest context word before pos, among every kind that says what a
 * number is. */
#define CTX_ANY	(LX_IDCTX | LX_NEGCTX | LX_PHONECTX | LX_CARDCTX | \
	LX_IBANCTX | LX_DOB)

static uint32_t nearest_kinds(const struct dtext *t, size_t pos, size_t win);

/* The identifier types that the context right before pos supports:
 * specific words within 48 bytes, generic ones ("Nummer:", "ID:") within
 * 14. Returns 0 when the nearest word names something else. */
static uint32_t
id_context(const struct dtext *t, size_t pos, int *specific)
{
	const struct dhit *h = d_ctx_before(t, pos, 48, CTX_ANY);
	uint32_t ids = 0;
	size_t k;

	*specific = 0;
	if (h == NULL || !(h->kind & LX_IDCTX))
		return 0;
	if ((nearest_kinds(t, pos, 48) & LX_PHONECTX) && h->ids == NID_ALL)
		return 0;
	/* every hit ending where the nearest one ends */
	for (k = (size_t)(h - t->hits) + 1; k-- > 0;) {
		const struct dhit *x = &t->hits[k];

		if (x->end != h->end)
			break;
		if (!(x->kind & LX_IDCTX))
			continue;
		if (x->ids != NID_ALL) {
			ids |= x->ids;
			*specific = 1;
		} else if (pos - x->end <= 14) {
			ids |= x->ids;
		}
	}
	for (k = (size_t)(h - t->hits) + 1; k < t->nhits; k++) {
		const struct dhit *x = &t->hits[k];

		if (x->end != h->end)
			break;
		if ((x->kind & LX_IDCTX) && x->ids != NID_ALL) {
			ids |= x->ids;
			*specific = 1;
		}
	}
	return ids;
}

/* Union of the kinds of every hit ending where the nearest context word
 * before pos ends ("Mobiel nummer": a phone word and a generic one). */
static uint32_t
nearest_kinds(const struct dtext *t, size_t pos, size_t win)
{
	const struct dhit *h = d_ctx_before(t, pos, win, CTX_ANY);
	uint32_t k = 0;
	size_t i;

	if (h == NULL)
		return 0;
	for (i = (size_t)(h - t->hits) + 1; i-- > 0 && t->hits[i].end == h->end;)
		k |= t->hits[i].kind;
	for (i = (size_t)(h - t->hits) + 1; i < t->nhits &&
	    t->hits[i].end == h->end; i++)
		k |= t->hits[i].kind;
	/* a phone word a little further back still names the number when
	 * the nearest word is only "number" */
	if (!(k & LX_PHONECTX) && (k & LX_IDCTX) &&
	    d_ctx_before(t, pos, win, LX_PHONECTX) != NULL) {
		const struct dhit *p = d_ctx_before(t, pos, win, LX_PHONECTX);

		if (h->start <= p->end + 2 && h->ids == NID_ALL)
			k |= LX_PHONECTX;
	}
	return k;
}

static int
neg_context(const struct dtext *t, size_t pos, size_t win)
{
	const struct dhit *h = d_ctx_before(t, pos, win, CTX_ANY);

	return h != NULL && (h->kind & LX_NEGCTX);
}

/* ------------------------------------------------------------------ */
/* email                                                               */

static inline int
email_local(int c)
{
	return isaln(c) || c == '.' || c == '_' || c == '%' || c == '+' ||
	    c == '-' || c == '\'';
}

static void
det_email(const struct dtext *t)
{
	const char *s = t->s, *at = s;
	size_t n = t->n, last_end = 0;

	while ((at = memchr(at, '@', n - (size_t)(at - s))) != NULL) {
		size_t i = (size_t)(at - s), a = i, b = i + 1, dot = 0;
		char v[256];
		size_t k, vl;

		at++;
		while (a > last_end && email_local((unsigned char)s[a - 1]) &&
		    i - a < 64)
			a--;
		while (a < i && (s[a] == '.' || s[a] == '\''))
			a++;
		if (a == i)
			continue;
		while (b < n && (isaln(s[b]) || s[b] == '-' || s[b] == '.')) {
			if (s[b] == '.')
				dot = b;
			b++;
			if (b - i > 253)
				break;
		}
		/* trailing dots belong to the sentence */
		while (b > i + 1 && s[b - 1] == '.')
			b--;
		dot = 0;
		for (k = i + 1; k < b; k++)
			if (s[k] == '.')
				dot = k;
		if (dot == 0 || b - dot < 3 || dot == i + 1)
			continue;
		for (k = dot + 1; k < b; k++)
			if (!isalph(s[k]))
				break;
		if (k < b)
			continue;	/* TLD is letters */
		vl = b - a < sizeof(v) ? b - a : sizeof(v);
		for (k = 0; k < vl; k++)
			v[k] = (char)tolow(s[a + k]);
		D_EMIT(t, "email", a, b, PRIO_EMAIL, v, vl);
		last_end = b;
	}
}

/* ------------------------------------------------------------------ */
/* iban                                                                */

static void
det_iban(const struct dtext *t)
{
	const char *s = t->s;
	size_t r, last_end = 0;

	for (r = 0; r < t->nruns; r++) {
		size_t p = t->runs[r].start, i, k = 0;
		char v[40];
		int len;

		if (p < 2 || p < last_end || !isalph(s[p - 2]) ||
		    !isalph(s[p - 1]) || (p >= 3 && iswordb(s[p - 3])) ||
		    t->runs[r].end - p < 2)
			continue;
		v[0] = (char)toup(s[p - 2]);
		v[1] = (char)toup(s[p - 1]);
		len = iban_country_len(v);
		if (len == 0)
			continue;
		k = 2;
		i = p;
		while (k < (size_t)len && i < t->n) {
			int c = (unsigned char)s[i];

			if (isaln(c)) {
				v[k++] = (char)toup(c);
				i++;
			} else if ((c == ' ' || c == '-') && i + 1 < t->n &&
			    isaln(s[i + 1]) && k >= 4) {
				i++;
			} else {
				break;
			}
		}
		if (k != (size_t)len || (i < t->n && iswordb(s[i])))
			continue;
		if (!iban_valid(v, k))
			continue;
		D_EMIT(t, "iban", p - 2, i, PRIO_IBAN, v, k);
		last_end = i;
	}
}

/* ------------------------------------------------------------------ */
/* payment card                                                        */

static void
det_card(const struct dtext *t)
{
	size_t r;
	struct numseq q;

	for (r = 0; r < t->nruns; r++) {
		int g, ng, nd, take, ok;
		char sep;

		if (!seq_start(t, r))
			continue;
		if (t->runs[r].end - t->runs[r].start > 19)
			continue;
		if (!numseq_may_reach(t, r, " -", 13))
			continue;
		numseq(t, r, " -", &q);
		/* the groups written with one consistent separator */
		sep = q.ng > 1 ? q.sep[1] : 0;
		for (ng = 1; ng < q.ng && q.sep[ng] == sep; ng++)
			;
		/* the whole run of groups, else its longest prefix of 13-19
		 * digits ("4111 1111 1111 1111 12/26": an expiry follows) */
		for (take = ng; take >= 1; take--) {
			nd = 0;
			for (g = 0; g < take; g++)
				nd += (int)(q.ge[g] - q.gs[g]);
			if (nd > 19)
				continue;
			if (nd < 13)
				break;
			ok = 1;
			if (take > 1)
				for (g = 0; g < take; g++) {
					size_t gl = q.ge[g] - q.gs[g];

					if (gl < 3 || gl > 6)
						ok = 0;
				}
			if (!ok || !ends_token(t, q.ge[take - 1]))
				continue;
			if (!luhn_ok(q.d, (size_t)nd) ||
			    !card_issuer_ok(q.d, (size_t)nd))
				continue;
			if (neg_context(t, q.start, 32))
				break;
			if (q.start > 0 && (t->s[q.start - 1] == '#' ||
			    t->s[q.start - 1] == '+'))
				break;
			D_EMIT(t, "payment_card", q.start, q.ge[take - 1],
			    PRIO_CARD, q.d, (size_t)nd);
			break;
		}
	}
}

/* ------------------------------------------------------------------ */
/* national identifiers: numeric forms                                 */

static void
det_nid_numeric(const struct dtext *t)
{
	size_t r;
	struct numseq q;

	for (r = 0; r < t->nruns; r++) {
		uint32_t ctx, ok = 0;
		int specific, fmt = 0, i, nd;
		const char *d;
		enum nid pick = NID_COUNT;
		static const enum nid order[] = {NID_FR_NIR, NID_BE_NN,
		    NID_PL_PESEL, NID_DE_TAX, NID_SE_PNR, NID_UK_NHS,
		    NID_NL_BSN, NID_AT_SVNR, NID_PT_NIF, NID_DK_CPR};

		if (!seq_start(t, r) || t->runs[r].end - t->runs[r].start > 15)
			continue;
		if (!numseq_may_reach(t, r, " -./", 9))
			continue;
		numseq(t, r, " -./", &q);
		if (q.nd < 9 || q.nd > 15 || !ends_token(t, q.end))
			continue;
		/* another digit group right after (a separator and digits)
		 * means numseq stopped on a limit: not one identifier */
		d = q.d;
		nd = q.nd;
		if (q.ng > 1 && q.start > 0 && t->s[q.start - 1] == '+')
			continue;	/* "+49 ...": a phone */
		/* what each validator accepts */
		if (nd == 15 && fr_nir_valid(d, 15))
			ok |= 1u << NID_FR_NIR;
		if (nd == 11) {
			if (be_nn_valid(d, 11))
				ok |= 1u << NID_BE_NN;
			if (pl_pesel_valid(d, 11))
				ok |= 1u << NID_PL_PESEL;
			if (de_tax_id_valid(d, 11))
				ok |= 1u << NID_DE_TAX;
		}
		if ((nd == 10 || nd == 12) && se_pnr_valid(d, (size_t)nd))
			ok |= 1u << NID_SE_PNR;
		if (nd == 10 && uk_nhs_valid(d, 10))
			ok |= 1u << NID_UK_NHS;
		if (nd == 10 && at_svnr_valid(d, 10))
			ok |= 1u << NID_AT_SVNR;
		/* CPR has had no check digit since 2007: context and a date */
		if (nd == 10 && date_ok(2000, dnum(d + 2, 2), dnum(d, 2)))
			ok |= 1u << NID_DK_CPR;
		if (nd == 9 && nl_bsn_valid(d, 9))
			ok |= 1u << NID_NL_BSN;
		if (nd == 9 && pt_nif_valid(d, 9))
			ok |= 1u << NID_PT_NIF;
		if (ok == 0)
			continue;
		ctx = id_context(t, q.start, &specific);
		if (!specific)
			ctx &= ~(1u << NID_DK_CPR);	/* no check digit */
		/* canonical layouts */
		if (q.ng == 2 && q.sep[1] == '-' && (nd == 10 || nd == 12) &&
		    q.ge[0] - q.gs[0] == (size_t)nd - 4)
			fmt |= 1u << NID_SE_PNR;	/* YYMMDD-NNNN */
		if (q.ng == 3 && nd == 10 && q.ge[0] - q.gs[0] == 3 &&
		    q.ge[1] - q.gs[1] == 3 && q.sep[1] == ' ')
			fmt |= 0;	/* NHS 3-3-4 is also a phone layout */
		if (nd == 11 && q.ng == 5 && q.sep[1] == '.' &&
		    q.sep[3] == '-')
			fmt |= 1u << NID_BE_NN;		/* YY.MM.DD-SSS.CC */
		if (nd == 15 && q.ng >= 6)
			fmt |= 1u << NID_FR_NIR;
		/* 15-digit NIR is strong on its own */
		ctx |= fmt | (ok & (1u << NID_FR_NIR));
		if (!(ok & ctx))
			continue;
		if (!specific && !(fmt & ok) && !(ok & (1u << NID_FR_NIR)) &&
		    neg_context(t, q.start, 48))
			continue;
		for (i = 0; i < (int)(sizeof(order) / sizeof(order[0])); i++)
			if ((ok & ctx & (1u << order[i])) && pick == NID_COUNT)
				pick = order[i];
		if (pick == NID_COUNT)
			continue;
		D_EMIT(t, nid_type_names[pick], q.start, q.end,
		    specific || pick == NID_FR_NIR ? PRIO_NID : PRIO_NID_WEAK,
		    d, (size_t)nd);
	}
}

/* ------------------------------------------------------------------ */
/* national identifiers: forms with letters                            */

/* Token of word characters around [a, b), looked for at most max bytes
 * each way: a token found longer than max on a side may be cut there. */
static void
token_bounds(const struct dtext *t, size_t a, size_t b, size_t max,
    size_t *ta, size_t *tb)
{
	size_t a0 = a, b0 = b;

	while (a > 0 && a0 - a <= max && isaln(t->s[a - 1]))
		a--;
	while (b < t->n && b - b0 <= max && isaln(t->s[b]))
		b++;
	*ta = a;
	*tb = b;
}

static int
nino_at(const struct dtext *t, size_t p, size_t *endp, char v[9])
{
	const char *s = t->s;
	size_t i = p, k = 0, pairs = 0;

	if (p + 9 > t->n || (p > 0 && iswordb((unsigned char)s[p - 1])))
		return 0;
	v[k++] = (char)toup(s[i++]);
	v[k++] = (char)toup(s[i++]);
	if (i < t->n && s[i] == ' ')
		i++;
	while (pairs < 3) {
		if (i + 1 >= t->n || !isdig(s[i]) || !isdig(s[i + 1]))
			return 0;
		v[k++] = s[i];
		v[k++] = s[i + 1];
		i += 2;
		pairs++;
		if (pairs < 3 && i < t->n && s[i] == ' ' && i + 1 < t->n &&
		    isdig(s[i + 1]))
			i++;
	}
	if (i < t->n && s[i] == ' ')
		i++;
	if (i >= t->n)
		return 0;
	v[k++] = (char)toup(s[i++]);
	if (i < t->n && iswordb((unsigned char)s[i]))
		return 0;
	if (!uk_nino_valid(v, 9))
		return 0;
	*endp = i;
	return 1;
}

/* "1 61 05 2A 286 189 78": a NIR for Corsica, written in groups. */
static int
nir_spaced_at(const struct dtext *t, size_t p, size_t *endp, char v[15])
{
	const char *s = t->s;
	size_t i = p, k = 0;

	while (i < t->n && k < 15) {
		int c = (unsigned char)s[i];

		if (isdig(c) || (k == 6 && (toup(c) == 'A' || toup(c) == 'B'))) {
			v[k++] = (char)toup(c);
			i++;
		} else if ((c == ' ' || c == '.' || c == '-') && k > 0 &&
		    i + 1 < t->n && isaln(s[i + 1])) {
			i++;
		} else {
			break;
		}
	}
	if (k != 15 || (i < t->n && iswordb((unsigned char)s[i])))
		return 0;
	*endp = i;
	return isalph(v[6]) && fr_nir_valid(v, 15);
}

static void
det_nid_alpha(const struct dtext *t)
{
	const char *s = t->s;
	size_t r, last_tok = (size_t)-1, last_tb = 0, last_end = 0;

	for (r = 0; r < t->nruns; r++) {
		size_t a = t->runs[r].start, b = t->runs[r].end, ta, tb, e;
		size_t rl = b - a;
		char v[20];

		if (a < last_end)
			continue;
		/* fi_hetu: DDMMYY, sign, NNN, check character */
		if (rl == 6 && seq_start(t, r) && b + 5 <= t->n &&
		    isdig(s[b + 1]) && isdig(s[b + 2]) && isdig(s[b + 3]) &&
		    isaln(s[b + 4]) && (b + 5 == t->n ||
		    !iswordb((unsigned char)s[b + 5])) &&
		    fi_hetu_valid(s + a, 11)) {
			int i;

			for (i = 0; i < 11; i++)
				v[i] = (char)toup(s[a + (size_t)i]);
			D_EMIT(t, nid_type_names[NID_FI_HETU], a, b + 5,
			    PRIO_NID, v, 11);
			last_end = b + 5;
			continue;
		}
		/* ie_pps: 7 digits and one or two letters, named nearby */
		if (rl == 7 && seq_start(t, r) && b < t->n && isalph(s[b])) {
			size_t l = b + 1;
			int sp;

			if (l < t->n && isalph(s[l]))
				l++;
			if ((l >= t->n || !iswordb((unsigned char)s[l])) &&
			    ie_pps_valid(s + a, l - a) &&
			    (id_context(t, a, &sp) & (1u << NID_IE_PPS)) && sp) {
				size_t i;

				for (i = 0; i < l - a; i++)
					v[i] = (char)toup(s[a + i]);
				D_EMIT(t, nid_type_names[NID_IE_PPS], a, l,
				    PRIO_NID, v, l - a);
				last_end = l;
				continue;
			}
		}
		/* es_dni: 8 digits, optional '-' or ' ', letter */
		if (rl == 8 && seq_start(t, r) && b < t->n) {
			size_t l = b;

			if ((s[l] == '-' || s[l] == ' ') && l + 1 < t->n &&
			    isalph(s[l + 1]))
				l++;
			if (isalph(s[l]) && (l + 1 >= t->n ||
			    !iswordb((unsigned char)s[l + 1]))) {
				memcpy(v, s + a, 8);
				v[8] = (char)toup(s[l]);
				if (es_dni_valid(v, 9) &&
				    !neg_context(t, a, 32)) {
					D_EMIT(t, nid_type_names[NID_ES_DNI], a,
					    l + 1, PRIO_NID, v, 9);
					last_end = l + 1;
					continue;
				}
			}
		}
		/* es_dni written with dots: 12.345.678-Z */
		if (rl <= 2 && seq_start(t, r) && r + 2 < t->nruns &&
		    s[b] == '.' && t->runs[r + 1].start == b + 1 &&
		    t->runs[r + 1].end - t->runs[r + 1].start == 3 &&
		    s[t->runs[r + 1].end] == '.' &&
		    t->runs[r + 2].start == t->runs[r + 1].end + 1 &&
		    t->runs[r + 2].end - t->runs[r + 2].start == 3 && rl == 2) {
			size_t l = t->runs[r + 2].end;

			if (l < t->n && (s[l] == '-' || s[l] == ' '))
				l++;
			if (l < t->n && isalph(s[l]) && (l + 1 >= t->n ||
			    !iswordb((unsigned char)s[l + 1]))) {
				memcpy(v, s + a, 2);
				memcpy(v + 2, s + t->runs[r + 1].start, 3);
				memcpy(v + 5, s + t->runs[r + 2].start, 3);
				v[8] = (char)toup(s[l]);
				if (es_dni_valid(v, 9)) {
					D_EMIT(t, nid_type_names[NID_ES_DNI], a,
					    l + 1, PRIO_NID, v, 9);
					last_end = l + 1;
					continue;
				}
			}
		}
		/* es_nie: X/Y/Z, optional '-', 7 digits, optional '-', letter */
		if (rl == 7 && a >= 1) {
			size_t st = a - 1, l = b;

			if (s[st] == '-' && st >= 1)
				st--;
			if (strchr("XYZxyz", s[st]) != NULL &&
			    (st == 0 || !iswordb((unsigned char)s[st - 1])) &&
			    l < t->n) {
				if (s[l] == '-' && l + 1 < t->n)
					l++;
				if (isalph(s[l]) && (l + 1 >= t->n ||
				    !iswordb((unsigned char)s[l + 1]))) {
					v[0] = (char)toup(s[st]);
					memcpy(v + 1, s + a, 7);
					v[8] = (char)toup(s[l]);
					if (es_nie_valid(v, 9)) {
						D_EMIT(t,
						    nid_type_names[NID_ES_NIE],
						    st, l + 1, PRIO_NID, v, 9);
						last_end = l + 1;
						continue;
					}
				}
			}
		}
		/* uk_nino: AB123456C or AB 12 34 56 C */
		if ((rl == 6 || rl == 2) && a >= 2) {
			size_t p = isalph(s[a - 1]) ? a - 2 :
			    (s[a - 1] == ' ' && a >= 3 ? a - 3 : (size_t)-1);

			if (p != (size_t)-1 && isalph(s[p]) &&
			    isalph(s[p + 1]) && nino_at(t, p, &e, v)) {
				D_EMIT(t, nid_type_names[NID_UK_NINO], p, e,
				    PRIO_NID, v, 9);
				last_end = e;
				continue;
			}
		}
		/* a spaced NIR goes on with a separator and a digit */
		if (rl == 1 && seq_start(t, r) && r + 1 < t->nruns &&
		    t->runs[r + 1].start == b + 1 &&
		    (s[b] == ' ' || s[b] == '.' || s[b] == '-') &&
		    nir_spaced_at(t, a, &e, v)) {
			D_EMIT(t, nid_type_names[NID_FR_NIR], a, e, PRIO_NID,
			    v, 15);
			last_end = e;
			continue;
		}
		/* tokens of 15 (NIR with 2A/2B) and 16 (codice fiscale):
		 * only where letters touch the digits */
		if (!((a > 0 && isalph(s[a - 1])) || (b < t->n &&
		    isalph(s[b]))))
			continue;
		/* A run inside the token already looked at (a hash, base64)
		 * belongs to it: scanning the token again for each of its
		 * runs was quadratic in the token's length. */
		if (last_tok != (size_t)-1 && a >= last_tok && b <= last_tb)
			continue;
		/* only tokens of 15 or 16 count: no need to measure longer
		 * ones (identifiers, hashes) to their ends */
		token_bounds(t, a, b, 16, &ta, &tb);
		if (ta == last_tok)
			continue;
		last_tok = ta;
		last_tb = tb;
		if (ta > 0 && iswordb((unsigned char)s[ta - 1]))
			continue;
		if (tb < t->n && iswordb((unsigned char)s[tb]))
			continue;
		if (tb - ta == 16 && it_cf_valid(s + ta, 16)) {
			int i;

			for (i = 0; i < 16; i++)
				v[i] = (char)toup(s[ta + i]);
			D_EMIT(t, nid_type_names[NID_IT_CF], ta, tb, PRIO_NID,
			    v, 16);
			last_end = tb;
		} else if (tb - ta == 15 && isalph(s[ta + 6]) &&
		    fr_nir_valid(s + ta, 15)) {
			int i;

			for (i = 0; i < 15; i++)
				v[i] = (char)toup(s[ta + i]);
			D_EMIT(t, nid_type_names[NID_FR_NIR], ta, tb, PRIO_NID,
			    v, 15);
			last_end = tb;
		}
	}
}

/* ------------------------------------------------------------------ */
/* phone                                                               */

/* Groups of a national number written without context: three or more
 * groups ("06 12 34 56 78", "030 3069 7451"), or a prefix and a long
 * subscriber part ("0171/7170673", "020-6191155"). */
static int
phone_layout(const char *s, size_t a, size_t e)
{
	size_t i, groups = 1, cur = 0;

	for (i = a; i < e; i++) {
		if (isdig(s[i])) {
			cur++;
			continue;
		}
		if (cur > 0) {
			groups++;
			cur = 0;
		}
	}
	return groups >= 3 || cur >= 6;
}

/* Mobile numbers without a trunk prefix, in their usual layouts: Italy
 * 3xx xxx xxxx, Spain 6xx xxx xxx / 7xx xxx xxx, Portugal 9x xxx xxxx
 * written 9xx xxx xxx. */
static int
mobile_layout(const char *s, size_t a, size_t e)
{
	size_t i, g = 0, len[8] = {0};

	for (i = a; i < e && g < 8; i++) {
		if (isdig(s[i]))
			len[g]++;
		else if (len[g] > 0)
			g++;
	}
	g++;
	if (g == 3 && s[a] == '3' && len[0] == 3 && len[1] == 3 && len[2] == 4)
		return 1;
	if (g == 3 && (s[a] == '6' || s[a] == '7' || s[a] == '9') &&
	    len[0] == 3 && len[1] == 3 && len[2] == 3)
		return 1;
	return 0;
}

static void
det_phone(const struct dtext *t)
{
	const char *s = t->s;
	size_t r, last_end = 0;

	for (r = 0; r < t->nruns; r++) {
		size_t a = t->runs[r].start, i, e, nsep = 0, lastd;
		int plus = 0, nd = 0, ok = 0, paren = 0, slash = 0;
		char v[24];
		const struct dhit *h, dummy = {0, 0, 0, 0, 0, 0};
		uint32_t kinds;

		if (a < last_end || !seq_start(t, r))
			continue;
		if (a > 0 && s[a - 1] == '(' && a >= 2 && s[a - 2] == '+')
			continue;
		if (a > 0 && s[a - 1] == '+') {
			plus = 1;
			if (a >= 2 && iswordb((unsigned char)s[a - 2]))
				continue;
		} else if (a > 0 && s[a - 1] == '(') {
			paren = 1;
		}
		/* digits with single separators, "(0)" and "(684)" */
		i = a;
		lastd = a;
		while (i < t->n && nd < 18) {
			int c = (unsigned char)s[i];

			if (isdig(c)) {
				if (nd < (int)sizeof(v) - 2)
					v[plus + nd] = (char)c;
				nd++;
				lastd = ++i;
				continue;
			}
			if (c == ' ' || c == '-' || c == '.' || c == '/' ||
			    c == '(' || c == ')') {
				size_t j = i;

				while (j < t->n && j - i < 2 && (s[j] == ' ' ||
				    s[j] == '-' || s[j] == '.' || s[j] == '/' ||
				    s[j] == '(' || s[j] == ')'))
					j++;
				if (j >= t->n || !isdig(s[j]))
					break;
				if (memchr(s + i, '(', j - i) ||
				    memchr(s + i, ')', j - i))
					paren = 1;
				if (memchr(s + i, '/', j - i))
					slash++;
				nsep++;
				i = j;
				continue;
			}
			break;
		}
		e = lastd;
		/* every layout below needs 8 digits or more: decide that
		 * before looking for context words */
		if (nd > 15 || nd < 8 || !ends_token(t, e))
			continue;
		if (plus)
			v[0] = '+';
		kinds = nearest_kinds(t, plus ? a - 1 : a, 40);
		if (!(kinds & LX_PHONECTX) && (kinds & (LX_NEGCTX |
		    (plus ? 0 : LX_CARDCTX | LX_IBANCTX))))
			continue;
		h = (kinds & LX_PHONECTX) ? &dummy : NULL;
		if (!plus && !h && (kinds & LX_IDCTX)) {
			int spec;

			/* "Mi número es 612 345 678": a generic "number" word
			 * lets a mobile layout through, an identifier's name
			 * does not */
			(void)id_context(t, a, &spec);
			if (spec || !(mobile_layout(s, a, e) || (s[a] == '0' &&
			    nsep > 0 && phone_layout(s, a, e))))
				continue;
			h = &dummy;
		} else if (!plus && !h && mobile_layout(s, a, e)) {
			h = &dummy;
		}
		if (plus) {
			ok = nd >= 8 && nd <= 15 && s[a] != '0';
		} else if (s[a] == '0' && s[a + 1] == '0') {
			ok = nd >= 11 && nd <= 15 && (h != NULL || nsep > 0);
		} else if (s[a] == '0') {
			/* national trunk prefix: in context, or written the
			 * way phones are (not "02110-1301", a ZIP+4 code) */
			ok = nd >= 9 && nd <= 12 && (h != NULL ||
			    (nsep > 0 && phone_layout(s, a, e)));
		} else {
			ok = nd >= 9 && nd <= 11 && h != NULL;
		}
		if (!ok)
			continue;
		/* dates and amounts are not phones */
		if (slash && nsep == 2 && nd == 8)
			continue;
		D_EMIT(t, "phone", plus ? a - 1 : (paren && a > 0 &&
		    s[a - 1] == '(' ? a - 1 : a), e, PRIO_PHONE, v,
		    (size_t)(plus + (nd < 22 ? nd : 22)));
		last_end = e;
	}
}

/* ------------------------------------------------------------------ */
/* date of birth                                                       */

/* A month-name hit starting exactly at pos, or 0. */
static int
month_at(const struct dtext *t, size_t pos, size_t *endp)
{
	const struct dhit *h = d_ctx_after(t, pos, 0, LX_MONTH);

	if (h == NULL || h->start != pos)
		return 0;
	*endp = h->end;
	return (int)h->ids;
}

static int
skip_sp(const struct dtext *t, size_t i)
{
	while (i < t->n && t->s[i] == ' ')
		i++;
	return (int)i;
}

/* Parse a date starting with the digit run r; fills y/m/d and the end. */
static int
parse_date(const struct dtext *t, size_t r, size_t *startp, size_t *endp,
    int *y, int *m, int *d)
{
	const char *s = t->s;
	size_t a = t->runs[r].start, b = t->runs[r].end, i;
	size_t l = b - a;

	*startp = a;
	/* numeric: D.M.Y, D/M/Y, D-M-Y, Y-M-D */
	if (r + 2 < t->nruns) {
		const struct drun *r1 = &t->runs[r + 1], *r2 = &t->runs[r + 2];
		char s1 = s[b], s2 = s[r1->end];

		if ((s1 == '.' || s1 == '/' || s1 == '-') && s2 == s1 &&
		    r1->start == b + 1 && r2->start == r1->end + 1 &&
		    r1->end - r1->start <= 2) {
			size_t l2 = r2->end - r2->start;

			if (l == 4 && l2 <= 2) {
				*y = atoi_n(s + a, 4);
				*m = atoi_n(s + r1->start, r1->end - r1->start);
				*d = atoi_n(s + r2->start, l2);
			} else if (l <= 2 && (l2 == 4 || l2 == 2)) {
				*d = atoi_n(s + a, l);
				*m = atoi_n(s + r1->start, r1->end - r1->start);
				*y = atoi_n(s + r2->start, l2);
				if (l2 == 2)
					*y += *y > 30 ? 1900 : 2000;
				if (*m > 12 && *d <= 12) {	/* US order */
					int x = *m;

					*m = *d;
					*d = x;
				}
			} else {
				return 0;
			}
			*endp = r2->end;
			return date_ok(*y, *m, *d) && ends_token(t, *endp);
		}
	}
	/* D[.| de |er] Month[,| de] YYYY */
	if (l <= 2) {
		size_t e;
		int mo;

		i = b;
		if (i < t->n && s[i] == '.')
			i++;
		else if (i + 1 < t->n && (memcmp(s + i, "er", 2) == 0 ||
		    memcmp(s + i, "st", 2) == 0 || memcmp(s + i, "nd", 2) == 0 ||
		    memcmp(s + i, "rd", 2) == 0 || memcmp(s + i, "th", 2) == 0))
			i += 2;
		i = (size_t)skip_sp(t, i);
		if (i + 3 < t->n && memcmp(s + i, "de ", 3) == 0)
			i = (size_t)skip_sp(t, i + 3);
		if ((mo = month_at(t, i, &e)) > 0) {
			i = e;
			if (i < t->n && s[i] == '.')
				i++;
			if (i < t->n && s[i] == ',')
				i++;
			i = (size_t)skip_sp(t, i);
			if (i + 3 < t->n && memcmp(s + i, "de ", 3) == 0)
				i = (size_t)skip_sp(t, i + 3);
			if (i + 4 <= t->n && isdig(s[i]) && isdig(s[i + 1]) &&
			    isdig(s[i + 2]) && isdig(s[i + 3]) &&
			    ends_token(t, i + 4)) {
				*d = atoi_n(s + a, l);
				*m = mo;
				*y = atoi_n(s + i, 4);
				*endp = i + 4;
				return date_ok(*y, *m, *d);
			}
		}
		/* Month D, YYYY */
		if (a >= 2) {
			size_t k;

			/* from the last hit ending by a: walking there from
			 * the last hit of all made long texts quadratic */
			for (k = d_hits_upto(t, a); k-- > 0;) {
				const struct dhit *h = &t->hits[k];

				if (h->end + 2 < a)
					break;
				if (!(h->kind & LX_MONTH))
					continue;
				i = b;
				if (i + 1 < t->n && (memcmp(s + i, "st", 2) == 0 ||
				    memcmp(s + i, "nd", 2) == 0 ||
				    memcmp(s + i, "rd", 2) == 0 ||
				    memcmp(s + i, "th", 2) == 0))
					i += 2;
				if (i < t->n && s[i] == ',')
					i++;
				i = (size_t)skip_sp(t, i);
				if (i + 4 <= t->n && isdig(s[i]) &&
				    isdig(s[i + 3]) && ends_token(t, i + 4) &&
				    isdig(s[i + 1]) && isdig(s[i + 2])) {
					*d = atoi_n(s + a, l);
					*m = (int)h->ids;
					*y = atoi_n(s + i, 4);
					*startp = h->start;
					*endp = i + 4;
					return date_ok(*y, *m, *d);
				}
				break;
			}
		}
	}
	return 0;
}

static void
det_dob(const struct dtext *t)
{
	size_t r, last_end = 0;

	if (!(t->kinds & LX_DOB))
		return;		/* no birth context anywhere */
	for (r = 0; r < t->nruns; r++) {
		size_t a, e;
		int y, m, d;
		char v[11];

		if (t->runs[r].start < last_end)
			continue;
		if (t->runs[r].start > 0 &&
		    iswordb((unsigned char)t->s[t->runs[r].start - 1]))
			continue;
		if (!parse_date(t, r, &a, &e, &y, &m, &d))
			continue;
		if (y < 1880 || y > 2035)
			continue;
		if (d_ctx_before(t, a, 64, LX_DOB) == NULL &&
		    d_ctx_after(t, e, 24, LX_DOB) == NULL)
			continue;
		snprintf(v, sizeof(v), "%04d-%02d-%02d", y, m, d);
		D_EMIT(t, "date_of_birth", a, e, PRIO_DOB, v, 10);
		last_end = e;
	}
}

/* ------------------------------------------------------------------ */
/* ip addresses                                                        */

static int
version_word_before(const struct dtext *t, size_t a)
{
	const struct dhit *h = d_ctx_before(t, a, 12, LX_NEGCTX);
	const char *w;

	if (h == NULL)
		return 0;
	w = t->pat_words[h->pat];
	/* folded: "versión" reads "version" */
	return strcmp(w, "version") == 0 || strcmp(w, "versione") == 0 ||
	    strcmp(w, "release") == 0 || strcmp(w, "build") == 0;
}

static void
det_ipv4(const struct dtext *t)
{
	const char *s = t->s;
	size_t r;

	for (r = 0; r + 3 < t->nruns; r++) {
		size_t a = t->runs[r].start, k, e;
		char v[16];
		int i, vl;

		if (a > 0 && (iswordb((unsigned char)s[a - 1]) ||
		    s[a - 1] == '.' || s[a - 1] == ':' || s[a - 1] == '-'))
			continue;
		for (i = 0; i < 4; i++) {
			const struct drun *q = &t->runs[r + (size_t)i];
			size_t l = q->end - q->start;

			if (l > 3 || (l > 1 && s[q->start] == '0') ||
			    atoi_n(s + q->start, l) > 255)
				break;
			if (i < 3 && (s[q->end] != '.' ||
			    t->runs[r + (size_t)i + 1].start != q->end + 1))
				break;
		}
		if (i < 4)
			continue;
		e = t->runs[r + 3].end;
		if (e < t->n && (iswordb((unsigned char)s[e]) ||
		    ((s[e] == '.' || s[e] == ':' || s[e] == '-') &&
		    e + 1 < t->n && isdig(s[e + 1]) && s[e] != ':')))
			continue;
		/* "version 2.4.10.1", "build 1.0.0.3": not an address */
		if (version_word_before(t, a)) {
			r += 3;
			continue;
		}
		vl = (int)(e - a);
		for (k = 0; k < (size_t)vl; k++)
			v[k] = s[a + k];
		D_EMIT(t, "ip_address", a, e, PRIO_IP, v, (size_t)vl);
		r += 3;
	}
}

static void
det_ipv6(const struct dtext *t)
{
	const char *s = t->s, *c = s;
	size_t n = t->n, last_end = 0;

	while ((c = memchr(c, ':', n - (size_t)(c - s))) != NULL) {
		size_t i = (size_t)(c - s), a = i, e, k;
		int groups = 0, dbl = 0, glen = 0, maxg = 0, alpha = 0,
		    all2 = 1, bad = 0, v4 = 0, first = -1;
		char v[48];

		c++;
		if (i < last_end)
			continue;
		while (a > 0 && i - a < 40 && (ishex(s[a - 1]) ||
		    s[a - 1] == ':'))
			a--;
		if (a > 0 && (iswordb((unsigned char)s[a - 1]) ||
		    s[a - 1] == '.')) {
			/* inside a longer hex/colon run: no address starts in
			 * it, so jump past the run (keeps "1:1:1:..." linear
			 * with a small constant) */
			if (i - a >= 40) {
				size_t k = i;

				while (k < n && (ishex(s[k]) || s[k] == ':'))
					k++;
				c = s + k;
				if (k >= n)
					break;
			}
			continue;
		}
		/* parse forward from a */
		for (k = a; k < n && k - a < 46; k++) {
			int ch = (unsigned char)s[k];

			if (ishex(ch)) {
				glen++;
				if (!isdig(ch))
					alpha = 1;
				if (glen > 4) {
					bad = 1;
					break;
				}
				continue;
			}
			if (ch == ':') {
				if (glen > 0) {
					groups++;
					if (first < 0)
						first = glen;
					if (glen != 2)
						all2 = 0;
					if (glen > maxg)
						maxg = glen;
				}
				if (k + 1 < n && s[k + 1] == ':') {
					if (dbl) {
						bad = 1;
						break;
					}
					dbl = 1;
					k++;
				} else if (glen == 0 && k != a) {
					bad = 1;
					break;
				}
				glen = 0;
				continue;
			}
			if (ch == '.' && glen > 0 && glen <= 3 && groups >= 2 &&
			    k + 1 < n && isdig(s[k + 1])) {
				/* embedded IPv4 tail: let det_ipv4 judge it,
				 * here count it as two groups */
				size_t q = k - (size_t)glen;
				int dots = 0;

				while (q < n && (isdig(s[q]) || s[q] == '.')) {
					if (s[q] == '.')
						dots++;
					q++;
				}
				if (dots == 3) {
					groups += 2;
					v4 = 1;
					glen = 0;
					k = q;
				}
				break;
			}
			break;
		}
		if (bad)
			continue;
		if (glen > 0) {
			groups++;
			if (glen != 2)
				all2 = 0;
			if (glen > maxg)
				maxg = glen;
			if (first < 0)
				first = glen;
		}
		e = k;
		/* the last char must end a group, not a lone ':' */
		while (e > a && s[e - 1] == ':' && !(e >= 2 && s[e - 2] == ':'))
			e--;
		if (e < n && (iswordb((unsigned char)s[e]) || s[e] == ':'))
			continue;
		if (groups > 8 || groups < 2)
			continue;
		if (!dbl && groups != 8) {
			/* abbreviated forms seen in the wild: four or more
			 * groups, with letters, not a MAC address */
			if (groups < 4 || !alpha || all2 || first < 3)
				continue;
		}
		if (dbl && (groups < 2 || (maxg < 3 && !alpha && !v4)))
			continue;
		if (!alpha && !v4 && !dbl)
			continue;
		for (k = 0; k < e - a && k < sizeof(v); k++)
			v[k] = (char)tolow(s[a + k]);
		D_EMIT(t, "ip_address", a, e, PRIO_IP + 1, v, k);
		last_end = e;
	}
}

/* ------------------------------------------------------------------ */
/* lexicon findings: health, markings                                  */

static int
overlaps_neg(const struct dtext *t, size_t k)
{
	const struct dhit *h = &t->hits[k];
	size_t j;

	/* hits are ordered by end; a technical phrase around this term ends
	 * within a few dozen bytes after it */
	for (j = k + 1; j < t->nhits && t->hits[j].start < h->end + 32; j++)
		if ((t->hits[j].kind & LX_HEALTH_NEG) &&
		    t->hits[j].start <= h->start && t->hits[j].end >= h->end)
			return 1;
	for (j = k + 1; j-- > 0;) {
		if (t->hits[j].end + 64 < h->start)
			break;
		if ((t->hits[j].kind & LX_HEALTH_NEG) &&
		    t->hits[j].start <= h->start && t->hits[j].end >= h->end)
			return 1;
	}
	return 0;
}

/* Emit the longest of overlapping lexicon hits once ("breast cancer" and
 * its "cancer"; "TLP:AMBER+STRICT" and its "TLP:AMBER"). Hits come ordered
 * by end, so overlapping ones follow each other. */
struct lexpend {
	const struct dhit *h;
};

static void
lex_flush(const struct dtext *t, struct lexpend *pd, const char *type)
{
	const char *w;

	if (pd->h == NULL)
		return;
	w = t->pat_words[pd->h->pat];
	d_emit(t, type, pd->h->start, pd->h->end, PRIO_LOW, 0, w, strlen(w));
	pd->h = NULL;
}

static void
lex_offer(const struct dtext *t, struct lexpend *pd, const struct dhit *h,
    const char *type)
{
	if (pd->h != NULL && h->start < pd->h->end) {
		if (h->end - h->start > pd->h->end - pd->h->start)
			pd->h = h;
		return;
	}
	lex_flush(t, pd, type);
	pd->h = h;
}

static void
det_lexicon(const struct dtext *t)
{
	struct lexpend health = {NULL}, marking = {NULL};
	size_t k, j;

	for (k = 0; k < t->nhits; k++) {
		const struct dhit *h = &t->hits[k];

		if ((h->kind & LX_HEALTH) && !overlaps_neg(t, k)) {
			int named = 0;

			/* "diagnosed with X": X is the finding, the cue only
			 * counts when it names nothing we know */
			if (h->kind & LX_CUE)
				for (j = k >= 8 ? k - 8 : 0; j < t->nhits &&
				    t->hits[j].start < h->end + 48; j++)
					if ((t->hits[j].kind & LX_HEALTH) &&
					    !(t->hits[j].kind & LX_CUE) &&
					    t->hits[j].end + 48 > h->start)
						named = 1;
			if (!named)
				lex_offer(t, &health, h, "health");
		}
		if (h->kind & LX_MARKING)
			lex_offer(t, &marking, h, "marking");
	}
	lex_flush(t, &health, "health");
	lex_flush(t, &marking, "marking");
}

/* ICD-10 codes ("J45.9", "E11") next to a word saying they are codes. */
static void
det_icd(const struct dtext *t)
{
	const char *s = t->s;
	size_t r;

	if (!(t->kinds & LX_ICDCTX))
		return;
	for (r = 0; r < t->nruns; r++) {
		size_t a = t->runs[r].start, b = t->runs[r].end, e = b;
		char v[12];
		size_t vl;

		if (b - a != 2 || a < 1 || !isup(s[a - 1]) || s[a - 1] == 'U' ||
		    (a >= 2 && iswordb((unsigned char)s[a - 2])))
			continue;
		if (e + 1 < t->n && s[e] == '.' && isaln(s[e + 1])) {
			e++;
			while (e < t->n && isaln(s[e]) && e - b < 5)
				e++;
		}
		if (e < t->n && iswordb((unsigned char)s[e]))
			continue;
		if (d_ctx_before(t, a - 1, 40, LX_ICDCTX) == NULL)
			continue;
		vl = e - a + 1 < sizeof(v) ? e - a + 1 : sizeof(v);
		memcpy(v, s + a - 1, vl);
		d_emit(t, "health", a - 1, e, PRIO_LOW, 0, v, vl);
	}
}

/* ------------------------------------------------------------------ */
/* credentials                                                         */

static size_t
span_of(const char *s, size_t i, size_t n, const char *set)
{
	size_t k = i;

	while (k < n && ((unsigned char)s[k] < 0x80) &&
	    (isaln(s[k]) || (set != NULL && strchr(set, s[k]) != NULL &&
	    s[k] != '\0')))
		k++;
	return k - i;
}

/*
 * span_of() remembered: a prefix repeated through one long token
 * ("sk-sk-sk-...", "eyJeyJ...") has every occurrence's span end where the
 * first one's does, and measuring each again was quadratic in the token.
 * A span from inside the remembered one, over the same set, ends there.
 */
struct span_memo {
	const char *set;
	size_t from, end;
	int valid;
};

static size_t
span_at(struct span_memo *m, const char *s, size_t i, size_t n,
    const char *set)
{
	if (m->valid && m->set == set && i >= m->from && i <= m->end)
		return m->end - i;
	m->valid = 1;
	m->set = set;
	m->from = i;
	m->end = i + span_of(s, i, n, set);
	return m->end - i;
}

static void
cred_emit(const struct dtext *t, const char *type, size_t a, size_t e)
{
	D_EMIT(t, type, a, e, PRIO_CRED, t->s + a, e - a);
}

static void
det_cred(const struct dtext *t)
{
	const char *s = t->s;
	size_t n = t->n, k, last_end = 0;
	struct span_memo memo = { NULL, 0, 0, 0 };
	size_t sk_nomix_end = (size_t)-1;

	for (k = 0; k < t->nhits; k++) {
		const struct dhit *h = &t->hits[k];
		const char *w;
		size_t a = h->start, l;

		if (!(h->kind & LX_CRED) || a < last_end)
			continue;
		w = t->pat_words[h->pat];
		if (w[0] == 'a' && strlen(w) == 4) {
			/* AWS access key id: 4-letter prefix + 16 */
			size_t i;

			if (a + 20 > n || !isup(s[a]))
				continue;
			for (i = a; i < a + 20; i++)
				if (!isup(s[i]) && !isdig(s[i]))
					break;
			if (i < a + 20 || (a + 20 < n && isaln(s[a + 20])))
				continue;
			cred_emit(t, "credential.aws_access_key", a, a + 20);
			last_end = a + 20;
		} else if (strcmp(w, "github_pat_") == 0) {
			l = span_at(&memo, s, a + 11, n, "_");
			if (l < 22)
				continue;
			cred_emit(t, "credential.github_token", a, a + 11 + l);
			last_end = a + 11 + l;
		} else if (w[0] == 'g' && w[1] == 'h' && w[3] == '_') {
			l = span_at(&memo, s, a + 4, n, NULL);
			if (l < 30 || l > 255)
				continue;
			cred_emit(t, "credential.github_token", a, a + 4 + l);
			last_end = a + 4 + l;
		} else if (strncmp(w, "xox", 3) == 0) {
			l = span_at(&memo, s, a + 5, n, "-");
			if (l < 10)
				continue;
			cred_emit(t, "credential.slack_token", a, a + 5 + l);
			last_end = a + 5 + l;
		} else if (strcmp(w, "sk-") == 0) {
			size_t i;
			int dg = 0, up = 0, lo = 0;

			if (s[a] != 's')
				continue;
			l = span_at(&memo, s, a + 3, n, "-_");
			/* a span ending where a longer one without the mix
			 * ended lacks it too */
			if (l < 20 || a + 3 + l == sk_nomix_end)
				continue;
			for (i = a + 3; i < a + 3 + l; i++) {
				dg |= isdig(s[i]);
				up |= isup(s[i]);
				lo |= islow(s[i]);
			}
			if (dg + up + lo < 2) {
				sk_nomix_end = a + 3 + l;
				continue;
			}
			if (strncmp(s + a + 3, "ant-", 4) == 0)
				continue;
			cred_emit(t, "credential.openai_api_key", a, a + 3 + l);
			last_end = a + 3 + l;
		} else if (strcmp(w, "eyj") == 0) {
			size_t i = a, seg = 0, segl[3] = {0, 0, 0};

			if (memcmp(s + a, "eyJ", 3) != 0)
				continue;
			while (i < n && seg < 3) {
				l = span_at(&memo, s, i, n, "-_");
				segl[seg++] = l;
				i += l;
				if (seg < 3 && i < n && s[i] == '.')
					i++;
				else
					break;
			}
			if (seg < 3 || segl[0] < 10 || segl[1] < 10 ||
			    segl[2] < 8)
				continue;
			cred_emit(t, "credential.jwt", a, i);
			last_end = i;
		} else if (strcmp(w, "-----begin") == 0) {
			/* PEM: the header names a private key */
			size_t i = a + 10, e, body;
			const char *end;

			while (i < n && i - a < 60 && s[i] != '\n' &&
			    memcmp(s + i, "-----", 5 < n - i ? 5 : n - i) != 0)
				i++;
			if (i + 5 > n || memcmp(s + i, "-----", 5) != 0)
				continue;
			if (memmem(s + a, i - a, "PRIVATE KEY", 11) == NULL)
				continue;
			body = i + 5;
			end = memmem(s + body, n - body < 65536 ?
			    n - body : 65536, "-----END", 8);
			e = end != NULL ? (size_t)(end - s) + 8 : n;
			if (end != NULL) {
				const char *x = memmem(s + e, n - e < 80 ?
				    n - e : 80, "-----", 5);

				if (x != NULL)
					e = (size_t)(x - s) + 5;
			}
			D_EMIT(t, "credential.private_key", a, e, PRIO_CRED,
			    s + body, (end != NULL ? (size_t)(end - s) : n) -
			    body);
			last_end = e;
		}
	}
}

/* Generic secrets: a high-entropy value assigned to a key-, token-,
 * secret- or password-like name ("password: Xy7$kq...", "API_KEY=..."). */
static void
det_generic_secret(const struct dtext *t)
{
	const char *s = t->s;
	size_t n = t->n, k;

	for (k = 0; k < t->nhits; k++) {
		const struct dhit *h = &t->hits[k];
		size_t i = h->end, a, e;
		int up = 0, lo = 0, dg = 0, sy = 0, classes, cnt[128], uniq = 0;

		if (!(h->kind & LX_SECRET))
			continue;
		/* name, then optional quote, then '=' or ':' */
		while (i < n && i - h->end < 3 && (s[i] == '"' || s[i] == '\'' ||
		    s[i] == ' '))
			i++;
		if (i >= n || (s[i] != '=' && s[i] != ':'))
			continue;
		i++;
		while (i < n && i - h->end < 8 && (s[i] == ' ' || s[i] == '"' ||
		    s[i] == '\'' || s[i] == '>'))
			i++;
		a = i;
		while (i < n && (unsigned char)s[i] > ' ' &&
		    (unsigned char)s[i] < 0x7f && s[i] != '"' && s[i] != '\'' &&
		    s[i] != ',' && s[i] != ';' && i - a < 200)
			i++;
		e = i;
		while (e > a && (s[e - 1] == '.' || s[e - 1] == ')'))
			e--;
		if (e - a < 8)
			continue;
		memset(cnt, 0, sizeof(cnt));
		for (i = a; i < e; i++) {
			int c = (unsigned char)s[i];

			up |= isup(c);
			lo |= islow(c);
			dg |= isdig(c);
			sy |= !isaln(c);
			if (cnt[c & 127]++ == 0)
				uniq++;
		}
		classes = up + lo + dg + sy;
		if (classes < 3 || uniq < 8)
			continue;
		D_EMIT(t, "credential.generic", a, e, PRIO_CRED - 5, s + a,
		    e - a);
	}
}

/* ------------------------------------------------------------------ */

const struct detector detector_table[] = {
	{"email", det_email},
	{"iban", det_iban},
	{"payment_card", det_card},
	{"national_id", det_nid_numeric},
	{"national_id_alpha", det_nid_alpha},
	{"phone", det_phone},
	{"date_of_birth", det_dob},
	{"ipv4", det_ipv4},
	{"ipv6", det_ipv6},
	{"lexicon", det_lexicon},
	{"icd10", det_icd},
	{"credential", det_cred},
	{"generic_secret", det_generic_secret},
};
const size_t detector_count = sizeof(detector_table) /
    sizeof(detector_table[0]);
