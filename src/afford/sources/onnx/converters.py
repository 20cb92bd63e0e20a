"""Which converter handles an ONNX node: onnx2torch's registry, afford's overrides where it is wrong, afford's
own converters for op versions onnx2torch lacks, and a previous version's where the schemas agree."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from afford.extras import require


def _signature(schema: Any) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    inputs = [i.name for i in schema.inputs]
    attrs = {a.name: a.default_value.SerializeToString() for a in schema.attributes.values()}
    return {"outputs": [o.name for o in schema.outputs]}, inputs, attrs


def _compatible(node: Any, old_schema: Any, new_schema: Any) -> bool:
    """True when the node means the same under the older schema: the newer one only widened the types or added
    optional inputs and attributes that this node leaves unset (checked against the ONNX schemas themselves)."""
    old_out, old_in, old_attrs = _signature(old_schema)
    new_out, new_in, new_attrs = _signature(new_schema)
    if old_out != new_out or new_in[:len(old_in)] != old_in:
        return False
    if any(name not in new_attrs or new_attrs[name] != value for name, value in old_attrs.items()):
        return False
    used_attrs = {a.name for a in node.attribute}
    if used_attrs & (set(new_attrs) - set(old_attrs)):
        return False
    extra_inputs = list(node.input)[len(old_in):]
    return not any(extra_inputs)


def _lookup(node: Any, opset: dict[str, int]) -> Callable[..., Any] | None:
    """afford's override (Reshape, Flatten), else onnx2torch's converter for the node's opset, else afford's own
    (Gelu-20, Split-18, Reduce*-18), else the converter of the op's previous version when this node cannot tell
    the two schemas apart (a type-only change, or optional inputs and attributes it leaves unset)."""
    require("onnx")  # a missing library: one line naming the onnx extra
    from onnx import defs
    require("onnx2torch")  # a missing library: one line naming the onnx extra
    from onnx2torch.node_converters import registry

    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    version = opset.get(domain) or (opset.get("ai.onnx", 0) if domain == "" else 0)
    if domain == "" and node.op_type in _OVERRIDES:
        return _OVERRIDES[node.op_type]
    try:
        return registry.get_converter(domain=domain, operation_type=node.op_type, version=version)
    except NotImplementedError:
        pass
    own = _OWN_CONVERTERS.get(node.op_type)
    try:
        schema = defs.get_schema(node.op_type, max_inclusive_version=version, domain=domain)
    except (RuntimeError, defs.SchemaError):
        return None
    if own is not None and schema.since_version >= own[0]:
        return own[1]
    older = sorted((d.version for d in registry._CONVERTER_REGISTRY
                    if d.domain == domain and d.operation_type == node.op_type and d.version < schema.since_version),
                   reverse=True)
    for v in older[:1]:
        old_schema = defs.get_schema(node.op_type, max_inclusive_version=v, domain=domain)
        if _compatible(node, old_schema, schema):
            return registry._CONVERTER_REGISTRY[registry.OperationDescription(domain, node.op_type, v)]
    return None


def _opset(model: Any) -> dict[str, int]:
    return {(o.domain or ""): int(o.version) for o in model.opset_import}


def _unsupported(model: Any) -> dict[str, int]:
    """Op types (with their node counts) that no converter handles."""
    opset = _opset(model)
    missing: dict[str, int] = {}
    for node in model.graph.node:
        if _lookup(node, opset) is None:
            name = f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
            label = f"{name}-{opset.get(node.domain or '', 0)}"
            missing[label] = missing.get(label, 0) + 1
    return missing


class _Gelu(nn.Module):
    """ONNX Gelu (opset 20): erf form, or tanh form when approximate="tanh"."""

    def __init__(self, approximate: str) -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(x, approximate=self.approximate)


def _gelu_converter(node: Any, graph: Any) -> Any:
    require("onnx2torch")  # a missing library: one line naming the onnx extra
    from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node

    approximate = node.attributes.get("approximate", "none")
    if isinstance(approximate, bytes):
        approximate = approximate.decode()
    return OperationConverterResult(torch_module=_Gelu(str(approximate)), onnx_mapping=onnx_mapping_from_node(node))


def _reduce18_converter(node: Any, graph: Any) -> Any:
    """Reduce*-18 moved `axes` from an attribute to an input; a constant input maps onto onnx2torch's module."""
    require("onnx2torch")  # a missing library: one line naming the onnx extra
    from onnx2torch.node_converters.reduce import OnnxReduceStaticAxes
    from onnx2torch.utils.common import OnnxMapping, OperationConverterResult, get_const_value

    keepdims = int(node.attributes.get("keepdims", 1))
    axes: list[int] | None = None
    if len(node.input_values) > 1 and node.input_values[1]:
        try:
            axes = [int(a) for a in torch.as_tensor(get_const_value(node.input_values[1], graph)).flatten().tolist()]
        except KeyError:
            raise NotImplementedError(f"{node.operation_type} with axes computed at run time") from None
    if not axes and int(node.attributes.get("noop_with_empty_axes", 0)):
        module: nn.Module = nn.Identity()
    else:
        module = OnnxReduceStaticAxes(operation_type=node.operation_type, axes=axes or None, keepdims=keepdims)
    return OperationConverterResult(torch_module=module,
                                    onnx_mapping=OnnxMapping(inputs=(node.input_values[0],),
                                                             outputs=node.output_values))


