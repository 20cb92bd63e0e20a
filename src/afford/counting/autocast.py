"""CUDA autocast, emulated on the meta device for the inference pass of a mixed-precision job and the --amp
training step.

Under `torch.autocast("cuda")` eager PyTorch keeps the weights in fp32 and picks each op's dtype from fixed
lists (ATen/autocast_mode.h, PyTorch 2.14; docs/methodology.md "Autocast"): matmuls, convolutions and attention
run in 16 bits after casting every floating input (a weight once per autocast region: autocast caches the casts
of leaf tensors that require grad); LayerNorm, GroupNorm, exp, log, pow, upsampling and the losses run in fp32
after casting 16-bit inputs up; softmax and sums write fp32 from 16-bit inputs; a few ops promote to their widest
input; every other op follows PyTorch's type promotion, so an fp32 parameter (a position embedding, a layer scale,
a norm's output) makes the residual stream fp32. Meta tensors carry no autocast dispatch key, so the emulation
applies the same lists itself. The casts it adds are real `_to_copy` kernels in the trace, with their bytes.

Autocast works at the level of the functions a model calls (its kernels sit on the dispatcher's Autocast key, above
autograd), so its casts are part of the autograd graph: a training step saves the 16-bit copies and backward casts
gradients back to fp32. The emulation does the same (`_Functions`, a function mode, the lists below by function
name), and caches the cast of a leaf tensor that requires grad (a weight) for the whole region, as autocast's
`cached_cast` does. Composites that call a listed op inside C++ (rare: `nn.MultiheadAttention`'s fast path) are
not seen there; the dispatch-level mode (`Autocast`) casts those for an inference pass and, in a training step
where a cast below autograd would leave backward with mismatched dtypes, names them instead (`missed`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from afford.counting.tensors import held, storage_key

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
# The same lists at the level autocast applies them (autocast_mode.h's op names are the functions' names: F.linear is
# aten::linear, Tensor.exp is aten::exp); a model's call is seen once, at the outermost listed function.
FN_LOWER = frozenset({
    "_convolution", "conv1d", "conv2d", "conv3d", "conv_tbc", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "convolution", "prelu", "addmm", "addmv", "addr", "matmul", "einsum", "mm", "mv",
    "linalg_vecdot", "vecdot", "linear", "addbmm", "baddbmm", "bmm", "chain_matmul", "linalg_multi_dot", "multi_dot",
    "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell", "scaled_dot_product_attention"})
FN_FP32 = frozenset({
    "acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log2", "log1p", "reciprocal", "rsqrt", "sinh",
    "tan", "pow", "softplus", "layer_norm", "rms_norm", "group_norm", "frobenius_norm", "nuclear_norm",
    "cosine_similarity", "poisson_nll_loss", "cosine_embedding_loss", "nll_loss", "nll_loss2d",
    "hinge_embedding_loss", "kl_div", "l1_loss", "smooth_l1_loss", "huber_loss", "mse_loss", "margin_ranking_loss",
    "multilabel_margin_loss", "soft_margin_loss", "triplet_margin_loss", "multi_margin_loss",
    "binary_cross_entropy_with_logits", "dist", "pdist", "cdist", "renorm", "logsumexp",
    "upsample_nearest1d", "_upsample_nearest_exact1d", "upsample_nearest2d", "_upsample_nearest_exact2d",
    "upsample_nearest3d", "_upsample_nearest_exact3d", "upsample_linear1d", "upsample_bilinear2d",
    "_upsample_bilinear2d_aa", "upsample_trilinear3d", "upsample_bicubic2d", "_upsample_bicubic2d_aa",
    # Python functions whose C++ call runs listed ops inside: cross_entropy is log_softmax (fp32 out) then nll_loss
    # (fp32); interpolate and upsample run an upsample op (every mode but "area", an adaptive pooling)
    "cross_entropy", "interpolate", "upsample"})
# run with dtype=float32 (torch.norm and Tensor.norm are Python over linalg_vector_norm; F.normalize divides its
# input by that fp32 norm, so its output is fp32)
FN_OUT_DTYPE = frozenset({"prod", "softmax", "log_softmax", "cumprod", "cumsum", "linalg_vector_norm",
                          "vector_norm", "linalg_matrix_norm", "matrix_norm", "sum", "norm", "normalize"})
FN_PROMOTE = frozenset({"addcdiv", "addcmul", "atan2", "bilinear", "cross", "linalg_cross", "dot", "vdot",
                        "grid_sampler", "grid_sample", "index_put", "tensordot", "scatter_add"})
_FN_NAMES = {"__matmul__": "matmul", "__rmatmul__": "matmul", "__pow__": "pow", "__rpow__": "pow"}


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
def autocast(low: torch.dtype, backstop: bool = True, weights: set[int] | None = None) -> Iterator[Autocast]:
    """Emulated CUDA autocast to `low` (float16 or bfloat16) for the ops run inside, on meta; yields the dispatch
    mode, whose `refused` names the ops that ran as traced and `missed` the listed ops that reached the dispatcher
    in other dtypes. `backstop` casts those there (an inference pass); a training step passes False, as a cast
    below autograd would leave backward with operands of two dtypes. Leaving the region drops its weight casts;
    `weights`, where given, gets their storage keys (a training step does not count them as activations)."""
    mode = Autocast(low, backstop)
    functions = _Functions(low, mode, weights)
    _ACTIVE.append((mode, functions))
    try:
        with functions, mode:
            yield mode
    finally:
        _ACTIVE.pop()
        functions.cache.clear()


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
    """Autocast's lists applied to the functions a model calls (FN_*), above autograd, with autocast's cache of
    weight casts: a leaf fp32 tensor that requires grad is cast to the 16-bit dtype once per region."""

    def __init__(self, low: torch.dtype, below: Autocast, weights: set[int] | None = None) -> None:
        super().__init__()
        self.low, self.below, self.weights = low, below, weights
        self.paused = False
        self.cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id -> (the weight, its 16-bit cast)

    def _lower(self, t: torch.Tensor) -> torch.Tensor:
        """`t` cast to the 16-bit dtype, from the region's cache for a weight (autocast's cached_cast)."""
        if not (t.dtype == torch.float32 and t.is_leaf and t.requires_grad and not t._is_view()):
            return caster(self.low)(t)
        hit = self.cache.get(id(t))
        if hit is None or hit[0] is not t:
            hit = self.cache[id(t)] = (t, caster(self.low)(t))
            if self.weights is not None:
                self.weights.add(storage_key(hit[1]))
        return hit[1]

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        name = _FN_NAMES.get(name, name)
        if self.paused or not (name in FN_LOWER or name in FN_FP32 or name in FN_OUT_DTYPE or name in FN_PROMOTE):
            return func(*args, **kwargs)
        # a listed function runs with autocast off below it (its wrapper's ExcludeDispatchKeyGuard)
        before, self.below.inside = self.below.inside, True
        try:
            try:
                call, cast_args, cast_kwargs = self._policy(name, func, args, kwargs)
                return call(*cast_args, **cast_kwargs)
            except (RuntimeError, TypeError, ValueError, IndexError):
                self.below.refused.add(name)  # the meta kernel refuses autocast's dtypes: run the call as traced
            return func(*args, **kwargs)
        finally:
            self.below.inside = before

    def _policy(self, name: str, func: Any, args: Any, kwargs: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
        """The call autocast makes of listed function `name`: the function and its cast arguments."""
        if name in FN_LOWER:
            return (func, *_cast_all(args, kwargs, self._lower))
        if name in FN_FP32:
            if name in ("interpolate", "upsample") and _arg(args, kwargs, 3, "mode", "nearest") == "area":
                return func, args, kwargs
            return (func, *_cast_all(args, kwargs, caster(torch.float32, LOW)))
        if name in FN_OUT_DTYPE:
            first = args[0] if args and isinstance(args[0], torch.Tensor) else None
            if first is None or first.dtype not in LOW or kwargs.get("dtype") is not None:
                return func, args, kwargs
            if name == "normalize":
                return _normalize, args, kwargs
            dim = _arg(args, kwargs, 1, "dim", None)
            if name in ("softmax", "log_softmax") and first.dtype == torch.float16 and isinstance(dim, int):
                # CUDA reads fp16 and writes fp32 in one kernel (SoftMax.cpp: half_to_float, for Half alone)
                return (torch._softmax if name == "softmax" else torch._log_softmax), (first, dim, True), {}
            return func, args, {**kwargs, "dtype": torch.float32}
        floats = _floats(list(args)) + _floats(list(kwargs.values()))  # FN_PROMOTE
        if not floats:
            return func, args, kwargs
        return (func, *_cast_all(args, kwargs, caster(max((t.dtype for t in floats),
                                                           key=lambda d: torch.finfo(d).bits))))


def _normalize(x: torch.Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out: Any = None) -> torch.Tensor:
    """F.normalize as CUDA autocast runs it on a 16-bit input: the norm in fp32 (linalg_vector_norm is on the
    fp32_set_opt_dtype list), then the 16-bit input divided by it, which promotes to fp32."""
    norm = torch.linalg.vector_norm(x, p, dim, keepdim=True, dtype=torch.float32)
    return torch.div(x, norm.clamp_min(eps).expand_as(x), out=out)


def _arg(args: Any, kwargs: dict[str, Any], position: int, keyword: str, default: Any) -> Any:
    """A call's argument by position or keyword."""
    return args[position] if len(args) > position else kwargs.get(keyword, default)


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
            return _TO_COPY(t.as_strided(held(t), t.stride()), dtype=dtype).expand(t.shape)
        return _TO_COPY(t, dtype=dtype)
    return cast


