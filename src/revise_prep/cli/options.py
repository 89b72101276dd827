"""Flags shared by several commands, with the original scripts' spellings as aliases."""

from __future__ import annotations

import argparse

from revise_prep.errors import InputError
from revise_prep.settings import ENGINE_NAMES, EngineSettings, FrameSettings, ModelSettings, RunSettings
from revise_prep.video.buckets import PRESETS, parse_buckets, parse_frame_buckets
from revise_prep.video.guards import DEFAULT_MAX_VIDEO_PIXELS

DTYPES = ("float32", "bfloat16", "float16")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default shown once, and only where it is a value (not for on/off flags or unset options)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or "(default" in text or not action.option_strings or action.nargs == 0:
            return text
        if action.default in (None, argparse.SUPPRESS, ""):
            return text
        return f"{text} (default: %(default)s)"


def parse_size(text: str) -> tuple[int, int]:
    """``"480,832"`` (the original's form) or ``480x832`` -> (height, width)."""
    parts = text.replace("x", ",").replace("X", ",").split(",")
    try:
        height, width = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH (e.g. 480,832), got {text!r}") from None
    return height, width


def at_least(minimum: float, kind=int, *, above: bool = False):
    """An argparse type: a number of ``kind`` that is >= ``minimum`` (> with ``above``), or one usage line."""
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") \
                from None
        if value < minimum or (above and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if above else '>='} {minimum:g}, got {text}")
        return value
    convert.__name__ = kind.__name__
    return convert


def _argtype(parse):
    """An argparse type from a parser raising ValueError: the one-line reason becomes the usage error."""
    def convert(text: str):
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    convert.__name__ = parse.__name__.removeprefix("parse_")
    return convert


def _presets_help() -> str:
    return "; ".join(f"{name} = {', '.join(f'{h}x{w}' for h, w in sizes)}" for name, sizes in PRESETS.items())


def add_frame_options(p: argparse.ArgumentParser) -> None:
    d = FrameSettings()
    g = p.add_argument_group("frame sampling (the original's rules)")
    g.add_argument("--frame-num", "--frame_num", dest="frame_num", type=int, default=d.frame_num,
                   help="frames per clip, 4n+1")
    g.add_argument("--sampling-rate", "--sampling_rate", "--interval", dest="interval", type=int, default=d.interval,
                   help="requested frame interval, lowered for short videos as the original does")
    g.add_argument("--skip-num", "--skip_num", dest="skip", type=int, default=d.skip,
                   help="frames skipped at the start")
    g.add_argument("--target-size", "--target_size", dest="target_size", type=parse_size, metavar="HEIGHT,WIDTH",
                   default=f"{d.height},{d.width}", help="centre crop to this aspect ratio, then resize")
    g.add_argument("--exact-frame-count", dest="strict_count", action="store_false",
                   help="lower the interval only when really needed ((n-1)*interval+1+skip frames) instead of "
                        "the original's stricter n*interval+skip rule")
    g.add_argument("--no-auto-rotate", dest="auto_rotate", action="store_false",
                   help="keep the stored orientation of videos with a display matrix (phone videos); by default "
                        "frames are turned upright and the orientation check uses the displayed size, as the "
                        "original's OpenCV and decord do")
    g.add_argument("--buckets", type=_argtype(parse_buckets), default=None, metavar="HxW[,HxW...]|PRESET",
                   help="aspect-ratio buckets instead of --target-size: each sample gets the bucket closest in log "
                        "aspect to its source video's displayed aspect (ties: larger area, then first listed), no "
                        "orientation skip; sizes multiples of 16; presets: " + _presets_help())
    g.add_argument("--frame-buckets", type=_argtype(parse_frame_buckets), default=None, metavar="N[,N...]",
                   help="frame counts (each 4n+1) instead of --frame-num: each pair gets the largest count both "
                        "its videos can serve, the interval lowered per count as the original does "
                        "(e.g. 81,49,33,17)")


def frame_settings(args: argparse.Namespace) -> FrameSettings:
    """The frame settings, or one line naming the bad flag."""
    height, width = args.target_size
    frame_num = max(args.frame_buckets) if args.frame_buckets else args.frame_num
    try:
        return FrameSettings(frame_num=frame_num, interval=args.interval, skip=args.skip, height=height,
                             width=width, strict_count=args.strict_count, buckets=args.buckets,
                             frame_buckets=args.frame_buckets, auto_rotate=args.auto_rotate)
    except ValueError as err:
        flag = {"frame_num": "--frame-num", "interval": "--sampling-rate", "skip": "--skip-num",
                "target size": "--target-size"}
        name = next((f for key, f in flag.items() if str(err).startswith(key)), "frame settings")
        raise InputError(f"{name}: {err}") from None


