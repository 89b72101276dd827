"""Errors that carry a machine-readable reason, so every skipped or failed sample is reported uniformly."""

from __future__ import annotations

import pickle
import zipfile
from contextlib import contextmanager


class SampleError(Exception):
    """A sample cannot be turned into a record.

    ``reason`` is a stable snake_case code written to ``failures.jsonl`` (e.g. ``insufficient_frames``);
    ``str(err)`` is the human message. ``skip`` marks outcomes the original also skips (not errors).
    """

    def __init__(self, reason: str, message: str, *, skip: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.skip = skip

    def __reduce__(self):  # errors travel from decode workers to the main process
        return (_rebuild, (type(self), self.reason, self.message, self.skip))


def _rebuild(cls, reason: str, message: str, skip: bool) -> SampleError:
    return cls(reason, message, skip=skip)


class VideoError(SampleError):
    """A video could not be used: cannot open, no stream, too short, wrong orientation, ..."""


class InputError(ValueError):
    """A malformed input file (JSON list, list file); raised before any work starts."""


class NothingToDoError(InputError):
    """The input holds no sample at all: nothing can be produced (exit status 5, as a run that produced nothing)."""


class FolderBusyError(RuntimeError):
    """Another live process is writing the same share of this output folder."""


@contextmanager
def loading(what: str, source: object):
    """Turn a checkpoint that cannot be loaded (missing, wrong layout, wrong device) into one clear line."""
    try:
        yield
    except InputError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, ImportError, EOFError, pickle.UnpicklingError,
            zipfile.BadZipFile) as err:  # a damaged weights file: torch.load's own errors
        raise InputError(f"cannot load {what} from {source}: {type(err).__name__}: {err}") from err


# Reason codes (kept in one place so reports and tests agree).
MISSING_FILE = "missing_file"
EMPTY_FILE = "empty_file"
CANNOT_OPEN = "cannot_open"
NO_VIDEO_STREAM = "no_video_stream"
INSUFFICIENT_FRAMES = "insufficient_frames"
ORIENTATION_MISMATCH = "orientation_mismatch"
DECODE_ERROR = "decode_error"
DECODE_TIMEOUT = "decode_timeout"
DECODER_CRASHED = "decoder_crashed"  # the decode worker died on this sample twice (a signal, the OOM killer)
CRASHED_REPEATEDLY = "crashed_repeatedly"  # in flight when two runs or Ray processes died (--retry-crashed tries it)
VIDEO_TOO_LARGE = "video_too_large"  # width x height above --max-video-pixels: not decoded
SHORT_PROMPT = "short_prompt"
ENCODE_ERROR = "encode_error"
WRITE_ERROR = "write_error"
