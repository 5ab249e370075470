/*
 * detect.h - the detectors and the view of one normalised text they share.
 *
 * classify.c normalises a text once (struct dtext: the normalised text, its
 * case- and accent-folded twin, the digit runs and the lexicon hits) and then
 * calls every row of detector_table[]. A detector looks at that view and
 * proposes candidates with d_emit(); classify.c resolves overlaps and counts
 * distinct values. Adding a detector is one function plus one table row.
 *
 * Everything here is internal to the classifier.
 */
#ifndef SOVGATE_DETECT_H
#define SOVGATE_DETECT_H

#include <stddef.h>
#include <stdint.h>

/* What a lexicon word is for. One word may serve several purposes (the same
 * string in several lists is merged at build time). */
enum {
	LX_HEALTH	= 1u << 0,	/* health term: a finding by itself */
	LX_HEALTH_NEG	= 1u << 1,	/* technical phrase ("virus scanner") */
	LX_DOB		= 1u << 2,	/* birth context ("born on") */
	LX_MARKING	= 1u << 3,	/* protective marking */
	LX_CUSTOM	= 1u << 4,	/* a policy's custom word */
	LX_IDCTX	= 1u << 5,	/* names an identifier (see ids mask) */
	LX_PHONECTX	= 1u << 6,	/* "phone", "Handy", "cellulare" */
	LX_NEGCTX	= 1u << 7,	/* "order", "tracking", "build": not PII */
	LX_SECRET	= 1u << 8,	/* "password", "api_key": generic secrets */
	LX_CARDCTX	= 1u << 9,	/* "card", "carte", "Karte" */
	LX_ICDCTX	= 1u << 10,	/* "ICD-10", "CIM-10", "diagnosis code" */
	LX_IBANCTX	= 1u << 11,	/* "IBAN" */
	LX_CRED		= 1u << 12,	/* credential prefix trigger ("akia") */
	LX_MONTH	= 1u << 13,	/* month name; ids = month number */
	LX_CUE		= 1u << 15,	/* health cue ("diagnosed with"): counts
					 * only when no named condition follows */
	/* match flags */
	LX_STEM		= 1u << 16,	/* letters may follow (inflections) */
	LX_UPPER	= 1u << 17,	/* must be upper case in the text */
	LX_ANYSTART	= 1u << 18,	/* no word boundary needed before */
	LX_ANYEND	= 1u << 19,	/* no word boundary needed after */
};
#define LX_FLAGS (LX_STEM | LX_UPPER | LX_ANYSTART | LX_ANYEND)

/* National identifier types, listed once: the enum (bit positions in a
 * context word's ids mask), their finding type names (nid_type_names) and
 * their place among classify_builtin_types all come from this list. */
#define NID_TYPES(X)							\
	X(FR_NIR, "national_id.fr_nir")					\
	X(DE_TAX, "national_id.de_tax_id")				\
	X(IT_CF, "national_id.it_fiscal_code")				\
	X(ES_DNI, "national_id.es_dni")					\
	X(ES_NIE, "national_id.es_nie")					\
	X(NL_BSN, "national_id.nl_bsn")					\
	X(BE_NN, "national_id.be_national_number")			\
	X(PL_PESEL, "national_id.pl_pesel")				\
	X(SE_PNR, "national_id.se_personnummer")			\
	X(UK_NINO, "national_id.uk_nino")				\
	X(UK_NHS, "national_id.uk_nhs_number")				\
	X(AT_SVNR, "national_id.at_social_security")			\
	X(FI_HETU, "national_id.fi_hetu")				\
	X(DK_CPR, "national_id.dk_cpr")					\
	X(PT_NIF, "national_id.pt_nif")					\
	X(IE_PPS, "national_id.ie_pps")

#define NID_ENUM_(id, name) NID_##id,
#define NID_NAME_(id, name) name,
enum nid {
	NID_TYPES(NID_ENUM_)
	NID_COUNT
};
#define NID_ALL	((1u << NID_COUNT) - 1)
extern const char *const nid_type_names[NID_COUNT];

