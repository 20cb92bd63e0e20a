""".onnx files: the graph converted to a torch module (onnx2torch) whose weights are meta stand-ins, run by an
interpreter that keeps shape arithmetic real, so afford's meta-device trace counts it like any PyTorch model.

Why this route and not shape inference plus per-op formulas: docs/onnx.md. In short, the trace then yields the
same per-op FLOPs, bytes, module tree and live-memory peaks as every other source, with PyTorch's own formulas.
"""

from afford.sources.onnx.inputs import DEFAULT_IMAGE, DEFAULT_SEQ, TOKEN_NAMES, GraphInput
from afford.sources.onnx.module import STATIC_INPUTS, OnnxModule
from afford.sources.onnx.source import INFERENCE_ONLY, resolve_path
from afford.sources.onnx.tensors import REAL_LIMIT, SMALL

__all__ = ["DEFAULT_IMAGE", "DEFAULT_SEQ", "INFERENCE_ONLY", "REAL_LIMIT", "SMALL", "STATIC_INPUTS", "TOKEN_NAMES",
           "GraphInput", "OnnxModule", "resolve_path"]
