/*
 * check_classify.c - detectors with valid and invalid check digits, the
 * near misses that must stay silent, normalisation against evasion, overlap
 * resolution, distinct counting, custom detectors and their diagnostics.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "detect.h"
#include "diag.h"
#include "testutil.h"

static struct classifier *clf;
static struct scan *sc;

static void
setup(void)
{
	clf = classifier_new(NULL, 0, NULL);
	ck_assert_ptr_nonnull(clf);
	sc = scan_new();
}

static void
teardown(void)
{
	scan_free(sc);
	classifier_free(clf);
}

/* Scan one text and return the count of type (or of its category when
 * type has no dot and a dotted type matched). */
static unsigned
count(const char *text, const char *type)
{
	size_t i;
	unsigned n = 0, tl = strlen(type);

	scan_reset(sc);
	classifier_scan(clf, sc, text, strlen(text));
	for (i = 0; i < sc->ntypes; i++) {
		const char *t = sc->types[i].type;

		if (strcmp(t, type) == 0 ||
		    (strncmp(t, type, tl) == 0 && t[tl] == '.'))
			n += sc->types[i].count;
	}
	return n;
}

static char *
findings(const char *text)
{
	scan_reset(sc);
	classifier_scan(clf, sc, text, strlen(text));
	return scan_findings_json(sc);
}

#define YES(text, type) ck_assert_msg(count(text, type) == 1, \
	"expected one %s in: %s", type, text)
#define NO(text, type) ck_assert_msg(count(text, type) == 0, \
	"expected no %s in: %s", type, text)

START_TEST(test_check_digits)
{
	ck_assert(luhn_ok("4111111111111111", 16));
	ck_assert(!luhn_ok("4111111111111112", 16));
	ck_assert(iban_valid("DE89370400440532013000", 22));
	ck_assert(!iban_valid("DE89370400440532013001", 22));
	ck_assert(!iban_valid("DE8937040044053201300", 21));	/* length */
	ck_assert(iban_valid("NL91ABNA0417164300", 18));
	ck_assert(fr_nir_valid("184037645108996", 15));
	ck_assert(!fr_nir_valid("184037645108997", 15));
	ck_assert(fr_nir_valid("161052A28618978", 15));	/* Corsica */
	ck_assert(de_tax_id_valid("86095742719", 11));
	ck_assert(!de_tax_id_valid("86095742718", 11));
	/* check digit right, but two digits repeat: not a Steuer-ID */
	ck_assert(!de_tax_id_valid("47152896411", 11));
	ck_assert(nl_bsn_valid("123456782", 9));
	ck_assert(!nl_bsn_valid("123456783", 9));
	ck_assert(es_dni_valid("12345678Z", 9));
	ck_assert(!es_dni_valid("12345678A", 9));
	ck_assert(es_nie_valid("X1234567L", 9));
	ck_assert(es_nie_valid("Y7654321G", 9));
	ck_assert(!es_nie_valid("X1234567M", 9));
	ck_assert(it_cf_valid("RSSMRA85T10A562S", 16));
	ck_assert(!it_cf_valid("RSSMRA85T10A562T", 16));
	ck_assert(be_nn_valid("85073003328", 11));
	ck_assert(be_nn_valid("01020312345", 11));	/* born 2001 */
	ck_assert(!be_nn_valid("85073003329", 11));
	ck_assert(pl_pesel_valid("44051401359", 11));
	ck_assert(pl_pesel_valid("02210301232", 11));	/* 2002 */
	ck_assert(!pl_pesel_valid("44051401358", 11));
	ck_assert(se_pnr_valid("8112189876", 10));
	ck_assert(se_pnr_valid("198112189876", 12));
	ck_assert(!se_pnr_valid("8112189877", 10));
	ck_assert(uk_nhs_valid("9434765919", 10));
	ck_assert(!uk_nhs_valid("9434765918", 10));
	ck_assert(uk_nino_valid("AB123456C", 9));
	ck_assert(!uk_nino_valid("GB123456C", 9));	/* reserved prefix */
	ck_assert(!uk_nino_valid("AB123456E", 9));
	ck_assert(card_issuer_ok("4111111111111111", 16));
	ck_assert(!card_issuer_ok("8800368216847610", 16));
}
END_TEST

