"""Supervised decoding: worker processes whose death or hang costs only the sample they held.

:class:`DecodePool` runs a stage's ``decode`` in worker processes and yields the :class:`Decoded` results in
input order, like the DataLoader it replaces, with three differences:

* a worker that dies (any signal, the OOM killer, an abnormal exit) is replaced; the sample it held is
  retried once in the fresh worker, then failed as ``decoder_crashed`` (the signal named);
* ``timeout`` is enforced from outside: a worker still on one sample after ``timeout`` seconds is killed
  and replaced and the sample failed as ``decode_timeout``, which also stops hangs inside C code (an
  FFmpeg deadlock) that an in-process alarm cannot interrupt;
* nothing is raised for a sample: every input position gets exactly one result.

Each worker holds one sample at a time (so a death costs one sample); at most ``prefetch`` results per
worker are decoded ahead of the consumer. With ``slot_bytes``, the big tensors of a result its stage marks
``transient`` are written into one of a small ring of shared slots made once by this process (page-locked
once with ``pin_memory``; ``pipeline/handoff.py``): the consumer reads them in place and gives the slot back
with ``release``. Other tensors travel through shared memory, by file name (``file_system`` strategy, set in
the workers only), so a result already sent stays readable when its worker is killed or stopped afterwards;
the supervisor thread copies those to page-locked memory (``pin_memory``, for the GPU) or maps their pages in
(CPU), off the encode loop. Workers are forked, as the DataLoader's were (``START_METHOD``).

A shared tensor's memory goes when its last holder lets go of it; a process killed while holding one never
does, and the segment stays in ``/dev/shm`` until the main process exits. So workers are stopped, not killed,
when a run ends: the supervisor thread, which forked the replacements (and the kernel kills those when that
thread ends: ``_die_with_parent``), asks every worker to exit and waits before it ends itself; and the results
still on their way when a run is closed early are read and dropped (the sender took a reference for the
reader). Only a worker that will not stop (a hang, past ``STOP_GRACE``) is killed.

pebble's ``ProcessPool`` has the same death/timeout model (a timed-out task kills its worker,
``ProcessExpired`` for a dead one) but would add a runtime dependency and still need the ordering, the
prefetch window, the retry in a fresh worker and the pinning written around it; and with torch's default
file-descriptor sharing, unpickling a result needs its sender running (a stopped worker would block it).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from multiprocessing.connection import wait

import torch
import torch.multiprocessing

from revise_prep.errors import DECODE_ERROR, DECODE_TIMEOUT, DECODER_CRASHED, SampleError
from revise_prep.pipeline.engines.local.handoff import SlotRing, place, slots_supported
from revise_prep.pipeline.stage import Decoded, map_tensors

log = logging.getLogger(__name__)

#: How workers start: "fork" is what torch's DataLoader used here (Linux, Python 3.11), costs no start-up
#: import and needs nothing picklable; the children only decode (no CUDA, no locks of the parent's threads).
START_METHOD = "fork"

Decode = Callable[[object], object]

#: Seconds a worker still decoding when its run stops gets to finish and hand over (then it is killed); an idle
#: worker only has to exit, and gets ``IDLE_GRACE`` on a loaded machine before it is killed.
STOP_GRACE = 2.0
IDLE_GRACE = 10.0


@dataclass
class PoolStats:
    """What the supervisor had to do during a run (summed into ``summary.json``)."""

    worker_crashes: int = 0  # workers that died (a signal or an abnormal exit)
    worker_restarts: int = 0  # replacement workers started
    decode_timeouts: int = 0  # workers killed because one sample took longer than the timeout
    retried: int = 0  # samples retried in a fresh worker after their worker died

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def decode_one(decode: Decode, item, timeout: float | None = None):
    """``decode(item)``; anything it raises becomes the sample's failure (one bad video never stops the run)."""
    try:
        with _deadline(timeout, item):
            return decode(item)
    except SampleError as err:
        return Decoded(item, error=err)
    except Exception as err:  # noqa: BLE001
        return Decoded(item, error=SampleError(DECODE_ERROR, f"{type(err).__name__}: {err}"))


