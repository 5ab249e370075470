#!/bin/sh
# Classifier throughput on the decompressed bench corpus, one core.
#
#   contrib/bench/classify-bench.sh [RUNS]
#
# Builds contrib/bench/classify-driver.c (a standalone `classify --jsonl`)
# with -O2 against the classifier sources, then reports for the best of
# RUNS runs (default 5):
#   - parse+classify: request_parse + extraction + classification of each
#     body, timed inside the process (what a gateway worker pays);
#   - whole process: wall time of the driver reading the JSONL, parsing
#     each record, classifying and printing findings (taskset to one CPU).
# If ./sovgate exists and `sovgate classify --jsonl` works, it is timed too
# (best of RUNS as well: the machine this runs on is often noisy).
# MB are 10^6 bytes of request bodies.
set -e
top=$(cd "$(dirname "$0")/../.." && pwd)
runs=${1:-5}
work=${TMPDIR:-/tmp}/sovgate-classify-bench.$$
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT
bench="$top/../shared/corpus/bench.jsonl.gz"
[ -f "$bench" ] || { echo "no $bench" >&2; exit 2; }
gzip -dc "$bench" > "$work/bench.jsonl"
cc=${CC:-cc}
$cc -std=c11 -D_GNU_SOURCE -O2 -I"$top/src" \
    $(pkg-config --cflags jansson libpcre2-8) \
    -o "$work/driver" "$top/contrib/bench/classify-driver.c" \
    "$top/src/classify.c" "$top/src/detect.c" "$top/src/detect_lex.c" \
    "$top/src/detect_health.c" "$top/src/extract.c" "$top/src/util.c" \
    "$top/src/diag.c" $(pkg-config --libs jansson libpcre2-8) -lcrypto \
    -lpthread
bytes=$(python3 -c 'import json,sys; print(sum(len(json.loads(l)["body"].encode()) for l in open(sys.argv[1])))' "$work/bench.jsonl")
pin=""
command -v taskset >/dev/null && pin="taskset -c 0"
best_in=0
best_wall=999999
i=0
while [ $i -lt "$runs" ]; do
	r=$($pin "$work/driver" -q "$work/bench.jsonl" 2>&1 >/dev/null)
	mbs=$(echo "$r" | sed -n 's/.* \([0-9.]*\) MB\/s/\1/p')
	best_in=$(echo "$mbs $best_in" | awk '{print ($1 > $2) ? $1 : $2}')
	t0=$(date +%s.%N)
	$pin "$work/driver" "$work/bench.jsonl" > "$work/out.jsonl" 2>/dev/null
	t1=$(date +%s.%N)
	best_wall=$(echo "$t0 $t1 $best_wall" | awk '{d=$2-$1; print (d < $3) ? d : $3}')
	i=$((i + 1))
done
echo "bench corpus: $(wc -l < "$work/bench.jsonl") requests, $bytes body bytes"
echo "parse+classify (in process, best of $runs): $best_in MB/s"
echo "whole process, driver (best of $runs): $(echo "$bytes $best_wall" | awk '{printf "%.1f MB/s (%.3f s)", $1/$2/1e6, $2}')"
if [ -x "$top/sovgate" ] && "$top/sovgate" classify --jsonl < /dev/null >/dev/null 2>&1; then
	best=999999
	i=0
	while [ $i -lt "$runs" ]; do
		t0=$(date +%s.%N)
		$pin "$top/sovgate" classify --jsonl "$work/bench.jsonl" \
		    > /dev/null 2>&1
		t1=$(date +%s.%N)
		best=$(echo "$t0 $t1 $best" | awk '{d=$2-$1; print (d < $3) ? d : $3}')
		i=$((i + 1))
	done
	echo "whole process, sovgate classify --jsonl (best of $runs): $(echo "$bytes $best" | awk '{printf "%.1f MB/s (%.3f s)", $1/$2/1e6, $2}')"
fi
