"""TransformPool: same rows for any thread count, errors surface, raw frames waiting are bounded."""

from __future__ import annotations

import time

import numpy as np
import pytest

from revise_prep.video.transform import frame_to_u8_into
from revise_prep.video.transform_pool import TransformPool


def _frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for _ in range(n)]


@pytest.mark.parametrize("threads", [0, 1, 2, 4])
def test_rows_identical_to_sequential(threads):
    frames = _frames(9)
    expected = np.empty((9, 3, 18, 32), np.uint8)
    for k, f in enumerate(frames):
        frame_to_u8_into(f, expected[k])
    out = np.zeros_like(expected)
    order = [4, 0, 8, 2, 6, 1, 3, 7, 5]  # rows filled out of order
    with TransformPool(frame_to_u8_into, out, threads) as pool:
        for row in order:
            pool.put(frames[row], row)
        pool.finish()
    assert np.array_equal(out, expected)


def test_error_is_raised_by_finish():
    def broken(frame, row):
        raise ValueError("bad frame")

    with TransformPool(broken, np.zeros((2, 1)), 2) as pool:
        pool.put(np.zeros(1), 0)
        with pytest.raises(ValueError, match="bad frame"):
            pool.finish()


def test_waiting_frames_are_bounded():
    def slow(frame, row):
        time.sleep(0.01)
        row[...] = frame

    out, peak = np.zeros((20, 1)), 0
    with TransformPool(slow, out, 2) as pool:
        for k in range(20):
            pool.put(np.full(1, k), k)
            peak = max(peak, len(pool.pending))
        pool.finish()
    assert peak == 4 and np.array_equal(out[:, 0], np.arange(20))
