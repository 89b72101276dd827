"""Pre-flight check of an input list without models: what step 1 would skip or fail, and why.

Applies the pipeline's own rules in the pipeline's order (prompt filter, then the source video,
then the target: probe -> effective interval -> orientation on the displayed size) using the
``revise_prep.video`` functions and ``plan_names``, so the reasons equal those ``vae``/``run`` would
write to ``failures.jsonl``. Unless ``ar_checks=False``, the source video of an edit pair also gets
the checks step 2 (``ar``/``run``) makes before decoding its 8 AR frames (e.g. a header promising more
frames than the file holds). Per video it reports, as information, the rotation that will be applied,
interlacing, bit depth and an HDR transfer. Each distinct video file is probed once, in a thread pool
(probing is file I/O and demuxing, which PyAV runs without the GIL).
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from revise_prep.errors import SHORT_PROMPT, SampleError, VideoError
from revise_prep.inputs import Sample, parse_entries
from revise_prep.models.text import passes_prompt_filter
from revise_prep.pipeline.preflight import preflight_validate
from revise_prep.records.naming import DUPLICATE_SAMPLE, plan_names
from revise_prep.settings import FrameSettings, ModelSettings
from revise_prep.video import check_orientation, probe_video, sampling_interval
from revise_prep.video.probe import HDR_TRANSFERS, count_indexed_frames
from revise_prep.video.notes import decoder_notes
from revise_prep.video.reader import applied_rotation
from revise_prep.video.guards import DEFAULT_MAX_VIDEO_PIXELS, check_video_pixels

__all__ = ["VideoCheck", "SampleCheck", "ValidationResult", "validate", "check_video", "write_report",
           "format_table", "DEFAULT_MAX_PROMPT_CHARS"]

log = logging.getLogger(__name__)

# Warning codes: the sample is still processed, but the user may want to know.
NAME_COLLISION = "name_collision"  # output name taken by an earlier sample: written with a hash suffix
INTERVAL_LOWERED = "interval_lowered"  # video too short for the requested interval: a smaller one is used
LONG_PROMPT = "long_prompt"  # likely longer than the umT5 token limit: the end is truncated
SUSPICIOUS_TEXT = "suspicious_text"  # mojibake or U+FFFD: the instruction was probably decoded wrongly

#: Characters above which an instruction very likely exceeds umT5's 512 tokens (~4 characters a token).
DEFAULT_MAX_PROMPT_CHARS = 2000


@dataclass(frozen=True)
class VideoCheck:
    """Outcome of probing one video file under the frame settings (shared by every sample using it)."""

    file: str
    reason: str | None = None  # a ``revise_prep.errors`` code when the video cannot be used
    message: str | None = None
    skip: bool = False  # True for outcomes the pipeline counts as "skipped" (not "failed")
    num_frames: int | None = None
    width: int | None = None
    height: int | None = None
    display_size: tuple[int, int] | None = None  # (height, width) step 1 sees: after rotation, unless turned off
    interval: int | None = None  # the effective interval step 1 will use (0: too short)
    count_method: str | None = None
    rotation: int = 0  # quarter turn step 1 will apply (display matrix; 0 with --no-auto-rotate)
    interlaced: bool | None = None
    bit_depth: int | None = None
    color_transfer: str | None = None
    notes: dict[str, str] = field(default_factory=dict)  # where the original's decoder differs (video.notes)
    ar_reason: str | None = None  # step 2's AR-frame check failed (source videos only)
    ar_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def hdr(self) -> bool:
        return self.color_transfer in HDR_TRANSFERS

    def facts(self) -> dict[str, Any]:
        """The per-video information of the report (not problems)."""
        data: dict[str, Any] = {"rotation": self.rotation, "interlaced": self.interlaced,
                                "bit_depth": self.bit_depth, "color_transfer": self.color_transfer,
                                "hdr": self.hdr}
        if self.width is not None:
            data["size"] = f"{self.width}x{self.height}"  # stored, WxH
        if self.notes:
            data["original_decoder"] = self.notes
        return data


@dataclass
class SampleCheck:
    """One input entry's verdict: ``status`` is ok / warning / skipped / failed (as step 1 would report)."""

    index: int
    name: str | None
    status: str
    reason: str | None = None  # the reason step 1 would report (the first problem in pipeline order)
    message: str | None = None
    source: str | None = None
    target: str | None = None
    problems: list[dict[str, str]] = field(default_factory=list)  # every problem found, in pipeline order
    warnings: list[dict[str, Any]] = field(default_factory=list)
    intervals: dict[str, int] = field(default_factory=dict)  # role -> effective interval (usable videos)
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> rotation, interlacing, bit depth, HDR

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"index": self.index, "name": self.name, "status": self.status,
                                "reason": self.reason, "message": self.message}
        for key in ("source", "target", "intervals", "videos", "problems", "warnings"):
            value = getattr(self, key)
            if value:
                data[key] = value
        return data


