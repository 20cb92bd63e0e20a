"""Recognise eager attention in a trace: the ops of a module that touch an S x S score tensor and run a softmax over
it (matmul -> [scale, mask, bias] -> softmax -> [dropout] -> matmul, and their gradients), as Hugging Face's eager
implementations run them (MPT, BLOOM with ALiBi, Gemma 2 soft-capping, GPT-2 `attn_implementation="eager"`).

Each such module's ops are collected per phase in an `EagerBlock`, so that estimate/attention.py can price them
as one fused kernel when the job runs flash or memory-efficient attention (docs/methodology.md, "Attention").
"""

from __future__ import annotations

from typing import Any

import torch

from afford.counting.profile import EagerBlock

# The softmax ops (forward and gradient) that mark a module as an attention block: one fused kernel call each.
SOFTMAX_OPS = frozenset({"_softmax", "_softmax_backward_data", "_safe_softmax", "softmax"})


def is_score(t: torch.Tensor, side: tuple[int, int] | None) -> bool:
    """Whether `t` is an S x S attention score tensor of a batch, `side` = (batch, S): (B, H, S, S), or (B x H, S, S)
    as BLOOM's baddbmm makes it (a (B, S, S) tensor is a hidden state whose width happens to be S)."""
    if side is None or t.dim() < 3 or t.layout != torch.strided:
        return False
    batch, s = side
    if t.shape[-1] != s or t.shape[-2] != s:
        return False
    return t.dim() >= 4 or (int(t.shape[0]) % batch == 0 and int(t.shape[0]) > batch)


def record(counter: Any, name: str, key: tuple[str, int, int], ins: list[torch.Tensor], outs: list[torch.Tensor],
           flops: int) -> bool:
    """Credit an op that touches S x S scores to its module's EagerBlock in the counter's phase (the op's bytes
    other than the scores' are what a fused kernel still moves); a softmax (or its gradient) marks one call.
    Whether the op was credited to a block."""
    side = counter.score_side
    scores = [t for t in ins + outs if is_score(t, side)]
    if not scores or side is None:
        return False
    backward = counter.mod_tracker.is_bw
    if backward:  # the module whose forward op this backward node differentiates
        module = max(counter.nodes.backward_parents(), key=lambda p: (p.count("."), len(p)))
    else:
        module = counter.current_module()
    if module == "Global":
        return False
    block = counter.phase.eager.get(module)
    if block is None:
        block = counter.phase.eager[module] = EagerBlock(batch=side[0], seq_len=side[1])
    r = counter.repeat
    block.events[key] = block.events.get(key, 0) + r
    block.flops += flops * r
    score_bytes = sum(int(t.numel()) * t.element_size() for t in scores)  # as the op's bytes count them
    block.operand_bytes += max(key[2] - score_bytes, 0) * r
    if name in SOFTMAX_OPS:
        block.calls += r
    if flops and not block.heads and not backward:
        # the score matmul's query operand: (B x H, S, D) after aten's reshape, or (B, H, S, D)
        query = next((t for t in ins if t.dim() >= 3 and not is_score(t, side)), None)
        if query is not None:
            heads = int(query.shape[1]) if query.dim() >= 4 else int(query.shape[0]) // max(side[0], 1)
            block.heads, block.head_dim = heads, int(min(query.shape[-1], query.shape[-2]))
    return True
