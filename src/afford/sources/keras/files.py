"""Saved Keras models (`.keras` archives and legacy `.h5` files): only the model config is read, size-capped, and
the architecture deserialized in safe mode (no pickled Python code) on the meta device; weights are never loaded."""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch

from afford.errors import ConfigError, UnknownModelError
from afford.extras import require
from afford.sources.base import ModelSpec
from afford.sources.keras.runtime import POLICY_FOR, load_keras, on_device, retyped
from afford.sources.keras.spec import make_spec

# a saved model's config.json is a few MB at most; a larger member is refused rather than read into memory
MAX_CONFIG_BYTES = 64 * 2**20
# the first bytes of an HDF5 file (the HDF5 format specification, "Format Signature"); legacy Keras saves are HDF5
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


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
        h5py = require("h5py", what=f"reading HDF5 (.h5) Keras file {path}")
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
    keras = load_keras()
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
    load_keras()
    config, legacy = _read_config(path)

    def rebuild(dtype: torch.dtype, size: int | None, device: str) -> Any:
        with on_device(device):
            return _deserialize(path, retyped(config, POLICY_FOR.get(dtype, "float32")), legacy)

    model = rebuild(torch.float32, None, "meta")
    meta: dict[str, Any] = {"keras_class": type(model).__name__, "weights": "not loaded (architecture only)",
                            "file": str(path), "file_format": "legacy HDF5" if legacy else ".keras archive"}
    meta["keras_count_params"] = int(model.count_params())
    return make_spec(f"keras:{path.name}", "keras", model, rebuild, meta, resizable=False)
