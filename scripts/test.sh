#!/usr/bin/env bash
# Quick start, part 2: set up (once) and run the test suite. Extra arguments go to pytest.
# Two pytest processes (pytest-xdist): most e2e tests wait on subprocesses, so two keep a 2-core machine busy;
# --dist loadfile keeps each module in one process, with its module-scoped fixtures. `-n 0` after it: one process.
export REVISE_PREP_EXTRAS="${REVISE_PREP_EXTRAS:-test,ray}"
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
exec python -m pytest -n "${REVISE_PREP_TEST_PROCESSES:-2}" --dist loadfile "$@"
