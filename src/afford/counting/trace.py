"""Run a model's training step, inference pass and (for causal LMs) a cached decode step on meta, and measure.

The module's parameters are replaced, for the trace only, by meta stand-ins (`functional_call`), so a model
that holds real weights is counted without copying them, and frozen parameters are stand-ins that do not
require grad: autograd itself then skips their weight gradients.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from afford.counting.attention import AttentionRouter
from afford.counting.autocast import autocast as emulated_autocast
from afford.counting.engine import Counter, collect, extra_formulas, tensor_bytes
from afford.counting.generation import trace_generation
from afford.counting.guard import guard
from afford.counting.kvcache import append_in_place, cache_bytes, next_cache
from afford.counting.livebytes import LiveBytes, saved_activations, storage_keys
from afford.counting.profile import PhaseProfile, Trace
from afford.counting.routes import KernelRouter
from afford.errors import InputError, TraceError
from afford.sources.base import Dims, ModelSpec, Run


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


def _forward(run: Callable[..., Any], inputs: dict[str, Any]) -> Callable[[], Any]:
    return lambda: _call(run, inputs)


def _forward_loss(spec: ModelSpec, run: Callable[..., Any], inputs: dict[str, Any]) -> Callable[[], Any]:
    return lambda: spec.loss(_call(run, inputs), inputs)


def _tensor_state(module: nn.Module) -> list[tuple[nn.Module, dict[str, Any], dict[str, Any]]]:
    """Every submodule's buffers and plain tensor attributes (caches a forward fills, such as ConViT's relative
    indices), to put back after a pass that failed, so the next pass starts as the first did."""
    return [(sub, dict(sub._buffers), {n: v for n, v in vars(sub).items() if isinstance(v, torch.Tensor)})
            for sub in module.modules()]


def _discard(counter: Counter, live: LiveBytes, state: list[tuple[nn.Module, dict[str, Any], dict[str, Any]]],
             before: set[int]) -> None:
    """Undo what a failed pass left: its open modules, what it cached in the model (a buffer in its dtype, put
    back from `state`) and its tensors, which whatever failed may still hold (live bytes since `before`)."""
    counter.mod_tracker.parents = {"Global"}
    for sub, buffers, attrs in state:
        sub._buffers.clear()
        sub._buffers.update(buffers)
        for name, value in attrs.items():
            object.__setattr__(sub, name, value)
    live.abandon(before)


def _infer(spec: ModelSpec, counter: Counter, live: LiveBytes, batch_size: int, dims: Dims, infer: bool,
           passes: list[tuple[Run, torch.dtype, torch.dtype | None]], module: nn.Module) -> PhaseProfile:
    """Trace the inference batch (an empty phase unless `infer`) with the first of `passes` that runs: each is (the
    model's call, its inputs' dtype, the dtype autocast is emulated to or None). A mixed-precision job tries the
    autocast pass (fp32 weights and inputs) first and falls back to the 16-bit one, saying so in the phase's note;
    the failed pass's tensors and the model's buffers it replaced are not carried over."""
    note = ""
    state = _tensor_state(module)
    for run, kind, low in passes:
        before = set(live.live)
        phase = counter.start_phase("infer")
        try:
            inputs = _cast_inputs(spec.make_inputs(batch_size, dims, False), kind) if infer else {}
            for t in _input_tensors(inputs):
                live.add(t)
            if infer:
                with emulated_autocast(low) if low is not None else nullcontext() as mode:
                    out = guard("forward", spec, _forward(run, inputs), counter.current_module)
                del out
                if mode is not None and mode.refused:
                    note = f"ops run in their traced dtypes, not autocast's: {', '.join(sorted(mode.refused))}"
            phase.autocast, phase.autocast_note = low is not None, note
            counter.finish_phase()
            return phase
        except TraceError as exc:
            if low is None:
                raise
            note = f"the batch failed under autocast and is traced in 16 bits ({exc})"
            _discard(counter, live, state, before)
        finally:
            inputs = {}
            collect()
    raise AssertionError("unreachable: the last pass runs without autocast and raises if it fails")


@dataclass
class _Step:
    """What one traced training step measured."""

    forward: PhaseProfile
    backward: PhaseProfile
    saved_bytes: int
    saved_scores: int
    grad_bytes: int


def _train(spec: ModelSpec, counter: Counter, live: LiveBytes, batch_size: int, dims: Dims, known: set[int],
           passes: list[tuple[Run, torch.dtype, torch.dtype | None, dict[str, torch.Tensor]]],
           module: nn.Module) -> _Step:
    """Trace one training step with the first of `passes` that runs: each is (the model's call, its inputs' dtype,
    the dtype autocast is emulated to or None, the weights it calls with). An --amp job tries the torch.amp step
    first: fp32 weights, the forward and the loss under autocast, backward after the region (as torch.amp's
    recipe runs it); it falls back to the 16-bit step, saying so in the forward phase's note."""
    note = ""
    state = _tensor_state(module)
    for run, kind, low, weights in passes:
        before = set(live.live)
        inputs: dict[str, Any] = {}
        loss: Any = None
        try:
            counter.start_phase("forward")
            inputs = _cast_inputs(spec.make_inputs(batch_size, dims, True), kind)
            for t in _input_tensors(inputs):
                live.add(t)
            scores: dict[int, int] = {}
            excluded = set(known)  # parameters, and under autocast the weights' cached 16-bit casts
            with saved_activations(excluded, scores, counter.is_score) as saved:
                with emulated_autocast(low, backstop=False, weights=excluded) if low is not None else (
                        nullcontext()) as mode:
                    loss = guard("forward", spec, _forward_loss(spec, run, inputs), counter.current_module)
            forward = counter.finish_phase()
            if mode is not None and (mode.missed or mode.refused):
                note = f"ops autocast did not reach, run in their traced dtypes: " \
                       f"{', '.join(sorted(mode.missed | mode.refused))}"
            forward.autocast, forward.autocast_note = low is not None, note
            backward = counter.start_phase("backward")
            guard("backward", spec, loss.backward)
            counter.finish_phase()
            grad_bytes = sum(tensor_bytes(p.grad) for p in weights.values() if p.grad is not None)
            return _Step(forward, backward, sum(saved.values()), sum(scores.values()), grad_bytes)
        except TraceError as exc:
            if low is None:
                raise
            note = f"the training step failed under autocast and is traced in 16 bits ({exc})"
            _discard(counter, live, state, before)
        finally:
            for p in weights.values():
                p.grad = None
            inputs, loss = {}, None
            collect()
    raise AssertionError("unreachable: the last pass runs without autocast and raises if it fails")


