#!/bin/bash
# contrib/test.sh - quick start #2, and what CI runs (.ci/run): the whole
# test suite.
#
#   1. install the build dependencies that are missing (apt, as root)
#   2. autoreconf -fi && ./configure && make -j2 && make check
#      (Check unit suites and the end-to-end tests, tests/e2e.sh)
#   3. the unit suites again, built with AddressSanitizer and UBSan, in a
#      separate tree (build/asan, from `make distdir`), and the
#      end-to-end suite against that sanitized gateway (ASAN_E2E=0 skips it)
#   4. make distcheck
#
# Prints each phase's automake and Check summaries, then one last line
# "N passed, N failed" totalling every phase; exits non-zero on any failure.
# Logs: build/test-logs/. Set SKIP_DISTCHECK=1 or SKIP_ASAN=1 to leave a
# phase out while iterating (CI runs everything).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2
LOGS="$ROOT/build/test-logs"
JOBS=${JOBS:-2}
PKGS="build-essential autoconf automake libtool pkg-config libevent-dev
libssl-dev libyaml-dev libjansson-dev libsqlite3-dev check libpcre2-dev
sqlite3 curl python3"

mkdir -p "$LOGS"
PASSED=0
FAILED=0
SUMMARY=""
T0=$(date +%s)

note() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

install_deps() {
	local missing="" p llhttp=""
	for p in $PKGS; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q 'install ok installed' || missing="$missing $p"
	done
	if [ ! -f /usr/share/llhttp/llhttp.c ] &&
	    ! pkg-config --exists libllhttp 2>/dev/null; then
		llhttp=yes
	fi
	if [ -z "$missing" ] && [ -z "$llhttp" ]; then
		echo "all build dependencies are installed"
		return 0
	fi
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages:$missing${llhttp:+ node-llhttp}; run as root to install them" >&2
		return 1
	fi
	note "installing:$missing${llhttp:+ llhttp}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq || echo "apt-get update failed; trying the install anyway" >&2
	if [ -n "$llhttp" ]; then
		if apt-cache show node-llhttp >/dev/null 2>&1; then
			missing="$missing node-llhttp"
		else
			missing="$missing libllhttp-dev"
		fi
	fi
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing </dev/null
}

# Adds a phase's counts to the totals. With a tree whose tests/*.log are
# still there, each Check case and each end-to-end test counts as one;
# otherwise (distcheck removes its tree) automake's per-program counts from
# the phase's log. A phase that failed without any failing test (a build
# error) counts as one failure.
account() { # NAME RC LOG [TREE]
	local name=$1 rc=$2 log=$3 tree=${4:-} pass=0 fail=0 skip=0 f c e res fp ff
	if [ -n "$tree" ] && ls "$tree"/tests/*.trs >/dev/null 2>&1; then
		for f in "$tree"/tests/*.trs; do
			res=$(sed -n 's/^:test-result: //p' "$f" | head -1)
			f=${f%.trs}.log
			c=$(grep -E '^[0-9]+%: Checks: [0-9]+' "$f" 2>/dev/null | tail -1)
			e=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$f" 2>/dev/null | tail -1)
			fp=0 ff=0
			if [ -n "$c" ]; then
				set -- $(echo "$c" | sed -E 's/.*Checks: ([0-9]+), Failures: ([0-9]+), Errors: ([0-9]+).*/\1 \2 \3/')
				fp=$(($1 - $2 - $3)) ff=$(($2 + $3))
			elif [ -n "$e" ]; then
				set -- $e
				fp=$1 ff=$3
			fi
			case "$res" in
			PASS) [ -n "$c$e" ] || fp=1 ;;
			SKIP) skip=$((skip + 1)) ;;
			*) [ "$ff" -gt 0 ] || ff=1 ;;	# crashed, or no summary
			esac
			pass=$((pass + fp)) fail=$((fail + ff))
		done
	else
		pass=$(grep -E '^# PASS: +[0-9]+' "$log" | awk '{s+=$3} END {print s+0}')
		fail=$(grep -E '^# (FAIL|ERROR|XPASS): +[0-9]+' "$log" | awk '{s+=$3} END {print s+0}')
		skip=$(grep -E '^# SKIP: +[0-9]+' "$log" | awk '{s+=$3} END {print s+0}')
	fi
	if [ "$rc" != 0 ] && [ "$fail" = 0 ]; then
		fail=1
	fi
	PASSED=$((PASSED + pass))
	FAILED=$((FAILED + fail))
	SUMMARY="$SUMMARY$(printf '  %-28s %s passed, %s failed, %s skipped (exit %s)' \
	    "$name" "$pass" "$fail" "$skip" "$rc")"$'\n'
}

# The Check and end-to-end summaries of a tree's tests/*.log.
show_test_logs() { # DIR
	local f
	for f in "$1"/tests/check_*.log; do
		[ -f "$f" ] || continue
		printf '  %-28s %s\n' "$(basename "$f" .log)" \
		    "$(grep -E '^[0-9]+%: Checks' "$f" | tail -1)"
	done
	if [ -f "$1/tests/e2e.sh.log" ]; then
		printf '  %-28s %s\n' e2e "$(grep -E '^[0-9]+ passed, [0-9]+ failed' \
		    "$1/tests/e2e.sh.log" | tail -1)"
	fi
}

show_failures() { # DIR
	local f
	for f in "$1"/tests/*.log; do
		[ -f "$f" ] || continue
		case "$f" in */test-suite.log) continue ;; esac
		if grep -qE '^:test-result: (FAIL|ERROR|XPASS)' "${f%.log}.trs" 2>/dev/null; then
			# an e2e failure's own lines (message, gateway log)
			# come before the other tests' "ok" lines: show them
			# first, the tail after
			if grep -q '^FAIL  ' "$f"; then
				note "failed: $f (each failure)"
				awk '/^FAIL  /{p=1; n=0} /^(ok|skip|xfail) /{p=0}
				    p && n++ < 80' "$f"
			fi
			note "failed: $f (last 60 lines)"
			tail -60 "$f"
		fi
	done
}

