#!/usr/bin/env bash
# Refresh requirements-lock.txt on purpose: resolve the newest versions pyproject's ranges allow in a scratch
# virtual environment, rewrite the lock from it, say which packages moved, and run the test suite there.
#   bash scripts/lock-refresh.sh [pytest arguments]     (default: the whole suite)
# torch stays at the lock's version (the CPU wheel on this machine's disk) unless REVISE_PREP_TORCH names
# another requirement ("torch==2.14.1"). Commit the new lock only when the suite passes; `git checkout
# requirements-lock.txt` undoes a refresh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCK="$ROOT/requirements-lock.txt"
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/revise-prep-lock.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT
touch "$SCRATCH/old-lock.txt"
if [ -f "$LOCK" ]; then cp "$LOCK" "$SCRATCH/old-lock.txt"; fi
TORCH="${REVISE_PREP_TORCH:-$(grep -m1 '^torch==' "$SCRATCH/old-lock.txt" | sed 's/[ ;#].*//' || true)}"
TORCH="${TORCH:-torch}"
echo "[lock-refresh] resolving the newest versions in $SCRATCH/venv (torch: $TORCH)" >&2
"${PYTHON:-python3}" -m venv "$SCRATCH/venv"
VPY="$SCRATCH/venv/bin/python"
PIP=("$VPY" -m pip install -q --disable-pip-version-check)
"${PIP[@]}" --upgrade pip
echo "$TORCH" > "$SCRATCH/torch.txt"
"${PIP[@]}" --upgrade --upgrade-strategy eager -c "$SCRATCH/torch.txt" "$TORCH" -e "$ROOT[test,ray]"
"$VPY" "$ROOT/scripts/write_lock.py" "$LOCK"
"$VPY" - "$SCRATCH/old-lock.txt" "$LOCK" <<'EOF'
"""Print which packages moved between two locks."""
import sys

def pins(path):
    out = {}
    for line in open(path, encoding="utf-8"):
        line = line.split("#")[0].split(";")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            out[name.strip()] = version.strip()
    return out

old, new = pins(sys.argv[1]), pins(sys.argv[2])
moved = sorted(n for n in old.keys() & new.keys() if old[n] != new[n])
for n in moved:
    print(f"[lock-refresh] {n}: {old[n]} -> {new[n]}", file=sys.stderr)
for n in sorted(new.keys() - old.keys()):
    print(f"[lock-refresh] {n}: new, {new[n]}", file=sys.stderr)
for n in sorted(old.keys() - new.keys()):
    print(f"[lock-refresh] {n}: gone (was {old[n]})", file=sys.stderr)
print(f"[lock-refresh] {len(new)} packages: {len(moved)} moved, {len(new.keys() - old.keys())} new, "
      f"{len(old.keys() - new.keys())} gone", file=sys.stderr)
EOF
echo "[lock-refresh] running the suite on the new versions" >&2
cd "$ROOT"
set +e
PATH="$SCRATCH/venv/bin:$PATH" "$VPY" -m pytest "$@"
status=$?
set -e
if [ "$status" = 0 ]; then
  echo "[lock-refresh] suite passed: commit requirements-lock.txt (and the README's tested versions)" >&2
else
  echo "[lock-refresh] suite FAILED (exit $status): fix the code or 'git checkout requirements-lock.txt'" >&2
fi
exit "$status"
