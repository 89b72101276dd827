"""Buckets that train: the small ones named when a run ends, and ``--merge-small-buckets`` planned before it starts.

A bucket (one per-shape list) with fewer records than a batch gives no batch at all under ``drop_last`` (ReViSE's
loader), and a trainer that takes the shortest of its loaders (Omni-Video's ``finetune_model.py``) caps every
epoch at the smallest bucket. :func:`report_small_buckets` names the buckets under ``--min-bucket-records`` in
``summary.json`` and the log. With ``--merge-small-buckets``, :func:`plan_buckets` decides every sample's bucket
before anything is encoded, from ``validate``'s probe of the whole input and the pure rule
:func:`~revise_prep.video.buckets.merge_small_buckets`, and keeps the plan in ``bucket_plan.json`` beside the
reports: every rank, and every resume of the same input with the same settings, uses that one plan.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from revise_prep.errors import InputError
from revise_prep.inputs.samples import resolve_path
from revise_prep.records.atomic import fsync_dir
from revise_prep.records.reports import SUMMARY_FILE, write_summary
from revise_prep.settings import FrameSettings, RunSettings, frames_signature
from revise_prep.video.buckets import bucket_name, merge_small_buckets, plan_sample, uses_buckets

__all__ = ["PLAN_FILE", "BucketPlan", "plan_buckets", "report_small_buckets"]

log = logging.getLogger(__name__)

PLAN_FILE = "bucket_plan.json"


@dataclass(frozen=True)
class BucketPlan:
    """Every usable sample's bucket (``"FxHxW"`` by input index), and the ones merged away from their own."""

    key: str  # what the plan was made from (input bytes, video root, frame settings, minimum): see plan_key
    minimum: int
    samples: dict[int, str]  # sample index -> its bucket
    moved: dict[int, str]  # sample index -> its own bucket, for the samples merged into another

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "min_bucket_records": self.minimum,
                "own": dict(sorted(Counter({**self.samples, **self.moved}.values()).items())),
                "planned": dict(sorted(Counter(self.samples.values()).items())),
                "samples": {str(i): b for i, b in sorted(self.samples.items())},
                "moved": {str(i): b for i, b in sorted(self.moved.items())}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "BucketPlan":
        return cls(str(data["key"]), int(data["min_bucket_records"]),
                   {int(i): str(b) for i, b in data["samples"].items()},
                   {int(i): str(b) for i, b in data["moved"].items()})

    def merges(self) -> dict[str, dict[str, int]]:
        """own bucket -> {bucket it went to: samples}."""
        out: dict[str, Counter] = {}
        for index, own in self.moved.items():
            out.setdefault(own, Counter())[self.samples[index]] += 1
        return {own: dict(sorted(to.items())) for own, to in sorted(out.items())}


def plan_key(run: RunSettings, frames: FrameSettings) -> str:
    """What a plan depends on: the input's bytes, where its videos are, the frame rules and the minimum."""
    digest = hashlib.sha1(Path(run.input).read_bytes())
    digest.update(json.dumps({"video_root": str(Path(run.video_root).absolute()), "frames": frames_signature(frames),
                              "min_prompt_len": run.min_prompt_len, "max_video_pixels": run.max_video_pixels,
                              "minimum": run.min_bucket_records}, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def compute_plan(run: RunSettings, frames: FrameSettings, key: str = "") -> BucketPlan:
    """Probe every sample as ``validate`` does (no decoding, no models) and merge the small buckets."""
    from revise_prep.pipeline.validate import validate  # (validate imports the video stack)

    result = validate(run.input, frames, video_root=run.video_root, min_prompt_len=run.min_prompt_len,
                      ar_checks=False, max_video_pixels=run.max_video_pixels)
    usable: dict[int, tuple[tuple[int, int], tuple[int, int, int]]] = {}
    for check in result.samples:
        if check.status not in ("ok", "warning"):  # skipped or failed at decoding: not in any bucket
            continue
        videos = {role: result.videos[str(resolve_path(path, run.video_root))]
                  for role, path in (("source", check.source), ("target", check.target)) if path is not None}
        display = videos["source"].display_size
        chosen, _ = plan_sample(frames, display, {role: v.num_frames for role, v in videos.items()})
        usable[check.index] = display, (chosen.frame_num, chosen.height, chosen.width)
    indices = sorted(usable)
    sizes = frames.buckets or ((frames.height, frames.width),)
    merged = merge_small_buckets([usable[i] for i in indices], sizes, run.min_bucket_records)
    samples = {i: bucket_name(b) for i, b in zip(indices, merged)}
    moved = {i: bucket_name(usable[i][1]) for i, b in zip(indices, merged) if b != usable[i][1]}
    return BucketPlan(key, run.min_bucket_records, samples, moved)


def _read(path: Path) -> BucketPlan | None:
    try:
        return BucketPlan.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _publish(path: Path, plan: BucketPlan) -> BucketPlan:
    """Write the plan unless another rank already wrote one for the same key; return the one in the file.
    The first writer wins (a hard link never replaces), so ranks whose probes differed still share a plan."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(plan.to_json(), indent=1) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            theirs = _read(path)
            if theirs is not None and theirs.key == plan.key:
                return theirs
            os.replace(tmp, path)  # a plan for another input or settings: this run's replaces it
        except OSError:  # a filesystem without hard links
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return plan


def plan_buckets(run: RunSettings, frames: FrameSettings, meta: Path) -> BucketPlan | None:
    """``--merge-small-buckets``: the plan for this input (made now, or read from ``meta``/bucket_plan.json)."""
    if not run.merge_small_buckets:
        return None
    if not uses_buckets(frames):
        raise InputError("--merge-small-buckets needs --buckets or --frame-buckets (without them every sample "
                         "has the same shape)")
    path = Path(meta) / PLAN_FILE
    key = plan_key(run, frames)
    plan = _read(path)
    if plan is not None and plan.key == key:
        log.info("bucket plan: %s (made earlier for this input and these settings)", path)
    else:
        log.info("planning buckets: probing every sample (--merge-small-buckets)")
        plan = _publish(path, compute_plan(run, frames, key))
    merges = "; ".join(f"{own} -> " + ", ".join(f"{to} ({n})" for to, n in tos.items())
                       for own, tos in plan.merges().items())
    log.info("bucket plan: %d sample(s) merged out of buckets under %d: %s", len(plan.moved), plan.minimum,
             merges or "none")
    return plan


def report_small_buckets(summary: dict[str, Any] | None, meta: Path, minimum: int,
                         plan: BucketPlan | None = None) -> dict[str, Any] | None:
    """Name the buckets of fewer than ``minimum`` records in the merged summary (rewritten) and the log."""
    if summary is None or not summary.get("buckets"):
        return summary
    small = {shape: n for shape, n in summary["buckets"].items() if n < minimum}
    summary["min_bucket_records"] = minimum
    if small:
        summary["small_buckets"] = small
    if plan is not None:
        summary["merged_buckets"] = plan.merges()
    write_summary(Path(meta) / SUMMARY_FILE, summary)
    if small:
        log.warning("%d of %d buckets hold fewer than %d records (--min-bucket-records): %s. Under drop_last a "
                    "bucket smaller than a batch gives no batch, and a trainer that runs each epoch to its shortest "
                    "loader stops at the smallest bucket%s", len(small), len(summary["buckets"]), minimum,
                    ", ".join(f"{shape} {n}" for shape, n in small.items()),
                    "" if plan is not None else "; --merge-small-buckets gives their samples the nearest bucket "
                                                "with enough samples")
    return summary
