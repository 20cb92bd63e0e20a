"""Run a model's training step, inference pass and (for causal LMs) a cached decode step on meta, and measure.

The module's parameters are replaced, for the trace only, by meta stand-ins (`functional_call`), so a model
that holds real weights is counted without copying them, and frozen parameters are stand-ins that do not
require grad: autograd itself then skips their weight gradients.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from afford.counting.engine import (
    AttentionRouter,
    Counter,
    LiveBytes,
    collect,
    extra_formulas,
    saved_activations,
    storage_key,
    storage_keys,
    tensor_bytes,
)
from afford.counting.profile import PhaseProfile, Trace
from afford.errors import InputError, TraceError
from afford.sources.base import Dims, ModelSpec


def trainable_mask(module: nn.Module, freeze: tuple[str, ...]) -> dict[str, bool]:
    """Which parameters train, after applying freeze patterns in order.

    A pattern is an fnmatch glob over parameter names (`layer1.*`); a bare module name also matches the
    parameters under it; a leading `!` unfreezes (so `*` then `!fc.*` trains only the classifier). A pattern
    that matches no parameter is an error, never silently ignored.
    """
    names = [n for n, _ in module.named_parameters()]
    mask = {n: p.requires_grad for n, p in module.named_parameters()}
    for raw in freeze:
        unfreeze = raw.startswith("!")
        pattern = raw[1:] if unfreeze else raw
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern) or fnmatch.fnmatchcase(n, pattern + ".*")]
        if not hits:
            sample = ", ".join(names[:3] + (["..."] if len(names) > 3 else []))
            raise InputError(f"--freeze {raw!r} matches no parameter (names look like: {sample})")
        for n in hits:
            mask[n] = unfreeze
    return mask


def _standins(module: nn.Module, dtype: torch.dtype, mask: dict[str, bool]) -> dict[str, torch.Tensor]:
    """Meta tensors for every parameter and buffer: the originals where already on meta, else empty copies."""
    out: dict[str, torch.Tensor] = {}
    for name, p in module.named_parameters():
        t = p.detach()
        if t.device.type != "meta" or (t.is_floating_point() and t.dtype != dtype):
            t = torch.empty(t.shape, dtype=dtype if t.is_floating_point() else t.dtype, device="meta")
        out[name] = t.requires_grad_(mask[name])
    for name, b in module.named_buffers():
        if b.device.type != "meta":
            out[name] = torch.empty(b.shape, dtype=b.dtype, device="meta")
    return out


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(dtype)
    if isinstance(value, tuple):
        return tuple(_cast(v, dtype) for v in value)
    return value


def _cast_inputs(inputs: dict[str, Any], dtype: torch.dtype) -> dict[str, Any]:
    """Floating inputs in the model's compute dtype. Keys: model keyword arguments, `_args` (positional
    arguments, a tuple) and `_target` and other `_`-prefixed extras the loss reads."""
    return {k: _cast(v, dtype) for k, v in inputs.items()}


def _call(run: Callable[..., Any], inputs: dict[str, Any]) -> Any:
    return run(*inputs.get("_args", ()), **{k: v for k, v in inputs.items() if not k.startswith("_")})


def _input_tensors(inputs: dict[str, Any]) -> list[torch.Tensor]:
    return [t for v in inputs.values() for t in (v if isinstance(v, tuple) else (v,)) if isinstance(t, torch.Tensor)]


def _cache_tensors(cache: Any) -> Iterator[torch.Tensor]:
    """Key/value tensors of a KV cache: a transformers Cache (layers of keys/values) or nested tuples."""
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
            yield from _cache_tensors(x)
    elif isinstance(cache, torch.Tensor):
        yield cache


def _cache_bytes(cache: Any) -> int:
    seen: dict[int, int] = {}
    for t in _cache_tensors(cache):
        seen[storage_key(t)] = tensor_bytes(t)
    return sum(seen.values())


def _forward(run: Callable[..., Any], inputs: dict[str, Any]) -> Callable[[], Any]:
    return lambda: _call(run, inputs)


def _forward_loss(spec: ModelSpec, run: Callable[..., Any], inputs: dict[str, Any]) -> Callable[[], Any]:
    return lambda: spec.loss(_call(run, inputs), inputs)


def _guard(what: str, spec: ModelSpec, fn: Callable[[], Any]) -> Any:
    """Run a traced step; turn failures that come from the meta device into a TraceError naming the op."""
    try:
        return fn()
    except (InputError, TraceError):
        raise
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "meta" in text.lower() or "item()" in text or "_local_scalar_dense" in text or "nonzero" in text:
            raise TraceError(
                f"{spec.name}: {what} cannot run on the meta device: {type(exc).__name__}: {text[:300]} - the "
                "model reads tensor values (.item(), nonzero, data-dependent shapes), which the meta device cannot "
                "provide; try another attention/experts implementation or a smaller sibling") from exc
        hint = ""
        if "more than 1 value per channel" in text:
            hint = " - BatchNorm cannot train on one value per channel; use --batch-size 2 or more"
        raise TraceError(f"{spec.name}: {what} failed: {type(exc).__name__}: {text[:300]}{hint}") from exc


def trace(spec: ModelSpec, module: nn.Module, *, batch_size: int, dims: Dims, dtype: torch.dtype,
          freeze: tuple[str, ...] = (), train: bool = True, decode: bool = False, infer: bool = True) -> Trace:
    """Trace one training step, one inference batch (unless `infer` is off: the planner needs training only)
    and, if asked, a prefill plus one decode step."""
    extra = extra_formulas()
    mask = trainable_mask(module, freeze)
    tensors = _standins(module, dtype, mask)
    known = storage_keys(module, tensors)
    params = {n: tensors[n] for n, _ in module.named_parameters()}
    n_params = sum(int(p.numel()) for p in params.values())
    n_trainable = sum(int(p.numel()) for n, p in params.items() if mask[n])
    weights_bytes = sum(tensor_bytes(p) for p in params.values())
    buffers_bytes = sum(tensor_bytes(b) for _, b in module.named_buffers())
    shapes = [(tuple(p.shape), mask[n]) for n, p in params.items()]

    def run(*args: Any, **kwargs: Any) -> Any:
        return functional_call(module, tensors, args=args, kwargs=kwargs, strict=False)

    live = LiveBytes(known)
    counter = Counter(live)
    router = AttentionRouter(counter, spec.causal_for, spec.window_for)
    backward: PhaseProfile | None = None
    saved_bytes = grad_bytes = train_peak = 0
    was_training = module.training
    try:
        with spec.context(), counter, router:
            if train and n_trainable > 0:
                module.train()
                counter.start_phase("forward")
                inputs = _cast_inputs(spec.make_inputs(batch_size, dims, True), dtype)
                for t in _input_tensors(inputs):
                    live.add(t)
                with saved_activations(known) as saved:
                    loss = _guard("forward", spec, _forward_loss(spec, run, inputs))
                saved_bytes = sum(saved.values())
                forward = counter.finish_phase()
                backward = counter.start_phase("backward")
                _guard("backward", spec, loss.backward)
                counter.finish_phase()
                grad_bytes = sum(tensor_bytes(p.grad) for p in params.values() if p.grad is not None)
                train_peak = max(forward.peak_live_bytes, backward.peak_live_bytes)
                for p in params.values():
                    p.grad = None
                del loss, inputs
                collect()
            else:
                forward = PhaseProfile(name="forward")
            module.eval()
            infer_phase = counter.start_phase("infer")
            with torch.no_grad():
                inputs = _cast_inputs(spec.make_inputs(batch_size, dims, False), dtype) if infer else {}
                for t in _input_tensors(inputs):
                    live.add(t)
                if infer:
                    out = _guard("forward", spec, _forward(run, inputs))
                    del out
                counter.finish_phase()
                del inputs
                collect()
                if not train or n_trainable == 0:
                    forward = infer_phase
                prefill = decode_phase = None
                kv_bytes = kv_tokens = 0
                if decode and spec.decode is not None and dims.seq_len and dims.seq_len > 1:
                    # prefill seq_len - 1 tokens, then decode token seq_len: the step attends over a context of
                    # seq_len tokens and leaves a KV cache of seq_len tokens (never past the model's maximum)
                    adapter, context = spec.decode, dims.seq_len
                    prefill = counter.start_phase("prefill")
                    cache = _guard("prefill", spec, lambda: adapter.prefill(run, batch_size, context - 1))
                    counter.finish_phase()
                    decode_phase = counter.start_phase("decode")
                    out = _guard("decode step", spec, lambda: adapter.step(run, batch_size, cache, context - 1))
                    counter.finish_phase()
                    cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None) or cache
                    kv_bytes, kv_tokens = _cache_bytes(cache), context
                    del cache, out
                    collect()
    finally:
        module.train(was_training)
    return Trace(batch_size=batch_size, params=n_params, trainable_params=n_trainable, weights_bytes=weights_bytes,
                 buffers_bytes=buffers_bytes, gradients_bytes=grad_bytes, saved_activations_bytes=saved_bytes,
                 forward=forward, backward=backward, infer=infer_phase, prefill=prefill, decode=decode_phase,
                 kv_cache_bytes=kv_bytes, kv_cache_tokens=kv_tokens, train_peak_live_bytes=train_peak,
                 param_shapes=shapes, extra_registered=extra)
