"""What a traced tensor occupies: its storage (shared by its views) and the bytes of its elements; shared by the
counting engine (counting/engine.py) and the fusion log (counting/fusion.py)."""

from __future__ import annotations

import math

import torch

__all__ = ["channels_last", "held", "read_bytes", "storage_key", "storage_of", "tensor_bytes"]


def storage_key(t: torch.Tensor) -> int:
    """The identity of a tensor's storage (its views share it)."""
    return int(t.untyped_storage()._cdata)


def storage_of(t: torch.Tensor) -> torch.UntypedStorage | None:
    """A tensor's storage, or None for tensors without one (sparse, nested, some subclasses)."""
    try:
        return t.untyped_storage()
    except (RuntimeError, NotImplementedError):
        return None


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes a tensor's elements occupy (not its storage, which a view may share); a sparse COO tensor
    (PyTorch's sparse embedding gradients) holds its stored values and their indices, not its dense size."""
    if t.layout == torch.sparse_coo:
        return tensor_bytes(t._values()) + tensor_bytes(t._indices())
    return int(t.numel()) * t.element_size()


def held(t: torch.Tensor) -> list[int]:
    """The shape of the elements a strided tensor holds: a broadcast dimension (stride 0, from `expand`) counts
    once, as a kernel reads it from memory once and its repeats from cache."""
    return [1 if s == 0 else n for s, n in zip(t.stride(), t.shape, strict=True)]


def read_bytes(t: torch.Tensor) -> int:
    """Bytes a kernel reads of an input: its held elements (`held`), else `tensor_bytes`."""
    if t.layout != torch.strided or 0 not in t.stride():
        return tensor_bytes(t)
    return math.prod(held(t)) * t.element_size()


def channels_last(x: torch.Tensor) -> bool:
    """Whether PyTorch's `suggest_memory_format()` would say channels_last for a 4-d (or channels_last_3d for a
    5-d) tensor: contiguous that way and not in the default layout."""
    layout = {4: torch.channels_last, 5: torch.channels_last_3d}.get(x.dim())
    return layout is not None and x.is_contiguous(memory_format=layout) and not x.is_contiguous()
