"""Write requirements-lock.txt from the packages installed in this environment (used by lock-refresh.sh).

    python scripts/write_lock.py OUT

Walks revise-prep's requirements (runtime, then the ``test`` and ``ray`` extras) through the installed
distributions' metadata, with their markers evaluated here, and pins each package reached (and pip) at its
installed version without its local label (torch ``2.13.0+cpu`` -> ``==2.13.0``, which takes this machine's CPU
wheel and another machine's own build). A package only an extra needs carries that extra's name as a trailing
comment (``# test``, ``# ray``, ``# test ray``); scripts/env.sh installs those lines only with that extra.
Only the standard library and ``packaging`` (a dependency of the locked set) are used.
"""

from __future__ import annotations

import argparse
import platform
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT = "revise-prep"
EXTRAS = ("test", "ray")


def _requires(name: str, extras: frozenset[str]) -> list[Requirement]:
    """The requirements of an installed distribution that apply here with ``extras`` requested."""
    out = []
    for line in distribution(name).requires or []:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (extras or {""})):
            out.append(req)
    return out


def closure(roots: list[Requirement]) -> dict[str, str]:
    """Canonical name -> installed version of every distribution ``roots`` reach (extras followed)."""
    found: dict[str, str] = {}
    done: set[tuple[str, frozenset[str]]] = set()
    stack = [(canonicalize_name(r.name), frozenset(r.extras)) for r in roots]
    while stack:
        name, extras = stack.pop()
        if (name, extras) in done:
            continue
        done.add((name, extras))
        try:
            found[name] = distribution(name).version.split("+")[0]
        except PackageNotFoundError:
            sys.exit(f"write_lock: {name} is required but not installed; install the project with all extras first")
        stack += [(canonicalize_name(r.name), frozenset(r.extras)) for r in _requires(name, extras)]
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    own = [Requirement(line) for line in distribution(PROJECT).requires or []]
    runtime = closure([r for r in own if r.marker is None or r.marker.evaluate({"extra": ""})])
    groups: dict[str, dict[str, str]] = {}
    markers: dict[str, str] = {}
    for extra in EXTRAS:
        direct = [r for r in own if r.marker is not None and r.marker.evaluate({"extra": extra})
                  and not r.marker.evaluate({"extra": ""})]
        for r in direct:  # keep the project's own platform markers (decord: x86_64 only), minus the extra
            text = str(r.marker).replace(f' and extra == "{extra}"', "").replace(f'extra == "{extra}"', "")
            if text.strip():
                markers[canonicalize_name(r.name)] = text.strip()
        groups[extra] = closure(direct)
    runtime["pip"] = distribution("pip").version  # env.sh brings pip to this version first
    names = sorted(set(runtime).union(*groups.values()))
    lines = [
        "# The tested environment: every package scripts/env.sh installs (runtime, torch, the test and ray extras),",
        "# pinned. Written by scripts/lock-refresh.sh on "
        f"Python {platform.python_version()}, {platform.system()} {platform.machine()}; do not edit by hand.",
        "# A trailing '# test' / '# ray' names the extras that need the line; env.sh installs the rest always.",
    ]
    for name in names:
        version = runtime.get(name) or next(g[name] for g in groups.values() if name in g)
        line = f"{name}=={version}"
        if name in markers:
            line += f" ; {markers[name]}"
        if name not in runtime:
            line += "  # " + " ".join(e for e in EXTRAS if name in groups[e])
        lines.append(line)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"write_lock: {len(names)} packages -> {args.out}")


if __name__ == "__main__":
    main()
