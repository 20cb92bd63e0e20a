"""Normalisation layers as a GPU runs them, where a meta trace would see other kernels.

RMSNorm: on CUDA (and ROCm, XPU) `torch.rms_norm` calls `aten::_fused_rms_norm`, one kernel that reads the input
once and writes the output once (pytorch/pytorch PR 153666, "Fused RMSNorm implementation", PyTorch 2.8+), unless
the weight's dtype differs from the input's, or the input is channels_last or complex: then it runs the composite
(an fp32 upcast, pow, mean, rsqrt, two multiplies and a cast back; layer_norm.cpp `rms_norm_symint` and
`rms_norm_composite`). Meta has no kernel for either op, so a meta trace always decomposes into the composite's
element-wise kernels: what a CPU runs (it has no fused kernel), not what a GPU runs. `route_rms_norm` takes the GPU's
branch on meta: under CUDA autocast, where `rms_norm` is on the fp32 list (ATen/autocast_mode.h), 16-bit input and
weight are cast to fp32 first (the dtypes then match and the fused kernel runs in fp32); if the fused kernel would
run, the call is recorded as one `_fused_rms_norm` op and its backward as one `_fused_rms_norm_backward` op,
otherwise the composite runs as traced. CPUs price the recorded op at the composite's traffic (efficiency.toml
[passes] cpu_ops).

LayerNorm: PyTorch's CUDA and CPU kernels (layer_norm_kernel.cu `layer_norm_cuda`, layer_norm.cpp
`layer_norm_cpu`) start with `input.expect_contiguous()`, a copy of a non-contiguous input (timm's LayerNorm2d and
ConvNeXt's blocks normalise a permuted NCHW tensor) that the meta kernel does not make. `route_layer_norm` makes
it, after autocast's fp32 cast as autocast orders them, so it is recorded as the copy kernel it is.

The FLOPs are unchanged (norms count none); time and saved activations follow the kernels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from afford.counting import autocast
from afford.counting.tensors import channels_last


def _stat_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the saved reciprocal RMS: float for 16- and 32-bit inputs, as the CUDA kernel's accumulator."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _stat_shape(x: torch.Tensor, normalized_shape: Sequence[int]) -> list[int]:
    n = len(normalized_shape)
    return list(x.shape[: x.dim() - n]) + [1] * n


@torch.library.custom_op("afford::_fused_rms_norm", mutates_args=())
def fused_rms_norm(input: torch.Tensor, normalized_shape: list[int], weight: torch.Tensor | None,
                   eps: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch's fused RMSNorm kernel (output, reciprocal RMS), computed by the composite off the meta device."""
    dims = tuple(range(-len(normalized_shape), 0))
    xf = input.to(_stat_dtype(input.dtype))
    rstd = torch.rsqrt(xf.pow(2).mean(dims, keepdim=True) + (eps if eps is not None else torch.finfo(xf.dtype).eps))
    out = xf * rstd
    if weight is not None:
        out = out * weight
    return out.to(input.dtype).contiguous(), rstd


@fused_rms_norm.register_fake
def _fused_rms_norm_fake(input: torch.Tensor, normalized_shape: list[int], weight: torch.Tensor | None,
                         eps: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.empty_like(input, memory_format=torch.contiguous_format),
            input.new_empty(_stat_shape(input, normalized_shape), dtype=_stat_dtype(input.dtype)))


@torch.library.custom_op("afford::_fused_rms_norm_backward", mutates_args=())
def fused_rms_norm_backward(grad_out: torch.Tensor, input: torch.Tensor, normalized_shape: list[int],
                            rstd: torch.Tensor, weight: torch.Tensor | None,
                            output_mask: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
    """PyTorch's fused RMSNorm backward (grad_input, grad_weight; an empty tensor without a weight)."""
    dims = tuple(range(-len(normalized_shape), 0))
    xf, gf = input.to(rstd.dtype), grad_out.to(rstd.dtype)
    xhat = xf * rstd
    gw = gf * weight.to(rstd.dtype) if weight is not None else gf
    grad_input = rstd * (gw - xhat * (gw * xhat).mean(dims, keepdim=True))
    lead = tuple(range(input.dim() - len(normalized_shape)))
    grad_weight = (gf * xhat).sum(lead).to(weight.dtype) if weight is not None else input.new_empty(0)
    return grad_input.to(input.dtype), grad_weight


@fused_rms_norm_backward.register_fake
def _fused_rms_norm_backward_fake(grad_out: torch.Tensor, input: torch.Tensor, normalized_shape: list[int],
                                  rstd: torch.Tensor, weight: torch.Tensor | None,
                                  output_mask: list[bool]) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.empty_like(input, memory_format=torch.contiguous_format),
            torch.empty_like(weight) if weight is not None else input.new_empty(0))


