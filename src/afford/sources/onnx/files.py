"""Reading an .onnx file: the ModelProto without its weights, checked for truncation and for external data that
lies outside the model's folder, then simplified for the converters."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from afford import safeio
from afford.errors import ConfigError
from afford.extras import require
from afford.sources.names import shorten
from afford.sources.onnx.tensors import _DTYPES, _stays_real


def _load(path: Path) -> Any:
    """The ModelProto without its external weight data; a truncated or corrupt file is a one-line ConfigError."""
    onnx = require("onnx")
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
    onnx = require("onnx")

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
