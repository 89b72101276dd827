"""Pre-flight: the checks every command makes before any model loads, so a mistake costs seconds, not the
minutes umT5-xxl and VILA-8B take to load.

In order: the input has samples; the frame settings (a warning for a size the VAE does not divide evenly);
the output folder and its sidecar can be written and no live run holds this share of it; every checkpoint part
is there in a known layout, read from configs and file headers only (no model is constructed), and a path that
does not exist locally is asked of the hub once, only when it is a hub id; the videos of the input exist (all
of them when that is cheap, else an even sample). ``vae``, ``ar``, ``run`` (both engines) and ``validate`` call
the ``preflight_*`` function of their step; each problem is one line naming what is wrong and the option that
supplies it. Checks of the machine (e.g. whether the models fit this GPU's memory) belong in
:func:`check_resources`.
"""

from __future__ import annotations

import difflib
import logging
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from revise_prep.errors import InputError, NothingToDoError
from revise_prep.inputs import Sample
from revise_prep.models import hub
from revise_prep.models.layouts import (HUB_LAYOUT_FILES, CheckpointNotFoundError, find_t5, find_vae, is_hub_id,
                                        t5_problems, vae_problems)
from revise_prep.pipeline.dist import RankInfo
from revise_prep.pipeline.locks import ShareLock
from revise_prep.pipeline.engines.writer import FATAL_ERRNOS, FatalWriteError
from revise_prep.records.atomic import check_writable
from revise_prep.records.layout import OutputLayout, absolute
from revise_prep.settings import FrameSettings, ModelSettings

log = logging.getLogger(__name__)

#: The video check looks at every distinct file, in a seeded random order, and stops after about
#: :data:`VIDEOS_SECONDS` once :data:`VIDEOS_AT_LEAST` are checked (a slow network filesystem): what it checked
#: is then an even sample of the input.
VIDEOS_AT_LEAST = 1_000
VIDEOS_SECONDS = 3.0
#: Step-1 records ``ar`` opens to check their videos (evenly spread over the input).
AR_RECORDS_CHECKED = 8
_FLAG_OF_PART = {"vae": "--vae-path", "t5": "--t5-path", "tokenizer": "--tokenizer-path"}


# --- input --------------------------------------------------------------------------------------------------

def check_input(path: str | os.PathLike[str], samples: list, problems: list = ()) -> None:
    """Stop (exit status 5, as a run that produced nothing) when the input holds no usable sample."""
    if samples:
        return
    if problems:
        raise NothingToDoError(f"{path}: none of its {len(problems)} entries is a usable sample (the first: "
                               f"{problems[0]})")
    raise NothingToDoError(f"{path}: the input has no samples; nothing to do")


def check_frames(frames: FrameSettings) -> None:
    """One warning for a ``--target-size`` the VAE and Wan's transformer do not divide evenly (accepted, as the
    original accepts it)."""
    from revise_prep.models.wan_vae import latent_size

    if frames.buckets is not None or (frames.height % 16 == 0 and frames.width % 16 == 0):
        return
    h, w = latent_size(frames.height, frames.width)
    log.warning("--target-size %d,%d is not a multiple of 16: the latents will be %dx%d (the VAE divides each side "
                "by 8, rounding down), and Wan's transformer patches latents 2x2%s", frames.height, frames.width, h, w,
                " (an odd latent side loses its last row or column there)" if h % 2 or w % 2 else "")


# --- output folder ------------------------------------------------------------------------------------------

def check_output(layout: OutputLayout, rank: RankInfo) -> None:
    """The records folder and the reports folder take a file, and no live run holds this rank's share."""
    for folder in dict.fromkeys((layout.records, layout.meta)):
        try:
            check_writable(folder)
        except OSError as err:
            if err.errno in FATAL_ERRNOS:
                raise FatalWriteError(f"cannot write in {folder}: {err.strerror} (fix its permissions or free "
                                      "space, or choose another output folder)") from None
            raise
    with ShareLock(layout.meta, rank.rank, rank.world_size):  # FolderBusyError names the holder
        pass


# --- checkpoints --------------------------------------------------------------------------------------------

def _near(path: Path) -> str:
    """`` (did you mean X?)`` for a folder beside ``path`` with a close name."""
    try:
        names = [p.name for _, p in zip(range(2000), path.parent.iterdir())]
    except OSError:
        return ""
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.75)
    return f" (did you mean {path.parent / close[0]}?)" if close else ""