@dataclass
class ValidationResult:
    """All sample verdicts (input order) plus the settings they were checked against."""

    input: str
    settings: FrameSettings
    samples: list[SampleCheck]
    videos: dict[str, VideoCheck] = field(default_factory=dict)  # each distinct file probed

    @property
    def by_status(self) -> Counter:
        return Counter(s.status for s in self.samples)

    @property
    def by_reason(self) -> Counter:
        """Samples by primary reason (skipped/failed) and by warning code (each code once per sample)."""
        counts = Counter(s.reason for s in self.samples if s.reason)
        counts.update(code for s in self.samples for code in {w["code"] for w in s.warnings})
        return counts

    @property
    def would_lose(self) -> int:
        """Samples step 1 would skip or fail."""
        return sum(1 for s in self.samples if s.status in ("skipped", "failed"))


def check_video(file: str | os.PathLike[str], settings: FrameSettings, *, ar: bool = False,
                max_video_pixels: int = DEFAULT_MAX_VIDEO_PIXELS) -> VideoCheck:
    """Probe ``file`` and apply step 1's rules in its order: the pixel guard, then ``read_clip``'s frame-count
    and orientation rules.

    ``ar``: also step 2's checks before its AR-frame read (the file as decord would index it).
    """
    file = str(file)
    try:
        check_video_pixels(file, max_video_pixels)
        info = probe_video(file, read_rotation=True)  # the first frame: display matrix and interlacing
    except SampleError as err:
        return VideoCheck(file, err.reason, err.message, skip=err.skip)
    except Exception as err:  # noqa: BLE001 - the pipeline turns any decode-side exception into a failure too
        return VideoCheck(file, "decode_error", f"{file}: {type(err).__name__}: {err}")
    rotation = applied_rotation(info.rotation) if settings.auto_rotate else 0
    display = info.display_size if settings.auto_rotate else (info.height, info.width)  # as Step1Stage sees it
    base = dict(num_frames=info.num_frames, width=info.width, height=info.height, count_method=info.count_method,
                display_size=display, rotation=rotation, interlaced=info.interlaced, bit_depth=info.bit_depth,
                color_transfer=info.color_transfer, notes=decoder_notes(info))
    if ar:
        try:  # step 2's count (decord's len(vr)); its 8 indices then always lie inside the video
            count_indexed_frames(file)
        except SampleError as err:
            base.update(ar_reason=err.reason, ar_message=err.message)
    rate = 0
    if settings.frame_buckets:  # usable when it serves the smallest count (a pair then shares one it serves)
        settings = replace(settings, frame_num=min(settings.frame_buckets))
    try:  # read_clip's own rules, in its order (no orientation check with buckets)
        rate = sampling_interval(file, info.num_frames, settings)
        h, w = info.display_size if settings.auto_rotate else (info.height, info.width)
        check_orientation(file, h, w, settings, rotation=rotation)
    except VideoError as err:
        return VideoCheck(file, err.reason, err.message, skip=err.skip, interval=rate, **base)
    return VideoCheck(file, interval=rate, **base)


def _text_warnings(prompt: str, max_chars: int) -> list[dict[str, Any]]:
    """Cheap checks of an instruction step 1 accepts: very long, or text that looks wrongly decoded."""
    import ftfy.badness

    warnings = []
    if len(prompt) > max_chars:
        warnings.append({"code": LONG_PROMPT, "message": f"instruction has {len(prompt)} characters (> {max_chars}); "
                                                         "umT5 keeps only its first 512 tokens"})
    if "\ufffd" in prompt or ftfy.badness.is_bad(prompt):
        warnings.append({"code": SUSPICIOUS_TEXT, "message": "instruction looks wrongly decoded (mojibake or "
                                                             "U+FFFD replacement characters)"})
    return warnings


