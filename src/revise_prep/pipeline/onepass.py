"""``revise-prep run``: both steps in one pass per sample, writing the final training records directly.

Each source video is decoded once: the step-1 frames and the AR model's 8 frames come from the same
decoding pass (the AR indices are added to the ones the VAE needs). The tensors written are the same,
bit for bit, as running ``vae`` and then ``ar``; the step-1 records are kept only with ``--keep-intermediate``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from revise_prep.errors import SampleError, VideoError, loading
from revise_prep.inputs import Sample
from revise_prep.models.vila import (AR_NUM_FRAMES, black_frames, read_checkpoint, resolve_task, vila_identifier,
                                     vila_identity)
from revise_prep.models.vila.frames import sample_indices
from revise_prep.models.vila.inputs import VilaInputs
from revise_prep.pipeline.bucket_plan import plan_buckets, report_small_buckets
from revise_prep.pipeline.dist import RankInfo
from revise_prep.pipeline.engines import get_engine
from revise_prep.pipeline.merge import write_json
from revise_prep.pipeline.preflight import preflight_onepass
from revise_prep.pipeline.stage import Decoded, WorkItem
from revise_prep.pipeline.step1 import LIST_NAME as STEP1_LIST_NAME
from revise_prep.pipeline.step1 import Step1Stage, load_step1_models, plan_items, read_input, record_settings
from revise_prep.pipeline.step2 import ArSettings, load_ar_model
from revise_prep.records.formats import suffix
from revise_prep.records.layout import OutputLayout
from revise_prep.records.reports import read_list_paths, write_list
from revise_prep.records.schema import ar_record
from revise_prep.records.shapes import sibling_shape_lists, write_shape_lists
from revise_prep.settings import ExecutionSettings, FrameSettings, ModelSettings, RunSettings

log = logging.getLogger(__name__)

LIST_NAME = "train_list.txt"
INTERMEDIATE_DIR = "vae_features"


@dataclass(frozen=True)
class ArOptions:
    """The AR-model part of ``run`` (same meaning as the ``ar`` command's options)."""

    model_path: str
    dtype: str = "float16"
    device: str | None = None  # default: the VAE's device
    task: str = "auto"
    on_video_error: str = "fail"
    all_frames: bool = True


class OnePassStage(Step1Stage):
    """Step 1's decode plus the AR frames from the same pass; encodes with VAE, umT5 and VILA."""

    def __init__(self, frames: FrameSettings, vae, t5, vila, ar: ArOptions, *, min_prompt_len: int = 10,
                 keep_intermediate: Path | None = None, models: ModelSettings | None = None) -> None:
        super().__init__(frames, vae, t5, min_prompt_len=min_prompt_len, step="run", list_name=LIST_NAME,
                         records_only=False, models=models)
        self.vila = vila
        self.ar = ar
        self.keep_intermediate = keep_intermediate
        ckpt = read_checkpoint(ar.model_path) if vila is None else vila.checkpoint
        self.inputs = VilaInputs.from_checkpoint(ckpt, dtype=getattr(torch, ar.dtype),
                                                 on_video_error=ar.on_video_error, decode_all_frames=ar.all_frames)
        self.checkpoint = ckpt

    def __getstate__(self):
        state = super().__getstate__()
        state["vila"] = None
        state.pop("_vila_weights", None)  # (the identity is for the signature, in the main process)
        return state

    @property
    def encode_devices(self) -> list:
        return [*super().encode_devices, *([self.vila.device] if self.vila is not None else [])]

    def decoded_bytes(self) -> int:
        """Step 1's frames plus the AR model's pixel tensor."""
        pixels = self.inputs.num_frames * 3 * self.inputs.image_size ** 2 * torch.empty((), dtype=self.inputs.dtype).element_size()
        return super().decoded_bytes() + pixels + (1 << 16)

    def signature(self) -> dict[str, Any]:
        """Step 1's signature and the AR model's settings and identity (no model needed)."""
        ar = self.ar
        if self.__dict__.get("_vila_weights") is None:
            with loading("the AR model (--model-path)", ar.model_path):
                self._vila_weights = vila_identity(self.checkpoint)
        return {**super().signature(), "vila": vila_identifier(ar.model_path, self.checkpoint.projector_type, ar.dtype),
                "ar_dtype": ar.dtype, "task": ar.task, "on_video_error": ar.on_video_error,
                "all_frames": ar.all_frames, "vila_weights": self._vila_weights}

    def _task(self, sample: Sample) -> str:
        if self.ar.task != "auto":
            return resolve_task(self.ar.task).name
        return "vid_gen" if sample.is_caption else "vid_edit"

    def decode(self, item: WorkItem) -> Decoded:
        sample: Sample = item.payload
        task = resolve_task(self._task(sample))
        if task.media != "video":  # text-only (or image) tasks need no extra frames
            decoded = super().decode(item)
            decoded.data = {"clips": decoded.data, "task": task.name, "pixels": None}
            return decoded
        self._check_prompt(sample)
        frames, infos = self._sample_frames(item)
        needed = self.inputs.num_images(task.name, sample.prompt)
        # as the ar step: all 8 frames are decoded unless only the used ones are asked for in "fail" mode
        decode = needed if not self.ar.all_frames and self.ar.on_video_error != "black" else AR_NUM_FRAMES
        if not infos:  # (with buckets the planning probe checked it)
            self._read_guard(sample, "source", sample.source_file)  # before sample_indices probes it
        try:
            extra = sample_indices(sample.source_file, AR_NUM_FRAMES, decode)
            ar_error = None
        except VideoError as err:
            extra, ar_error = [], err
        source = self._read(sample, "source", sample.source_file, extra_indices=extra, frames=frames,
                            info=infos.get("source"))
        got = source.extra
        if ar_error is None and any(i not in got for i in extra):
            ar_error = VideoError("decode_error", f"{sample.source_file}: AR frame {max(extra)} did not decode")
        if ar_error is not None:
            if self.ar.on_video_error != "black":
                raise type(ar_error)(ar_error.reason, f"{sample.label}: source video (AR frames): {ar_error.message}")
            log.warning("%s: AR frames: %s; using black frames as the original does", sample.label, ar_error.message)
            images = black_frames(AR_NUM_FRAMES)
        else:
            images = [Image.fromarray(got[i]) for i in extra]
        if not self.ar.all_frames:
            images = images[:needed]
        if len(images) < needed:
            raise SampleError("too_many_image_placeholders", f"{sample.label}: the prompt has {needed} <image> "
                                                             f"slots but only {len(images)} frames are sampled")
        pixels = self.inputs.pixel_values(images)
        clips = {"source": source}
        if not sample.is_caption:
            clips["target"] = self._read(sample, "target", sample.target_file, frames=frames,
                                         info=infos.get("target"))
        return Decoded(item, {"clips": clips, "task": task.name, "pixels": pixels}, transient=True)

    def encode(self, decoded: Decoded):
        data = decoded.data
        step1 = self._encode_step1(decoded.item, data["clips"])
        vlm = self.vila.encode_pixels(data["task"], step1["prompt"], data["pixels"])
        meta = {"step": "run", "settings": record_settings(self.signature(), decoded.item),
                "ar": {"task": data["task"]}}
        record = ar_record(step1, vlm, meta)
        extras = []
        if self.keep_intermediate is not None:
            extras.append((self.keep_intermediate / decoded.item.path.name, step1))
        return record, extras


@dataclass(frozen=True)
class OnePassFactory:
    """Builds the one-pass stage from settings, so that an engine's workers can load the models themselves."""

    run: RunSettings
    frames: FrameSettings
    models: ModelSettings
    ar: ArOptions
    keep_intermediate: Path | None = None

    def build(self, rank: RankInfo | None, loaded=None) -> OnePassStage:
        """With the models loaded on ``rank``'s device (or ``loaded``), or without them when ``rank`` is None."""
        if loaded is not None:
            vae, t5, vila = loaded
        elif rank is not None:
            vae, t5 = load_step1_models(self.models, rank)
            ar = self.ar
            vila = load_ar_model(ArSettings(data_file="", result_folder=self.run.output_dir, model_path=ar.model_path,
                                            dtype=ar.dtype, device=ar.device or self.models.device,
                                            on_video_error=ar.on_video_error, all_frames=ar.all_frames), rank)
        else:
            vae = t5 = vila = None
        stage = OnePassStage(self.frames, vae, t5, vila, self.ar, min_prompt_len=self.run.min_prompt_len,
                             keep_intermediate=self.keep_intermediate, models=self.models)
        stage.max_video_pixels = self.run.max_video_pixels
        stage.relative_video_paths = self.run.relative_video_paths
        return stage


def run_onepass(run: RunSettings, frames: FrameSettings, models: ModelSettings, ar: ArOptions, *,
                keep_intermediate: bool = False, rank: RankInfo | None = None, loaded=None,
                keep_mismatched: bool = False) -> dict[str, Any] | None:
    """Both steps for this process's share; returns the merged summary when this rank finished last."""
    out = Path(run.output_dir)
    samples, problems = read_input(run)
    engine = get_engine(run.engine, rank)
    layout = OutputLayout.for_output(out, LIST_NAME, records_only=False).prepare()
    preflight_onepass(run.input, samples, problems, frames, layout, engine.rank, None if loaded else models,
                      None if loaded else ar.model_path, run.video_root, ar.device, ar_dtype=ar.dtype,
                      local=run.engine.name == "local")
    plan = plan_buckets(run, frames, layout.meta)  # --merge-small-buckets: every sample's bucket, up front
    inter_layout = OutputLayout.for_output(out / INTERMEDIATE_DIR, STEP1_LIST_NAME, records_only=True)
    if keep_intermediate:
        inter_layout.prepare()  # records only: the original step 2 can read it
    inter = inter_layout.records if keep_intermediate else None
    if engine.rank.is_main:
        write_json(layout.config, {"step": "run", "run": asdict(run), "frames": asdict(frames),
                                   "models": asdict(models), "ar": asdict(ar),
                                   "keep_intermediate": keep_intermediate,
                                   "world_size": engine.rank.world_size})
    items = plan_items(samples, problems, out, suffix(run.record_format), plan)
    summary = engine.run(OnePassFactory(run, frames, models, ar, inter), items, out,
                         ExecutionSettings.of(run, keep_mismatched=keep_mismatched), loaded=loaded)
    if summary is not None and inter is not None:
        names = [p.name for p in read_list_paths(layout.list_file)]
        kept = [str(inter / n) for n in names if (inter / n).exists()]
        write_list(inter_layout.list_file, kept, relative=run.relative_paths)
        shape_of = {Path(line).name: shape for shape, path in sibling_shape_lists(layout.list_file).items()
                    for line in path.read_text().splitlines()}
        write_shape_lists(inter_layout.list_file, [(p, shape_of.get(Path(p).name)) for p in kept],
                          relative=run.relative_paths)
    return report_small_buckets(summary, layout.meta, run.min_bucket_records, plan)
