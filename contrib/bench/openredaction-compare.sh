#!/bin/sh
# Reference comparison with the npm package openredaction (issue 3).
#
#   contrib/bench/openredaction-compare.sh [RUNS]
#
# Installs openredaction into a temporary directory (nothing is written
# to the repository), then:
#   - accuracy: runs openredaction-compare.js over ../shared/corpus/dev.jsonl
#     and scores its predictions, and ./sovgate's, with score.py;
#   - speed: one process on one CPU (taskset -c 0) over the decompressed
#     bench corpus. openredaction is timed inside node around the
#     parse+extract+detect loop (no npm/node start-up, no file read);
#     sovgate is the wall time of `sovgate classify --jsonl`, best of RUNS
#     (default 5). MB are 10^6 bytes of request bodies.
#
# Texts given to openredaction: every string under the body's messages,
# input, prompt and suffix, one detect() call each, default options.
# Type mapping (the rest, e.g. NAME, DATE, ZIP_CODE_US, tracking numbers,
# is dropped):
#   EMAIL -> email; PHONE, PHONE_UK, PHONE_UK_MOBILE, PHONE_US,
#   PHONE_INTERNATIONAL -> phone; IBAN, UK_BANK_ACCOUNT_IBAN -> iban;
#   CREDIT_CARD -> payment_card; DATE_OF_BIRTH -> date_of_birth;
#   IPV4, IPV6 -> ip_address; SPANISH_DNI, ITALIAN_FISCAL_CODE, DUTCH_BSN,
#   FRENCH_SOCIAL_SECURITY, GERMAN_TAX_ID, POLISH_PESEL, NHS_NUMBER,
#   NATIONAL_INSURANCE_UK -> national_id.{es_dni,it_fiscal_code,nl_bsn,
#   fr_nir,de_tax_id,pl_pesel,uk_nhs_number,uk_nino}; other personal
#   national IDs (SSN, ROMANIAN_CNP, ...) -> national_id; AWS_ACCESS_KEY,
#   GITHUB_TOKEN, JWT_TOKEN, OPENAI_API_KEY, PRIVATE_KEY/SSH_PRIVATE_KEY,
#   SLACK_TOKEN -> credential.{aws_access_key,github_token,jwt,
#   openai_api_key,private_key,slack_token}; other secrets ->
#   credential.<type>; ALLERGY_INFO, BLOOD_TYPE, DRUG_DOSAGE, ICD10_CODE
#   -> health. Nothing maps to marking. The full table is in the .js.
set -e
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
corpus=$top/../shared/corpus
runs=${1:-5}
work=${TMPDIR:-/tmp}/openredaction-compare.$$
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null && npm install --silent openredaction >/dev/null)
export NODE_PATH="$work/node_modules"
echo "openredaction $(node -p 'require(process.env.NODE_PATH + "/openredaction/package.json").version')," \
     "node $(node --version)"

node "$here/openredaction-compare.js" "$corpus/dev.jsonl" > "$work/or.jsonl"
echo "== openredaction on dev.jsonl"
python3 "$corpus/score.py" "$corpus/dev.jsonl" "$work/or.jsonl"
if [ -x "$top/sovgate" ]; then
    "$top/sovgate" classify --jsonl "$corpus/dev.jsonl" 2>/dev/null > "$work/sg.jsonl"
    echo "== sovgate on dev.jsonl"
    python3 "$corpus/score.py" "$corpus/dev.jsonl" "$work/sg.jsonl"
fi

gzip -dc "$corpus/bench.jsonl.gz" > "$work/bench.jsonl"
echo "== throughput, one CPU"
taskset -c 0 node "$here/openredaction-compare.js" --time "$work/bench.jsonl"
if [ -x "$top/sovgate" ]; then
    bytes=$(python3 -c 'import json,sys; print(sum(len(json.loads(l)["body"].encode()) for l in open(sys.argv[1])))' "$work/bench.jsonl")
    best=
    for _ in $(seq "$runs"); do
        s=$(date +%s%N)
        taskset -c 0 "$top/sovgate" classify --jsonl "$work/bench.jsonl" >/dev/null 2>&1
        e=$(date +%s%N)
        t=$(( (e - s) / 1000 ))
        [ -z "$best" ] || [ "$t" -lt "$best" ] && best=$t
    done
    awk -v b="$bytes" -v t="$best" -v n="$runs" 'BEGIN {
        printf "sovgate: whole process, best of %d: %.3f s = %.1f MB/s\n",
               n, t / 1e6, b / t }'
fi
