#!/usr/bin/env bash
# One command to set up and run the test suite on a fresh machine: bash launch/run_tests.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/launch/setup_env.sh"
cd "$ROOT"
export TF_CPP_MIN_LOG_LEVEL=2
# One worker process per core, at most 4 (pytest-xdist; ALC_TEST_WORKERS=0 runs the tests in this
# process): most of the suite's time is XLA compiling tiny programs, on one core per process.
# test_reliability.py's scenarios share module fixtures, so they stay on one worker (loadgroup).
CORES="$(nproc)"
WORKERS="${ALC_TEST_WORKERS:-$(( CORES < 4 ? CORES : 4 ))}"
exec .venv/bin/python -m pytest -q -n "$WORKERS" --dist loadgroup "$@"