@contextlib.contextmanager
def _deadline(seconds: float | None, item):
    """Inline decoding only: SIGALRM interrupts a decoder that hangs between Python bytecodes (not in C code)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise SampleError(DECODE_TIMEOUT, f"{_label(item)}: decoding took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    outer, interval = signal.setitimer(signal.ITIMER_REAL, seconds)  # a caller's own timer (a test's timeout)...
    start = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # ... runs on afterwards for what it had left (at once if that ran out meanwhile)
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 1e-3), interval)


def _label(item) -> str:
    return item.name or f"sample #{item.index}"


def exit_description(exitcode: int | None) -> str:
    """'was killed by SIGKILL' / 'exited with status 1' for a worker's exit code."""
    if exitcode is None:
        return "stopped responding"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the main process dies (even by SIGKILL); strictly, when the
    thread that forked it ends, which for a replacement is the supervisor thread (it stops its workers first)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _worker_main(decode: Decode, conn) -> None:
    """One worker: receive (position, item), decode, send (position, Decoded); exit on None or a closed pipe."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle
    torch.set_num_threads(1)  # workers decode; the main process owns the cores for encoding
    torch.multiprocessing.set_sharing_strategy("file_system")  # results readable after this process is gone
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        pos, item, slot = msg
        result = decode_one(decode, item)
        if slot is not None and result.error is None and getattr(result, "transient", False):
            result.data, placed = place(result.data, slot)
            if placed:
                result.extra["slot"] = slot.index
        try:
            conn.send((pos, result))
        except (EOFError, OSError):
            return
        except Exception as err:  # noqa: BLE001 - e.g. a result that cannot be pickled
            conn.send((pos, decode_one(_raiser(SampleError(DECODE_ERROR, f"cannot hand over the decoded "
                                                                         f"sample: {err}")), item)))
        # drop our reference to the shared memory now: were this process killed while holding it, the
        # segment would stay allocated (until the run ends) after the main process is done with it
        del msg, item, result


def _raiser(err: Exception) -> Decode:
    def raise_(item):
        raise err
    return raise_


def _prefault(decoded):
    """Map every page of the shared-memory frames here, off the encode loop (what pinning does on a GPU box):
    a received tensor is only mapped lazily, and its first read would page-fault in the encoder."""
    map_tensors(decoded.data, _touch)
    return decoded


def _pin_unplaced(data):
    """Pin the tensors that stayed out of the slot (the small ones); the slot's views are page-locked already."""
    return map_tensors(data, lambda t: t if t.is_pinned() else t.pin_memory())


def _touch(t: torch.Tensor) -> torch.Tensor:
    if t.is_shared() and t.numel():
        pages = torch.empty(0, dtype=torch.uint8).set_(t.untyped_storage())
        pages[::4096].sum()  # one byte a page (torch releases the GIL meanwhile)
    return t


class _Worker:
    def __init__(self, ctx, decode: Decode, first: int | None = None) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(decode, child), daemon=True, name="revise-prep-decode")
        self.proc.start()
        child.close()
        self.task: tuple[int, float] | None = None  # (position, monotonic start)
        self.first = first  # a position to retry here before anything else


