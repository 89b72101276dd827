"""Record file names: the original's rule, plus disambiguation of collisions.

The original names a record after the target video's stem; a stem shorter than 4 characters is
prefixed with the source video's parent folder and "_". It then skips a sample whose output
exists, so two pairs with one target name silently lose one. We keep the first occurrence's
name (so existing outputs stay valid) and give later ones a short stable hash suffix.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
from dataclasses import dataclass

from revise_prep.inputs.samples import Sample

log = logging.getLogger(__name__)

DUPLICATE_SAMPLE = "duplicate_sample"


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


def plan_names(samples: list[Sample]) -> NamePlan:
    """Assign each sample a unique stem, deterministically over the whole input (independent of ranks)."""
    names: dict[int, str] = {}
    renamed: dict[int, str] = {}
    duplicates: dict[int, int] = {}
    first_by_key: dict[str, int] = {}
    taken: set[str] = set()
    for sample in samples:
        key = sample_key(sample)
        if key in first_by_key:
            duplicates[sample.index] = first_by_key[key]
            continue
        first_by_key[key] = sample.index
        name = original_name(sample)
        if name in taken:
            renamed[sample.index] = name
            name = f"{name}-{stable_suffix(sample)}"
            n = 2
            while name in taken:  # astronomically unlikely, but never overwrite
                name = f"{original_name(sample)}-{stable_suffix(sample)}-{n}"
                n += 1
        taken.add(name)
        names[sample.index] = name
    if renamed:
        log.warning("%d output name collision(s) disambiguated with a hash suffix", len(renamed))
    return NamePlan(names, renamed, duplicates)
