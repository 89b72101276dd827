"""Step 1: frames -> Wan2.1 VAE latents, instruction -> umT5 embedding; one record per sample."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from revise_prep.errors import MISSING_FILE, SHORT_PROMPT, InputError, SampleError, loading
from revise_prep.inputs import Sample, parse_entries
from revise_prep.inputs.samples import record_video_path
from revise_prep.models.text import passes_prompt_filter
from revise_prep.pipeline.bucket_plan import BucketPlan, plan_buckets, report_small_buckets
from revise_prep.pipeline.dist import RankInfo, resolve_device
from revise_prep.pipeline.engines import get_engine
from revise_prep.pipeline.merge import write_json
from revise_prep.pipeline.preflight import preflight_step1
from revise_prep.pipeline.progress import Notices
from revise_prep.pipeline.prompts import PromptBank
from revise_prep.pipeline.stage import Decoded, WorkItem, stage_layout
from revise_prep.records.formats import suffix
from revise_prep.records.layout import NOTES_FILE, absolute
from revise_prep.records.naming import DUPLICATE_SAMPLE, name_budget, plan_names
from revise_prep.records.reports import Outcome
from revise_prep.records.schema import step1_record
from revise_prep.settings import ExecutionSettings, FrameSettings, ModelSettings, RunSettings, frames_signature
from revise_prep.video import Clip, VideoInfo, check_orientation, probe_video, read_clip, sampling_interval
from revise_prep.video.buckets import parse_bucket_name, plan_sample, uses_buckets
from revise_prep.video.notes import decoder_notes
from revise_prep.video.guards import DEFAULT_MAX_VIDEO_PIXELS, check_video_pixels

log = logging.getLogger(__name__)

LIST_NAME = "vae_features.txt"


def clip_meta(clip: Clip, path_as_given: str, file: Path | None = None) -> dict[str, Any]:
    """What the record remembers about one video: where it came from and which frames were taken.

    ``path`` is the input's own spelling, ``file`` the absolute path that was read; ``rotation`` is the quarter
    turn applied to the frames (0 with ``--no-auto-rotate``), ``display_rotation`` the file's display-matrix
    angle; ``width``/``height`` are the stored size.
    """
    info = clip.info
    meta = {"path": path_as_given, **({"file": str(Path(file).absolute())} if file is not None else {}),
            "width": info.width, "height": info.height, "fps": info.fps,
            "num_frames": info.num_frames, "count_method": info.count_method, "rotation": clip.rotation,
            "display_rotation": info.rotation, "requested_interval": clip.requested_interval,
            "interval": clip.interval, "indices": list(clip.indices)}
    notes = decoder_notes(info)
    if notes:
        meta["original_decoder"] = notes  # where the original's OpenCV would give other frames (README: Exactness)
    return meta


def describe(item: WorkItem) -> dict[str, str | None]:
    sample: Sample = item.payload
    if sample is None:
        return {}
    return {"source": sample.source, "target": sample.target, "extra": dict(item.notes)}


def plan_items(samples: list[Sample], problems, out: Path, ext: str = ".pkl",
               buckets: BucketPlan | None = None) -> list[WorkItem]:
    """One work item per input entry, in input order; duplicates and malformed entries pre-failed; with a
    bucket plan (``--merge-small-buckets``) each usable sample carries its bucket."""
    out = absolute(out)
    plan = plan_names(samples, max_bytes=name_budget(out if out.is_dir() else None, ext))
    notices = Notices(log)
    items = []
    for sample in samples:
        if sample.index in plan.duplicates:
            first = plan.duplicates[sample.index]
            failure = Outcome(index=sample.index, name=None, status="skipped", reason=DUPLICATE_SAMPLE,
                              message=f"{sample.label}: same source, target and instruction as sample #{first}",
                              source=sample.source, target=sample.target)
            items.append(WorkItem(sample.index, None, None, sample, failure))
            continue
        name = plan.names[sample.index]
        notes = {}
        if sample.index in plan.altered:
            notices("name changed", "%s: output name %r has control characters or is too long for the "
                    "filesystem; writing %s%s", sample.label, plan.altered[sample.index], name, ext, where=NOTES_FILE)
            notes["original_name"] = plan.altered[sample.index]
        if sample.index in plan.renamed:
            notices("renamed", "%s: output name %r is taken by an earlier sample; writing %s%s",
                    sample.label, plan.renamed[sample.index], name, ext, where=NOTES_FILE)
            notes["renamed_from"] = plan.renamed[sample.index]
        shape = buckets.samples.get(sample.index) if buckets is not None else None
        items.append(WorkItem(sample.index, name, out / f"{name}{ext}", sample, notes=notes, shape=shape))
    for p in problems:
        items.append(WorkItem(p.index, None, None, None, Outcome(index=p.index, name=None, status="failed",
                                                                 reason=p.reason, message=str(p))))
    notices.flush()
    return sorted(items, key=lambda it: it.index)


@dataclass
class Step1Stage:
    """Decodes both videos of a pair in a worker; encodes them with the VAE and the prompt with umT5."""

    frames: FrameSettings
    vae: Any = None
    t5: Any = None
    min_prompt_len: int = 10
    decoder_threads: int = 0  # FFmpeg threads per decode (0: its default); the engine sets it
    max_video_pixels: int = DEFAULT_MAX_VIDEO_PIXELS  # a resource guard, not a record setting: not in signature()
    prompts: Any = None  # a PromptBank (main process only): umT5 batched across samples
    models: ModelSettings | None = None  # where the models come from: the signature names them (no model needed)
    step: str = "vae"
    list_name: str = LIST_NAME
    records_only: bool = True  # the original step 2 lists this folder: reports go in its sidecar
    relative_video_paths: bool = False  # record video paths relative to the video root instead of absolute
    notices: Any = None  # set by the runner: per-sample messages, summarised
    keep_on_device: bool = False  # set by the local engine: latents and embeddings stay on the GPU (it copies them)
    describe = staticmethod(describe)  # the report columns of an item

    @property
    def pin_decoded(self) -> bool:
        """Decoded frames go to a GPU: the local engine page-locks them for the copy."""
        return self.vae is not None and self.vae.device.type == "cuda"

    def signature(self) -> dict[str, Any]:
        """What a record depends on (resume check and its meta), from the settings: no model is needed."""
        if self.__dict__.get("_signature") is None:
            models = self.models or ModelSettings()
            if models.ckpt_dir or (models.vae_path and models.t5_path) or self.vae is None:
                self._signature = step1_signature(self.frames, models, self.min_prompt_len)
            else:  # models a caller loaded itself (tests, benchmarks) and named no checkpoint for
                self._signature = {**frames_signature(self.frames), "vae": self.vae.identifier,
                                   "t5": self.t5.identifier, "vae_dtype": str(self.vae.dtype).removeprefix("torch."),
                                   "t5_dtype": str(self.t5.dtype).removeprefix("torch."), "text_len": self.t5.text_len,
                                   "min_prompt_len": self.min_prompt_len,
                                   "vae_tiling": bool(getattr(self.vae.model, "use_tiling", False)),
                                   "vae_batch": bool(getattr(self.vae, "batch_clips", False)),
                                   **(self.vae.variant_signature() if hasattr(self.vae, "variant_signature") else {})}
        return self._signature

    @property
    def device(self):
        """Where the frames are encoded (the VAE's device), or None without models."""
        return self.vae.device if self.vae is not None else None

    @property
    def encode_devices(self) -> list:
        """Every device a model of this stage runs on (the engine's CPU budget asks whether one is a CPU)."""
        return [m.device for m in (self.vae, self.t5) if m is not None]

    def decoded_bytes(self) -> int:
        """The most bytes of frames one decoded sample holds (the largest bucket and count, both videos)."""
        f = self.frames
        area = max(h * w for h, w in f.buckets) if f.buckets else f.height * f.width
        count = max(f.frame_buckets) if f.frame_buckets else f.frame_num
        return 2 * (count * 3 * area + (1 << 16))

    def warm_up(self) -> None:
        """While the first samples decode: run the VAE once on zeros of the run's clip shape (on a GPU cuDNN
        times its algorithms and kernels load; a compiled encoder compiles) and encode the first prompts.
        Nothing on a plain CPU run (no algorithm to choose; the cores are decoding)."""
        vae = self.vae
        if vae is None or (vae.device.type == "cpu" and not getattr(vae, "compiled", False)):
            return
        if self.prompts is not None:
            self.prompts.prefetch()
        if uses_buckets(self.frames):
            return  # the first clip's shape is not known yet
        f = self.frames
        batch = 2 if getattr(vae, "batch_clips", False) else 1
        zeros = torch.zeros((batch, 3, f.frame_num, f.height, f.width), dtype=torch.uint8, device=vae.device)
        vae.encode(zeros, **self._on_device())

    def _on_device(self) -> dict[str, Any]:
        return {"to_cpu": False} if self.keep_on_device else {}

    def __getstate__(self):  # workers only decode: never ship the models to them
        state = dict(self.__dict__)
        state["vae"] = state["t5"] = state["prompts"] = state["notices"] = None
        state.pop("_signature", None)  # (for the resume check and the meta, in the encoding process)
        return state

    def prepare(self, todo: list[WorkItem]) -> None:
        """Called with items to do, in order, before they are encoded (the local engine: once, with all of them;
        a Ray actor: with the samples waiting in it): queue their prompts for batching."""
        prompts = [it.payload.prompt for it in todo if passes_prompt_filter(it.payload.prompt, self.min_prompt_len)]
        if self.prompts is None:
            self.prompts = PromptBank(self.t5, [], batch_size=getattr(self.t5, "batch_size", 8),
                                      on_device=self.keep_on_device)
        self.prompts.add(prompts)

    def _check_prompt(self, sample: Sample) -> None:
        """The original's filter, applied before decoding (same outcome, no decoding wasted)."""
        if not passes_prompt_filter(sample.prompt, self.min_prompt_len):
            raise SampleError(SHORT_PROMPT, f"{sample.label}: instruction {sample.prompt!r} is empty or at most "
                                            f"{self.min_prompt_len} characters", skip=True)

    def decode(self, item: WorkItem) -> Decoded:
        sample: Sample = item.payload
        self._check_prompt(sample)
        frames, infos = self._sample_frames(item)
        clips = {"source": self._read(sample, "source", sample.source_file, frames=frames, info=infos.get("source"))}
        if not sample.is_caption:
            clips["target"] = self._read(sample, "target", sample.target_file, frames=frames,
                                         info=infos.get("target"))
        return Decoded(item, clips, transient=True)  # the frames are encoded, never kept

    def _sample_frames(self, item: WorkItem) -> tuple[FrameSettings, dict[str, VideoInfo]]:
        """This sample's frame settings (its bucket, with ``--buckets`` / ``--frame-buckets``) and the probes that
        chose it; ``item.notes["bucket"]`` says which and why. Without buckets: the run's settings, no probe."""
        if not uses_buckets(self.frames):
            return self.frames, {}
        sample: Sample = item.payload
        rotate = self.frames.auto_rotate  # the displayed size when frames are rotated
        videos = {"source": sample.source_file}
        if not sample.is_caption:
            videos["target"] = sample.target_file
        counts = self.frames.frame_buckets or (self.frames.frame_num,)
        smallest = replace(self.frames, frame_num=min(counts))  # a pair both videos serve at this gets a count
        infos: dict[str, VideoInfo] = {}
        displayed: dict[str, tuple[int, int]] = {}
        for role, path in videos.items():  # read_clip's rules and order, before anything is decoded
            with _labelled(sample, role):
                check_video_pixels(path, self.max_video_pixels)  # --max-video-pixels, before anything else
                info = infos[role] = probe_video(path, read_rotation=rotate)
                displayed[role] = info.display_size if rotate else (info.height, info.width)
                sampling_interval(path, info.num_frames, smallest)
                check_orientation(path, *displayed[role], smallest)  # (never with --buckets)
        assigned = parse_bucket_name(item.shape) if item.shape else None  # planned up front
        frames, why = plan_sample(self.frames, displayed["source"], {r: i.num_frames for r, i in infos.items()},
                                  assigned)
        item.notes["bucket"] = why
        return frames, infos

    def _read_guard(self, sample: Sample, role: str, path: Path) -> None:
        """``--max-video-pixels``, from the file's header, before any frame of it is decoded."""
        with _labelled(sample, role):
            check_video_pixels(path, self.max_video_pixels)

    def _read(self, sample: Sample, role: str, path: Path, extra_indices=(), *, frames: FrameSettings | None = None,
              info: VideoInfo | None = None) -> Clip:
        if info is None:  # (with buckets the planning probe checked it)
            self._read_guard(sample, role, path)
        with _labelled(sample, role):
            # uint8: a quarter of the bytes from worker to encoder; the VAE normalises on its device
            return read_clip(path, frames or self.frames, threads=self.decoder_threads, extra_indices=extra_indices,
                             dtype=torch.uint8, info=info)

    def encode(self, decoded: Decoded) -> dict[str, Any]:
        return self._encode_step1(decoded.item, decoded.data)

    def _encode_step1(self, item: WorkItem, clips: dict[str, Clip]) -> dict[str, Any]:
        """VAE latents of every clip and the umT5 embedding (batched across samples by the prompt bank)."""
        sample: Sample = item.payload
        videos = [c.frames.permute(1, 0, 2, 3) for c in clips.values()]
        options = self._on_device()
        if getattr(self.vae, "batch_clips", False) and len({v.shape for v in videos}) == 1:
            latents = list(self.vae.encode(torch.stack(videos), **options))  # --vae-batch: one call (stacked on the GPU)
        else:  # one clip at a time, each straight from where the worker put it (no stacked copy)
            latents = [self.vae.encode(v[None], **options)[0] for v in videos]
        text_emb = (self.prompts.get(sample.prompt) if self.prompts is not None
                    else self.t5.encode([sample.prompt], **options)[0])
        # only an embedding that fills text_len can have been cut: count the untruncated tokens just then
        tokens = self.t5.token_count(sample.prompt) if text_emb.shape[0] >= self.t5.text_len else 0
        if tokens > self.t5.text_len:
            item.notes["prompt_truncated_from"] = tokens
            (self.notices or Notices(log))("prompt cut", "%s: instruction has %d tokens; the embedding keeps the "
                                           "first %d (as the original)", sample.label, tokens, self.t5.text_len,
                                           where=NOTES_FILE)
        meta = {"name": item.name, "sample_index": sample.index, "sample_type": sample.sample_type,
                "kind": sample.kind, "settings": record_settings(Step1Stage.signature(self), item), **item.notes,
                "videos": {role: clip_meta(c, getattr(sample, role), sample.resolve(getattr(sample, role)))
                           for role, c in clips.items()}}
        video_path = record_video_path(sample.source_file, sample.video_root if self.relative_video_paths else None)
        return step1_record(latent=latents[0], latent_tgt=latents[1] if len(latents) > 1 else None,
                            prompt=sample.prompt, text_emb=text_emb, video_path=video_path,
                            frame_num=len(next(iter(clips.values())).indices), meta=meta)


def step1_signature(frames: FrameSettings, models: ModelSettings, min_prompt_len: int) -> dict[str, Any]:
    """The settings a step-1 record depends on and the identities of its checkpoints (``models/identity.py``),
    computed without loading a model. The ``*_weights`` keys are newer than the others: a record made before them
    lacks them and still counts (``resume.ADDED_KEYS``)."""
    from revise_prep.models.base import resolve_dtype
    from revise_prep.models.umt5 import umt5_identifier, umt5_identity
    from revise_prep.models.wan_vae import vae_identifier, vae_identity, variant_signature

    vae_source, t5_source = models.checkpoint_sources()
    with loading("the VAE", vae_source):
        vae_weights = vae_identity(vae_source)
    with loading("umT5", t5_source):
        t5_weights = umt5_identity(t5_source, models.tokenizer_path)
    return {**frames_signature(frames), "vae": vae_identifier(vae_source), "t5": umt5_identifier(t5_source),
            "vae_dtype": str(resolve_dtype(models.vae_dtype)).removeprefix("torch."),
            "t5_dtype": str(resolve_dtype(models.t5_dtype)).removeprefix("torch."), "text_len": models.text_len,
            "min_prompt_len": min_prompt_len, "vae_tiling": bool(models.vae_tiling),
            "vae_batch": bool(models.vae_batch),
            **variant_signature(models.vae_channels_last, models.vae_compile, models.strict_fp32),
            "vae_weights": vae_weights, "t5_weights": t5_weights}


def record_settings(signature: dict[str, Any], item: WorkItem) -> dict[str, Any]:
    """The settings as this record was made (its meta): with buckets, its own size and frame count in place of
    the run's unused ``--target-size`` / ``--frame-num`` (the resume check skips those keys: settings.py)."""
    bucket = item.notes.get("bucket")
    if not isinstance(bucket, dict):
        return signature
    (height, width), frame_num = bucket["size"], bucket["frame_num"]
    return {**signature, "height": height, "width": width, "frame_num": frame_num}


@contextmanager
def _labelled(sample: Sample, role: str):
    """Prefix a video's error with the sample and the role of the video; a missing file is named by its absolute
    path and, for a path relative in the input, the ``--video-root`` it was resolved against."""
    try:
        yield
    except SampleError as err:
        message = err.message
        given = getattr(sample, role, None)
        if err.reason == MISSING_FILE and isinstance(given, str):
            message = f"video file not found: {absolute(sample.resolve(given))}" + (
                "" if os.path.isabs(given) else f" ({given!r} relative to --video-root {absolute(sample.video_root)})")
        raise type(err)(err.reason, f"{sample.label}: {role} video: {message}", skip=err.skip) from None


def vae_options(models: ModelSettings) -> dict[str, Any]:
    """``WanVAE.load``/``wrap`` keywords of the settings (also what the benchmarks build their VAEs with)."""
    return dict(dtype=models.vae_dtype, tiling=models.vae_tiling, batch_clips=models.vae_batch,
                channels_last=models.vae_channels_last, compiled=models.vae_compile, strict_fp32=models.strict_fp32,
                cudnn_benchmark=models.cudnn_benchmark)


def load_step1_models(models: ModelSettings, rank: RankInfo):
    """Load the VAE and the text encoder once, on this rank's device(s)."""
    from revise_prep.models.umt5 import UMT5TextEncoder
    from revise_prep.models.wan_vae import WanVAE

    device = resolve_device(models.device, rank)
    t5_device = resolve_device(models.t5_device, rank) if models.t5_device else device
    vae_source, t5_source = models.checkpoint_sources()
    log.info("loading VAE from %s (%s, %s)", vae_source, models.vae_dtype, device)
    with loading("the VAE", vae_source):
        vae = WanVAE.load(vae_source, device=device, **vae_options(models))
    log.info("loading umT5 from %s (%s, %s)", t5_source, models.t5_dtype, t5_device)
    with loading("umT5", t5_source):
        t5 = UMT5TextEncoder.load(t5_source, dtype=models.t5_dtype, device=t5_device, text_len=models.text_len,
                                  tokenizer=models.tokenizer_path)
    return vae, t5


def read_input(run: RunSettings):
    """Parse the input list; malformed entries stop the run before any work unless ``skip_bad_entries``.
    The video root is made absolute here, so that every process (and Ray node) reads, and every record names,
    the same files whatever its working folder."""
    samples, problems = parse_entries(run.input, str(Path(run.video_root).absolute()))
    if problems and not run.skip_bad_entries:
        shown = "\n  ".join(str(p) for p in problems[:20])
        raise InputError(f"{len(problems)} malformed entr{'y' if len(problems) == 1 else 'ies'} "
                         f"(--skip-bad-entries records them as failures and goes on):\n  {shown}")
    return samples, problems


@dataclass(frozen=True)
class Step1Factory:
    """Builds the step-1 stage from settings, so that an engine's workers can load the models themselves."""

    run: RunSettings
    frames: FrameSettings
    models: ModelSettings

    def build(self, rank: RankInfo | None, loaded=None) -> Step1Stage:
        """With the models loaded on ``rank``'s device (or ``loaded``), or without them when ``rank`` is None."""
        vae, t5 = loaded or (load_step1_models(self.models, rank) if rank is not None else (None, None))
        return Step1Stage(self.frames, vae, t5, min_prompt_len=self.run.min_prompt_len,
                          max_video_pixels=self.run.max_video_pixels, models=self.models,
                          relative_video_paths=self.run.relative_video_paths)


def run_step1(run: RunSettings, frames: FrameSettings, models: ModelSettings, *, rank: RankInfo | None = None,
              loaded=None, keep_mismatched: bool = False) -> dict[str, Any] | None:
    """Run step 1 for this process's share; returns the merged summary when this rank finished last."""
    out = Path(run.output_dir)
    samples, problems = read_input(run)
    engine = get_engine(run.engine, rank)
    layout = stage_layout(Step1Stage, out).prepare()  # a bad output folder stops before the models load
    preflight_step1(run.input, samples, problems, frames, layout, engine.rank, None if loaded else models,
                    run.video_root, local=run.engine.name == "local")
    plan = plan_buckets(run, frames, layout.meta)  # --merge-small-buckets: every sample's bucket, up front
    if engine.rank.is_main:
        write_json(layout.config, {"step": "vae", "run": asdict(run), "frames": asdict(frames),
                                   "models": asdict(models), "world_size": engine.rank.world_size})
    items = plan_items(samples, problems, out, suffix(run.record_format), plan)
    summary = engine.run(Step1Factory(run, frames, models), items, out,
                         ExecutionSettings.of(run, keep_mismatched=keep_mismatched), loaded=loaded)
    return report_small_buckets(summary, layout.meta, run.min_bucket_records, plan)
