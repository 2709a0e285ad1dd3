#!/usr/bin/env bash
# One command to set up and run the test suite on a fresh machine: bash launch/run_tests.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/launch/setup_env.sh"
cd "$ROOT"
export TF_CPP_MIN_LOG_LEVEL=2
# One worker process per core, at most 4 (pytest-xdist; ALC_TEST_WORKERS=0 runs the tests in this
# process): most of the suite's time is XLA compiling tiny programs, on one core per process.
# Each test file runs on one worker (loadfile), so a module fixture starts once: test_reliability.py
# starts its command-line scenarios together in one. (loadgroup's xdist_group marks would be finer,
# but pytest 9.2 silently drops them: pytest-xdist issue #1386.) Files are handed out in collection
# order, the longest first (tests/conftest.py, LONGEST_FILES), not by their number of tests.
CORES="$(nproc)"
WORKERS="${ALC_TEST_WORKERS:-$(( CORES < 4 ? CORES : 4 ))}"
exec .venv/bin/python -m pytest -q -n "$WORKERS" --dist loadfile --no-loadscope-reorder "$@"
