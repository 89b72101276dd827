"""Aspect-ratio and frame-count buckets: which size and frame count a sample gets (pure rules, no I/O).

The original has one target size and one frame count; with buckets each sample goes to the bucket whose
aspect ratio is closest to its source video's displayed aspect (distance in log ratio, compared exactly;
ties: the larger area, then the first listed), and to the largest frame count both of its videos can
serve under the original's interval rule (:func:`~revise_prep.video.selection.effective_interval`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from typing import Any

from revise_prep.settings import FrameSettings

from .selection import effective_interval

__all__ = ["PRESETS", "SIZE_MULTIPLE", "Bucket", "aspect_distance", "bucket_name", "choose_bucket",
           "choose_frame_count", "merge_small_buckets", "parse_bucket_name", "parse_buckets", "parse_frame_buckets",
           "plan_sample", "uses_buckets"]

#: (frame count, height, width): one shape of latents, named ``"FxHxW"`` (the per-shape lists' names).
Bucket = tuple[int, int, int]

#: Bucket sizes must be multiples of this: 8 (the VAE's spatial factor) times 2 (the transformer's patch).
SIZE_MULTIPLE = 16

#: (height, width) presets: Wan's 16:9 / 9:16 sizes, a square and 4:3 / 3:4 at about the same area.
PRESETS: dict[str, tuple[tuple[int, int], ...]] = {
    "wan-480p": ((480, 832), (832, 480), (624, 624), (544, 720), (720, 544)),
    "wan-720p": ((720, 1280), (1280, 720), (960, 960), (832, 1104), (1104, 832)),
}


def aspect_distance(h: int, w: int, bucket_h: int, bucket_w: int) -> Fraction:
    """``exp(|log(w/h) - log(bucket_w/bucket_h)|)`` as an exact fraction (>= 1): orders buckets like the log
    distance does, and equal distances compare equal (a square source is as far from 2:3 as from 3:2)."""
    a, b = w * bucket_h, h * bucket_w
    return Fraction(max(a, b), min(a, b))


def choose_bucket(h: int, w: int, buckets: Sequence[tuple[int, int]]) -> int:
    """Index of the bucket closest in log aspect ratio to an ``h`` x ``w`` picture; ties: larger area, then first."""
    if not buckets:
        raise ValueError("no buckets to choose from")
    if h < 1 or w < 1:
        raise ValueError(f"picture size must be positive (got {h}x{w})")
    return min(range(len(buckets)),
               key=lambda i: (aspect_distance(h, w, *buckets[i]), -buckets[i][0] * buckets[i][1], i))


def choose_frame_count(totals: Sequence[int], counts: Sequence[int], interval: int, skip: int,
                       strict: bool = True) -> int | None:
    """The largest of ``counts`` that every video (``totals`` frames each) can serve, each at its own interval
    lowered as the original does; None when even the smallest is too many for one of them."""
    for count in sorted(set(counts), reverse=True):
        if all(effective_interval(t, count, interval, skip, strict) > 0 for t in totals):
            return count
    return None


def uses_buckets(frames: FrameSettings) -> bool:
    """True when sizes or frame counts are chosen per sample (``--buckets`` / ``--frame-buckets``)."""
    return bool(frames.buckets or frames.frame_buckets)


def bucket_name(bucket: Bucket) -> str:
    """(49, 480, 832) -> ``"49x480x832"``."""
    return "x".join(map(str, bucket))


def parse_bucket_name(name: str) -> Bucket:
    """``"49x480x832"`` -> (49, 480, 832)."""
    f, h, w = (int(v) for v in name.split("x"))
    return f, h, w


def merge_small_buckets(samples: Sequence[tuple[tuple[int, int], Bucket] | None], sizes: Sequence[tuple[int, int]],
                        minimum: int) -> list[Bucket | None]:
    """Each sample's bucket once the samples of buckets under ``minimum`` samples join near buckets with enough.

    ``samples``: per sample its source's displayed (height, width) and its own bucket (None: not usable, left
    out); ``sizes``: the bucket sizes in the order listed. A sample of a bucket with fewer than ``minimum``
    samples goes to the nearest bucket with at least ``minimum`` whose frame count its videos serve (no more
    frames than its own bucket's): closest in log aspect to its source (as :func:`choose_bucket`; ties to the
    larger area, then the first listed), then the most frames, so it keeps its aspect with fewer frames before
    it is cropped to another. A sample that no such bucket can take keeps its own (it is never cropped or
    shortened for a bucket that is small too). A pure function of its input: every rank and every resume
    computes the same.
    """
    order = {tuple(size): i for i, size in enumerate(sizes)}
    tally = Counter(s[1] for s in samples if s is not None)
    big = [b for b, n in tally.items() if n >= minimum]
    merged: list[Bucket | None] = []
    for sample in samples:
        if sample is None or tally[sample[1]] >= minimum:
            merged.append(None if sample is None else sample[1])
            continue
        (h, w), own = sample
        fits = [b for b in big if b[0] <= own[0]]
        merged.append(min(fits, key=lambda b: (aspect_distance(h, w, b[1], b[2]), -b[1] * b[2],
                                               order.get((b[1], b[2]), len(order)), -b[0])) if fits else own)
    return merged


def plan_sample(frames: FrameSettings, source_display: tuple[int, int], totals: dict[str, int],
                assigned: Bucket | None = None) -> tuple[FrameSettings, dict[str, Any]]:
    """This sample's frame settings (size and frame count of its bucket) and the meta saying why.

    ``source_display``: the source video's displayed (height, width); ``totals``: frame count per role.
    A pair the frame buckets cannot serve gets the smallest count, so reading reports the short video.
    ``assigned``: the bucket a plan gave it (:func:`merge_small_buckets`), when not its own.
    """
    h, w = source_display
    why: dict[str, Any] = {}
    settings = frames
    if frames.buckets:
        i = choose_bucket(h, w, frames.buckets)
        bh, bw = frames.buckets[i]
        settings = replace(settings, height=bh, width=bw)
        why["size_reason"] = (f"source displayed {w}x{h} (WxH, aspect {w / h:.4f}) is closest in log aspect to "
                              f"{bw}x{bh} (aspect {bw / bh:.4f}) of {len(frames.buckets)} buckets")
    if frames.frame_buckets:
        chosen = choose_frame_count(list(totals.values()), frames.frame_buckets, frames.interval, frames.skip,
                                    frames.strict_count)
        count = chosen if chosen is not None else min(frames.frame_buckets)
        settings = replace(settings, frame_num=count)
        counts = ", ".join(f"{role} {n}" for role, n in totals.items())
        why["frame_reason"] = (f"largest of {sorted(frames.frame_buckets, reverse=True)} that every video serves "
                               f"({counts} frames; requested interval {frames.interval})")
    own = (settings.frame_num, settings.height, settings.width)
    if assigned is not None and tuple(assigned) != own:
        f, bh, bw = assigned
        settings = replace(settings, frame_num=f, height=bh, width=bw)
        why["merged_from"] = bucket_name(own)  # --merge-small-buckets: its own bucket had too few samples
    why = {"size": [settings.height, settings.width], "frame_num": settings.frame_num,
           "source_display": [h, w], **why}
    return settings, why


def parse_buckets(text: str) -> tuple[tuple[int, int], ...]:
    """``"480x832,832x480"`` or a preset name -> ((480, 832), (832, 480)); ValueError with a one-line reason."""
    text = text.strip()
    if text in PRESETS:
        return PRESETS[text]
    sizes = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            h, w = (int(v) for v in part.lower().split("x"))
        except ValueError:
            raise ValueError(f"bucket {part!r} is not HEIGHTxWIDTH (e.g. 480x832) nor a preset "
                             f"({', '.join(PRESETS)})") from None
        sizes.append((h, w))
    if not sizes:
        raise ValueError("no buckets given")
    check_sizes(sizes)
    return tuple(sizes)


def check_sizes(sizes: Sequence[tuple[int, int]]) -> None:
    """ValueError unless every size is positive and a multiple of :data:`SIZE_MULTIPLE`, without repeats."""
    bad = [f"{h}x{w}" for h, w in sizes if h < 1 or w < 1 or h % SIZE_MULTIPLE or w % SIZE_MULTIPLE]
    if bad:
        raise ValueError(f"bucket sizes must be positive multiples of {SIZE_MULTIPLE} (the VAE's factor 8 times "
                         f"the transformer's patch 2): {', '.join(bad)}")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"bucket listed twice: {', '.join(f'{h}x{w}' for h, w in sizes)}")


def parse_frame_buckets(text: str) -> tuple[int, ...]:
    """``"81,49,33,17"`` -> (81, 49, 33, 17); ValueError unless each is 4n+1."""
    try:
        counts = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise ValueError(f"frame buckets must be integers separated by commas (got {text!r})") from None
    check_frame_counts(counts)
    return counts


def check_frame_counts(counts: Sequence[int]) -> None:
    """ValueError unless there is at least one count and each is 4n+1 (the VAE's temporal factor), no repeats."""
    if not counts:
        raise ValueError("no frame buckets given")
    bad = [str(n) for n in counts if n < 1 or (n - 1) % 4]
    if bad:
        raise ValueError(f"frame buckets must be 4n+1 (1, 5, 9, ..., 81): {', '.join(bad)}")
    if len(set(counts)) != len(counts):
        raise ValueError(f"frame bucket listed twice: {', '.join(map(str, counts))}")
