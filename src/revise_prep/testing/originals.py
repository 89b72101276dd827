"""The original's two readers, rebuilt from SPEC on their own decoders, as test-only references.

Step 1 read frames with OpenCV (``cv2.VideoCapture``: the whole video decoded to count it, the interval
lowered, the orientation checked on the size OpenCV reports, then the sampled frames cropped and resized
with PIL); step 2 read its 8 AR frames with decord (``VideoReader``, ``len(vr)``, ``linspace(0, n-2, 8)``,
``get_batch``). ``opencv-python-headless`` and ``decord`` come with the ``test`` extra only: never at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["OpenCVClip", "crop_resize_all", "decord_ar_frames", "opencv_clip", "opencv_frames", "pyav_frames"]


@dataclass
class OpenCVClip:
    """What the original step 1 returns for a video: ``outcome`` "ok" or the reason it gives up."""

    outcome: str  # "ok", "insufficient_frames", "orientation_mismatch", "cannot_open"
    total: int = 0
    size: tuple[int, int] = (0, 0)  # (height, width) as OpenCV reports it
    interval: int = 0
    indices: list[int] = field(default_factory=list)
    frames: np.ndarray | None = None  # uint8 [T, H, W, 3] after crop + resize (before normalisation)
    raw: list[np.ndarray] = field(default_factory=list)  # every decoded RGB frame


def opencv_frames(path: str | Path) -> tuple[list[np.ndarray], tuple[int, int]]:
    """Every frame OpenCV decodes (RGB) and the (height, width) it reports; ([], (0, 0)) when it cannot open."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        return [], (0, 0)
    size = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return frames, size


def crop_resize_all(frames: list[np.ndarray], tgt_h: int, tgt_w: int) -> np.ndarray:
    """uint8 [T, tgt_h, tgt_w, 3]: each RGB frame through :func:`_crop_resize`."""
    return np.stack([_crop_resize(f, tgt_h, tgt_w) for f in frames])


def _crop_resize(frame: np.ndarray, tgt_h: int, tgt_w: int) -> np.ndarray:
    """SPEC §Step 1.5, written out again: centred crop to the target ratio, PIL bilinear resize."""
    h, w = frame.shape[:2]
    r = tgt_w / tgt_h
    ch, cw = (int(w / r), w) if w < h * r else (h, int(h * r))
    top, left = round((h - ch) / 2), round((w - cw) / 2)
    img = Image.fromarray(frame).crop((left, top, left + cw, top + ch)).resize((tgt_w, tgt_h), Image.BILINEAR)
    return np.asarray(img)


def opencv_clip(path: str | Path, frame_num: int, interval: int, tgt_h: int, tgt_w: int, skip: int = 0, *,
                decoded: tuple[list[np.ndarray], tuple[int, int]] | None = None) -> OpenCVClip:
    """The original ``read_video_frames`` on OpenCV (SPEC §Step 1, items 1-5); ``decoded``: an earlier
    :func:`opencv_frames` result for ``path`` (to try several settings on one decode)."""
    raw, size = decoded if decoded is not None else opencv_frames(path)
    if size == (0, 0):
        return OpenCVClip("cannot_open")
    total = len(raw)
    rate = interval
    while rate > 0 and total < frame_num * rate + skip:
        rate -= 1
    if rate == 0:
        return OpenCVClip("insufficient_frames", total, size, raw=raw)
    h, w = size
    if (tgt_h > tgt_w and w > h) or (tgt_w > tgt_h and h > w):
        return OpenCVClip("orientation_mismatch", total, size, rate, raw=raw)
    indices = [skip + k * rate for k in range(frame_num)]
    frames = crop_resize_all([raw[i] for i in indices], tgt_h, tgt_w)
    return OpenCVClip("ok", total, size, rate, indices, frames, raw)


def decord_ar_frames(path: str | Path, num_frames: int = 8) -> tuple[list[int], np.ndarray] | str:
    """decord's 8 AR frames as upstream ``load_video`` reads them: (indices, uint8 [8, H, W, 3]), or the error."""
    import decord

    try:
        vr = decord.VideoReader(str(path), ctx=decord.cpu(0))
        n = len(vr)
        idx = np.linspace(0, n - 2, num_frames, dtype=int)
        return [int(i) for i in idx], vr.get_batch(idx).asnumpy()
    except Exception as err:  # noqa: BLE001 - upstream turns any failure into black frames
        return f"{type(err).__name__}: {str(err).splitlines()[0][-160:]}"


def pyav_frames(path: str | Path, *, rotate: bool = True) -> list[np.ndarray]:
    """Every frame straight from PyAV (``rgb24``, turned by each frame's display matrix): what we decode instead
    where the original's decoder is broken or build-dependent, computed here without our reader."""
    import av

    out = []
    with av.open(str(path)) as container:
        try:
            for frame in container.decode(container.streams.video[0]):
                rgb = frame.to_ndarray(format="rgb24")
                k = int(round((frame.rotation or 0) / 90)) % 4 if rotate else 0
                out.append(np.ascontiguousarray(np.rot90(rgb, k)))
        except av.error.InvalidDataError:
            pass
    return out
