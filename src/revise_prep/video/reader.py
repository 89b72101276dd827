"""Decode exactly the frames the original picks (SPEC §Step 1.1-1.6), and nothing after the last one.

Order of the rules follows the original: count -> lower the interval -> orientation check -> decode.
Only the wanted frames are converted to RGB, each is cropped/resized as it arrives (the whole video
is never held), and decoding stops right after the last wanted frame.

Rotation: both readers of the original (OpenCV's FFmpeg backend, ``CAP_PROP_ORIENTATION_AUTO`` on by
default, and decord) turn frames upright by the display matrix, and OpenCV reports the displayed size.
So do we by default (``FrameSettings.auto_rotate``): frames are rotated before the crop, and the
orientation check uses the displayed size. The matrix travels on decoded frames, so it is read from the
first frame of the decoding pass itself (no second probe) and the orientation check runs then, before
any frame is transformed. ``auto_rotate=False`` keeps the stored orientation. ``Clip.info.rotation`` is
the display matrix's angle, ``Clip.rotation`` the rotation applied (0 when not applied).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import av
import numpy as np
import torch

from revise_prep.errors import DECODE_ERROR, INSUFFICIENT_FRAMES, ORIENTATION_MISMATCH, VideoError
from revise_prep.settings import FrameSettings

from .probe import VideoInfo, open_video, probe_open
from .selection import effective_interval, frame_indices, frames_needed, orientation_mismatch
from .skipping import SKIPPABLE_CODECS, Demuxed, demux_all, worth_skipping
from .transform import frame_to_tensor_into, frame_to_u8_into
from .transform_pool import TransformPool

__all__ = ["Clip", "DecodeStats", "applied_rotation", "check_orientation", "iter_frames_rgb", "read_clip",
           "read_frames_rgb", "sampling_interval"]

log = logging.getLogger(__name__)


@dataclass
class Clip:
    """Frames sampled from one video plus how they were chosen.

    ``frames`` is float32 [T,3,H,W] in [-1,1], or, when read with ``dtype=torch.uint8``, the same frames
    cropped and resized but not yet normalised (uint8 [T,3,H,W]; ``normalise_pixels`` gives the floats).
    """

    frames: torch.Tensor
    indices: list[int]
    interval: int  # effective interval after lowering
    requested_interval: int
    info: VideoInfo
    extra: dict[int, np.ndarray] = field(default_factory=dict)  # raw RGB frames asked for via ``extra_indices``
    rotation: int = 0  # degrees (counter-clockwise) the frames were turned by; 0 with ``auto_rotate=False``


def _configure_threads(stream: av.video.stream.VideoStream, threads: int) -> None:
    """``threads`` > 0: frame+slice threading with that many threads; 0 leaves the library default."""
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (got {threads})")
    if threads > 0:
        stream.codec_context.thread_type = "AUTO"
        stream.codec_context.thread_count = threads


def _rotate(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a display-matrix rotation (degrees counter-clockwise), as OpenCV's auto-orientation does.

    ``np.rot90(k=rotation/90)``: verified equal to OpenCV 5.0 and decord 0.6.0 for 90, 180 and 270 degrees.
    """
    k = (int(round(rotation / 90.0))) % 4
    if not k:
        return rgb
    if rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.dtype == np.uint8 and rgb.flags.c_contiguous:
        # move whole 3-byte pixels: about twice as fast as numpy's strided copy of single bytes
        h, w = rgb.shape[:2]
        pixels = np.ascontiguousarray(np.rot90(rgb.view("V3").reshape(h, w), k=k))
        return pixels.view(np.uint8).reshape(*pixels.shape, 3)
    return np.ascontiguousarray(np.rot90(rgb, k=k))


@dataclass
class DecodeStats:
    """Filled in by :func:`iter_frames_rgb`: frames decoded so far and the first frame's rotation/interlacing."""

    decoded: int = 0
    rotation: int | None = None
    interlaced: bool | None = None
    ended_early: bool = False  # the stream ended (or the decoder gave up) before the last wanted frame


