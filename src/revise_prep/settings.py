"""Typed settings, built once from flags/config and passed down."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

#: The engines ``--engine`` offers; engine ``x`` is the module ``pipeline/engines/x`` (found by name).
ENGINE_NAMES = ("local", "ray")


@dataclass(frozen=True)
class FrameSettings:
    """How frames are sampled from each video (SPEC §Step 1). Defaults follow the original."""

    frame_num: int = 81  # must be 4n+1
    interval: int = 3  # requested sampling interval ("sampling_rate" in the original)
    skip: int = 0  # frames dropped at the start
    height: int = 480
    width: int = 832
    strict_count: bool = True  # reproduce the original's off-by-one frame-count condition
    auto_rotate: bool = True  # apply the display matrix (upright frames, displayed size), as OpenCV does
    # per-sample choice (video/buckets.py); None = the original's single size / frame count
    buckets: tuple[tuple[int, int], ...] | None = None  # (height, width) sizes, multiples of 16
    frame_buckets: tuple[int, ...] | None = None  # frame counts, each 4n+1

    def __post_init__(self) -> None:
        if self.frame_num < 1 or (self.frame_num - 1) % 4:
            raise ValueError(f"frame_num must be 4n+1 (got {self.frame_num})")
        if self.interval < 1:
            raise ValueError(f"interval must be >= 1 (got {self.interval})")
        if self.skip < 0:
            raise ValueError(f"skip must be >= 0 (got {self.skip})")
        if self.height < 1 or self.width < 1:
            raise ValueError(f"target size must be positive (got {self.height}x{self.width})")
        if self.buckets is not None or self.frame_buckets is not None:
            from revise_prep.video.buckets import check_frame_counts, check_sizes

            if self.buckets is not None:
                object.__setattr__(self, "buckets", tuple((int(h), int(w)) for h, w in self.buckets))
                check_sizes(self.buckets)
            if self.frame_buckets is not None:
                object.__setattr__(self, "frame_buckets", tuple(int(n) for n in self.frame_buckets))
                check_frame_counts(self.frame_buckets)


def frames_signature(frames: FrameSettings) -> dict[str, Any]:
    """The frame settings a record depends on (resume check and meta): the bucket keys only when set, so
    records made without buckets keep today's signature; buckets as ``"HxW"`` strings (JSON-stable)."""
    sig = asdict(frames)
    for key in ("buckets", "frame_buckets"):
        if sig[key] is None:
            del sig[key]
    if frames.buckets is not None:
        sig["buckets"] = [f"{h}x{w}" for h, w in frames.buckets]
    if frames.frame_buckets is not None:
        sig["frame_buckets"] = list(frames.frame_buckets)
    return sig


def per_record_keys(signature: dict[str, Any]) -> set[str]:
    """Keys of a signature that each record sets for itself: the size with ``buckets``, the frame count with
    ``frame_buckets`` (a record's meta holds its own; the resume check compares the bucket set instead)."""
    keys = set()
    if signature.get("buckets") is not None:
        keys |= {"height", "width"}
    if signature.get("frame_buckets") is not None:
        keys.add("frame_num")
    return keys


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
    vae_channels_last: bool = False  # NDHWC VAE weights and activations (GPU speed; float32 bits differ)
    vae_compile: bool = False  # torch.compile the VAE encoder (compile time first; float32 bits differ)
    strict_fp32: bool = False  # TF32 off for the VAE on a GPU (PyTorch's default, TF32 convolutions, is the original's)
    cudnn_benchmark: bool = True  # cuDNN times its algorithms per shape and keeps the fastest (GPU)

    def checkpoint_sources(self) -> tuple[str, str]:
        """(VAE source, umT5 source): the single-part paths, else ``--ckpt-dir``."""
        from revise_prep.errors import InputError

        vae, t5 = self.vae_path or self.ckpt_dir, self.t5_path or self.ckpt_dir
        if vae is None or t5 is None:
            raise InputError("no checkpoint given: pass --ckpt-dir (or --vae-path and --t5-path)")
        return vae, t5


@dataclass(frozen=True)
class EngineSettings:
    """Which engine runs a step: ``local`` (this process, or each torchrun/srun rank) or ``ray`` (a Ray cluster)."""

    name: str = "local"
    ray_address: str | None = None  # None: the cluster in RAY_ADDRESS, else a local one
    gpus_per_actor: float = 1.0  # GPUs of one encoder actor (CPU actors when the cluster has no GPU)
    actors: int | None = None  # encoder actors (default: GPUs / gpus_per_actor, or CPUs / 4 without GPUs)
    decoded_gb: float = 4.0  # bound on decoded clips waiting in the object store (backpressure)

    def __post_init__(self) -> None:
        if self.name not in ENGINE_NAMES:
            raise ValueError(f"engine must be one of {', '.join(ENGINE_NAMES)} (got {self.name!r})")
        if self.gpus_per_actor <= 0 or (self.actors is not None and self.actors < 1) or self.decoded_gb <= 0:
            raise ValueError("ray: gpus_per_actor and decoded_gb must be positive, actors at least 1")


@dataclass(frozen=True)
class RunSettings:
    """One step's input, output and execution options."""

    input: str
    output_dir: str
    video_root: str = "."
    num_workers: int = 2
    cpu_threads: int | None = None  # CPUs this rank uses (None: its share of the affinity mask; engines/local/cpu_budget)
    min_prompt_len: int = 10  # the original skips prompts of at most 10 characters
    skip_bad_entries: bool = False  # record malformed input entries as failures instead of stopping
    decode_timeout: float = 300.0  # seconds one sample's decoding may take before it is failed
    max_video_pixels: int = 8192 * 4320  # = video.guards.DEFAULT_MAX_VIDEO_PIXELS; larger videos are not decoded
    retry_crashed: bool = False  # try samples that were in flight when two earlier runs died
    record_format: str = "pickle"  # or "safetensors"
    progress: bool = True
    engine: EngineSettings = EngineSettings()
    relative_paths: bool = False  # list file lines relative to its folder instead of absolute
    progress_interval: float = 30.0  # seconds between progress lines when stderr is not a terminal
    relative_video_paths: bool = False  # video paths in records relative to video_root instead of absolute
    min_bucket_records: int = 64  # buckets with fewer records are reported (see README, "Training on the records")
    merge_small_buckets: bool = False  # their samples get the nearest bucket with enough samples (planned up front)


@dataclass(frozen=True)
class ExecutionSettings:
    """How an engine runs a step, whichever the step: taken from its settings (``RunSettings``, ``ArSettings``)."""

    num_workers: int = 2  # decode worker processes per rank (local engine; 0: decode in the main process)
    cpu_threads: int | None = None  # CPUs this rank uses (None: its share of the affinity mask; engines/local/cpu_budget)
    decode_timeout: float | None = 300.0  # seconds one sample's decoding may take before it is failed
    retry_crashed: bool = False  # try samples that were in flight when two earlier runs died
    keep_mismatched: bool = False  # keep existing records made with other settings instead of redoing them
    progress: bool = True
    progress_interval: float = 30.0  # seconds between progress lines when stderr is not a terminal
    relative_paths: bool = False  # list file lines relative to its folder instead of absolute

    @classmethod
    def of(cls, settings: Any, **overrides: Any) -> "ExecutionSettings":
        """The execution options of a step's settings (the fields of the same name), with ``overrides``."""
        taken = {f.name: getattr(settings, f.name) for f in fields(cls) if hasattr(settings, f.name)}
        return cls(**{**taken, **overrides})