def _videos(sample: Sample) -> list[tuple[str, str, Path]]:
    """(role, path as given, resolved file) for each video of the sample, source first (pipeline order)."""
    roles = [("source", sample.source, sample.source_file)]
    if sample.target is not None:
        roles.append(("target", sample.target, sample.target_file))
    return roles


def _check_sample(sample: Sample, name: str | None, videos: dict[str, VideoCheck], *, min_prompt_len: int,
                  max_prompt_chars: int, renamed_from: str | None, settings: FrameSettings) -> SampleCheck:
    check = SampleCheck(sample.index, name, "ok", source=sample.source, target=sample.target)
    skips: list[bool] = []
    if not passes_prompt_filter(sample.prompt, min_prompt_len):
        check.problems.append({"reason": SHORT_PROMPT, "message": f"{sample.label}: instruction {sample.prompt!r} is "
                                                                  f"empty or at most {min_prompt_len} characters"})
        skips.append(True)
    else:
        check.warnings += _text_warnings(sample.prompt, max_prompt_chars)
    for role, _given, file in _videos(sample):
        video = videos[str(file)]
        if video.width is not None:
            check.videos[role] = video.facts()
        if not video.ok:
            check.problems.append({"reason": video.reason, "role": role,
                                   "message": f"{sample.label}: {role} video: {video.message}"})
            skips.append(video.skip)
        if role == "source" and sample.target is not None and video.ar_reason is not None:  # as `run` reports it
            check.problems.append({"reason": video.ar_reason, "role": role, "step": "ar",
                                   "message": f"{sample.label}: source video (AR frames): {video.ar_message}"})
            skips.append(False)
        if video.interval:
            check.intervals[role] = video.interval
            if video.ok and video.interval != settings.interval:
                check.warnings.append({"code": INTERVAL_LOWERED, "role": role, "interval": video.interval,
                                       "message": f"{role} video has {video.num_frames} frames: interval lowered "
                                                  f"{settings.interval} -> {video.interval}"})
    if renamed_from is not None:
        check.warnings.append({"code": NAME_COLLISION, "message": f"output name {renamed_from!r} is taken by an "
                                                                  f"earlier sample; written as {name}.pkl"})
    if check.problems:
        first = check.problems[0]
        check.reason, check.message = first["reason"], first["message"]
        check.status = "skipped" if skips[0] else "failed"
    elif check.warnings:
        check.status = "warning"
    return check


def validate(input_path: str | os.PathLike[str], settings: FrameSettings, *, video_root: str | os.PathLike[str] = ".",
             min_prompt_len: int = 10, max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
             workers: int | None = None, ar_checks: bool = True,
             max_video_pixels: int = DEFAULT_MAX_VIDEO_PIXELS, models: ModelSettings | None = None,
             model_path: str | None = None) -> ValidationResult:
    """Check every entry of ``input_path`` as step 1 would treat it; no model is loaded, nothing is written.

    ``ar_checks``: also what step 2 checks on an edit pair's source video before reading its AR frames, so
    that a sample called good does not fail in ``run``/``ar`` for a reason known now.

    ``models`` / ``model_path``: checkpoints to check as the steps' pre-flight does (nothing is loaded).

    Raises ``InputError`` when the file itself is unreadable or not JSON (as the pipeline does).
    """
    samples, problems = parse_entries(input_path, str(video_root))
    preflight_validate(str(input_path), samples, problems, settings, models, model_path)
    plan = plan_names(samples)
    live = [s for s in samples if s.index not in plan.duplicates]  # duplicates are never decoded
    files = sorted({str(file) for s in live for _, _, file in _videos(s)})
    ar_files = {str(s.source_file) for s in live if s.target is not None} if ar_checks else set()
    workers = workers or min(16, 2 * (os.cpu_count() or 1))
    log.info("validating %d entries (%d distinct videos) with %d workers", len(samples) + len(problems),
             len(files), workers)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="validate") as pool:
        videos = dict(zip(files, pool.map(lambda f: check_video(f, settings, ar=f in ar_files,
                                                                max_video_pixels=max_video_pixels), files)))
    checks: list[SampleCheck] = []
    for sample in samples:
        if sample.index in plan.duplicates:
            first = plan.duplicates[sample.index]
            checks.append(SampleCheck(sample.index, None, "skipped", DUPLICATE_SAMPLE,
                                      f"{sample.label}: same source, target and instruction as sample #{first}",
                                      source=sample.source, target=sample.target,
                                      problems=[{"reason": DUPLICATE_SAMPLE, "message": f"duplicate of #{first}"}]))
            continue
        checks.append(_check_sample(sample, plan.names[sample.index], videos, min_prompt_len=min_prompt_len,
                                    max_prompt_chars=max_prompt_chars, renamed_from=plan.renamed.get(sample.index),
                                    settings=settings))
    for p in problems:
        checks.append(SampleCheck(p.index, None, "failed", p.reason, str(p),
                                  problems=[{"reason": p.reason, "message": p.message}]))
    checks.sort(key=lambda c: c.index)
    return ValidationResult(str(input_path), settings, checks, videos)


