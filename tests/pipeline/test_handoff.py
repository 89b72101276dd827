"""The local engine's hand-off: decoded samples in reused shared slots (read in place, given back, never reused
while a copy is pending), records back through reused host buffers, decode workers started before the models
load, and the models warmed up while the first samples decode."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from revise_prep.pipeline.dist import RankInfo
from revise_prep.pipeline.engines.local.handoff import (MIN_SLOT_TENSOR, HostRing, SlotRef, SlotRing, Ticket,
                                                        map_leaves)
from revise_prep.pipeline.engines.local.runner import LocalEngine
from revise_prep.pipeline.engines.local.workers import DecodePool
from revise_prep.pipeline.stage import Decoded, WorkItem
from revise_prep.records.reader import load_record
from revise_prep.settings import ExecutionSettings

BIG = (MIN_SLOT_TENSOR // 4 + 1,)  # float32 elements: just over the slot threshold


@dataclass
class Frames:  # a dataclass inside the decoded data, as a Clip is
    frames: torch.Tensor
    label: str


class PairStage:
    """decode: item ``i`` -> two big tensors of value i and a small one; ``transient`` as step 1 marks it."""

    step = "vae"
    list_name = "list.txt"

    def __init__(self, transient: bool = True, size: tuple[int, ...] = BIG) -> None:
        self.transient, self.size = transient, size

    def signature(self):
        return {"v": 1}

    def __getstate__(self):  # what the decode workers get (as the steps' stages say; they drop their models)
        return dict(self.__dict__)

    def decode(self, item: WorkItem) -> Decoded:
        big = torch.full(self.size, float(item.index))
        data = {"source": Frames(big, "s"), "target": Frames(big + 0.5, "t"), "small": torch.full((4,), 1.0)}
        return Decoded(item, data, transient=self.transient)

    def decoded_bytes(self) -> int:
        return 2 * torch.Size(BIG).numel() * 4 + (1 << 16)

    def encode(self, decoded: Decoded):
        d = decoded.data
        return {"latent_feature": d["source"].frames[:3].clone(), "latent_feature_tgt": d["target"].frames[:3].clone(),
                "prompt": "p", "text_emb": [d["small"][None].clone()], "video_path": "v", "frame_num": 1,
                "meta": {"name": decoded.item.name}}


def items(n: int) -> list[WorkItem]:
    return [WorkItem(i, f"s{i}", None) for i in range(n)]


def in_ring(t: torch.Tensor, ring: SlotRing) -> bool:
    ptr = t.data_ptr()
    return any(s.data_ptr() <= ptr < s.data_ptr() + s.numel() for s in ring.tensors)


def test_decoded_tensors_arrive_in_reused_slots():
    stage = PairStage()
    pool = DecodePool(stage.decode, 2, slot_bytes=stage.decoded_bytes())
    results = pool.map(items(7))
    ring = pool._run.ring  # noqa: SLF001
    assert ring is not None and ring.count == 4  # 2 workers + 2, not one per item
    count, seen_slots = ring.count, set()
    for i, d in enumerate(results):
        assert d.item.index == i and d.error is None
        src, tgt, small = d.data["source"], d.data["target"], d.data["small"]
        assert isinstance(src, Frames) and src.label == "s"
        assert torch.equal(src.frames, torch.full(BIG, float(i))) and torch.equal(tgt.frames, torch.full(BIG, i + 0.5))
        assert in_ring(src.frames, ring) and in_ring(tgt.frames, ring)  # read in place, no copy
        assert not in_ring(small, ring)  # small tensors travel the ordinary way
        seen_slots.add(d.extra["slot"])
        pool.release(d)
    assert seen_slots <= set(range(count)) and len(seen_slots) > 1


def test_data_not_marked_transient_stays_out_of_the_slots():
    """Step 2 keeps decoded tensors in its record: those must never live in memory the next sample reuses."""
    stage = PairStage(transient=False)
    pool = DecodePool(stage.decode, 1, slot_bytes=stage.decoded_bytes())
    results = pool.map(items(3))
    ring = pool._run.ring  # noqa: SLF001
    kept = [d for d in results]
    assert all("slot" not in d.extra and not in_ring(d.data["source"].frames, ring) for d in kept)
    assert [float(d.data["source"].frames[0]) for d in kept] == [0.0, 1.0, 2.0]


def test_a_sample_bigger_than_its_slot_travels_the_ordinary_way():
    stage = PairStage(size=(3 * BIG[0],))
    pool = DecodePool(stage.decode, 1, slot_bytes=PairStage().decoded_bytes())
    out = list(pool.map(items(3)))
    assert [float(d.data["target"].frames[-1]) for d in out] == [0.5, 1.5, 2.5]


def test_a_consumer_that_never_releases_still_gets_every_result():
    """The slot of the previous result goes back when the next one is taken: no deadlock, values intact."""
    stage = PairStage()
    pool = DecodePool(stage.decode, 1, slot_bytes=stage.decoded_bytes())
    for i, d in enumerate(pool.map(items(9))):
        assert float(d.data["source"].frames[-1]) == i


class FakeEvent:
    def __init__(self) -> None:
        self.done = False

    def query(self) -> bool:
        return self.done


def test_a_slot_is_not_reused_before_its_copy_has_finished():
    ring = SlotRing(2, 1 << 20)
    try:
        a, b = ring.acquire(), ring.acquire()
        assert {a, b} == {0, 1} and ring.acquire() is None
        copy = FakeEvent()
        ring.release(a, copy)
        ring.release(b)
        assert ring.acquire() == b and ring.acquire() is None  # a's copy is still running
        copy.done = True
        assert ring.acquire() == a
    finally:
        ring.close()


def test_slot_views_restore_through_dataclasses_and_lists():
    ring = SlotRing(1, 1 << 20)
    try:
        ring.tensors[0][:16].view(torch.float32).copy_(torch.arange(4.0))
        data = {"clips": [Frames(SlotRef(0, torch.float32, (2, 2)), "x")], "n": 3}
        back = ring.restore(0, data)
        assert torch.equal(back["clips"][0].frames, torch.arange(4.0).view(2, 2)) and back["n"] == 3
        assert map_leaves(back, (torch.Tensor,), lambda t: t.sum())["clips"][0].frames == 6
    finally:
        ring.close()


def test_host_buffers_are_reused_by_shape_and_given_back_once():
    ring = HostRing(pin=False)
    a = ring.take(torch.empty(2, 3))
    ticket = Ticket(None, ring, [a])
    ticket.wait()
    ticket.release()
    ticket.release()  # twice: the buffer is not handed out twice
    b, c = ring.take(torch.empty(2, 3)), ring.take(torch.empty(2, 3))
    assert b is a and c is not a and ring.allocated == 2
    assert ring.take(torch.empty(3, 2, dtype=torch.float16)).dtype == torch.float16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the GPU copies need CUDA")
def test_device_round_trip_on_a_gpu():
    from revise_prep.pipeline.engines.local.handoff import DeviceHandoff

    handoff = DeviceHandoff(torch.device("cuda"))
    data = {"x": torch.arange(6.0).view(2, 3).pin_memory()}
    moved, event = handoff.to_device(data)
    out = moved["x"] * 2
    (record,), ticket = handoff.to_host({"y": out, "z": [out]})
    ticket.wait()
    assert record["y"].device.type == "cpu" and record["y"].is_pinned() and record["z"][0] is record["y"]
    assert torch.equal(record["y"], torch.arange(6.0).view(2, 3) * 2) and event.query()
    ticket.release()


# ------------------------------------------------------------------------------------------- the engine
class SlowModels:
    """A factory whose models take ``load_s`` to load; the stage notes when each decode started."""

    def __init__(self, marks: Path, load_s: float, variant: str = "same") -> None:
        self.marks, self.load_s, self.variant = marks, load_s, variant

    def build(self, rank, loaded=None):
        stage = MarkingStage(self.marks)
        if rank is not None:
            time.sleep(self.load_s)
            (self.marks / "loaded").write_text(repr(time.time()))
            if self.variant == "other":
                stage.scale = 2.0  # the loaded stage decodes differently: the early workers must not be used
        return stage


class MarkingStage(PairStage):
    def __init__(self, marks: Path) -> None:
        super().__init__()
        self.marks, self.scale = marks, 1.0
        self.warmed = 0

    def decode(self, item: WorkItem) -> Decoded:
        (self.marks / f"decode-{item.index}-{os.getpid()}").write_text(repr(time.time()))
        decoded = super().decode(item)
        decoded.data["source"].frames.mul_(self.scale)
        return decoded

    def warm_up(self) -> None:
        self.warmed += 1
        (self.marks / "warmed").write_text(repr(time.time()))


@pytest.mark.parametrize("variant", ["same", "other"])
def test_decoding_starts_before_the_models_load(tmp_path, variant):
    marks = tmp_path / "marks"
    marks.mkdir()
    out = tmp_path / "out"
    work = [WorkItem(i, f"s{i}", out / f"s{i}.pkl") for i in range(4)]
    settings = ExecutionSettings(num_workers=2, progress=False, cpu_threads=3)
    summary = LocalEngine(rank=RankInfo()).run(SlowModels(marks, 1.5, variant), work, out, settings)
    assert summary["by_status"] == {"done": 4}
    loaded = float((marks / "loaded").read_text())
    first = min(float(p.read_text()) for p in marks.glob("decode-0-*"))
    if variant == "same":
        assert first < loaded - 0.5  # the first sample was decoding while the models loaded
        assert len(list(marks.glob("decode-0-*"))) == 1  # and its result was used, not decoded again
    else:
        assert len(list(marks.glob("decode-0-*"))) >= 1  # decoded again by workers of the loaded stage
    scale = 2.0 if variant == "other" else 1.0
    for i in range(4):
        record = load_record(out / f"s{i}.pkl")
        assert torch.equal(record["latent_feature"], torch.full((3,), i * scale))
    assert float((marks / "warmed").read_text()) <= max(float(p.read_text()) for p in marks.glob("decode-3-*")) + 5
