"""Resolve a model spec (string, path or nn.Module) to a ModelSpec; the one entry point of every source."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from afford import safeio
from afford.errors import UnknownModelError
from afford.sources import hf, module_src, timm_src, torchvision_src
from afford.sources.base import Dims, ModelKind, ModelSpec
from afford.sources.example_inputs import with_example_inputs
from afford.sources.names import closest, shorten
from afford.sources.options import refuse

PREFIXES = ("torchvision", "timm", "hf", "module", "keras", "recsys", "diffusers")
# file suffixes that name a format of their own rather than a Hugging Face config
ONNX_SUFFIXES = (".onnx",)
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl")

__all__ = ["Dims", "ModelKind", "ModelSpec", "resolve"]


def resolve(model: Any, *, trust_remote_code: bool = False, allow_hub: bool = False,
            options: Mapping[str, Any] | None = None, trust_pickle: bool = False,
            example_inputs: Any = None) -> ModelSpec:
    """A ModelSpec for `model`: `torchvision:NAME`, `timm:NAME`, `hf:ORG/NAME`, `keras:NAME`, `recsys:NAME`,
    `diffusers:NAME`, `module:pkg.mod:fn`, a path (config.json, model directory, .onnx, .keras/.h5,
    .safetensors or a pickled checkpoint), a bare NAME looked up across sources, or an nn.Module object.

    `options` are the source's sizes (`--model-option KEY=VALUE`); a source that takes none refuses them.
    Pickled files are never unpickled unless `trust_pickle` is set. `example_inputs` (sources/example_inputs.py)
    replace the inputs the source would make."""
    if example_inputs is not None:
        if isinstance(model, nn.Module) and not type(model).__module__.startswith("keras."):
            refuse(options, "an nn.Module")
            return module_src.from_module(model, example_inputs=example_inputs)
        return with_example_inputs(resolve(model, trust_remote_code=trust_remote_code, allow_hub=allow_hub,
                                           options=options, trust_pickle=trust_pickle), example_inputs)
    if isinstance(model, ModelSpec):
        refuse(options, model.name)
        return model
    if type(model).__module__.startswith("keras."):
        # a Keras model object (an nn.Module too on the torch backend): Keras reads its own variables, so only the
        # Keras source can swap them for meta stand-ins
        from afford.sources import keras as keras_source

        if keras_source.is_keras_model(model):
            refuse(options, "a Keras model")
            return keras_source.from_model(model)
    if isinstance(model, nn.Module):
        refuse(options, "an nn.Module")
        return module_src.from_module(model)
    if isinstance(model, Path):
        return _resolve_path(model, trust_remote_code=trust_remote_code, options=options, trust_pickle=trust_pickle)
    if not isinstance(model, str) or not model.strip():
        raise UnknownModelError(f"a model spec must be a name, a path or an nn.Module, got {shorten(repr(model))}")
    spec = model.strip()
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in PREFIXES:
        if prefix == "recsys":
            from afford.sources import recsys

            return recsys.resolve(rest, options or {})
        if prefix == "diffusers":
            from afford.sources import diffusers_src

            return diffusers_src.resolve(rest, options or {})
        if prefix == "torchvision":  # detection models take options (their fixed counts); the rest refuse them
            return torchvision_src.resolve(rest, options)
        refuse(options, f"{prefix}:{rest}")
        if prefix == "timm":
            return timm_src.resolve(rest)
        if prefix == "hf":
            return hf.resolve_hub_id(rest, trust_remote_code=trust_remote_code, allow_hub=allow_hub)
        if prefix == "keras":
            from afford.sources import keras as keras_source

            return keras_source.resolve(rest)
        return module_src.resolve(rest)
    path = _expand(spec)
    if safeio.exists(path) or spec.endswith(".json") or spec.startswith(("./", "/", "~")):
        if not safeio.exists(path):
            raise UnknownModelError(f"{shorten(spec)}: no such file or directory")
        return _resolve_path(path, trust_remote_code=trust_remote_code, options=options, trust_pickle=trust_pickle)
    refuse(options, spec)
    return _bare(spec, trust_remote_code=trust_remote_code)


def _resolve_path(path: Path, *, trust_remote_code: bool, options: Mapping[str, Any] | None,
                  trust_pickle: bool) -> ModelSpec:
    """A file or directory: dispatched on its suffix (ONNX, Keras, checkpoints), then on its first bytes (weights
    saved under another name), else a Hugging Face config. FIFOs, devices and sockets are refused unread."""
    name = path.name.lower()
    refuse(options, str(path))
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise UnknownModelError(f"{shorten(str(path))}: cannot read it: {why}") from None
    kind = safeio.kind_of(mode)
    if kind is not None and kind != "a directory":
        raise UnknownModelError(f"{shorten(str(path))} is {kind}: give a model file or folder")
    if name.endswith(ONNX_SUFFIXES):
        from afford.sources import onnx as onnx_source

        return onnx_source.resolve_path(path)
    if name.endswith(KERAS_SUFFIXES):
        from afford.sources import keras as keras_source

        return keras_source.resolve_path(path)
    weights_dir = path.is_dir() and (
        any(path.glob("*.safetensors")) or any(path.glob("*.safetensors.index.json"))
        or any((path / n).is_file() for n in ("pytorch_model.bin", "pytorch_model.bin.index.json")))
    if (name.endswith((*CHECKPOINT_SUFFIXES, ".safetensors.index.json", ".bin.index.json")) or weights_dir
            or (kind is None and not name.endswith(".json") and _weights_by_content(path))):
        # weight files (or a directory holding them): counted from their headers, assessed with a config beside
        from afford.sources import checkpoint

        return checkpoint.resolve_path(path, trust_pickle=trust_pickle, trust_remote_code=trust_remote_code)
    return hf.resolve_path(path, trust_remote_code=trust_remote_code)


def _expand(spec: str) -> Path:
    """The path a spec names, `~` expanded; a `~user` that does not exist stays as typed."""
    try:
        return Path(spec).expanduser()
    except RuntimeError:
        return Path(spec)


def _weights_by_content(path: Path) -> bool:
    """A file named like no known format whose first bytes are a zip, a pickle or a safetensors header."""
    from afford.sources import checkpoint

    return checkpoint.sniff(path) is not None


def _bare(name: str, *, trust_remote_code: bool) -> ModelSpec:
    """A name without a source prefix: it must name exactly one model across the sources."""
    hits: list[str] = []
    if name in torchvision_src.list_names():
        hits.append(f"torchvision:{name}")
    if name.split(".")[0] in set(timm_src.list_names()):
        hits.append(f"timm:{name}")
    hf_key = hf.catalog_aliases().get(name.lower())
    if hf_key is not None:
        hits.append(f"hf:{hf_key}")
    if len(hits) == 1:
        return resolve(hits[0], trust_remote_code=trust_remote_code)
    if len(hits) > 1:
        raise UnknownModelError(f"{shorten(name)!r} is ambiguous: it names {', '.join(hits)}; give one of them")
    pool = ([f"torchvision:{n}" for n in torchvision_src.list_names()]
            + [f"timm:{n}" for n in timm_src.list_names()] + [f"hf:{k}" for k in hf.catalog()])
    bare = {p.split(":", 1)[1]: p for p in pool}
    near = [bare[c] for c in closest(name, list(bare))]
    raise UnknownModelError(f"unknown model {shorten(name)!r}; closest: {', '.join(near)}")
