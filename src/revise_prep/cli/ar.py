"""``revise-prep ar``: step 2, the VILA AR-model features, writing the final training records."""

from __future__ import annotations

import argparse
import json
import logging

from revise_prep.cli import options

log = logging.getLogger(__name__)

TASKS = ("auto", "vid_edit", "vid_gen", "i2v_gen", "img_gen", "img_edit")


def register(sub) -> None:
    p = sub.add_parser("ar", help="step 2: VILA AR-model features -> final training records", description=__doc__,
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-file", "--data_file", dest="data_file", required=True,
                   help="step-1 output folder or list file (ours or the original step 1's)")
    p.add_argument("--model-path", "--model_path", dest="model_path", required=True,
                   help="VILA checkpoint folder (config.json, llm/, vision_tower/, mm_projector/) or hub id")
    p.add_argument("--result-folder", "--result_folder", "--output-dir", dest="result_folder", required=True)
    p.add_argument("--video-root", default=".", help="folder relative video paths in the records resolve against")
    p.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default="float16")
    p.add_argument("--device", default="auto", help="auto (local GPU under torchrun, else CPU), cuda, cpu, cuda:N")
    p.add_argument("--task", choices=TASKS, default="auto",
                   help="auto: video editing for edit pairs, video generation for caption records")
    p.add_argument("--on-video-error", choices=("fail", "black"), default="fail",
                   help="fail the sample (default) or, as the original, use 8 black frames")
    p.add_argument("--only-used-frames", dest="all_frames", action="store_false",
                   help="decode and encode only the frame(s) that reach the language model (faster; the "
                        "original encodes all 8 and discards 7)")
    p.add_argument("--num-workers", type=int, default=2)
    p.add_argument("--format", dest="record_format", choices=("pickle", "safetensors"), default="pickle",
                   help="record files: pickle (.pkl, what ReViSE training reads) or safetensors")
    p.add_argument("--decode-timeout", type=float, default=300.0, help="seconds per sample before it is failed")
    p.add_argument("--keep-mismatched", action="store_true",
                   help="keep existing records made with other settings instead of redoing them")
    p.add_argument("--no-progress", dest="progress", action="store_false")
    options.add_reliability_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from revise_prep.pipeline.step2 import ArSettings, run_step2

    settings = ArSettings(data_file=args.data_file, result_folder=args.result_folder, model_path=args.model_path,
                          video_root=args.video_root, dtype=args.dtype, device=args.device, task=args.task,
                          on_video_error=args.on_video_error, all_frames=args.all_frames,
                          num_workers=args.num_workers, decode_timeout=args.decode_timeout,
                          max_video_pixels=args.max_video_pixels, retry_crashed=args.retry_crashed,
                          record_format=args.record_format,
                          progress=args.progress)
    summary = run_step2(settings, keep_mismatched=args.keep_mismatched)
    if summary is not None:
        log.info("summary: %s", json.dumps(summary["by_status"]))
        log.info("list file: %s", summary["list_file"])
    return 0
