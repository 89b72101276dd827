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

    def __init__(self, shape: tuple[int, ...], die_on: int | None = None, marks: str | None = None) -> None:
        self.shape, self.die_on, self.marks = shape, die_on, marks

    def __call__(self, item: WorkItem) -> Decoded:
        started = time.monotonic()
        if item.index == self.die_on:
            mark = Path(self.marks) / "died"
            if not mark.exists():
                mark.write_text(repr(time.monotonic()))
                os.kill(os.getpid(), signal.SIGKILL)
        clips = {role: torch.empty(self.shape, dtype=torch.uint8).fill_(item.index % 251) for role in ("src", "tgt")}
        return Decoded(item, clips, extra={"started": started, "decoded": time.monotonic()})


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
    shape = (9, 3, 64, 112) if args.quick else (81, 3, 480, 832)
    repeats, n, encode_s = (1, 3, 0.05) if args.quick else (args.repeats, args.items, args.encode_s)
    if args.pin and not torch.cuda.is_available():
        print("--pin needs CUDA", file=sys.stderr)
        return 2
    rows: dict[str, list[dict[str, float]]] = {"DataLoader": [], "DecodePool": []}
    for _ in range(repeats):
        for kind in rows:
            rows[kind].append(measure(kind, shape, n, encode_s, args.pin))
    rec = [recovery(shape, n) for _ in range(repeats)]
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
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
