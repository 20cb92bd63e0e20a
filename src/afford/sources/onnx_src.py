""".onnx files: the graph converted to a torch module (onnx2torch) whose weights are meta stand-ins, run by an
interpreter that keeps shape arithmetic real, so afford's meta-device trace counts it like any PyTorch model.

Why this route and not shape inference plus per-op formulas: docs/onnx.md. In short, the trace then yields the
same per-op FLOPs, bytes, module tree and live-memory peaks as every other source, with PyTorch's own formulas.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from torch import fx, nn
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

from afford import safeio
from afford.errors import ConfigError, TraceError, UnsupportedError, WorkloadError
from afford.sources.base import Dims, ModelKind, ModelSpec, first_tensor
from afford.sources.names import shorten

INFERENCE_ONLY = "an ONNX graph holds the inference graph only"
# Sequence length when the graph leaves it dynamic and the user gives none: 512 tokens, the BERT-family maximum
# and the cap afford's Hugging Face source uses for encoders (hf.DEFAULT_ENCODER_SEQ).
DEFAULT_SEQ = 512
# Image side when the graph leaves it dynamic: 224 px, the ImageNet evaluation crop (as base.image_inputs).
DEFAULT_IMAGE = 224
# A tensor stays real (CPU, values kept) when it is this small or an integer tensor up to REAL_LIMIT elements:
# shapes, axes, indices and scalar constants. Bigger floating tensors (weights) are meta stand-ins, never read.
SMALL = 16
REAL_LIMIT = 1 << 16
# Integer names that carry token ids (the Hugging Face / optimum export names).
TOKEN_NAMES = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "decoder_input_ids")

# Inputs (by position) whose values an op needs to know its output shape: shapes, axes, pads, scales, indices
# read on the host. Per the ONNX operator specification (https://onnx.ai/onnx/operators/).
STATIC_INPUTS: dict[str, frozenset[int]] = {
    "Reshape": frozenset({1}), "Expand": frozenset({1}), "Tile": frozenset({1}),
    "ConstantOfShape": frozenset({0}), "Range": frozenset({0, 1, 2}), "Slice": frozenset({1, 2, 3, 4}),
    "Pad": frozenset({1, 2, 3}), "Resize": frozenset({1, 2, 3}), "Upsample": frozenset({1}),
    "Unsqueeze": frozenset({1}), "Squeeze": frozenset({1}), "Split": frozenset({1}), "TopK": frozenset({1}),
    "OneHot": frozenset({1}), "Clip": frozenset({1, 2}), "CumSum": frozenset({1}), "Trilu": frozenset({1}),
    "ScatterND": frozenset({1}), "NonMaxSuppression": frozenset({2, 3, 4}),
    **{op: frozenset({1}) for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
                                      "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum", "ReduceSumSquare")},
}


# --- reading the file ------------------------------------------------------------------------------------------

def _load(path: Path) -> Any:
    """The ModelProto without its external weight data; a truncated or corrupt file is a one-line ConfigError."""
    import onnx
    from google.protobuf.message import DecodeError

    size = safeio.regular_file(path).st_size  # FIFOs and devices refused unread; its size is not capped
    if size == 0:
        raise ConfigError(f"{path} is empty, not an ONNX model")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeWarning, ValueError, OSError) as exc:
        raise ConfigError(f"{path} is not a valid ONNX model (truncated or corrupt): "
                          f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
    _check_structure(model, path)
    _check_external(model, path.parent, path)
    return model


def _check_structure(model: Any, path: Path) -> None:
    """What a file cut at a field boundary loses (which still parses): the opset, nodes, or values the graph
    uses but no longer defines. Checked here rather than by onnx.checker, which copies every weight."""
    graph = model.graph
    if not model.opset_import or not graph.node or not graph.output:
        raise ConfigError(f"{path} is not a complete ONNX model (no opset, nodes or outputs: truncated?)")
    known = {t.name for t in graph.initializer} | {v.name for v in graph.input} | {""}
    for node in graph.node:
        for name in node.input:
            if name not in known:
                raise ConfigError(f"{path}: node {node.name or node.op_type!r} reads {name!r}, which nothing "
                                  "defines (truncated or corrupt file, or nodes out of order)")
        known.update(node.output)
    for out in graph.output:
        if out.name not in known:
            raise ConfigError(f"{path}: graph output {out.name!r} is never computed (truncated or corrupt file)")


def _strip(model: Any) -> None:
    """Drop the stored values of every tensor afford will not read (weights become meta stand-ins built from
    their dims), so the in-memory model is small and no copy of the weights outlives the parse."""
    for t in model.graph.initializer:
        dtype = _DTYPES.get(int(t.data_type))
        if dtype is not None and not _stays_real(math.prod(t.dims), dtype.is_floating_point):
            for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data",
                          "string_data"):
                t.ClearField(field)
            del t.external_data[:]
            t.data_location = 0


def _external(tensor: Any) -> dict[str, str]:
    return {e.key: e.value for e in tensor.external_data}


def _resolves_under(target: Path, root: Path) -> bool:
    """Whether `target`, links followed, lies inside the folder `root` (a name with a NUL byte does not)."""
    try:
        return target.resolve().is_relative_to(root)
    except (OSError, ValueError):
        return False


def _check_external(model: Any, base: Path, path: Path) -> None:
    """Every externally stored initializer's file lies in the model's folder (no absolute location, no '..', no
    link out of it), is a regular file and holds its bytes (checked by size, not read)."""
    import onnx

    sizes: dict[str, int] = {}
    root = base.resolve()
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = _external(t)
        location = info.get("location", "")
        if location not in sizes:
            target = base / location
            if location and (Path(location).is_absolute() or not _resolves_under(target, root)):
                raise ConfigError(f"{path}: initializer {t.name!r} keeps its weights in {shorten(location)!r}, "
                                  "outside the model's folder; refused (external data must lie beside the .onnx)")
            if not location or not target.is_file():
                raise ConfigError(f"{path}: weight file {shorten(location)!r} of initializer {t.name!r} is missing")
            sizes[location] = target.stat().st_size
        try:
            end = int(info.get("offset", 0) or 0) + int(info.get("length", 0) or 0)
        except ValueError:
            raise ConfigError(f"{path}: initializer {t.name!r} has a non-numeric external offset or length") from None
        if end > sizes[location]:
            raise ConfigError(f"{path}: weight file {shorten(location)!r} is truncated ({sizes[location]} bytes, "
                              f"initializer {t.name!r} ends at byte {end})")


def _simplify(model: Any) -> None:
    """Constant tensors become initializers and Identity nodes over initializers disappear (exporters
    deduplicate equal weights through Identity), so converters that want weights as initializers find them."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    inits = {t.name for t in graph.initializer}
    rename: dict[str, str] = {}
    keep = []
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
        if (node.op_type == "Constant" and node.domain in ("", "ai.onnx") and len(node.attribute) == 1
                and node.attribute[0].name == "value" and node.output[0] not in outputs):
            tensor = node.attribute[0].t
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
            inits.add(tensor.name)
            continue
        if (node.op_type == "Identity" and node.domain in ("", "ai.onnx") and node.input[0] in inits
                and node.output[0] not in outputs):
            rename[node.output[0]] = node.input[0]
            continue
        keep.append(node)
    if len(keep) != len(graph.node):
        del graph.node[:]
        graph.node.extend(keep)