class _ReshapeAllowZero(nn.Module):
    """ONNX Reshape with allowzero=1: a 0 in the shape is an empty dimension, not a copy of the input's."""

    def forward(self, x: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        return torch.reshape(x, [int(v) for v in shape.tolist()])


def _reshape_converter(node: Any, graph: Any) -> Any:
    """onnx2torch's Reshape, which refuses allowzero=1 (the torch.export exporter sets it on every Reshape)."""
    require("onnx2torch")  # a missing library: one line naming the onnx extra
    from onnx2torch.node_converters.registry import get_converter
    from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node

    if int(node.attributes.get("allowzero", 0)) == 1:
        return OperationConverterResult(torch_module=_ReshapeAllowZero(), onnx_mapping=onnx_mapping_from_node(node))
    return get_converter(operation_type="Reshape", version=14)(node, graph)


class _Flatten(nn.Module):
    """ONNX Flatten: a 2-D result split before `axis` (onnx2torch's fails for axis 0 and axis = rank)."""

    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        axis = self.axis + x.dim() if self.axis < 0 else self.axis
        return torch.reshape(x, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


def _flatten_converter(node: Any, graph: Any) -> Any:
    require("onnx2torch")  # a missing library: one line naming the onnx extra
    from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node

    return OperationConverterResult(torch_module=_Flatten(int(node.attributes.get("axis", 1))),
                                    onnx_mapping=onnx_mapping_from_node(node))


class _Split18(nn.Module):
    """ONNX Split-18: by the `split` sizes input, else into `outputs` parts of ceil(n / outputs) (the last one
    smaller), the `num_outputs` rule opset 18 added."""

    def __init__(self, axis: int, outputs: int) -> None:
        super().__init__()
        self.axis = axis
        self.outputs = outputs

    def forward(self, x: torch.Tensor, split: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        if split is not None:
            return tuple(torch.split(x, [int(v) for v in split.tolist()], dim=self.axis))
        return tuple(torch.split(x, -(-x.shape[self.axis] // self.outputs), dim=self.axis))


def _split18_converter(node: Any, graph: Any) -> Any:
    require("onnx2torch")  # a missing library: one line naming the onnx extra
    from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node

    module = _Split18(int(node.attributes.get("axis", 0)), len(node.output_values))
    return OperationConverterResult(torch_module=module, onnx_mapping=onnx_mapping_from_node(node))


# afford's converters where onnx2torch's are wrong or refuse a common case (used at every opset)
_OVERRIDES: dict[str, Callable[..., Any]] = {"Reshape": _reshape_converter, "Flatten": _flatten_converter}
# afford's converters for op versions onnx2torch 1.5.15 lacks: (first opset they apply to, converter)
_OWN_CONVERTERS: dict[str, tuple[int, Callable[..., Any]]] = {
    "Gelu": (20, _gelu_converter), "Split": (18, _split18_converter),
    **{op: (18, _reduce18_converter) for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
                                                 "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd",
                                                 "ReduceSumSquare")},
}
