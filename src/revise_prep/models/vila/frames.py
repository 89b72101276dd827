"""Frame loading for the VILA AR path: upstream ``load_video(path, 8)`` on PyAV instead of decord.

PyAV's ``to_ndarray(format="rgb24")`` matches decord bit for bit on 8-bit video (README: Exactness lists where
decord 0.6.0 is broken); like decord, frames are turned upright by the file's display matrix (``auto_rotate=False``
keeps the stored orientation). Decord refuses a file whose container promises more frames than it holds (it
indexes every packet at open), so this loader demuxes all packets first and treats "fewer packets than promised"
as a decode error; frames are then decoded only up to the last index needed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from revise_prep import errors
from revise_prep.errors import VideoError
from revise_prep.video.probe import count_indexed_frames as count_frames  # decord's len(vr), shared with validate
from revise_prep.video.reader import DecodeStats, iter_frames_rgb

from .preprocess import ar_frame_indices

logger = logging.getLogger(__name__)

OnError = Literal["fail", "black"]
BLACK_SIZE = 448  # upstream fallback: 8 black 448x448 RGB images


def black_frames(count: int) -> list[Image.Image]:
    """The upstream fallback: ``count`` black 448x448 RGB images."""
    return [Image.new("RGB", (BLACK_SIZE, BLACK_SIZE), (0, 0, 0)) for _ in range(count)]


def load_ar_frames(
    path: str | os.PathLike[str],
    num_frames: int = 8,
    *,
    on_error: OnError = "fail",
    only_first: int | None = None,
    auto_rotate: bool = True,
    threads: int = 0,
) -> list[Image.Image]:
    """The ``num_frames`` sampled frames (``ar_frame_indices``) of a video as RGB PIL images.

    ``only_first=k`` returns just the first ``k`` sampled frames (the ones that reach the LLM, F4) and decodes
    no further; the truncation check still runs, but a decode error after them goes unnoticed.
    ``on_error="fail"`` raises :class:`VideoError` (reason ``missing_file``, ``empty_file``, ``cannot_open``,
    ``no_video_stream``, ``insufficient_frames`` or ``decode_error``); ``"black"`` reproduces upstream: any
    failure gives black 448x448 frames (``num_frames`` of them, or ``only_first``). ``threads``: decoder
    threads (0: one per CPU).
    """
    if on_error not in ("fail", "black"):
        raise ValueError(f"on_error must be 'fail' or 'black', got {on_error!r}")
    wanted = num_frames if only_first is None else min(only_first, num_frames)
    try:
        return _load(Path(path), num_frames, wanted, auto_rotate, threads)
    except VideoError as exc:
        if on_error == "fail":
            raise
        logger.warning("AR frames: %s (%s); using %d black frames as the original does", exc, exc.reason, wanted)
        return black_frames(wanted)


def _load(path: Path, num_frames: int, wanted: int, auto_rotate: bool = True, threads: int = 0) -> list[Image.Image]:
    if not path.is_file():
        raise VideoError(errors.MISSING_FILE, f"video file not found: {path}")
    if path.stat().st_size == 0:
        raise VideoError(errors.EMPTY_FILE, f"video file is empty: {path}")
    resolved = sample_indices(path, num_frames, wanted)
    frames = _decode_indices(path, sorted(set(resolved)), auto_rotate, threads)
    return [Image.fromarray(frames[r]) for r in resolved]


def sample_indices(path: Path, num_frames: int = 8, wanted: int | None = None) -> list[int]:
    """Decode-order indices of the first ``wanted`` of the ``num_frames`` sampled frames (``-1`` resolved to the
    last frame, as decord reads it); raises VideoError when the file is cut or the indices fall outside it."""
    total = count_frames(path)
    indices = ar_frame_indices(total, num_frames)[:wanted]
    resolved = [i + total if i < 0 else i for i in indices]
    bad = [i for i, r in zip(indices, resolved) if not 0 <= r < total]
    if bad:
        raise VideoError(errors.INSUFFICIENT_FRAMES, f"{path}: frame indices {bad} out of range for {total} frames")
    return resolved


def _decode_indices(path: Path, indices: list[int], auto_rotate: bool = True, threads: int = 0,
                    ) -> dict[int, np.ndarray]:
    """Decode frames in presentation order up to ``max(indices)``, keeping the requested ones as RGB24 arrays.

    Uses step 1's reader, so unwanted non-reference H.264 frames are skipped undecoded (8 frames spread over a
    video leave most of it unwanted).
    """
    stats = DecodeStats()
    out = dict(iter_frames_rgb(path, indices, threads=threads or os.cpu_count() or 1, auto_rotate=auto_rotate, stats=stats))
    missing = sorted(set(indices) - out.keys())
    if missing:
        raise VideoError(errors.DECODE_ERROR, f"{path}: frames {missing} could not be decoded "
                                              f"(the decoder stopped after {stats.decoded} frames)")
    return out
