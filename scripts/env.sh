# Create or reuse the project's virtual environment (.venv) and install revise-prep into it, from the lock.
# Sourced by scripts/demo.sh and scripts/test.sh (so also by .ci/run). Needs only Python 3.10+ with pip and venv.
# requirements-lock.txt pins every package of the tested environment (torch, runtime, the test and ray extras,
# pip itself): after pip is brought to the locked version, one pip call installs exactly those versions without
# resolving (--no-deps), and `pip check` confirms the set is complete. Where it is not (a platform or Python
# the lock was not made on), pip's resolver completes it with the lock's versions as constraints.
# torch: a torch the environment already has (e.g. your CUDA build) is kept; REVISE_PREP_TORCH="torch==2.x.y"
# installs that requirement (with its dependencies) instead of the lock's CPU build.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${REVISE_PREP_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
LOCK="$ROOT/requirements-lock.txt"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[revise-prep] creating virtual environment $VENV" >&2
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"
# extras to install: test.sh adds "ray" (the Ray engine's tests); the base install works without it
EXTRAS="${REVISE_PREP_EXTRAS:-test}"
STAMP="$VENV/.revise-prep-installed"
HASH="$( (cat "$ROOT/pyproject.toml" "$LOCK"; echo "$EXTRAS ${REVISE_PREP_TORCH:-}") | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ]; then
  PIP=("$VPY" -m pip install -q --disable-pip-version-check)
  OWN_TORCH=0  # 1: keep the torch the environment has (yours, or REVISE_PREP_TORCH's), not the lock's
  if [ -n "${REVISE_PREP_TORCH:-}" ]; then
    echo "[revise-prep] installing $REVISE_PREP_TORCH" >&2
    "${PIP[@]}" "$REVISE_PREP_TORCH"
    OWN_TORCH=1
  elif [ ! -f "$VENV/.revise-prep-locked-torch" ] && "$VPY" -c "import torch" >/dev/null 2>&1; then
    OWN_TORCH=1
  fi
  # the lock's lines for these extras: untagged lines always, '# test' / '# ray' lines with that extra
  SELECTED="$VENV/.revise-prep-lock.txt"
  awk -v want=" ${EXTRAS//,/ } " -v own_torch="$OWN_TORCH" '
    /^[ \t]*(#|$)/ { next }
    { req = $0; tags = ""; i = index($0, "#"); if (i) { req = substr($0, 1, i - 1); tags = substr($0, i + 1) } }
    own_torch == 1 && req ~ /^torch[ =]/ { next }
    tags == "" { print req; next }
    { n = split(tags, t, " "); for (k = 1; k <= n; k++) if (index(want, " " t[k] " ")) { print req; next } }
  ' "$LOCK" > "$SELECTED"
  echo "[revise-prep] installing revise-prep and the locked versions of its dependencies ($(wc -l < "$SELECTED") packages)" >&2
  PIN_PIP="$(grep -m1 '^pip==' "$SELECTED" || true)"
  if [ -n "$PIN_PIP" ]; then "${PIP[@]}" "$PIN_PIP"; fi  # the lock's pip: much faster than old ones at the next step
  gaps() { "$VPY" -m pip check 2>&1 | grep -E " requires | has requirement " || true; }
  if "${PIP[@]}" --no-deps -r "$SELECTED" && "${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT" \
     && [ -z "$(gaps)" ]; then
    :
  else
    echo "[revise-prep] the lock does not fit this machine as it is; resolving with its versions as constraints" >&2
    "${PIP[@]}" -c "$SELECTED" -e "$ROOT[$EXTRAS]"
  fi
  if [ "$OWN_TORCH" = 0 ]; then touch "$VENV/.revise-prep-locked-torch"; fi
  echo "$HASH" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
