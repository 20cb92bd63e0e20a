"""Keras 3 models: `keras:NAME` (the `keras.applications` architectures) and saved `.keras` / `.h5` files.

They are counted by the same meta-device trace as every other source, through Keras's PyTorch backend: there a
Keras layer is a `torch.nn.Module` whose ops are torch ops, so afford's FlopCounterMode sees every convolution
and matmul. Keras reads each weight through `variable.value`, not through the module's parameters, so the
module afford traces (`KerasModule`) runs the model inside a `keras.StatelessScope` that maps every variable
to the tensor registered under its name: the trace's stand-ins (dtype, `--freeze`) are what Keras computes
with. Models are built on the meta device with `weights=None`; nothing is downloaded and no weights are read.
Method and figures: docs/keras.md.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import os
import re
import sys
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import torch
from torch import nn

from afford.errors import ConfigError, UnknownModelError, UnsupportedError, WorkloadError
from afford.sources.base import Dims, ModelKind, ModelSpec, classification_loss, first_tensor
from afford.sources.names import closest

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
# MobileNetV3 accepts any input size; its published checkpoints are the 224 px ones (mobilenet_v3.py docstring
# table, "mobilenet_v3_large_1.0_224"), so 224 px is its native size, as for the other 224 px applications
DEFAULT_IMAGE_SIZE = 224
# a saved model's config.json is a few MB at most; a larger member is refused rather than read into memory
MAX_CONFIG_BYTES = 64 * 2**20
# the first bytes of an HDF5 file (the HDF5 format specification, "Format Signature"); legacy Keras saves are HDF5
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
FLOAT_POLICIES = {"float16", "float32", "bfloat16", "mixed_float16", "mixed_bfloat16"}
POLICY_FOR = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def _keras() -> ModuleType:
    """Keras on its PyTorch backend: selects it when keras is not imported yet, refuses another backend."""
    loaded: Any = sys.modules.get("keras")
    if loaded is None:
        # the backend is fixed when keras is first imported; afford's process traces Keras through torch only
        os.environ["KERAS_BACKEND"] = "torch"
        try:
            loaded = importlib.import_module("keras")
        except ImportError as exc:
            raise UnsupportedError(f"Keras models need Keras 3 with its PyTorch backend (pip install 'keras>=3'): "
                                   f"{exc}") from None
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
def _on_device(device: str) -> Iterator[None]:
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
def _dtype_policy(dtype: torch.dtype) -> Iterator[None]:
    """New layers compute and keep their variables in `dtype` (the policy afford's trace dtype asks for)."""
    keras = _keras()
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
        keras = _keras()
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
        with _on_device(self._device), self._scope(mapping, initialize_variables=False):
            return self._keras_model(x, training=self.training)


def list_names() -> list[str]:
    """The architectures `keras.applications` exports (ResNet50, MobileNetV2, EfficientNetB0, ...)."""
    apps = _keras().applications
    return sorted(n for n in dir(apps) if n[:1].isupper() and callable(getattr(apps, n)))


def _input_facts(model: Any) -> list[tuple[tuple[int | None, ...], str]]:
    """(per-sample shape, dtype) of each model input; a model without defined inputs is refused."""
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError) as exc:
        raise UnsupportedError(f"the Keras model has no defined inputs ({exc}); save it with an Input layer or "
                               "an input_shape") from None
    if not inputs:
        raise UnsupportedError("the Keras model has no defined inputs; save it with an Input layer")
    return [(tuple(t.shape[1:]), str(t.dtype)) for t in inputs]


def _image_axes(shape: tuple[int | None, ...]) -> tuple[int, int] | None:
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
            for axis in _image_axes(shape) or ():
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


