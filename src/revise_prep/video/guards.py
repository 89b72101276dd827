"""Resource guards checked before a video is decoded: a resolution no training clip needs is refused by name."""

from __future__ import annotations

import os

from revise_prep.errors import VIDEO_TOO_LARGE, VideoError

from .probe import open_video

#: Default ``--max-video-pixels``: DCI 8K (8192x4320), above 8K UHD (7680x4320); 0 turns the guard off.
DEFAULT_MAX_VIDEO_PIXELS = 8192 * 4320


def pixels_error(path: str | os.PathLike[str], width: int, height: int, max_pixels: int) -> VideoError | None:
    """The ``video_too_large`` error for a ``width`` x ``height`` video above ``max_pixels`` (0: no limit)."""
    if not max_pixels or width * height <= max_pixels:
        return None
    return VideoError(VIDEO_TOO_LARGE, f"{path}: video is {width}x{height} (WxH), {width * height:,} pixels a frame, "
                                       f"above --max-video-pixels {max_pixels:,}; not decoded")


def check_video_pixels(path: str | os.PathLike[str], max_pixels: int) -> None:
    """Raise ``video_too_large`` from the container's header alone; other problems are left to the reader."""
    if not max_pixels:
        return
    try:
        container, stream, _ = open_video(path)
    except VideoError:
        return  # missing, empty, unreadable: the reader reports it with its own reason, in its own order
    try:
        width, height = stream.codec_context.width, stream.codec_context.height
    finally:
        container.close()
    err = pixels_error(path, width, height, max_pixels)
    if err is not None:
        raise err
