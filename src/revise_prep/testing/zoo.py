"""A zoo of small videos encoded the ways real datasets arrive (codecs, containers, colour, rotation, cuts).

Each entry is written with PyAV in well under a second (64x48 .. 160x120, 12-30 frames), so tests generate
the whole zoo per session and compare our reader with the original's decoders (OpenCV for step 1, decord
for step 2). ``opencv`` / ``decord`` say what the original's decoders give on such a file at the versions
requirements-lock.txt pins (OpenCV 5.1, decord 0.6.0); the tests assert it. Used by tests and ``bench/``;
nothing here is needed at run time.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .videos import _Painter, make_vfr_video

__all__ = ["ZooVideo", "ZOO", "build_zoo", "keep_scheduling", "write_frames", "write_lossless",
           "patch_mp4_rotation", "make_cut_with_edit_list"]

# How the original's decoders behave on an entry, at the locked versions: equal to PyAV bit for bit, or not.
# (OpenCV 5.0 also gave black frames for interlaced H.264 and could not decode AV1; 5.1 gives our frames.)
SAME = "same"  # identical frames (after the same rotation)
UNREADABLE = "unreadable"  # the decoder cannot open it (decord 0.6.0 on AV1)
DEPENDS = "build_dependent"  # 10-bit / HDR / interlaced chroma: the 8-bit conversion depends on the build
WRONG = "wrong_frames"  # decord 0.6.0 returns other frames (MPEG-PS/TS, open GOP) or counts hidden ones (edit list)


@dataclass(frozen=True)
class ZooVideo:
    """One zoo entry: how to write it and what the original's decoders give on it."""

    name: str
    file: str  # file name (its extension picks the container)
    width: int  # stored size
    height: int
    frames: int
    writer: Callable[[Path, "ZooVideo"], None]
    rotation: int = 0  # display matrix written (degrees counter-clockwise)
    opencv: str = SAME
    decord: str = SAME
    tags: frozenset[str] = field(default_factory=frozenset)


@contextlib.contextmanager
def keep_scheduling():
    """Give the calling thread back its scheduling policy: SVT-AV1's encoder, run as root, makes it SCHED_FIFO at
    priority 99, and every thread and process it starts afterwards inherits that. A test process that had written
    the AV1 entry then started Ray clusters and CLI runs whose spinning threads held both cores, and the suite hung."""
    if not hasattr(os, "sched_getscheduler"):  # not Linux
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if (os.sched_getscheduler(0), os.sched_getparam(0)) != (policy, param):
            os.sched_setscheduler(0, policy, param)