def _exists_or_on_hub(source: str, flag: str, part: str) -> tuple[str, ...] | None:
    """None for a local path; the repo's files for a hub id the hub (or its cache) knows; else one line saying
    "no such local folder: <absolute path>" and what the hub answered."""
    path = Path(source).expanduser()
    if path.exists():
        return None
    where = f"{flag} {source}: no such local folder: {absolute(path)}{_near(absolute(path))}"
    if not is_hub_id(source):
        raise InputError(f"{where} (and not a hub id 'org/name')")
    answer = hub.ask(source)
    if not answer.found:
        raise InputError(f"{where}; as a hub id: {answer.detail}")
    groups = HUB_LAYOUT_FILES.get(part)
    if groups and not any(all(f in answer.files for f in group) for group in groups):
        raise InputError(f"{flag} {source}: the hub repo ({answer.detail}) holds none of "
                         f"{', '.join(' + '.join(g) for g in groups)}")
    return answer.files


def _part_line(flag: str, source: str, message: str, part: str) -> str:
    fix = _FLAG_OF_PART.get(part)
    hint = f"; {fix} gives it" if fix and fix != flag else ""
    if "VILA checkpoint" in message:
        hint = " (that goes to --model-path)"
    return f"{flag} {source}: {message}{hint}"


def check_step1_models(models: ModelSettings) -> None:
    """The VAE, the umT5 weights and its tokenizer, each in a known layout (local or on the hub)."""
    vae_source, t5_source = models.checkpoint_sources()
    vae_flag = "--vae-path" if models.vae_path else "--ckpt-dir"
    t5_flag = "--t5-path" if models.t5_path else "--ckpt-dir"
    if _exists_or_on_hub(vae_source, vae_flag, "vae") is None:
        try:
            problems = vae_problems(find_vae(vae_source))
        except CheckpointNotFoundError as err:
            raise InputError(_part_line(vae_flag, vae_source, str(err), err.part)) from None
        if problems:
            raise InputError(_part_line(vae_flag, vae_source, problems[0], "vae"))
    if models.tokenizer_path:
        _exists_or_on_hub(models.tokenizer_path, "--tokenizer-path", "tokenizer")
    if _exists_or_on_hub(t5_source, t5_flag, "t5") is None:
        try:
            ckpt = find_t5(t5_source, models.tokenizer_path)
        except CheckpointNotFoundError as err:
            raise InputError(_part_line(t5_flag, t5_source, str(err), err.part)) from None
        problems = t5_problems(ckpt)
        if problems:
            part = "tokenizer" if problems[0].startswith("tokenizer") else "t5"
            raise InputError(_part_line(t5_flag, t5_source, problems[0], part))


def check_vila(model_path: str, flag: str = "--model-path") -> None:
    """The VILA checkpoint's configs, weights of every part and tokenizer (local), or a hub repo that has them."""
    from revise_prep.models.vila.config import SUBFOLDERS, checkpoint_problems

    files = _exists_or_on_hub(model_path, flag, "vila")
    if files is not None:
        wanted = ["config.json", *(f"{sub}/config.json" for sub in SUBFOLDERS)]
        lacking = [f for f in wanted if f not in files]
        if lacking:
            raise InputError(f"{flag} {model_path}: the hub repo is not a VILA checkpoint (no {', '.join(lacking)})")
        return
    problems = checkpoint_problems(model_path)
    if problems:
        raise InputError(f"{flag} {model_path}: {problems[0]}")


def check_resources(rank: RankInfo, devices: dict[str, str | None], **job: Any) -> None:
    """This machine against the job: each ``devices`` flag names a device that exists here, and the models fit
    the GPU they go to (:func:`check_memory`). (The place for more: free disk for the records.)"""
    from revise_prep.pipeline.dist import resolve_device

    resolved = {}
    for flag, name in devices.items():
        if name is not None:
            try:
                resolved[flag] = resolve_device(name, rank)
            except InputError as err:
                raise InputError(str(err).replace("--device", flag, 1)) from None
    check_memory(resolved, **job)


