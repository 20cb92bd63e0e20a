"""`keras:NAME`: the `keras.applications` architectures, built with `weights=None` on the meta device, with their
published parameter counts and ImageNet accuracy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from afford.errors import UnknownModelError, UnsupportedError, WorkloadError
from afford.sources.base import ModelSpec
from afford.sources.keras.runtime import dtype_policy, load_keras, on_device
from afford.sources.keras.spec import image_axes, input_facts, make_spec
from afford.sources.names import closest, shorten

# Parameter counts and ImageNet-1k top-1 accuracy (%) of the Keras Applications, as published in the table
# "Available models" of https://keras.io/api/applications/ (source: keras-team/keras-io,
# templates/api/applications/index.md at commit 01b6d6c4c4ef2c7975be4c42ac148db57352d978, columns "Parameters"
# and "Top-1 Accuracy"); that table lists no accuracy for EfficientNet. Keras counts every weight, so BatchNorm
# moving statistics are included in these counts.
PUBLISHED: dict[str, tuple[int, float | None]] = {
    "Xception": (22_910_480, 79.0), "VGG16": (138_357_544, 71.3), "VGG19": (143_667_240, 71.3),
    "ResNet50": (25_636_712, 74.9), "ResNet101": (44_707_176, 76.4), "ResNet152": (60_419_944, 76.6),
    "ResNet50V2": (25_613_800, 76.0), "ResNet101V2": (44_675_560, 77.2), "ResNet152V2": (60_380_648, 78.0),
    "InceptionV3": (23_851_784, 77.9), "InceptionResNetV2": (55_873_736, 80.3), "MobileNet": (4_253_864, 70.4),
    "MobileNetV2": (3_538_984, 71.3), "DenseNet121": (8_062_504, 75.0), "DenseNet169": (14_307_880, 76.2),
    "DenseNet201": (20_242_984, 77.3), "NASNetMobile": (5_326_716, 74.4), "NASNetLarge": (88_949_818, 82.5),
    "EfficientNetB0": (5_330_571, None), "EfficientNetB1": (7_856_239, None), "EfficientNetB2": (9_177_569, None),
    "EfficientNetB3": (12_320_535, None), "EfficientNetB4": (19_466_823, None),
    "EfficientNetB5": (30_562_527, None), "EfficientNetB6": (43_265_143, None),
    "EfficientNetB7": (66_658_687, None),
}
PUBLISHED_SOURCE = "https://keras.io/api/applications/ (table 'Available models')"


def list_names() -> list[str]:
    """The architectures `keras.applications` exports (ResNet50, MobileNetV2, EfficientNetB0, ...)."""
    apps = load_keras().applications
    return sorted(n for n in dir(apps) if n[:1].isupper() and callable(getattr(apps, n)))


def _build_application(ctor: Callable[..., Any], dtype: torch.dtype, size: int | None, default: int | None,
                       device: str) -> Any:
    """`keras.applications.NAME(weights=None)` on `device`, in `dtype`, at `size` px if not the default."""
    kwargs: dict[str, Any] = {"weights": None}
    if size is not None and size != default:
        kwargs["input_shape"] = (size, size, 3)
    try:
        with on_device(device), dtype_policy(dtype):
            return ctor(**kwargs)
    except ValueError as exc:
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "ValueError"
        if size is None or "not available with the torch backend" in text:
            raise UnsupportedError(f"keras: {text}") from None
        name = getattr(ctor, "__name__", "model")
        raise WorkloadError(f"keras:{name} cannot be built at {size} px: {text}") from None


def resolve(name: str) -> ModelSpec:
    """The ModelSpec of `keras.applications.NAME` (case-insensitive), built with `weights=None` on meta."""
    keras = load_keras()
    names = list_names()
    by_lower = {n.lower(): n for n in names}
    canonical = by_lower.get(name.strip().lower())
    if canonical is None:
        near = ", ".join(f"keras:{n}" for n in closest(name.strip(), names))
        raise UnknownModelError(f"unknown keras.applications model {shorten(name)!r}; closest: {near}")
    ctor = getattr(keras.applications, canonical)
    model = _build_application(ctor, torch.float32, None, None, "meta")
    facts = input_facts(model)
    axes = image_axes(facts[0][0])
    default = facts[0][0][axes[0]] if axes is not None else None

    built: list[bool] = []

    def rebuild(dtype: torch.dtype, size: int | None, device: str) -> Any:
        if device == "meta" and dtype == torch.float32 and (size is None or size == default) and not built:
            built.append(True)  # the model built to learn the shapes serves the first matching build
            return model
        return _build_application(ctor, dtype, size, default, device)

    meta: dict[str, Any] = {"keras_class": canonical, "weights": "none (random init, built on meta)"}
    published = PUBLISHED.get(canonical)
    if published is not None:
        meta["published_params"] = published[0]
        meta["source"] = PUBLISHED_SOURCE
        if published[1] is not None:
            meta["accuracy"] = {"dataset": "ImageNet-1k val", "metric": "acc@1", "value": published[1]}
    return make_spec(f"keras:{canonical}", "keras", model, rebuild, meta, resizable=True)
