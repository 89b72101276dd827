"""Media -> pixel tensor of the VILA AR model, without the model: picklable, so DataLoader workers can run it.

:class:`VilaInputs` holds everything between a task's media (a video path, a list of frames, an image path or a
PIL image) and the ``[F, 3, S, S]`` tensor the vision tower takes: how many ``<image>`` slots the prompt has,
which frames to decode, what to do when a video cannot be decoded and the preprocessing recipe. The model's
``encode`` and the step-2 workers both go through it, so there is one code path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Union

import torch
from PIL import Image

from revise_prep import errors
from revise_prep.errors import SampleError

from .config import VilaCheckpoint
from .frames import OnError, load_ar_frames
from .preprocess import Resampler, preprocess_images
from .prompt import IMAGE_PLACEHOLDER, build_prompt, resolve_task

AR_NUM_FRAMES = 8  # hard-coded upstream (E:176, V num_video_frames=8)

PathLike = Union[str, os.PathLike[str]]
Media = Union[PathLike, Image.Image, Sequence[Image.Image], None]


@dataclass(frozen=True)
class VilaInputs:
    """Preparation of the vision input for one checkpoint (no weights; cheap to copy and pickle).

    ``on_video_error``: ``"fail"`` raises :class:`~revise_prep.errors.VideoError` with a reason; ``"black"`` is
    the original: any decode error on any of the 8 sampled frames gives 8 black 448x448 images.
    ``decode_all_frames=False`` (F4) hands only the frames that reach the LLM to the tower; with ``"fail"`` it
    also decodes no further than them (a decode error after them goes unnoticed), with ``"black"`` all 8 are
    still decoded so the black fallback triggers exactly as in the original. ``auto_rotate``: frames upright
    by the display matrix, as decord returns them (False: the stored orientation).
    """

    image_size: int
    image_mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    image_std: tuple[float, ...] = (0.5, 0.5, 0.5)
    rescale_factor: float = 1 / 255
    aspect_mode: str | None = "resize"
    mm_use_im_start_end: bool = False
    dtype: torch.dtype = torch.float16
    resampler: Resampler = "pillow10"
    on_video_error: OnError = "fail"
    decode_all_frames: bool = True
    num_frames: int = AR_NUM_FRAMES
    auto_rotate: bool = True
    decoder_threads: int = 0  # FFmpeg threads for the AR frames (0: one per CPU)

    @classmethod
    def from_checkpoint(cls, ckpt: VilaCheckpoint, **options) -> "VilaInputs":
        return cls(image_size=ckpt.image_size, image_mean=ckpt.image_mean, image_std=ckpt.image_std,
                   rescale_factor=ckpt.rescale_factor, aspect_mode=ckpt.image_aspect_ratio,
                   mm_use_im_start_end=ckpt.mm_use_im_start_end, **options)

    def with_options(self, **options) -> "VilaInputs":
        return replace(self, **options)

    # ------------------------------------------------------------------ prompt side
    def num_images(self, task: str, prompt: str) -> int:
        """How many ``-200`` slots the templated prompt has (1 per media task, +1 per literal ``<image>``)."""
        spec = resolve_task(task)
        text = build_prompt(spec.name, prompt, 1 if spec.media else 0, mm_use_im_start_end=self.mm_use_im_start_end)
        return text.count(IMAGE_PLACEHOLDER)

    # ------------------------------------------------------------------ media side
    def pixel_values(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """``[F, 3, S, S]`` pixels in ``dtype`` (CPU), preprocessed as upstream ``process_images``."""
        return preprocess_images(images, size=self.image_size, mean=self.image_mean, std=self.image_std,
                                 rescale_factor=self.rescale_factor, aspect_mode=self.aspect_mode,
                                 dtype=self.dtype, resampler=self.resampler)

    def load_images(self, task: str, prompt: str, media: Media) -> list[Image.Image] | None:
        """The images that fill the ``-200`` slots, in order (``None`` for a text-only task: media is ignored)."""
        spec = resolve_task(task)
        if spec.media is None:
            return None
        needed = self.num_images(spec.name, prompt)
        if media is None:
            raise ValueError(f"task {spec.name} needs {spec.media} media")
        if spec.media == "video":
            if isinstance(media, (str, os.PathLike)):
                images = self._video_frames(media, needed)
            elif isinstance(media, Image.Image):
                images = [media]
            else:
                images = list(media)
        else:
            images = [open_image(media) if isinstance(media, (str, os.PathLike)) else media]
            if not isinstance(images[0], Image.Image):
                raise TypeError(f"task {spec.name} takes an image path or a PIL image, got {type(media).__name__}")
        if needed > len(images):
            raise ValueError(f"prompt has {needed} image placeholders but {len(images)} images are available "
                             "(a literal <image> in the prompt pulls in one more frame)")
        return images

    def prepare(self, task: str, prompt: str, media: Media) -> torch.Tensor | None:
        """Media -> the pixel tensor :meth:`VilaARModel.encode_pixels` takes (``None`` for text-only tasks)."""
        images = self.load_images(task, prompt, media)
        return None if images is None else self.pixel_values(images)

    def _video_frames(self, path: PathLike, needed: int) -> list[Image.Image]:
        rotate = self.auto_rotate
        if self.decode_all_frames:
            return load_ar_frames(path, self.num_frames, on_error=self.on_video_error, auto_rotate=rotate,
                                  threads=self.decoder_threads)
        if self.on_video_error == "black":  # the original's fallback looks at all 8 frames: decode them all
            return load_ar_frames(path, self.num_frames, on_error="black", auto_rotate=rotate,
                                  threads=self.decoder_threads)[:needed]
        return load_ar_frames(path, self.num_frames, on_error="fail", only_first=needed, auto_rotate=rotate,
                              threads=self.decoder_threads)


def open_image(path: PathLike) -> Image.Image:
    """Open an image file fully (``SampleError`` with a reason code when missing or unreadable)."""
    p = Path(path)
    if not p.is_file():
        raise SampleError(errors.MISSING_FILE, f"image file not found: {p}")
    try:
        with Image.open(p) as img:
            img.load()
            return img.copy()
    except OSError as exc:
        raise SampleError(errors.CANNOT_OPEN, f"cannot open image {p}: {exc}") from exc
