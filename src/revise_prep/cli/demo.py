"""``revise-prep demo``: generate videos and tiny random models of the three real architectures, run the real
one-pass pipeline on them, print a summary and preview one record."""

from __future__ import annotations

import argparse
import logging

from revise_prep.cli import options

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("demo", help="end-to-end run on generated videos and tiny random-weight models",
                       description=__doc__)
    p.add_argument("--output-dir", default="revise-prep-demo", help="where everything goes (default ./revise-prep-demo)")
    p.add_argument("--num-workers", type=options.at_least(0), default=2, help="decoding worker processes (0 = inline)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from revise_prep.demo import run_demo

    summary = run_demo(args.output_dir, num_workers=args.num_workers)
    print("\nrevise-prep demo (random tiny models: the numbers mean nothing, the pipeline is real)")
    print(f"{'outcome':<24}{'samples':>8}")
    for status, count in summary["by_status"].items():
        print(f"{status:<24}{count:>8}")
    for reason, count in summary["by_reason"].items():
        print(f"  {reason:<22}{count:>8}")
    print(f"records:   {summary['output_dir']}")
    print(f"list file: {summary['list_file']}")
    if "preview" in summary:
        print(f"preview:   {summary['preview']}")
    print(f"wall time: {summary['wall_seconds']} s")
    return 0
