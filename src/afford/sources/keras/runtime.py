"""Keras 3 on its PyTorch backend, run on the meta device: the backend check, the device and dtype-policy scopes
Keras builds and runs under, config dtype rewriting, and `KerasModule`, the torch module afford traces (it runs
the model in a `keras.StatelessScope` mapping every variable to the tensor registered under its name)."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, cast

import torch
from torch import nn

from afford.errors import UnsupportedError
from afford.extras import require

FLOAT_POLICIES = {"float16", "float32", "bfloat16", "mixed_float16", "mixed_bfloat16"}
POLICY_FOR = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def load_keras() -> ModuleType:
    """Keras on its PyTorch backend: selects it when keras is not imported yet, refuses another backend."""
    loaded: Any = sys.modules.get("keras")
    if loaded is None:
        # the backend is fixed when keras is first imported; afford's process traces Keras through torch only
        os.environ["KERAS_BACKEND"] = "torch"
        loaded = require("keras")  # a missing keras: one line naming the keras extra
    version = str(getattr(loaded, "__version__", "0"))
    if not version[:1].isdigit() or int(version.split(".")[0]) < 3:
        raise UnsupportedError(f"Keras {version} is installed; afford needs Keras 3 (its PyTorch backend)")
    backend = loaded.backend.backend()
    if backend != "torch":
        raise UnsupportedError(
            f"keras is already imported with the {backend!r} backend; afford counts Keras models on Keras's "
            "PyTorch backend: set KERAS_BACKEND=torch before keras is first imported")
    return cast(ModuleType, loaded)


class _MetaName(str):
    """The device name "meta" that also equals `torch.device("meta")`.

    Keras 3's torch `convert_to_tensor` tests `x.device != get_device()`, a torch.device against a string, which
    is always true, and then replaces a meta tensor by a fresh `empty_like` copy that has no autograd history;
    every weight and activation would lose its gradient. With this name the test holds and tensors pass through.
    It still equals the string "meta", so Keras's random ops keep their meta branch (no seeded generators).
    """

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, str(other) if isinstance(other, torch.device) else other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__


class _EagerMeta(str):
    """The meta device as seen by Keras's torch `nn`, `numpy` and `image` ops: equal to `torch.device("meta")`
    but not to the string "meta". Under "meta" those modules take branches written for Keras's own shape
    inference: max/adaptive pooling runs on a real CPU tensor and `repeat` returns a fresh empty tensor, both
    without autograd history (and the pooling with real memory); with this name they run as on any device."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, torch.device) and other.type == "meta"

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__


# Keras torch-backend modules whose "meta" branches cut autograd (see _EagerMeta)
EAGER_MODULES = ("keras.src.backend.torch.nn", "keras.src.backend.torch.numpy", "keras.src.backend.torch.image")


_WRAPPERS: set[Callable[[], Any]] = set()


@functools.cache
def _eager_view(original: Callable[[], Any]) -> Callable[[], Any]:
    def get_device() -> Any:
        device = original()
        return _EagerMeta("meta") if isinstance(device, _MetaName) else device

    _WRAPPERS.add(get_device)
    return get_device


@contextlib.contextmanager
def on_device(device: str) -> Iterator[None]:
    """Keras creates its tensors on `device` inside the block (the setting `keras.device` scopes); on meta, the
    modules in EAGER_MODULES see `_EagerMeta` so that every op keeps its autograd history."""
    from keras.src.backend.common import global_state

    name = _MetaName("meta") if device == "meta" else device
    previous = global_state.get_global_attribute("torch_device", None)
    global_state.set_global_attribute("torch_device", name)
    patched: list[tuple[Any, Any]] = []
    for mod_name in EAGER_MODULES:
        mod: Any = sys.modules.get(mod_name)
        original = getattr(mod, "get_device", None)
        if original is not None and original not in _WRAPPERS:  # not already inside an outer block
            patched.append((mod, original))
            mod.get_device = _eager_view(original)
    try:
        yield
    finally:
        for mod, original in reversed(patched):
            mod.get_device = original
        global_state.set_global_attribute("torch_device", previous)


