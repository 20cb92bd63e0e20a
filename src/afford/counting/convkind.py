"""Tell depthwise and grouped convolutions from dense ones in the trace, by the op name each event is recorded under.

A convolution's event key is (op name, FLOPs, bytes) (counting/engine.py `Counter._count_flops`), which cannot tell a
7x7 depthwise convolution from a dense one; GPUs run them on different kernels (estimate/convtime.py). So an
`aten.convolution` (or its `convolution_backward`) whose `groups` argument is above 1 is recorded under a tagged name:

    convolution_depthwise          groups == input channels, a kernel PyTorch hands to cuDNN in fp16 (1/3/5 filters)
    convolution_depthwise_direct   groups == input channels, any other: PyTorch's own depthwise kernel in every format
    convolution_grouped            1 < groups < input channels (RegNet, ResNeXt): cuDNN's grouped convolution

and `convolution_backward_depthwise`, `..._depthwise_direct`, `..._grouped` likewise. The split of the depthwise ones
follows PyTorch's backend choice for NCHW inputs (aten/src/ATen/native/Convolution.cpp, `use_cudnn_depthwise` and
`check_cudnn_depthwise_workload_with_filter`, pytorch/pytorch@954cecd1): cuDNN only for fp16, 4-D inputs of at least
32 channels, no dilation, equal strides, square 1x1 / 3x3 / 5x5 filters on maps at least 7 wide, any stride 1 and
stride 2 only for wide layers (>= 512 channels, or >= 256 channels on maps >= 28 wide); bf16 and fp32 always take
PyTorch's direct kernel (`conv_depthwise2d`). PyTorch's batch-1 exceptions are left out: the traced batch need not be
the job's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

FORWARD_OP = "convolution"
BACKWARD_OP = "convolution_backward"
DEPTHWISE, DIRECT, GROUPED = "_depthwise", "_depthwise_direct", "_grouped"

# where `groups`, the input and the weight sit among each op's positional arguments (aten signatures)
_LAYOUT = {FORWARD_OP: (8, 0, 1, 3, 5), BACKWARD_OP: (9, 1, 2, 4, 6)}  # groups, input, weight, stride, dilation
_TRANSPOSED = {FORWARD_OP: 6, BACKWARD_OP: 7}

FORWARD = frozenset({FORWARD_OP, *(FORWARD_OP + s for s in (DEPTHWISE, DIRECT, GROUPED))})
BACKWARD = frozenset({BACKWARD_OP, *(BACKWARD_OP + s for s in (DEPTHWISE, DIRECT, GROUPED))})
TAGGED = (FORWARD | BACKWARD) - {FORWARD_OP, BACKWARD_OP}


def _arg(args: Sequence[Any], kwargs: dict[str, Any], index: int, name: str) -> Any:
    """A positional argument of an aten call, or its keyword form."""
    return args[index] if len(args) > index else kwargs.get(name)


def _pair(value: Any) -> tuple[int, ...]:
    """A stride or dilation as a tuple of ints (an int stands for every dimension)."""
    if isinstance(value, (list, tuple)):
        return tuple(int(v) for v in value)
    return (int(value),) if value is not None else ()


def cudnn_depthwise(shape: Sequence[int], kernel: Sequence[int], stride: Sequence[int],
                    dilation: Sequence[int]) -> bool:
    """Whether PyTorch sends an fp16 NCHW depthwise convolution of this input shape, kernel, stride and dilation to
    cuDNN rather than to its own kernel (Convolution.cpp `use_cudnn_depthwise`, batch above 1)."""
    if len(shape) == 3 and len(kernel) == 1:  # a 1-D convolution runs as a 2-D one over (N, C, 1, L)
        shape, kernel = (shape[0], shape[1], 1, shape[2]), (1, kernel[0])
        stride, dilation = (1, *stride[-1:]), (1, *dilation[-1:])
    if len(shape) != 4 or len(kernel) != 2 or any(d != 1 for d in dilation) or int(shape[1]) < 32:
        return False
    if len(set(stride)) > 1 and int(shape[2]) != 1:
        return False
    s = int(stride[-1]) if stride else 1
    if int(shape[2]) == 1 and s == 1:
        return True
    if kernel[0] != kernel[1] or kernel[1] not in (1, 3, 5) or int(shape[3]) < 7:
        return False
    if s == 1:
        return True
    if s != 2:
        return False
    ch, w = int(shape[1]), int(shape[3])
    if kernel[1] == 1:
        return False  # PyTorch's 1x1 stride-2 case needs batch <= 16, 128+ channels and maps <= 7 wide: not worth it
    return ch >= 512 or (ch >= 256 and w >= 28)


def tag(name: str, args: Sequence[Any], kwargs: dict[str, Any] | None = None) -> str:
    """The name a convolution op is recorded under (see the module docstring); every other op keeps its name."""
    layout = _LAYOUT.get(name)
    if layout is None:
        return name
    kwargs = kwargs or {}
    g_at, x_at, w_at, s_at, d_at = layout
    groups = _arg(args, kwargs, g_at, "groups")
    if not isinstance(groups, int) or groups <= 1:
        return name
    x, w = _arg(args, kwargs, x_at, "input"), _arg(args, kwargs, w_at, "weight")
    shape = tuple(getattr(x, "shape", ()))
    if len(shape) < 3 or bool(_arg(args, kwargs, _TRANSPOSED[name], "transposed")) or int(shape[1]) != groups:
        return name + GROUPED
    kernel = tuple(int(k) for k in tuple(getattr(w, "shape", ()))[2:])
    stride = _pair(_arg(args, kwargs, s_at, "stride"))
    dilation = _pair(_arg(args, kwargs, d_at, "dilation"))
    return name + (DEPTHWISE if cudnn_depthwise(shape, kernel, stride, dilation) else DIRECT)


def is_depthwise(op: str) -> bool:
    """Whether a recorded op name is a depthwise convolution, forward or backward."""
    return op.endswith((DEPTHWISE, DIRECT))


def runs_direct(op: str, precision: str) -> bool:
    """Whether PyTorch runs this depthwise convolution in its own direct kernel at `precision` (cuDNN takes only
    fp16 ones, and only those tagged `_depthwise`)."""
    return op.endswith(DIRECT) or (op.endswith(DEPTHWISE) and precision not in ("fp16", "fp16-mixed"))
