"""Causes of failure the timm sweep (bench/timm_all.py, docs/timm_coverage.md) found, each on a model small
enough to derive by hand.

Attention whose value head size differs from the query's (timm's iFormer: d_q 64, d_v 32) failed in afford's SDPA
router, which gave PyTorch's backward formula the query's shape as the output gradient's. Per sample, with one
head, 4 positions, d_q 8 and d_v 4: forward QK^T 2 x 4 x 4 x 8 = 256 FLOPs plus PV 2 x 4 x 4 x 4 = 128, 384 in all;
backward (PyTorch's sdpa_backward_flop_count: scores recomputed 256, grad of the scores 128, grad V 128, grad Q 256,
grad K 256) 1024.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import afford


class NarrowValues(nn.Module):
    """Self-attention whose values are half the query/key width."""

    def __init__(self) -> None:
        super().__init__()
        self.qk = nn.Linear(8, 16, bias=False)
        self.v = nn.Linear(8, 4, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k = self.qk(x).unsqueeze(1).chunk(2, dim=-1)
        v = self.v(x).unsqueeze(1)
        return F.scaled_dot_product_attention(q, k, v).sum()


def test_attention_with_a_narrower_value_head_traces_and_counts_by_hand() -> None:
    a = afford.assess(NarrowValues(), train_samples=1, infer_samples=1, example_inputs=torch.zeros(1, 4, 8))
    calls = a.trace.infer.attention
    assert len(calls) == 1
    assert calls[0].forward_flops == 2 * 4 * 4 * 8 + 2 * 4 * 4 * 4
    train_calls = a.trace.forward.attention
    assert train_calls[0].backward_flops == 256 + 128 + 128 + 256 + 256
    assert a.backward_flops > 0
