"""Open a video and learn its size, rate and frame count without decoding it (SPEC §Step 1.1).

The original counts frames by decoding the whole file. We read the count from the container index
when the index is trustworthy, else count packets by demuxing only, and decode only for files whose
data is cut short (there the number of *decodable* frames, which drives the interval, needs a decoder).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import av

from revise_prep.errors import (CANNOT_OPEN, DECODE_ERROR, EMPTY_FILE, INSUFFICIENT_FRAMES, MISSING_FILE,
                                NO_VIDEO_STREAM, VideoError)

__all__ = ["VideoInfo", "probe_video", "probe_open", "count_frames_decode", "count_indexed_frames", "open_video",
           "CountMethod"]

log = logging.getLogger(__name__)

CountMethod = Literal["metadata", "packets", "decode"]

# FFmpeg's names of the transfer characteristics (AVColorTransferCharacteristic), by value.
_TRANSFERS = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear", 9: "log100",
              10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1", 14: "bt2020-10",
              15: "bt2020-12", 16: "smpte2084", 17: "smpte428", 18: "arib-std-b67"}
HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})


@dataclass(frozen=True)
class VideoInfo:
    """What we know about a video before decoding it.

    ``width``/``height`` are the stored (coded) size; ``rotation`` is the display-matrix angle (degrees
    counter-clockwise, as FFmpeg reports it; 0 when absent or not read) and ``display_size`` the size after
    it (what OpenCV reports and the original's orientation test uses). ``count_method`` says how
    ``num_frames`` was found. ``pix_fmt``/``bit_depth``/``color_transfer`` come from the stream header,
    ``interlaced`` from the first decoded frame (None: not decoded yet).
    """

    path: str
    width: int
    height: int
    fps: float
    num_frames: int
    count_method: CountMethod
    rotation: int
    codec: str
    duration_s: float | None
    pix_fmt: str | None = None
    bit_depth: int | None = None
    color_transfer: str | None = None  # FFmpeg's transfer name, e.g. "bt709", "smpte2084" (PQ), "arib-std-b67" (HLG)
    interlaced: bool | None = None

    @property
    def hdr(self) -> bool:
        """True for a PQ or HLG transfer (HDR video; its RGB conversion is build-dependent in OpenCV)."""
        return self.color_transfer in HDR_TRANSFERS

    @property
    def display_size(self) -> tuple[int, int]:
        """(height, width) after applying the rotation (what a player shows)."""
        if self.rotation % 180:
            return self.width, self.height
        return self.height, self.width


def _check_file(path: Path) -> int:
    """Size of ``path`` in bytes; VideoError(missing_file / empty_file) when unusable."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise VideoError(MISSING_FILE, f"video file not found: {path}") from None
    except OSError as exc:
        raise VideoError(CANNOT_OPEN, f"cannot open video {path}: {exc}") from exc
    if not path.is_file():
        raise VideoError(CANNOT_OPEN, f"cannot open video {path}: not a regular file")
    if size == 0:
        raise VideoError(EMPTY_FILE, f"video file is empty (0 bytes): {path}")
    return size


def open_video(path: str | os.PathLike[str]) -> tuple[av.container.InputContainer, av.video.stream.VideoStream, int]:
    """Open ``path`` with PyAV; return (container, first video stream, file size). Caller closes."""
    p = Path(path)
    size = _check_file(p)
    try:
        container = av.open(str(p), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(CANNOT_OPEN, f"cannot open video {p}: {type(exc).__name__}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(NO_VIDEO_STREAM, f"no video stream in {p}")
    return container, container.streams.video[0], size


def _index_is_complete(stream: av.video.stream.VideoStream, file_size: int) -> bool:
    """True when the demuxer's index lists exactly ``stream.frames`` samples, all inside the file.

    A file cut after a front index (MP4 "faststart") still promises every sample; their byte ranges
    then run past the end of the file, which this detects without reading the data.
    """
    if not stream.frames or stream.frames <= 0:
        return False
    entries = stream.index_entries
    n = len(entries)
    if n != stream.frames:
        return False
    end = 0
    for e in entries:
        if e.is_discard or e.size <= 0:
            return False  # frames the decoder drops (edit lists) or odd entries: let packets decide
        end = max(end, e.pos + e.size)
    return end <= file_size


def _count_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                   file_size: int) -> int | None:
    """Count the stream's frames by demuxing only; None when a packet is cut short (needs a decode)."""
    n = 0
    try:
        for packet in container.demux(stream):
            if packet.size <= 0:
                continue  # flush packet
            if packet.is_corrupt or (packet.pos is not None and packet.pos >= 0 and packet.pos + packet.size > file_size):
                return None
            if packet.is_discard:
                continue
            n += 1
    except av.error.FFmpegError:
        return None
    return n


def _decode_count(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Frames that decode before the end or the first decoder error (the original's count)."""
    n = 0
    try:
        for _ in container.decode(stream):
            n += 1
    except av.error.InvalidDataError:
        pass  # PyAV raises after the last good frame of a cut file; OpenCV stops quietly there
    return n


def _first_frame_facts(path: Path) -> tuple[int, bool | None]:
    """(display-matrix rotation, interlaced) of the first decoded frame (PyAV exposes both on frames only)."""
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(container.streams.video[0]):
                return int(round(frame.rotation or 0)), bool(frame.interlaced_frame)
    except av.error.FFmpegError:
        return 0, None
    return 0, None


def _pixel_facts(stream: av.video.stream.VideoStream) -> tuple[str | None, int | None, str | None]:
    """(pixel format, bits per component, transfer name) from the stream header; None where unknown."""
    ctx = stream.codec_context
    pix_fmt = ctx.pix_fmt
    bits = None
    if pix_fmt:
        try:
            bits = max(c.bits for c in av.VideoFormat(pix_fmt).components)
        except (ValueError, av.error.FFmpegError):
            bits = None
    return pix_fmt, bits, _TRANSFERS.get(int(ctx.color_trc or 2))


Method = Literal["auto", "metadata", "packets", "decode"]


def _describe(container: av.container.InputContainer, stream: av.video.stream.VideoStream, file_size: int,
              path: str | os.PathLike[str], method: Method) -> tuple[VideoInfo, bool]:
    """VideoInfo of an open video; the flag says whether packets were read (container no longer at start)."""
    if method not in ("auto", "metadata", "packets", "decode"):
        raise ValueError(f"unknown count method {method!r}")
    count: int | None = None
    used: CountMethod = "metadata"
    touched = False
    if method == "metadata":
        count = int(stream.frames or 0)
    elif method == "auto" and _index_is_complete(stream, file_size):
        count = int(stream.frames)
    if count is None and method in ("auto", "packets"):
        touched = True
        count, used = _count_packets(container, stream, file_size), "packets"
        if count is None:
            log.info("%s: data cut short (index promises %s frames); counting by decoding", path, stream.frames)
            container.seek(0)
    if count is None:
        touched = True
        count, used = _decode_count(container, stream), "decode"
    fps = float(stream.average_rate or stream.guessed_rate or 0.0)
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    rotation = 0
    try:
        rotation = int(stream.metadata.get("rotate", 0))  # old-style tag; the display matrix is read from frames
    except ValueError:
        pass
    pix_fmt, bits, transfer = _pixel_facts(stream)
    info = VideoInfo(path=str(path), width=int(stream.width), height=int(stream.height), fps=fps,
                     num_frames=count, count_method=used, rotation=rotation,
                     codec=stream.codec_context.name, duration_s=duration, pix_fmt=pix_fmt, bit_depth=bits,
                     color_transfer=transfer)
    return info, touched


def probe_open(path: str | os.PathLike[str], *, method: Method = "auto",
               ) -> tuple[av.container.InputContainer, av.video.stream.VideoStream, VideoInfo]:
    """Probe like :func:`probe_video` (no rotation read) and return the container ready to decode from
    the start, so a reader opens the file once. The caller closes the container."""
    container, stream, file_size = open_video(path)
    try:
        info, touched = _describe(container, stream, file_size, path, method)
    except BaseException:
        container.close()
        raise
    if touched:  # packets were read: reopen rather than trust a seek to restore the exact decoder input
        container.close()
        container, stream, _ = open_video(path)
    return container, stream, info


def probe_video(path: str | os.PathLike[str], *, method: Method = "auto", read_rotation: bool = True) -> VideoInfo:
    """Describe the video at ``path``; frame count by the cheapest method that equals a full decode.

    ``method="auto"``: index metadata when complete (:func:`_index_is_complete`), else demux-only packet
    count, else (a packet cut short) a decode count. ``"packets"`` skips the metadata step (still falls
    back to decoding for a cut file); ``"metadata"`` trusts ``stream.frames`` blindly (tests only);
    ``"decode"`` always decodes. ``read_rotation`` decodes the first frame to read its display matrix (and
    whether it is interlaced).
    Raises VideoError: missing_file, empty_file, cannot_open, no_video_stream.
    """
    container, stream, file_size = open_video(path)
    try:
        info, _ = _describe(container, stream, file_size, path, method)
    finally:
        container.close()
    if read_rotation:
        rot, interlaced = _first_frame_facts(Path(path))
        info = replace(info, rotation=rot or info.rotation, interlaced=interlaced)
    return info


def count_frames_decode(path: str | os.PathLike[str]) -> int:
    """Number of frames a full decode yields (the original's count); the reference for tests/benchmarks."""
    container, stream, _ = open_video(path)
    try:
        return _decode_count(container, stream)
    finally:
        container.close()


def count_indexed_frames(path: str | os.PathLike[str]) -> int:
    """decord's ``len(vr)``: the container's frame count (packet count when it has none).

    All video packets are demuxed (cheap, no decoding); fewer packets than the header promises means a cut file,
    which decord rejects at open, so it is reported as ``decode_error``. Packets an MP4 edit list hides (a
    stream-copied cut starting mid-GOP) are not frames: decord counts them and returns repeated or wrong frames
    for the last indices; we count only the frames a decoder outputs (as step 1 does).
    """
    container, stream, _ = open_video(path)
    with container:
        promised = int(stream.frames or 0)
        packets = hidden = 0
        try:
            for packet in container.demux(stream):
                if packet.size:
                    packets += 1
                    hidden += bool(packet.is_discard)
        except av.error.FFmpegError as exc:
            raise VideoError(DECODE_ERROR, f"cannot read packets of {path}: {exc}") from exc
    if promised and packets < promised:
        raise VideoError(
            DECODE_ERROR,
            f"{path} is truncated: its header promises {promised} frames but only {packets} packets are present",
        )
    total = (promised or packets) - hidden
    if total < 1:
        raise VideoError(INSUFFICIENT_FRAMES, f"no frames in {path}")
    return total
