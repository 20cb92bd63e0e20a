"""timm models by name (anything `timm.list_models()` lists), built on meta."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from afford.errors import UnknownModelError
from afford.extras import require
from afford.sources import timm_fastnorm
from afford.sources.base import Dims, ModelKind, ModelSpec, classification_loss, image_inputs
from afford.sources.building import build_on_meta
from afford.sources.names import closest, shorten
from afford.sources.options import take

# --model-option for timm models: `reparam=true` builds the deploy form of a re-parameterisable model (RepVGG,
# MobileOne, FastViT, RepViT, GhostNetV3 ...), its training-time branches fused into single convolutions by
# timm's own `reparameterize_model`, as timm's benchmark.py --reparam and a deployed model run it. For inference;
# a training job traces the model as built.
# `fast_norm=true` builds timm's layers with its fast-norm (timm's benchmark.py and train.py --fast-norm): under
# autocast its GroupNorm/LayerNorm/RmsNorm classes normalise in 16 bits instead of fp32 (sources/timm_fastnorm.py).
OPTIONS: dict[str, tuple[type, Any]] = {"reparam": (bool, False), "fast_norm": (bool, False)}


def list_names() -> list[str]:
    timm = require("timm")

    return list(timm.list_models())


def _pretrained_cfg(name: str) -> dict[str, Any]:
    timm = require("timm")

    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except (RuntimeError, KeyError, ValueError):
        cfg = None
    if cfg is None:
        return {}
    return cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg.__dict__)


def resolve(name: str, options: Mapping[str, Any] | None = None) -> ModelSpec:
    """The ModelSpec of timm model `name` (a tag such as `.in1k` selects its pretrained config); `options`:
    OPTIONS."""
    timm = require("timm")
    chosen = take(options, OPTIONS, f"timm:{shorten(name)}")
    reparam, fast_norm = bool(chosen["reparam"]), bool(chosen["fast_norm"])

    base = name.split(".")[0]
    if not timm.is_model(base):
        raise UnknownModelError(f"unknown timm model {shorten(name)!r}; closest: "
                                f"{', '.join(closest(name, list_names()))}")
    pcfg = _pretrained_cfg(name)
    input_size = pcfg.get("input_size") or (3, 224, 224)
    channels, size = int(input_size[0]), int(input_size[-1])

    def create(**kwargs: Any) -> nn.Module:
        if fast_norm:
            return timm_fastnorm.constructed(lambda: timm.create_model(name, pretrained=False, **kwargs))
        return timm.create_model(name, pretrained=False, **kwargs)

    def build(dtype: torch.dtype, dims: Dims, device: str = "meta") -> nn.Module:
        model = None
        if dims.image_size and dims.image_size != size:
            try:  # models with position embeddings are built for the image size
                model = build_on_meta(lambda: create(img_size=dims.image_size), dtype, device)
            except TypeError:
                pass
        if model is None:
            model = build_on_meta(create, dtype, device)
        if reparam:
            from timm.utils.model import reparameterize_model

            with torch.device(device):  # the fused kernels timm makes land beside the weights, not on the CPU
                model = reparameterize_model(model.eval())
        return timm_fastnorm.traced(model) if fast_norm else model

    meta: dict[str, Any] = {"source": "timm pretrained_cfg"} if pcfg else {}
    if reparam:
        meta["reparameterized"] = True
    if fast_norm:
        meta["fast_norm"] = True
    return ModelSpec(name=f"timm:{name}", source="timm", kind=ModelKind.IMAGE, build=build,
                     make_inputs=image_inputs(channels), loss=classification_loss, native_image_size=size,
                     metadata=meta)
