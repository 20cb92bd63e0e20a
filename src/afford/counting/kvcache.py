"""A traced KV cache: its tensors and bytes, the cache a decode step leaves, and its growth re-costed as serving
engines write it (in place, one position a step). Used by the trace (counting/trace.py) and `afford measure`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from afford.counting.profile import PhaseProfile
from afford.counting.tensors import storage_key, storage_of, tensor_bytes


def cache_tensors(cache: Any) -> Iterator[torch.Tensor]:
    """Key/value tensors of a KV cache: a transformers Cache (layers of keys/values), an encoder-decoder cache
    (self- and cross-attention caches), a decode state holding one (`.cache`), or nested tuples."""
    for attr in ("self_attention_cache", "cross_attention_cache"):
        part = getattr(cache, attr, None)
        if part is not None:
            yield from cache_tensors(part)
    inner = getattr(cache, "cache", None)
    if inner is not None and inner is not cache:
        yield from cache_tensors(inner)
        return
    layers = getattr(cache, "layers", None)
    if layers is not None:
        for layer in layers:
            for attr in ("keys", "values"):
                t = getattr(layer, attr, None)
                if isinstance(t, torch.Tensor):
                    yield t
        return
    if isinstance(cache, (tuple, list)):
        for x in cache:
            yield from cache_tensors(x)
    elif isinstance(cache, torch.Tensor):
        yield cache


def cache_bytes(cache: Any) -> int:
    """Bytes a KV cache holds: each storage once (keys and values may be views of one)."""
    seen: dict[int, int] = {}
    for t in cache_tensors(cache):
        seen[storage_key(t)] = tensor_bytes(t)
    return sum(seen.values())


# The op a serving engine's in-place cache write runs (transformers' StaticCache: index_copy_).
IN_PLACE_APPEND = "index_copy_"


def append_in_place(phase: PhaseProfile, cache: Any) -> None:
    """Re-cost a decode step's KV-cache growth as serving engines do it, for the roofline only.

    transformers' DynamicCache concatenates: every step each layer's `cat` reads the c cached positions and
    writes c + 1, twice what attention itself reads from the cache. gpt-fast's static cache, vLLM's paged
    cache and TensorRT-LLM write the new position in place. Each `cat` whose output is a cache tensor's storage
    (inputs and output together 2 x that storage) becomes an in-place write of one position (read it, write it).
    FLOPs are 0 either way; `by_op` keeps the ops as traced."""
    done: set[int] = set()
    for t in cache_tensors(cache):
        storage = storage_of(t)
        if storage is None or t.dim() < 3 or t.shape[-2] == 0:
            continue
        key = int(storage._cdata)
        event = ("cat", 0, 2 * int(storage.nbytes()))
        if key in done or not phase.events.get(event):
            continue
        done.add(key)
        position = tensor_bytes(t) // int(t.shape[-2])  # one position of every batch row and head
        phase.events[event] -= 1
        if not phase.events[event]:
            del phase.events[event]
        write = (IN_PLACE_APPEND, 0, 2 * position)
        phase.events[write] = phase.events.get(write, 0) + 1
        phase.bytes_moved -= event[2] - write[2]


def next_cache(out: Any, cache: Any) -> Any:
    """The cache a decode step leaves: the one the model returns, else the one passed in (updated in place)."""
    if out is cache:  # a decode state the adapter updates and hands back (encoder-decoders)
        return cache
    for attr in ("cache", "past_key_values"):
        found = getattr(out, attr, None)
        if found is not None:
            return found
    return cache
