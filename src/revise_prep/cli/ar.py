"""``revise-prep ar``: step 2, the VILA AR-model features, writing the final training records."""

from __future__ import annotations

import argparse
import logging

from revise_prep.cli import options
from revise_prep.cli.exit_codes import run_status

log = logging.getLogger(__name__)

TASKS = ("auto", "vid_edit", "vid_gen", "i2v_gen", "img_gen", "img_edit")


def add_ar_model_options(p: argparse.ArgumentParser, *, dtype_flag: str = "--dtype", dtype_dest: str = "dtype"):
    """The VILA options ``ar`` and ``run`` share; returns their group."""
    g = p.add_argument_group("AR model (VILA)")
    g.add_argument("--model-path", "--model_path", dest="model_path", required=True,
                   help="VILA checkpoint folder (config.json, llm/, vision_tower/, mm_projector/) or hub id")
    g.add_argument(dtype_flag, dest=dtype_dest, choices=options.DTYPES, default="float16",
                   help="AR model precision (the original: float16)")
    g.add_argument("--task", choices=TASKS, default="auto",
                   help="auto: video editing for edit pairs, video generation for caption samples")
    g.add_argument("--on-video-error", choices=("fail", "black"), default="fail",
                   help="an unreadable source video fails its sample, or (black) becomes 8 black frames as in "
                        "the original")
    g.add_argument("--only-used-frames", dest="all_frames", action="store_false",
                   help="decode and encode only the frame(s) that reach the language model (faster; the "
                        "original encodes all 8 and discards 7)")
    return g


def register(sub) -> None:
    p = sub.add_parser("ar", help="step 2: VILA AR-model features -> final training records", description=__doc__)
    g = p.add_argument_group("input and output")
    g.add_argument("--data-file", "--data_file", dest="data_file", required=True,
                   help="step-1 output folder or list file (ours or the original step 1's)")
    g.add_argument("--result-folder", "--result_folder", "--output-dir", dest="result_folder", required=True,
                   help="folder for the final records, their list file (ar_features.txt) and the reports")
    g.add_argument("--video-root", default=".", help="folder relative video paths in the records resolve against "
                                                      "(default: the current directory, as the original)")
    options.add_output_format_options(g)
    g = add_ar_model_options(p)
    g.add_argument("--device", default="auto", help="auto (local GPU under torchrun, else CPU), cuda, cpu, cuda:N")
    g.add_argument("--no-auto-rotate", dest="auto_rotate", action="store_false",
                   help="keep the stored orientation of videos with a display matrix (the original's decord "
                        "turns them upright, as this step does by default)")
    options.add_bucket_options(p, merge=False)
    options.add_execution_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from revise_prep.pipeline.step2 import ArSettings, run_step2

    settings = ArSettings(data_file=args.data_file, result_folder=args.result_folder, model_path=args.model_path,
                          video_root=args.video_root, dtype=args.dtype, device=args.device, task=args.task,
                          on_video_error=args.on_video_error, all_frames=args.all_frames,
                          auto_rotate=args.auto_rotate, num_workers=args.num_workers,
                          cpu_threads=args.cpu_threads,
                          decode_timeout=args.decode_timeout, record_format=args.record_format,
                          progress=args.progress, relative_paths=args.relative_paths,
                          progress_interval=args.progress_interval, engine=options.engine_settings(args),
                          max_video_pixels=args.max_video_pixels, retry_crashed=args.retry_crashed,
                          relative_video_paths=args.relative_video_paths, min_bucket_records=args.min_bucket_records)
    summary = run_step2(settings, keep_mismatched=args.keep_mismatched)
    return run_status(summary)
