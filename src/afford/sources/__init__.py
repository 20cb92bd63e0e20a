"""Resolve a model spec (string, path or nn.Module) to a ModelSpec; the one entry point of every source."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from afford import safeio
from afford.errors import UnknownModelError
from afford.sources import module_src, registry
from afford.sources.base import Dims, ModelKind, ModelSpec
from afford.sources.example_inputs import with_example_inputs
from afford.sources.names import shorten
from afford.sources.options import refuse
from afford.sources.registry import CHECKPOINT_SUFFIXES, KERAS_SUFFIXES, ONNX_SUFFIXES, Request

# the spec prefixes of the built-in sources (sources/registry.py declares them, with everything else a source has)
PREFIXES = registry.prefixes()

__all__ = ["CHECKPOINT_SUFFIXES", "KERAS_SUFFIXES", "ONNX_SUFFIXES", "PREFIXES", "Dims", "ModelKind", "ModelSpec",
           "resolve"]


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
        return _resolve_path(model, Request(options=options, trust_remote_code=trust_remote_code,
                                            allow_hub=allow_hub, trust_pickle=trust_pickle))
    if not isinstance(model, str) or not model.strip():
        raise UnknownModelError(f"a model spec must be a name, a path or an nn.Module, got {shorten(repr(model))}")
    spec = model.strip()
    request = Request(options=options, trust_remote_code=trust_remote_code, allow_hub=allow_hub,
                      trust_pickle=trust_pickle)
    prefix, sep, rest = spec.partition(":")
    source = registry.find(prefix) if sep else None
    if source is not None:
        return registry.resolve_prefixed(source, rest, request)
    path = _expand(spec)
    if safeio.exists(path) or spec.endswith(".json") or spec.startswith(("./", "/", "~")):
        if not safeio.exists(path):
            raise UnknownModelError(f"{shorten(spec)}: no such file or directory")
        return _resolve_path(path, request)
    refuse(options, spec)
    return _bare(spec, request)


def _resolve_path(path: Path, request: Request) -> ModelSpec:
    """A file or directory, read by the source that owns its suffix, else the one that claims what it holds
    (weights saved under another name), else as a Hugging Face config (sources/registry.py). FIFOs, devices and
    sockets are refused unread."""
    refuse(request.options, str(path))
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise UnknownModelError(f"{shorten(str(path))}: cannot read it: {why}") from None
    kind = safeio.kind_of(mode)
    if kind is not None and kind != "a directory":
        raise UnknownModelError(f"{shorten(str(path))} is {kind}: give a model file or folder")
    return registry.read_path(path, request)


def _expand(spec: str) -> Path:
    """The path a spec names, `~` expanded; a `~user` that does not exist stays as typed."""
    try:
        return Path(spec).expanduser()
    except RuntimeError:
        return Path(spec)


def _bare(name: str, request: Request) -> ModelSpec:
    """A name without a source prefix: it must name exactly one model across the sources that look names up."""
    hits = registry.bare_hits(name)
    if len(hits) == 1:
        return resolve(hits[0], trust_remote_code=request.trust_remote_code)
    if len(hits) > 1:
        raise UnknownModelError(f"{shorten(name)!r} is ambiguous: it names {', '.join(hits)}; give one of them")
    raise registry.unknown(name)
