"""Logs sized for 100k samples: a progress line every N seconds off a terminal, per-sample notices summarised.

On a terminal, progress is tqdm's bar. When stderr is a file or a pipe (a SLURM job, ``2> log``), a bar would
write a carriage-return update per sample into the log; instead one line is logged every ``interval`` seconds
with the samples done, the rate and the time left. Per-sample notices (a renamed output, a skipped sample, a
record redone) show the first few of each kind, then one line with the count; every one stays in the reports.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import Counter
from typing import Any, Callable, TextIO

DEFAULT_INTERVAL = 30.0  # seconds between progress lines off a terminal
NOTICES_SHOWN = 5  # per kind


def duration_text(seconds: float) -> str:
    """``12m05s``, ``3h07m``, ``2d04h``: a duration as progress lines and ``status`` show it."""
    seconds = int(seconds)
    if seconds >= 86400:
        return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def progress_line(desc: str, done: int, total: int, elapsed: float, *, final: bool = False) -> str:
    """``vae: 1200/100000 samples (1.2%), 3.41 samples/s, 2m56s elapsed, ETA 8h03m``; the ``final`` line has no
    rate (the run's summary gives the one samples/s figure of the run)."""
    rate = done / elapsed if elapsed > 0 else 0.0
    share = f" ({100 * done / total:.1f}%)" if total else ""
    if final:
        return f"{desc}: {done}/{total} samples{share}, {duration_text(elapsed)} elapsed"
    eta = duration_text((total - done) / rate) if rate > 0 and total >= done else "?"
    return f"{desc}: {done}/{total} samples{share}, {rate:.3g} samples/s, {duration_text(elapsed)} elapsed, ETA {eta}"


class Progress:
    """tqdm on a terminal; otherwise a log line every ``interval`` seconds (and one at the end)."""

    def __init__(self, total: int, desc: str, *, enabled: bool = True, interval: float = DEFAULT_INTERVAL,
                 stream: TextIO | None = None, logger: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        stream = sys.stderr if stream is None else stream
        self.total, self.desc, self.done = total, desc, 0
        self._log = logger or logging.getLogger("revise_prep.progress")
        self._clock = clock
        self._start = self._last = clock()
        self._interval = interval
        self._bar: Any = None
        self._lines = enabled and not _isatty(stream)
        if enabled and not self._lines:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, unit="sample", dynamic_ncols=True, desc=desc, file=stream)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._lines:
            now = self._clock()
            if now - self._last >= self._interval and self.done < self.total:  # the last one: close() says it
                self._last = now
                self._log.info("%s", progress_line(self.desc, self.done, self.total, now - self._start))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._lines and self.done:
            self._log.info("%s", progress_line(self.desc, self.done, self.total, self._clock() - self._start,
                                               final=True))
        self._lines = False


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Notices:
    """Per-sample messages, the first ``shown`` of each kind logged and the rest counted (:meth:`flush` logs
    one line per kind that had more). ``where`` names the report that lists them all."""

    def __init__(self, logger: logging.Logger, *, shown: int = NOTICES_SHOWN) -> None:
        self._log = logger
        self.shown = shown
        self.counts: Counter = Counter()
        self._where: dict[str, str] = {}
        self._level: dict[str, int] = {}
        self.known: dict[str, str] = {}  # sample name -> reason an earlier run skipped it for (not logged again)
        self.again: Counter = Counter()  # such skips met again, by reason

    def sample(self, name: str | None, error: Any, msg: str, *args: Any) -> None:
        """A sample skipped or failed (``error``: a SampleError): a rule skip an earlier run recorded for the same
        reason is counted for :meth:`flush`, anything else is a notice of its reason's kind."""
        if error.skip and name is not None and self.known.get(name) == error.reason:
            self.again[error.reason] += 1
            return
        self(error.reason, msg, *args)

    def __call__(self, kind: str, msg: str, *args: Any, level: int = logging.WARNING,
                 where: str = "failures.jsonl") -> None:
        self.counts[kind] += 1
        self._where[kind], self._level[kind] = where, level
        if self.counts[kind] <= self.shown:
            self._log.log(level, msg, *args)

    def flush(self) -> None:
        """One line per kind with notices not shown, one for the skips met again; counts start again."""
        for kind, n in self.counts.items():
            if n > self.shown:
                self._log.log(self._level[kind], "%s: %d more like this not shown (%d in all; every one is in %s)",
                              kind, n - self.shown, n, self._where[kind])
        if self.again:
            self._log.info("%d sample(s) skipped again for the reason an earlier run recorded (%s; every one is in "
                           "failures.jsonl)", sum(self.again.values()),
                           ", ".join(f"{k} {v}" for k, v in sorted(self.again.items())))
        self.counts.clear()
        self.again.clear()
