"""``revise-prep vae``: step 1 (Wan VAE latents + umT5 embeddings), accepting the original's flag names."""

from __future__ import annotations

import argparse
import json
import logging

from revise_prep.cli import options

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("vae", help="step 1: VAE latents and umT5 embeddings for every sample",
                       description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    options.add_run_options(p, input_flags=("--input", "--video-list-path", "--video_list_path"),
                            input_help="JSON / JSON Lines list of edit pairs or caption samples")
    options.add_frame_options(p)
    options.add_model_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from revise_prep.pipeline.step1 import run_step1

    summary = run_step1(options.run_settings(args), options.frame_settings(args), options.model_settings(args),
                        keep_mismatched=args.keep_mismatched)
    if summary is not None:
        log.info("summary: %s", json.dumps(summary["by_status"]))
        log.info("list file: %s", summary["list_file"])
    return 0
