"""Batch the text encoder across samples: encode upcoming prompts together, each distinct prompt once.

The prompts of the samples still to do are known before the run starts, in the order the DataLoader will
deliver them (the local engine), or as their samples reach the encoder (a Ray actor adds the prompts of the
samples waiting in it, :meth:`PromptBank.add`). When a sample needs an embedding that is not ready, the bank
encodes it together with the next ``batch_size - 1`` distinct upcoming prompts in one call, and hands each out
when its sample arrives.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterable

import torch


class PromptBank:
    def __init__(self, encoder, upcoming: Iterable[str], batch_size: int = 8, *, on_device: bool = False) -> None:
        self.encoder = encoder
        self.batch_size = max(1, batch_size)
        self.options = {"to_cpu": False} if on_device else {}  # embeddings stay on the encoder's device
        self.queue = deque(upcoming)
        self.remaining = Counter(self.queue)  # how many samples still need each prompt
        self.ready: dict[str, torch.Tensor] = {}
        self._lock = threading.Lock()  # add() may come from another thread than get()

    def add(self, upcoming: Iterable[str]) -> None:
        """More upcoming prompts, after those already queued."""
        with self._lock:
            for prompt in upcoming:
                self.queue.append(prompt)
                self.remaining[prompt] += 1

    def get(self, prompt: str) -> torch.Tensor:
        """The embedding of ``prompt`` (encoding it and the next upcoming prompts if needed)."""
        if prompt not in self.ready:
            self._encode_with(prompt)
        with self._lock:
            emb = self.ready[prompt]
            self.remaining[prompt] -= 1
            if self.remaining[prompt] <= 0:  # no later sample needs it: free it
                self.ready.pop(prompt, None)
        return emb

    def prefetch(self) -> None:
        """Encode the batch the first upcoming sample will need now (e.g. while its videos decode); the same
        batch ``get`` would make, so the embeddings are the same."""
        with self._lock:
            while self.queue and self.queue[0] in self.ready:
                self.queue.popleft()
            first = self.queue.popleft() if self.queue else None
        if first is not None:
            self._encode_with(first)

    def _encode_with(self, prompt: str) -> None:
        """Encode ``prompt`` together with the next ``batch_size - 1`` distinct upcoming prompts."""
        batch = [prompt]
        with self._lock:
            while self.queue and len(batch) < self.batch_size:
                nxt = self.queue.popleft()
                if nxt not in self.ready and nxt not in batch:
                    batch.append(nxt)
        embeddings = self.encoder.encode(batch, **self.options)
        with self._lock:
            self.ready.update(zip(batch, embeddings))
