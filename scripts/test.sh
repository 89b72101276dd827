#!/usr/bin/env bash
# Quick start, part 2: set up (once) and run the test suite. Extra arguments go to pytest.
export REVISE_PREP_EXTRAS="${REVISE_PREP_EXTRAS:-test,ray}"
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
exec python -m pytest "$@"
