"""CUDA autocast, emulated on the meta device for a traced inference pass of a mixed-precision job.

Under `torch.autocast("cuda")` eager PyTorch keeps the weights in fp32 and picks each op's dtype from fixed
lists (ATen/autocast_mode.h, PyTorch 2.14; docs/methodology.md "Autocast"): matmuls, convolutions and attention
run in 16 bits after casting every floating input (a weight cast per call: autocast caches casts only for leaf
tensors that require grad inside one autocast region); LayerNorm, GroupNorm, exp, log, pow, upsampling and the
losses run in fp32 after casting 16-bit inputs up; softmax and sums write fp32 from 16-bit inputs; a few ops
promote to their widest input; every other op follows PyTorch's type promotion, so an fp32 parameter (a
position embedding, a layer scale, a norm's output) makes the residual stream fp32. Meta tensors carry no
autocast dispatch key, so this mode applies the same lists to the aten ops the trace sees (below any composite
op's decomposition). The casts it adds are real `_to_copy` kernels in the trace, with their bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

# ops run in the 16-bit autocast dtype (the lower-precision list; the fused attention kernels afford's router
# calls in place of scaled_dot_product_attention, which is on the list)
LOWER = frozenset({
    "mm", "addmm", "bmm", "baddbmm", "addbmm", "addmv", "mv", "addr", "convolution", "_convolution", "conv_tbc",
    "prelu", "_prelu_kernel", "_scaled_dot_product_efficient_attention", "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_cudnn_attention", "_thnn_fused_lstm_cell", "_thnn_fused_gru_cell"})
# ops run in fp32 (16-bit floating inputs cast up first)
FP32 = frozenset({
    "acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log2", "log1p", "reciprocal", "rsqrt", "sinh",
    "tan", "pow", "softplus", "native_layer_norm", "_fused_rms_norm", "native_group_norm", "cdist",
    "_cdist_forward", "dist", "_pdist_forward", "renorm", "logsumexp", "nll_loss_forward", "nll_loss2d_forward",
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "binary_cross_entropy_with_logits",
    "soft_margin_loss", "multi_margin_loss", "multilabel_margin_loss_forward", "upsample_nearest1d",
    "_upsample_nearest_exact1d", "upsample_nearest2d", "_upsample_nearest_exact2d", "upsample_nearest3d",
    "_upsample_nearest_exact3d", "upsample_linear1d", "upsample_bilinear2d", "_upsample_bilinear2d_aa",
    "upsample_trilinear3d", "upsample_bicubic2d", "_upsample_bicubic2d_aa"})
# ops whose output dtype autocast sets to fp32 when their input is 16-bit (one kernel from fp16; bf16 cast up first)
HALF_TO_FLOAT = frozenset({"_softmax", "_log_softmax"})  # their third argument: half_to_float
OUT_DTYPE = frozenset({"sum", "prod", "cumsum", "cumprod", "linalg_vector_norm"})  # a `dtype` keyword
# ops run in the widest floating dtype of their inputs
PROMOTE = frozenset({"addcdiv", "addcmul", "atan2", "cross", "linalg_cross", "dot", "vdot", "grid_sampler_2d",
                     "grid_sampler_3d", "index_put", "scatter_add"})
LOW = (torch.float16, torch.bfloat16)  # the 16-bit dtypes autocast runs in
_TO_COPY = torch.ops.aten._to_copy.default  # a cast as the kernel autocast's cached_cast runs (`to` decomposes to it)
# composite functions on the lower-precision list that check their inputs' dtypes before any aten op dispatches
# (a convolution's input, weight and bias must agree): cast where autocast does, at the function
_CHECKED = frozenset({F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d,
                      torch.conv1d, torch.conv2d, torch.conv3d, torch.conv_transpose1d, torch.conv_transpose2d,
                      torch.conv_transpose3d, torch.convolution})


def _map(value: Any, fn: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_map(v, fn) for v in value)
    return value


def _cast_all(args: Any, kwargs: dict[str, Any], cast: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """An op's arguments with `cast` applied to every tensor in them."""
    return _map(tuple(args), cast), {k: _map(v, cast) for k, v in kwargs.items()}


def _floats(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value] if value.is_floating_point() else []
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _floats(v)]
    return []


_ACTIVE: list[tuple[Autocast, _Functions]] = []  # the emulations entered, innermost last


@contextmanager
def autocast(low: torch.dtype) -> Iterator[Autocast]:
    """Emulated CUDA autocast to `low` (float16 or bfloat16) for the ops run inside, on meta; yields the dispatch
    mode, whose `refused` names the ops that ran as traced."""
    mode, functions = Autocast(low), _Functions(low)
    _ACTIVE.append((mode, functions))
    try:
        with functions, mode:
            yield mode
    finally:
        _ACTIVE.pop()


