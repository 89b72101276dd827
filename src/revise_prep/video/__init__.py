"""Video reading: probe without decoding, choose frames like the original, decode only those (SPEC §Step 1)."""

from .probe import VideoInfo, count_frames_decode, probe_video
from .reader import (Clip, DecodeStats, check_orientation, iter_frames_rgb, read_clip, read_frames_rgb,
                     sampling_interval)
from .selection import effective_interval, frame_indices, frames_needed, orientation_mismatch
from .transform import (crop_box, frame_to_tensor, frame_to_tensor_into, frame_to_u8_into, frames_to_tensor,
                        normalise_pixels, normalise_u8)

__all__ = [
    "Clip",
    "DecodeStats",
    "VideoInfo",
    "check_orientation",
    "count_frames_decode",
    "crop_box",
    "effective_interval",
    "frame_indices",
    "frame_to_tensor",
    "frame_to_tensor_into",
    "frame_to_u8_into",
    "frames_needed",
    "frames_to_tensor",
    "iter_frames_rgb",
    "normalise_pixels",
    "normalise_u8",
    "orientation_mismatch",
    "probe_video",
    "read_clip",
    "read_frames_rgb",
    "sampling_interval",
]
