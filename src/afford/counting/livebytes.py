"""Memory as traced: the bytes of the storages a trace creates, followed until PyTorch frees them (LiveBytes, the
live-memory peaks), and the storages autograd saves for backward (saved_activations), parameters excluded."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from afford.counting.tensors import storage_key, storage_of


class LiveBytes:
    """Bytes held by storages created while tracing, freed when PyTorch frees them; keeps the peak."""

    def __init__(self, known: set[int]) -> None:
        self.known = set(known)  # storages that existed before (parameters, buffers): never counted
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0
        self.scores: set[int] = set()  # live S x S attention scores (EagerBlock): a fused kernel never stores them
        self.score_current = 0
        self.lean_peak = 0  # the peak without them

    def add(self, t: torch.Tensor, score: bool = False) -> None:
        storage = storage_of(t)
        if storage is None:
            return
        key = int(storage._cdata)
        if key in self.known or key in self.live:
            return
        nbytes = int(storage.nbytes())
        self.live[key] = nbytes
        self.current += nbytes
        if score:
            self.scores.add(key)
            self.score_current += nbytes
        self.peak = max(self.peak, self.current)
        self.lean_peak = max(self.lean_peak, self.current - self.score_current)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        nbytes = self.live.pop(key, 0)
        self.current -= nbytes
        if key in self.scores:
            self.scores.discard(key)
            self.score_current -= nbytes

    def reset_peak(self) -> None:
        self.peak = self.current
        self.lean_peak = self.current - self.score_current

    def abandon(self, before: set[int]) -> None:
        """Stop counting the storages made since `before` (the keys of `live` then): a traced pass that failed and
        is done again another way, whose tensors a failed backward's graph may keep alive here but a real run never
        makes."""
        for key in [k for k in self.live if k not in before]:
            self._free(key)


@contextmanager
def saved_activations(known: set[int], scores: dict[int, int] | None = None,
                      is_score: Callable[[torch.Tensor], bool] | None = None) -> Iterator[dict[int, int]]:
    """Measure the storages autograd saves for backward (parameters excluded), keyed by storage; those `is_score`
    recognises (eager attention's S x S tensors) are also kept in `scores`."""
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = storage_of(t)
        if storage is not None and int(storage._cdata) not in known:
            saved[int(storage._cdata)] = int(storage.nbytes())
            if scores is not None and is_score is not None and is_score(t):
                scores[int(storage._cdata)] = int(storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield saved


def storage_keys(module: nn.Module, tensors: dict[str, torch.Tensor]) -> set[int]:
    """Storages of a module's parameters and buffers (and their stand-ins): never counted as activations."""
    keys = {storage_key(p) for p in module.parameters()} | {storage_key(b) for b in module.buffers()}
    return keys | {storage_key(t) for t in tensors.values()}
