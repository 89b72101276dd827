"""Which samples were in flight when a run died, remembered on disk so that a poison sample cannot stop
every restart at the same place.

Each rank appends to ``.inflight/w<world>-r<rank>.jsonl`` beside the reports (``records.layout``):
``{"run": ...}`` when a run starts, ``{"plan": {...}}`` once its share is planned (samples, to do, resumed; for
``revise-prep status``), ``{"start": name}`` when the main process takes a sample up (to decode it inline, or to
encode what a worker decoded) and ``{"end": name}`` once its outcome is known (with ``status`` and ``reason`` when
it was skipped or failed); ``{"stop": true}`` when the run ends without dying (finished, Ctrl-C, a full disk). A run section without ``stop`` died (SIGKILL, the OOM
killer, a CUDA fault): its started-but-unended samples count one death each. A sample that ends normally
has its count reset (an end as ``crashed_repeatedly`` is not normal: it keeps its count). A rank's own file speaks for every name it mentions; other files (other ranks, other
world sizes) count for the rest, and their counts are carried into ours when ours is compacted at start.

An engine whose samples are held by other processes (``--engine ray``: decode tasks and encoder actors) also
keeps one marker per attempt in a folder of its run, ``.inflight/ray-<pid>-<time>/<hash>.<k>`` (JSON: the
sample's ``name``, the holder's ``pid``, ``host`` and ``what``), made before a process works on a sample and
removed once its outcome is known (:class:`Attempts`). A marker left behind is a process that died holding the
sample: the next attempt sees it at once (``k`` markers before its own), and at the end the driver writes
``{"died": {name: count}}`` to its journal for the samples that did not end normally (the others are
forgiven, as above) and removes the folder (a driver that died leaves it; the next Ray run removes it, blaming
nothing). Those counts are deaths like a run's: a sample reaching
:data:`MAX_DEATHS` is failed as ``crashed_repeatedly``, by whichever engine plans it next.
Deleting ``.inflight/`` forgets the counts; nothing else depends on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from revise_prep.errors import CRASHED_REPEATEDLY
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
        if "carried" in entry or "died" in entry:  # counts from compaction, or deaths of another engine's processes
            counts = entry["carried"] if "carried" in entry else entry["died"]
            carried = {str(k): int(v) for k, v in dict(counts).items()}
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
            if entry.get("reason") != CRASHED_REPEATEDLY:  # ended normally: forgiven
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

    def died(self, counts: dict[str, int]) -> None:
        """Record deaths of other processes holding these samples during this run (:class:`Attempts`)."""
        if counts:
            self._write({"died": dict(sorted(counts.items()))})

    def close(self) -> None:
        """The run ends without dying: what is still open was not the cause."""
        self._write({"stop": True})
        self._file.close()


class Attempts:
    """This run's markers of the samples other processes hold (see the module docstring); picklable, so the
    processes that work on samples (Ray tasks and actors) get it with their work."""

    def __init__(self, out: Path, run: str | None = None) -> None:
        self.folder = Path(out) / INFLIGHT_DIR / (run or f"ray-{os.getpid()}-{time.time_ns()}")

    def create(self) -> "Attempts":
        """Make this run's folder, and remove those of earlier runs whose driver died (a run holds the folder's
        lock, so no other is running: its markers blame nothing now)."""
        for stale in self.folder.parent.glob("ray-*"):
            if stale.is_dir() and stale != self.folder:
                shutil.rmtree(stale, ignore_errors=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    @contextlib.contextmanager
    def hold(self, name: str, what: str) -> Iterator[int]:
        """Mark ``name`` as held by this process while the block runs; yields how many earlier attempts in this
        run died holding it (their markers are still there). A process that dies leaves its marker."""
        key = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:20]
        k = 0
        while True:
            path = self.folder / f"{key}.{k}"
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
                break
            except FileExistsError:
                k += 1
            except OSError as err:  # bookkeeping only: the sample goes on unmarked (the write reports a full disk)
                log.warning("%s: cannot mark it in flight (%s)", name, err)
                yield k
                return
        try:
            os.write(fd, json.dumps({"name": name, "pid": os.getpid(), "host": socket.gethostname(),
                                     "what": what}).encode())
        finally:
            os.close(fd)
        try:
            yield k
        finally:
            path.unlink(missing_ok=True)

    def deaths(self, finished: set[str]) -> Counter:
        """Deaths per sample name from the markers left behind: all of them for a sample in ``finished`` (its
        outcome came from a later attempt), all but the newest for the others (the newest may be a process
        still at work when the run stopped: a run that stops without dying blames no sample)."""
        slots: dict[str, list[int]] = {}
        with contextlib.suppress(OSError):
            for path in self.folder.iterdir():
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    slots.setdefault(str(json.loads(path.read_text())["name"]), []).append(int(path.suffix[1:]))
        return Counter({name: len(ks) if name in finished else len(ks) - 1 for name, ks in slots.items()
                        if name in finished or len(ks) > 1})

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
