#!/bin/bash
# contrib/demo.sh - quick start #1: install what is missing, build, start a
# demo gateway in front of five example backends served by a local mock
# upstream, send a few sample requests and show the decisions.
#
#   contrib/demo.sh          install (as root, Debian 12), build, start, show
#   contrib/demo.sh stop     stop the demo's gateway and mock upstream
#   contrib/demo.sh status   are they running?
#
# Everything the demo writes (database, fingerprint key, pids, logs, what
# the mock upstreams received) goes to <checkout>/demo/, which git ignores.
# Ports: gateway 127.0.0.1:8080, admin 127.0.0.1:9464, mock backends
# 127.0.0.1:8101-8105. Nothing leaves this machine.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEMO="$ROOT/demo"
CONF="$ROOT/contrib/demo/sovgate.yaml"
BIN="$ROOT/sovgate"
GW=127.0.0.1:8080
ADMIN=127.0.0.1:9464
CLIENT_KEY=demo-key-claims
HR_KEY=demo-key-hr
# The backends' credentials: the gateway reads them from its environment
# (backends/*.yaml name the variables), the mock checks them.
export MISTRAL_API_KEY=demo-mistral-key
export AZURE_AI_KEY=demo-azure-key
export DEMO_BEDROCK_KEY=demo-bedrock-key
export DEMO_VERTEX_TOKEN=demo-vertex-token
export ONPREM_VLLM_KEY=demo-onprem-key

PKGS="build-essential autoconf automake libtool pkg-config libevent-dev
libssl-dev libyaml-dev libjansson-dev libsqlite3-dev check libpcre2-dev
sqlite3 curl python3"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

