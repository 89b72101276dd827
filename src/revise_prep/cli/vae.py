"""``revise-prep vae``: step 1 (Wan VAE latents + umT5 embeddings), accepting the original's flag names."""

from __future__ import annotations

import argparse
import logging

from revise_prep.cli import options
from revise_prep.cli.exit_codes import run_status

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("vae", help="step 1: VAE latents and umT5 embeddings for every sample",
                       description=__doc__)
    options.add_run_options(p, input_flags=("--input", "--video-list-path", "--video_list_path"),
                            input_help="JSON / JSON Lines list of edit pairs or caption samples",
                            output_help="folder for the records, and only them (the original step 2 can read it); "
                                        "the list file (vae_features.txt) and reports go in "
                                        "<output-dir>.revise-prep/ beside it")
    options.add_frame_options(p)
    options.add_model_options(p)
    options.add_bucket_options(p, merge=True)
    options.add_execution_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from revise_prep.pipeline.step1 import run_step1

    summary = run_step1(options.run_settings(args), options.frame_settings(args), options.model_settings(args),
                        keep_mismatched=args.keep_mismatched)
    return run_status(summary)
