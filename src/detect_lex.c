/*
 * detect_lex.c - the built-in lexicons: context words that tell what a
 * number is, month names, protective markings, credential prefixes, and the
 * health lexicon (detect_health.c).
 *
 * Words are matched on the folded text (lower case, Latin accents
 * stripped) on word boundaries, all at once by one automaton, so a long list
 * costs build time, not scan time.
 */
#include "detect.h"

#define ID(x) (1u << NID_##x)

const struct lex_list lex_builtin[] = {
	/* ---- identifiers, by type ---- */
	{"nir|numéro de sécurité sociale|n° de sécurité sociale|"
	 "numéro de securite sociale|sécurité sociale|n° ss|numéro ss|"
	 "numéro insee|insee|carte vitale|french social security number|"
	 "french social security|social security number|social security no|"
	 "französische sozialversicherungsnummer|numero di sicurezza sociale|"
	 "número de la seguridad social|número de seguridad social|"
	 "numero previdenza sociale|sociaal zekerheidsnummer",
	 LX_IDCTX, ID(FR_NIR) | ID(AT_SVNR)},
	{"steuer-id|steuerid|steuer-identifikationsnummer|"
	 "steueridentifikationsnummer|steuerliche identifikationsnummer|"
	 "identifikationsnummer|idnr|id-nr|steuernummer|tax id|tax-id|"
	 "tax identification number|tax number|tin|german tax id|"
	 "numéro fiscal|numéro d'identification fiscale|identifiant fiscal|"
	 "número de identificación fiscal|fiscaal nummer|"
	 "fiscaal identificatienummer|codice identificativo fiscale|"
	 "id fiscale|identificativo fiscale|steuer id",
	 LX_IDCTX, ID(DE_TAX) | ID(PT_NIF)},
	{"bsn|burgerservicenummer|burger service nummer|sofinummer|"
	 "sofi-nummer|citizen service number|bsn-nummer",
	 LX_IDCTX, ID(NL_BSN)},
	{"rijksregisternummer|rijksregister|registre national|"
	 "numéro de registre national|numéro national|national register number|"
	 "national registry number|national number|belgian national number|"
	 "nationaal nummer|nationaal registernummer|insz|niss|insz-nummer|"
	 "numéro niss|registro nazionale|numero di registro nazionale|"
	 "número de registro nacional|registro nacional|"
	 "belgische nationale nummer|belgian id number",
	 LX_IDCTX, ID(BE_NN)},
	{"pesel|numer pesel|pesel-nummer|numéro pesel|número pesel",
	 LX_IDCTX, ID(PL_PESEL)},
	{"personnummer|personal identity number|swedish personal number|"
	 "swedish personal identity number|samordningsnummer|personnr|"
	 "schwedische personennummer|numéro personnel suédois",
	 LX_IDCTX, ID(SE_PNR)},
	{"nhs|nhs number|nhs no|nhs-nummer|numéro nhs|numero nhs|número nhs|"
	 "nhs-nummer",
	 LX_IDCTX, ID(UK_NHS)},
	{"national insurance|national insurance number|nino|ni number|ni no|"
	 "numéro d'assurance nationale",
	 LX_IDCTX, ID(UK_NINO)},
	{"dni|documento nacional de identidad|d.n.i.|nif|"
	 "numéro dni|numero dni",
	 LX_IDCTX, ID(ES_DNI) | ID(PT_NIF)},
	{"nie|número de identidad de extranjero|número de extranjero|"
	 "tarjeta de residencia",
	 LX_IDCTX, ID(ES_NIE)},
	{"codice fiscale|cod. fiscale|cod fiscale|fiscal code|"
	 "italian fiscal code|code fiscal italien",
	 LX_IDCTX, ID(IT_CF)},
	{"sozialversicherungsnummer|svnr|sv-nummer|versicherungsnummer",
	 LX_IDCTX, ID(AT_SVNR) | ID(FR_NIR)},
	{"número de contribuinte|numero de contribuinte|contribuinte|nipc",
	 LX_IDCTX, ID(PT_NIF)},
	{"henkilötunnus|hetu|finnish personal identity code|"
	 "personal identity code|sosiaaliturvatunnus",
	 LX_IDCTX, ID(FI_HETU)},
	{"cpr|cpr-nummer|cpr number|cpr-nr|personnummer (dk)|"
	 "danish personal number",
	 LX_IDCTX, ID(DK_CPR)},
	{"pps|ppsn|pps number|ppsn number|personal public service number|"
	 "personal public service",
	 LX_IDCTX, ID(IE_PPS)},
	/* generic words for an identifier: count only right before it */
	{"id|identifier|identifiant|identificador|identificativo|"
	 "identificación|identificatie|kennung|kennnummer|nummer|numéro|numero|"
	 "número|nr|nr.|no.|n°|nº|codice|código|code|documento|document|dokument|"
	 "ausweis|ausweisnummer|id-nummer|id number|identification number|"
	 "identificatienummer|numéro d'identification|"
	 "número de identificación|numero identificativo|personal number|"
	 "personalausweis|personalnummer|id on file|dossier|matricule|"
	 "matricola|registration number|identity number|identiteitsnummer|"
	 "numéro d'identité|numero d'identità|número de identidad",
	 LX_IDCTX, NID_ALL},

	/* ---- what numbers are when they are not personal data ---- */
	{"order|order #|order no|order number|commande|n° de commande|"
	 "numéro de commande|bestellung|bestellnummer|auftrag|auftragsnummer|"
	 "ordine|numero d'ordine|pedido|número de pedido|bestelling|"
	 "ordernummer|bestelnummer|tracking|tracking number|sendungsnummer|"
	 "suivi|numéro de suivi|spedizione|tracciamento|seguimiento|"
	 "track|build|version|versione|versión|release|ticket|issue|case|"
	 "incident|sku|invoice|inv|facture|rechnung|rechnungsnummer|fattura|"
	 "factura|factuur|reference|ref|réf|référence|referenz|riferimento|"
	 "referencia|referentie|port|pid|session|transaction|txn|serial|"
	 "serial number|serienummer|numéro de série|seriennummer|"
	 "numero di serie|número de serie|batch|lot|kundennummer|"
	 "customer number|numéro client|numero cliente|número de cliente|"
	 "klantnummer|account number|kontonummer|request|requests|job|commit|"
	 "pull request|quote|devis|angebot|preventivo|presupuesto|offerte|"
	 "amount|montant|betrag|importo|importe|bedrag|price|prix|preis|"
	 "prezzo|precio|prijs|eur|usd|gbp|chf|isbn|issn|doi|lat|lon|"
	 "latitude|longitude|timestamp|epoch|hash|checksum|uuid|guid|"
	 "changelog|vorgang|dossiernummer|aktenzeichen|zendingnummer|"
	 "expediente|pratica|protocollo|bon de livraison|lieferschein",
	 LX_NEGCTX, 0},

	/* ---- phones ---- */
	{"phone|telephone|téléphone|telefon|telefono|teléfono|telefoon|tel|"
	 "tél|tel.|tél.|mobile|mobil|mobiel|cell|cellphone|cellulare|"
	 "cellulaire|portable|handy|handynummer|móvil|movil|celular|fax|"
	 "call|calls|rufen|rufen sie|anrufen|ruf|appeler|appelez|rappelez|"
	 "rappeler|joindre|chiamare|chiama|richiama|richiamare|llamar|llama|"
	 "llame|bellen|bel|gsm|numéro de téléphone|telefonnummer|"
	 "numero di telefono|número de teléfono|telefoonnummer|"
	 "mobile number|phone number|mobiel nummer|mobiele nummer|numéro de mobile|"
	 "numéro de portable|numero di cellulare|número de móvil|número de teléfono|"
	 "handy-nummer|mobile phone|phone no|tel no|tel. no|mobilnummer|mobielnummer|"
	 "numéro de portable|numero di cellulare|número de móvil|"
	 "contact number|reach|erreichen|erreichbar|raggiungere|"
	 "contacter|contattare|contactar|whatsapp|sms|text|ring|landline|"
	 "festnetz|fisso|fijo|vaste lijn|hotline|helpline|cellulaire|"
	 "llámame|llamame|llámeme|chiamami|chiamatemi|appelle-moi|"
	 "appelez-moi|ruf mich an|rufen sie mich an|bel me|bel mij|"
	 "call me|ring me|text me|contact me|joignable|telefone|"
	 "telemóvel|telemovel|telefonu|numer telefonu|komórka|komorka|"
	 "mobiltelefon|mobilnummer|telefonnummer|tfn|tlf|cel|"
	 "numero di cellulare|número de celular|mobile no|mob|mob.",
	 LX_PHONECTX, 0},

	/* ---- cards and bank accounts ---- */
	{"card|carte|karte|kreditkarte|carta|tarjeta|kaart|creditcard|"
	 "credit card|debit card|carte bancaire|carte de crédit|cb|visa|"
	 "mastercard|amex|american express|pan|kartennummer|numéro de carte|"
	 "numero di carta|número de tarjeta|kaartnummer|carta di credito|"
	 "tarjeta de crédito|bankkaart|girocard|ec-karte|maestro",
	 LX_CARDCTX, 0},
	{"iban|bic|swift|rib|bankverbindung|coordonnées bancaires|"
	 "coordinate bancarie|bankgegevens|cuenta|rekeningnummer|"
	 "rekening|compte|conto|bankkonto",
	 LX_IBANCTX, 0},

	/* ---- birth ---- */
	{"born|born on|born in|was born|date of birth|birth date|birthdate|"
	 "dob|d.o.b.|d.o.b|birthday|date de naissance|naissance|né le|née le|"
	 "né en|née en|est né|est née|né(e)|geboren|geboren am|geb.|"
	 "geburtsdatum|geburtstag|geburtsjahr|data di nascita|nascita|"
	 "nato il|nata il|è nato|è nata|nato a|nata a|nato nel|nata nel|"
	 "fecha de nacimiento|nacimiento|nacido|nacida|nació|nacido el|"
	 "nacida el|f. nac.|fecha nac.|geboren op|geboortedatum|geb|"
	 "geboortejaar|date naiss.|birth",
	 LX_DOB, 0},

	/* ---- months, for dates written in words ---- */
	{"january|jan|janvier|janv|januar|jänner|gennaio|enero|januari",
	 LX_MONTH, 1},
	{"february|feb|février|févr|fevr|februar|feber|febbraio|febrero|"
	 "februari", LX_MONTH, 2},
	{"march|mar|mars|märz|marz|marzo|maart|mrt", LX_MONTH, 3},
	{"april|apr|avril|avr|aprile|abril", LX_MONTH, 4},
	{"may|mai|maggio|mayo|mei", LX_MONTH, 5},
	{"june|jun|juin|juni|giugno|junio", LX_MONTH, 6},
	{"july|jul|juillet|juil|juli|luglio|julio", LX_MONTH, 7},
	{"august|aug|août|aout|agosto|augustus", LX_MONTH, 8},
	{"september|sep|sept|septembre|settembre|septiembre|setiembre",
	 LX_MONTH, 9},
	{"october|oct|octobre|oktober|okt|ottobre|octubre", LX_MONTH, 10},
	{"november|nov|novembre|noviembre", LX_MONTH, 11},
	{"december|dec|décembre|déc|dezember|dez|dicembre|diciembre",
	 LX_MONTH, 12},

	/* ---- protective markings ---- */
	{"tlp:red|tlp:amber|tlp:amber+strict|tlp: red|tlp: amber|tlp red|"
	 "tlp amber|tlp:amber strict|tlp-red|tlp-amber|"
	 "restreint ue|restreint ue/eu restricted|eu restricted|ue restreint|"
	 "restreint-ue|confidentiel ue|eu confidential|"
	 "confidentiel ue/eu confidential|secret ue|secret ue/eu secret|"
	 "diffusion restreinte|diffusion limitée|confidentiel défense|"
	 "confidentiel-défense|secret défense|secret-défense|"
	 "très secret défense|très secret|"
	 "vs-nur für den dienstgebrauch|vs - nur für den dienstgebrauch|"
	 "vs nur für den dienstgebrauch|nur für den dienstgebrauch|"
	 "nur fuer den dienstgebrauch|vs-nfd|vs nfd|vs-vertraulich|"
	 "vs vertraulich|official-sensitive|official sensitive|"
	 "official - sensitive|uk official-sensitive|nato restricted|"
	 "nato confidential|nato secret|cosmic top secret|nato-restricted|"
	 "riservatissimo|difusión limitada|difusion limitada|"
	 "departementaal vertrouwelijk|dep. vertrouwelijk|"
	 "stg. confidentieel|stg confidentieel|stg. geheim|stg geheim|"
	 "stg. zeer geheim|stg zeer geheim",
	 LX_MARKING, 0},
	/* single words that are markings only when written as one */
	{"riservato|segreto|segretissimo|reservado|geheim|streng geheim|"
	 "top secret|confidentiel|vertrouwelijk|diffusione limitata",
	 LX_MARKING | LX_UPPER, 0},

	/* ---- credential prefixes (verified case-sensitively) ---- */
	{"akia|asia|abia|acca|agpa|aida|aroa|aipa|anpa|anva|apka|"
	 "ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|xoxb-|xoxp-|xoxa-|xoxr-|"
	 "xoxs-|xoxe-|sk-|eyj|-----begin",
	 LX_CRED | LX_ANYEND, 0},
	{"password|passwd|pwd|pass|passphrase|secret|client_secret|"
	 "client-secret|secret_key|secret-key|secretkey|api_key|api-key|"
	 "apikey|api key|access_key|access-key|access key|access_token|"
	 "auth_token|token|bearer|private_key|mot de passe|mdp|passwort|"
	 "kennwort|wachtwoord|contraseña|parola d'ordine|clave|clé|"
	 "schlüssel|sleutel|chiave|credentials|secret access key|"
	 "aws_secret_access_key|db_password|database_password",
	 LX_SECRET | LX_ANYSTART, 0},

	/* ---- ICD-10 codes need a word saying they are codes ---- */
	{"icd|icd-10|icd10|icd-10-gm|icd-10-cm|cim|cim-10|cim10|"
	 "diagnosis code|diagnostic code|code diagnostic|diagnosecode|"
	 "diagnoseschlüssel|codice diagnosi|código diagnóstico|code cim|"
	 "diagnose|diagnosis|diagnosi|diagnóstico|diagnostic|dx|diagnosed|"
	 "diagnostiziert|diagnostiqué|diagnostiquée|diagnosticato|"
	 "diagnosticata|diagnosticado|diagnosticada|gediagnosticeerd|"
	 "diagnosestellung|code",
	 LX_ICDCTX, 0},

	/* ---- technical phrases that look medical ---- */
	{"health check|healthcheck|health-check|health checks|"
	 "virus scan|virus scanner|virus scanning|antivirus|anti-virus|"
	 "computer virus|malware infection|stroke width|stroke-width|"
	 "stroke color|stroke colour|brush stroke|pen stroke|key stroke|"
	 "stroke of luck|economic depression|great depression|"
	 "tropical depression|asset seizure|seizure of assets|"
	 "infection vector|bug fever|market crash|cancer of corruption|"
	 "system failure|heart of the matter|rash decision|"
	 "headache for|is a headache|a real headache|kopfschmerzen bereiten|"
	 "miscarriage of justice|bipolar transistor|bipolar junction|"
	 "bipolar transistors|bipolar stepper",
	 LX_HEALTH_NEG, 0},
};
const size_t lex_builtin_count = sizeof(lex_builtin) / sizeof(lex_builtin[0]);