def add_model_options(p: argparse.ArgumentParser) -> None:
    d = ModelSettings()
    g = p.add_argument_group("step-1 models (Wan2.1 VAE and umT5)")
    g.add_argument("--ckpt-dir", "--ckpt_dir", dest="ckpt_dir",
                   help="Wan2.1 release: original layout (Wan2.1_VAE.pth, models_t5_umt5-xxl-enc-bf16.pth, "
                        "google/umt5-xxl/), diffusers layout (vae/, text_encoder/, tokenizer/) or a hub id")
    g.add_argument("--vae-path", help="VAE checkpoint (file, folder or hub id); overrides --ckpt-dir")
    g.add_argument("--t5-path", help="umT5 checkpoint (file, folder or hub id); overrides --ckpt-dir")
    g.add_argument("--tokenizer-path", help="umT5 tokenizer folder or hub id")
    g.add_argument("--vae-dtype", choices=DTYPES, default=d.vae_dtype, help="VAE precision (the original: float32)")
    g.add_argument("--t5-dtype", choices=DTYPES, default=d.t5_dtype, help="umT5 precision (the original: bfloat16)")
    g.add_argument("--device", default=d.device, help="auto (local GPU under torchrun, else CPU), cuda, cpu, cuda:N")
    g.add_argument("--t5-device", help="device of the text encoder (default: --device)")
    g.add_argument("--t5-cpu", "--t5_cpu", dest="t5_cpu", action="store_true", help="run umT5 on the CPU")
    g.add_argument("--text-len", type=at_least(1), default=d.text_len, help="umT5 token length")
    g.add_argument("--vae-tiling", action="store_true", help="tiled VAE encoding (less GPU memory, small deviation)")
    g.add_argument("--vae-batch", action="store_true",
                   help="encode source and target in one VAE call (faster on a GPU; float32 results may differ "
                        "from the original's in the last bits)")
    g.add_argument("--vae-channels-last", action="store_true",
                   help="opt-in: VAE weights and activations in channels-last-3d (NDHWC), the layout cuDNN's fast "
                        "3-D kernels want, and the way bf16 avoids PyTorch's slow path with cuDNN 9.8-9.14; float32 "
                        "latents differ from the default in the last bits (~4e-6 on the CPU)")
    g.add_argument("--compile", dest="vae_compile", action="store_true",
                   help="opt-in: torch.compile the VAE encoder (minutes of compiling per clip shape first, needs a C "
                        "compiler; float32 latents differ from the default in the last bits, ~4e-6 on the CPU)")
    g.add_argument("--strict-fp32", action="store_true",
                   help="VAE convolutions in full float32 on a GPU (TF32 off). The default is PyTorch's: cuDNN "
                        "may use TF32, as the original does under PyTorch's defaults; no effect on the CPU")
    g.add_argument("--no-cudnn-benchmark", dest="cudnn_benchmark", action="store_false",
                   help="do not let cuDNN time its algorithms for each new clip shape (on by default on a GPU: "
                        "faster after the first clip of each shape)")


def model_settings(args: argparse.Namespace) -> ModelSettings:
    return ModelSettings(ckpt_dir=args.ckpt_dir, vae_path=args.vae_path, t5_path=args.t5_path,
                         tokenizer_path=args.tokenizer_path, vae_dtype=args.vae_dtype, t5_dtype=args.t5_dtype,
                         device=args.device, t5_device="cpu" if args.t5_cpu else args.t5_device,
                         text_len=args.text_len, vae_tiling=args.vae_tiling, vae_batch=args.vae_batch,
                         vae_channels_last=args.vae_channels_last, vae_compile=args.vae_compile,
                         strict_fp32=args.strict_fp32, cudnn_benchmark=args.cudnn_benchmark)


def add_output_format_options(g) -> None:
    """How records and the list file are written (every command that writes records)."""
    g.add_argument("--format", dest="record_format", choices=("pickle", "safetensors"), default="pickle",
                   help="record files: pickle (.pkl, what ReViSE training reads) or safetensors")
    g.add_argument("--relative-paths", action="store_true",
                   help="write the list file's record paths relative to the list file's folder instead of "
                        "absolute (absolute paths read from any working folder, as ReViSE's loader opens them)")
    g.add_argument("--relative-video-paths", action="store_true",
                   help="write the video paths in the records (video_path, video_path_tgt) relative to "
                        "--video-root instead of absolute; relative ones open only from that folder")


