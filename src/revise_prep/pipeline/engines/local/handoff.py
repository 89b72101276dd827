"""The local engine's hand-off: decoded clips from the workers to the encoder's device, records back to the writer.

Clips: the main process makes a small ring of shared-memory slots once (``SlotRing``; with a GPU they are
page-locked once, ``cudaHostRegister``); a worker copies the big tensors of a decoded sample into the slot it
was given (instead of into fresh shared memory, which it would otherwise do to send them) and sends where
they are (``SlotRef``). The main process reads them in place: there is no copy of a clip on the CPU after the
worker's, no pinning per sample, and with a GPU each clip goes to it with one non-blocking copy on a side
stream (``DeviceHandoff.to_device``). A slot goes back to the ring when its copy has finished (GPU) or its
sample was encoded (CPU). Only data a stage marks ``transient`` (read by ``encode`` and never kept in a
record) is placed in slots.

Records: tensors a stage left on the GPU (``keep_on_device``) come back through reused page-locked buffers of
their exact size (``HostRing``) with non-blocking copies; the record writer's thread waits for them
(``Ticket``), not the encode loop, which launches the next sample meanwhile.
"""

from __future__ import annotations

import collections
import logging
import mmap
import os
import threading
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, Callable

import torch

log = logging.getLogger(__name__)

#: Tensors smaller than this travel the ordinary way (pickled through shared memory); slots hold the big ones.
MIN_SLOT_TENSOR = 1 << 20
_ALIGN = 4096


