#!/bin/sh
# Build the libFuzzer harness with ASan and UBSan and run it.
#   tests/fuzz/run.sh [SECONDS]     (default 600)
# Needs clang. Not part of `make check`.
set -e
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
secs=${1:-600}
out=${FUZZ_OUT:-${TMPDIR:-/tmp}/sovgate-fuzz}
mkdir -p "$out" "$out/corpus"
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -std=c11 -D_GNU_SOURCE -I$top/src $(pkg-config --cflags jansson libpcre2-8)"
clang $flags -o "$out/fuzz_classify" "$here/fuzz_classify.c" \
    "$top/src/classify.c" "$top/src/detect.c" "$top/src/detect_lex.c" \
    "$top/src/detect_health.c" "$top/src/extract.c" "$top/src/util.c" \
    "$top/src/diag.c" $(pkg-config --libs jansson libpcre2-8) -lcrypto -lpthread
# seeds: a few request shapes (the dev corpus bodies too, when present)
cp "$here"/seeds/* "$out/corpus/" 2>/dev/null || true
dev="$top/../shared/corpus/dev.jsonl"
if [ -f "$dev" ] && command -v python3 >/dev/null; then
	python3 - "$dev" "$out/corpus" <<'PY'
import json, sys
for i, line in enumerate(open(sys.argv[1])):
    if i >= 300:
        break
    open("%s/dev%03d" % (sys.argv[2], i), "w").write(json.loads(line)["body"])
PY
fi
exec "$out/fuzz_classify" -max_total_time="$secs" -max_len=65536 \
    -timeout=10 -rss_limit_mb=2048 "$out/corpus"
