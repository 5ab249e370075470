#!/bin/bash
# proxy-bench.sh - sovgate against nginx as a reverse proxy, same machine,
# same upstream (an nginx server block answering a fixed chat completion).
#
#   contrib/bench/proxy-bench.sh [SOVGATE_BIN]
#
# Needs nginx (nginx-light) and wrk (apt-get install nginx-light wrk).
# Measures, for each proxy: requests/s at concurrency 32 (wrk -c32 -t2,
# 10 s), the median latency at concurrency 1 (wrk -c1 -t1, 10 s), and the
# RSS of sovgate holding 1,000 idle keep-alive connections. sovgate runs
# as shipped: classification on, durability strict, workers auto (one per
# core; SOVGATE_WORKERS=N to change). Everything listens on 127.0.0.1 and
# stops when the script ends.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
bin=${1:-$top/sovgate}
dur=${BENCH_SECONDS:-10}
work=$(mktemp -d /tmp/sovgate-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -s stop 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
command -v nginx >/dev/null || { echo "needs nginx: apt-get install nginx-light" >&2; exit 2; }
command -v wrk >/dev/null || { echo "needs wrk: apt-get install wrk" >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); NGX=$(free_port); SG=$(free_port); ADM=$(free_port)

mkdir -p "$work/nginx/logs" "$work/policy" "$work/backends"
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
error_log $work/nginx/logs/error.log warn;
pid $work/nginx/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  upstream up { server 127.0.0.1:$UP; keepalive 64; }
  server {
    listen 127.0.0.1:$UP;
    location / {
      default_type application/json;
      return 200 '{"id":"chatcmpl-bench","object":"chat.completion","model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}}';
    }
  }
  server {
    listen 127.0.0.1:$NGX;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGINX

key=bench-client-key
keyhash=$(printf %s "$key" | sha256sum | cut -d' ' -f1)
cat > "$work/sovgate.yaml" <<YAML
listen: 127.0.0.1:$SG
user: root
admin_listen: 127.0.0.1:$ADM
workers: ${SOVGATE_WORKERS:-auto}
policy: policy/
backends: backends/
log:
  database: $work/decisions.db
  durability: ${DURABILITY:-strict}
  fingerprint_key_file: $work/fp.key
clients:
  - {name: bench, key_sha256: "$keyhash"}
YAML
cat > "$work/backends/local.yaml" <<YAML
name: local
kind: openai
endpoint: http://127.0.0.1:$UP
operator: Bench Operator
operator_country: FR
data_countries: [FR]
hosting: self
key_custody: customer
retention: none
auth: {type: none}
models: {bench-model: bench-model}
YAML
cat > "$work/policy/bench.yaml" <<YAML
name: bench
levels: [public, internal, confidential]
classify:
  findings: {email: internal, iban: confidential, payment_card: confidential, national_id: confidential, credential: deny}
routes:
  public: {prefer: [local]}
  internal: {prefer: [local]}
  confidential: {prefer: [local]}
YAML
cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $key"
wrk.body = '{"model":"bench-model","messages":[{"role":"system","content":"You are a helpful assistant for the claims department."},{"role":"user","content":"Please summarise the following case for the weekly report: the customer called about a delayed refund, was told it would arrive within five working days, and asked for written confirmation. Draft a polite answer."}]}'
LUA

nginx -p "$work/nginx" -c "$work/nginx/nginx.conf"
"$bin" -c "$work/sovgate.yaml" serve > "$work/sovgate.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
	curl -s -o /dev/null "http://127.0.0.1:$SG/v1/models" && break
	sleep 0.1
done
curl -sf -o /dev/null -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
	-d '{"model":"bench-model","messages":[{"role":"user","content":"hi"}]}' \
	"http://127.0.0.1:$SG/v1/chat/completions" || { echo "sovgate does not answer"; cat "$work/sovgate.log"; exit 1; }

run() { # name url conns threads
	wrk -t"$3" -c"$2" -d"${dur}s" --latency -s "$work/post.lua" "$1" > "$work/wrk.out"
	rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")
	p50=$(awk '$1=="50%" {print $2}' "$work/wrk.out")
	errs=$(awk '/Non-2xx/ {print $5}' "$work/wrk.out")
	echo "$rps $p50 ${errs:-0}"
}
echo "# $(date -u +%FT%TZ) $(nproc) cores; ${dur}s per run; upstream: nginx return 200"
printf '%-10s %-14s %12s %12s %10s\n' proxy load req/s p50 non2xx
# SOVGATE_ONLY=1 skips the nginx runs and the idle-connection test (for
# quick iterations; the comparison needs the full run).
ratios=()
if [ -z "${SOVGATE_ONLY:-}" ]; then
	read -r r l e < <(run "http://127.0.0.1:$NGX/v1/chat/completions" 32 2)
	printf '%-10s %-14s %12s %12s %10s\n' nginx "c32 t2" "$r" "$l" "$e"
	ngx_c32=$r
fi
# PERF=FILE records a CPU profile of sovgate during its c32 run.
if [ -n "${PERF:-}" ]; then
	perf record -F 1999 --call-graph dwarf,16384 -o "$PERF" -p "${pids[0]}" -- sleep "$dur" >/dev/null 2>&1 &
	perfpid=$!
fi
# the log's commit counter, to tell the group-commit size of this run alone
commits() { curl -s "http://127.0.0.1:$ADM/metrics" | awk '$1=="sovgate_log_commits_total" {print $2}'; }
cm0=$(commits)
cpu0=$(awk '{print $14+$15}' /proc/${pids[0]}/stat)
read -r r l e < <(run "http://127.0.0.1:$SG/v1/chat/completions" 32 2)
cpu1=$(awk '{print $14+$15}' /proc/${pids[0]}/stat)
cm1=$(commits)
printf '%-10s %-14s %12s %12s %10s\n' sovgate "c32 t2" "$r" "$l" "$e"
[ -n "${ngx_c32:-}" ] && ratios+=("$(python3 -c "print(round(100*$r/$ngx_c32, 1))")")
[ -n "${PERF:-}" ] && wait "$perfpid"
for t in /proc/${pids[0]}/task/*; do echo "  thread $(cat $t/comm) $(awk '{print ($14+$15)*10}' $t/stat) ms total"; done
echo "sovgate CPU during c32: $(( (cpu1-cpu0)*10 )) ms for ${dur}s ($(python3 -c "print(round(($cpu1-$cpu0)*10000/($r*$dur),1))") us/request)"
echo "decision log files: $(cd "$work" && ls -l decisions.db* | awk '{printf "%s %.1f MB  ", $NF, $5/1e6}')"
echo "decision log during c32: $((cm1-cm0)) commits, $(python3 -c "print(round($r*$dur/max(1,$cm1-$cm0),1))") requests per commit"
# PAIRS=N (N > 1) adds N-1 more c32 runs of nginx then sovgate, back to
# back: this VM's speed drifts within minutes, so the ratio of each pair
# says more than any single figure. Prints every ratio and their median.
if [ -z "${SOVGATE_ONLY:-}" ] && [ "${PAIRS:-1}" -gt 1 ]; then
	for _ in $(seq 2 "$PAIRS"); do
		read -r rn l e < <(run "http://127.0.0.1:$NGX/v1/chat/completions" 32 2)
		read -r rs l e < <(run "http://127.0.0.1:$SG/v1/chat/completions" 32 2)
		ratios+=("$(python3 -c "print(round(100*$rs/$rn, 1))")")
		printf 'pair       %-14s nginx %s  sovgate %s  (%s %%)\n' "c32 t2" "$rn" "$rs" "${ratios[-1]}"
	done
fi
if [ ${#ratios[@]} -gt 0 ]; then
	echo "sovgate/nginx at c32: ${ratios[*]} % (median $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}') %)"
fi
if [ -z "${SOVGATE_ONLY:-}" ]; then
	read -r r l e < <(run "http://127.0.0.1:$NGX/v1/chat/completions" 1 1)
	printf '%-10s %-14s %12s %12s %10s\n' nginx "c1 t1" "$r" "$l" "$e"
fi
read -r r l e < <(run "http://127.0.0.1:$SG/v1/chat/completions" 1 1)
printf '%-10s %-14s %12s %12s %10s\n' sovgate "c1 t1" "$r" "$l" "$e"

# 1,000 idle keep-alive connections: RSS before and after.
pid=${pids[0]}
if [ -z "${SOVGATE_ONLY:-}" ]; then
rss0=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
python3 - "$SG" "$key" <<'PY' &
# Each connection makes one request (so it is a real keep-alive
# connection with its parser and buffers), then stays idle.
import socket, sys, time
port, key = int(sys.argv[1]), sys.argv[2]; socks = []
req = ("GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % key).encode()
for i in range(1000):
    s = socket.create_connection(("127.0.0.1", port)); s.sendall(req); socks.append(s)
for s in socks:
    s.recv(65536)
time.sleep(4)
PY
holder=$!
sleep 3
rss1=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
wait $holder || true
echo "sovgate RSS: ${rss0} kB at rest, ${rss1} kB with 1000 idle connections (+$(( (rss1-rss0) )) kB)"
fi
curl -s "http://127.0.0.1:$ADM/metrics" | awk '/^sovgate_log_(commits|rows)_total/ {v[$1]=$2} END {if (v["sovgate_log_commits_total"]>0) printf "decision log: %d commits, %d rows, %.1f rows per commit\n", v["sovgate_log_commits_total"], v["sovgate_log_rows_total"], v["sovgate_log_rows_total"]/v["sovgate_log_commits_total"]}'
rows=$(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from decisions').fetchone()[0])" "$work/decisions.db" 2>/dev/null || echo "?")
echo "decision rows written: $rows"
