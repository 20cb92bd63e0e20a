"""The attention kernel a job runs (`--attention`), and eager attention priced as that kernel.

A model whose implementation is eager (HF's MPT, BLOOM, Gemma 2, GPT-2 with `attn_implementation="eager"`) is
traced as matmul, mask, softmax and matmul over an S x S score tensor (counting/eager.py). A tuned trainer runs
flash attention (FlashAttention-2, Dao 2023) or PyTorch's memory-efficient kernel instead: the same arithmetic in
one kernel that reads Q, K, V (and writes O) once and never stores the scores. Under `flash` or `sdpa` each eager
block is priced as one such kernel call: its FLOPs as traced (the math), its bytes the non-score tensors its ops
touched, and the live and saved S x S tensors leave the memory peaks. `eager` keeps the trace's own ops.
docs/methodology.md, "Attention", says why the trace, not the config, decides.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from enum import Enum
from typing import TYPE_CHECKING

from afford import bounds as b
from afford.counting.profile import AttentionCall, EagerBlock, PhaseProfile, Trace
from afford.errors import InputError, opt
from afford.hardware.catalog import Device

if TYPE_CHECKING:
    from afford.counting.mathpath import MathPath

# The op names a fused block is recorded under: PyTorch's own for the kernels (forward, backward).
FLASH_OPS = ("_scaled_dot_product_flash_attention", "_scaled_dot_product_flash_attention_backward")
SDPA_OPS = ("_scaled_dot_product_efficient_attention", "_scaled_dot_product_efficient_attention_backward")


class Attention(Enum):
    """The attention kernel a job runs: auto (the fused kernel a tuned trainer picks on the device), flash,
    sdpa (PyTorch's memory-efficient kernel) or eager (the model's own ops, as traced)."""

    AUTO = "auto"
    FLASH = "flash"
    SDPA = "sdpa"
    EAGER = "eager"

    @classmethod
    def parse(cls, value: str | Attention) -> Attention:
        """The kernel named by `value`; an InputError naming the option otherwise."""
        if isinstance(value, Attention):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise InputError(f"unknown {opt('attention')} {b.show(value)}; choose auto, flash, sdpa or "
                             "eager") from None


def has_flash(device: Device) -> bool:
    """Whether FlashAttention-2 runs on `device`: NVIDIA GPUs of compute capability 8.0 or later (Ampere+), the
    ones with bf16 tensor cores in the catalog (flash-attention README, "Requirements")."""
    return device.vendor == "nvidia" and device.kind == "gpu" and "bf16" in device.peak_tflops


def resolve(value: str | Attention, device: Device) -> Attention:
    """The kernel a job runs on `device`: auto is flash where it runs, else sdpa; flash where it does not run is
    an InputError."""
    kind = Attention.parse(value)
    if kind is Attention.AUTO:
        return Attention.FLASH if has_flash(device) else Attention.SDPA
    if kind is Attention.FLASH and not has_flash(device):
        raise InputError(f"{opt('attention')} flash needs an NVIDIA GPU of compute capability 8.0 or later "
                         f"(Ampere+); {device.id} has none: use {opt('attention')} sdpa")
    return kind


def fuse_phase(phase: PhaseProfile | None, kernel: Attention, pair: PhaseProfile | None = None
               ) -> PhaseProfile | None:
    """`phase` with each eager attention block's ops replaced by one fused kernel call per softmax, its live peak
    without S x S tensors and the blocks as attention calls; the phase itself when it has none. `pair` is the
    other phase of the training step: the backward gives the forward's calls their gradients' FLOPs, the forward
    gives the backward kernel the score matmul it recomputes (FlashAttention-2, Algorithm 2, line 11: S = Q K^T
    again), half the forward's FLOPs, as PyTorch counts the fused backward (sdpa_backward_flop_count). The
    kernel's bytes are the block's non-score bytes. The phase's FLOPs and `by_op` stay as traced (the math)."""
    if phase is None or not phase.eager or kernel is Attention.EAGER:
        return phase
    ops = FLASH_OPS if kernel is Attention.FLASH else SDPA_OPS
    is_backward = phase.name == "backward"
    events = dict(phase.events)
    fused_events = dict(phase.fused_events)  # a block's ops are their own kernels there too (counting/fusion.py)
    moved = phase.bytes_moved
    calls = list(phase.attention)
    for name, block in phase.eager.items():
        for key, n in block.events.items():
            moved -= key[2] * min(n, events.get(key, 0))
            _take(events, key, n)
            _take(fused_events, key, n)
        flops = block.flops // block.calls
        source = pair.eager.get(name) if is_backward and pair is not None else None
        if source is not None and source.calls:
            flops += source.flops // source.calls // 2
        fused = (ops[1] if is_backward else ops[0], flops, block.operand_bytes // block.calls)
        events[fused] = events.get(fused, 0) + block.calls
        if fused_events:
            fused_events[fused] = fused_events.get(fused, 0) + block.calls
        moved += fused[2] * block.calls
        if not is_backward and block.heads and block.head_dim:
            calls.extend(_calls(name, flops, pair, block))
    return replace(phase, events=events, fused_events=fused_events, bytes_moved=moved,
                   peak_live_bytes=phase.lean_peak_bytes, attention=calls, eager={})  # fusing again changes nothing


def _take(events: dict[tuple[str, int, int], int], key: tuple[str, int, int], n: int) -> None:
    """Remove n calls of an event (all of them, when it has fewer)."""
    left = events.get(key, 0) - n
    if left > 0:
        events[key] = left
    else:
        events.pop(key, None)


def _calls(name: str, flops: int, backward: PhaseProfile | None, block: EagerBlock) -> list[AttentionCall]:
    """A forward block's calls as AttentionCalls (the causal and window facts kept), as the SDPA router records."""
    from afford.counting.attention import useful_fraction

    grad = backward.eager.get(name) if backward is not None else None
    bwd = grad.flops // max(grad.calls, 1) if grad is not None else 0
    s = block.seq_len
    call = AttentionCall(module=name, batch=block.batch, q_heads=block.heads, kv_heads=block.heads, q_len=s,
                         kv_len=s, head_dim=block.head_dim, causal=block.causal, window=block.window,
                         forward_flops=flops, backward_flops=bwd,
                         useful_fraction=useful_fraction(s, s, block.causal, block.window))
    return [call] * block.calls


def fuse(trace: Trace, kernel: Attention) -> Trace:
    """The trace as the job runs it under `kernel`: eager attention blocks fused (the same trace when none)."""
    if kernel is Attention.EAGER or not any(p is not None and p.eager for p in (trace.forward, trace.backward,
                                                                                   trace.infer)):
        return trace
    forward = fuse_phase(trace.forward, kernel, trace.backward)
    infer = forward if trace.infer is trace.forward else fuse_phase(trace.infer, kernel)
    assert forward is not None and infer is not None
    saved = trace.saved_activations_bytes - trace.saved_score_bytes
    train_peak = trace.train_lean_peak_bytes if trace.backward is not None else trace.train_peak_live_bytes
    return replace(trace, forward=forward, backward=fuse_phase(trace.backward, kernel, trace.forward),
                   infer=infer,
                   saved_activations_bytes=saved, train_peak_live_bytes=train_peak, saved_score_bytes=0)


def math_on_cpu(trace: Trace) -> Trace:
    """The trace as a CPU runs it: each attention call with dropout on priced as PyTorch's math path (its CPU
    flash kernel refuses dropout; counting/mathpath.py), in place of the fused kernel the trace recorded, with the
    S x S tensors the math path saves for backward; the same trace when no call has dropout."""
    phases = [trace.forward] if trace.infer is trace.forward else [trace.forward, trace.infer]
    if not any(c.dropout_p > 0 for p in phases for c in p.attention):
        return trace
    forward, backward, infer = trace.forward, trace.backward, trace.infer
    extra = 0
    for call, n, key, path in _math_paths(forward):
        forward = _swap(forward, key, path.forward, n)
        if call.backward_flops and backward is not None:
            backward = _swap(backward, _fused_key(backward, call.backward_flops, backward=True), path.backward, n)
            extra += path.extra_saved_bytes * n
    if trace.infer is not trace.forward:
        for _call, n, key, path in _math_paths(infer):
            infer = _swap(infer, key, path.forward, n)
    if backward is not None and extra:  # the saved S x S tensors are live from the end of forward into backward
        forward, backward = (replace(p, peak_live_bytes=p.peak_live_bytes + extra,
                                     lean_peak_bytes=p.lean_peak_bytes + extra) for p in (forward, backward))
    return replace(trace, forward=forward, backward=backward,
                   infer=forward if trace.infer is trace.forward else infer,
                   saved_activations_bytes=trace.saved_activations_bytes + extra,
                   train_peak_live_bytes=trace.train_peak_live_bytes + extra,
                   train_lean_peak_bytes=trace.train_lean_peak_bytes + extra)


def _math_paths(phase: PhaseProfile) -> Iterator[tuple[AttentionCall, int, tuple[str, int, int], MathPath]]:
    """(call, identical calls, the fused event they were traced as, their math path) for the phase's calls with
    dropout on; a call the trace already ran as the math path (a layout the fused kernel refused), or one the math
    path cannot run again (a tampered cache row), is skipped and keeps its pricing."""
    from afford.counting.mathpath import math_path

    for call, n in _grouped(phase.attention):
        key = _fused_key(phase, call.forward_flops, backward=False)
        if key is None:
            continue
        try:
            path = math_path(call)
        except (RuntimeError, TypeError, ValueError):
            continue
        yield call, n, key, path


def _grouped(calls: list[AttentionCall]) -> list[tuple[AttentionCall, int]]:
    """The calls with dropout on, identical ones counted together (a model's layers repeat one shape)."""
    groups: dict[str, tuple[AttentionCall, int]] = {}
    for call in calls:
        if call.dropout_p > 0:
            key = repr(replace(call, module=""))
            first, n = groups.get(key, (call, 0))
            groups[key] = (first, n + 1)
    return list(groups.values())


def _fused_key(phase: PhaseProfile, flops: int, backward: bool) -> tuple[str, int, int] | None:
    """The event of a fused attention call of `flops` FLOPs in `phase` (None when the trace ran none)."""
    names = {FLASH_OPS[1], SDPA_OPS[1]} if backward else {FLASH_OPS[0], SDPA_OPS[0]}
    return next((key for key in phase.events if key[0] in names and key[1] == flops), None)


def _swap(phase: PhaseProfile, key: tuple[str, int, int] | None, ops: dict[tuple[str, int, int], int], n: int
          ) -> PhaseProfile:
    """`phase` with n calls of the event `key` replaced by n runs of the events `ops` (the phase itself when the
    trace ran no such event)."""
    if key is None:
        return phase
    n = min(n, phase.events.get(key, 0))
    events, fused_events = dict(phase.events), dict(phase.fused_events)
    for table in (events, fused_events) if fused_events else (events,):
        _take(table, key, n)
        for op, calls in ops.items():
            table[op] = table.get(op, 0) + calls * n
    moved = phase.bytes_moved + n * (sum(op[2] * calls for op, calls in ops.items()) - key[2])
    return replace(phase, events=events, fused_events=fused_events, bytes_moved=moved)
