"""``revise-prep validate INPUT.json``: pre-flight check without models (what step 1 would skip or fail, and why)."""

from __future__ import annotations

import argparse
import logging

from revise_prep.cli import options

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("validate", help="check an input list before step 1: videos, frame counts, orientation, "
                                        "prompts, output names (no models)",
                       description=__doc__)
    p.add_argument("input", help="JSON / JSON Lines list of edit pairs or caption samples")
    p.add_argument("--video-root", default=".", help="folder that relative video paths are resolved against")
    options.add_frame_options(p)
    p.add_argument("--min-prompt-len", type=options.at_least(0), default=10,
                   help="instructions of at most this many characters are skipped, as by step 1")
    p.add_argument("--max-prompt-chars", type=int, default=2000,  # = pipeline.validate.DEFAULT_MAX_PROMPT_CHARS
                   help="warn about instructions longer than this (~ umT5's 512 tokens)")
    p.add_argument("--report", default="validate.jsonl",
                   help="JSON Lines file listing every sample that would be skipped, fail or has a warning")
    p.add_argument("--workers", type=options.at_least(1), default=None,
                   help="probing threads (default: 2 x CPU cores, at most 16)")
    p.add_argument("--vae-only", dest="ar_checks", action="store_false",
                   help="check only what step 1 (`vae`) needs; by default the source videos also get the checks "
                        "step 2 (`ar`/`run`) makes before reading its AR frames")
    options.add_max_pixels_option(p)
    p.add_argument("--allow-skips", action="store_true",
                   help="exit 0 even when some samples would be skipped or fail")
    g = p.add_argument_group("checkpoints (optional: each given is checked as `vae`/`ar`/`run` check it before "
                             "loading, from configs and file headers; nothing is loaded)")
    g.add_argument("--ckpt-dir", "--ckpt_dir", dest="ckpt_dir", help="Wan2.1 release folder or hub id")
    g.add_argument("--vae-path", help="VAE checkpoint (overrides --ckpt-dir)")
    g.add_argument("--t5-path", help="umT5 checkpoint (overrides --ckpt-dir)")
    g.add_argument("--tokenizer-path", help="umT5 tokenizer folder or hub id")
    g.add_argument("--model-path", "--model_path", dest="model_path", help="VILA checkpoint folder or hub id")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from revise_prep.pipeline.validate import format_table, validate, write_report
    from revise_prep.settings import ModelSettings

    models = None
    if args.ckpt_dir or args.vae_path or args.t5_path or args.tokenizer_path:
        models = ModelSettings(ckpt_dir=args.ckpt_dir, vae_path=args.vae_path, t5_path=args.t5_path,
                               tokenizer_path=args.tokenizer_path)
    result = validate(args.input, options.frame_settings(args), video_root=args.video_root,
                      min_prompt_len=args.min_prompt_len, max_prompt_chars=args.max_prompt_chars,
                      workers=args.workers, ar_checks=args.ar_checks, max_video_pixels=args.max_video_pixels,
                      models=models, model_path=args.model_path)
    report = write_report(result, args.report)
    print(format_table(result))
    print(f"\nreport: {report}")
    lost = result.would_lose
    if lost and not args.allow_skips:
        log.error("%d of %d samples would be skipped or fail (see %s; --allow-skips to accept)",
                  lost, len(result.samples), report)
        return 1
    return 0