class Autocast(TorchDispatchMode):
    """Applies autocast's op lists to the aten ops below it (entered above the counting engine's mode, so the casts
    it issues are recorded as kernels). An op whose emulated call the meta kernel refuses runs as traced."""

    def __init__(self, low: torch.dtype, backstop: bool = True) -> None:
        super().__init__()
        self.low, self.backstop = low, backstop
        self.refused: set[str] = set()  # ops the meta kernel refused in autocast's dtypes, run as traced
        self.missed: set[str] = set()  # listed ops that reached the dispatcher in other dtypes (not cast there)
        self.paused = False  # `paused()`: ops run as called, as under torch.autocast(enabled=False)
        self.inside = False  # within a listed function, which autocast already cast (_Functions)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if self.paused or self.inside:
            return func(*args, **kwargs)
        name = func._overloadpacket.__name__
        if not self.backstop:
            if self._misses(name, args, kwargs):
                self.missed.add(name)
            return func(*args, **kwargs)
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

    def _misses(self, name: str, args: Any, kwargs: dict[str, Any]) -> bool:
        """Whether op `name` reached the dispatcher in dtypes autocast would have changed."""
        floats = _floats(list(args)) + _floats(list(kwargs.values()))
        if name in LOWER:
            return any(t.dtype not in (self.low, torch.float64) for t in floats)
        if name in FP32:
            return any(t.dtype in LOW for t in floats)
        low_first = bool(floats) and floats[0].dtype in LOW
        if name in HALF_TO_FLOAT:
            return low_first and not (len(args) >= 3 and args[2])
        return name in OUT_DTYPE and low_first and kwargs.get("dtype") is None