def _spec(name: str, source: str, model: Any, rebuild: Callable[[torch.dtype, int | None, str], Any],
          metadata: dict[str, Any], resizable: bool) -> ModelSpec:
    """A ModelSpec around a model built once on meta (its shapes) and `rebuild(dtype, image_size, device)`."""
    facts = _input_facts(model)
    axes = _image_axes(facts[0][0]) if len(facts) == 1 else None
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
    metadata = {"framework": f"keras {_keras().__version__} (torch backend)", "input_layout":
                "channels_last (N, H, W, C)" if axes == (0, 1) else "as saved", **metadata}
    return ModelSpec(name=name, source=source, kind=kind, build=build, make_inputs=inputs, loss=_loss,
                     native_image_size=native, metadata=metadata)


def _build_application(ctor: Callable[..., Any], dtype: torch.dtype, size: int | None, default: int | None,
                       device: str) -> Any:
    """`keras.applications.NAME(weights=None)` on `device`, in `dtype`, at `size` px if not the default."""
    kwargs: dict[str, Any] = {"weights": None}
    if size is not None and size != default:
        kwargs["input_shape"] = (size, size, 3)
    try:
        with _on_device(device), _dtype_policy(dtype):
            return ctor(**kwargs)
    except ValueError as exc:
        text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "ValueError"
        if size is None or "not available with the torch backend" in text:
            raise UnsupportedError(f"keras: {text}") from None
        name = getattr(ctor, "__name__", "model")
        raise WorkloadError(f"keras:{name} cannot be built at {size} px: {text}") from None


def resolve(name: str) -> ModelSpec:
    """The ModelSpec of `keras.applications.NAME` (case-insensitive), built with `weights=None` on meta."""
    keras = _keras()
    names = list_names()
    by_lower = {n.lower(): n for n in names}
    canonical = by_lower.get(name.strip().lower())
    if canonical is None:
        near = ", ".join(f"keras:{n}" for n in closest(name.strip(), names))
        raise UnknownModelError(f"unknown keras.applications model {name!r}; closest: {near}")
    ctor = getattr(keras.applications, canonical)
    model = _build_application(ctor, torch.float32, None, None, "meta")
    facts = _input_facts(model)
    axes = _image_axes(facts[0][0])
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
    return _spec(f"keras:{canonical}", "keras", model, rebuild, meta, resizable=True)


def _retyped(config: Any, policy: str) -> Any:
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
                out[key] = _retyped(value, policy)
        return out
    if isinstance(config, list):
        return [_retyped(v, policy) for v in config]
    return config


def _read_config(path: Path) -> tuple[dict[str, Any], bool]:
    """The model config of a `.keras` archive or a legacy `.h5` file, and whether it is the legacy format."""
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}") from None
    if head.startswith(b"PK"):  # a .keras archive is a zip file
        try:
            with zipfile.ZipFile(path) as zf:
                if "config.json" not in zf.namelist():
                    raise ConfigError(f"{path}: not a Keras model archive (no config.json inside)")
                if zf.getinfo("config.json").file_size > MAX_CONFIG_BYTES:
                    raise ConfigError(f"{path}: its config.json is over {MAX_CONFIG_BYTES >> 20} MiB; refused")
                text = zf.read("config.json").decode("utf-8")
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
            raise ConfigError(f"{path}: corrupt or truncated Keras archive ({type(exc).__name__}: "
                              f"{str(exc)[:120]})") from None
        legacy = False
    elif head != HDF5_MAGIC and path.suffix.lower() == ".keras":
        raise ConfigError(f"{path}: not a Keras archive (a .keras file is a zip file): corrupt or truncated")
    else:
        try:
            import h5py
        except ImportError:
            raise UnsupportedError(f"{path}: reading HDF5 (.h5) Keras files needs h5py") from None
        try:
            with h5py.File(path, "r") as f:
                raw = f.attrs.get("model_config")
        except OSError as exc:
            raise ConfigError(f"{path}: not a readable HDF5 file: corrupt or truncated ({str(exc)[:120]})") from None
        if raw is None:
            raise ConfigError(f"{path}: no model config inside (a weights-only file?); save the whole model with "
                              "model.save(...)")
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        legacy = True
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: its model config is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ConfigError(f"{path}: its model config has no class_name; not a Keras model file")
    return config, legacy