def current_low() -> torch.dtype | None:
    """The 16-bit dtype of the emulated autocast running now (None outside one, or while it is paused): what
    `torch.get_autocast_dtype("cuda")` answers inside `torch.autocast`, for code that asks (timm's fast-norm)."""
    if not _ACTIVE or _ACTIVE[-1][0].paused:
        return None
    return _ACTIVE[-1][0].low


@contextmanager
def paused() -> Iterator[None]:
    """The emulation's op lists off for the ops run inside, as `torch.autocast(..., enabled=False)` turns the real
    one off (a no-op outside an emulation)."""
    if not _ACTIVE:
        yield
        return
    mode, functions = _ACTIVE[-1]
    before = mode.paused
    mode.paused = functions.paused = True
    try:
        yield
    finally:
        mode.paused = functions.paused = before


class _Functions(TorchFunctionMode):
    """Autocast's casts for the lower-precision composites that check dtypes before dispatch (`_CHECKED`)."""

    def __init__(self, low: torch.dtype) -> None:
        super().__init__()
        self.low = low
        self.paused = False

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _CHECKED and not self.paused:
            args, kwargs = _cast_all(args, kwargs, caster(self.low))
        return func(*args, **kwargs)


def caster(dtype: torch.dtype, only: tuple[torch.dtype, ...] | None = None) -> Any:
    """A cast of one tensor as autocast's cached_cast does it: floating, not fp64, not already `dtype` (and, with
    `only`, of one of those dtypes)."""
    def cast(t: torch.Tensor) -> torch.Tensor:
        eligible = t.is_floating_point() and t.dtype != torch.float64 and t.dtype != dtype
        if not eligible or (only is not None and t.dtype not in only):
            return t
        if t.layout == torch.strided and any(s == 0 and n > 1 for s, n in zip(t.stride(), t.shape, strict=True)):
            # a broadcast view (matmul expands a linear layer's weight over a batch of non-contiguous inputs):
            # autocast cast the tensor before it was expanded, so cast the elements it holds, then expand again
            held = [1 if s == 0 else n for s, n in zip(t.stride(), t.shape, strict=True)]
            return _TO_COPY(t.as_strided(held, t.stride()), dtype=dtype).expand(t.shape)
        return _TO_COPY(t, dtype=dtype)
    return cast


class Autocast(TorchDispatchMode):
    """Applies autocast's op lists to the aten ops below it (entered above the counting engine's mode, so the casts
    it issues are recorded as kernels). An op whose emulated call the meta kernel refuses runs as traced."""

    def __init__(self, low: torch.dtype) -> None:
        super().__init__()
        self.low = low
        self.refused: set[str] = set()  # ops the meta kernel refused in autocast's dtypes, run as traced
        self.paused = False  # `paused()`: ops run as called, as under torch.autocast(enabled=False)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if self.paused:
            return func(*args, **kwargs)
        name = func._overloadpacket.__name__
        try:
            cast = None
            if name in LOWER:
                cast = caster(self.low)
            elif name in FP32:
                cast = caster(torch.float32, LOW)
            elif name in PROMOTE and (floats := _floats(args) + _floats(list(kwargs.values()))):
                cast = caster(max((t.dtype for t in floats), key=lambda d: torch.finfo(d).bits))
            if cast is not None:
                cast_args, cast_kwargs = _cast_all(args, kwargs, cast)
                return func(*cast_args, **cast_kwargs)
            first = args[0] if args and isinstance(args[0], torch.Tensor) else None
            low_input = first is not None and first.dtype in LOW
            if name in HALF_TO_FLOAT and low_input and len(args) >= 3:
                if first is not None and first.dtype == torch.float16:  # CUDA: fp32 from a Half input, one kernel
                    return func(args[0], args[1], True, *args[3:], **kwargs)
                # a bfloat16 input is cast up first (SoftMax.cpp `softmax`: half_to_float is for Half alone)
                return func(_TO_COPY(args[0], dtype=torch.float32), args[1], False, *args[3:], **kwargs)
            if name in OUT_DTYPE and low_input and kwargs.get("dtype") is None:
                return func(*args, **{**kwargs, "dtype": torch.float32})
        except (RuntimeError, TypeError, ValueError, IndexError):
            self.refused.add(name)  # the meta kernel refuses the emulated dtypes: run the op as traced
        return func(*args, **kwargs)