def check_memory(resolved: dict[str, str], *, step: str, models: ModelSettings | None = None,
                 frames: FrameSettings | None = None, model_path: str | None = None,
                 vila_dtype: str = "float16") -> None:
    """One warning when the models of ``step`` are estimated not to fit the GPU of ``--device``
    (``models/memory.py``), naming the options that do: a warning, since it is an estimate from the checkpoints'
    parameter counts (read from their headers) and the VAE activations measured on an H200."""
    device = resolved.get("--device")
    if device is None or not device.startswith("cuda"):
        return
    import torch

    from revise_prep.models.memory import fit_advice

    sizes: dict[str, Any] = {"vila_dtype": vila_dtype}
    if step in ("vae", "run") and models is not None:
        if frames is not None:
            sizes["height"], sizes["width"] = max(frames.buckets or [(frames.height, frames.width)],
                                                  key=lambda hw: hw[0] * hw[1])
        sizes.update(vae_dtype=models.vae_dtype, vae_tiling=models.vae_tiling, t5_dtype=models.t5_dtype,
                     t5_on_gpu=resolved.get("--t5-device", device) == device)
        sizes.update(_parameter_counts(models))
    if step in ("ar", "run") and model_path is not None:
        sizes.update(_parameter_counts(None, model_path))
    props = torch.cuda.get_device_properties(torch.device(device))
    advice = fit_advice(step, props.total_memory / 2**30, f"{device} ({props.name})", **sizes)
    if advice:
        log.warning("%s", advice)


def _parameter_counts(models: ModelSettings | None, model_path: str | None = None) -> dict[str, int]:
    """The parameter counts of the local checkpoints (``*_params`` keywords of ``step_memory``); a part on the hub
    or in a format whose header does not tell keeps the full-size default."""
    from revise_prep.models.identity import weight_elements

    found: dict[str, dict[str, Path] | None] = {}
    try:
        if models is not None:
            from revise_prep.models.umt5 import umt5_weight_files
            from revise_prep.models.wan_vae import vae_files

            vae_source, t5_source = models.checkpoint_sources()
            found["vae_params"] = vae_files(vae_source)
            found["t5_params"] = umt5_weight_files(t5_source, models.tokenizer_path)
        if model_path is not None and Path(model_path).expanduser().is_dir():
            from revise_prep.models.vila.config import read_checkpoint, vila_files

            found["vila_params"] = vila_files(read_checkpoint(model_path))
    except (OSError, ValueError, InputError):
        pass
    counts = {key: weight_elements(files) for key, files in found.items() if files is not None}
    return {key: n for key, n in counts.items() if n}


# --- videos -------------------------------------------------------------------------------------------------

def _holds_records(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return any(e.name.endswith((".pkl", ".safetensors")) and not e.name.startswith(".") for e in entries)
    except OSError:
        return False


def _where(given: str, resolved: Path, video_root: str) -> str:
    if os.path.isabs(given):
        return f"{given!r} (absolute in the input)"
    return f"{given!r} resolves to {absolute(resolved)} (--video-root {absolute(video_root)})"


def _missing(paths: list[str]) -> list[str]:
    return [p for p in paths if not os.path.exists(p)]


def _existing(paths: list[str]) -> tuple[list[str], int]:
    """(the missing ones, how many were checked): all when cheap, else a seeded random sample; stops after
    :data:`VIDEOS_SECONDS` once :data:`VIDEOS_AT_LEAST` are checked."""
    order = list(paths)
    random.Random(0).shuffle(order)  # a check stopped early is still spread over the whole input
    missing: list[str] = []
    checked, start, threads = 0, time.monotonic(), 16
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="preflight") as pool:  # stat() waits on disk
        for begin in range(0, len(order), 4 * VIDEOS_AT_LEAST):
            chunk = order[begin:begin + 4 * VIDEOS_AT_LEAST]
            for found in pool.map(_missing, [chunk[i::threads] for i in range(threads)]):
                missing += found
            checked += len(chunk)
            if checked >= VIDEOS_AT_LEAST and time.monotonic() - start > VIDEOS_SECONDS:
                break
    return missing, checked


def _report_missing(label: str, where: str, missing: int, checked: int, total: int, records: Path) -> None:
    """All checked missing: stop (unless the folder already holds records: a resume may need no video); some: warn.
    ``label``/``where`` name the first missing video."""
    scope = f"{total} (all)" if checked == total else f"{checked} (an even sample of {total})"
    if missing == checked and not _holds_records(records):
        raise InputError(f"no video of the input exists ({scope} checked), e.g. {label}: {where}; check "
                         "--video-root (or the folder you run from)")
    log.warning("%d of the %s videos checked do not exist (their samples will fail as missing_file), e.g. %s: %s",
                missing, scope, label, where)


def check_videos(samples: list[Sample], video_root: str, records: Path) -> None:
    """Every video of the input exists (a sample of them for a big input on a slow filesystem). Paths are joined
    as strings: pathlib would cost seconds for 100,000 samples."""
    files: dict[str, tuple[Sample, str]] = {}
    prefix = os.path.join(os.fspath(video_root), "")  # the root and one separator: joined by concatenation
    for s in samples:
        for role, given in (("source", s.source), ("target", s.target)):
            if given is not None:
                files.setdefault(given if given.startswith(os.sep) else prefix + given, (s, role))
    if not files:
        return
    missing, checked = _existing(list(files))
    if missing:
        sample, role = files[min(missing, key=lambda f: (files[f][0].index, files[f][1] != "source"))]
        given = getattr(sample, role)
        _report_missing(f"{sample.label}: {role}", _where(given, sample.resolve(given), video_root), len(missing),
                        checked, len(files), records)