START_TEST(test_email)
{
	YES("write to jane.doe+x@example.co.uk today", "email");
	YES("Mail: A.B@Example.ORG.", "email");
	NO("see user@localhost or @handle", "email");
	NO("version 1.2@3", "email");
	/* the same address twice is one value */
	ck_assert_uint_eq(count("a@b.fr and A@B.FR", "email"), 1);
	ck_assert_uint_eq(count("a@b.fr and c@d.fr", "email"), 2);
}
END_TEST

START_TEST(test_iban)
{
	YES("IBAN DE89 3704 0044 0532 0130 00 please", "iban");
	YES("Refund FR7630006000011234567890189.", "iban");
	YES("nl91abna0417164300", "iban");
	YES("NL91-ABNA-0417-1643-00", "iban");
	NO("IBAN DE89 3704 0044 0532 0130 01", "iban");	/* mod 97 */
	NO("XX89370400440532013000", "iban");		/* no such country */
	NO("ref DE893704004405320130001", "iban");	/* too long */
}
END_TEST

START_TEST(test_card)
{
	YES("card 4111 1111 1111 1111", "payment_card");
	YES("card 4111-1111-1111-1111", "payment_card");
	YES("Amex 3782 822463 10005", "payment_card");
	YES("5555555555554444", "payment_card");
	YES("card 4111 1111 1111 1111 12 26", "payment_card");
	NO("card 4111 1111 1111 1112", "payment_card");	/* Luhn */
	NO("8800368216847610", "payment_card");		/* no issuer */
	NO("order #4111111111111111", "payment_card");
	NO("tracking 4111111111111111", "payment_card");
	NO("4111 1111-1111 1111", "payment_card");	/* mixed groups */
	/* a 16-digit run inside an IBAN is not a card */
	ck_assert_uint_eq(count("GB82 WEST 1234 5698 7654 32",
	    "payment_card"), 0);
}
END_TEST

START_TEST(test_national_id)
{
	YES("Le numéro de sécurité sociale est 1 84 03 76 451 089 96.",
	    "national_id.fr_nir");
	YES("NIR 161052A28618978", "national_id.fr_nir");
	YES("Die Steuer-ID lautet 86 095 742 719.", "national_id.de_tax_id");
	NO("Die Steuer-ID lautet 86 095 742 718.", "national_id");
	/* weak check digits need context */
	NO("Build 86095742719 failed", "national_id");
	NO("tracking 123456782", "national_id");
	YES("Het BSN van Eva is 123456782.", "national_id.nl_bsn");
	YES("Nummer: 123456782", "national_id.nl_bsn");
	NO("123456782", "national_id");
	YES("El DNI es 12345678-Z.", "national_id.es_dni");
	YES("DNI: 12.345.678-Z", "national_id.es_dni");
	YES("NIE: X1234567L", "national_id.es_nie");
	YES("codice fiscale RSSMRA85T10A562S", "national_id.it_fiscal_code");
	YES("RSSMRA85T10A562S", "national_id.it_fiscal_code");
	NO("RSSMRA85T10A562T", "national_id");
	YES("rijksregisternummer 85.07.30-033.28", "national_id.be_national_number");
	YES("PESEL 44051401359", "national_id.pl_pesel");
	YES("personnummer 811218-9876", "national_id.se_personnummer");
	YES("NINO: AB 12 34 56 C", "national_id.uk_nino");
	YES("NHS number 943 476 5919", "national_id.uk_nhs_number");
	NO("call 943 476 5919", "national_id");
	YES("HETU 131052-308T", "national_id.fi_hetu");
	NO("131052-308U", "national_id");
	YES("PPSN: 1234567TW", "national_id.ie_pps");
	NO("1234567TW", "national_id");		/* no context */
	YES("CPR-nummer: 010190-1234", "national_id.dk_cpr");
	NO("Nummer: 010190-1234", "national_id.dk_cpr");
}
END_TEST