def add_bucket_options(p: argparse.ArgumentParser, *, merge: bool) -> None:
    """Small-bucket reporting (every command that writes records) and, with ``merge``, merging (vae, run)."""
    d = RunSettings(input="", output_dir="")
    g = p.add_argument_group("small buckets")
    g.add_argument("--min-bucket-records", type=_argtype(_positive_int), default=d.min_bucket_records, metavar="N",
                   help="buckets (per-shape lists) with fewer records are named in summary.json and the log: under "
                        "drop_last a bucket smaller than a batch gives no batch at all")
    if merge:
        g.add_argument("--merge-small-buckets", action="store_true",
                       help="with --buckets / --frame-buckets: give the samples of buckets smaller than "
                            "--min-bucket-records the nearest bucket with enough samples that their videos can "
                            "serve (same aspect with fewer frames first; none: they keep theirs), decided before "
                            "encoding from a probe of every sample (bucket_plan.json beside the reports)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"expected a whole number (got {text!r})") from None
    if value < 1:
        raise ValueError(f"must be at least 1 (got {value})")
    return value


def add_execution_options(p: argparse.ArgumentParser) -> None:
    """Workers, timeouts, resume and progress (every command that writes records)."""
    d = RunSettings(input="", output_dir="")
    g = p.add_argument_group("execution and resume")
    g.add_argument("--num-workers", type=at_least(0), default=d.num_workers,
                   help="decoding worker processes (0 = inline)")
    g.add_argument("--cpu-threads", type=at_least(1), default=None, metavar="N",
                   help="CPUs this process (each torchrun/srun rank) uses: one for the main process, the rest split "
                        "over the decode workers (default: the CPUs it may run on, divided by the ranks on the node "
                        "when they share them)")
    g.add_argument("--decode-timeout", type=at_least(0, float, above=True), default=d.decode_timeout,
                   help="seconds one sample's decoding may take before it is failed (a hanging decoder)")
    g.add_argument("--keep-mismatched", action="store_true",
                   help="keep existing records made with other settings instead of redoing them")
    g.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar (or, when stderr is not a terminal, no progress lines)")
    g.add_argument("--progress-interval", type=at_least(0, float, above=True), default=d.progress_interval, metavar="SECONDS",
                   help="when stderr is not a terminal (a batch job's log): seconds between progress lines")
    g.add_argument("--retry-crashed", action="store_true",
                   help="also try samples that were in flight when two earlier runs (or Ray worker processes) died "
                        "(crashed_repeatedly)")
    add_max_pixels_option(g)
    add_engine_options(p)


def add_max_pixels_option(g) -> None:
    g.add_argument("--max-video-pixels", type=at_least(0), default=DEFAULT_MAX_VIDEO_PIXELS,
                   help="refuse videos with more pixels a frame than this (video_too_large, not decoded; "
                        "the default is DCI 8K, 8192x4320; 0 = no limit)")


def add_engine_options(p: argparse.ArgumentParser) -> None:
    d = EngineSettings()
    g = p.add_argument_group("engine")
    g.add_argument("--engine", choices=ENGINE_NAMES, default=d.name,
                   help="local: this process (or each torchrun/srun rank); ray: a Ray Data pipeline over a Ray "
                        "cluster (pip install 'revise-prep[ray]')")
    g.add_argument("--ray-address", default=d.ray_address,
                   help="Ray cluster to join (default: $RAY_ADDRESS, else start a local one)")
    g.add_argument("--ray-gpus-per-actor", type=float, default=d.gpus_per_actor,
                   help="GPUs per encoder actor (one actor per GPU by default; CPU actors without GPUs)")
    g.add_argument("--ray-actors", type=int, default=d.actors,
                   help="encoder actors (default: GPUs / --ray-gpus-per-actor, or CPUs / 4 without GPUs)")
    g.add_argument("--ray-decoded-gb", type=float, default=d.decoded_gb,
                   help="bound on decoded clips held in the object store before the encoders take them")


def engine_settings(args: argparse.Namespace) -> EngineSettings:
    return EngineSettings(name=args.engine, ray_address=args.ray_address, gpus_per_actor=args.ray_gpus_per_actor,
                          actors=args.ray_actors, decoded_gb=args.ray_decoded_gb)


def add_run_options(p: argparse.ArgumentParser, *, input_flags: tuple[str, ...], input_help: str,
                    output_help: str) -> None:
    """Input, output and sample-filter options of ``vae`` and ``run`` (``add_execution_options`` goes last)."""
    g = p.add_argument_group("input and output")
    g.add_argument(*input_flags, dest="input", required=True, help=input_help)
    g.add_argument("--output-dir", "--output_dir", "--result-folder", dest="output_dir", required=True,
                   help=output_help)
    g.add_argument("--video-root", default=".", help="folder that relative video paths are resolved against "
                                                      "(default: the current directory, as the original)")
    g.add_argument("--min-prompt-len", type=at_least(0), default=10,
                   help="skip instructions of at most this many characters, as the original")
    g.add_argument("--skip-bad-entries", action="store_true",
                   help="record malformed input entries in failures.jsonl and go on instead of stopping")
    add_output_format_options(g)


def run_settings(args: argparse.Namespace) -> RunSettings:
    return RunSettings(input=args.input, output_dir=args.output_dir, video_root=args.video_root,
                       num_workers=args.num_workers, cpu_threads=args.cpu_threads, min_prompt_len=args.min_prompt_len,
                       skip_bad_entries=args.skip_bad_entries, decode_timeout=args.decode_timeout,
                       max_video_pixels=args.max_video_pixels, retry_crashed=args.retry_crashed,
                       record_format=args.record_format,
                       progress=args.progress, relative_paths=args.relative_paths,
                       progress_interval=args.progress_interval, engine=engine_settings(args),
                       relative_video_paths=args.relative_video_paths, min_bucket_records=args.min_bucket_records,
                       merge_small_buckets=args.merge_small_buckets)
