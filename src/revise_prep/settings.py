"""Typed settings, built once from flags/config and passed down."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrameSettings:
    """How frames are sampled from each video (SPEC §Step 1). Defaults follow the original."""

    frame_num: int = 81  # must be 4n+1
    interval: int = 3  # requested sampling interval ("sampling_rate" in the original)
    skip: int = 0  # frames dropped at the start
    height: int = 480
    width: int = 832
    strict_count: bool = True  # reproduce the original's off-by-one frame-count condition

    def __post_init__(self) -> None:
        if self.frame_num < 1 or (self.frame_num - 1) % 4:
            raise ValueError(f"frame_num must be 4n+1 (got {self.frame_num})")
        if self.interval < 1:
            raise ValueError(f"interval must be >= 1 (got {self.interval})")
        if self.skip < 0:
            raise ValueError(f"skip must be >= 0 (got {self.skip})")
        if self.height < 1 or self.width < 1:
            raise ValueError(f"target size must be positive (got {self.height}x{self.width})")


@dataclass(frozen=True)
class ModelSettings:
    """Where the step-1 models come from and how they run."""

    ckpt_dir: str | None = None  # Wan release dir (original or diffusers layout) or hub id
    vae_path: str | None = None  # overrides ckpt_dir for the VAE
    t5_path: str | None = None  # overrides ckpt_dir for the text encoder
    tokenizer_path: str | None = None  # overrides the tokenizer location
    vae_dtype: str = "float32"
    t5_dtype: str = "bfloat16"
    device: str = "auto"  # "auto" = cuda:LOCAL_RANK when available, else cpu
    t5_device: str | None = None  # default: same as device
    text_len: int = 512
    vae_tiling: bool = False
    vae_batch: bool = False  # source and target through the VAE in one call (faster; float32 bits may differ)


@dataclass(frozen=True)
class RunSettings:
    """One step's input, output and execution options."""

    input: str
    output_dir: str
    video_root: str = "."
    num_workers: int = 2
    min_prompt_len: int = 10  # the original skips prompts of at most 10 characters
    skip_bad_entries: bool = False  # record malformed input entries as failures instead of stopping
    decode_timeout: float = 300.0  # seconds one sample's decoding may take before it is failed
    max_video_pixels: int = 8192 * 4320  # = video.guards.DEFAULT_MAX_VIDEO_PIXELS; larger videos are not decoded
    retry_crashed: bool = False  # try samples that were in flight when two earlier runs died
    record_format: str = "pickle"  # or "safetensors"
    progress: bool = True
