"""Crop/resize frames on a few threads while the decoder goes on (PIL and FFmpeg release the GIL).

PIL's exact bilinear resize is most of the cost of a sampled frame (about 7 ms for 720p -> 480x832, against
about 2.5 ms to decode it), so a reader given ``threads`` > 1 transforms frames on that many threads. Each
frame goes to its own output row, so the result does not depend on the thread count.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

__all__ = ["TransformPool"]


class TransformPool:
    """``put(frame, row)`` runs ``fn(frame, out[row])`` now (threads <= 1) or on a thread; ``finish`` waits.

    At most ``2 * threads`` frames wait at a time, so a fast decoder cannot pile up raw frames in memory.
    Use as a context manager: leaving it waits for running work and drops what has not started.
    """

    def __init__(self, fn: Callable[[np.ndarray, np.ndarray], None], out: np.ndarray, threads: int) -> None:
        self.fn, self.out = fn, out
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="frame-transform") if threads > 1 else None
        self.limit = 2 * max(threads, 1)
        self.pending: deque[Future] = deque()

    def put(self, frame: np.ndarray, row: int) -> None:
        if self.pool is None:
            self.fn(frame, self.out[row])
            return
        while len(self.pending) >= self.limit:
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(self.fn, frame, self.out[row]))

    def finish(self) -> None:
        """Wait for every frame put so far; re-raises the first transform error."""
        while self.pending:
            self.pending.popleft().result()

    def __enter__(self) -> TransformPool:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
