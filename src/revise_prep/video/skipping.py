"""Which frames the decoder may skip: H.264 frames nobody wants and no other frame refers to.

With an interval of 3, two frames in three are decoded only to be thrown away. A frame that is not a
reference (``nal_ref_idc == 0``, most B-frames of web video) can be left undecoded without changing any
other frame, so FFmpeg's ``skip_frame = NONREF`` is exact for the frames we keep. Frames then no longer
arrive one per display position, so each is placed by its timestamp's rank among all packets' timestamps,
which equals its decode-order position on a well-formed stream (checked while decoding; see ``reader``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import av

__all__ = ["MAX_BUFFERED_BYTES", "SKIPPABLE_CODECS", "Demuxed", "demux_all", "worth_skipping"]

# H.264 only: its non-reference frames are never referenced. HEVC's "_N" pictures may still be
# referenced by higher temporal sub-layers, so skipping them could change frames we keep.
SKIPPABLE_CODECS = frozenset({"h264"})
# Compressed bytes kept in memory to place frames before decoding; a longer video is decoded frame by frame.
MAX_BUFFERED_BYTES = 256 << 20


def worth_skipping(wanted: Sequence[int]) -> bool:
    """True when some frame before the last wanted one is not wanted (sorted, distinct ``wanted``)."""
    return bool(wanted) and len(wanted) < wanted[-1] + 1


@dataclass
class Demuxed:
    """A video stream's packets in decode order (read once, decoded later) and each pts's display position."""

    packets: list[av.Packet]
    ranks: dict[int, int]


def demux_all(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
              max_bytes: int = MAX_BUFFERED_BYTES) -> Demuxed | None:
    """Read every packet of ``stream`` (no decoding) and rank their timestamps.

    None when the timestamps cannot place frames (a packet without pts, repeated pts, a corrupt packet, a
    demuxer error) or the packets exceed ``max_bytes``; the container is then past its start.
    """
    packets: list[av.Packet] = []
    size = 0
    try:
        for packet in container.demux(stream):
            if packet.size <= 0:
                continue  # flush packet
            if packet.pts is None or packet.is_corrupt or packet.is_discard:
                return None
            size += packet.size
            if size > max_bytes:
                return None
            packets.append(packet)
    except av.error.FFmpegError:
        return None
    ranks = {p: i for i, p in enumerate(sorted(int(pk.pts) for pk in packets))}
    return Demuxed(packets, ranks) if len(ranks) == len(packets) else None
