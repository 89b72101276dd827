"""The typed sample every later stage works on."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def resolve_path(path: str, root: str | os.PathLike[str]) -> Path:
    """A path from the input (or a record) resolved against the video root; absolute paths are kept."""
    return Path(path) if os.path.isabs(path) else Path(root) / path


def record_video_path(file: str | os.PathLike[str], relative_to: str | os.PathLike[str] | None = None) -> str:
    """How a record names a video it was made from: the file that was read, as an absolute path (it opens from
    any working folder), or with ``relative_to`` (``--relative-video-paths``: the video root) relative to it."""
    file = Path(file).absolute()
    return os.path.relpath(file, Path(relative_to).absolute()) if relative_to is not None else str(file)


@dataclass(frozen=True)
class Sample:
    """One entry of the input list.

    ``source``/``target`` are the paths exactly as written in the input (records keep them in their
    meta); ``video_root`` resolves relative ones. ``target`` is None for a caption (text-to-video) sample.
    """

    index: int
    source: str
    target: str | None
    instruction: str
    sample_type: str | None = None
    video_root: str = "."

    @property
    def is_caption(self) -> bool:
        return self.target is None

    @property
    def kind(self) -> str:
        return "caption" if self.is_caption else "edit"

    @property
    def prompt(self) -> str:
        """The prompt as the original stores it: the instruction with newlines replaced by spaces."""
        return self.instruction.replace("\n", " ")

    def resolve(self, path: str) -> Path:
        """Resolve a path from the input against the video root (absolute paths are kept)."""
        return resolve_path(path, self.video_root)

    @property
    def source_file(self) -> Path:
        return self.resolve(self.source)

    @property
    def target_file(self) -> Path | None:
        return None if self.target is None else self.resolve(self.target)

    @property
    def label(self) -> str:
        """Short human name used in messages: index and source path."""
        return f"sample #{self.index} ({self.target or self.source})"
