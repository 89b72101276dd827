"""Which source frames to sample (SPEC §Step 1, items 2-4): pure functions, no I/O."""

from __future__ import annotations

__all__ = ["effective_interval", "frame_indices", "frames_needed", "orientation_mismatch"]


def frames_needed(frame_num: int, interval: int, skip: int, strict: bool = True) -> int:
    """Frames a video must have to be sampled at ``interval``.

    ``strict=True`` is the original's (off-by-one) condition ``frame_num*interval + skip``;
    ``strict=False`` is what is really needed, ``(frame_num-1)*interval + 1 + skip``.
    """
    if strict:
        return frame_num * interval + skip
    return (frame_num - 1) * interval + 1 + skip


def effective_interval(total: int, frame_num: int, interval: int, skip: int, strict: bool = True) -> int:
    """Lower ``interval`` by one while the video is too short for it; 0 means too short even at 1.

    Mirrors the original loop ``while total < frame_num * rate + skip: rate -= 1`` (stopping at 0).
    """
    if frame_num < 1:
        raise ValueError(f"frame_num must be >= 1 (got {frame_num})")
    rate = interval
    while rate > 0 and total < frames_needed(frame_num, rate, skip, strict):
        rate -= 1
    return max(rate, 0)


def frame_indices(frame_num: int, interval: int, skip: int) -> list[int]:
    """Source frame numbers (0-based, decode order): ``skip + k*interval`` for k in 0..frame_num-1."""
    if interval < 1:
        raise ValueError(f"interval must be >= 1 (got {interval})")
    return [skip + k * interval for k in range(frame_num)]


def orientation_mismatch(src_h: int, src_w: int, tgt_h: int, tgt_w: int) -> bool:
    """True when one of source/target is portrait (h > w) and the other landscape (w > h).

    A square source or a square target never mismatches (the original's rule).
    """
    src_portrait, src_landscape = src_h > src_w, src_w > src_h
    tgt_portrait, tgt_landscape = tgt_h > tgt_w, tgt_w > tgt_h
    return (tgt_portrait and src_landscape) or (tgt_landscape and src_portrait)
