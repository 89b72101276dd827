"""Property tests of the frame-selection rules against brute-force statements of SPEC §Step 1.2-1.4."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from revise_prep.video.selection import effective_interval, frame_indices, orientation_mismatch

counts = st.integers(min_value=0, max_value=400)
frame_nums = st.integers(min_value=1, max_value=100)
intervals = st.integers(min_value=1, max_value=8)
skips = st.integers(min_value=0, max_value=30)


def brute_interval(total: int, frame_num: int, interval: int, skip: int, strict: bool) -> int:
    """Largest r in 1..interval whose sampled span fits (0 if none), written without any loop-down."""
    def fits(r: int) -> bool:
        last_index = skip + (frame_num - 1) * r  # last frame sampled
        needed = last_index + 1 + (r - 1 if strict else 0)  # original demands r-1 frames more
        return total >= needed
    ok = [r for r in range(1, interval + 1) if fits(r)]
    return max(ok) if ok else 0


@settings(max_examples=400, deadline=None)
@given(counts, frame_nums, intervals, skips, st.booleans())
def test_effective_interval_matches_brute_force(total, frame_num, interval, skip, strict):
    assert effective_interval(total, frame_num, interval, skip, strict) == brute_interval(
        total, frame_num, interval, skip, strict)


def test_effective_interval_fixture_examples():
    # README cases p15 (off-by-one lowers 3 -> 2), p16 (exactly enough), p18 (too short), p12.
    assert effective_interval(18, 5, 3, 4) == 2
    assert effective_interval(18, 5, 3, 4, strict=False) == 3
    assert effective_interval(18, 9, 2, 0) == 2
    assert effective_interval(18, 17, 2, 4) == 0
    assert effective_interval(48, 17, 3, 4) == 2
    assert effective_interval(101, 81, 3, 0) == 1
    assert effective_interval(80, 81, 3, 0, strict=False) == 0


@settings(max_examples=200, deadline=None)
@given(frame_nums, intervals, skips)
def test_frame_indices(frame_num, interval, skip):
    idx = frame_indices(frame_num, interval, skip)
    assert len(idx) == frame_num
    assert idx[0] == skip
    assert all(b - a == interval for a, b in zip(idx, idx[1:]))
    assert idx == list(range(skip, skip + frame_num * interval, interval))


@settings(max_examples=300, deadline=None)
@given(*(st.integers(min_value=1, max_value=4000) for _ in range(4)))
def test_orientation_mismatch_brute(src_h, src_w, tgt_h, tgt_w):
    def kind(h, w):
        return "square" if h == w else ("portrait" if h > w else "landscape")
    a, b = kind(src_h, src_w), kind(tgt_h, tgt_w)
    expected = {a, b} == {"portrait", "landscape"}
    assert orientation_mismatch(src_h, src_w, tgt_h, tgt_w) is expected


def test_orientation_examples():
    assert orientation_mismatch(720, 1280, 112, 64)  # p03: portrait target, landscape video
    assert orientation_mismatch(640, 360, 64, 112)  # p13
    assert not orientation_mismatch(640, 640, 112, 64)  # p22: square video
    assert not orientation_mismatch(720, 1280, 48, 48)  # p02: square target
    assert not orientation_mismatch(640, 360, 112, 64)