class DecodePool:
    """``decode`` over items in ``num_workers`` supervised processes; see the module docstring."""

    def __init__(self, decode: Decode, num_workers: int, *, timeout: float | None = None, pin_memory: bool = False,
                 prefetch: int = 2, start_method: str = START_METHOD, slot_bytes: int = 0) -> None:
        if num_workers < 1:
            raise ValueError("DecodePool needs at least one worker (decode inline otherwise)")
        self.decode = decode
        self.num_workers = num_workers
        self.timeout = timeout if timeout and timeout > 0 else None
        self.pin_memory = pin_memory
        self.window = max(1, prefetch) * num_workers
        self.ctx = multiprocessing.get_context(start_method)
        self.stats = PoolStats()
        # a slot per worker and two more (one being encoded, one ready); forked workers inherit them
        self.slot_bytes = slot_bytes if slot_bytes > 0 and start_method == "fork" and slots_supported() else 0
        self.slots = min(self.window, num_workers + 2)
        self._run: _Run | None = None

    def pin(self, on: bool) -> None:
        """From now on, page-lock for the GPU (the slots at once; results outside them as they come): for a pool
        started before the models loaded."""
        if on and not self.pin_memory:
            self.pin_memory = True
            run = self._run
            if run is not None and run.ring is not None:
                run.ring.register()

    def release(self, decoded, event=None) -> None:
        """The consumer is done with ``decoded``'s slot (its copy to the GPU ends with ``event``, when given)."""
        index = decoded.extra.pop("slot", None) if getattr(decoded, "extra", None) else None
        run = self._run
        if index is not None and run is not None and run.ring is not None:
            run.ring.release(index, event)
            run._wake()

    def map(self, items: list) -> "Results":
        """One Decoded per item, in input order. The workers start now (not at the first ``next``), so the
        caller can do other work (warm up its models) while the first items decode; ``close()`` stops them."""
        run = self._run = _Run(self, items)
        run.start()
        return Results(run, len(items))


class Results(Iterator):
    """The results of ``DecodePool.map``: an iterator whose ``close()`` (or end, or garbage collection) stops
    the workers."""

    def __init__(self, run: "_Run", count: int) -> None:
        self._run, self._left = run, count

    def __next__(self):
        if self._left <= 0 or self._run is None:
            self.close()
            raise StopIteration
        try:
            result = self._run.get()
        except BaseException:
            self.close()
            raise
        self._left -= 1
        return result

    def close(self) -> None:
        run, self._run = self._run, None
        if run is not None:
            run.stop()

    def __del__(self) -> None:
        self.close()


def decode_supervised(decode: Decode, item, timeout: float | None = None) -> tuple[object, PoolStats]:
    """``decode(item)`` in one supervised worker process, for a caller that holds one sample at a time (a Ray
    decode task): its death or hang costs only this sample, with the pool's rules and reasons."""
    pool = DecodePool(decode, 1, timeout=timeout)
    (decoded,) = pool.map([item])
    return decoded, pool.stats


