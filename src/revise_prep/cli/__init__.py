"""The ``revise-prep`` command: one subcommand per module in this package."""

from __future__ import annotations

import argparse
import logging
import sys

from revise_prep import __version__
from revise_prep.errors import InputError

log = logging.getLogger("revise_prep")


def build_parser() -> argparse.ArgumentParser:
    from revise_prep.cli import ar, demo, inspect, vae

    parser = argparse.ArgumentParser(prog="revise-prep", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"revise-prep {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (vae, ar, demo, inspect):
        module.register(sub)
    return parser


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("urllib3", "filelock", "huggingface_hub", "PIL", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except InputError as err:
        log.error("%s", err)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted; re-run the same command to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
