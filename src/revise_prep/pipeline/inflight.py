"""Which samples were in flight when a run died, remembered on disk so that a poison sample cannot stop
every restart at the same place.

Each rank appends to ``.inflight/w<world>-r<rank>.jsonl`` beside the reports (``records.layout``):
``{"run": ...}`` when a run starts, ``{"plan": {...}}`` once its share is planned (samples, to do, resumed; for
``revise-prep status``), ``{"start": name}`` when the main process takes a sample up (to decode it inline, or to
encode what a worker decoded) and ``{"end": name}`` once its outcome is known (with ``status`` and ``reason`` when
it was skipped or failed); ``{"stop": true}`` when the run ends without dying (finished, Ctrl-C, a full disk). A run section without ``stop`` died (SIGKILL, the OOM
killer, a CUDA fault): its started-but-unended samples count one death each. A sample that ends normally
has its count reset. A rank's own file speaks for every name it mentions; other files (other ranks, other
world sizes) count for the rest, and their counts are carried into ours when ours is compacted at start.
Deleting ``.inflight/`` forgets the counts; nothing else depends on it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from pathlib import Path

from revise_prep.records.atomic import atomic_write_text
from revise_prep.records.layout import INFLIGHT_DIR

log = logging.getLogger(__name__)

#: Deaths with a sample in flight after which it is failed as ``crashed_repeatedly`` instead of tried again.
MAX_DEATHS = 2


def inflight_path(out: Path, rank: int, world: int) -> Path:
    return Path(out) / INFLIGHT_DIR / f"w{world}-r{rank}.jsonl"


def _replay(path: Path) -> tuple[Counter, int, set[str]]:
    """(deaths per sample name, runs that died, names mentioned) from one journal; a torn line is ignored."""
    deaths: Counter = Counter()
    seen: set[str] = set()
    died = 0
    open_: set[str] | None = None

    def close_section(crashed: bool) -> None:
        nonlocal died
        if open_ is not None and crashed and open_:
            died += 1
            deaths.update(open_)

    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return deaths, 0, seen
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        if "carried" in entry:
            carried = {str(k): int(v) for k, v in dict(entry["carried"]).items()}
            deaths.update(carried)
            seen.update(carried)
            died += int(entry.get("runs_died", 0))
        elif "run" in entry:
            close_section(crashed=True)
            open_ = set()
        elif "start" in entry and open_ is not None:
            open_.add(str(entry["start"]))
            seen.add(str(entry["start"]))
        elif "end" in entry and open_ is not None:
            name = str(entry["end"])
            open_.discard(name)
            deaths.pop(name, None)
        elif entry.get("stop") and open_ is not None:
            close_section(crashed=False)
            open_ = None
    close_section(crashed=True)
    return deaths, died, seen


class InflightJournal:
    """This rank's journal; ``deaths[name]`` is how many earlier runs died with that sample in flight."""

    def __init__(self, out: Path, rank: int, world: int) -> None:
        self.path = inflight_path(out, rank, world)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.runs_died = 0
        own, own_seen, own_died, others = Counter(), set(), 0, Counter()
        for path in sorted(self.path.parent.glob("w*-r*.jsonl")):
            deaths, died, seen = _replay(path)
            if path == self.path:
                own, own_died, own_seen = deaths, died, seen
            else:
                others.update(deaths)
            self.runs_died += died
        names = own_seen | {n for n, k in others.items() if k > 0}
        carried = {n: own[n] if n in own_seen else others[n] for n in sorted(names)}
        self.deaths: Counter = +Counter(carried)
        if self.path.exists() or self.deaths:  # compact our own file: the counts so far, then this run
            atomic_write_text(self.path, json.dumps({"carried": {n: k for n, k in carried.items()
                                                                 if k or others[n]},
                                                     "runs_died": own_died}) + "\n")
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
        self._open: set[str] = set()
        self._lock = threading.Lock()
        self._write({"run": f"{os.getpid()}@{time.time():.0f}", "host": socket.gethostname()})

    def _write(self, entry: dict) -> None:
        with self._lock:
            self._file.write(json.dumps(entry) + "\n")
            self._file.flush()  # in the OS's hands: survives this process being killed

    def quarantined(self, name: str) -> int:
        """Deaths counted for ``name`` when they reach :data:`MAX_DEATHS`, else 0."""
        n = self.deaths.get(name, 0)
        return n if n >= MAX_DEATHS else 0

    def start(self, name: str) -> None:
        if name not in self._open:
            self._open.add(name)
            self._write({"start": name})

    def plan(self, **counts) -> None:
        """This rank's share once planned (``total``, ``todo``, ``resumed``, ``prefailed`` by status and reason),
        with the time."""
        self._write({"plan": counts, "t": round(time.time(), 3)})

    def end(self, name: str, status: str | None = None, reason: str | None = None) -> None:
        """``name``'s outcome is known; ``status``/``reason`` when it was skipped or failed."""
        self._open.discard(name)
        self._write({"end": name, "status": status, "reason": reason} if status else {"end": name})

    def close(self) -> None:
        """The run ends without dying: what is still open was not the cause."""
        self._write({"stop": True})
        self._file.close()