def check_record_videos(records: list[Path], video_root: str, task: str, out: Path) -> None:
    """``ar``: the source video of a few step-1 records, evenly spread (opening a record reads its latents)."""
    from revise_prep.inputs.samples import resolve_path
    from revise_prep.models.vila.prompt import resolve_task
    from revise_prep.records.reader import load_record

    if not records:
        return
    step = max(1, len(records) // AR_RECORDS_CHECKED)
    missing, checked = [], 0
    for path in records[::step][:AR_RECORDS_CHECKED]:
        try:
            record = load_record(path)
            given = record["video_path"]
        except Exception:  # noqa: BLE001 - a damaged record fails as invalid_record in the run, on its own
            continue
        media = resolve_task(task).media if task != "auto" else ("video" if "latent_feature_tgt" in record else None)
        if media != "video" or not isinstance(given, str):
            continue
        checked += 1
        resolved = resolve_path(given, video_root)
        if not resolved.exists():
            missing.append((f"{path.name}: source video", _where(given, resolved, video_root)))
    if missing:
        _report_missing(*missing[0], len(missing), checked, checked, out)


# --- one entry point per command ----------------------------------------------------------------------------

def preflight_step1(input_path: str, samples: list[Sample], problems: list, frames: FrameSettings,
                    layout: OutputLayout, rank: RankInfo, models: ModelSettings | None, video_root: str, *,
                    local: bool = True) -> None:
    """``vae``; ``models`` None when they are handed in already loaded; ``local`` False for the Ray engine (its
    devices are the actors')."""
    check_input(input_path, samples, problems)
    check_frames(frames)
    check_output(layout, rank)
    if models is not None:
        check_step1_models(models)
    check_resources(rank, _step1_devices(models) if local else {}, step="vae", models=models, frames=frames)
    check_videos(samples, video_root, layout.records)


def _step1_devices(models: ModelSettings | None) -> dict[str, str | None]:
    if models is None:
        return {}
    return {"--device": models.device, "--t5-device": models.t5_device}


def preflight_onepass(input_path: str, samples: list[Sample], problems: list, frames: FrameSettings,
                      layout: OutputLayout, rank: RankInfo, models: ModelSettings | None, model_path: str | None,
                      video_root: str, ar_device: str | None = None, *, ar_dtype: str = "float16",
                      local: bool = True) -> None:
    """``run``: step 1's checks and the VILA checkpoint's (``local`` as for :func:`preflight_step1`)."""
    check_input(input_path, samples, problems)
    check_frames(frames)
    check_output(layout, rank)
    if models is not None:
        check_step1_models(models)
    if model_path is not None:
        check_vila(model_path)
    check_resources(rank, {**_step1_devices(models), "--ar-device": ar_device} if local else {}, step="run",
                    models=models, frames=frames, model_path=model_path, vila_dtype=ar_dtype)
    check_videos(samples, video_root, layout.records)


def preflight_step2(data_file: str, records: list[Path], layout: OutputLayout, rank: RankInfo,
                    model_path: str | None, video_root: str, task: str, device: str | None = None,
                    dtype: str = "float16") -> None:
    """``ar`` (either engine); ``model_path`` None when the model is handed in already loaded."""
    if not records:
        raise NothingToDoError(f"--data-file {data_file}: no step-1 records in it; nothing to do")
    check_output(layout, rank)
    if model_path is not None:
        check_vila(model_path)
    check_resources(rank, {"--device": device}, step="ar", model_path=model_path, vila_dtype=dtype)
    check_record_videos(records, video_root, task, layout.records)


def preflight_validate(input_path: str, samples: list[Sample], problems: list, frames: FrameSettings,
                       models: ModelSettings | None = None, model_path: str | None = None) -> None:
    """``validate`` checks every video itself: here what it shares with the steps, and the checkpoints given."""
    check_input(input_path, samples, problems)
    check_frames(frames)
    if models is not None:
        check_step1_models(models)
    if model_path is not None:
        check_vila(model_path)


__all__ = ["check_input", "check_frames", "check_output", "check_step1_models", "check_vila", "check_videos",
           "check_record_videos", "check_resources", "check_memory", "preflight_step1", "preflight_onepass",
           "preflight_step2", "preflight_validate"]