START_TEST(test_phone)
{
	YES("Call me on +33 6 12 34 56 78.", "phone");
	YES("Tel. 06.12.34.56.78", "phone");
	YES("Handy: 0171/7170673", "phone");
	YES("+44 (0)20 7946 0958", "phone");
	YES("Il suo cellulare è 321 184 4120.", "phone");
	YES("Mobiel nummer: 020-6191155.", "phone");
	YES("Son numéro : 06 12 34 56 78", "phone");
	YES("Llámame al 91 123 45 67", "phone");
	YES("Telefone: 21 123 4567", "phone");
	YES("Gsm: 0470 12 34 56", "phone");
	YES("Ring me on 087 123 4567", "phone");
	YES("Mobil: 0664 1234567", "phone");
	YES("Telefon: 08-123 456 78", "phone");
	YES("Telefon: 512 345 678", "phone");
	NO("born 10/08/1947", "phone");
	NO("order 0612345678", "phone");
	NO("See 0612345678 in the changelog.", "phone");
	NO("port 34196", "phone");
	YES("321 184 4120", "phone");		/* Italian mobile layout */
	NO("123 456 7890", "phone");		/* no context, no trunk 0 */
	NO("MA 02110-1301 USA", "phone");	/* a ZIP+4 code */
}
END_TEST

START_TEST(test_dob)
{
	YES("Elena Rossi è nata il 10/08/1947.", "date_of_birth");
	YES("Date of birth: 1984-09-26", "date_of_birth");
	YES("geboren am 24. März 1980", "date_of_birth");
	YES("Katrin wurde am 24.03.1980 geboren.", "date_of_birth");
	YES("nacido el 3 de marzo de 1975", "date_of_birth");
	YES("born on March 12, 1980", "date_of_birth");
	YES("born on March 15th, 1980", "date_of_birth");
	YES("née le 15/03/80", "date_of_birth");
	YES("Date of birth 1990.07.15", "date_of_birth");
	YES("DOB 5-1-2002", "date_of_birth");
	NO("The release is due on 10/08/2024.", "date_of_birth");
	NO("born on 31/02/1980", "date_of_birth");	/* no such day */
}
END_TEST

START_TEST(test_health)
{
	YES("She was diagnosed with breast cancer.", "health");
	YES("Le patient souffre de diabète de type 2.", "health");
	YES("Der Patient hat Schizophrenie.", "health");
	YES("soffre di epilessia", "health");
	YES("padece esclerosis múltiple", "health");
	YES("heeft hiv", "health");
	YES("takes metformin daily", "health");
	YES("ICD-10 code E11.9", "health");
	NO("Run the health check again.", "health");
	NO("The virus scanner flagged nothing.", "health");
	NO("set stroke-width to 2", "health");
	NO("the diagnostic tool crashed", "health");
	NO("E11.9", "health");			/* a code needs context */
}
END_TEST

START_TEST(test_credentials)
{
	YES("key AKIAIOSFODNN7EXAMPLE", "credential.aws_access_key");
	NO("ASIA is a continent", "credential");
	YES("ghp_abcdefghijklmnopqrstuvwxyz0123456789",
	    "credential.github_token");
	YES("xoxb-12345678901-123456789012-abcdefghijklmnop",
	    "credential.slack_token");
	YES("sk-proj-wEJhFV7ZGPyRaQFzrFK2OKDdfuFOEdPj",
	    "credential.openai_api_key");
	NO("a task-force of ten", "credential");
	YES("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
	    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "credential.jwt");
	YES("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n"
	    "-----END RSA PRIVATE KEY-----", "credential.private_key");
	NO("-----BEGIN CERTIFICATE-----\nMIIE\n-----END CERTIFICATE-----",
	    "credential");
	YES("DB_PASSWORD=Xk9#mQ2$vL7pR4", "credential.generic");
	NO("password: see vault", "credential");
}
END_TEST