def _deserialize(path: Path, config: dict[str, Any], legacy: bool) -> Any:
    """The model a config describes, deserialized in safe mode (no pickled Python code); errors are one line."""
    keras = _keras()
    from keras.src.saving import serialization_lib

    config = {k: v for k, v in config.items() if k != "compile_config"}
    try:
        if legacy:
            from keras.src.legacy.saving import saving_options, saving_utils

            with saving_options.keras_option_scope(use_legacy_config=True), serialization_lib.SafeModeScope(True):
                model = saving_utils.model_from_config(config)
        else:
            with serialization_lib.ObjectSharingScope():
                model = keras.saving.deserialize_keras_object(config, safe_mode=True)
    except (TypeError, ValueError, KeyError, AttributeError, NotImplementedError, IndexError) as exc:
        text = str(exc)
        unknown = (re.search(r"Could not (?:locate|deserialize) (?:class|function|object)\s+'?([\w.>]+)'?", text)
                   or re.search(r"Unknown (?:layer|object|class)\w*:\s*'?([\w.>]+)'?", text))
        if unknown:
            layer = unknown.group(1).split(">")[-1]
            raise ConfigError(f"{path}: unknown layer class {layer!r} (neither built into Keras nor registered); "
                              "import the code that registers it (@keras.saving.register_keras_serializable) and "
                              "call afford.assess from Python") from None
        if "lambda" in text.lower() and "safe" in text.lower():
            raise ConfigError(f"{path}: contains a Lambda layer (pickled Python code), which afford never "
                              "deserializes") from None
        first = text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__
        raise ConfigError(f"{path}: cannot rebuild the Keras model from its config: {first}") from None
    if not isinstance(model, keras.Model):
        raise ConfigError(f"{path}: holds a {type(model).__name__}, not a Keras model")
    return model


def resolve_path(path: Path) -> ModelSpec:
    """The ModelSpec of a saved Keras model (`.keras` archive or legacy `.h5`): its config only is read and the
    architecture rebuilt on meta; the stored weights are never loaded."""
    path = Path(path)
    if not path.is_file():
        raise UnknownModelError(f"{path}: no such file")
    _keras()
    config, legacy = _read_config(path)

    def rebuild(dtype: torch.dtype, size: int | None, device: str) -> Any:
        with _on_device(device):
            return _deserialize(path, _retyped(config, POLICY_FOR.get(dtype, "float32")), legacy)

    model = rebuild(torch.float32, None, "meta")
    meta: dict[str, Any] = {"keras_class": type(model).__name__, "weights": "not loaded (architecture only)",
                            "file": str(path), "file_format": "legacy HDF5" if legacy else ".keras archive"}
    meta["keras_count_params"] = int(model.count_params())
    return _spec(f"keras:{path.name}", "keras", model, rebuild, meta, resizable=False)


def is_keras_model(model: Any) -> bool:
    """Whether `model` is a Keras model object (on the torch backend it is also an nn.Module)."""
    return type(model).__module__.startswith("keras.") and hasattr(model, "count_params")


def from_model(model: Any, name: str | None = None) -> ModelSpec:
    """The ModelSpec of a Keras model object built in Python: traced as is (its weights are neither copied nor
    read), or rebuilt from its config for another dtype or a real device."""
    keras = _keras()
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

        with _on_device(device), serialization_lib.ObjectSharingScope():
            return keras.saving.deserialize_keras_object(_retyped(config, POLICY_FOR.get(dtype, "float32")))

    meta = {"keras_class": type(model).__name__, "weights": "the object's own (not copied)",
            "keras_count_params": int(model.count_params())}
    return _spec(name or f"keras:{model.name}", "keras", model, rebuild, meta, resizable=False)

