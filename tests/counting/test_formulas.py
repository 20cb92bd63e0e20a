"""Our additions to PyTorch's FLOP registry and the causal-mask arithmetic, against hand counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from afford.counting.attention import useful_fraction
from afford.counting.engine import Counter, LiveBytes
from afford.counting.formulas import grouped_mm_flops

aten = torch.ops.aten


def _count(fn: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    counter = Counter(LiveBytes(set()))
    with counter:
        counter.start_phase("forward")
        fn()
        phase = counter.finish_phase()
    return phase.flops, {k: v.flops for k, v in phase.by_op.items()}


B, H, S, D = 2, 4, 64, 32
ATTN_FWD = 2 * (2 * B * H * S * S * D)  # QK^T and AV, 2 FLOPs per MAC


def _qkv(device: str = "meta", dtype: torch.dtype = torch.float16) -> list[torch.Tensor]:
    return [torch.randn(B, H, S, D, device=device, dtype=dtype) if device == "cpu"
            else torch.empty(B, H, S, D, device=device, dtype=dtype) for _ in range(3)]


@pytest.mark.parametrize("backend", ["flash", "efficient", "cpu_flash", "math_cpu", "functional_meta"])
def test_sdpa_forward_counted_on_every_backend(backend: str) -> None:
    if backend == "flash":
        q, k, v = _qkv()
        total, _ = _count(lambda: aten._scaled_dot_product_flash_attention(q, k, v, 0.0, True))
    elif backend == "efficient":
        q, k, v = _qkv()
        total, _ = _count(lambda: aten._scaled_dot_product_efficient_attention(q, k, v, None, False, 0.0, True))
    elif backend == "cpu_flash":
        q, k, v = _qkv("cpu", torch.float32)
        total, ops = _count(lambda: aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, True))
        assert "_scaled_dot_product_flash_attention_for_cpu" in ops
    elif backend == "math_cpu":
        q, k, v = _qkv("cpu", torch.float32)
        total, _ = _count(lambda: aten._scaled_dot_product_attention_math(q, k, v, None, 0.0, True))
    else:
        q, k, v = _qkv()
        total, _ = _count(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
    assert total == ATTN_FWD


def test_sdpa_backward_counted_for_cpu_flash() -> None:
    q, k, v = (t.requires_grad_() for t in _qkv("cpu", torch.float32))

    def run() -> None:
        out = aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, False)[0]
        out.sum().backward()

    total, ops = _count(run)
    assert ops["_scaled_dot_product_flash_attention_for_cpu_backward"] == int(2.5 * ATTN_FWD)
    assert total == int(3.5 * ATTN_FWD)


@pytest.mark.parametrize(("a", "b", "expected"), [
    ((96, 16), (4, 16, 32), 2 * 96 * 16 * 32),   # MoE forward: each routed row meets one expert
    ((4, 8, 16), (4, 16, 32), 2 * 4 * 8 * 16 * 32),  # batched
    ((16, 96), (96, 32), 2 * 16 * 96 * 32),      # weight gradient: groups split the contraction
    ((4, 8, 16), (16, 96), 2 * 8 * 16 * 96),     # groups split the output
])
def test_grouped_mm_layouts(a: tuple[int, ...], b: tuple[int, ...], expected: int) -> None:
    assert grouped_mm_flops(a, b) == expected


def test_grouped_mm_traced_in_fp32_on_meta() -> None:
    x = torch.empty(96, 16, device="meta")
    w = torch.empty(4, 16, 32, device="meta")
    offs = torch.empty(4, dtype=torch.int32, device="meta")
    total, _ = _count(lambda: torch._grouped_mm(x, w, offs=offs))
    assert total == 2 * 96 * 16 * 32


def test_depthwise_conv_backward_is_twice_forward() -> None:
    # PyTorch's own formula ignores groups for the weight gradient (x groups too much); ours is exact
    c, hw, k = 64, 56, 3
    x = torch.empty(2, c, hw, hw, device="meta", requires_grad=True)
    w = torch.empty(c, 1, k, k, device="meta", requires_grad=True)
    counter = Counter(LiveBytes(set()))
    with counter:
        counter.start_phase("forward")
        y = F.conv2d(x, w, padding=1, groups=c)
        fwd = counter.finish_phase().flops
        bwd_phase = counter.start_phase("backward")
        y.sum().backward()
        counter.finish_phase()
    assert fwd == 2 * 2 * c * k * k * hw * hw
    assert bwd_phase.flops == 2 * fwd


def _brute(q_len: int, kv_len: int, window: int | None) -> float:
    kept = 0
    for i in range(q_len):
        pos = kv_len - q_len + i
        for j in range(kv_len):
            if j <= pos and (window is None or pos - j < window):
                kept += 1
    return kept / (q_len * kv_len)


@pytest.mark.parametrize(("q", "kv", "w"), [(1, 1, None), (7, 7, None), (64, 64, None), (64, 64, 16),
                                            (10, 50, None), (10, 50, 8), (1, 100, 30), (33, 33, 40)])
def test_useful_fraction_closed_form_matches_brute_force(q: int, kv: int, w: int | None) -> None:
    assert useful_fraction(q, kv, True, w) == pytest.approx(_brute(q, kv, w))


def test_non_causal_keeps_everything() -> None:
    assert useful_fraction(128, 128, False, None) == 1.0
