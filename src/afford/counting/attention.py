"""Attention as traced: every scaled-dot-product attention call routed to the kernel a GPU runs (so saved
activations are what it keeps) and recorded with its causal and sliding-window facts (AttentionCall)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils import flop_counter as fc

from afford.counting.profile import AttentionCall

if TYPE_CHECKING:
    from afford.counting.engine import Counter

aten = torch.ops.aten


def useful_fraction(q_len: int, kv_len: int, causal: bool, window: int | None) -> float:
    """Share of the q_len x kv_len score matrix a causal (optionally sliding-window) mask keeps.

    Query i sits at absolute position kv_len - q_len + i and sees keys up to it, at most `window` of them.
    """
    if not causal or q_len == 0 or kv_len == 0:
        return 1.0
    offset = kv_len - q_len
    w = window if window and window > 0 else kv_len

    def seen(pos: int) -> int:
        return min(pos + 1, w)

    # sum over positions offset .. offset+q_len-1 of min(pos+1, w), in closed form
    lo, hi = offset, offset + q_len - 1  # positions
    # positions with pos+1 <= w: pos <= w-1
    split = min(hi, w - 1)
    total = 0
    if split >= lo:
        total += (split + 1) * (split + 2) // 2 - lo * (lo + 1) // 2
    if hi > split:
        total += (hi - max(split, lo - 1)) * w
    return total / (q_len * kv_len)


class AttentionRouter(TorchFunctionMode):
    """Runs `F.scaled_dot_product_attention` as PyTorch's memory-efficient kernel and records each call.

    On meta, SDPA would pick the math fallback, which saves the full score matrix for backward; GPUs run a
    fused kernel that saves only the output and a log-sum-exp. The FLOPs are the same (PyTorch's formula).
    """

    def __init__(self, counter: Counter, causal_for: Callable[[str], bool],
                 window_for: Callable[[str], int | None]) -> None:
        super().__init__()
        self.counter = counter
        self.causal_for = causal_for
        self.window_for = window_for

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        names = ["query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa"]
        bound = dict(zip(names, args, strict=False))
        bound.update(kwargs)
        q, k, v = bound["query"], bound["key"], bound["value"]
        mask = bound.get("attn_mask")
        is_causal = bool(bound.get("is_causal", False))
        if q.dim() != 4 or k.dim() != 4:
            return func(*args, **kwargs)
        module = self.counter.current_module()
        b, hq, sq, d = q.shape
        hk, sk = k.shape[1], k.shape[2]
        causal = is_causal or (mask is not None and self.causal_for(module) and sq > 1)
        window = self.window_for(module) if causal else None
        fwd = int(fc.sdpa_flop_count(tuple(q.shape), tuple(k.shape), tuple(v.shape)))
        out_shape = (b, hq, sq, int(v.shape[-1]))  # the value's head size may differ from the query's (iFormer)
        bwd = int(fc.sdpa_backward_flop_count(out_shape, tuple(q.shape), tuple(k.shape), tuple(v.shape)))
        needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v))
        dropout = float(bound.get("dropout_p", 0.0) or 0.0)
        shown = (tuple(int(n) for n in mask.shape), str(mask.dtype).removeprefix("torch.")) if isinstance(
            mask, torch.Tensor) else None
        call = AttentionCall(module=module, batch=b, q_heads=hq, kv_heads=hk, q_len=sq, kv_len=sk, head_dim=d,
                             causal=causal, window=window, forward_flops=fwd,
                             backward_flops=bwd if needs_grad else 0,
                             useful_fraction=useful_fraction(sq, sk, causal, window), dropout_p=dropout,
                             dtype=str(q.dtype).removeprefix("torch."), value_dim=int(v.shape[-1]), mask=shown)
        self.counter.phase.attention.extend([call] * self.counter.repeat)
        if q.device.type != "meta":
            return func(*args, **kwargs)
        bias = mask
        if bias is not None and bias.dtype == torch.bool:
            bias = torch.zeros(bias.shape, dtype=q.dtype, device=q.device).masked_fill(~bias, float("-inf"))
        if bias is not None and bias.dim() == 4:
            bias = bias.expand(b, hq, sq, sk)
        try:
            out = aten._scaled_dot_product_efficient_attention(
                q, k, v, bias, needs_grad, dropout, is_causal, scale=bound.get("scale"))[0]
        except (RuntimeError, TypeError, ValueError):
            return func(*args, **kwargs)  # a layout the fused kernel refuses: the math path, same FLOPs
        return out