def _decode_wanted(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                   path: str | os.PathLike[str], wanted: Sequence[int], threads: int, auto_rotate: bool,
                   stats: DecodeStats) -> Iterator[tuple[int, np.ndarray]]:
    """Core loop over an open container at its start; ``wanted`` sorted, distinct, non-empty. Does not close.

    H.264 frames that are neither wanted nor referenced are skipped undecoded (``skipping``: the packets are
    read first to place frames by timestamp); if the timestamps turn out not to place the frames, the video is
    decoded again frame by frame.
    """
    want, last = set(wanted), wanted[-1]
    _configure_threads(stream, threads)
    if stream.codec_context.name not in SKIPPABLE_CODECS or not worth_skipping(wanted):
        yield from _walk(container.decode(stream), path, want, last, auto_rotate, stats, _Enumerate(stats))
        return
    demuxed = demux_all(container, stream)
    done = -1
    if demuxed is not None:
        try:
            placer = _ByTimestamp(demuxed.ranks, wanted)
            for idx, rgb in _walk(_skipping_frames(stream, demuxed, want, placer), path, want, last,
                                  auto_rotate, stats, placer):
                done = idx
                yield idx, rgb
            return
        except _Misplaced as exc:
            log.info("%s: %s; decoding every frame instead", path, exc)
    container, stream, _ = open_video(path)  # the first container is spent: start again from the top
    try:
        _configure_threads(stream, threads)
        stats.decoded, stats.ended_early = 0, False
        for idx, rgb in _walk(container.decode(stream), path, want, last, auto_rotate, stats, _Enumerate(stats)):
            if idx > done:
                yield idx, rgb
    finally:
        container.close()


class _Misplaced(Exception):
    """A frame the timestamps cannot place while skipping: fall back to decoding every frame."""


class _Enumerate:
    """Frames arrive one per display position: a frame's index is the number decoded before it."""

    def __init__(self, stats: DecodeStats) -> None:
        self.stats = stats

    def __call__(self, frame: av.VideoFrame) -> int:
        return self.stats.decoded


class _ByTimestamp:
    """While skipping, a frame's index is its pts rank. Indices must start at 0, only increase and pass no
    wanted index (a frame the decoder dropped would shift a full decode's positions: not ours to guess)."""

    def __init__(self, ranks: dict[int, int], wanted: Sequence[int]) -> None:
        self.ranks, self.previous = ranks, -1
        self._pending = iter(wanted)
        self._next = next(self._pending, None)

    @property
    def started(self) -> bool:
        """A frame has come out (and was placed at 0)."""
        return self.previous >= 0

    def __call__(self, frame: av.VideoFrame) -> int:
        idx = self.ranks.get(frame.pts) if frame.pts is not None else None
        if idx is None or idx <= self.previous or (not self.started and idx != 0):
            raise _Misplaced(f"frame with pts {frame.pts} does not follow position {self.previous}")
        if self._next is not None and self._next < idx:
            raise _Misplaced(f"wanted frame {self._next} did not come out before frame {idx}")
        if idx == self._next:
            self._next = next(self._pending, None)
        self.previous = idx
        return idx


def _skipping_frames(stream: av.video.stream.VideoStream, demuxed: Demuxed, want: set[int],
                     placer: _ByTimestamp) -> Iterator[av.VideoFrame]:
    """Decoded frames, asking the decoder to drop non-reference packets whose frame is not wanted.

    Nothing is skipped until the first frame has come out (and was placed at 0), so a stream whose
    start the decoder drops is caught before any skipping could hide it.
    """
    ctx = stream.codec_context
    keep = {pts for pts, idx in demuxed.ranks.items() if idx in want}
    mode = "DEFAULT"
    for packet in demuxed.packets:
        if placer.started:
            wanted_mode = "DEFAULT" if packet.pts in keep else "NONREF"
            if wanted_mode != mode:
                ctx.skip_frame = mode = wanted_mode
        yield from ctx.decode(packet)
    yield from ctx.decode(None)  # flush the frames the decoder still holds


def _walk(frames: Iterator[av.VideoFrame], path: str | os.PathLike[str], want: set[int], last: int,
          auto_rotate: bool, stats: DecodeStats, place) -> Iterator[tuple[int, np.ndarray]]:
    """Convert the wanted frames of ``frames`` (each placed by ``place``) to RGB; stop after ``last``."""
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            stats.ended_early = True
            return
        except av.error.InvalidDataError as exc:
            log.debug("%s: decoder stopped after %d frames: %s", path, stats.decoded, exc)
            stats.ended_early = True
            return
        except av.error.FFmpegError as exc:
            raise VideoError(DECODE_ERROR, f"{path}: decoding failed after {stats.decoded} frames: "
                             f"{type(exc).__name__}: {exc}") from exc
        if stats.rotation is None:
            stats.rotation = int(round(frame.rotation or 0))
            stats.interlaced = bool(frame.interlaced_frame)
        idx = place(frame)
        stats.decoded = idx + 1
        if idx in want:
            rgb = frame.to_ndarray(format="rgb24")
            if auto_rotate and frame.rotation:
                rgb = _rotate(rgb, frame.rotation)
            yield idx, rgb
            if idx >= last:
                return


