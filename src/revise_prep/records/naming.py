"""Record file names: the original's rule, plus disambiguation of collisions and names that always work.

The original names a record after the target video's stem; a stem shorter than 4 characters is
prefixed with the source video's parent folder and "_". It then skips a sample whose output
exists, so two pairs with one target name silently lose one. We keep the first occurrence's
name (so existing outputs stay valid) and give later ones a short stable hash suffix.

A name must also be writable and fit on one line of a list file: control characters (and the
Unicode line and paragraph separators) become ``_``, and a name longer than the filesystem allows
(in bytes, with the record's suffix) is cut at a character boundary and ends with
a stable hash of the full name. The name as the original would have written it is kept in the
record's meta and in ``notes.jsonl``.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import unicodedata
from dataclasses import dataclass, field

from revise_prep.inputs.samples import Sample

DUPLICATE_SAMPLE = "duplicate_sample"
NAME_MAX = 255  # bytes, when the filesystem does not say (ext4, xfs, btrfs, NFS, Lustre, GPFS)
HASH_LEN = 8
_UNSAFE = {"Cc", "Cs", "Zl", "Zp"}  # control characters, lone surrogates, line and paragraph separators


def name_budget(folder: str | os.PathLike[str] | None = None, suffix: str = ".pkl") -> int:
    """Bytes a record's stem may take in ``folder`` (its filesystem's name limit minus the suffix)."""
    limit = NAME_MAX
    if folder is not None:
        try:
            limit = min(limit, os.pathconf(folder, "PC_NAME_MAX"))
        except (OSError, ValueError):
            pass
    return limit - len(suffix.encode())


def safe_stem(stem: str) -> str:
    """``stem`` with every character that cannot go on one line of a list file, or in a name, replaced by ``_``."""
    cleaned = "".join("_" if c == "/" or unicodedata.category(c) in _UNSAFE else c for c in stem)
    return cleaned if cleaned not in ("", ".", "..") else f"_{cleaned}"


def bounded(stem: str, max_bytes: int) -> str:
    """``stem`` if its UTF-8 form fits in ``max_bytes``, else its longest prefix that fits with ``-<hash>``."""
    raw = stem.encode("utf-8")
    if len(raw) <= max_bytes:
        return stem
    digest = hashlib.sha1(raw).hexdigest()[:HASH_LEN]
    head = raw[:max_bytes - HASH_LEN - 1].decode("utf-8", errors="ignore")  # never half a character
    return f"{head}-{digest}"


def writable_name(stem: str, max_bytes: int) -> str:
    """The name actually used for ``stem``: safe characters, bounded length."""
    return bounded(safe_stem(stem), max_bytes)


def original_name(sample: Sample) -> str:
    """The original's output stem (without ``.pkl``)."""
    video = sample.target if sample.target is not None else sample.source
    stem = posixpath.splitext(posixpath.basename(video.replace("\\", "/")))[0]
    if len(stem) < 4:
        parts = sample.source.replace("\\", "/").split("/")
        # The original indexes [-2] and crashes without a folder; we keep the bare stem instead.
        if len(parts) >= 2:
            stem = f"{parts[-2]}_{stem}"
    return stem


def sample_key(sample: Sample) -> str:
    """Identity of a sample's content: two entries with the same key are the same sample."""
    return "\x00".join((sample.source, sample.target or "", sample.instruction))


def stable_suffix(sample: Sample, length: int = 8) -> str:
    return hashlib.sha1(sample_key(sample).encode("utf-8")).hexdigest()[:length]


@dataclass(frozen=True)
class NamePlan:
    """Names for every sample (by input index), the collisions renamed and the exact duplicates."""

    names: dict[int, str]
    renamed: dict[int, str]  # index -> original (colliding) name
    duplicates: dict[int, int]  # index -> index of the first identical sample
    altered: dict[int, str] = field(default_factory=dict)  # index -> original name, when unsafe or too long


def plan_names(samples: list[Sample], *, max_bytes: int | None = None) -> NamePlan:
    """Assign each sample a unique stem, deterministically over the whole input (independent of ranks);
    ``max_bytes`` bounds each stem (default: :func:`name_budget` of a typical filesystem). Logs nothing: the
    callers report each renamed or changed name (step 1 in its log and ``notes.jsonl``, validate in its report)."""
    max_bytes = name_budget() if max_bytes is None else max_bytes
    names: dict[int, str] = {}
    renamed: dict[int, str] = {}
    altered: dict[int, str] = {}
    duplicates: dict[int, int] = {}
    first_by_key: dict[str, int] = {}
    taken: set[str] = set()
    for sample in samples:
        key = sample_key(sample)
        if key in first_by_key:
            duplicates[sample.index] = first_by_key[key]
            continue
        first_by_key[key] = sample.index
        original = original_name(sample)
        name = writable_name(original, max_bytes)
        if name != original:
            altered[sample.index] = original
        if name in taken:
            renamed[sample.index] = name
            name = writable_name(f"{original}-{stable_suffix(sample)}", max_bytes)
            n = 2
            while name in taken:  # astronomically unlikely, but never overwrite
                name = writable_name(f"{original}-{stable_suffix(sample)}-{n}", max_bytes)
                n += 1
        taken.add(name)
        names[sample.index] = name
    return NamePlan(names, renamed, duplicates, altered)
