# Create or reuse the project's virtual environment (.venv) and install revise-prep into it.
# Sourced by scripts/demo.sh and scripts/test.sh. Needs only Python 3.10+ with pip and venv.
# torch: if the environment has none, the CPU build pinned below is installed first (set
# REVISE_PREP_TORCH to another requirement, e.g. "torch==2.13.0" from your CUDA index, to change it);
# an existing torch (e.g. your CUDA build) is kept, since the package only asks for torch>=2.4.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${REVISE_PREP_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[revise-prep] creating virtual environment $VENV" >&2
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
  echo "[revise-prep] installing ${REVISE_PREP_TORCH:-torch==2.13.0} (CPU build on this machine)" >&2
  "$VPY" -m pip install -q --disable-pip-version-check "${REVISE_PREP_TORCH:-torch==2.13.0}"
fi
# extras to install: test.sh adds "ray" (the Ray engine's tests); the base install works without it
EXTRAS="${REVISE_PREP_EXTRAS:-test}"
STAMP="$VENV/.revise-prep-installed"
HASH="$( (cat "$ROOT/pyproject.toml"; echo "$EXTRAS") | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ]; then
  echo "[revise-prep] installing revise-prep and its dependencies" >&2
  "$VPY" -m pip install -q --disable-pip-version-check -e "$ROOT[$EXTRAS]"
  echo "$HASH" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
