"""The ``revise-prep`` command: one subcommand per module in this package.

Exit statuses are in ``cli/exit_codes.py`` (and the README): a usage or configuration error is one line naming
the problem, exit 2; ``--debug`` or ``REVISE_PREP_DEBUG=1`` adds its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from revise_prep import __version__
from revise_prep.cli import exit_codes
from revise_prep.cli.config_file import expand_config
from revise_prep.cli.options import HelpFormatter
from revise_prep.errors import FolderBusyError, InputError, NothingToDoError
from revise_prep.pipeline.engines.writer import FATAL_ERRNOS, FatalWriteError

log = logging.getLogger("revise_prep")


DESCRIPTION = ("Training-data preparation for Wan2.1-based video-editing models (ReViSE): Wan2.1 VAE latents, "
               "umT5 embeddings and VILA AR-model features, resumable, on one or many GPUs.")

#: Subcommands, in the order ``--help`` lists them; each module has ``register(subparsers)``.
COMMANDS = ("vae", "ar", "run", "status", "demo", "validate", "inspect", "preview", "convert")


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (the full usage of ``run`` is 30 lines)."""

    def error(self, message: str):
        self.exit(exit_codes.USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = Parser(prog="revise-prep", description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"revise-prep {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of a usage or configuration error, and the level and module path on "
                             "every log line (also: REVISE_PREP_DEBUG=1)")
    parser.add_argument("--config", metavar="FILE", help="YAML/TOML file holding any of the command's options "
                        "(flags on the command line override it); may also follow the command name")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"revise_prep.cli.{name}").register(sub)
    for command in sub.choices.values():
        command.formatter_class = HelpFormatter
    return parser


class LogFormatter(logging.Formatter):
    """``12:00:01 message`` for information, ``12:00:01 WARNING message`` otherwise; with ``with_names`` (``--debug``
    or ``-v``) the level and the logger's module path on every line."""

    def __init__(self, with_names: bool = False) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s" if with_names else
                         "%(asctime)s %(level)s%(message)s", datefmt="%H:%M:%S")
        self.with_names = with_names

    def format(self, record: logging.LogRecord) -> str:
        record.level = "" if record.levelno == logging.INFO else f"{record.levelname} "
        return super().format(record)


def setup_logging(verbose: bool, debug: bool = False) -> None:
    if not sys.stderr.isatty():  # a batch job's log: no progress bars from the hub or transformers either
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    handler = logging.StreamHandler()
    handler.setFormatter(LogFormatter(with_names=verbose or debug))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    for noisy in ("urllib3", "filelock", "huggingface_hub", "PIL", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("REVISE_PREP_DEBUG", "").strip().lower() in ("1", "true", "yes")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(argv)
    argv = [a for a in argv if a != "--debug"]  # accepted anywhere, also after the command name
    try:
        argv = expand_config(parser, argv)
    except InputError as err:
        parser.error(str(err))
    args = parser.parse_args(argv)
    setup_logging(args.verbose, debug)

    def fail(code: int, message: str, *fmt) -> int:
        log.error(message, *fmt, exc_info=debug)
        return code

    try:
        return int(args.func(args) or 0)
    except NothingToDoError as err:
        return fail(exit_codes.NOTHING_PRODUCED, "%s (exit status %d)", err, exit_codes.NOTHING_PRODUCED)
    except InputError as err:
        return fail(exit_codes.USAGE, "%s", err)
    except (FolderBusyError, FatalWriteError) as err:
        return fail(exit_codes.CANNOT_WRITE, "%s", err)
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly, and keep Python from complaining at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return exit_codes.BROKEN_PIPE
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        if err.errno in FATAL_ERRNOS:
            return fail(exit_codes.CANNOT_WRITE, "cannot write %s%s (fix it, then re-run the same command to resume)",
                        where, err.strerror)
        return fail(exit_codes.USAGE, "%s%s", where, err.strerror or err)
    except KeyboardInterrupt:
        log.error("interrupted; re-run the same command to resume")
        return exit_codes.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
