#!/bin/bash
# adapter-bench.sh - cost of the cloud adapters on one core: SigV4 signing,
# a whole Bedrock request build (translation + signing), the event-stream
# CRC, event-stream decoding and decoding + translation to SSE.
#
#   contrib/bench/adapter-bench.sh [SCALE]
#
# Run after `make` (it links libsovgate.a from the build tree). SCALE
# multiplies the iteration counts (default 1; 0.1 for a quick look).
# Compiled with -O2 like the gateway; each line is ops/s, the time per op
# and, for byte streams, MB/s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$top}
[ -f "$build/libsovgate.a" ] || { echo "run make first (no $build/libsovgate.a)" >&2; exit 2; }
work=$(mktemp -d /tmp/sovgate-adapter-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

llhttp_cflags=$(sed -n 's/^LLHTTP_CFLAGS = //p' "$build/Makefile")
llhttp_lib=
[ -f "$build/libllhttp.a" ] && llhttp_lib=$build/libllhttp.a
pkgs="libevent libevent_pthreads openssl jansson"
${CC:-cc} -std=c11 -O2 -D_GNU_SOURCE -I"$top/src" -I"$build" $llhttp_cflags \
	$(pkg-config --cflags $pkgs) "$here/adapter-bench.c" \
	"$build/libsovgate.a" $llhttp_lib $(pkg-config --libs $pkgs) \
	-lyaml -lsqlite3 -lpcre2-8 -pthread -lm -o "$work/adapter-bench"
echo "# $(uname -m), $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ //'), one core"
"$work/adapter-bench" "${1:-1}"
