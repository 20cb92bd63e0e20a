"""Tensor facts shared by the ONNX modules: which tensors stay real, ONNX element types as torch dtypes, and the
values of a small tensor."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from afford.errors import UnsupportedError
from afford.extras import require

# A tensor stays real (CPU, values kept) when it is this small or an integer tensor up to REAL_LIMIT elements:
# shapes, axes, indices and scalar constants. Bigger floating tensors (weights) are meta stand-ins, never read.
SMALL = 16
REAL_LIMIT = 1 << 16


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
    require("onnx")  # a missing library: one line naming the onnx extra
    from onnx import numpy_helper

    array = numpy_helper.to_array(proto, base_dir=str(base))
    dtype = _proto_dtype(proto)
    try:
        return torch.from_numpy(array.copy()).to(dtype)
    except TypeError:  # numpy types torch cannot wrap (bfloat16, float8 from ml_dtypes): go through float32
        return torch.from_numpy(array.astype("float32")).to(dtype)
