"""`module:pkg.mod:callable` specs and nn.Module objects handed in from Python."""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn

from afford.errors import InputError, UnknownModelError
from afford.sources.base import Dims, ModelKind, ModelSpec, classification_loss, first_tensor, image_inputs


def _generic_loss(output: Any, inputs: dict[str, Any]) -> torch.Tensor:
    return classification_loss(output, inputs) if "_target" in inputs else first_tensor(output).sum()


def _guess_inputs(module: nn.Module, input_shape: tuple[int, ...] | None) -> Any:
    """Inputs for an arbitrary module: an explicit per-sample shape, else an image if it starts with a conv,
    else a vector of the first Linear's width."""
    if input_shape is not None:
        shape = tuple(input_shape)

        def make(batch: int, dims: Dims, train: bool) -> dict[str, Any]:
            return {"_args": (torch.empty(batch, *shape, device="meta"),)}

        return make, ModelKind.GENERIC
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            return image_inputs(sub.in_channels), ModelKind.IMAGE
        if isinstance(sub, nn.Linear):
            width = sub.in_features

            def make_vec(batch: int, dims: Dims, train: bool, width: int = width) -> dict[str, Any]:
                return {"_args": (torch.empty(batch, width, device="meta"),)}

            return make_vec, ModelKind.GENERIC
    raise InputError("cannot guess this module's input; pass input_shape=(C, H, W) or (features,)")


def from_module(module: nn.Module, name: str | None = None, input_shape: tuple[int, ...] | None = None,
                image_size: int = 224) -> ModelSpec:
    """A ModelSpec around an existing module; its weights stay where they are (the trace uses stand-ins)."""
    make, kind = _guess_inputs(module, input_shape)
    return ModelSpec(name=name or f"module:{type(module).__name__}", source="module", kind=kind,
                     build=lambda dtype, dims, device="meta": module, make_inputs=make, loss=_generic_loss,
                     native_image_size=image_size if kind is ModelKind.IMAGE else None)


def resolve(target: str) -> ModelSpec:
    """`pkg.mod:callable` -> the module the callable returns, built under the meta device."""
    if ":" not in target:
        raise InputError(f"module spec {target!r} must look like module:package.module:callable")
    mod_name, _, attr = target.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise UnknownModelError(f"cannot import {mod_name!r}: {exc}") from None
    factory = getattr(mod, attr, None)
    if factory is None or not callable(factory):
        raise UnknownModelError(f"{mod_name!r} has no callable {attr!r}")
    with torch.device("meta"):
        built = factory()
    if not isinstance(built, nn.Module):
        raise InputError(f"{target} returned {type(built).__name__}, not a torch.nn.Module")
    spec = from_module(built, name=f"module:{target}")

    def build(dtype: torch.dtype, dims: Any, device: str = "meta") -> nn.Module:
        if device == "meta":
            return built
        with torch.device(device):
            return factory().to(dtype=dtype)

    spec.build = build
    return spec
