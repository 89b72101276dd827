"""Benchmark: handing decoded clips from a decode worker to the encoder: torch's DataLoader (before) vs the
supervised DecodePool (after), side by side, plus how long recovery from a worker death takes.

Each item is one clip pair of uint8 frames, 2 x 81x3x480x832 (194 MB), made in the worker by filling fresh
tensors (the decoding itself is not measured: it is the same in both). Per item:

* latency: from the moment the worker's decode returned to the moment the main process holds the tensors
  and has touched every page once (what the encoder's copy would do), while the main process waits;
* main-thread time: how long the encode loop is held up receiving an item that is already decoded
  (the main process "encodes" for ``--encode-s`` seconds between items, so the worker is ahead), in wall
  time and in the main thread's CPU time (unaffected by other load: receiving, mapping, page faults);
* recovery: the worker SIGKILLs itself on one item; time from its death until the fresh worker starts the
  retry, and until the retried item reaches the main process.

With CUDA, ``--pin`` pins the frames off the encode loop (the DataLoader's pinning thread / the pool's
supervisor thread). Configurations alternate; medians are reported.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from revise_prep.pipeline.stage import Decoded, WorkItem  # noqa: E402
from revise_prep.pipeline.engines.local.workers import DecodePool  # noqa: E402


class FakeDecode:
    """Makes a clip pair of fresh tensors (as a decoder's output); ``die_on``: SIGKILL itself on that item once."""

    def __init__(self, shape: tuple[int, ...], die_on: int | None = None, marks: str | None = None,
                 transient: bool = False) -> None:
        self.shape, self.die_on, self.marks, self.transient = shape, die_on, marks, transient

    def __call__(self, item: WorkItem) -> Decoded:
        started = time.monotonic()
        if item.index == self.die_on:
            mark = Path(self.marks) / "died"
            if not mark.exists():
                mark.write_text(repr(time.monotonic()))
                os.kill(os.getpid(), signal.SIGKILL)
        clips = {role: torch.empty(self.shape, dtype=torch.uint8).fill_(item.index % 251) for role in ("src", "tgt")}
        return Decoded(item, clips, extra={"started": started, "decoded": time.monotonic()}, transient=self.transient)


class _Dataset(Dataset):
    def __init__(self, decode, items):
        self.decode, self.items = decode, items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.decode(self.items[i])


def _identity(x):
    return x


def _touch(decoded: Decoded) -> int:
    """Read one byte of every page (what copying to the GPU or the VAE's first read would fault in)."""
    return sum(int(t.view(-1)[::4096].sum()) for t in decoded.data.values())


def _source(kind: str, decode, items, pin: bool):
    if kind == "DataLoader":
        return iter(DataLoader(_Dataset(decode, items), batch_size=None, shuffle=False, num_workers=1,
                               collate_fn=_identity, prefetch_factor=2, pin_memory=pin))
    return DecodePool(decode, 1, pin_memory=pin).map(items)


def measure(kind: str, shape, n: int, encode_s: float, pin: bool) -> dict[str, float]:
    items = [WorkItem(i, f"s{i}", None) for i in range(n)]
    decode = FakeDecode(shape)
    latencies, waits, cpu = [], [], []
    it = _source(kind, decode, items, pin)
    first = next(it)  # start-up (and the first item) not counted
    _touch(first)
    time.sleep(encode_s)  # the encoder is busy; the worker gets ahead
    for _ in range(n - 1):
        t0, c0 = time.monotonic(), time.thread_time()
        d = next(it)
        _touch(d)
        waits.append(time.monotonic() - t0)
        cpu.append(time.thread_time() - c0)
        time.sleep(encode_s)
    del it
    it = _source(kind, decode, items, pin)  # again, with the main process waiting: end-to-end latency
    for _ in range(n):
        d = next(it)
        _touch(d)
        latencies.append(time.monotonic() - d.extra["decoded"])
    del it
    return {"latency": statistics.median(latencies[1:]), "main": statistics.median(waits),
            "cpu": statistics.median(cpu)}


def host_side(mode: str, shape, n: int, encode_s: float, pin: bool) -> dict[str, float]:
    """Main-process time per sample to take a decoded pair and hand it to the encoder, the worker ahead.

    before (main f05096f): fresh shared memory per result, its pages mapped (or pinned) by the supervisor
    thread, then ``torch.stack`` of the two clips on the CPU (what step 1 did; with a GPU the VAE pinned the
    stacked copy again); after: the pair in a reused slot, each clip read where it is (with a GPU: one
    non-blocking copy per clip). Both then read every page once, as the encoder's first read does.
    """
    items = [WorkItem(i, f"s{i}", None) for i in range(n)]
    slots = mode == "after"
    pool = DecodePool(FakeDecode(shape, transient=slots), 1, pin_memory=pin,
                      slot_bytes=2 * torch.Size(shape).numel() if slots else 0)
    it = pool.map(items)
    cpu_main, cpu_all, wall = [], [], []
    first = next(it)
    pool.release(first)
    time.sleep(encode_s)
    for _ in range(n - 1):
        p0 = time.process_time()  # all threads of this process, through the encoder's turn (the supervisor too)
        d = next(it)
        t0, c0 = time.monotonic(), time.thread_time()
        clips = list(d.data.values())
        videos = [t.permute(1, 0, 2, 3) for t in clips]
        if mode == "before":
            batch = torch.stack(videos)
            if pin:
                batch = batch.pin_memory()
            _touch_all([batch])
        else:
            if pin:
                moved = [v.to("cuda", non_blocking=True) for v in videos]
                torch.cuda.synchronize()
                del moved
            _touch_all(clips)
        wall.append(time.monotonic() - t0)
        cpu_main.append(time.thread_time() - c0)
        pool.release(d)
        del d, clips, videos
        time.sleep(encode_s)  # the encoder is busy; meanwhile the supervisor maps (or pins) the next result
        cpu_all.append(time.process_time() - p0)
    it.close()
    return {"wall": statistics.median(wall), "main": statistics.median(cpu_main), "all": statistics.median(cpu_all)}


def _touch_all(tensors) -> int:
    """Read one byte of every page of contiguous tensors."""
    return sum(int(t.reshape(-1)[::4096].sum()) for t in tensors)


def recovery(shape, n: int) -> dict[str, float]:
    items = [WorkItem(i, f"s{i}", None) for i in range(n)]
    with tempfile.TemporaryDirectory() as marks:
        pool = DecodePool(FakeDecode(shape, die_on=n // 2, marks=marks), 1)
        for d in pool.map(items):
            if d.item.index == n // 2:
                received, retried = time.monotonic(), d
        died = float((Path(marks) / "died").read_text())
        assert pool.stats.worker_crashes == 1 and retried.error is None
    return {"restart": retried.extra["started"] - died, "received": received - died,
            "decode": retried.extra["decoded"] - retried.extra["started"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny clips, few items (CI smoke run)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--items", type=int, default=6)
    ap.add_argument("--encode-s", type=float, default=2.0,
                    help="simulated encode time per item (long enough for the worker to be ahead)")
    ap.add_argument("--pin", action="store_true", help="pin memory (needs CUDA)")
    ap.add_argument("--out", help="also write the table here")
    args = ap.parse_args()
    shape = (17, 3, 128, 224) if args.quick else (81, 3, 480, 832)  # quick: just over a slot tensor (1 MiB)
    repeats, n, encode_s = (1, 3, 0.05) if args.quick else (args.repeats, args.items, args.encode_s)
    if args.pin and not torch.cuda.is_available():
        print("--pin needs CUDA", file=sys.stderr)
        return 2
    rows: dict[str, list[dict[str, float]]] = {"DataLoader": [], "DecodePool": []}
    for _ in range(repeats):
        for kind in rows:
            rows[kind].append(measure(kind, shape, n, encode_s, args.pin))
    rec = [recovery(shape, n) for _ in range(repeats)]
    host: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(repeats):
        for mode in host:  # interleaved
            host[mode].append(host_side(mode, shape, n, encode_s, args.pin))
    mb = 2 * torch.Size(shape).numel() / 1e6
    lines = [f"clip pair {shape[0]}x{shape[2]}x{shape[3]} uint8 x2 ({mb:.0f} MB), pin_memory={args.pin}, "
             f"medians of {repeats} runs x {n} items", "",
             "| hand-off | latency ms (worker done -> main has every page) | main-thread ms per ready item "
             "| main-thread CPU ms per ready item |",
             "|---|---:|---:|---:|"]
    for kind, results in rows.items():
        label = "DataLoader (before)" if kind == "DataLoader" else "DecodePool (after)"
        lines.append(f"| {label} | {1e3 * statistics.median(r['latency'] for r in results):.1f} | "
                     f"{1e3 * statistics.median(r['main'] for r in results):.1f} | "
                     f"{1e3 * statistics.median(r['cpu'] for r in results):.1f} |")
    lines.append(f"| worker death: death -> retry starts in a fresh worker | "
                 f"{1e3 * statistics.median(r['restart'] for r in rec):.1f} | | |")
    lines.append(f"| worker death: death -> retried sample in the main process (its decode took "
                 f"{1e3 * statistics.median(r['decode'] for r in rec):.0f} ms) | "
                 f"{1e3 * statistics.median(r['received'] for r in rec):.1f} | | |")
    lines += ["", f"Host-side time per sample, main process (clip pair {mb:.0f} MB, pin_memory={args.pin}; medians of "
                  f"{repeats} runs x {n - 1} items; CPU ms of the main thread / of all its threads):", "",
              "| hand-off | wall ms | main-thread CPU ms | main-process CPU ms |", "|---|---:|---:|---:|"]
    for mode, label in (("before", "before: fresh shared memory, mapped/pinned per sample, torch.stack on the CPU"),
                        ("after", "after: reused slots, each clip read in place (GPU: one non-blocking copy each)")):
        r = host[mode]
        lines.append(f"| {label} | {1e3 * statistics.median(x['wall'] for x in r):.1f} | "
                     f"{1e3 * statistics.median(x['main'] for x in r):.1f} | "
                     f"{1e3 * statistics.median(x['all'] for x in r):.1f} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