def _wanted(indices: Sequence[int]) -> list[int]:
    wanted = sorted(set(int(i) for i in indices))
    if wanted and wanted[0] < 0:
        raise ValueError(f"frame indices must be >= 0 (got {wanted[0]})")
    return wanted


def iter_frames_rgb(path: str | os.PathLike[str], indices: Sequence[int], *, threads: int = 0,
                    auto_rotate: bool = True, stats: DecodeStats | None = None,
                    ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, HxWx3 uint8 RGB)`` for each wanted decode-order index, in increasing order.

    Decodes from the start, converts only wanted frames, stops after the last one. A decoder
    ``InvalidDataError`` ends the stream (as OpenCV ends quietly on a cut file); any other FFmpeg error
    raises VideoError(decode_error). Yields fewer frames than asked when the video ends early; the
    caller decides whether that is an error. ``auto_rotate``: frames upright by the display matrix (as both
    of the original's decoders return them); False gives the stored orientation.
    """
    wanted = _wanted(indices)
    if not wanted:
        return
    container, stream, _ = open_video(path)
    try:
        yield from _decode_wanted(container, stream, path, wanted, threads, auto_rotate,
                                  stats if stats is not None else DecodeStats())
    finally:
        container.close()


def read_frames_rgb(path: str | os.PathLike[str], indices: Sequence[int], *, threads: int = 0,
                    auto_rotate: bool = True) -> list[np.ndarray]:
    """Raw uint8 RGB frames at the given decode-order indices (order and repeats as given).

    Raises VideoError(decode_error) when the video ends before the largest index.
    """
    stats = DecodeStats()
    got = dict(iter_frames_rgb(path, indices, threads=threads, auto_rotate=auto_rotate, stats=stats))
    missing = [i for i in indices if i not in got]
    if missing:
        raise VideoError(DECODE_ERROR, f"{path}: the video ended after {stats.decoded} decoded frames; "
                                       f"frame {missing[0]} was wanted")
    return [got[i] for i in indices]


def sampling_interval(path: str | os.PathLike[str], total: int, settings: FrameSettings) -> int:
    """The interval the original would use for a video of ``total`` frames; VideoError(insufficient_frames,
    skip=True) when even interval 1 is too long (the original returns None)."""
    rate = effective_interval(total, settings.frame_num, settings.interval, settings.skip, settings.strict_count)
    if rate == 0:
        need = frames_needed(settings.frame_num, 1, settings.skip, settings.strict_count)
        raise VideoError(INSUFFICIENT_FRAMES, f"{path}: {total} frames, fewer than the {need} needed for "
                         f"{settings.frame_num} frames even at interval 1 (skip {settings.skip})", skip=True)
    return rate


def check_orientation(path: str | os.PathLike[str], src_h: int, src_w: int, settings: FrameSettings, *,
                      rotation: int = 0) -> None:
    """VideoError(orientation_mismatch, skip=True) for a portrait video and landscape target or the reverse.

    ``src_h``/``src_w``: the size the frames will have (displayed size when rotating); ``rotation`` (the
    quarter turn applied) only makes the message say so.
    """
    if settings.buckets:  # each sample already got the bucket closest to its aspect
        return
    if orientation_mismatch(src_h, src_w, settings.height, settings.width):
        turned = f" once rotated by {rotation} degrees (display matrix)" if rotation % 360 else ""
        raise VideoError(ORIENTATION_MISMATCH, f"{path}: video is {src_w}x{src_h} (WxH){turned}, target "
                         f"{settings.width}x{settings.height}: orientation differs", skip=True)


def read_clip(path: str | os.PathLike[str], settings: FrameSettings, *, threads: int = 0,
              auto_rotate: bool | None = None, info: VideoInfo | None = None, extra_indices: Sequence[int] = (),
              dtype: torch.dtype = torch.float32) -> Clip:
    """Sample ``settings.frame_num`` frames from ``path`` exactly as the original ``read_video_frames``.

    Raises VideoError: insufficient_frames / orientation_mismatch (``skip=True``, the original returns
    None), missing_file / empty_file / cannot_open / no_video_stream (the original raises), and
    decode_error when fewer frames decode than the count promised. ``info``: a VideoInfo from an earlier
    probe (skips probing; its ``num_frames`` drives the interval). ``threads``: decoder threads (0 =
    library default), and above 1 also threads for the crop/resize; results are identical for any value.
    ``extra_indices``: more decode-order frames to return raw (uint8 RGB, in ``Clip.extra``) from the same
    decoding pass, e.g. the AR model's frames; those the video does not reach are simply absent. ``dtype=torch.uint8``: return the resized frames before
    normalisation (a quarter of the memory to hand from a worker to the encoder; see ``Clip``).
    ``auto_rotate``: None follows ``settings.auto_rotate``; rotated frames also go to ``Clip.extra``.
    """
    if auto_rotate is None:
        auto_rotate = settings.auto_rotate
    if dtype not in (torch.float32, torch.uint8):
        raise ValueError(f"dtype must be torch.float32 or torch.uint8 (got {dtype})")
    if info is None:
        container, stream, info = probe_open(path)  # one open for probing and decoding
    else:
        container, stream, _ = open_video(path)
    try:
        return _read_clip_open(container, stream, path, settings, info, threads, auto_rotate, extra_indices, dtype)
    finally:
        container.close()


def _read_clip_open(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                    path: str | os.PathLike[str], settings: FrameSettings, info: VideoInfo, threads: int,
                    auto_rotate: bool, extra_indices: Sequence[int] = (), dtype: torch.dtype = torch.float32) -> Clip:
    """The rules of :func:`read_clip` on an open container positioned at the start."""
    total = info.num_frames
    rate = sampling_interval(path, total, settings)
    if rate != settings.interval:
        log.debug("%s: %d frames, interval lowered %d -> %d", path, total, settings.interval, rate)
    if not auto_rotate:
        check_orientation(path, info.height, info.width, settings)
    indices = frame_indices(settings.frame_num, rate, settings.skip)
    u8 = dtype == torch.uint8
    out = np.empty((len(indices), 3, settings.height, settings.width), dtype=np.uint8 if u8 else np.float32)
    transform = frame_to_u8_into if u8 else frame_to_tensor_into
    stats = DecodeStats()
    got = 0
    position = {idx: k for k, idx in enumerate(indices)}
    extra_wanted = set(extra_indices)
    extra: dict[int, np.ndarray] = {}
    wanted = sorted(set(indices) | extra_wanted)
    checked = not auto_rotate
    with TransformPool(transform, out, threads) as pool:
        try:
            for idx, rgb in _decode_wanted(container, stream, path, wanted, threads, auto_rotate, stats):
                if not checked:  # the display matrix came with the first frame: check the displayed size now
                    info = replace(info, rotation=stats.rotation or 0)
                    check_orientation(path, *info.display_size, settings, rotation=applied_rotation(info.rotation))
                    checked = True
                if idx in extra_wanted:
                    extra[idx] = rgb.copy()
                if idx in position:
                    pool.put(rgb, position[idx])  # transformed as it arrives; the RGB frame is then dropped
                    got += 1
        except VideoError:
            if got < len(indices):
                raise  # the clip itself is incomplete; past its last frame only the extras are lost
        pool.finish()

    if got < len(indices):
        raise VideoError(DECODE_ERROR, f"{path}: only {stats.decoded} frames decoded (got {got} of the "
                         f"{len(indices)} wanted, up to frame {indices[-1]}; the count said {total})")
    if stats.rotation is not None:
        info = replace(info, rotation=stats.rotation, interlaced=stats.interlaced)
    applied = applied_rotation(info.rotation) if auto_rotate else 0
    return Clip(frames=torch.from_numpy(out), indices=indices, interval=rate,
                requested_interval=settings.interval, info=info, extra=extra, rotation=applied)


def applied_rotation(rotation: int) -> int:
    """The display-matrix angle as the quarter turn :func:`_rotate` applies: 0, 90, 180 or 270."""
    return (int(round(rotation / 90.0)) % 4) * 90