class _Run:
    """One pass over a list of items: the supervisor thread and its state."""

    def __init__(self, pool: DecodePool, items: list) -> None:
        self.pool = pool
        self.items = items
        self.pending = collections.deque(range(len(items)))
        self.attempts: dict[int, int] = collections.Counter()
        self.done: dict[int, object] = {}
        self.next_emit = 0
        self.consumed = 0
        self.out: queue.Queue = queue.Queue()
        self.stopping = threading.Event()
        self.wake_r, self.wake_w = os.pipe()
        for fd in (self.wake_r, self.wake_w):
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        self.workers: list[_Worker] = []
        self.thread = threading.Thread(target=self._supervise, name="decode-supervisor", daemon=True)
        self.ring: SlotRing | None = None
        self.slot_of: dict[int, int] = {}  # position -> its slot, from dispatch until it is emitted
        self.starved = False  # the next position waits for a slot
        self.last = None  # the result handed out last: its slot is released when the next one is taken

    # -- consumer side -------------------------------------------------------------------------------------

    def start(self) -> None:
        n = min(self.pool.num_workers, len(self.items))
        if self.pool.slot_bytes and self.items:
            self.ring = SlotRing(min(self.pool.slots, len(self.items)), self.pool.slot_bytes,
                                 register=self.pool.pin_memory)  # before the workers fork: they inherit it
        self.workers = [_Worker(self.pool.ctx, self.pool.decode) for _ in range(n)]
        self.thread.start()

    def get(self):
        while True:
            try:
                result = self.out.get(timeout=1.0)
                break
            except queue.Empty:
                if not self.thread.is_alive():
                    raise RuntimeError("the decode supervisor stopped unexpectedly") from None
        if isinstance(result, BaseException):
            raise result
        if self.last is not None:  # its slot, unless the consumer released it already (with its copy's event)
            self.pool.release(self.last)
        self.last = result
        self.consumed += 1
        self._wake()
        return result

    def stop(self) -> None:
        self.stopping.set()
        self._wake()
        self.thread.join()  # it stops the workers before it ends
        self.last = None  # no result of this run is held here after it (their shared memory goes with them)
        self.done.clear()
        if self.pool._run is self:
            self.pool._run = None
        os.close(self.wake_r)
        os.close(self.wake_w)
        if self.ring is not None:
            self.ring.close()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self.wake_w, b"x")

    # -- supervisor thread ---------------------------------------------------------------------------------

    def _supervise(self) -> None:
        try:
            while not self.stopping.is_set() and self.next_emit < len(self.items):
                self._dispatch()
                self._wait()
                self._check_deadlines()
                self._emit()
        except BaseException as err:  # noqa: BLE001 - hand it to the consumer, who raises it
            log.exception("decode supervisor failed")
            self.out.put(err)
        finally:
            self._stop_workers()

    def _stop_workers(self) -> None:
        """Ask every worker to exit, read and drop what they still send, kill those that will not go: here, in
        the thread whose end kills the workers it forked (a killed worker leaves the last result it sent in
        ``/dev/shm``)."""
        for w in self.workers:
            with contextlib.suppress(OSError, ValueError):
                w.conn.send(None)
        start = time.monotonic()
        for w in self.workers:
            try:
                deadline = start + (STOP_GRACE if w.task is not None else IDLE_GRACE)
                self._drain(w, deadline)
                w.proc.join(max(0.0, deadline - time.monotonic()))
                if w.proc.is_alive():
                    self._kill(w)
                    self._drain_dead(w)
            except Exception:  # noqa: BLE001 - stop the others all the same
                log.exception("could not stop decode worker (pid %s)", w.proc.pid)
                with contextlib.suppress(Exception):
                    self._kill(w)
            finally:
                w.conn.close()

    @staticmethod
    def _drain(w: _Worker, deadline: float) -> None:
        """Receive and drop what ``w`` sends until it closes its end or ``deadline``: a result left unread keeps
        its shared memory (its sender took a reference for the reader) until this process exits."""
        with contextlib.suppress(Exception):  # EOF: the worker has gone (killed mid-message too)
            while w.conn.poll(max(0.0, deadline - time.monotonic())):
                w.conn.recv()

    def _drain_dead(self, w: _Worker) -> None:
        """After a kill: a result the worker finished sending just before (never from one that would not die,
        which could block the read on half a message)."""
        if not w.proc.is_alive():
            self._drain(w, time.monotonic())

    def _dispatch(self) -> None:
        for w in list(self.workers):
            if w.task is not None or not w.proc.is_alive():
                continue
            if w.first is not None:
                pos, w.first = w.first, None
            elif self.pending and self.pending[0] < self.consumed + self.pool.window and self._slot_for(self.pending[0]):
                pos = self.pending.popleft()
            else:
                continue
            slot = self.ring.spec(self.slot_of[pos]) if pos in self.slot_of else None
            try:
                w.conn.send((pos, self.items[pos], slot))
            except (OSError, ValueError):  # died before taking it: the sample was never started there
                self.pending.appendleft(pos)
                self._on_death(w)
                continue
            w.task = (pos, time.monotonic())

    def _slot_for(self, pos: int) -> bool:
        """Give ``pos`` a slot (kept through retries until it is emitted); False while none is free."""
        self.starved = False
        if self.ring is None or pos in self.slot_of:
            return True
        index = self.ring.acquire()
        if index is None:
            self.starved = True
            return False
        self.slot_of[pos] = index
        return True

    def _wait(self) -> None:
        timeout = 0.005 if self.starved else 1.0  # a slot comes free when a copy to the GPU ends: look soon
        if self.pool.timeout is not None:
            starts = [w.task[1] for w in self.workers if w.task is not None]
            if starts:
                timeout = min(timeout, max(0.0, min(starts) + self.pool.timeout - time.monotonic()) + 0.01)
        handles = {self.wake_r: None}
        for w in self.workers:
            handles[w.conn] = w
            handles[w.proc.sentinel] = w
        ready = wait(list(handles), timeout)
        if self.wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self.wake_r, 4096)
        for w in {handles[r] for r in ready if handles.get(r) is not None}:
            self._collect(w)

    def _collect(self, w: _Worker) -> None:
        """Take every result the worker has sent; handle its death if it is gone."""
        lost = False
        try:
            while w.conn.poll():
                pos, decoded = w.conn.recv()
                self.done[pos] = decoded
                w.task = None
        except Exception:  # noqa: BLE001 - EOF (died) or a result that cannot be read back: the worker is lost
            self._kill(w)
            lost = True
        if lost or not w.proc.is_alive():
            self._on_death(w)

    def _check_deadlines(self) -> None:
        if self.pool.timeout is None:
            return
        now = time.monotonic()
        for w in list(self.workers):
            if w.task is None or now - w.task[1] <= self.pool.timeout:
                continue
            self._collect(w)  # it may have answered just now
            if w not in self.workers or w.task is None:
                continue
            pos = w.task[0]
            w.task = None
            self._kill(w)
            self.pool.stats.decode_timeouts += 1
            item = self.items[pos]
            err = SampleError(DECODE_TIMEOUT, f"{_label(item)}: decoding took longer than {self.pool.timeout:g} s; "
                                              "its worker process was killed and replaced")
            self.done[pos] = decode_one(_raiser(err), item)
            log.warning("%s", err.message)
            self._remove(w)
            self._replace()

    def _kill(self, w: _Worker) -> None:
        if w.proc.is_alive():
            w.proc.kill()
        w.proc.join(10)  # a process stuck in the kernel (a dead network mount) may not go: it is abandoned

    def _remove(self, w: _Worker) -> None:
        self.workers.remove(w)
        self._drain_dead(w)
        w.conn.close()

    def _replace(self, first: int | None = None) -> None:
        if first is None and not self.pending:
            return
        self.workers.append(_Worker(self.pool.ctx, self.pool.decode, first))
        self.pool.stats.worker_restarts += 1

    def _on_death(self, w: _Worker) -> None:
        if w not in self.workers:
            return
        w.proc.join(10)
        how = exit_description(w.proc.exitcode)
        self.pool.stats.worker_crashes += 1
        self._remove(w)
        lost = [p for p in (w.task[0] if w.task else None, w.first) if p is not None]
        if not lost:
            log.warning("a decode worker (pid %s) %s while idle; starting another", w.proc.pid, how)
            self._replace()
            return
        for pos in lost:
            item = self.items[pos]
            self.attempts[pos] += 1
            if self.attempts[pos] >= 2:
                err = SampleError(DECODER_CRASHED, f"{_label(item)}: the decoder process {how} while decoding "
                                                   "this sample, again on the retry in a fresh worker")
                self.done[pos] = decode_one(_raiser(err), item)
                log.warning("%s", err.message)
                self._replace()
            else:
                self.pool.stats.retried += 1
                log.warning("%s: the decoder process (pid %s) %s; retrying the sample once in a fresh worker",
                            _label(item), w.proc.pid, how)
                self._replace(first=pos)

    def _emit(self) -> None:
        while self.next_emit in self.done:
            decoded = self.done.pop(self.next_emit)
            index = self.slot_of.pop(self.next_emit, None)
            placed = index is not None and decoded.extra.get("slot") == index
            if placed:
                decoded.data = self.ring.restore(index, decoded.data)  # views of the slot: no copy, no pinning
            elif index is not None:
                self.ring.release(index)  # nothing was placed (a failure, or data that is not transient)
            if getattr(decoded, "error", None) is None:
                if not placed:
                    decoded = decoded.pin_memory() if self.pool.pin_memory else _prefault(decoded)
                elif self.pool.pin_memory:
                    decoded.data = _pin_unplaced(decoded.data)
            self.out.put(decoded)
            self.next_emit += 1
