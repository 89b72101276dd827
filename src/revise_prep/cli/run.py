"""``revise-prep run``: both steps in one pass per sample (each video decoded once) -> final training records."""

from __future__ import annotations

import argparse
import json
import logging

from revise_prep.cli import options
from revise_prep.cli.ar import TASKS

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("run", help="both steps in one pass: final training records directly", description=__doc__,
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    options.add_run_options(p, input_flags=("--input", "--video-list-path", "--video_list_path"),
                            input_help="JSON / JSON Lines list of edit pairs or caption samples")
    options.add_frame_options(p)
    options.add_model_options(p)
    g = p.add_argument_group("AR model (VILA)")
    g.add_argument("--model-path", "--model_path", dest="model_path", required=True,
                   help="VILA checkpoint folder (config.json, llm/, vision_tower/, mm_projector/) or hub id")
    g.add_argument("--ar-dtype", choices=options.DTYPES, default="float16")
    g.add_argument("--ar-device", help="device of the AR model (default: --device)")
    g.add_argument("--task", choices=TASKS, default="auto")
    g.add_argument("--on-video-error", choices=("fail", "black"), default="fail")
    g.add_argument("--only-used-frames", dest="all_frames", action="store_false")
    g.add_argument("--keep-intermediate", action="store_true",
                   help="also write the step-1 records (and their list) under <output-dir>/vae_features/")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from revise_prep.pipeline.onepass import ArOptions, run_onepass

    ar = ArOptions(model_path=args.model_path, dtype=args.ar_dtype, device=args.ar_device, task=args.task,
                   on_video_error=args.on_video_error, all_frames=args.all_frames)
    summary = run_onepass(options.run_settings(args), options.frame_settings(args), options.model_settings(args), ar,
                          keep_intermediate=args.keep_intermediate, keep_mismatched=args.keep_mismatched)
    if summary is not None:
        log.info("summary: %s", json.dumps(summary["by_status"]))
        log.info("list file: %s", summary["list_file"])
    return 0
