"""Flags shared by several commands, with the original scripts' spellings as aliases."""

from __future__ import annotations

import argparse

from revise_prep.settings import FrameSettings, ModelSettings, RunSettings
from revise_prep.video.guards import DEFAULT_MAX_VIDEO_PIXELS

DTYPES = ("float32", "bfloat16", "float16")


def parse_size(text: str) -> tuple[int, int]:
    """``"480,832"`` (the original's form) or ``480x832`` -> (height, width)."""
    parts = text.replace("x", ",").replace("X", ",").split(",")
    try:
        height, width = (int(p) for p in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHT,WIDTH (e.g. 480,832), got {text!r}") from None
    return height, width


def add_frame_options(p: argparse.ArgumentParser) -> None:
    d = FrameSettings()
    g = p.add_argument_group("frames")
    g.add_argument("--frame-num", "--frame_num", dest="frame_num", type=int, default=d.frame_num,
                   help=f"frames per clip, 4n+1 (default {d.frame_num})")
    g.add_argument("--sampling-rate", "--sampling_rate", "--interval", dest="interval", type=int, default=d.interval,
                   help=f"requested frame interval, lowered for short videos as the original does (default {d.interval})")
    g.add_argument("--skip-num", "--skip_num", dest="skip", type=int, default=d.skip,
                   help=f"frames skipped at the start (default {d.skip})")
    g.add_argument("--target-size", "--target_size", dest="target_size", type=parse_size,
                   default=(d.height, d.width), help=f"HEIGHT,WIDTH (default {d.height},{d.width})")
    g.add_argument("--exact-frame-count", dest="strict_count", action="store_false",
                   help="lower the interval only when really needed ((n-1)*interval+1+skip frames) instead of "
                        "the original's stricter n*interval+skip rule")


def frame_settings(args: argparse.Namespace) -> FrameSettings:
    height, width = args.target_size
    return FrameSettings(frame_num=args.frame_num, interval=args.interval, skip=args.skip, height=height,
                         width=width, strict_count=args.strict_count)


def add_model_options(p: argparse.ArgumentParser) -> None:
    d = ModelSettings()
    g = p.add_argument_group("models")
    g.add_argument("--ckpt-dir", "--ckpt_dir", dest="ckpt_dir",
                   help="Wan2.1 release: original layout (Wan2.1_VAE.pth, models_t5_umt5-xxl-enc-bf16.pth, "
                        "google/umt5-xxl/), diffusers layout (vae/, text_encoder/, tokenizer/) or a hub id")
    g.add_argument("--vae-path", help="VAE checkpoint (file, folder or hub id); overrides --ckpt-dir")
    g.add_argument("--t5-path", help="umT5 checkpoint (file, folder or hub id); overrides --ckpt-dir")
    g.add_argument("--tokenizer-path", help="umT5 tokenizer folder or hub id")
    g.add_argument("--vae-dtype", choices=DTYPES, default=d.vae_dtype, help=f"(default {d.vae_dtype})")
    g.add_argument("--t5-dtype", choices=DTYPES, default=d.t5_dtype, help=f"(default {d.t5_dtype})")
    g.add_argument("--device", default=d.device, help="auto (local GPU under torchrun, else CPU), cuda, cpu, cuda:N")
    g.add_argument("--t5-device", help="device of the text encoder (default: --device)")
    g.add_argument("--t5-cpu", "--t5_cpu", dest="t5_cpu", action="store_true", help="run umT5 on the CPU")
    g.add_argument("--text-len", type=int, default=d.text_len, help=f"umT5 token length (default {d.text_len})")
    g.add_argument("--vae-tiling", action="store_true", help="tiled VAE encoding (less GPU memory, small deviation)")
    g.add_argument("--vae-batch", action="store_true",
                   help="encode source and target in one VAE call (faster on a GPU; float32 results may differ "
                        "from the original's in the last bits)")


def model_settings(args: argparse.Namespace) -> ModelSettings:
    return ModelSettings(ckpt_dir=args.ckpt_dir, vae_path=args.vae_path, t5_path=args.t5_path,
                         tokenizer_path=args.tokenizer_path, vae_dtype=args.vae_dtype, t5_dtype=args.t5_dtype,
                         device=args.device, t5_device="cpu" if args.t5_cpu else args.t5_device,
                         text_len=args.text_len, vae_tiling=args.vae_tiling, vae_batch=args.vae_batch)


def add_run_options(p: argparse.ArgumentParser, *, input_flags: tuple[str, ...], input_help: str) -> None:
    g = p.add_argument_group("run")
    g.add_argument(*input_flags, dest="input", required=True, help=input_help)
    g.add_argument("--output-dir", "--output_dir", "--result-folder", dest="output_dir", required=True,
                   help="folder for the records, the list file, failures.jsonl and summary.json")
    g.add_argument("--video-root", default=".", help="folder that relative video paths are resolved against "
                                                      "(default: the current directory, as the original)")
    g.add_argument("--num-workers", type=int, default=2, help="decoding worker processes (default 2; 0 = inline)")
    g.add_argument("--min-prompt-len", type=int, default=10,
                   help="skip instructions of at most this many characters, as the original (default 10)")
    g.add_argument("--skip-bad-entries", action="store_true",
                   help="record malformed input entries in failures.jsonl and go on instead of stopping")
    g.add_argument("--keep-mismatched", action="store_true",
                   help="keep existing records made with other settings instead of redoing them")
    g.add_argument("--format", dest="record_format", choices=("pickle", "safetensors"), default="pickle",
                   help="record files: pickle (.pkl, what ReViSE training reads) or safetensors")
    g.add_argument("--decode-timeout", type=float, default=300.0,
                   help="seconds one sample's decoding may take before it is failed (a hanging decoder)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    add_reliability_options(p)


def add_max_pixels_option(g) -> None:
    g.add_argument("--max-video-pixels", type=int, default=DEFAULT_MAX_VIDEO_PIXELS,
                   help="refuse videos with more pixels a frame than this (video_too_large, not decoded; "
                        "the default is DCI 8K, 8192x4320; 0 = no limit)")


def add_reliability_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reliability")
    add_max_pixels_option(g)
    g.add_argument("--retry-crashed", action="store_true",
                   help="also try samples that were in flight when two earlier runs died (crashed_repeatedly)")


def run_settings(args: argparse.Namespace) -> RunSettings:
    return RunSettings(input=args.input, output_dir=args.output_dir, video_root=args.video_root,
                       num_workers=args.num_workers, min_prompt_len=args.min_prompt_len,
                       skip_bad_entries=args.skip_bad_entries, decode_timeout=args.decode_timeout,
                       max_video_pixels=args.max_video_pixels, retry_crashed=args.retry_crashed,
                       record_format=args.record_format,
                       progress=args.progress)