def trace(spec: ModelSpec, module: nn.Module, *, batch_size: int, dims: Dims, dtype: torch.dtype,
          freeze: tuple[str, ...] = (), train: bool = True, decode: bool = False, infer: bool = True,
          generate: tuple[int, int] | None = None, every_step: bool = False, autocast: bool = False,
          amp: bool = False) -> Trace:
    """Trace one training step, one inference batch (unless `infer` is off: the planner needs training only)
    and, if asked, a prefill plus one decode step; with `generate` = (P, G) instead a generation request: the
    prefill of P prompt tokens and its G - 1 decode steps (`every_step` traces each one, no closed form).
    `autocast` (a mixed-precision job): the inference batch runs as eager autocast runs it, fp32 weights and inputs
    with autocast's per-op dtypes (counting/autocast.py); `amp` (with `autocast`) traces the training step so too,
    with fp32 weights and gradients (torch.amp); otherwise the training step and generation stay in `dtype`."""
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
    tables = {f"{m}.weight" if m else "weight" for m, sub in module.named_modules()
              if isinstance(sub, (nn.Embedding, nn.EmbeddingBag))}
    embedding_params = [i for i, n in enumerate(params) if n in tables]
    linear_params, output_param = _weight_roles(module, list(params))

    def runner(weights: dict[str, torch.Tensor], kind: torch.dtype) -> Run:
        def run(*args: Any, **kwargs: Any) -> Any:
            # floating inputs in the weights' dtype: those a decode adapter makes too (Whisper's audio features)
            return functional_call(module, weights, args=_cast(args, kind), kwargs=_cast_inputs(kwargs, kind),
                                   strict=False)
        return run

    run = runner(tensors, dtype)
    infer_passes: list[tuple[Run, torch.dtype, torch.dtype | None]] = [(run, dtype, None)]
    train_passes: list[tuple[Run, torch.dtype, torch.dtype | None, dict[str, torch.Tensor]]] = [
        (run, dtype, None, tensors)]
    if autocast and dtype in (torch.float16, torch.bfloat16):  # AMP keeps fp32 weights: stand-ins made untraced
        # requires_grad as the model's own: matmul folds a 3-d input into one mm when an operand requires grad
        fp32 = {n: torch.empty(t.shape, dtype=torch.float32, device="meta").requires_grad_(t.requires_grad)
                if t.is_floating_point() else t for n, t in tensors.items()}
        known |= storage_keys(module, fp32)
        infer_passes.insert(0, (runner(fp32, torch.float32), torch.float32, dtype))
        if amp:
            train_passes.insert(0, (runner(fp32, torch.float32), torch.float32, dtype, fp32))

    live = LiveBytes(known)
    counter = Counter(live)
    router = AttentionRouter(counter, spec.causal_for, spec.window_for)
    if dims.seq_len and dims.seq_len > 1:  # eager attention's S x S scores at the job's length (counting/eager.py)
        counter.score_side = (batch_size, dims.seq_len)
    backward: PhaseProfile | None = None
    saved_bytes = grad_bytes = train_peak = saved_scores = train_lean = 0
    was_training = module.training
    try:
        with spec.context(), counter, router, KernelRouter(counter):
            if train and n_trainable > 0:
                module.train()
                step = _train(spec, counter, live, batch_size, dims, known, train_passes, module)
                forward, backward = step.forward, step.backward
                saved_bytes, saved_scores, grad_bytes = step.saved_bytes, step.saved_scores, step.grad_bytes
                train_peak = max(forward.peak_live_bytes, backward.peak_live_bytes)
                train_lean = max(forward.lean_peak_bytes, backward.lean_peak_bytes)
            else:
                forward = PhaseProfile(name="forward")
            module.eval()
            with torch.no_grad():
                infer_phase = _infer(spec, counter, live, batch_size, dims, infer,
                                     infer_passes if infer else infer_passes[-1:], module)
                counter.score_side = None  # prefill and decode keep their traced pricing
                if not train or n_trainable == 0:
                    forward = infer_phase
                prefill = decode_phase = None
                kv_bytes = kv_tokens = 0
                generation = None
                if generate is not None:
                    if spec.decode is None:
                        raise TraceError(f"{spec.name}: a {spec.kind.value} model has no decode step to trace")
                    generation = trace_generation(spec, spec.decode, run, counter, batch_size, generate[0], generate[1],
                                             every_step)
                    prefill, decode_phase = generation.prefill, generation.last_step
                    kv_bytes, kv_tokens = generation.kv_cache_bytes, generation.kv_cache_tokens
                    collect()
                elif decode and spec.decode is not None and dims.seq_len and dims.seq_len > 1:
                    # prefill seq_len - 1 tokens, then decode token seq_len: the step attends over a context of
                    # seq_len tokens and leaves a KV cache of seq_len tokens (never past the model's maximum)
                    adapter, context = spec.decode, dims.seq_len
                    prefill = counter.start_phase("prefill")
                    cache = guard("prefill", spec, lambda: adapter.prefill(run, batch_size, context - 1))
                    counter.finish_phase()
                    decode_phase = counter.start_phase("decode")
                    out = guard("decode step", spec, lambda: adapter.step(run, batch_size, cache, context - 1))
                    counter.finish_phase()
                    cache = next_cache(out, cache)
                    append_in_place(decode_phase, cache)
                    kv_bytes, kv_tokens = cache_bytes(cache), context
                    del cache, out
                    collect()
    finally:
        module.train(was_training)
    for phase in (forward, backward, infer_phase):
        for name, block in (phase.eager.items() if phase is not None else ()):
            block.causal = spec.causal_for(name)
            block.window = spec.window_for(name) if block.causal else None
    return Trace(batch_size=batch_size, params=n_params, trainable_params=n_trainable, weights_bytes=weights_bytes,
                 buffers_bytes=buffers_bytes, gradients_bytes=grad_bytes, saved_activations_bytes=saved_bytes,
                 forward=forward, backward=backward, infer=infer_phase, prefill=prefill, decode=decode_phase,
                 kv_cache_bytes=kv_bytes, kv_cache_tokens=kv_tokens, train_peak_live_bytes=train_peak,
                 param_shapes=shapes, embedding_params=embedding_params,
                 extra_registered=extra, generation=generation, param_names=list(params),
                 linear_params=linear_params, output_param=output_param, saved_score_bytes=saved_scores,
                 train_lean_peak_bytes=train_lean)