START_TEST(test_ip_marking)
{
	YES("from 192.168.1.20 today", "ip_address");
	YES("addr 2001:db8::8a2e:370:7334", "ip_address");
	YES("fe80::1ff:fe23:4567:890a", "ip_address");
	NO("version 1.2.3.4.5", "ip_address");
	NO("v8.13.27", "ip_address");
	NO("Version 2.4.10.1 released", "ip_address");
	NO("ISO 27001:2022 and 10:30:45", "ip_address");
	NO("MAC 00:1a:2b:3c:4d:5e", "ip_address");
	NO("999.1.1.1", "ip_address");
	YES("TLP:AMBER+STRICT", "marking");
	YES("Classification: RESTREINT UE/EU RESTRICTED", "marking");
	YES("VS-NfD - nicht weiterleiten", "marking");
	YES("Classifica: RISERVATO", "marking");
	NO("posto riservato al cliente", "marking");
}
END_TEST

START_TEST(test_evasion)
{
	/* zero-width characters, no-break spaces, full-width digits */
	YES("IBAN DE89\u200b3704\u00a00044\u202f0532 0130 00", "iban");
	YES("card \uff14\uff11\uff11\uff11 1111 1111 1111", "payment_card");
	YES("mail a\u200d.b@exa\u2060mple.com", "email");
	YES("PESEL \uff14\uff14\uff10\uff15\uff11\uff14\uff10\uff11\uff13"
	    "\uff15\uff19", "national_id.pl_pesel");
	YES("Schi\u00adzo\u200bphrenie", "health");
	YES("TLP\uff1aRED", "marking");
}
END_TEST

START_TEST(test_values_and_json)
{
	char *j;
	size_t i;
	int found = 0;

	j = findings("IBAN DE89 3704 0044 0532 0130 00, mail x@y.de, "
	    "IBAN DE89370400440532013000");
	ck_assert_str_eq(j, "{\"email\":1,\"iban\":1}");
	free(j);
	ck_assert_uint_eq(scan_count(sc, "iban"), 1);
	ck_assert_uint_eq(scan_count(sc, "phone"), 0);
	for (i = 0; i < sc->nvalues; i++)
		if (strcmp(sc->values[i].type, "iban") == 0) {
			ck_assert_uint_eq(sc->values[i].len, 22);
			ck_assert(memcmp(sc->values[i].value,
			    "DE89370400440532013000", 22) == 0);
			found = 1;
		}
	ck_assert(found);
	scan_reset(sc);
	ck_assert_uint_eq(sc->nvalues, 0);
	ck_assert_uint_eq(sc->ntypes, 0);
	j = scan_findings_json(sc);
	ck_assert_str_eq(j, "{}");
	free(j);
	/* counts accumulate across texts of one request, once per value */
	classifier_scan(clf, sc, "a@b.fr", 6);
	classifier_scan(clf, sc, "A@B.fr", 6);
	classifier_scan(clf, sc, "c@b.fr", 6);
	ck_assert_uint_eq(scan_count(sc, "email"), 2);
	for (i = 0; classify_builtin_types[i] != NULL; i++)
		;
	ck_assert(i > 20);
}
END_TEST

START_TEST(test_many_values)
{
	char *buf = malloc(20 * 1000 + 1), *p = buf;
	int i;

	for (i = 0; i < 1000; i++)
		p += sprintf(p, "u%05d@ex.com ", i);
	scan_reset(sc);
	classifier_scan(clf, sc, buf, strlen(buf));
	ck_assert_uint_eq(scan_count(sc, "email"), 1000);
	ck_assert_uint_eq(sc->nvalues, SCAN_MAX_VALUES);
	ck_assert_uint_eq(sc->dropped_values, 1000 - SCAN_MAX_VALUES);
	free(buf);
}
END_TEST

