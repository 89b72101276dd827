"""``revise-prep run``: both steps in one pass per sample (each video decoded once) -> final training records."""

from __future__ import annotations

import argparse
import logging

from revise_prep.cli import options
from revise_prep.cli.ar import add_ar_model_options
from revise_prep.cli.exit_codes import run_status

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("run", help="both steps in one pass: final training records directly", description=__doc__)
    options.add_run_options(p, input_flags=("--input", "--video-list-path", "--video_list_path"),
                            input_help="JSON / JSON Lines list of edit pairs or caption samples",
                            output_help="folder for the final records, their list file (train_list.txt) and the "
                                        "reports")
    options.add_frame_options(p)
    options.add_model_options(p)
    g = add_ar_model_options(p, dtype_flag="--ar-dtype", dtype_dest="ar_dtype")
    g.add_argument("--ar-device", help="device of the AR model (default: --device)")
    g.add_argument("--keep-intermediate", action="store_true",
                   help="also write the step-1 records under <output-dir>/vae_features/ (records only, as step 1 "
                        "writes them; their list file in <output-dir>/vae_features.revise-prep/)")
    options.add_bucket_options(p, merge=True)
    options.add_execution_options(p)
    p.set_defaults(func=run)


def ar_options(args: argparse.Namespace):
    """The AR-model part of ``run``'s flags."""
    from revise_prep.pipeline.onepass import ArOptions

    return ArOptions(model_path=args.model_path, dtype=args.ar_dtype, device=args.ar_device, task=args.task,
                     on_video_error=args.on_video_error, all_frames=args.all_frames)


def run(args: argparse.Namespace) -> int:
    from revise_prep.pipeline.onepass import run_onepass

    ar = ar_options(args)
    summary = run_onepass(options.run_settings(args), options.frame_settings(args), options.model_settings(args), ar,
                          keep_intermediate=args.keep_intermediate, keep_mismatched=args.keep_mismatched)
    return run_status(summary)