def write_report(result: ValidationResult, path: str | os.PathLike[str]) -> Path:
    """One JSON line per sample that is not plainly OK (skipped, failed, with warnings, or with a rotated,
    interlaced, high-bit-depth or HDR video: its ``videos`` says so), input order."""
    path = Path(path)
    lines = [json.dumps(c.to_json(), ensure_ascii=False) + "\n" for c in result.samples
             if c.status != "ok" or any(_noteworthy(v) for v in c.videos.values())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines), encoding="utf-8")
    return path


def format_table(result: ValidationResult) -> str:
    """Human summary: counts by outcome, then by reason (skip/fail reasons and warning codes)."""
    s = result.settings
    frames = f"frame buckets {','.join(map(str, s.frame_buckets))}" if s.frame_buckets else f"frame_num {s.frame_num}"
    size = f"buckets {','.join(f'{h}x{w}' for h, w in s.buckets)}" if s.buckets else f"size {s.height}x{s.width}"
    lines = [f"{result.input}: {len(result.samples)} entries checked ({frames}, interval "
             f"{s.interval}, skip {s.skip}, {size})", "", f"{'outcome':<24}{'samples':>8}"]
    status = result.by_status
    for name in ("ok", "warning", "skipped", "failed"):
        lines.append(f"{name:<24}{status.get(name, 0):>8}")
    reasons = result.by_reason
    if reasons:
        lines += ["", f"{'reason':<24}{'samples':>8}"]
        lines += [f"{r:<24}{n:>8}" for r, n in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))]
    lowered = Counter(v for c in result.samples if c.status in ("ok", "warning") for v in c.intervals.values())
    if lowered:
        lines += ["", "effective interval of usable videos: "
                  + ", ".join(f"{k}: {n}" for k, n in sorted(lowered.items(), reverse=True))]
    lines += _video_facts(result)
    return "\n".join(lines)


def _noteworthy(facts: dict[str, Any]) -> bool:
    return bool(facts.get("rotation") or facts.get("interlaced") or (facts.get("bit_depth") or 8) > 8
                or facts.get("original_decoder"))


def _video_facts(result: ValidationResult) -> list[str]:
    """Information lines about the distinct videos (not problems): rotation applied, interlacing, depth, HDR."""
    videos = [v for v in result.videos.values() if v.width is not None]
    if not videos:
        return []
    rotated = Counter(v.rotation for v in videos if v.rotation)
    turn = ("rotated upright (display matrix): " + ", ".join(f"{k} deg: {n}" for k, n in sorted(rotated.items()))
            if rotated else "rotated (display matrix): 0" if result.settings.auto_rotate else
            "rotation: off (--no-auto-rotate)")
    depth = Counter(v.bit_depth for v in videos if v.bit_depth)
    return ["", f"videos: {len(videos)} distinct; {turn}",
            f"interlaced: {sum(1 for v in videos if v.interlaced)}; bit depth: "
            + ", ".join(f"{k}-bit: {n}" for k, n in sorted(depth.items()))
            + f"; HDR (PQ/HLG): {sum(1 for v in videos if v.hdr)}"]
