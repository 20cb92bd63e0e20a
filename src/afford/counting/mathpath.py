"""Scaled-dot-product attention as PyTorch's math path runs it: the route a CPU takes when dropout is on.

PyTorch's CPU flash kernel refuses dropout (aten/src/ATen/native/transformers/sdp_utils_cpp.cpp,
`use_flash_attention_cpp` checks `check_for_dropout`), so a CPU training step of a model that passes
`dropout_p > 0` (HF's BERT and GPT-2, timm's ViTs) runs `_scaled_dot_product_attention_math`: the score matmul, the
mask, a softmax, a dropout mask and its product, and the value matmul, with their S x S tensors saved for backward.
The trace records every call as the fused kernel a GPU runs (counting/attention.py); `math_path` traces one call's
math path on the meta device with the same counter, so its ops, bytes and saved tensors are PyTorch's own, not a
formula's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch

from afford.counting.engine import Counter
from afford.counting.livebytes import LiveBytes, saved_activations
from afford.counting.profile import AttentionCall
from afford.counting.tensors import storage_key

aten = torch.ops.aten

Event = tuple[str, int, int]


@dataclass(frozen=True)
class MathPath:
    """One call's math path: its forward and backward events, and the bytes autograd saves for backward beyond
    those the fused kernel saves (the S x S softmax output, dropout mask and dropped scores, scaled Q and K)."""

    forward: dict[Event, int]
    backward: dict[Event, int]
    extra_saved_bytes: int


def math_path(call: AttentionCall) -> MathPath:
    """The math path of a recorded attention call (traced once per distinct shape)."""
    mask = call.mask
    return _traced(call.batch, call.q_heads, call.kv_heads, call.q_len, call.kv_len, call.head_dim,
                   call.value_dim or call.head_dim, call.dtype, call.dropout_p, call.causal and mask is None, mask,
                   call.backward_flops > 0)


@cache
def _traced(b: int, hq: int, hk: int, sq: int, sk: int, d: int, dv: int, dtype_name: str, dropout: float,
            is_causal: bool, mask: tuple[tuple[int, ...], str] | None, grad: bool) -> MathPath:
    dtype = _dtype(dtype_name)
    q = torch.empty(b, hq, sq, d, dtype=dtype, device="meta", requires_grad=grad)
    k = torch.empty(b, hk, sk, d, dtype=dtype, device="meta", requires_grad=grad)
    v = torch.empty(b, hk, sk, dv, dtype=dtype, device="meta", requires_grad=grad)
    bias = torch.empty(mask[0], dtype=_dtype(mask[1]), device="meta") if mask is not None else None
    known = {storage_key(t) for t in (q, k, v)} | ({storage_key(bias)} if bias is not None else set())
    counter = Counter(LiveBytes(known))
    with counter:
        counter.start_phase("forward")
        with saved_activations(set(known)) as saved:
            out = aten._scaled_dot_product_attention_math(q, k, v, bias, dropout, is_causal,
                                                          enable_gqa=hk != hq)[0]
        forward = counter.finish_phase()
        backward: dict[Event, int] = {}
        if grad:
            counter.start_phase("backward")
            out.backward(torch.empty_like(out))
            backward = dict(counter.finish_phase().events)
    with saved_activations(set(known)) as fused:  # the kernel the trace recorded, for the difference
        if grad and hk == hq:  # (the trace ran grouped-query calls as this math path already)
            aten._scaled_dot_product_efficient_attention(q, k, v, _expanded(bias, q.dtype, b, hq, sq, sk), True,
                                                         dropout, is_causal)
    return MathPath(forward=dict(forward.events), backward=backward,
                    extra_saved_bytes=max(sum(saved.values()) - sum(fused.values()), 0))


def _dtype(name: str) -> torch.dtype:
    """The torch dtype a recorded call names (a trace read back from the disk cache is data: only a dtype's name
    is accepted)."""
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"not a torch dtype: {name!r}")
    return dtype


def _expanded(bias: torch.Tensor | None, dtype: torch.dtype, b: int, hq: int, sq: int, sk: int) -> torch.Tensor | None:
    """The mask as the trace handed it to the fused kernel: additive, over every batch and head."""
    if bias is None:
        return None
    if bias.dtype == torch.bool:
        bias = torch.zeros(bias.shape, dtype=dtype, device="meta").masked_fill(~bias, float("-inf"))
    return bias.expand(b, hq, sq, sk) if bias.dim() == 4 else bias
