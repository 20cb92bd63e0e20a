"""Remembered meta outputs of slow ops, for the counting engine (counting/engine.py `_RecordingDispatch`).

Norm ops (and ReLU's backward) have meta kernels that are Python decompositions (torch/_decomp, torch/_refs), 0.5-1 ms
a call on a 2-core machine, half of a ResNet-50 trace. On meta their outputs depend only on the inputs' metadata, so
the outputs of the first call with that metadata are remembered, and later calls make fresh empty tensors like them
and record the op exactly as the kernel's call would (bench/peer_bench.py; tests/counting/test_meta_memo.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

aten = torch.ops.aten

OPS = frozenset({aten._native_batch_norm_legit.default, aten._native_batch_norm_legit.no_stats,
                 aten._native_batch_norm_legit_no_training.default, aten.native_batch_norm.default,
                 aten.native_batch_norm_backward.default, aten._native_batch_norm_legit_functional.default,
                 aten.native_layer_norm.default, aten.native_layer_norm_backward.default,
                 aten.native_group_norm.default, aten.native_group_norm_backward.default,
                 aten.threshold_backward.default})
LIMIT = 4096  # distinct signatures kept per process (a few per norm layer shape)
_memo: dict[tuple[Any, ...], Any] = {}
ENV = "AFFORD_NO_META_MEMO"  # set: every call runs the kernel (the memo's own test compares both)


def _part(value: Any) -> tuple[bool, Any]:
    """(ok, what a memoised op's output depends on in one argument): a meta tensor's shape, strides, dtype and
    whether it requires grad, a plain value itself; not ok for anything else."""
    if isinstance(value, torch.Tensor):
        if value.device.type != "meta" or value.layout != torch.strided:
            return False, None
        return True, (tuple(value.shape), value.stride(), value.dtype, value.requires_grad)
    if value is None or isinstance(value, (bool, int, float, str)):
        return True, value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float)) for v in value):
        return True, tuple(value)
    return False, None


def _signature(func: Any, args: Any, kwargs: Any) -> tuple[Any, ...] | None:
    """What a memoised op's meta outputs depend on: every positional and keyword argument (`_part`); None when one
    is not on meta or not plain."""
    parts: list[Any] = [func]
    for name, value in [*((None, a) for a in args), *sorted(kwargs.items())]:
        ok, part = _part(value)
        if not ok:
            return None
        parts.append((name, part))
    return tuple(parts)


def _like(spec: Any) -> Any:
    """Fresh meta tensors with the remembered metadata (a tuple of them, or None for an undefined output)."""
    if isinstance(spec, tuple) and spec and spec[0] == "tensor":
        _, shape, stride, dtype = spec
        return torch.empty_strided(shape, stride, dtype=dtype, device="meta")
    if isinstance(spec, list):
        return tuple(_like(s) for s in spec)
    return spec


def _describe(out: Any) -> Any:
    """The metadata of an op's outputs, to make them again (None when an output is not a plain meta tensor)."""
    if isinstance(out, torch.Tensor):
        if out.device.type != "meta" or out.layout != torch.strided:
            raise ValueError("not memoisable")
        return ("tensor", tuple(out.shape), out.stride(), out.dtype)
    if isinstance(out, (tuple, list)):
        return [_describe(o) for o in out]
    if out is None:
        return None
    raise ValueError("not memoisable")



SKIP = object()  # `call`'s answer when the op's arguments are not memoisable: dispatch it as usual


def call(counter: Any, func: Any, args: Any, kwargs: Any, run: Callable[[], Any]) -> Any:
    """The outputs of a memoised op: remembered ones made afresh (and recorded by `counter` as the kernel's call
    would be), or `run()`'s, remembered when the kernel ran as one recorded op; SKIP when not memoisable."""
    key = _signature(func, args, kwargs)
    if key is None:
        return SKIP
    spec = _memo.get(key)
    if spec is not None:
        return counter._count_flops(func._overloadpacket, _like(spec), args, kwargs)
    counted: list[Any] = []
    record = counter._count_flops
    outer = counter.__dict__.get("_count_flops")  # a memoised op's watch this call runs inside

    def watch(packet: Any, out: Any, a: Any, kw: Any) -> Any:
        counted.append(packet)
        return record(packet, out, a, kw)

    counter._count_flops = watch
    try:
        out = run()
    finally:
        if outer is None:
            del counter._count_flops  # the class's method again
        else:
            counter._count_flops = outer
    # remembered only where the kernel ran as one recorded op (not decomposed into recorded parts)
    if counted == [func._overloadpacket] and len(_memo) < LIMIT:
        try:
            _memo[key] = _describe(out)
        except ValueError:
            pass
    return out
