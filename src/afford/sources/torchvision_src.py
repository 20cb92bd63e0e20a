"""torchvision models by name, built on meta with the metadata of their published weights (acc@1, GFLOPS)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from afford.errors import InputError, UnknownModelError
from afford.sources import detection
from afford.sources.base import Dims, ModelKind, ModelSpec, classification_loss, first_tensor, image_inputs
from afford.sources.building import build_on_meta
from afford.sources.names import closest, shorten
from afford.sources.options import refuse

# RAFT's input side: torchvision computed its published GFLOPS (`_ops`) on 512 x 512 frames (both raft_small's
# 47.655 and raft_large's 211.007 are reproduced exactly at that size, docs/detection.md).
RAFT_SIDE = 512
# RAFT's training loss: torchvision's references/optical_flow/utils.py `sequence_loss` at its default gamma 0.8,
# every pixel valid.
RAFT_GAMMA = 0.8


def _models() -> Any:
    import torchvision.models as tvm

    return tvm


def list_names() -> list[str]:
    """Every model torchvision registers (classification, detection, segmentation, video, optical flow)."""
    return sorted(_models().list_models())


def classification_names() -> list[str]:
    import torchvision.models as tvm

    return sorted(tvm.list_models(module=tvm))


def weights_entries(name: str) -> list[Any]:
    """The published weights entries of a model (empty when it has none)."""
    tvm = _models()
    try:
        enum_cls = tvm.get_model_weights(name)
    except (ValueError, KeyError):
        return []
    return list(enum_cls)


def _native_size(name: str) -> int | None:
    """The input side the published weights were evaluated at: the crop size, else (segmentation) the resize
    size; `meta["min_size"]` is a lower bound (often 1), not the native size."""
    for w in weights_entries(name):
        keywords = getattr(w.transforms, "keywords", {})
        for key in ("crop_size", "resize_size"):
            value = keywords.get(key)
            if value:
                return int(value[0] if isinstance(value, (list, tuple)) else value)
    return None


def _metadata(name: str) -> dict[str, Any]:
    entries = weights_entries(name)
    if not entries:
        return {}
    best = entries[-1] if "DEFAULT" not in entries[0].__class__.__members__ else entries[0].__class__.DEFAULT
    meta = best.meta
    metrics = meta.get("_metrics", {})
    out: dict[str, Any] = {"weights": str(best), "published_params": meta.get("num_params"),
                           "published_gflops": meta.get("_ops"), "source": meta.get("recipe")}
    for dataset, values in metrics.items():
        if "acc@1" in values:
            out["accuracy"] = {"dataset": dataset, "metric": "acc@1", "value": float(values["acc@1"])}
            break
    return out


def _kind_and_inputs(name: str) -> tuple[ModelKind, Any, Any]:
    tvm = _models()
    segmentation = set(tvm.list_models(module=tvm.segmentation))
    video = set(tvm.list_models(module=tvm.video))
    optical = set(tvm.list_models(module=tvm.optical_flow))
    if name in video:

        def video_inputs(batch: int, dims: Any, train: bool) -> dict[str, Any]:
            size = dims.image_size or 112
            out: dict[str, Any] = {"_args": (torch.empty(batch, 3, 16, size, size, device="meta"),)}
            if train:
                out["_target"] = torch.zeros(batch, dtype=torch.long, device="meta")
            return out

        return ModelKind.IMAGE, video_inputs, classification_loss
    if name in segmentation:
        def seg_loss(output: Any, inputs: dict[str, Any]) -> torch.Tensor:
            return first_tensor(output).sum()
        return ModelKind.IMAGE, image_inputs(), seg_loss
    if name in optical:
        return ModelKind.IMAGE, flow_inputs, flow_loss
    return ModelKind.IMAGE, image_inputs(), classification_loss


def flow_inputs(batch: int, dims: Dims, train: bool) -> dict[str, Any]:
    """Two frames (RAFT's positional image1, image2) and, for training, a ground-truth flow field."""
    size = dims.image_size or RAFT_SIDE
    if size % 8 or size < 128:  # 1/8-resolution features, halved three times by the correlation pyramid
        raise InputError(f"RAFT needs frames whose side is a multiple of 8 and at least 128 (got {size})")
    frames = tuple(torch.empty(batch, 3, size, size, device="meta") for _ in range(2))
    out: dict[str, Any] = {"_args": frames}
    if train:
        out["_target"] = torch.empty(batch, 2, size, size, device="meta")
    return out


def flow_loss(output: Any, inputs: dict[str, Any]) -> torch.Tensor:
    """RAFT's sequence loss: the L1 error of every refinement's flow, weighted gamma^(N - i - 1)."""
    preds = torch.stack(list(output))
    target = inputs.get("_target")
    errors = (preds - target).abs().mean(dim=(1, 2, 3, 4)) if target is not None else preds.abs().mean(
        dim=(1, 2, 3, 4))
    n = preds.shape[0]
    weights = RAFT_GAMMA ** torch.arange(n - 1, -1, -1, device=preds.device, dtype=preds.dtype)
    return (errors * weights).sum()


def resolve(name: str, options: Mapping[str, Any] | None = None) -> ModelSpec:
    """The ModelSpec of torchvision model `name`; detection models (which take `--model-option`s for their
    fixed counts) come from sources/detection.py."""
    names = list_names()
    if name not in names:
        raise UnknownModelError(f"unknown torchvision model {shorten(name)!r}; closest: "
                                f"{', '.join(closest(name, names))}")
    if name in detection.names():
        return detection.resolve(name, options)
    refuse(options, f"torchvision:{name}")
    kind, inputs, loss = _kind_and_inputs(name)
    tvm = _models()

    native = _native_size(name) or (RAFT_SIDE if name.startswith("raft_") else 224)

    def build(dtype: torch.dtype, dims: Dims, device: str = "meta") -> nn.Module:
        kwargs: dict[str, Any] = {"weights": None}
        if "aux_loss" in inspect.signature(tvm.get_model_builder(name)).parameters:
            kwargs["aux_loss"] = True  # the published segmentation weights carry the auxiliary head
        if "weights_backbone" in inspect.signature(tvm.get_model_builder(name)).parameters:
            kwargs["weights_backbone"] = None  # segmentation/detection builders would download ImageNet weights
        if name in ("inception_v3", "googlenet"):
            kwargs["init_weights"] = False
        if name == "googlenet":
            kwargs["aux_logits"] = False  # the released weights drop GoogLeNet's auxiliary heads
        if name.startswith("vit_") and dims.image_size:
            kwargs["image_size"] = dims.image_size  # ViT's position embeddings are sized to the image
        return build_on_meta(lambda: tvm.get_model(name, **kwargs), dtype, device)

    return ModelSpec(name=f"torchvision:{name}", source="torchvision", kind=kind, build=build,
                     make_inputs=inputs, loss=loss, native_image_size=native,
                     metadata=_metadata(name))