# --- which converter handles a node ----------------------------------------------------------------------------

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
    from onnx import defs
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
    from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node

    approximate = node.attributes.get("approximate", "none")
    if isinstance(approximate, bytes):
        approximate = approximate.decode()
    return OperationConverterResult(torch_module=_Gelu(str(approximate)), onnx_mapping=onnx_mapping_from_node(node))


def _reduce18_converter(node: Any, graph: Any) -> Any:
    """Reduce*-18 moved `axes` from an attribute to an input; a constant input maps onto onnx2torch's module."""
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


# --- conversion with meta weights ------------------------------------------------------------------------------

def _stays_real(numel: int, floating: bool) -> bool:
    """Small tensors and integer tensors up to REAL_LIMIT keep their values (shape arithmetic needs them)."""
    return numel <= SMALL or (not floating and numel <= REAL_LIMIT)


# ONNX TensorProto element types (onnx.proto3, TensorProto.DataType) -> torch dtypes
_DTYPES: dict[int, torch.dtype] = {
    1: torch.float32, 2: torch.uint8, 3: torch.int8, 4: torch.uint16, 5: torch.int16, 6: torch.int32,
    7: torch.int64, 9: torch.bool, 10: torch.float16, 11: torch.float64, 12: torch.uint32, 13: torch.uint64,
    14: torch.complex64, 15: torch.complex128, 16: torch.bfloat16, 17: torch.float8_e4m3fn,
    18: torch.float8_e4m3fnuz, 19: torch.float8_e5m2, 20: torch.float8_e5m2fnuz,
}


