"""Golden comparisons under every CPU capability: the worst deviation of each, in spacings, per capability.

    PYTHONPATH=src python bench/exactness.py [--capabilities default,avx2,avx512] [--out FILE] [-- PYTEST ARGS]

Runs ``pytest -m fixtures`` (every test that reads ../shared/fixtures) once per capability, as a host of that
class computes (``testing.exact.emulate``: ``ATEN_CPU_CAPABILITY`` for torch's kernels, oneDNN's and MKL's ISA
capped alike), with ``REVISE_PREP_EXACTNESS_LOG`` collecting what ``revise_prep.testing.exact`` measured, then prints one Markdown row per comparison: its bound (``BOUNDS``, or "exact"), how many checks ran,
and the worst deviation in the dtype's spacings at the tensor's scale on each capability (with its case). The
bounds in ``BOUNDS`` are chosen from this table. Default capabilities: all this CPU supports.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SELF_CHECK = "tests/test_exactness.py::test_float_golden_comparisons_hold_on_other_kernels"  # runs these itself


def supported() -> list[str]:
    """Capabilities up to this CPU's best, as torch reports it without ``ATEN_CPU_CAPABILITY``."""
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    from revise_prep.testing.exact import CAPABILITIES

    best = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                          capture_output=True, text=True, env=env, check=True).stdout.strip().lower()
    return CAPABILITIES[: CAPABILITIES.index(best) + 1] if best in CAPABILITIES else [best]


def run(cap: str, log: Path, pytest_args: list[str]) -> tuple[str, float]:
    """``pytest -m fixtures`` under ``cap``; returns (its summary line, seconds)."""
    from revise_prep.testing.exact import LOG_ENV, emulate

    env = {**os.environ, **emulate(cap), LOG_ENV: str(log)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "fixtures",
                           "--deselect", SELF_CHECK, *pytest_args], capture_output=True, text=True, env=env, cwd=REPO)
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    return (lines[-1].strip("= ") if lines else f"exit {proc.returncode}"), time.perf_counter() - t0


def table(entries: dict[str, list[dict]], caps: list[str], summaries: dict[str, str]) -> str:
    from revise_prep.testing.exact import BOUNDS

    names = sorted({e["what"] for rows in entries.values() for e in rows},
                   key=lambda n: (n not in BOUNDS, n))
    out = ["| comparison | bound | checks | " + " | ".join(f"worst on {c}" for c in caps) + " |",
           "|---|---|---|" + "---|" * len(caps)]
    for name in names:
        bound = f"{BOUNDS[name].spacings:g} {str(BOUNDS[name].dtype).replace('torch.', '')} spacings" \
            if name in BOUNDS else "exact"
        cells, checks = [], 0
        for cap in caps:
            rows = [e for e in entries[cap] if e["what"] == name]
            checks = max(checks, len(rows))
            if not rows:
                cells.append("-")
                continue
            worst = max(rows, key=lambda e: e["spacings"])
            if name in BOUNDS:
                cells.append(f"{worst['spacings']:.3g} ({worst['case']}; {worst['max_abs']:.3g} abs)")
            else:
                cells.append("0 (bit-exact)" if worst["spacings"] == 0 else f"NOT exact ({worst['case']})")
        out.append(f"| {name} | {bound} | {checks} | " + " | ".join(cells) + " |")
    out.append("| pytest -m fixtures | | | " + " | ".join(summaries[c] for c in caps) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pytest_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--capabilities", default=None, help="comma-separated (default: every one this CPU supports)")
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    caps = args.capabilities.split(",") if args.capabilities else supported()
    entries, summaries = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for cap in caps:
            log = Path(tmp) / f"{cap}.jsonl"
            summary, seconds = run(cap, log, pytest_args)
            rows = [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []
            seen = {r["capability"].lower() for r in rows}
            if seen and seen != {cap}:
                raise SystemExit(f"asked for {cap}, torch ran {sorted(seen)}")
            entries[cap], summaries[cap] = rows, f"{summary} ({seconds:.0f} s)"
            print(f"{cap}: {summary} ({seconds:.0f} s)", file=sys.stderr)
    text = table(entries, caps, summaries)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