START_TEST(test_pathological)
{
	/* long runs of digits, spaces and letters stay linear and quiet */
	size_t n = 3 << 20, i;
	char *buf = malloc(n + 1);

	memset(buf, '7', n);
	buf[n] = '\0';
	free(findings(buf));
	for (i = 0; i < n; i++)
		buf[i] = (i % 2) ? ' ' : '1';
	free(findings(buf));
	memset(buf, 'a', n);
	free(findings(buf));
	/* one token of letters and digits (a hash, base64): each digit run
	 * in it used to rescan the whole token, quadratic (minutes) */
	for (i = 0; i < n; i++)
		buf[i] = "a1"[i % 2];
	free(findings(buf));
	/* a credential prefix repeated through one token, and dates after
	 * many lexicon hits: each used to rescan to the token's end or
	 * from the last hit */
	for (i = 0; i + 3 <= n; i += 3)
		memcpy(buf + i, "sk-", 3);
	buf[i] = '\0';
	free(findings(buf));
	for (i = 0; i + 10 <= n; i += 10)
		memcpy(buf + i, "born on 1 ", 10);
	buf[i] = '\0';
	free(findings(buf));
	/* a million lexicon hits, and texts longer than one scan piece */
	for (i = 0; i + 9 <= n; i += 9)
		memcpy(buf + i, "diabetes ", 9);
	buf[i] = '\0';
	ck_assert_uint_eq(count(buf, "health"), 1);
	memcpy(buf + n - 40, " IBAN DE89370400440532013000 ", 29);
	ck_assert_uint_eq(count(buf, "iban"), 1);
	for (i = 0; i < n; i++)
		buf[i] = ":1.@"[i % 4];
	free(findings(buf));
	/* invalid UTF-8 handed straight to the scanner does no harm */
	free(findings("\xff\xfe\xc3 4111 1111 1111 1111 \xe2\x80"));
	free(buf);
}
END_TEST

START_TEST(test_custom)
{
	char *w1[] = {"Nightingale", "NGL-2025"};
	char *w2[] = {"Nightingale"};
	struct custom_def defs[3];
	struct classifier *c;
	struct scan *s = scan_new();
	struct diags *d = diags_new();
	const char *text = "Project nightingale (ngl-2025) on db1.corp.example "
	    "and NIGHTINGALES";

	memset(defs, 0, sizeof(defs));
	defs[0].name = "project.nightingale";
	defs[0].words = w1;
	defs[0].nwords = 2;
	defs[1].name = "corp.hostname";
	defs[1].regex = "\\b[a-z0-9-]+\\.corp\\.example\\b";
	defs[2].name = "other";
	defs[2].words = w2;
	defs[2].nwords = 1;
	c = classifier_new(defs, 3, d);
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(d->nerrors, 0);
	classifier_scan(c, s, text, strlen(text));
	ck_assert_uint_eq(scan_count(s, "custom.project.nightingale"), 2);
	ck_assert_uint_eq(scan_count(s, "custom.corp.hostname"), 1);
	ck_assert_uint_eq(scan_count(s, "custom.other"), 1);
	classifier_free(c);
	scan_free(s);

	/* a bad pattern is reported where it was written */
	memset(defs, 0, sizeof(defs));
	defs[0].name = "bad";
	defs[0].regex = "ab(c";
	defs[0].file = "policy.yaml";
	defs[0].line = 7;
	defs[0].col = 7;
	defs[0].regex_line = 7;
	defs[0].regex_col = 30;
	c = classifier_new(defs, 1, d);
	ck_assert_ptr_null(c);
	ck_assert_uint_eq(d->nerrors, 1);
	ck_assert_str_eq(d->v[0].file, "policy.yaml");
	ck_assert_int_eq(d->v[0].line, 7);
	ck_assert_int_eq(d->v[0].col, 30);
	ck_assert_ptr_nonnull(strstr(d->v[0].msg, "offset 4"));
	diags_free(d);
	classifier_free(NULL);
	scan_free(NULL);
}
END_TEST

static Suite *
classify_suite(void)
{
	Suite *s = suite_create("classify");
	TCase *tc = tcase_create("detectors");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_check_digits);
	tcase_add_test(tc, test_email);
	tcase_add_test(tc, test_iban);
	tcase_add_test(tc, test_card);
	tcase_add_test(tc, test_national_id);
	tcase_add_test(tc, test_phone);
	tcase_add_test(tc, test_dob);
	tcase_add_test(tc, test_health);
	tcase_add_test(tc, test_credentials);
	tcase_add_test(tc, test_ip_marking);
	tcase_add_test(tc, test_evasion);
	tcase_add_test(tc, test_values_and_json);
	tcase_add_test(tc, test_many_values);
	tcase_add_test(tc, test_pathological);
	tcase_add_test(tc, test_custom);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(classify_suite());
}
