// Runs openredaction (npm) over a corpus in the shape of
// ../shared/corpus/*.jsonl and prints one prediction line a record, in the
// format of `sovgate classify --jsonl`, for score.py.  See
// openredaction-compare.sh for what is measured and why.
//
//   node openredaction-compare.js CORPUS.jsonl            predictions on stdout
//   node openredaction-compare.js --time CORPUS.jsonl     throughput on stderr
//
// Texts: every string value found under the body's messages, input, prompt
// and suffix (content strings, content parts' text, tool-call arguments,
// embedding inputs, FIM prompt/suffix), each passed to detect() on its own.
// openredaction runs with its defaults (new OpenRedaction()).
// Each distinct (type, value) counts once per request.
"use strict";
const fs = require("fs");
const { OpenRedaction } = require("openredaction");

// openredaction type -> sovgate finding type. Unlisted types are dropped.
const MAP = {
  EMAIL: "email",
  PHONE: "phone", PHONE_UK: "phone", PHONE_UK_MOBILE: "phone",
  PHONE_US: "phone", PHONE_INTERNATIONAL: "phone",
  IBAN: "iban", UK_BANK_ACCOUNT_IBAN: "iban",
  CREDIT_CARD: "payment_card",
  DATE_OF_BIRTH: "date_of_birth",
  IPV4: "ip_address", IPV6: "ip_address",
  SPANISH_DNI: "national_id.es_dni",
  ITALIAN_FISCAL_CODE: "national_id.it_fiscal_code",
  DUTCH_BSN: "national_id.nl_bsn",
  FRENCH_SOCIAL_SECURITY: "national_id.fr_nir",
  GERMAN_TAX_ID: "national_id.de_tax_id",
  POLISH_PESEL: "national_id.pl_pesel",
  NHS_NUMBER: "national_id.uk_nhs_number",
  NATIONAL_INSURANCE_UK: "national_id.uk_nino",
  AWS_ACCESS_KEY: "credential.aws_access_key",
  GITHUB_TOKEN: "credential.github_token",
  JWT_TOKEN: "credential.jwt",
  OPENAI_API_KEY: "credential.openai_api_key",
  PRIVATE_KEY: "credential.private_key",
  SSH_PRIVATE_KEY: "credential.private_key",
  SLACK_TOKEN: "credential.slack_token",
  ALLERGY_INFO: "health", BLOOD_TYPE: "health",
  DRUG_DOSAGE: "health", ICD10_CODE: "health",
};
// Other personal national IDs and secrets: right category, no sovgate subtype.
for (const t of ["SSN", "CANADIAN_SIN", "SIN_CA", "ROMANIAN_CNP",
  "CZECH_NATIONAL_ID", "BULGARIAN_PERSONAL_NUMBER", "HUNGARIAN_PERSONAL_ID",
  "SERBIAN_JMBG", "TURKEY_ID", "SOUTH_AFRICA_ID", "SINGAPORE_NRIC",
  "ISRAEL_ID", "INDIAN_AADHAAR", "BRAZILIAN_CPF", "MEXICAN_CURP",
  "SOUTH_KOREAN_RRN", "JAPANESE_MY_NUMBER", "RUSSIAN_SNILS", "CHILE_RUT",
  "ARGENTINA_DNI", "AUSTRALIAN_TFN"]) MAP[t] = "national_id";
for (const t of ["AWS_SECRET_KEY", "AZURE_STORAGE_KEY", "GOOGLE_API_KEY",
  "FIREBASE_API_KEY", "STRIPE_API_KEY", "TWILIO_API_KEY", "SENDGRID_API_KEY",
  "MAILGUN_API_KEY", "HEROKU_API_KEY", "NPM_TOKEN", "PYPI_TOKEN",
  "BEARER_TOKEN", "OAUTH_TOKEN", "OAUTH_CLIENT_SECRET", "GENERIC_API_KEY",
  "GENERIC_SECRET", "SLACK_WEBHOOK", "DATABASE_CONNECTION", "URL_WITH_AUTH",
  "DOCKER_AUTH", "KUBERNETES_SECRET", "GCP_SERVICE_ACCOUNT"])
  MAP[t] = "credential." + t.toLowerCase();

function walk(v, out) {
  if (typeof v === "string") out.push(v);
  else if (Array.isArray(v)) for (const x of v) walk(x, out);
  else if (v && typeof v === "object") for (const x of Object.values(v)) walk(x, out);
}

async function classify(redactor, body) {
  let b;
  try { b = JSON.parse(body); } catch { return {}; }
  const texts = [];
  for (const k of ["messages", "input", "prompt", "suffix"])
    if (b && k in b) walk(b[k], texts);
  const seen = new Set(), findings = {};
  for (const t of texts) {
    for (const d of (await redactor.detect(t)).detections) {
      const s = MAP[d.type];
      if (!s || seen.has(s + "\0" + d.value)) continue;
      seen.add(s + "\0" + d.value);
      findings[s] = (findings[s] || 0) + 1;
    }
  }
  return Object.fromEntries(Object.entries(findings).sort());
}

(async () => {
  const timing = process.argv[2] === "--time";
  const file = process.argv[timing ? 3 : 2];
  const recs = fs.readFileSync(file, "utf8").split("\n").filter(Boolean)
    .map((l) => JSON.parse(l));
  const redactor = new OpenRedaction();
  if (!timing) {
    for (const r of recs) {
      const findings = await classify(redactor, r.body);
      process.stdout.write(JSON.stringify(
        { id: r.id, level: null, action: null, findings }) + "\n");
    }
    return;
  }
  let bytes = 0;
  for (const r of recs) bytes += Buffer.byteLength(r.body);
  const t0 = process.hrtime.bigint();
  for (const r of recs) await classify(redactor, r.body);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.error(`openredaction: ${recs.length} records, ${(bytes / 1e6).toFixed(2)} MB `
    + `of bodies in ${s.toFixed(2)} s = ${(bytes / 1e6 / s).toFixed(3)} MB/s`);
})();
