"""The ``revise-prep`` command: one subcommand per module in this package."""

from __future__ import annotations

import argparse
import logging
import sys

from revise_prep import __version__
from revise_prep.cli.config_file import expand_config
from revise_prep.errors import InputError
from revise_prep.pipeline.locks import FolderBusyError
from revise_prep.pipeline.writer import FATAL_ERRNOS, FatalWriteError

log = logging.getLogger("revise_prep")


DESCRIPTION = ("Training-data preparation for Wan2.1-based video-editing models (ReViSE): Wan2.1 VAE latents, "
               "umT5 embeddings and VILA AR-model features, resumable, on one or many GPUs.")

#: Subcommands, in the order ``--help`` lists them; each module has ``register(subparsers)``.
COMMANDS = ("vae", "ar", "run", "demo", "validate", "inspect", "preview", "convert")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="revise-prep", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"revise-prep {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--config", metavar="FILE", help="YAML/TOML file holding any of the command's options "
                        "(flags on the command line override it); may also follow the command name")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"revise_prep.cli.{name}").register(sub)
    return parser


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("urllib3", "filelock", "huggingface_hub", "PIL", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv = expand_config(parser, argv)
    except InputError as err:
        parser.error(str(err))
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except InputError as err:
        log.error("%s", err)
        return 2
    except (FolderBusyError, FatalWriteError) as err:
        log.error("%s", err)
        return 3
    except OSError as err:
        if err.errno not in FATAL_ERRNOS:
            raise
        log.error("cannot write %s: %s (fix it, then re-run the same command to resume)", err.filename, err.strerror)
        return 3
    except KeyboardInterrupt:
        log.error("interrupted; re-run the same command to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