def _dtype(elem_type: int, what: str) -> torch.dtype:
    found = _DTYPES.get(int(elem_type))
    if found is None:
        raise UnsupportedError(f"{what} has ONNX element type {elem_type} (strings, 4-bit types), which afford "
                               "cannot make")
    return found


def _proto_dtype(proto: Any) -> torch.dtype:
    return _dtype(proto.data_type, f"tensor {proto.name!r}")


def _real_tensor(proto: Any, base: Path) -> torch.Tensor:
    """The values of a small tensor (external data read from `base`), in its own dtype."""
    from onnx import numpy_helper

    array = numpy_helper.to_array(proto, base_dir=str(base))
    dtype = _proto_dtype(proto)
    try:
        return torch.from_numpy(array.copy()).to(dtype)
    except TypeError:  # numpy types torch cannot wrap (bfloat16, float8 from ml_dtypes): go through float32
        return torch.from_numpy(array.astype("float32")).to(dtype)


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


class _Scope(nn.Module):
    """A level of the module tree rebuilt from ONNX node names (`/encoder/layer.0/...`): it only calls down the
    path to the op's module, so the per-module counts credit every level, as for a PyTorch model."""

    def forward(self, path: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        child = self._modules[path[0]]
        assert child is not None
        return child(path[1:], args, kwargs) if len(path) > 1 else child(*args, **kwargs)


def _path(node_name: str) -> list[str]:
    """`/layer1/layer1.0/conv1/Conv` -> [layer1, 0, conv1, Conv]: exporters name each scope by its full module
    path, so a part that repeats its parent's prefix is cut back to the new part."""
    out: list[str] = []
    prev = ""
    for part in (p for p in node_name.split("/") if p):
        short = part[len(prev) + 1:] if prev and part.startswith(prev + ".") else part
        prev = part
        out.extend(x for x in short.split(".") if x)
    return out


def _node_path(node: Any) -> list[str]:
    """Where a node sits in the exported model: the torch.export exporter's name scopes (`layer1.0.conv1`) plus
    the node's name, else the TorchScript exporter's `/layer1/layer1.0/conv1/Conv` name."""
    import ast

    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = [str(x) for x in ast.literal_eval(prop.value) if x]
            except (ValueError, SyntaxError):
                break
            module = scopes[-2].split(".") if len(scopes) >= 2 else []
            return [p for p in module if p] + [node.name or node.op_type]
    return _path(node.name)


def _nest(gm: fx.GraphModule, root: nn.Module, names: dict[str, tuple[str, list[str]]]) -> dict[str, str]:
    """Move gm's modules into `root`: initializers as they are, each op's module under its ONNX node name's
    path (`encoder.layer.0.attention.self.query.MatMul`); retargets the graph and returns op types by target."""
    out: dict[str, str] = {}
    holder = gm._modules.get("initializers")
    if holder is not None:
        root.add_module("initializers", holder)
    reserved = {"initializers", "ops", "positions", "fx_graph"}

    def taken(parent: nn.Module, name: str) -> bool:
        return (parent is root and name in reserved) or (hasattr(parent, name) and name not in parent._modules)

    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        old = str(node.target)
        module = gm.get_submodule(old)
        op_type, path = names.get(old, ("", []))
        parts = list(path) or [old.replace(".", "_").replace("/", "_")]
        parent: nn.Module = root
        for i, part in enumerate(parts[:-1]):
            scope = parent._modules.get(part)
            if (scope is not None and not isinstance(scope, _Scope)) or taken(parent, part):
                parts = [*parts[:i], "_".join(parts[i:])]
                break
            if scope is None:
                scope = _Scope()
                parent.add_module(part, scope)
            parent = scope
        leaf, k = parts[-1], 1
        while leaf in parent._modules or taken(parent, leaf):
            k += 1
            leaf = f"{parts[-1]}_{k}"
        parent.add_module(leaf, module)
        node.target = ".".join([*parts[:-1], leaf])
        out[str(node.target)] = op_type
    return out


def _keep_real(gm: nn.Module) -> None:
    """Small and integer buffers become plain attributes (the trace swaps registered tensors for meta stand-ins,
    and these are shapes, axes and scalars whose values the graph reads); floating initializers become frozen
    parameters, so they count as the model's weights."""
    initializers = gm._modules.get("initializers")  # fx copies onnx2torch's container into a plain module
    for module in gm.modules():
        for key, value in list(module._buffers.items()):
            if value is None:
                continue
            if value.device.type != "meta":
                del module._buffers[key]
                object.__setattr__(module, key, value)
            elif module is initializers and value.is_floating_point():
                del module._buffers[key]
                module.register_parameter(key, nn.Parameter(value, requires_grad=False))
    for p in gm.parameters():
        p.requires_grad_(False)


# --- running the graph on meta ---------------------------------------------------------------------------------

def _to_meta(value: Any, float_dtype: torch.dtype | None = None) -> Any:
    """A meta stand-in for a real tensor; a floating one takes `float_dtype` (the activations' compute dtype),
    so a graph's fp32 constants do not promote bf16 activations to fp32 when the trace runs another precision."""
    if isinstance(value, torch.Tensor) and value.device.type != "meta":
        dtype = float_dtype if float_dtype is not None and value.is_floating_point() else value.dtype
        return torch.empty(value.shape, dtype=dtype, device="meta")
    return value


def _numel(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return int(value.numel())
    if isinstance(value, (tuple, list)):
        return sum(_numel(v) for v in value)
    return 0


def _shrink(value: Any) -> Any:
    """A real result too big to be shape arithmetic continues as a meta tensor (its values are not needed)."""
    if isinstance(value, torch.Tensor):
        return _to_meta(value) if value.numel() > REAL_LIMIT else value
    if isinstance(value, tuple):
        return tuple(_shrink(v) for v in value)
    if isinstance(value, list):
        return [_shrink(v) for v in value]
    return value


class _Runner(fx.Interpreter):
    """Runs the converted graph with weights and activations on meta and shape arithmetic real on the CPU.

    Shape and Size give real tensors; an op whose inputs are all real runs for real (if its result is small);
    an op with a meta data input gets its other real data inputs as meta stand-ins; inputs that are shapes, axes
    or pads (STATIC_INPUTS) must be real, else the graph reads tensor values that the meta device cannot give."""

    def __init__(self, root: OnnxModule, compute_dtype: torch.dtype | None) -> None:
        super().__init__(root, garbage_collect_values=True, graph=root.fx_graph)
        self.root = root
        # the traced precision where it differs from the graph's own float type, else None
        self.compute_dtype = compute_dtype if compute_dtype != root.native_dtype else None

    def run_node(self, n: fx.Node) -> Any:
        if n.name in self.root.folded:
            # weights-only work (a transposed or reshaped weight): runtimes fold it once when they load the model
            with _disable_current_modes():
                return super().run_node(n)
        return super().run_node(n)

    def _call(self, target: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Call the op's module through its scopes, so module hooks see every level of the tree."""
        path = tuple(target.split("."))
        first = self.root._modules[path[0]]
        assert first is not None
        return first(path[1:], args, kwargs) if len(path) > 1 else first(*args, **kwargs)

    def call_module(self, target: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        op = self.root.ops.get(target, "")
        if op in ("Shape", "Size"):
            x = args[0]
            if op == "Size":
                return torch.tensor(int(x.numel()), dtype=torch.int64)
            module = self.fetch_attr(target)
            return torch.tensor(list(x.shape)[module._start:module._end], dtype=torch.int64)
        compute = self.compute_dtype
        if op == "Cast" and compute is not None and isinstance(args[0], torch.Tensor) \
                and args[0].device.type == "meta":
            # the graph's own float type follows the traced precision (a cast to fp32 in an fp32 graph traced in
            # bf16 is a cast to bf16), as converting the graph to that precision would make it
            if getattr(self.fetch_attr(target), "torch_dtype", None) == self.root.native_dtype:
                return args[0].to(compute)
        if op == "Gather" and len(args) == 2 and getattr(self.fetch_attr(target), "_axis", None) == 0:
            table, index = args
            if isinstance(table, torch.Tensor) and table.device.type == "meta" and table.dim() == 2 \
                    and table.is_floating_point() and not index.is_floating_point():
                # an embedding lookup, counted as PyTorch's (bytes: the rows read, not the whole table)
                return nn.functional.embedding(_to_meta(index), table)
        static = STATIC_INPUTS.get(op, frozenset())
        where = self.root.positions.get(target, {})
        items: list[tuple[int, Any]] = list(enumerate(args)) + [(where.get(k, 99), v) for k, v in kwargs.items()]
        for pos, value in items:
            if pos in static and isinstance(value, torch.Tensor) and value.device.type == "meta":
                raise TraceError(f"ONNX {op} node {target}: its input {pos} (a shape, axes or index) is computed "
                                 "from tensor values, which the meta device does not have")
        data = [v for pos, v in items if pos not in static and isinstance(v, torch.Tensor)]
        float_dtype = next((t.dtype for t in data if t.device.type == "meta" and t.is_floating_point()), compute)
        meta_args = tuple(a if i in static else _to_meta(a, float_dtype) for i, a in enumerate(args))
        meta_kwargs = {k: v if where.get(k, 99) in static else _to_meta(v, float_dtype) for k, v in kwargs.items()}
        if any(t.device.type == "meta" for t in data):
            return self._call(target, meta_args, meta_kwargs)
        if op == "ConstantOfShape":
            shape = [int(s) for s in args[0].tolist()]
            if math.prod(shape) > REAL_LIMIT:
                dtype = self.fetch_attr(target).value.dtype
                if compute is not None and dtype == self.root.native_dtype:
                    dtype = compute
                return torch.zeros(shape, dtype=dtype, device="meta")
        if data:
            # all real: size the result on meta first (uncounted), run it for real only if it is small
            try:
                with _disable_current_modes():
                    probe = self.fetch_attr(target)(*meta_args, **meta_kwargs)
            except (RuntimeError, NotImplementedError, TypeError, ValueError, IndexError):
                probe = None  # the op reads its inputs' values (a gather index): small by construction
            if probe is not None and _numel(probe) > REAL_LIMIT:
                return self._call(target, meta_args, meta_kwargs)
        return _shrink(self._call(target, args, kwargs))


class _HostArithmetic(TorchDispatchMode):
    """Ops whose tensors are all real (CPU) are the graph's shape arithmetic, which runtimes do on the host:
    they run here without reaching afford's counter, so coverage lists only the model's own ops."""

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        tensors = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        device = kwargs.get("device")
        on_host = all(t.device.type == "cpu" for t in tensors) and (
            device is None or torch.device(device).type == "cpu")
        if on_host:
            with _disable_current_modes():
                return func(*args, **kwargs)
        return func(*args, **kwargs)


def _weight_only_nodes(graph: fx.Graph) -> frozenset[str]:
    """Op nodes whose inputs all come from weights and constants: ONNX Runtime's constant folding computes
    them once at load (onnxruntime graph optimizations, level "basic"), so a traced step does not count them."""
    constant: set[str] = set()
    for node in graph.nodes:
        if node.op == "get_attr":
            constant.add(node.name)
        elif node.op in ("call_module", "call_function") and node.all_input_nodes and all(
                i.name in constant for i in node.all_input_nodes):
            constant.add(node.name)
    return frozenset(n.name for n in graph.nodes if n.name in constant and n.op != "get_attr")


class OnnxModule(nn.Module):
    """The converted ONNX graph as a module: `initializers` holds the graph's weights, the other children are
    onnx2torch's op modules nested by node name; forward interprets the fx graph (see _Runner)."""

    def __init__(self, gm: fx.GraphModule, names: dict[str, tuple[str, list[str]]],
                 native_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.native_dtype = native_dtype  # the float type most of the graph's weights are stored in
        self.ops = _nest(gm, self, names)
        self.fx_graph = gm.graph
        self.positions: dict[str, dict[str, int]] = {}
        for target in self.ops:
            params = list(inspect.signature(self.get_submodule(target).forward).parameters)
            self.positions[target] = {p: i for i, p in enumerate(params)}
        _keep_real(self)
        self._adopt_weights()
        self.folded = _weight_only_nodes(self.fx_graph)

    def _adopt_weights(self) -> None:
        """A weight only one op reads moves into that op's module (`...query.MatMul.weight`), so the module
        tree shows where the parameters are; shared weights stay under `initializers`."""
        holder = self._modules.get("initializers")
        if holder is None:
            return
        for node in self.fx_graph.nodes:
            target = str(node.target)
            if node.op != "get_attr" or not target.startswith("initializers."):
                continue
            key = target.split(".", 1)[1]
            param = holder._parameters.get(key)
            owners = {str(u.target) for u in node.users}
            if param is None or len(owners) != 1 or any(u.op != "call_module" for u in node.users):
                continue
            owner_target = owners.pop()
            owner = self.get_submodule(owner_target)
            name = next(n for n in ("weight", "weight_1", "weight_2", key) if not hasattr(owner, n))
            del holder._parameters[key]
            owner.register_parameter(name, param)
            node.target = f"{owner_target}.{name}"

    def forward(self, *args: Any) -> Any:
        with warnings.catch_warnings(), _HostArithmetic():
            # onnx2torch indexes with lists of slices, which PyTorch warns about; the meaning is unchanged
            warnings.filterwarnings("ignore", message="Using a non-tuple sequence", category=UserWarning)
            compute = next((p.dtype for p in self.parameters() if p.is_floating_point()), None)
            return _Runner(self, compute).run(*args)


# --- inputs ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GraphInput:
    """One graph input: name, dtype and dims (an int, or a symbol name for a dynamic dim)."""

    name: str
    dtype: torch.dtype
    dims: tuple[int | str, ...]

    @property
    def is_tokens(self) -> bool:
        return not self.dtype.is_floating_point and (self.name in TOKEN_NAMES or len(self.dims) == 2)

    @property
    def is_image(self) -> bool:
        return self.dtype.is_floating_point and len(self.dims) == 4


def _graph_inputs(model: Any, name: str) -> list[GraphInput]:
    """The graph's real inputs (initializers listed as inputs excluded), with dynamic dims as symbols."""
    inits = {t.name for t in model.graph.initializer}
    out: list[GraphInput] = []
    for value in model.graph.input:
        if value.name in inits:
            continue
        tensor_type = value.type.tensor_type
        if not value.type.HasField("tensor_type") or not tensor_type.elem_type:
            raise UnsupportedError(f"{name}: input {value.name!r} is not a tensor (sequences and maps are not "
                                   "supported)")
        if not tensor_type.HasField("shape"):
            raise UnsupportedError(f"{name}: input {value.name!r} declares no shape, so afford cannot make it; "
                                   "export the graph with input shapes")
        dtype = _dtype(tensor_type.elem_type, f"{name}: input {value.name!r}")
        dims: list[int | str] = []
        for i, d in enumerate(tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            else:
                dims.append(d.dim_param or f"{value.name}:{i}")
        out.append(GraphInput(value.name, dtype, tuple(dims)))
    if not out:
        raise UnsupportedError(f"{name}: the ONNX graph takes no inputs")
    return out


@dataclass(frozen=True)
class _Roles:
    """What each dynamic dim stands for: batch, sequence length, image side or channels (3)."""

    batch: frozenset[str]
    seq: frozenset[str]
    image: frozenset[str]
    channels: frozenset[str]


def _roles(inputs: list[GraphInput]) -> _Roles:
    batch: set[str] = set()
    seq: set[str] = set()
    image: set[str] = set()
    channels: set[str] = set()
    for gi in inputs:
        for i, d in enumerate(gi.dims):
            if not isinstance(d, str):
                continue
            if i == 0:
                batch.add(d)
            elif gi.is_image and i == 1:
                channels.add(d)
            elif gi.is_image:
                image.add(d)
    for gi in inputs:
        for i, d in enumerate(gi.dims):
            if isinstance(d, str) and i > 0 and d not in batch | image | channels:
                seq.add(d)
    return _Roles(frozenset(batch), frozenset(seq), frozenset(image), frozenset(channels))


def _kind(inputs: list[GraphInput], roles: _Roles) -> ModelKind:
    tokens = any(gi.is_tokens for gi in inputs) or bool(roles.seq)
    images = any(gi.is_image for gi in inputs)
    if tokens and images:
        return ModelKind.VISION_TEXT
    if tokens:
        return ModelKind.ENCODER
    return ModelKind.IMAGE if images else ModelKind.GENERIC


def _static_facts(inputs: list[GraphInput], roles: _Roles) -> tuple[int | None, int | None, int | None]:
    """(fixed batch, fixed sequence length, fixed square image side) where the graph fixes them."""
    batch = next((int(gi.dims[0]) for gi in inputs if gi.dims and isinstance(gi.dims[0], int)), None)
    seq = next((int(gi.dims[1]) for gi in inputs if gi.is_tokens and len(gi.dims) > 1
                and isinstance(gi.dims[1], int)), None)
    image = next((int(gi.dims[2]) for gi in inputs if gi.is_image and isinstance(gi.dims[2], int)
                  and gi.dims[2] == gi.dims[3]), None)
    return batch, seq, image


def _input_maker(inputs: list[GraphInput], roles: _Roles, name: str) -> Callable[[int, Dims, bool], dict[str, Any]]:
    fixed_batch, fixed_seq, _ = _static_facts(inputs, roles)
    fixed_sides = next(((int(gi.dims[2]), int(gi.dims[3])) for gi in inputs
                        if gi.is_image and isinstance(gi.dims[2], int) and isinstance(gi.dims[3], int)), None)

    def make(batch: int, dims: Dims, train: bool) -> dict[str, Any]:
        if fixed_batch is not None and not any(isinstance(gi.dims[0], str) for gi in inputs if gi.dims) \
                and batch != fixed_batch:
            raise WorkloadError(f"{name} fixes the batch at {fixed_batch}; use --batch-size {fixed_batch} or export "
                                "the graph with a dynamic batch axis")
        if fixed_seq is not None and not roles.seq and dims.seq_len not in (None, fixed_seq):
            raise WorkloadError(f"{name} fixes the sequence length at {fixed_seq}; use --seq-len {fixed_seq} or "
                                "export the graph with a dynamic sequence axis")
        if dims.image_size is not None and not roles.image and fixed_sides and \
                fixed_sides != (dims.image_size, dims.image_size):
            raise WorkloadError(f"{name} fixes the image at {fixed_sides[0]} x {fixed_sides[1]} px; drop --image-size "
                                "or export the graph with dynamic height and width")
        seq = dims.seq_len or DEFAULT_SEQ
        side = dims.image_size or DEFAULT_IMAGE
        args: list[torch.Tensor] = []
        for gi in inputs:
            shape: list[int] = []
            for d in gi.dims:
                if isinstance(d, int):
                    shape.append(d)
                elif d in roles.batch:
                    shape.append(batch)
                elif d in roles.image:
                    shape.append(side)
                elif d in roles.channels:
                    shape.append(3)
                else:
                    shape.append(seq)
            args.append(torch.zeros(shape, dtype=gi.dtype, device="meta") if not gi.dtype.is_floating_point
                        else torch.empty(shape, dtype=gi.dtype, device="meta"))
        return {"_args": tuple(args)}

    return make


def _native_dtype(model: Any) -> torch.dtype | None:
    """The floating type holding most of the graph's weight elements (None for a graph without float weights)."""
    totals: dict[torch.dtype, int] = {}
    for t in model.graph.initializer:
        dtype = _DTYPES.get(int(t.data_type))
        if dtype is not None and dtype.is_floating_point:
            totals[dtype] = totals.get(dtype, 0) + math.prod(t.dims)
    return max(totals, key=lambda d: totals[d]) if totals else None


def _loss(output: Any, inputs: dict[str, Any]) -> torch.Tensor:
    return first_tensor(output).float().sum()


# --- the source ------------------------------------------------------------------------------------------------

def resolve_path(path: Path) -> ModelSpec:
    """A ModelSpec for a .onnx file: converted once (weights as meta stand-ins, never read), inputs from the
    graph's declared inputs with dynamic dims filled from the workload."""
    path = Path(path)
    name = str(path)
    model = _load(path)
    _simplify(model)
    _strip(model)
    missing = _unsupported(model)
    if missing:
        listed = ", ".join(f"{op} ({n} node{'s' if n > 1 else ''})" for op, n in sorted(missing.items()))
        raise UnsupportedError(f"{name}: afford cannot count these ONNX ops: {listed}")
    inputs = _graph_inputs(model, name)
    roles = _roles(inputs)
    kind = _kind(inputs, roles)
    _, fixed_seq, fixed_image = _static_facts(inputs, roles)
    from onnx2torch.onnx_graph import OnnxGraph

    names = {key: (node.operation_type, _node_path(node.proto)) for key, node in OnnxGraph(model.graph).nodes.items()}
    opset = _opset(model)
    metadata: dict[str, Any] = {
        "inference_only": INFERENCE_ONLY, "format": "onnx", "opset": opset.get("", opset.get("ai.onnx")),
        "producer": f"{model.producer_name} {model.producer_version}".strip() or None,
        "inputs": {gi.name: [d if isinstance(d, int) else str(d) for d in gi.dims] for gi in inputs},
        "published_params": None,
    }
    native = _native_dtype(model)
    gm = _convert(model, path.parent, name)
    del model  # the proto (and any weights stored inline) is no longer needed
    module = OnnxModule(gm, names, native)

    def build(dtype: torch.dtype, dims: Dims, device: str = "meta") -> nn.Module:
        if device == "meta":
            return module
        # a real module with the file's weights (afford measure): onnx2torch's own run, weights read once
        proto = _load(path)
        _simplify(proto)
        real = _convert(proto, path.parent, name, meta=False)
        return real.to(device=device, dtype=dtype) if dtype.is_floating_point else real.to(device=device)

    uses_seq = kind.uses_tokens
    return ModelSpec(name=name, source="onnx", kind=kind, build=build,
                     make_inputs=_input_maker(inputs, roles, name), loss=_loss,
                     native_image_size=(fixed_image if not roles.image else DEFAULT_IMAGE)
                     if kind in (ModelKind.IMAGE, ModelKind.VISION_TEXT) else None,
                     max_seq_len=fixed_seq if uses_seq and not roles.seq else None,
                     default_seq_len=(fixed_seq if not roles.seq and fixed_seq else DEFAULT_SEQ) if uses_seq else None,
                     metadata=metadata)