pid_alive() { # FILE WORD: the pid in FILE runs and its command has WORD
	local pid
	[ -f "$1" ] || return 1
	pid=$(cat "$1" 2>/dev/null) || return 1
	[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2"
}

stop_one() { # FILE WORD
	local pid i
	if pid_alive "$1" "$2"; then
		pid=$(cat "$1")
		kill -TERM "$pid" 2>/dev/null || true
		for i in $(seq 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
		echo "stopped $2 (pid $pid)"
	fi
	rm -f "$1"
}

do_stop() {
	stop_one "$DEMO/sovgate.pid" sovgate
	stop_one "$DEMO/mock.pid" mock-upstream
}

do_status() {
	local rc=0
	if pid_alive "$DEMO/sovgate.pid" sovgate; then
		echo "gateway: running (pid $(cat "$DEMO/sovgate.pid")) on $GW"
	else
		echo "gateway: not running"; rc=1
	fi
	if pid_alive "$DEMO/mock.pid" mock-upstream; then
		echo "mock upstream: running (pid $(cat "$DEMO/mock.pid")) on 127.0.0.1:8101-8105"
	else
		echo "mock upstream: not running"; rc=1
	fi
	return $rc
}

install_deps() {
	local missing="" p llhttp=""
	for p in $PKGS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing="$missing $p"
	done
	# llhttp: Debian 12 ships its C sources in node-llhttp, Debian 13 a
	# library in libllhttp-dev; configure takes either.
	if [ ! -f /usr/share/llhttp/llhttp.c ] &&
	    ! pkg-config --exists libllhttp 2>/dev/null; then
		llhttp=yes
	fi
	[ -z "$missing" ] && [ -z "$llhttp" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		die "missing packages:$missing${llhttp:+ node-llhttp (or libllhttp-dev)}; run this as root, or: sudo apt-get install$missing${llhttp:+ node-llhttp}"
	fi
	say "installing:$missing${llhttp:+ llhttp}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	if [ -n "$llhttp" ]; then
		if apt-cache show node-llhttp >/dev/null 2>&1; then
			missing="$missing node-llhttp"
		else
			missing="$missing libllhttp-dev"
		fi
	fi
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing
}

build() {
	cd "$ROOT"
	if [ ! -f Makefile ]; then
		say "configuring"
		[ -x configure ] || autoreconf -fi
		./configure -q
	fi
	say "building"
	make -j"$(nproc)" >"$DEMO/build.log" 2>&1 || {
		tail -30 "$DEMO/build.log"; die "build failed: see $DEMO/build.log"; }
	[ -x "$BIN" ] || die "no $BIN after make"
}

port_busy() { # HOST:PORT
	(exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null
}

wait_port() { # HOST:PORT SECONDS PIDFILE WORD
	local i
	for i in $(seq $(($2 * 10))); do
		port_busy "$1" && return 0
		pid_alive "$3" "$4" || return 1
		sleep 0.1
	done
	return 1
}

start() {
	local p
	do_stop >/dev/null
	for p in $GW $ADMIN 127.0.0.1:8101 127.0.0.1:8102 127.0.0.1:8103 \
	    127.0.0.1:8104 127.0.0.1:8105; do
		port_busy "$p" && die "port $p is in use by another program; free it and run again"
	done
	say "checking the demo configuration"
	"$BIN" -c "$CONF" check || die "sovgate check found problems (above)"

	say "starting the mock upstream (five backends on 127.0.0.1:8101-8105)"
	rm -f "$DEMO/mock.ports"
	python3 "$ROOT/contrib/mock-upstream.py" \
	    --backend "mistral-eu=8101,bearer=$MISTRAL_API_KEY" \
	    --backend "azure-sweden=8102,api_key=$AZURE_AI_KEY" \
	    --backend "bedrock-paris=8103,bearer=$DEMO_BEDROCK_KEY" \
	    --backend "vertex-netherlands=8104,bearer=$DEMO_VERTEX_TOKEN" \
	    --backend "onprem-vllm=8105,bearer=$ONPREM_VLLM_KEY" \
	    --chunk-delay 0.15 --record "$DEMO/upstream.jsonl" \
	    --ready-file "$DEMO/mock.ports" \
	    </dev/null >"$DEMO/mock.log" 2>&1 &
	echo $! >"$DEMO/mock.pid"
	wait_port 127.0.0.1:8105 10 "$DEMO/mock.pid" mock-upstream ||
		{ cat "$DEMO/mock.log"; die "the mock upstream did not start"; }

	cat >"$DEMO/env" <<EOF
export MISTRAL_API_KEY=$MISTRAL_API_KEY AZURE_AI_KEY=$AZURE_AI_KEY
export DEMO_BEDROCK_KEY=$DEMO_BEDROCK_KEY DEMO_VERTEX_TOKEN=$DEMO_VERTEX_TOKEN
export ONPREM_VLLM_KEY=$ONPREM_VLLM_KEY
EOF
	say "starting the gateway on $GW (log: demo/sovgate.log)"
	"$BIN" -c "$CONF" serve </dev/null >"$DEMO/sovgate.log" 2>&1 &
	echo $! >"$DEMO/sovgate.pid"
	wait_port $GW 15 "$DEMO/sovgate.pid" sovgate ||
		{ tail -20 "$DEMO/sovgate.log"; die "the gateway did not start"; }
}

hdr() { # FILE NAME
	{ grep -i "^$2:" "$1" || true; } | head -1 | cut -d: -f2- |
		tr -d '\r' | sed 's/^ *//'
}

sample() { # TITLE KEY JSON [extra curl args]
	local title=$1 key=$2 body=$3 h="$DEMO/last.headers" b="$DEMO/last.body"
	shift 3
	printf '\n\033[1m%s\033[0m\n' "$title"
	printf '  request: %s\n' "$body"
	curl -sS -o "$b" -D "$h" --max-time 30 "http://$GW/v1/chat/completions" \
	    -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
	    "$@" -d "$body" || { echo "  (curl failed)"; return 0; }
	printf '  HTTP %s  X-Sovgate-Decision: %s\n' \
	    "$(head -1 "$h" | awk '{print $2}')" "$(hdr "$h" X-Sovgate-Decision)"
	local be
	be=$(hdr "$h" X-Sovgate-Backend)
	printf '           X-Sovgate-Level: %s   X-Sovgate-Backend: %s\n' \
	    "$(hdr "$h" X-Sovgate-Level)" "${be:-(none: not forwarded)}"
	python3 - "$b" <<'EOF'
import json, sys
raw = open(sys.argv[1], encoding="utf-8", errors="replace").read()
try:
    d = json.loads(raw)
except ValueError:
    # a stream: show the text it carried
    text = ""
    for line in raw.splitlines():
        if line.startswith("data: {"):
            for c in json.loads(line[6:]).get("choices", []):
                text += (c.get("delta") or {}).get("content") or ""
    print("  answer (streamed): " + text)
    sys.exit(0)
if "error" in d:
    e = d["error"]
    print("  refused: %s (%s): %s" % (e.get("type"), e.get("code"), e.get("message")))
else:
    print("  answer: " + d["choices"][0]["message"]["content"])
EOF
}

samples() {
	say "sample requests (client claims-app, key $CLIENT_KEY)"
	sample "1. a public question -> the preferred vendor" "$CLIENT_KEY" \
	    '{"model":"mistral-large-latest","messages":[{"role":"user","content":"What is the capital of France?"}]}'
	sample "2. an IBAN -> confidential: EU-operated, no CLOUD Act" "$CLIENT_KEY" \
	    '{"model":"mistral-large-latest","messages":[{"role":"user","content":"Refund IBAN FR76 3000 6000 0112 3456 7890 189 please"}]}'
	sample "3. a health term -> restricted: our own hardware only" "$CLIENT_KEY" \
	    '{"model":"mistral-large-latest","messages":[{"role":"user","content":"Summarise: the patient was diagnosed with type 2 diabetes and started on metformin."}]}'
	sample "4. an AWS access key -> denied, nothing forwarded" "$CLIENT_KEY" \
	    '{"model":"mistral-large-latest","messages":[{"role":"user","content":"why does export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE fail?"}]}'
	sample "5. an email address, streamed -> internal: data in the EEA" "$CLIENT_KEY" \
	    '{"model":"mistral-small-latest","stream":true,"messages":[{"role":"user","content":"Draft a reply to jean.dupont@example.fr"}]}' -N
	sample "6. hr-portal has a floor: confidential, whatever it sends" "$HR_KEY" \
	    '{"model":"mistral-large-latest","messages":[{"role":"user","content":"What is the capital of France?"}]}'
}

show_log() {
	say "the decision log: sovgate log query --since $SINCE --format table"
	"$BIN" -c "$CONF" log query --since "$SINCE" --format table ||
		echo "(log query failed)"
	say "what each mock backend actually received (demo/upstream.jsonl)"
	python3 - "$DEMO/upstream.jsonl" "$MOCK_LINES" <<'EOF'
import collections, json, sys
n = collections.Counter()
models = {}
try:
    for i, line in enumerate(open(sys.argv[1], encoding="utf-8")):
        if i < int(sys.argv[2]):
            continue   # an earlier run's
        r = json.loads(line)
        n[r["mock"]] += 1
        models.setdefault(r["mock"], set()).add(str((r.get("json") or {}).get("model")))
except FileNotFoundError:
    pass
for b in ["mistral-eu", "azure-sweden", "bedrock-paris", "vertex-netherlands", "onprem-vllm"]:
    print("  %-20s %d request(s)%s" % (b, n[b], "  model ids: " + ", ".join(sorted(models[b])) if b in models else ""))
EOF
}

hints() {
	say "try it yourself"
	cat <<EOF
  curl -s http://$GW/v1/chat/completions -H 'Authorization: Bearer $CLIENT_KEY' \\
    -H 'Content-Type: application/json' -i \\
    -d '{"model":"mistral-large-latest","messages":[{"role":"user","content":"Refund IBAN FR76 3000 6000 0112 3456 7890 189"}]}'
  curl -s http://$GW/v1/models -H 'Authorization: Bearer $CLIENT_KEY'
  . $DEMO/env    # the backends' demo credentials, for explain and policy test
  echo '{"model":"mistral-large-latest","messages":[{"role":"user","content":"né le 12/03/1981, NIR 1 81 03 75 112 055 95"}]}' |
    $BIN -c $CONF explain
  $BIN -c $CONF policy test
  $BIN -c $CONF log query --level confidential --format table
  curl -s http://$ADMIN/metrics | grep sovgate_requests_total

  logs: $DEMO/sovgate.log, $DEMO/mock.log; upstream requests: $DEMO/upstream.jsonl
  stop the demo: contrib/demo.sh stop
EOF
}

case "${1:-start}" in
stop)
	do_stop
	;;
status)
	do_status
	;;
start)
	mkdir -p "$DEMO"
	SINCE=$(date -u +%Y-%m-%dT%H:%M:%SZ)
	MOCK_LINES=0
	if [ -f "$DEMO/upstream.jsonl" ]; then
		MOCK_LINES=$(wc -l <"$DEMO/upstream.jsonl")
	fi
	install_deps
	build
	start
	samples
	show_log
	hints
	;;
*)
	echo "usage: contrib/demo.sh [start|stop|status]" >&2
	exit 2
	;;
esac
