#!/bin/sh
# End-to-end tests (run by `make check`): the real gateway between Python
# clients and recording mock upstreams, all on 127.0.0.1. The tests are in
# tests/e2e/ (Python 3 standard library only); see tests/e2e/run.py.
#
# Environment (set by Makefile.am's TESTS_ENVIRONMENT): SOVGATE_BIN,
# SOVGATE_SRCDIR, PYTHON3, SHARED_DIR. Exit 77 (SKIP) without a gateway
# binary or without python3; arguments go to run.py (-k NAME, -x, --keep, -v).
srcdir_guess=$(cd "$(dirname "$0")/.." && pwd)
: "${SOVGATE_SRCDIR:=$srcdir_guess}"
: "${SOVGATE_BIN:=$SOVGATE_SRCDIR/sovgate}"
: "${PYTHON3:=python3}"
export SOVGATE_SRCDIR SOVGATE_BIN PYTHON3 SHARED_DIR

if [ ! -x "$SOVGATE_BIN" ]; then
	echo "SKIP: no gateway binary at $SOVGATE_BIN"
	exit 77
fi
if ! command -v "$PYTHON3" >/dev/null 2>&1; then
	echo "SKIP: no python3 ($PYTHON3)"
	exit 77
fi
# Never write bytecode next to the sources (distcheck's are read-only).
PYTHONDONTWRITEBYTECODE=1
export PYTHONDONTWRITEBYTECODE
exec "$PYTHON3" "$SOVGATE_SRCDIR/tests/e2e/run.py" "$@"
