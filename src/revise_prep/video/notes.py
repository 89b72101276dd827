"""Where the original's decoders (OpenCV for step 1, decord for step 2) are broken or build-dependent on a video.

Pure rules on a :class:`VideoInfo`; the record meta and ``validate`` report them, the README's Exactness
section explains them. We decode these videos with PyAV's own conversion, which is stable across builds.
"""

from __future__ import annotations

from .probe import VideoInfo

__all__ = ["decoder_notes"]

INTERLACED = "interlaced"
AV1 = "av1"
HIGH_BIT_DEPTH = "high_bit_depth"
HDR = "hdr"


def decoder_notes(info: VideoInfo) -> dict[str, str]:
    """Code -> one line, for each way the original's decoder would give other frames than we do."""
    notes: dict[str, str] = {}
    if info.interlaced:
        notes[INTERLACED] = ("interlaced: decord's conversion (the original's step 2) differs and OpenCV 5.0 "
                             "returns black frames (5.1 decodes them as we do); decoded properly (fields as FFmpeg "
                             "outputs them, no deinterlacing)")
    if info.codec in ("av1", "libdav1d", "libaom-av1"):
        notes[AV1] = ("AV1: decord cannot open it (the original's step 2 uses black frames) and OpenCV before 5.1 "
                      "cannot decode it (step 1 skips it as too short); decoded")
    if info.bit_depth is not None and info.bit_depth > 8:
        notes[HIGH_BIT_DEPTH] = (f"{info.bit_depth}-bit: OpenCV's conversion to 8-bit RGB is build-dependent; "
                                 "PyAV's rgb24 conversion (the frame's own colour matrix and range) is used")
    if info.hdr:
        notes[HDR] = (f"HDR transfer {info.color_transfer}: no tone mapping or gamut conversion (OpenCV's is "
                      "build-dependent); values as PyAV's rgb24 conversion gives them")
    return notes
