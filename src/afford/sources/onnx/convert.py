"""Conversion with meta weights: onnx2torch patched to use afford's converter look-up and to build weights as
meta tensors from their dims alone."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from torch import fx, nn

from afford.errors import UnsupportedError
from afford.extras import require
from afford.sources.onnx.converters import _lookup, _opset
from afford.sources.onnx.tensors import _proto_dtype, _real_tensor, _stays_real

# Inputs that onnx2torch copies into a torch module's parameters or buffers (`module.weight.data = ...`): these
# initializers are meta stand-ins at any size, as the module's own tensors are.
_MODULE_WEIGHTS: dict[str, tuple[int, ...]] = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (1, 2), "BatchNormalization": (1, 2, 3, 4),
    "InstanceNormalization": (1, 2), "LayerNormalization": (1, 2),
}


def _module_weights(model: Any) -> set[str]:
    out: set[str] = set()
    for node in model.graph.node:
        for i in _MODULE_WEIGHTS.get(node.op_type, ()) if node.domain in ("", "ai.onnx") else ():
            if i < len(node.input) and node.input[i]:
                out.add(node.input[i])
    return out


@contextmanager
def _conversion(model: Any, base: Path, meta: bool) -> Iterator[None]:
    """onnx2torch patched for the duration of one conversion: afford's converter look-up, initializers read
    from `base` (external data) and, when `meta`, weights as meta tensors built from their dims alone."""
    require("onnx2torch")  # a missing library: one line naming the onnx extra
    import onnx2torch.converter as conv
    from onnx2torch.onnx_tensor import OnnxTensor

    opset = _opset(model)
    by_desc: dict[tuple[str, str], Any] = {}
    for node in model.graph.node:
        by_desc.setdefault((node.domain or "", node.op_type), node)

    def get_converter(operation_type: str, version: int, domain: str = "") -> Any:
        node = by_desc.get((domain or "", operation_type))
        found = _lookup(node, opset) if node is not None else None
        if found is None:
            raise NotImplementedError(f"no converter for {operation_type}-{version}")
        return found

    weights = _module_weights(model)

    def to_torch(self: Any) -> torch.Tensor:
        proto = self._proto
        dtype = _proto_dtype(proto)
        if meta and (proto.name in weights
                     or not _stays_real(math.prod(proto.dims), dtype.is_floating_point or dtype.is_complex)):
            return torch.empty(tuple(proto.dims), dtype=dtype, device="meta")
        return _real_tensor(proto, base)

    register_parameter = nn.Module.register_parameter
    register_buffer = nn.Module.register_buffer

    def meta_parameter(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=param.requires_grad)
        register_parameter(self, name, param)

    def meta_buffer(self: nn.Module, name: str, tensor: torch.Tensor | None, persistent: bool = True) -> None:
        if tensor is not None and tensor.device.type != "meta" and (
                isinstance(self, nn.modules.batchnorm._NormBase)
                or not _stays_real(tensor.numel(), tensor.is_floating_point())):
            tensor = torch.empty_like(tensor, device="meta")
        register_buffer(self, name, tensor, persistent)

    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(conv, "get_converter", get_converter))
        stack.enter_context(mock.patch.object(OnnxTensor, "to_torch", to_torch))
        if meta:
            stack.enter_context(mock.patch.object(nn.Module, "register_parameter", meta_parameter))
            stack.enter_context(mock.patch.object(nn.Module, "register_buffer", meta_buffer))
        yield


def _convert(model: Any, base: Path, name: str, meta: bool = True) -> fx.GraphModule:
    """The fx GraphModule onnx2torch builds; a converter's refusal is a one-line UnsupportedError."""
    require("onnx2torch")  # a missing library: one line naming the onnx extra
    from onnx2torch import convert

    try:
        with _conversion(model, base, meta):
            return convert(model)
    except NotImplementedError as exc:
        raise UnsupportedError(f"{name}: the ONNX converter cannot handle this graph: {exc}") from None
    except (ValueError, KeyError, RuntimeError, TypeError, IndexError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedError(f"{name}: the ONNX graph cannot be converted: {type(exc).__name__}: "
                               f"{text[:200]}") from None