@keep_scheduling()
def write_frames(path: Path, *, codec: str, width: int, height: int, frames: int, fps: Fraction | int = 20,
                 pix_fmt: str = "yuv420p", options: dict[str, str] | None = None, seed: int = 0,
                 container_options: dict[str, str] | None = None, colour: dict[str, int] | None = None,
                 audio_first: bool = False, sar: Fraction | None = None, rotation: int = 0,
                 bit_rate: int | None = None, max_b_frames: int | None = None, gop: int | None = None) -> Path:
    """Encode ``frames`` synthetic frames (:class:`_Painter`) with ``codec`` into ``path``.

    ``colour``: codec-context colour fields (``color_range``, ``colorspace``, ``color_primaries``,
    ``color_trc``) as FFmpeg's enum values, tagged on the stream and on every frame; ``audio_first`` adds a
    silent AAC stream before the video stream; ``sar``: sample aspect ratio; ``rotation``: display matrix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    painter = _Painter(width, height, seed, "moving")
    os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints a banner to stderr otherwise (1 = errors only)
    with av.open(str(path), "w", options=container_options or {}) as out:
        audio = None
        if audio_first:
            audio = out.add_stream("aac", rate=8000)
            audio.layout = "mono"
        stream = out.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if options:
            stream.options = dict(options)
        if bit_rate:
            stream.bit_rate = bit_rate
        ctx = stream.codec_context
        if max_b_frames is not None:
            ctx.max_b_frames = max_b_frames
        if gop:
            ctx.gop_size = gop
        for key, value in (colour or {}).items():
            setattr(ctx, key, value)
        if sar is not None:
            ctx.sample_aspect_ratio = sar
        if rotation:
            stream.set_display_rotation(rotation)
        if audio is not None:
            samples = 8000 * frames // int(Fraction(fps))
            chunk = audio.codec_context.frame_size or 1024
            for start in range(0, samples, chunk):
                af = av.AudioFrame.from_ndarray(np.zeros((1, chunk), np.float32), format="fltp", layout="mono")
                af.sample_rate, af.pts = 8000, start
                out.mux(audio.encode(af))
            out.mux(audio.encode(None))
        for i in range(frames):
            vf = av.VideoFrame.from_ndarray(painter.frame(i), format="rgb24")
            if colour or pix_fmt != "yuv420p":
                vf = vf.reformat(format=pix_fmt, src_colorspace=None,
                                 dst_colorspace=colour.get("colorspace") if colour else None,
                                 dst_color_range=colour.get("color_range") if colour else None)
                for key, value in (colour or {}).items():
                    setattr(vf, key, value)
            vf.pts = i
            out.mux(stream.encode(vf))
        out.mux(stream.encode(None))
    return path


def patch_mp4_rotation(path: str | Path, rotation: int) -> Path:
    """Rewrite the video ``tkhd`` matrix of an MP4 in place to a rotation (degrees clockwise on display, as
    phones write it; FFmpeg then reports ``-rotation``). For encoders/muxers that cannot write one themselves."""
    data = bytearray(Path(path).read_bytes())
    one, zero = 0x00010000, 0
    cos, sin = {0: (1, 0), 90: (0, 1), 180: (-1, 0), 270: (0, -1)}[rotation % 360]
    matrix = [cos * one, sin * one, zero, -sin * one, cos * one, zero, zero, zero, 0x40000000]
    pos = 0
    while (pos := data.find(b"tkhd", pos + 1)) > 0:
        version = data[pos + 4]
        offset = pos + 4 + 4 + (32 if version == 1 else 20) + 8 + 2 + 2 + 2 + 2  # to the matrix
        width, height = struct.unpack(">II", data[offset + 36:offset + 44])
        if width and height:  # the video track (audio tracks have no size)
            data[offset:offset + 36] = struct.pack(">9i", *[m if m < 2**31 else m - 2**32 for m in matrix])
    Path(path).write_bytes(bytes(data))
    return Path(path)


def make_cut_with_edit_list(src: Path, dst: Path, cut_frame: int) -> Path:
    """A stream copy of ``src`` starting at ``cut_frame`` (not a keyframe), as ``ffmpeg -ss -c copy`` makes it:
    the packets from the previous keyframe on are copied, those before the cut get negative timestamps, and
    the MP4 muxer writes an edit list that hides them."""
    with av.open(str(src)) as inp:
        ins = inp.streams.video[0]
        packets = [p for p in inp.demux(ins) if p.size]
        ranks = sorted(p.pts for p in packets)
        cut_pts = ranks[cut_frame]
        decode_order = list(packets)
        start = max(i for i, p in enumerate(decode_order) if p.is_keyframe and p.pts <= cut_pts)
        with av.open(str(dst), "w") as out:
            outs = out.add_stream_from_template(ins)
            for p in decode_order[start:]:
                p.pts -= cut_pts
                p.dts -= cut_pts
                p.stream = outs
                out.mux(p)
    return Path(dst)


def _enc(codec: str, **kw) -> Callable[[Path, ZooVideo], None]:
    def write(path: Path, v: ZooVideo) -> None:
        write_frames(path, codec=codec, width=v.width, height=v.height, frames=v.frames, rotation=v.rotation,
                     seed=len(v.name), **kw)
    return write


def _patched(rotation: int) -> Callable[[Path, ZooVideo], None]:
    def write(path: Path, v: ZooVideo) -> None:
        write_frames(path, codec="libx264", width=v.width, height=v.height, frames=v.frames, seed=5,
                     options={"crf": "18"})
        patch_mp4_rotation(path, rotation)
    return write


def _vfr(path: Path, v: ZooVideo) -> None:
    make_vfr_video(path, frames=v.frames, width=v.width, height=v.height, seed=3)


def _cut(path: Path, v: ZooVideo) -> None:
    full = path.with_name(path.stem + "_uncut.mp4")
    write_frames(full, codec="libx264", width=v.width, height=v.height, frames=v.frames + 7, seed=11,
                 options={"crf": "20", "bf": "2"}, gop=12)
    make_cut_with_edit_list(full, path, 7)
    full.unlink()


X264 = {"crf": "20", "preset": "veryfast"}
BT709 = {"colorspace": 1, "color_primaries": 1, "color_trc": 1}
FULL = {"color_range": 2}
HLG = {"colorspace": 9, "color_primaries": 9, "color_trc": 18}

X265 = {"crf": "24", "x265-params": "log-level=none"}
TEN = frozenset({"10bit"})

ZOO: list[ZooVideo] = [
    ZooVideo("h264_420", "h264_420.mp4", 96, 64, 20, _enc("libx264", options=X264)),
    ZooVideo("h264_422", "h264_422.mp4", 96, 64, 20, _enc("libx264", pix_fmt="yuv422p", options=X264)),
    ZooVideo("h264_444", "h264_444.mp4", 96, 64, 20, _enc("libx264", pix_fmt="yuv444p", options=X264)),
    ZooVideo("h264_high10", "h264_high10.mp4", 96, 64, 20, _enc("libx264", pix_fmt="yuv420p10le", options=X264),
             opencv=DEPENDS, decord=DEPENDS, tags=TEN),
    ZooVideo("h264_full_range", "h264_full.mp4", 96, 64, 20, _enc("libx264", options=X264, colour=FULL)),
    ZooVideo("h264_bt709", "h264_bt709.mp4", 96, 64, 20, _enc("libx264", options=X264, colour=BT709)),
    ZooVideo("h264_bt709_full", "h264_bt709_full.mp4", 96, 64, 20,
             _enc("libx264", options=X264, colour={**BT709, **FULL})),
    ZooVideo("hevc_8bit", "hevc_8.mp4", 96, 64, 20, _enc("libx265", options=X265)),
    ZooVideo("hevc_10bit", "hevc_10.mp4", 96, 64, 20, _enc("libx265", pix_fmt="yuv420p10le", options=X265),
             opencv=DEPENDS, decord=DEPENDS, tags=TEN),
    ZooVideo("hevc_10bit_hlg", "hevc_hlg.mp4", 96, 64, 20,
             _enc("libx265", pix_fmt="yuv420p10le", colour=HLG, options=X265),
             opencv=DEPENDS, decord=DEPENDS, tags=frozenset({"10bit", "hdr"})),
    ZooVideo("vp8_webm", "vp8.webm", 96, 64, 20, _enc("libvpx", bit_rate=400_000)),
    ZooVideo("vp9_webm", "vp9.webm", 96, 64, 20, _enc("libvpx-vp9", bit_rate=400_000)),
    ZooVideo("av1_svt", "av1.mp4", 96, 64, 20, _enc("libsvtav1", options={"preset": "12"}),
             decord=UNREADABLE, tags=frozenset({"av1"})),
    ZooVideo("mpeg4_avi", "mpeg4.avi", 96, 64, 20, _enc("mpeg4", bit_rate=400_000)),
    ZooVideo("mjpeg_avi", "mjpeg.avi", 96, 64, 16, _enc("mjpeg", pix_fmt="yuvj420p")),
    ZooVideo("mpeg2_ps", "mpeg2.mpg", 96, 64, 20, _enc("mpeg2video", bit_rate=600_000, fps=25), decord=WRONG),
    ZooVideo("mpeg2_ts", "mpeg2.ts", 96, 64, 20, _enc("mpeg2video", bit_rate=600_000, fps=25), decord=WRONG),
    ZooVideo("prores_mov", "prores.mov", 64, 48, 12, _enc("prores_ks", pix_fmt="yuv422p10le"),
             opencv=DEPENDS, tags=TEN),
    ZooVideo("h264_60fps_open_gop", "h264_60.mp4", 96, 64, 30,
             _enc("libx264", fps=60, gop=10, options={"crf": "20", "bf": "3", "x264-params": "open-gop=1"}),
             decord=WRONG),
    ZooVideo("vfr", "vfr.mp4", 96, 64, 20, _vfr),
    ZooVideo("cut_mid_gop", "cut.mp4", 96, 64, 20, _cut, decord=WRONG, tags=frozenset({"edit_list"})),
    ZooVideo("audio_first", "audio_first.mkv", 96, 64, 20, _enc("libx264", options=X264, audio_first=True)),
    ZooVideo("anamorphic", "anamorphic.mp4", 96, 64, 20, _enc("libx264", options=X264, sar=Fraction(4, 3))),
    ZooVideo("odd_size", "odd.mp4", 90, 54, 20, _enc("libx264", options=X264)),
    ZooVideo("h264_interlaced", "interlaced.mp4", 96, 64, 20,
             _enc("libx264", options={**X264, "x264-params": "interlaced=1:tff=1"}), decord=DEPENDS,
             tags=frozenset({"interlaced"})),
    ZooVideo("rot90", "rot90.mp4", 128, 96, 12, _enc("libx264", options=X264), rotation=90),
    ZooVideo("rot180", "rot180.mp4", 128, 96, 12, _enc("libx264", options=X264), rotation=180),
    ZooVideo("rot270", "rot270.mp4", 128, 96, 12, _enc("libx264", options=X264), rotation=270),
    ZooVideo("rot90_tkhd_patched", "rot90_patched.mp4", 128, 96, 12, _patched(90), rotation=-90),
]


def build_zoo(root: str | Path, names: Iterable[str] | None = None) -> dict[str, Path]:
    """Write the zoo (or the named entries) under ``root``; returns name -> path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    wanted = set(names) if names is not None else None
    out = {}
    for v in ZOO:
        if wanted is not None and v.name not in wanted:
            continue
        path = root / v.file
        v.writer(path, v)
        out[v.name] = path
    return out


def write_lossless(path: str | Path, frames: list[np.ndarray], *, fps: int = 20, rotation: int = 0) -> Path:
    """Store RGB frames losslessly (``libx264rgb``, ``qp=0``): decoding gives them back bit for bit."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264rgb", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        stream.options = {"qp": "0", "preset": "veryfast"}
        if rotation:
            stream.set_display_rotation(rotation)
        for i, rgb in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            vf.pts = i
            out.mux(stream.encode(vf))
        out.mux(stream.encode(None))
    return path
