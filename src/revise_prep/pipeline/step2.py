"""Step 2: the VILA "AR model" over each step-1 record's source video and prompt -> final training records.

Frames are decoded and preprocessed into the vision tower's pixel tensor in decode workers; the
main process only runs the model. Input records may be ours or the original step 1's (six keys).
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from revise_prep.errors import InputError, SampleError, loading
from revise_prep.inputs.samples import record_video_path, resolve_path
from revise_prep.models.vila import VilaInputs, read_checkpoint, resolve_task, vila_identifier, vila_identity
from revise_prep.models.vila.prompt import IMAGE_TOKEN_INDEX
from revise_prep.pipeline.bucket_plan import report_small_buckets
from revise_prep.pipeline.dist import RankInfo, resolve_device
from revise_prep.pipeline.engines import get_engine
from revise_prep.pipeline.merge import write_json
from revise_prep.pipeline.preflight import preflight_step2
from revise_prep.pipeline.progress import Notices
from revise_prep.pipeline.stage import Decoded, WorkItem, stage_layout
from revise_prep.records.atomic import TMP_PREFIX
from revise_prep.records.layout import SIDECAR_SUFFIX, absolute, sidecar_of
from revise_prep.records.naming import name_budget, writable_name
from revise_prep.records.reader import load_record
from revise_prep.records.formats import suffix
from revise_prep.records.reports import read_list_paths
from revise_prep.records.schema import META_KEY, ar_record, missing_keys
from revise_prep.settings import EngineSettings, ExecutionSettings
from revise_prep.video.guards import DEFAULT_MAX_VIDEO_PIXELS, check_video_pixels

log = logging.getLogger(__name__)

LIST_NAME = "ar_features.txt"
INVALID_RECORD = "invalid_record"


@dataclass(frozen=True)
class ArSettings:
    """Step-2 options (see ``revise-prep ar --help``)."""

    data_file: str  # step-1 folder or list file
    result_folder: str
    model_path: str
    video_root: str = "."
    dtype: str = "float16"
    device: str = "auto"
    task: str = "auto"  # auto: vid_edit for edit pairs, vid_gen for caption records
    on_video_error: str = "fail"  # the step's default; "black" keeps the original's 8-black-frames behaviour
    all_frames: bool = True  # encode all 8 sampled frames as the original (False: only those reaching the LLM)
    auto_rotate: bool = True  # frames upright by the display matrix, as decord gives them
    num_workers: int = 2
    cpu_threads: int | None = None  # CPUs this rank uses (None: its share of the affinity mask; engines/local/cpu_budget)
    decode_timeout: float = 300.0
    max_video_pixels: int = DEFAULT_MAX_VIDEO_PIXELS  # 0: no limit
    retry_crashed: bool = False
    record_format: str = "pickle"  # or "safetensors"
    progress: bool = True
    engine: EngineSettings = EngineSettings()
    relative_paths: bool = False  # list file lines relative to its folder instead of absolute
    progress_interval: float = 30.0  # seconds between progress lines when stderr is not a terminal
    relative_video_paths: bool = False  # the record's video path relative to video_root instead of absolute
    min_bucket_records: int = 64  # buckets with fewer records are reported (summary.json, the log)


def step1_records(data_file: str | Path) -> list[Path]:
    """The step-1 records to read: every record (``.pkl``/``.safetensors``) of a folder, sorted, or the lines
    of a list file. A step-1 *input* list (JSON) given here by mistake is refused with a hint."""
    path = Path(data_file)
    moved = None if path.exists() or absolute(path).parent.parent == absolute(path).parent else \
        sidecar_of(path.parent) / path.name  # a list file of the earlier layout, moved to the sidecar
    if moved is not None and moved.is_file():
        log.info("--data-file %s: reading %s (step-1 reports now live beside the records)", path, moved)
        path = moved
    if path.is_dir() and path.name.endswith(SIDECAR_SUFFIX):
        raise InputError(f"--data-file {path}: the reports folder of a step-1 run; pass its records folder "
                         f"({path.name.removesuffix(SIDECAR_SUFFIX)}) or the list file in it")
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".pkl", ".safetensors")
                      and not p.name.startswith(TMP_PREFIX))
    if path.is_file():
        if path.suffix in (".pkl", ".safetensors"):
            raise InputError(f"--data-file {path}: a single record; pass its folder or a list file")
        try:
            with open(path, "rb") as handle:
                head = handle.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        except OSError as err:
            raise InputError(f"--data-file {path}: cannot read: {err.strerror or err}") from err
        if re.match(rb"[\[{]\s*[\[{\"\]}]", head):  # JSON / JSON Lines, not a line like "[clip].pkl"
            raise InputError(f"--data-file {path}: this is a JSON input list (edit pairs or captions), not step-1 "
                             "records; run `revise-prep vae` on it first (or `revise-prep run` for both steps), "
                             "then pass its output folder or list file here")
        return read_list_paths(path)
    raise InputError(f"--data-file {path}: no such folder or list file")


def _check_step1(record: Any, path: Path) -> dict[str, Any]:
    """A step-1 record (ours, or the original's six keys) with the fields step 2 reads, else ``invalid_record``."""
    if not isinstance(record, dict):
        raise SampleError(INVALID_RECORD, f"{path}: not a step-1 record (a {type(record).__name__})")
    lacking = missing_keys(record, "vae")
    if lacking:
        raise SampleError(INVALID_RECORD, f"{path}: not a step-1 record (missing {lacking})")
    if not isinstance(record["prompt"], str) or not isinstance(record["video_path"], str):
        raise SampleError(INVALID_RECORD, f"{path}: prompt and video_path must be strings")
    return record


@dataclass
class ArPayload:
    record_path: Path


class Step2Stage:
    """Worker: load the step-1 record, decode and preprocess the AR frames. Main: run VILA, build the record.

    The worker side is :class:`VilaInputs` (picklable, no weights): the same code ``VilaARModel.encode`` runs.
    """

    step = "ar"
    list_name = LIST_NAME

    def __init__(self, settings: ArSettings, model=None) -> None:
        if settings.on_video_error not in ("fail", "black"):
            raise InputError(f"on_video_error must be 'fail' or 'black', got {settings.on_video_error!r}")
        if settings.task != "auto":
            resolve_task(settings.task)  # unknown task: fail before any work
        self.settings = settings
        self.model = model
        options = dict(dtype=getattr(torch, settings.dtype), on_video_error=settings.on_video_error,
                       decode_all_frames=settings.all_frames, auto_rotate=settings.auto_rotate)
        ckpt = model.checkpoint if model is not None else read_checkpoint(settings.model_path)
        self.inputs = model.media_inputs().with_options(**options) if model is not None else \
            VilaInputs.from_checkpoint(ckpt, **options)
        self.checkpoint = ckpt
        self._weights: str | None = None  # the checkpoint's identity, read once when first needed

    def __getstate__(self):  # never ship the model to the decoding workers
        state = dict(self.__dict__)
        state["model"] = state["_weights"] = None  # (the identity is for the signature, in the main process)
        return state

    @property
    def decoder_threads(self) -> int:
        """FFmpeg threads for the AR frames (set by the engine from its CPU budget; 0: one per CPU)."""
        return self.inputs.decoder_threads

    @decoder_threads.setter
    def decoder_threads(self, threads: int) -> None:
        self.inputs = self.inputs.with_options(decoder_threads=threads)

    @property
    def encode_devices(self) -> list:
        return [self.model.device] if self.model is not None else []

    def signature(self) -> dict[str, Any]:
        """What the records depend on; an existing record with other values is redone (resume check)."""
        s = self.settings
        if self._weights is None:
            with loading("the AR model (--model-path)", s.model_path):
                self._weights = vila_identity(self.checkpoint)
        return {"vila": vila_identifier(s.model_path, self.checkpoint.projector_type, s.dtype), "dtype": s.dtype,
                "task": s.task, "on_video_error": s.on_video_error, "all_frames": s.all_frames,
                "resampler": self.inputs.resampler, "auto_rotate": s.auto_rotate, "vila_weights": self._weights}

    def describe(self, item: WorkItem) -> dict[str, str]:
        """The report columns of an item: the step-1 record it reads."""
        return {"source": str(item.payload.record_path)}

    def task_for(self, record: dict[str, Any]) -> str:
        """``auto``: vid_edit for edit pairs, vid_gen (no media) for caption records (no target latent)."""
        if self.settings.task != "auto":
            return resolve_task(self.settings.task).name
        return "vid_edit" if "latent_feature_tgt" in record else "vid_gen"

    def decode(self, item: WorkItem) -> Decoded:
        path: Path = item.payload.record_path
        try:
            record = load_record(path)
        except Exception as err:  # noqa: BLE001 - unreadable, truncated or refused
            raise SampleError(INVALID_RECORD, f"{path}: cannot load step-1 record: {err}") from None
        record = _check_step1(record, path)
        task = resolve_task(self.task_for(record))
        file = resolve_path(record["video_path"], self.settings.video_root)  # the source video, read or not
        media = None if task.media is None else file
        try:
            if task.media == "video":
                check_video_pixels(media, self.settings.max_video_pixels)
            pixels = self.inputs.prepare(task.name, record["prompt"], media)
        except SampleError as err:
            hint = "" if media is None or Path(record["video_path"]).is_absolute() else \
                f" (relative to --video-root {self.settings.video_root})"
            raise type(err)(err.reason, f"{path.name}: source {task.media}{hint}: {err.message}",
                            skip=err.skip) from None
        except ValueError as err:  # e.g. more literal <image> in the prompt than sampled frames
            raise SampleError(INVALID_RECORD, f"{path.name}: {err}") from None
        video_path = record_video_path(file, self.settings.video_root if self.settings.relative_video_paths else None)
        return Decoded(item, {"record": record, "task": task.name, "pixels": pixels, "video_path": video_path})

    def encode(self, decoded: Decoded) -> dict[str, Any]:
        data = decoded.data
        record, task = data["record"], data["task"]
        vlm = self.model.encode_pixels(task, record["prompt"], data["pixels"])
        step1_meta = record.get(META_KEY)
        meta = {"settings": self.signature(),
                "vae_settings": step1_meta.get("settings") if isinstance(step1_meta, dict) else None,
                "ar": {"task": task, "step1_record": str(decoded.item.payload.record_path),
                       "step1_video_path": record["video_path"], "num_tokens": int(vlm.shape[1])}}
        return ar_record(record, vlm, meta, video_path=data["video_path"])


def plan_items(records: list[Path], out: Path, ext: str = ".pkl") -> list[WorkItem]:
    """Output ``<result>/<input stem><ext>``; a stem seen twice gets the parent folder name appended."""
    out = absolute(out)
    budget = name_budget(out if out.is_dir() else None, ext)
    notices = Notices(log)
    seen: dict[str, int] = {}
    items = []
    for index, path in enumerate(records):
        if path.parent.resolve() == out.resolve():
            raise InputError(f"{path}: the result folder holds the step-1 records; step 2 would overwrite them "
                             "(use another --result-folder)")
        stem = writable_name(path.stem, budget)
        if path.stem in seen:
            stem = writable_name(f"{path.stem}-{path.parent.name}-{index}", budget)
            notices("renamed", "%s: record name taken by input #%d; writing %s%s", path, seen[path.stem], stem, ext,
                    where="this log only")
        seen.setdefault(path.stem, index)
        items.append(WorkItem(index, stem, out / f"{stem}{ext}", ArPayload(path)))
    notices.flush()
    return items


def load_ar_model(settings: ArSettings, rank: RankInfo):
    from revise_prep.models.vila import VilaARModel

    device = resolve_device(settings.device, rank)
    log.info("loading VILA from %s (%s, %s)", settings.model_path, settings.dtype, device)
    with loading("the AR model (--model-path)", settings.model_path):
        return VilaARModel.load(settings.model_path, dtype=getattr(torch, settings.dtype), device=device,
                                on_video_error=settings.on_video_error, decode_all_frames=settings.all_frames)


@dataclass(frozen=True)
class Step2Factory:
    """Builds the step-2 stage from settings, so that an engine's workers can load the model themselves."""

    settings: ArSettings

    def build(self, rank: RankInfo | None, loaded=None) -> Step2Stage:
        """With the model loaded on ``rank``'s device (or ``loaded``), or without it when ``rank`` is None."""
        model = loaded
        if model is None and rank is not None:
            model = load_ar_model(self.settings, rank)
        return Step2Stage(self.settings, model)


def run_step2(settings: ArSettings, *, rank: RankInfo | None = None, model=None,
              keep_mismatched: bool = False) -> dict[str, Any] | None:
    """Run step 2 for this process's share; returns the merged summary when this rank finished last.

    ``model``: an already loaded :class:`VilaARModel` (its ``on_video_error``/``decode_all_frames`` do not
    matter: ``settings`` decide them).
    """
    # absolute, so that every process (and Ray node) reads, and every record names, the same files
    settings = replace(settings, video_root=str(Path(settings.video_root).absolute()))
    out = Path(settings.result_folder)
    records = step1_records(settings.data_file)  # input errors before the model loads
    engine = get_engine(settings.engine, rank)
    layout = stage_layout(Step2Stage, out).prepare()
    preflight_step2(settings.data_file, records, layout, engine.rank,
                    None if model is not None else settings.model_path, settings.video_root, settings.task,
                    None if model is not None or settings.engine.name != "local" else settings.device,
                    settings.dtype)
    items = plan_items(records, out, suffix(settings.record_format))
    if engine.rank.is_main:
        write_json(layout.config, {"step": "ar", "settings": asdict(settings),
                                   "world_size": engine.rank.world_size})
    summary = engine.run(Step2Factory(settings), items, out,
                         ExecutionSettings.of(settings, keep_mismatched=keep_mismatched), loaded=model)
    return report_small_buckets(summary, layout.meta, settings.min_bucket_records)


__all__ = ["ArSettings", "IMAGE_TOKEN_INDEX", "Step2Stage", "run_step2", "step1_records"]
