"""Synthetic test videos written with PyAV (fast, deterministic): rich moving content, truncated and broken files.

Used by the tests, the demo and the benchmarks; nothing here is needed at run time.
"""

from __future__ import annotations

import logging
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

__all__ = ["make_video", "make_truncated", "make_not_a_video", "make_empty", "synthetic_frame"]

log = logging.getLogger(__name__)


def _pick_codec(codec: str) -> str:
    """``codec`` when this PyAV build can encode it, else mpeg4 (always built in)."""
    try:
        av.codec.Codec(codec, "w")
        return codec
    except Exception:  # noqa: BLE001 - any lookup failure means "not available"
        log.warning("encoder %s unavailable, falling back to mpeg4", codec)
        return "mpeg4"


class _Painter:
    """Draws frame ``i`` of a deterministic scene: gradient background, moving shapes, seeded noise."""

    def __init__(self, width: int, height: int, seed: int, pattern: str) -> None:
        if pattern not in ("moving", "static", "noise"):
            raise ValueError(f"unknown pattern {pattern!r}")
        self.w, self.h, self.pattern = width, height, pattern
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        self.yy, self.xx = yy, xx
        base = np.empty((height, width, 3), np.float32)
        base[..., 0] = 255.0 * xx / max(width - 1, 1)
        base[..., 1] = 255.0 * yy / max(height - 1, 1)
        base[..., 2] = 128.0 + 100.0 * np.sin((xx + yy) / max(width, height) * 6.283 * (1 + seed % 3))
        self.base = base
        # Noise tile shifted per frame: cheap "texture" that moves, so the encoder gets real work.
        self.noise = rng.integers(-24, 25, size=(height, width, 1), dtype=np.int16).astype(np.float32)
        n_shapes = 4
        self.centres = rng.uniform(0.1, 0.9, size=(n_shapes, 2)) * (width, height)
        self.velocity = rng.uniform(-0.02, 0.02, size=(n_shapes, 2)) * (width, height)
        self.radius = rng.uniform(0.05, 0.15, size=n_shapes) * min(width, height)
        self.colours = rng.integers(0, 256, size=(n_shapes, 3)).astype(np.float32)

    def frame(self, i: int) -> np.ndarray:
        """RGB uint8 HxWx3 frame number ``i``."""
        if self.pattern == "noise":
            rng = np.random.default_rng(i)
            return rng.integers(0, 256, size=(self.h, self.w, 3), dtype=np.uint8)
        img = self.base.copy()
        if self.pattern == "moving":
            img += np.roll(self.noise, shift=(3 * i, 5 * i), axis=(0, 1))
            img[..., 2] += 40.0 * np.sin(i / 7.0)
            for (cx, cy), (vx, vy), r, col in zip(self.centres, self.velocity, self.radius, self.colours):
                x = (cx + vx * i) % self.w
                y = (cy + vy * i) % self.h
                x0, x1 = int(max(x - r, 0)), int(min(x + r + 1, self.w))
                y0, y1 = int(max(y - r, 0)), int(min(y + r + 1, self.h))
                if x1 <= x0 or y1 <= y0:
                    continue
                sub = (self.xx[y0:y1, x0:x1] - x) ** 2 + (self.yy[y0:y1, x0:x1] - y) ** 2 <= r * r
                img[y0:y1, x0:x1][sub] = col
        return np.clip(img, 0, 255).astype(np.uint8)


def synthetic_frame(i: int, *, width: int, height: int, seed: int = 0, pattern: str = "moving") -> np.ndarray:
    """Frame ``i`` of the scene :func:`make_video` encodes (before lossy compression)."""
    return _Painter(width, height, seed, pattern).frame(i)


def make_video(
    path: str | Path,
    *,
    frames: int,
    width: int,
    height: int,
    fps: int = 20,
    codec: str = "libx264",
    pattern: str = "moving",
    seed: int = 0,
    crf: int = 23,
    preset: str = "veryfast",
    gop: int | None = None,
    faststart: bool = False,
    rotation: int = 0,
) -> Path:
    """Encode ``frames`` synthetic frames to ``path`` (yuv420p, B-frames with libx264) and return the path.

    ``faststart`` moves the moov index to the front (so a cut file still opens); ``rotation`` writes a
    display-matrix rotation (degrees, counter-clockwise as FFmpeg stores it) without touching the pixels.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = _pick_codec(codec)
    painter = _Painter(width, height, seed, pattern)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as out:
        stream = out.add_stream(codec, rate=Fraction(fps, 1))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": preset}
        else:
            stream.bit_rate = max(200_000, width * height * fps // 4)
        if gop:
            stream.codec_context.gop_size = gop
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            vf = av.VideoFrame.from_ndarray(painter.frame(i), format="rgb24")
            out.mux(stream.encode(vf))
        out.mux(stream.encode(None))
    return path


def make_truncated(src: str | Path, dst: str | Path, keep_fraction: float) -> Path:
    """Copy the first ``keep_fraction`` of ``src``'s bytes to ``dst`` (a file cut mid-write or mid-download)."""
    if not 0.0 <= keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in [0, 1] (got {keep_fraction})")
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(data[: int(len(data) * keep_fraction)])
    return dst


def make_not_a_video(path: str | Path) -> Path:
    """A small text file with a video extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("This is not a video, only text saved with a video file name.\n" * 3, encoding="utf-8")
    return path


def make_empty(path: str | Path) -> Path:
    """A zero-byte file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def copy_video(src: str | Path, dst: str | Path) -> Path:
    """Plain copy (helper for tests that need a fixture video under a new name)."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def make_audio_only(path: str | Path) -> Path:
    """A valid media file without a video stream (0.1 s of silence)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return path


def make_vfr_video(path: str | Path, *, frames: int, width: int, height: int, seed: int = 0) -> Path:
    """A variable-frame-rate clip: frame durations alternate between 1 and 3 ticks of 1/30 s."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    painter = _Painter(width, height, seed, "moving")
    with av.open(str(path), "w") as out:
        stream = out.add_stream(_pick_codec("libx264"), rate=Fraction(30, 1))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 30)
        pts = 0
        for i in range(frames):
            vf = av.VideoFrame.from_ndarray(painter.frame(i), format="rgb24")
            vf.pts, vf.time_base = pts, Fraction(1, 30)
            pts += 1 if i % 2 else 3
            out.mux(stream.encode(vf))
        out.mux(stream.encode(None))
    return path
