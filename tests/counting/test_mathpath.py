"""SDPA with dropout as a CPU runs it (counting/mathpath.py, estimate/attention.py `math_on_cpu`): PyTorch's math
path traced on meta, its ops the ones the CPU dispatches, its saved bytes autograd's, priced only on CPUs."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from typing import Any

import pytest
import torch

import afford
from afford.counting.engine import Counter, LiveBytes
from afford.counting.mathpath import math_path
from afford.counting.profile import AttentionCall
from afford.estimate.attention import math_on_cpu

transformers = pytest.importorskip("transformers")

B, H, S, D = 2, 4, 32, 16


def _call(**kw: Any) -> AttentionCall:
    base: dict[str, Any] = {"module": "m", "batch": B, "q_heads": H, "kv_heads": H, "q_len": S, "kv_len": S,
                            "head_dim": D, "causal": True, "window": None, "forward_flops": 4 * B * H * S * S * D,
                            "backward_flops": 10 * B * H * S * S * D, "useful_fraction": 0.5, "dropout_p": 0.1}
    return AttentionCall(**{**base, **kw})


def test_math_path_saves_the_score_tensors_autograd_keeps() -> None:
    """Beyond the fused kernel's output, log-sum-exp and RNG state, the math path saves the scaled Q and K (their
    matmul's inputs), the softmax output, the dropout mask and the dropped scores (the value matmul's input)."""
    path = math_path(_call())
    bhsd, bhss, lse = B * H * S * D * 4, B * H * S * S * 4, B * H * S * 4
    seed = 2 * 8  # the fused kernel's dropout RNG seed and offset, two int64 scalars
    assert path.extra_saved_bytes == 2 * bhsd + 3 * bhss - (bhsd + lse + seed)
    ops = {op for op, _, _ in path.forward}
    assert {"bmm", "_safe_softmax", "bernoulli_"} <= ops and "_scaled_dot_product_efficient_attention" not in ops
    assert "_softmax_backward_data" in {op for op, _, _ in path.backward}
    # the two matmuls carry the FLOPs PyTorch counts for the fused call (the full score matrix)
    assert sum(f * n for (_, f, _), n in path.forward.items()) == _call().forward_flops
    assert not math_path(_call(backward_flops=0)).backward


def test_meta_math_path_dispatches_as_the_cpu_does() -> None:
    """The same call on real CPU tensors dispatches the same ops with the same bytes as the meta trace (no CPU-only
    branch is missed)."""
    meta = math_path(_call(causal=False, mask=((B, 1, S, S), "bool")))
    q, k, v = (torch.randn(B, H, S, D, requires_grad=True) for _ in range(3))
    mask = torch.rand(B, 1, S, S) > 0.1
    grad = torch.ones(B, H, S, D)
    counter = Counter(LiveBytes(set()))
    with counter:
        counter.start_phase("forward")
        out = torch.ops.aten._scaled_dot_product_attention_math(q, k, v, mask, 0.1, False)[0]
        forward = counter.finish_phase()
        counter.start_phase("backward")
        out.backward(grad)
        backward = counter.finish_phase()
    assert dict(forward.events) == meta.forward
    assert dict(backward.events) == meta.backward


@cache
def _gpt2(hardware: str, dropout: float = 0.1) -> Any:
    cfg = transformers.GPT2Config(n_layer=2, n_embd=64, n_head=4, n_positions=S, vocab_size=512, attn_pdrop=dropout)
    with torch.device("meta"):
        model = transformers.GPT2LMHeadModel._from_config(cfg, attn_implementation="sdpa")
    return afford.assess(model, train_samples=100, seq_len=S, batch_size=B, hardware=hardware, precision="fp32",
                         cache=False)


def test_cpu_prices_dropout_attention_as_the_math_path() -> None:
    gpu, cpu, plain = _gpt2("a100-80gb"), _gpt2("cpu-generic"), _gpt2("cpu-generic", 0.0)
    fused = "_scaled_dot_product_efficient_attention"
    assert any(op == fused for op, _, _ in gpu.trace.forward.events)  # a GPU runs the fused kernel with dropout
    for phase in ("forward", "backward"):
        ops = {op for op, _, _ in getattr(cpu.trace, phase).events}
        assert not any(op.startswith(fused) for op in ops)
        assert getattr(cpu.trace, phase).flops == getattr(gpu.trace, phase).flops  # the FLOPs stay the math
        assert getattr(cpu.trace, phase).by_op == getattr(gpu.trace, phase).by_op
    assert "_safe_softmax" in {op for op, _, _ in cpu.trace.forward.events}
    extra = 2 * math_path(cpu.trace.forward.attention[0]).extra_saved_bytes
    assert cpu.memory.activations_bytes == gpu.memory.activations_bytes + extra
    assert cpu.memory.train_peak_bytes == gpu.memory.train_peak_bytes + extra
    # the phases' peaks, which the per-device memory of a layout is built from, carry them too
    for phase in ("forward", "backward"):
        assert getattr(cpu.trace, phase).peak_live_bytes == getattr(gpu.trace, phase).peak_live_bytes + extra
    per_device = [a.estimate.data["memory"]["train_per_device_bytes"] for a in (cpu, gpu)]
    assert per_device[0] > per_device[1]
    assert cpu.estimate.data["time"]["train_step_seconds"] > plain.estimate.data["time"]["train_step_seconds"]
    assert any("math path" in n for n in cpu.notes) and not any("math path" in n for n in plain.notes)
    # the allocator the CPU step is priced with is said (glibc's defaults re-fault large tensors every step)
    assert any("reuses freed memory" in n for n in cpu.notes) and not any("reuses freed" in n for n in gpu.notes)
    # inference (eval: no dropout) runs the fused kernel on the CPU too; a trace without dropout is left as is
    assert any(op == fused for op, _, _ in cpu.trace.infer.events)
    assert math_on_cpu(plain.trace) is plain.trace
    # a call whose recorded dtype is not a dtype (a tampered cache row) keeps the fused kernel's pricing
    calls = [replace(c, dtype="load") for c in cpu.trace.forward.attention]
    tampered = replace(gpu.trace, forward=replace(gpu.trace.forward, attention=calls))
    assert math_on_cpu(tampered).forward.events == gpu.trace.forward.events
