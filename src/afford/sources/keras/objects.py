"""Keras model objects built in Python: traced as they are in fp32 (their weights neither copied nor read), or
rebuilt from their config for another dtype or a real device."""

from __future__ import annotations

from typing import Any

import torch

from afford.errors import UnsupportedError
from afford.sources.base import ModelSpec
from afford.sources.keras.runtime import POLICY_FOR, load_keras, on_device, retyped
from afford.sources.keras.spec import make_spec


def is_keras_model(model: Any) -> bool:
    """Whether `model` is a Keras model object (on the torch backend it is also an nn.Module)."""
    return type(model).__module__.startswith("keras.") and hasattr(model, "count_params")


def from_model(model: Any, name: str | None = None) -> ModelSpec:
    """The ModelSpec of a Keras model object built in Python: traced as is (its weights are neither copied nor
    read), or rebuilt from its config for another dtype or a real device."""
    keras = load_keras()
    if not isinstance(model, keras.Model):
        raise UnsupportedError(f"{type(model).__name__} is not a Keras model")
    try:
        config: Any = keras.saving.serialize_keras_object(model)
    except (NotImplementedError, TypeError, ValueError):
        config = None

    def rebuild(dtype: torch.dtype, size: int | None, device: str) -> Any:
        if dtype == torch.float32 and device == "meta":
            return model
        if config is None:
            raise UnsupportedError(f"{type(model).__name__} has no get_config(); it can be traced in fp32 only")
        from keras.src.saving import serialization_lib

        with on_device(device), serialization_lib.ObjectSharingScope():
            return keras.saving.deserialize_keras_object(retyped(config, POLICY_FOR.get(dtype, "float32")))

    meta = {"keras_class": type(model).__name__, "weights": "the object's own (not copied)",
            "keras_count_params": int(model.count_params())}
    return make_spec(name or f"keras:{model.name}", "keras", model, rebuild, meta, resizable=False)
