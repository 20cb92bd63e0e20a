"""timm models by name (anything `timm.list_models()` lists), built on meta."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from afford.errors import UnknownModelError
from afford.extras import require
from afford.sources.base import Dims, ModelKind, ModelSpec, classification_loss, image_inputs
from afford.sources.building import build_on_meta
from afford.sources.names import closest, shorten


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


def resolve(name: str) -> ModelSpec:
    """The ModelSpec of timm model `name` (a tag such as `.in1k` selects its pretrained config)."""
    timm = require("timm")

    base = name.split(".")[0]
    if not timm.is_model(base):
        raise UnknownModelError(f"unknown timm model {shorten(name)!r}; closest: "
                                f"{', '.join(closest(name, list_names()))}")
    pcfg = _pretrained_cfg(name)
    input_size = pcfg.get("input_size") or (3, 224, 224)
    channels, size = int(input_size[0]), int(input_size[-1])

    def build(dtype: torch.dtype, dims: Dims, device: str = "meta") -> nn.Module:
        if dims.image_size and dims.image_size != size:
            try:  # models with position embeddings are built for the image size
                return build_on_meta(lambda: timm.create_model(name, pretrained=False, img_size=dims.image_size),
                                     dtype, device)
            except TypeError:
                pass
        return build_on_meta(lambda: timm.create_model(name, pretrained=False), dtype, device)

    meta: dict[str, Any] = {"source": "timm pretrained_cfg"} if pcfg else {}
    return ModelSpec(name=f"timm:{name}", source="timm", kind=ModelKind.IMAGE, build=build,
                     make_inputs=image_inputs(channels), loss=classification_loss, native_image_size=size,
                     metadata=meta)