run() { # LOG TIMEOUT CMD...: run, tee to LOG, bounded in time
	local log=$1 t=$2
	shift 2
	timeout --kill-after=30 "$t" "$@" 2>&1 | tee -a "$log"
	return "${PIPESTATUS[0]}"
}

# ---- 1. dependencies ----
note "dependencies"
if ! install_deps; then
	echo "cannot install the build dependencies" >&2
	echo "0 passed, 1 failed"
	exit 1
fi

# The optional OpenAI Node SDK check (tests/e2e/test_sdk.py) needs the
# `openai` package; fetch it with npm when npm is there, else the test skips.
install_sdk() {
	local d=$ROOT/build/e2e-sdk
	if [ -f "$d/node_modules/openai/package.json" ] &&
	    cmp -s "$ROOT/tests/e2e/sdk/package-lock.json" "$d/package-lock.json"; then
		return 0
	fi
	command -v npm >/dev/null 2>&1 || { echo "npm not installed: the SDK test will be skipped"; return 0; }
	rm -rf "$d" && mkdir -p "$d" &&
	    cp "$ROOT/tests/e2e/sdk/package.json" "$ROOT/tests/e2e/sdk/package-lock.json" "$d/" &&
	    (cd "$d" && timeout 180 npm ci --no-audit --no-fund --loglevel=error </dev/null) ||
	    echo "npm ci failed: the SDK test will be skipped"
}
install_sdk
export SOVGATE_E2E_NODE_MODULES=$ROOT/build/e2e-sdk/node_modules
# The test vectors live beside the checkout; distcheck's unpacked tree
# cannot find them by a relative path, so name them once here.
if [ -z "${SHARED_DIR:-}" ] && [ -d "$ROOT/../shared" ]; then
	SHARED_DIR=$(cd "$ROOT/../shared" && pwd)
	export SHARED_DIR
fi

# ---- 2. build and make check ----
note "build and make check (unit suites and end-to-end)"
LOG=$LOGS/check.log
: >"$LOG"
rc=0
run "$LOG" 300 autoreconf -fi || rc=$?
[ $rc = 0 ] && { run "$LOG" 300 ./configure -q || rc=$?; }
[ $rc = 0 ] && { run "$LOG" 900 make -j"$JOBS" || rc=$?; }
BUILD_OK=$rc
if [ $rc = 0 ]; then
	run "$LOG" 1200 make -j"$JOBS" check || rc=$?
	show_test_logs "$ROOT"
	[ $rc = 0 ] || show_failures "$ROOT"
fi
account "make check" $rc "$LOG" "$ROOT"

# ---- 3. unit suites under ASan + UBSan ----
if [ "${SKIP_ASAN:-}" = 1 ]; then
	note "sanitizers: skipped (SKIP_ASAN=1)"
elif [ "$BUILD_OK" != 0 ]; then
	note "sanitizers: skipped (the plain build failed)"
	account "asan+ubsan unit suites" 1 /dev/null
else
	note "unit suites with -fsanitize=address,undefined (build/asan)"
	LOG=$LOGS/asan.log
	: >"$LOG"
	rc=0
	ASAN_DIR=$ROOT/build/asan
	rm -rf "$ASAN_DIR" "$ROOT/build/sovgate-asan"
	mkdir -p "$ROOT/build"
	run "$LOG" 300 make distdir distdir=build/sovgate-asan || rc=$?
	if [ $rc = 0 ]; then
		mv "$ROOT/build/sovgate-asan" "$ASAN_DIR"
		# the suites find test vectors at <srcdir>/../shared
		[ -d "$ROOT/../shared" ] && ln -sfn "$ROOT/../shared" "$ROOT/build/shared"
		(
			cd "$ASAN_DIR" || exit 2
			run "$LOG" 300 ./configure -q \
			    CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
			    LDFLAGS="-fsanitize=address,undefined" || exit $?
			export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
			export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
			# Only the Check suites: TESTS is expanded by make from
			# the Makefile's own UNIT_TESTS.
			if [ "${ASAN_E2E:-1}" = 1 ]; then
				run "$LOG" 900 make -j"$JOBS" check 'TESTS=$(UNIT_TESTS) tests/e2e.sh'
			else
				run "$LOG" 900 make -j"$JOBS" check 'TESTS=$(UNIT_TESTS)'
			fi
		) || rc=$?
		show_test_logs "$ASAN_DIR"
		[ $rc = 0 ] || show_failures "$ASAN_DIR"
	fi
	account "asan+ubsan unit suites" $rc "$LOG" "$ASAN_DIR"
fi

# ---- 4. make distcheck ----
if [ "${SKIP_DISTCHECK:-}" = 1 ]; then
	note "distcheck: skipped (SKIP_DISTCHECK=1)"
elif [ "$BUILD_OK" != 0 ]; then
	note "distcheck: skipped (the plain build failed)"
	account "make distcheck" 1 /dev/null
else
	note "make distcheck"
	LOG=$LOGS/distcheck.log
	: >"$LOG"
	rc=0
	run "$LOG" 1500 make -j"$JOBS" distcheck || rc=$?
	grep -E '^(=+|sovgate-.*archives ready for distribution)' "$LOG" | tail -5
	account "make distcheck" $rc "$LOG"
fi

note "summary ($(($(date +%s) - T0)) s; logs in build/test-logs/)"
printf '%s' "$SUMMARY"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
