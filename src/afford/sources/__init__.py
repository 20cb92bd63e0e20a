"""Resolve a model spec (string, path or nn.Module) to a ModelSpec; the one entry point of every source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from afford.errors import UnknownModelError
from afford.sources import hf, module_src, timm_src, torchvision_src
from afford.sources.base import Dims, ModelKind, ModelSpec
from afford.sources.names import closest

PREFIXES = ("torchvision", "timm", "hf", "module")

__all__ = ["Dims", "ModelKind", "ModelSpec", "resolve"]


def resolve(model: Any, *, trust_remote_code: bool = False, allow_hub: bool = False) -> ModelSpec:
    """A ModelSpec for `model`: `torchvision:NAME`, `timm:NAME`, `hf:ORG/NAME`, `module:pkg.mod:fn`, a path
    to a config.json or model directory, a bare NAME looked up across sources, or an nn.Module object."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, nn.Module):
        return module_src.from_module(model)
    if isinstance(model, Path):
        return hf.resolve_path(model, trust_remote_code=trust_remote_code)
    if not isinstance(model, str) or not model.strip():
        raise UnknownModelError(f"a model spec must be a name, a path or an nn.Module, got {model!r}")
    spec = model.strip()
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in PREFIXES:
        if prefix == "torchvision":
            return torchvision_src.resolve(rest)
        if prefix == "timm":
            return timm_src.resolve(rest)
        if prefix == "hf":
            return hf.resolve_hub_id(rest, trust_remote_code=trust_remote_code, allow_hub=allow_hub)
        return module_src.resolve(rest)
    path = Path(spec).expanduser()
    if path.exists() or spec.endswith(".json") or spec.startswith(("./", "/", "~")):
        if not path.exists():
            raise UnknownModelError(f"{spec}: no such file or directory")
        return hf.resolve_path(path, trust_remote_code=trust_remote_code)
    return _bare(spec, trust_remote_code=trust_remote_code)


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
        raise UnknownModelError(f"{name!r} is ambiguous: it names {', '.join(hits)}; give one of them")
    pool = ([f"torchvision:{n}" for n in torchvision_src.list_names()]
            + [f"timm:{n}" for n in timm_src.list_names()] + [f"hf:{k}" for k in hf.catalog()])
    bare = {p.split(":", 1)[1]: p for p in pool}
    near = [bare[c] for c in closest(name, list(bare))]
    raise UnknownModelError(f"unknown model {name!r}; closest: {', '.join(near)}")