def map_leaves(obj: Any, kinds: tuple[type, ...], fn: Callable[[Any], Any]) -> Any:
    """``fn`` applied to every object of ``kinds`` inside dicts, lists, tuples and dataclasses (a Clip)."""
    if isinstance(obj, kinds):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: map_leaves(v, kinds, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(map_leaves(v, kinds, fn) for v in obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        changed = {f.name: map_leaves(getattr(obj, f.name), kinds, fn) for f in fields(obj) if f.init}
        changed = {k: v for k, v in changed.items() if v is not getattr(obj, k)}
        return replace(obj, **changed) if changed else obj
    return obj


@dataclass(frozen=True)
class SlotRef:
    """Where a worker put a tensor: ``offset`` bytes into its slot, contiguous, ``dtype`` and ``shape``."""

    offset: int
    dtype: torch.dtype
    shape: tuple[int, ...]


@dataclass(frozen=True)
class SlotSpec:
    """What a worker needs to write into a slot: its index, the inherited file descriptor and its size."""

    index: int
    fd: int
    nbytes: int


def slots_supported() -> bool:
    """Slots are anonymous shared memory (``memfd_create``) inherited by forked workers: Linux."""
    return hasattr(os, "memfd_create")


class SlotRing:
    """``count`` shared-memory slots of ``nbytes`` each, made before the workers fork; optionally page-locked."""

    def __init__(self, count: int, nbytes: int, *, register: bool = False) -> None:
        self.nbytes = -(-nbytes // _ALIGN) * _ALIGN
        self.fds: list[int] = []
        self._maps: list[mmap.mmap] = []
        self.tensors: list[torch.Tensor] = []
        self.registered = False
        for i in range(count):
            fd = os.memfd_create(f"revise-prep-slot-{i}", os.MFD_CLOEXEC)  # forked workers inherit it, exec'd not
            os.ftruncate(fd, self.nbytes)
            m = mmap.mmap(fd, self.nbytes)
            self.fds.append(fd)
            self._maps.append(m)
            self.tensors.append(torch.frombuffer(m, dtype=torch.uint8))
        if register:
            self.register()
        self._free = collections.deque(range(count))
        self._busy: dict[int, Any] = {}  # slot -> the event its last copy must reach before reuse
        self._lock = threading.Lock()

    def register(self) -> None:
        """Page-lock the slots for the GPU (once; workers forked before keep writing through their own maps)."""
        if not self.registered:
            self.registered = _register(self.tensors)

    @property
    def count(self) -> int:
        return len(self.tensors)

    def spec(self, index: int) -> SlotSpec:
        return SlotSpec(index, self.fds[index], self.nbytes)

    def acquire(self) -> int | None:
        """A free slot (one whose last copy has finished), or None."""
        with self._lock:
            for index, event in list(self._busy.items()):
                if event is None or event.query():
                    del self._busy[index]
                    self._free.append(index)
            return self._free.popleft() if self._free else None

    def release(self, index: int, event: Any = None) -> None:
        """The slot may be reused (once ``event`` has completed, when given)."""
        with self._lock:
            if event is None:
                self._free.append(index)
            else:
                self._busy[index] = event

    def restore(self, index: int, data: Any) -> Any:
        """``data`` with every ``SlotRef`` replaced by the tensor it names (a view of slot ``index``)."""
        slot = self.tensors[index]

        def view(ref: SlotRef) -> torch.Tensor:
            size = torch.Size(ref.shape).numel() * torch.empty((), dtype=ref.dtype).element_size()
            return slot[ref.offset:ref.offset + size].view(ref.dtype).view(ref.shape)

        return map_leaves(data, (SlotRef,), view)

    def close(self) -> None:
        if self.registered:
            _unregister(self.tensors)
            self.registered = False
        self.tensors = []
        for m in self._maps:
            try:
                m.close()
            except BufferError:  # a view still alive somewhere: the mapping goes with the process
                pass
        for fd in self.fds:
            os.close(fd)
        self._maps, self.fds = [], []


def _register(tensors: list[torch.Tensor]) -> bool:
    """Page-lock the slots for the GPU once (``cudaHostRegister``); False (with a warning) if it fails."""
    try:
        cudart = torch.cuda.cudart()
        for t in tensors:
            err = cudart.cudaHostRegister(t.data_ptr(), t.numel(), 0)
            if int(getattr(err, "value", err)) != 0:
                raise RuntimeError(f"cudaHostRegister returned {err}")
        return True
    except Exception as err:  # noqa: BLE001 - unpinned slots still work, the copies are just not asynchronous
        log.warning("cannot page-lock the decode slots (%s); copies to the GPU will be synchronous", err)
        return False


def _unregister(tensors: list[torch.Tensor]) -> None:
    try:
        cudart = torch.cuda.cudart()
        for t in tensors:
            cudart.cudaHostUnregister(t.data_ptr())
    except Exception:  # noqa: BLE001 - the process is ending the run: nothing to recover
        pass


# ------------------------------------------------------------------------------------------------ worker side
_MAPPED: dict[int, tuple[mmap.mmap, torch.Tensor]] = {}


def _worker_slot(spec: SlotSpec) -> torch.Tensor:
    """The slot's memory in this worker (mapped once from the inherited descriptor)."""
    got = _MAPPED.get(spec.fd)
    if got is None or got[1].numel() != spec.nbytes:
        m = mmap.mmap(spec.fd, spec.nbytes)
        got = _MAPPED[spec.fd] = (m, torch.frombuffer(m, dtype=torch.uint8))
    return got[1]


def place(data: Any, spec: SlotSpec) -> tuple[Any, bool]:
    """In a worker: copy the big tensors of ``data`` into the slot; returns (data with ``SlotRef``s, placed any)."""
    slot = _worker_slot(spec)
    offset = 0
    placed = False

    def put(t: torch.Tensor):
        nonlocal offset, placed
        size = t.numel() * t.element_size()
        start = -(-offset // _ALIGN) * _ALIGN
        if size < MIN_SLOT_TENSOR or start + size > slot.numel() or t.device.type != "cpu":
            return t
        slot[start:start + size].view(t.dtype).view(t.shape).copy_(t)
        offset = start + size
        placed = True
        return SlotRef(start, t.dtype, tuple(t.shape))

    return map_leaves(data, (torch.Tensor,), put), placed


# ------------------------------------------------------------------------------------------------ device side
class Ticket:
    """The copies of one record to page-locked buffers: ``wait`` until they are there, ``release`` the buffers."""

    def __init__(self, event: Any, ring: "HostRing", buffers: list[torch.Tensor]) -> None:
        self._event, self._ring, self._buffers = event, ring, buffers

    def wait(self) -> None:
        if self._event is not None:
            self._event.synchronize()

    def release(self) -> None:
        buffers, self._buffers = self._buffers, []
        self._ring.give(buffers)


class HostRing:
    """Page-locked host buffers reused by shape and dtype (a record's tensors come back into them)."""

    def __init__(self, pin: bool = True) -> None:
        self.pin = pin
        self._free: dict[tuple, list[torch.Tensor]] = collections.defaultdict(list)
        self._lock = threading.Lock()
        self.allocated = 0

    def take(self, like: torch.Tensor) -> torch.Tensor:
        key = (tuple(like.shape), like.dtype)
        with self._lock:
            if self._free[key]:
                return self._free[key].pop()
            self.allocated += 1
        return torch.empty(like.shape, dtype=like.dtype, pin_memory=self.pin)

    def give(self, buffers: list[torch.Tensor]) -> None:
        with self._lock:
            for b in buffers:
                self._free[(tuple(b.shape), b.dtype)].append(b)


class DeviceHandoff:
    """Moves a decoded sample to the encoder's GPU and a record's GPU tensors back (see the module docstring)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.copy_stream = torch.cuda.Stream(device)
        self.host = HostRing(pin=True)

    def to_device(self, data: Any) -> tuple[Any, Any]:
        """``data`` with every CPU tensor copied to the device on the side stream; returns (data, event): the
        event marks the copies' end (the slot may be reused after it). The current stream waits for it."""
        main = torch.cuda.current_stream(self.device)
        moved: list[torch.Tensor] = []

        def copy(t: torch.Tensor) -> torch.Tensor:
            if t.device.type != "cpu":
                return t
            d = t.to(self.device, non_blocking=True)
            moved.append(d)
            return d

        with torch.cuda.stream(self.copy_stream):
            data = map_leaves(data, (torch.Tensor,), copy)
            event = torch.cuda.Event()
            event.record(self.copy_stream)
        main.wait_event(event)
        for d in moved:
            d.record_stream(main)  # allocated on the side stream, used on the main one
        return data, event

    def to_host(self, *records: Any) -> tuple[tuple, Ticket]:
        """``records`` with their GPU tensors copied (non-blocking, on the current stream) into exact-size
        page-locked buffers; a tensor shared by several records is copied once."""
        copied: dict[int, torch.Tensor] = {}
        buffers: list[torch.Tensor] = []

        def back(t: torch.Tensor) -> torch.Tensor:
            if t.device.type == "cpu":
                return t
            if id(t) not in copied:
                buf = self.host.take(t)
                buf.copy_(t, non_blocking=True)
                copied[id(t)] = buf
                buffers.append(buf)
            return copied[id(t)]

        out = tuple(map_leaves(r, (torch.Tensor,), back) for r in records)
        event = None
        if buffers:
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(self.device))
        return out, Ticket(event, self.host, buffers)
