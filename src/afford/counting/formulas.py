"""FLOP formulas that `torch.utils.flop_counter` lacks, added to its own registry.

We extend PyTorch's registry (one source of truth) instead of writing a second counter. Each formula counts
2 FLOPs per multiply-add, PyTorch's convention. A formula is registered only where PyTorch has none, so a
future PyTorch that adds one keeps its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils import flop_counter as fc

aten = torch.ops.aten

Shape = tuple[int, ...]


def grouped_mm_flops(a: Shape, b: Shape) -> int:
    """FLOPs of `aten._grouped_mm` for the four layouts it accepts (MoE experts in transformers).

    2D x 3D with offsets: rows of `a` are split among the groups of `b`, each row meets one expert, so the
    work is 2 * rows * K * N whatever the routing; 3D x 3D is a plain batched matmul; 2D x 2D and 3D x 2D
    are the weight- and input-gradient layouts, groups split the contracted or the output dimension.
    """
    if len(a) == 2 and len(b) == 3:
        return 2 * a[0] * a[1] * b[2]
    if len(a) == 3 and len(b) == 3:
        return 2 * a[0] * a[1] * a[2] * b[2]
    if len(a) == 2 and len(b) == 2:
        return 2 * a[0] * a[1] * b[1]
    if len(a) == 3 and len(b) == 2:
        return 2 * a[1] * a[2] * b[1]
    raise ValueError(f"grouped_mm with shapes {a} x {b} is not a layout PyTorch accepts")


def _grouped_mm(a_shape: Shape, b_shape: Shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return grouped_mm_flops(a_shape, b_shape)


def _mv(a_shape: Shape, v_shape: Shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return 2 * a_shape[0] * a_shape[1]


def _addmv(self_shape: Shape, a_shape: Shape, v_shape: Shape, *args: Any, out_shape: Any = None,
           **kwargs: Any) -> int:
    return 2 * a_shape[0] * a_shape[1]


def _dot(a_shape: Shape, b_shape: Shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return 2 * a_shape[0]


def _addbmm(self_shape: Shape, a_shape: Shape, b_shape: Shape, *args: Any, out_shape: Any = None,
            **kwargs: Any) -> int:
    b, m, k = a_shape
    return 2 * b * m * k * b_shape[2]


def _int_mm(a_shape: Shape, b_shape: Shape, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
    return 2 * a_shape[0] * a_shape[1] * b_shape[1]


def _sdpa_forward(query: Shape, key: Shape, value: Shape, *args: Any, out_shape: Any = None,
                  **kwargs: Any) -> int:
    return int(fc.sdpa_flop_count(query, key, value))


def _sdpa_backward(grad_out: Shape, query: Shape, key: Shape, value: Shape, *args: Any, out_shape: Any = None,
                   **kwargs: Any) -> int:
    return int(fc.sdpa_backward_flop_count(grad_out, query, key, value))


def _conv_backward(grad_out_shape: Shape, x_shape: Shape, w_shape: Shape, _bias: Any, _stride: Any, _padding: Any,
                   _dilation: Any, transposed: bool, _output_padding: Any, groups: int, output_mask: Any,
                   out_shape: Any = None, **kwargs: Any) -> int:
    """Convolution backward, group-aware.

    PyTorch's own formula (torch 2.14) ignores `groups` for the weight gradient and so counts a depthwise
    convolution's weight gradient `groups` times over (MobileNetV3: backward 26x forward). The weight gradient
    of a grouped convolution is one convolution per group, so PyTorch's figure divided by `groups` is exact;
    the input gradient is already right (the weight shape carries C_in / groups).
    """

    def t(shape: Shape | list[int]) -> list[int]:
        return [shape[1], shape[0], *shape[2:]]

    flops = 0
    if output_mask[0]:
        flops += fc.conv_flop_count(list(grad_out_shape), list(w_shape), list(out_shape[0]), not transposed)
    if output_mask[1]:
        gw = list(out_shape[1])
        if transposed:
            weight = fc.conv_flop_count(t(grad_out_shape), t(x_shape), t(gw), transposed=False)
        else:
            weight = fc.conv_flop_count(t(x_shape), t(grad_out_shape), t(gw), transposed=False)
        flops += weight // max(int(groups), 1)
    return int(flops)


# op name -> formula over shapes. Ops PyTorch lacks, plus corrected ones (marked in OVERRIDES).
EXTRA_FORMULAS: dict[str, Callable[..., int]] = {
    "_grouped_mm": _grouped_mm,
    "_scaled_grouped_mm": _grouped_mm,
    "mv": _mv,
    "addmv": _addmv,
    "dot": _dot,
    "vdot": _dot,
    "addbmm": _addbmm,
    "_int_mm": _int_mm,
    "_scaled_dot_product_flash_attention_for_cpu": _sdpa_forward,
    "_scaled_dot_product_flash_attention_for_cpu_backward": _sdpa_backward,
    "_scaled_dot_product_fused_attention_overrideable": _sdpa_forward,
    "_scaled_dot_product_fused_attention_overrideable_backward": _sdpa_backward,
    "convolution_backward": _conv_backward,
}

# Formulas that replace PyTorch's because its own is wrong for some inputs (documented above each).
OVERRIDES = frozenset({"convolution_backward"})


def custom_mapping() -> dict[Any, Callable[..., int]]:
    """The formulas to hand to `FlopCounterMode(custom_mapping=...)`: PyTorch's registry stays untouched and
    ours win only for ops it lacks or where OVERRIDES says its own is wrong."""
    mapping: dict[Any, Callable[..., int]] = {}
    for name, formula in EXTRA_FORMULAS.items():
        packet = getattr(aten, name, None)
        if packet is None:
            continue
        if packet in fc.flop_registry and name not in OVERRIDES:
            continue
        mapping[packet] = formula
    return mapping
