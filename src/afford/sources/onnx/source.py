"""The ONNX source: a ModelSpec for a .onnx file, built from the modules of this package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from afford.errors import UnsupportedError
from afford.extras import require
from afford.sources.base import Dims, ModelKind, ModelSpec
from afford.sources.onnx.convert import _convert
from afford.sources.onnx.converters import _opset, _unsupported
from afford.sources.onnx.files import _load, _simplify, _strip
from afford.sources.onnx.inputs import (
    DEFAULT_IMAGE,
    DEFAULT_SEQ,
    _graph_inputs,
    _input_maker,
    _kind,
    _loss,
    _native_dtype,
    _roles,
    _static_facts,
)
from afford.sources.onnx.module import OnnxModule, _node_path

INFERENCE_ONLY = "an ONNX graph holds the inference graph only"


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
    require("onnx2torch")  # a missing library: one line naming the onnx extra
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