def _weight_roles(module: nn.Module, names: list[str]) -> tuple[list[tuple[int, int, int]], int | None]:
    """The linear layers' weights as (position in `names`, in_features, out_features), nn.Linear and the
    transformers Conv1D (GPT-2, weight stored transposed); and the position of the output head's weight: what
    `get_output_embeddings()` returns (a tied head is the token embedding itself), else None."""
    where = {n: i for i, n in enumerate(names)}
    linear: list[tuple[int, int, int]] = []
    for prefix, sub in module.named_modules():
        key = f"{prefix}.weight" if prefix else "weight"
        if key not in where:
            continue
        if isinstance(sub, nn.Linear):
            linear.append((where[key], sub.in_features, sub.out_features))
        elif type(sub).__name__ == "Conv1D" and getattr(sub, "weight", None) is not None and sub.weight.dim() == 2:
            linear.append((where[key], int(sub.weight.shape[0]), int(sub.weight.shape[1])))
    output = None
    head = getattr(module, "get_output_embeddings", None)
    try:
        out = head() if callable(head) else None
    except (AttributeError, NotImplementedError, TypeError):
        out = None
    if isinstance(out, nn.Module) and getattr(out, "weight", None) is not None:
        ids = {id(p): n for n, p in module.named_parameters()}
        output = where.get(ids.get(id(out.weight), ""))
    return linear, output