def _setup(ctx: Any, inputs: tuple[Any, ...], output: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, shape, weight, _ = inputs
    ctx.shape = shape
    ctx.has_weight = weight is not None
    ctx.save_for_backward(x, output[1], weight)  # what the CUDA kernel's autograd saves: input, rstd (and weight)


def _backward(ctx: Any, grad_out: torch.Tensor, _grad_rstd: torch.Tensor | None) -> tuple[Any, ...]:
    x, rstd, weight = ctx.saved_tensors
    mask = [bool(ctx.needs_input_grad[0]), bool(ctx.needs_input_grad[2])]
    grad_x, grad_w = fused_rms_norm_backward(grad_out, x, ctx.shape, rstd, weight if ctx.has_weight else None,
                                             mask)
    return grad_x, None, grad_w if ctx.has_weight else None, None


fused_rms_norm.register_autograd(_backward, setup_context=_setup)


def fused_applies(x: torch.Tensor, weight: torch.Tensor | None) -> bool:
    """Whether PyTorch's CUDA `rms_norm` takes the fused kernel for these arguments (rms_norm_symint's checks)."""
    if x.is_complex() or channels_last(x):
        return False
    return weight is None or weight.dtype == x.dtype


def route_layer_norm(func: Any, args: Any, kwargs: dict[str, Any], _counter: Any = None) -> Any:
    """`F.layer_norm` / `torch.layer_norm` on meta with the kernel's copy of a non-contiguous input (module
    docstring); as called otherwise."""
    x = args[0] if args else None
    if not isinstance(x, torch.Tensor) or x.device.type != "meta" or x.is_contiguous():
        return func(*args, **kwargs)
    x = _up(x) if autocast.current_low() is not None else x  # autocast's cast keeps the strides; the copy follows
    return func(x.contiguous(), *args[1:], **kwargs)


def route_rms_norm(func: Any, args: Any, kwargs: dict[str, Any], _counter: Any = None) -> Any:
    """`F.rms_norm` / `torch.rms_norm` on meta as CUDA runs it (module docstring); as called otherwise."""
    if not args or not isinstance(args[0], torch.Tensor) or args[0].device.type != "meta":
        return func(*args, **kwargs)
    names = ["input", "normalized_shape", "weight", "eps"]
    bound = dict(zip(names, args, strict=False))
    bound.update(kwargs)
    x, weight, eps = bound["input"], bound.get("weight"), bound.get("eps")
    shape = bound["normalized_shape"]
    shape = [int(shape)] if isinstance(shape, int) else [int(s) for s in shape]
    if autocast.current_low() is not None:  # rms_norm is on autocast's fp32 list: its 16-bit inputs go up
        x = _up(x)
        weight = _up(weight) if isinstance(weight, torch.Tensor) else weight
    if not fused_applies(x, weight):
        return func(x, shape, weight, eps)
    if not x.is_contiguous():
        x = x.contiguous()  # the kernel's expect_contiguous: a copy, recorded as one
    return fused_rms_norm(x, shape, weight, None if eps is None else float(eps))[0]


ROUTES = {F.rms_norm: route_rms_norm, torch.rms_norm: route_rms_norm, F.layer_norm: route_layer_norm,
          torch.layer_norm: route_layer_norm}


def _up(t: torch.Tensor) -> torch.Tensor:
    """Autocast's cast of a 16-bit floating tensor to fp32 (a recorded kernel); other tensors as they are."""
    return autocast.caster(torch.float32, autocast.LOW)(t)
