"""The graph's declared inputs: what each dynamic dim stands for, the model kind, and the meta inputs made for a
workload's batch, sequence length and image size."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from afford.errors import UnsupportedError, WorkloadError
from afford.sources.base import Dims, ModelKind, first_tensor
from afford.sources.onnx.tensors import _DTYPES, _dtype

# Sequence length when the graph leaves it dynamic and the user gives none: 512 tokens, the BERT-family maximum
# and the cap afford's Hugging Face source uses for encoders (hf.DEFAULT_ENCODER_SEQ).
DEFAULT_SEQ = 512
# Image side when the graph leaves it dynamic: 224 px, the ImageNet evaluation crop (as base.image_inputs).
DEFAULT_IMAGE = 224
# Integer names that carry token ids (the Hugging Face / optimum export names).
TOKEN_NAMES = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "decoder_input_ids")


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
