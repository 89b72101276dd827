"""What a step hands to an engine: its work items and a :class:`Stage` (decode in a worker, encode on the GPU).

A step (step1, step2, onepass) says how to decode one work item (in a worker process or task) and how
to encode what was decoded (where the models are); an engine (``pipeline/engines/``) does the rest.
Both sides import this module and nothing of each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch

from revise_prep.errors import SampleError
from revise_prep.pipeline.dist import RankInfo
from revise_prep.records.layout import OutputLayout
from revise_prep.records.reports import Outcome


@dataclass
class WorkItem:
    """One sample to produce: its input index, record name and path, and the step's own payload."""

    index: int
    name: str | None
    path: Path | None
    payload: Any = None
    failure: Outcome | None = None  # set when the item is already known to fail (duplicate, malformed)
    notes: dict[str, Any] = field(default_factory=dict)  # e.g. renamed_from, kept in meta and reports
    shape: str | None = None  # its bucket "FxHxW" when planned up front (--merge-small-buckets); resume redoes
    # an existing record of another shape


@dataclass
class Decoded:
    """What a worker hands to the encoder: the payload it decoded, or the reason it could not."""

    item: WorkItem
    data: Any = None
    error: SampleError | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    transient: bool = False  # data is only read by encode, never kept in a record: the engine may reuse its memory

    def pin_memory(self) -> "Decoded":
        """Called by the DataLoader's pinning thread (``pin_memory=True``): page-locked frames copy to the GPU
        asynchronously, off the encode loop."""
        self.data = map_tensors(self.data, torch.Tensor.pin_memory)
        return self


def map_tensors(obj: Any, fn) -> Any:
    """Apply ``fn`` to every tensor inside dicts, lists and dataclasses (e.g. a Clip's frames)."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [map_tensors(v, fn) for v in obj]
    if is_dataclass(obj) and not isinstance(obj, type):
        return replace(obj, **{f.name: map_tensors(getattr(obj, f.name), fn) for f in fields(obj)
                               if isinstance(getattr(obj, f.name), (torch.Tensor, dict, list))})
    return obj


class Stage(Protocol):
    """One step's work on one sample. Optional hooks an engine uses when present: ``prepare(todo)`` (with
    items to do, in order, before they are encoded, e.g. to batch prompts; the local engine calls it once with all
    of them, a Ray actor with the samples waiting in it), ``describe(item)`` (the item's report columns: source,
    target...), ``notices`` (set to the run's summarised per-sample messages), ``records_only`` (reports go
    in the sidecar), ``decoder_threads`` (set by the engine: threads one decode may use), ``pin_decoded``
    (True when the encoder is on a GPU: decoded tensors are page-locked for the copy), ``encode_devices``
    (the models' devices, for the CPU budget), ``device`` with ``keep_on_device`` (the encoder's device; the
    local engine sets ``keep_on_device`` and copies the record's GPU tensors back itself), ``decoded_bytes()``
    (the most bytes of frames one sample decodes to: the size of the local engine's slots) and ``warm_up()``
    (run the models once while the first samples decode)."""

    step: str  # "vae" | "ar" | "run": the meta tag resume checks
    list_name: str

    def signature(self) -> dict[str, Any]: ...

    def decode(self, item: WorkItem) -> Decoded: ...

    def encode(self, decoded: Decoded) -> dict[str, Any] | tuple[dict[str, Any], list[tuple[Path, dict]]]:
        """The record to write, or (record, [(path, intermediate record), ...]) written before it."""


class StageFactory(Protocol):
    """Builds a step's stage from settings: without models (``rank=None``, for decoding) or with its models
    loaded on ``rank``'s device (``loaded``: models already loaded in this process). Must be picklable (small
    settings only): an engine may build the stage in another process (a Ray actor)."""

    def build(self, rank: RankInfo | None, loaded=None) -> Stage: ...


def stage_layout(stage: Stage, out: Path) -> OutputLayout:
    """Where ``stage`` writes into ``out``: records there, reports there or in its sidecar."""
    return OutputLayout.for_output(out, stage.list_name, records_only=getattr(stage, "records_only", False))


def describer(stage: Stage):
    """The stage's ``describe`` (an item's report columns), or one that adds none."""
    return getattr(stage, "describe", None) or (lambda item: {})
