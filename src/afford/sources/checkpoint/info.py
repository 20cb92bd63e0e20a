"""What a checkpoint holds: the tensor and checkpoint records, the dtype table and the checkpoint errors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from afford.errors import ConfigError, InputError

# Bits per element of every dtype the format defines (safetensors/src/tensor.rs, `Dtype::bitsize`).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32,
    "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}
# Floating dtypes are the trainable ones; integer and bool tensors (ids, masks, packed quantized weights) are not.
FLOAT_DTYPES = frozenset(d for d in DTYPE_BITS if d.startswith(("F", "BF", "C")))
TRUST_HINT = "nothing was unpickled; pass --trust-pickle only if you trust its author (or convert it to .safetensors)"


@dataclass(frozen=True)
class TensorEntry:
    """One stored tensor: its name, safetensors dtype and shape."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * DTYPE_BITS.get(self.dtype, 8) // 8


@dataclass
class CheckpointInfo:
    """What a checkpoint holds, from its headers: files, tensors, elements and bytes, by dtype."""

    path: str
    format: str
    files: list[dict[str, Any]]
    entries: list[TensorEntry] = field(repr=False)
    metadata: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def tensors(self) -> int:
        return len(self.entries)

    @property
    def params(self) -> int:
        return sum(e.numel for e in self.entries)

    @property
    def weight_bytes(self) -> int:
        return sum(e.nbytes for e in self.entries)

    @property
    def params_by_dtype(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.dtype] = out.get(e.dtype, 0) + e.numel
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    @property
    def bytes_by_dtype(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.dtype] = out.get(e.dtype, 0) + e.nbytes
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (numbers unformatted); per-tensor entries are left out."""
        return {"path": self.path, "format": self.format, "files": list(self.files), "tensors": self.tensors,
                "params": self.params, "weight_bytes": self.weight_bytes, "params_by_dtype": self.params_by_dtype,
                "bytes_by_dtype": self.bytes_by_dtype, "metadata": dict(self.metadata), "notes": list(self.notes)}


class PickleRefused(InputError):
    """A pickled checkpoint that the user has not said to trust; `zipped` for torch.save's zip archive."""

    def __init__(self, message: str, zipped: bool = False) -> None:
        super().__init__(message)
        self.zipped = zipped


class NotSafetensors(ConfigError):
    """A file whose first bytes are no safetensors header at all (as opposed to a malformed one)."""


class NoArchitecture(InputError):
    """Weights without a config.json beside them: counted, but compute and activations need the architecture."""

    def __init__(self, info: CheckpointInfo, reason: str = "") -> None:
        from afford.units import count, gib

        dtypes = ", ".join(info.params_by_dtype) or "no tensors"
        files = f"{len(info.files)} file{'s' if len(info.files) != 1 else ''}"
        why = f" ({reason})" if reason else ""
        super().__init__(f"{info.path}: {count(info.params)} parameters ({info.params:,}), {gib(info.weight_bytes)} "
                         f"of weights ({dtypes}) in {info.tensors:,} tensors, {files}; compute, activations and "
                         f"time need the architecture: put the model's config.json beside it{why}")
        self.info = info