@contextlib.contextmanager
def dtype_policy(dtype: torch.dtype) -> Iterator[None]:
    """New layers compute and keep their variables in `dtype` (the policy afford's trace dtype asks for)."""
    keras = load_keras()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(POLICY_FOR.get(dtype, "float32"))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class KerasModule(nn.Module):
    """A Keras model as the torch module afford traces.

    Its children are the model's top-level layers (so per-module FLOPs carry the Keras layer names) and its
    parameters are exactly the model's weights (`model.weights`, trainable and not, as `count_params()` counts
    them); other variables (dropout seed states) are buffers. `forward` runs the model in a StatelessScope that
    gives every variable the tensor now registered under its name, so `functional_call` stand-ins are used.
    """

    _keras_model: Any
    _device: str
    _slots: list[tuple[Any, nn.Module, str]]
    _scope: Any

    def __init__(self, model: Any, device: str = "meta") -> None:
        super().__init__()
        keras = load_keras()
        object.__setattr__(self, "_keras_model", model)  # not a child: its own ParameterDict repeats every weight
        object.__setattr__(self, "_device", device)
        weight_ids = {id(v) for v in model.weights}
        slots: list[tuple[Any, nn.Module, str]] = []
        used: set[str] = set()
        for layer in model.layers:
            if not layer.variables:
                continue
            child = re.sub(r"[^0-9A-Za-z_]", "_", layer.name) or "layer"
            while child in used or hasattr(self, child):
                child += "_"
            used.add(child)
            holder = layer.torch_params  # Keras's ParameterDict of the layer's variables, keyed by variable path
            for var in layer.variables:
                if var.path not in holder._parameters and var.path not in holder._buffers:
                    raise UnsupportedError(f"Keras variable {var.path} is not registered with its layer "
                                           f"{layer.name}; afford cannot substitute it during the trace")
                if id(var) not in weight_ids and var.path in holder._parameters:
                    # RNG state, not a weight: a buffer, as torch keeps such state
                    tensor = holder._parameters.pop(var.path)
                    assert tensor is not None
                    holder.register_buffer(var.path, tensor.detach())
                slots.append((var, holder, var.path))
            self.add_module(child, layer)
        covered = {id(v) for v, _, _ in slots}
        missing = [v.path for v in model.variables if id(v) not in covered]
        if missing:
            raise UnsupportedError(f"Keras model variables outside its layers are not supported: {missing[:3]}")
        object.__setattr__(self, "_slots", slots)
        object.__setattr__(self, "_scope", keras.StatelessScope)

    def forward(self, *inputs: Any) -> Any:
        mapping = [(var, getattr(holder, key)) for var, holder, key in self._slots]
        x = inputs[0] if len(inputs) == 1 else list(inputs)
        with on_device(self._device), self._scope(mapping, initialize_variables=False):
            return self._keras_model(x, training=self.training)


def retyped(config: Any, policy: str) -> Any:
    """A model config with every floating dtype policy set to `policy` (so variables and compute are in it)."""
    if isinstance(config, dict):
        out: dict[str, Any] = {}
        for key, value in config.items():
            if key == "dtype" and isinstance(value, str) and value in FLOAT_POLICIES:
                out[key] = policy
            elif (key == "dtype" and isinstance(value, dict) and "DTypePolicy" in str(value.get("class_name"))
                  and isinstance(value.get("config"), dict) and value["config"].get("name") in FLOAT_POLICIES):
                out[key] = {**value, "config": {**value["config"], "name": policy}}
            else:
                out[key] = retyped(value, policy)
        return out
    if isinstance(config, list):
        return [retyped(v, policy) for v in config]
    return config
