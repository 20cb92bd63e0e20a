"""The ModelSpec of a Keras model: its inputs (shapes and dtypes as the model declares them, images channels last),
class labels and loss, and a `build` that rebuilds it on the meta (or a real) device for the asked dtype and
image size."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from afford.errors import UnsupportedError, WorkloadError
from afford.sources.base import Dims, ModelKind, ModelSpec, classification_loss, first_tensor
from afford.sources.keras.runtime import KerasModule, load_keras

# MobileNetV3 accepts any input size; its published checkpoints are the 224 px ones (mobilenet_v3.py docstring
# table, "mobilenet_v3_large_1.0_224"), so 224 px is its native size, as for the other 224 px applications
DEFAULT_IMAGE_SIZE = 224


def input_facts(model: Any) -> list[tuple[tuple[int | None, ...], str]]:
    """(per-sample shape, dtype) of each model input; a model without defined inputs is refused."""
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError) as exc:
        raise UnsupportedError(f"the Keras model has no defined inputs ({exc}); save it with an Input layer or "
                               "an input_shape") from None
    if not inputs:
        raise UnsupportedError("the Keras model has no defined inputs; save it with an Input layer")
    return [(tuple(t.shape[1:]), str(t.dtype)) for t in inputs]


def image_axes(shape: tuple[int | None, ...]) -> tuple[int, int] | None:
    """The (height, width) axes of a per-sample image shape: channels last (H, W, C) or first (C, H, W)."""
    if len(shape) != 3:
        return None
    if shape[2] in (1, 3, 4):
        return 0, 1
    if shape[0] in (1, 3, 4):
        return 1, 2
    return None


def _make_inputs(facts: list[tuple[tuple[int | None, ...], str]], classes: int | None,
                 resizable: bool) -> Callable[[int, Dims, bool], dict[str, Any]]:
    """Inputs in the model's own layout (channels last for Keras images: N, H, W, C) and class labels; an image
    side the model leaves open, or one it is rebuilt for (`resizable`), takes the asked image size."""

    def make(batch: int, dims: Dims, train: bool) -> dict[str, Any]:
        tensors = []
        for shape, dtype in facts:
            full = list(shape)
            for axis in image_axes(shape) or ():
                if full[axis] is None or (resizable and dims.image_size):
                    full[axis] = dims.image_size or DEFAULT_IMAGE_SIZE
            if None in full:
                raise UnsupportedError(f"a Keras model input of shape {shape} has an unknown size on axis "
                                       f"{full.index(None) + 1}; save the model with a fixed input shape")
            sizes = [int(d) for d in full if d is not None]
            if dtype.startswith(("int", "uint")):
                tensors.append(torch.zeros(batch, *sizes, dtype=torch.long, device="meta"))
            else:
                tensors.append(torch.empty(batch, *sizes, device="meta"))
        out: dict[str, Any] = {"_args": tuple(tensors)}
        if train and classes:
            out["_target"] = torch.zeros(batch, dtype=torch.long, device="meta")
        return out

    return make


def _loss(output: Any, inputs: dict[str, Any]) -> torch.Tensor:
    """Cross-entropy against class labels for a classifier (as sparse categorical cross-entropy would), else the
    sum of the output (a regression-like loss; its few element-wise ops are not counted as FLOPs)."""
    if "_target" in inputs:
        return classification_loss(output, inputs)
    return first_tensor(output).float().sum()


def _classes(model: Any) -> int | None:
    """The class count of a classifier (one output of shape (batch, K), K > 1), else None."""
    try:
        outputs = list(model.outputs)
    except (AttributeError, ValueError):
        return None
    shape = tuple(outputs[0].shape) if outputs else ()
    return int(shape[1]) if len(shape) == 2 and shape[1] is not None and shape[1] > 1 else None


def make_spec(name: str, source: str, model: Any, rebuild: Callable[[torch.dtype, int | None, str], Any],
          metadata: dict[str, Any], resizable: bool) -> ModelSpec:
    """A ModelSpec around a model built once on meta (its shapes) and `rebuild(dtype, image_size, device)`."""
    facts = input_facts(model)
    axes = image_axes(facts[0][0]) if len(facts) == 1 else None
    kind = ModelKind.IMAGE if axes is not None else ModelKind.GENERIC
    side: int | None = None  # the image height the model was built or saved for (None: left open)
    if axes is not None:
        height, width = facts[0][0][axes[0]], facts[0][0][axes[1]]
        side = int(height) if height is not None else None
        shown = f"{height}x{width}" if height != width else f"{height}"
    native = (side or DEFAULT_IMAGE_SIZE) if kind is ModelKind.IMAGE else None
    classes = _classes(model)

    def build(dtype: torch.dtype, dims: Dims, device: str = "meta") -> nn.Module:
        size = dims.image_size if kind is ModelKind.IMAGE else None
        if size is not None and side is not None and size != side and not resizable:
            raise WorkloadError(f"{name} takes {shown} px images (its saved input shape); --image-size {size} "
                                "needs a model saved with another input shape")
        return KerasModule(rebuild(dtype, size, device), device)

    inputs = _make_inputs(facts, classes, resizable)
    metadata = {"framework": f"keras {load_keras().__version__} (torch backend)", "input_layout":
                "channels_last (N, H, W, C)" if axes == (0, 1) else "as saved", **metadata}
    return ModelSpec(name=name, source=source, kind=kind, build=build, make_inputs=inputs, loss=_loss,
                     native_image_size=native, metadata=metadata)
