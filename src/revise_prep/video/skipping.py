"""Which frames the decoder may skip: H.264 frames nobody wants and no other frame refers to.

With an interval of 3, two frames in three are decoded only to be thrown away. A frame that is not a
reference (``nal_ref_idc == 0``, most B-frames of web video) can be left undecoded without changing any
other frame, so FFmpeg's ``skip_frame = NONREF`` is exact for the frames we keep. Frames then no longer
arrive one per display position, so each is placed by its timestamp's rank among all packets' timestamps,
which equals its decode-order position on a well-formed stream (checked while decoding; see ``reader``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import av

from .probe import open_video

__all__ = ["SKIPPABLE_CODECS", "display_ranks", "worth_skipping"]

# H.264 only: its non-reference frames are never referenced. HEVC's "_N" pictures may still be
# referenced by higher temporal sub-layers, so skipping them could change frames we keep.
SKIPPABLE_CODECS = frozenset({"h264"})


def worth_skipping(wanted: Sequence[int]) -> bool:
    """True when some frame before the last wanted one is not wanted (sorted, distinct ``wanted``)."""
    return bool(wanted) and len(wanted) < wanted[-1] + 1


def display_ranks(path: str | os.PathLike[str]) -> dict[int, int] | None:
    """pts -> display position of every video packet, by demuxing only; None when the timestamps cannot
    place frames (a packet without pts, repeated pts, a corrupt packet or a demuxer error)."""
    container, stream, _ = open_video(path)
    pts: list[int] = []
    try:
        for packet in container.demux(stream):
            if packet.size <= 0:
                continue  # flush packet
            if packet.pts is None or packet.is_corrupt or packet.is_discard:
                return None
            pts.append(int(packet.pts))
    except av.error.FFmpegError:
        return None
    finally:
        container.close()
    ranks = {p: i for i, p in enumerate(sorted(pts))}
    return ranks if len(ranks) == len(pts) else None