/* A list of words or phrases separated by '|', UTF-8 in any case and with
 * any accents (folded when the classifier is built); a trailing '*' makes a
 * word a stem that takes simple inflections. */
struct lex_list {
	const char *words;
	uint32_t kind;		/* LX_* */
	uint32_t ids;		/* LX_IDCTX: which enum nid; LX_MONTH: month */
};
extern const struct lex_list lex_builtin[];
extern const size_t lex_builtin_count;
extern const struct lex_list lex_health[];	/* detect_health.c */
extern const size_t lex_health_count;

/* One lexicon hit, in normalised-text offsets. */
struct dhit {
	uint32_t start, end;
	uint32_t kind;		/* merged LX_* of every pattern ending here */
	uint32_t ids;
	int32_t pat;		/* pattern index: value identity for health */
	int32_t custom;		/* custom detector index or -1 */
};

/* A maximal run of ASCII digits in the normalised text. */
struct drun {
	uint32_t start, end;
	uint32_t seq;		/* starts a number: not glued to a word or to
				 * a previous digit group ("12 34": only 12) */
};

struct dtext {
	const char *s;		/* normalised: case kept */
	size_t n;
	const char *f;		/* folded: lower case, accents stripped */
	size_t fn;
	const struct drun *runs;
	size_t nruns;
	const struct dhit *hits;	/* ordered by end */
	size_t nhits;
	const char *const *pat_words;	/* folded pattern strings by index */
	uint32_t kinds;		/* union of every hit's kind: lets detectors
				 * that need a context word skip a text */
	void *ctx;		/* classify.c's; for d_emit */
};

/* Priorities for overlap resolution: the higher one keeps the span. */
enum {
	PRIO_LOW = 10, PRIO_PHONE = 20, PRIO_IP = 30, PRIO_NID_WEAK = 40,
	PRIO_DOB = 45, PRIO_CARD = 50, PRIO_NID = 60, PRIO_EMAIL = 70,
	PRIO_IBAN = 80, PRIO_CRED = 90
};

/* Propose a finding over [start, end) of s. value is the normalised value
 * (what is counted once and fingerprinted). excl: takes part in overlap
 * resolution (values); 0 for lexicon findings that may sit anywhere. */
void d_emit(const struct dtext *t, const char *type, size_t start,
    size_t end, int prio, int excl, const char *value, size_t vlen);

/* How many hits end at or before pos (the hits are ordered by end). */
size_t d_hits_upto(const struct dtext *t, size_t pos);

/* Context: among lexicon hits ending within win bytes before pos (or, when
 * after > 0, starting within after bytes after endpos), the nearest one
 * whose kind is in mask; NULL if none. */
const struct dhit *d_ctx_before(const struct dtext *t, size_t pos,
    size_t win, uint32_t mask);
const struct dhit *d_ctx_after(const struct dtext *t, size_t endpos,
    size_t win, uint32_t mask);

typedef void (*detect_fn)(const struct dtext *t);
struct detector {
	const char *name;
	detect_fn fn;
};
extern const struct detector detector_table[];
extern const size_t detector_count;

/* Check-digit helpers, exposed for the unit tests. */
int luhn_ok(const char *digits, size_t n);
int iban_valid(const char *s, size_t n);	/* compact, upper case */
int card_issuer_ok(const char *digits, size_t n);
int fr_nir_valid(const char *s, size_t n);	/* 15 chars, 2A/2B ok */
int de_tax_id_valid(const char *d, size_t n);
int nl_bsn_valid(const char *d, size_t n);
int es_dni_valid(const char *s, size_t n);	/* 8 digits + letter */
int es_nie_valid(const char *s, size_t n);	/* X/Y/Z + 7 digits + letter */
int it_cf_valid(const char *s, size_t n);
int be_nn_valid(const char *d, size_t n);
int pl_pesel_valid(const char *d, size_t n);
int se_pnr_valid(const char *d, size_t n);	/* 10 or 12 digits */
int uk_nino_valid(const char *s, size_t n);	/* compact */
int uk_nhs_valid(const char *d, size_t n);

#endif
