#!/bin/sh
# e2e_log.sh - the decision log end to end: a real gateway logs requests,
# `log verify` accepts the log, someone edits the database with sqlite3,
# and `log verify` fails naming the edited (or the deleted) row. Also
# `log query` filters and `log find-value` against the gateway's own
# fingerprints, and `log prune`.
#
# Only requests that are decided without an upstream are sent (denials
# and bad bodies are logged too), so no mock server is needed.
# Needs curl and the sqlite3 shell; skipped (77) without them.
set -u

BIN=${SOVGATE_BIN:-./sovgate}
SRC=${SOVGATE_SRCDIR:-.}
command -v curl >/dev/null 2>&1 || { echo "skip: no curl"; exit 77; }
command -v sqlite3 >/dev/null 2>&1 || { echo "skip: no sqlite3"; exit 77; }
[ -x "$BIN" ] || { echo "skip: no $BIN"; exit 77; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/sovgate-e2e-log.XXXXXX") || exit 99
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok    $*"; }

if command -v python3 >/dev/null 2>&1; then
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
else
	port=$((20000 + $$ % 30000))
fi
key=e2e-log-client-key
ksha=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
mkdir "$dir/backends"
cp "$SRC"/backends/*.yaml "$dir/backends/"
cp "$SRC/policy/hospital.yaml" "$dir/policy.yaml"
cat > "$dir/sovgate.yaml" <<EOC
listen: "127.0.0.1:$port"
user: root
admin_listen: off
workers: 1
policy: policy.yaml
backends: backends/
log:
  database: decisions.db
  durability: strict
  fingerprint_key_file: fingerprint.key
clients:
  - {name: e2e-app, key_sha256: "$ksha"}
EOC
db="$dir/decisions.db"
S() { "$BIN" -c "$dir/sovgate.yaml" "$@"; }

# exec'd directly (not through S) so that $! is the gateway itself
"$BIN" -c "$dir/sovgate.yaml" serve > "$dir/gw.log" 2>&1 &
pid=$!
i=0
until grep -q "ready on" "$dir/gw.log" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "gateway did not start:"; cat "$dir/gw.log"; exit 99
	fi
	sleep 0.1
done

post() {
	curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" \
	    -H 'Content-Type: application/json' --data-binary "$1" \
	    "http://127.0.0.1:$port/v1/chat/completions"
}
msg() { printf '{"model":"%s","messages":[{"role":"user","content":"%s"}]}' "$1" "$2"; }

# 1-3: a credential is denied whatever the model
for n in 1 2 3; do
	c=$(post "$(msg mistral-large-latest "deploy with AKIAIOSFODNN7EXAMPLE take $n")")
	[ "$c" = 403 ] || fail "credential request $n: HTTP $c, expected 403"
done
# 4: an IBAN for a model no backend serves: denied, fingerprinted
c=$(post "$(msg no-such-model "refund FR76 3000 6000 0112 3456 7890 189 please")")
[ "$c" = 403 ] || fail "unknown model: HTTP $c, expected 403"
# 5: a bad body from a known client is logged as an error
c=$(post '{"model": "x", "messages": [')
[ "$c" = 400 ] || fail "bad body: HTTP $c, expected 400"

# Stop: the writer drains before exit.
kill -TERM "$pid"; wait "$pid"; pid=
[ -n "${E2E_LOG_DEBUG:-}" ] && { cat "$dir/gw.log"; ls -la "$dir"; sqlite3 "$db" "select * from events"; }

n=$(sqlite3 "$db" "SELECT group_concat(kind) FROM events")
[ "$n" = "start,stop" ] && ok "start and stop are recorded" || fail "events: $n"
out=$(S log verify); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q "rows verified (5 decisions"; then
	ok "verify accepts the untouched log: $out"
else
	fail "verify on the untouched log (exit $rc): $out"
fi

n=$(S log query --action deny --format csv | tail -n +2 | wc -l)
[ "$n" -eq 4 ] && ok "query --action deny: 4" || fail "query --action deny: $n rows"
n=$(S log query --type credential --format csv | tail -n +2 | wc -l)
[ "$n" -eq 3 ] && ok "query --type credential: 3" || fail "query --type credential: $n rows"
n=$(S log query --action error --since -1h --format csv | tail -n +2 | wc -l)
[ "$n" -eq 1 ] && ok "query --action error --since -1h: 1" || fail "query --action error: $n rows"
S log query --level nonsense --format table | grep -q "(0 decisions)" \
    && ok "query table" || fail "query table"
S log query --action sometimes >/dev/null 2>&1
[ $? -eq 2 ] && ok "bad filter is a usage error" || fail "bad filter exit"

id4=$(sqlite3 "$db" "SELECT id FROM decisions WHERE model = 'no-such-model'")
out=$(S log find-value "fr7630006000011234567890189" --format csv)
if echo "$out" | grep -q "$id4"; then ok "find-value finds the IBAN's decision"
else fail "find-value: $out"; fi
if sqlite3 "$db" .dump | grep -q "3000 6000\|30006000"; then
	fail "the IBAN is stored in the database"
else ok "the database does not hold the value"; fi

# Tamper: the responder's question must name the edited row.
# a self-contained copy (the WAL included) to restore between edits
sqlite3 "$db" ".backup '$dir/pristine.db'"
id3=$(sqlite3 "$db" "SELECT id FROM decisions WHERE seq = 3")
sqlite3 "$db" "UPDATE decisions SET action = 'allow', backend = 'mistral-eu' WHERE seq = 3"
out=$(S log verify); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q "seq 3 (decision $id3) was modified"; then
	ok "verify names the modified row"
else fail "verify after an edit (exit $rc): $out"; fi
S log prune --before -0s >/dev/null 2>&1
[ $? -eq 1 ] && ok "prune refuses a log that does not verify" || fail "prune on a broken log"

rm -f "$db-wal" "$db-shm"; cp "$dir/pristine.db" "$db"
id4=$(sqlite3 "$db" "SELECT id FROM decisions WHERE seq = 4")
sqlite3 "$db" "DELETE FROM decisions WHERE seq = 3"
out=$(S log verify); rc=$?
if [ $rc -eq 1 ] && echo "$out" | grep -q "seq 4 (decision $id4).*row seq 3 was deleted"; then
	ok "verify names the deleted row"
else fail "verify after a delete (exit $rc): $out"; fi

rm -f "$db-wal" "$db-shm"; cp "$dir/pristine.db" "$db"
out=$(S log prune --before -0s); rc=$?
[ $rc -eq 0 ] && ok "prune: $out" || fail "prune (exit $rc): $out"
out=$(S log verify); rc=$?
[ $rc -eq 0 ] && ok "the pruned log verifies: $out" || fail "verify after prune (exit $rc): $out"
n=$(sqlite3 "$db" "SELECT count(*) FROM events WHERE kind = 'prune'")
[ "$n" -eq 1 ] && ok "the prune is recorded" || fail "prune events: $n"
n=$(S log export | grep -c '"record":"event","seq":3,.*"kind":"prune"')
[ "$n" -eq 1 ] && ok "export has the prune event" || fail "export events: $n"

rm -f "$db" "$db-wal" "$db-shm"
S log query >/dev/null 2>&1
[ $? -eq 2 ] && ok "missing database: exit 2" || fail "missing database exit"

[ $fails -eq 0 ] || { echo "$fails failed"; exit 1; }
exit 0
