"""The model sources, each declared once: its spec prefix, the file suffixes it owns, how it resolves a name or a
path, the names it can list and the `--model-option` keys it takes. Resolution (sources/__init__.py), `afford
models`, compare's globs and "did you mean" are loops over SOURCES: adding a source is one entry here.

Source modules are imported only when one of their functions is called (keras, onnx, diffusers, timm and
transformers are slow or optional imports).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from afford import extras
from afford.errors import InputError, MissingExtraError, UnknownModelError
from afford.sources.names import closest, did_you_mean, shorten
from afford.sources.options import refuse

if TYPE_CHECKING:
    from afford.sources.base import ModelSpec

# file suffixes that name a format of their own rather than a Hugging Face config
ONNX_SUFFIXES = (".onnx",)
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
CHECKPOINT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl")
CHECKPOINT_INDEX_SUFFIXES = (".safetensors.index.json", ".bin.index.json")
# a path that no source claims by its suffix or its content is read as a config.json or a model folder by this one
DEFAULT_PATH_SOURCE = "hf"
GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Request:
    """What a resolver may need besides the name: the `--model-option`s and the trust flags of the call."""

    options: Mapping[str, Any] | None = None
    trust_remote_code: bool = False
    allow_hub: bool = False
    trust_pickle: bool = False


@dataclass(frozen=True)
class Source:
    """One model source. `resolve` takes the text after `PREFIX:`; `resolve_path` takes a file or folder that ends
    with one of `suffixes` or that `claims` accepts; `lister` gives the names `PREFIX:NAME` accepts (None: the source
    cannot list, as module:), `glob_lister` the ones `PREFIX:GLOB` expands over (default: `lister`); `bare` maps a
    bare NAME to this source's name for it (None: bare names are not looked up here); `options` gives the
    `--model-option` keys the source takes (None: it refuses any, checked here before `resolve` runs); `needs` are
    the optional libraries its models need, brought by the pip extra `extra` (afford/extras.py): a spec of a source
    whose libraries are missing is refused with one line naming that extra."""

    name: str
    prefix: str | None = None
    resolve: Callable[[str, Request], ModelSpec] | None = None
    suffixes: tuple[str, ...] = ()
    resolve_path: Callable[[Path, Request], ModelSpec] | None = None
    claims: Callable[[Path], bool] | None = None
    lister: Callable[[], list[str]] | None = None
    glob_lister: Callable[[], list[str]] | None = None
    bare: Callable[[str], str | None] | None = None
    options: Callable[[], Collection[str]] | None = None
    extra: str | None = None
    needs: tuple[str, ...] = ()

    def require(self, what: str) -> None:
        """A MissingExtraError naming this source's extra when a library its models need is not installed."""
        if self.extra is not None:
            extras.need(self.extra, self.needs, what)

    def globbable(self) -> Callable[[], list[str]] | None:
        """The names `PREFIX:GLOB` is matched against, or None where the source cannot list them."""
        return self.glob_lister or self.lister


def _exact(lister: Callable[[], list[str]]) -> Callable[[str], str | None]:
    """A bare-name lookup that accepts exactly the names `lister` gives (case-insensitive)."""

    def lookup(name: str) -> str | None:
        """The listed name equal to `name` but for case, or None."""
        return {n.lower(): n for n in lister()}.get(name.lower())

    return lookup


# ---- torchvision -----------------------------------------------------------------------------------------------


def _torchvision(name: str, request: Request) -> ModelSpec:
    """A torchvision model; detection models take their options, the rest refuse them."""
    from afford.sources import torchvision_src

    return torchvision_src.resolve(name, request.options)


def _torchvision_names() -> list[str]:
    """Every model torchvision registers."""
    from afford.sources import torchvision_src

    return torchvision_src.list_names()


def _torchvision_classifiers() -> list[str]:
    """The classification models only: what `torchvision:GLOB` expands over in compare."""
    from afford.sources import torchvision_src

    return torchvision_src.classification_names()


def _torchvision_bare(name: str) -> str | None:
    """The torchvision model of exactly this name, or None."""
    return name if name in _torchvision_names() else None


def _torchvision_options() -> Collection[str]:
    """The detection models' options (sources/detection.py OPTIONS)."""
    from afford.sources import detection

    return tuple(detection.OPTIONS)


# ---- timm ------------------------------------------------------------------------------------------------------


def _timm(name: str, request: Request) -> ModelSpec:
    """A timm model by name (with or without its pretrained tag)."""
    from afford.sources import timm_src

    return timm_src.resolve(name, request.options)


def _timm_options() -> Collection[str]:
    """The timm models' options (sources/timm_src.py OPTIONS)."""
    from afford.sources import timm_src

    return tuple(timm_src.OPTIONS)


def _timm_names() -> list[str]:
    """Every model `timm.list_models()` lists."""
    from afford.sources import timm_src

    return timm_src.list_names()


def _timm_bare(name: str) -> str | None:
    """A timm name, with or without its pretrained tag (`resnet50.a1_in1k`)."""
    return name if name.split(".")[0] in set(_timm_names()) else None


# ---- Hugging Face ----------------------------------------------------------------------------------------------


def _hf(name: str, request: Request) -> ModelSpec:
    """A Hugging Face model by hub id: the bundled catalog, the local cache, then (if allowed) the hub."""
    from afford.sources import hf

    return hf.resolve_hub_id(name, trust_remote_code=request.trust_remote_code, allow_hub=request.allow_hub)


def _hf_path(path: Path, request: Request) -> ModelSpec:
    """A config.json, or a model folder holding one."""
    from afford.sources import hf

    return hf.resolve_path(path, trust_remote_code=request.trust_remote_code)


def _hf_names() -> list[str]:
    """The hub ids of the bundled offline catalog."""
    from afford.sources import hf

    return sorted(hf.catalog())


def _hf_bare(name: str) -> str | None:
    """A catalog entry by its hub id, the id's last part or an alias (case-insensitive)."""
    from afford.sources import hf

    return hf.catalog_aliases().get(name.lower())


# ---- module:, keras:, recsys:, diffusers: ----------------------------------------------------------------------


def _module(target: str, request: Request) -> ModelSpec:
    """`pkg.mod:fn`: the nn.Module a factory returns."""
    from afford.sources import module_src

    return module_src.resolve(target)


def _keras(name: str, request: Request) -> ModelSpec:
    """A `keras.applications` architecture by name (case-insensitive)."""
    from afford.sources import keras as keras_source

    return keras_source.resolve(name)


def _keras_path(path: Path, request: Request) -> ModelSpec:
    """A saved Keras model (.keras archive or legacy .h5): its config only."""
    from afford.sources import keras as keras_source

    return keras_source.resolve_path(path)


def _keras_names() -> list[str]:
    """The architectures `keras.applications` exports (imports keras)."""
    from afford.sources import keras as keras_source

    return keras_source.list_names()


def _recsys(name: str, request: Request) -> ModelSpec:
    """A built-in recommender, sized by its options."""
    from afford.sources import recsys

    return recsys.resolve(name, request.options or {})


def _recsys_names() -> list[str]:
    """The built-in recommender presets."""
    from afford.sources import recsys

    return recsys.list_names()


def _recsys_options() -> Collection[str]:
    """Every preset's option keys (recsys_presets.json)."""
    from afford.sources import recsys

    return sorted({key for name in recsys.list_names() for key in recsys.schema(name)})


def _diffusers(name: str, request: Request) -> ModelSpec:
    """A bundled diffusion pipeline, shaped by its options."""
    from afford.sources import diffusers_src

    return diffusers_src.resolve(name, request.options or {})


def _diffusers_names() -> list[str]:
    """The bundled pipelines by canonical name."""
    from afford.sources import diffusers_src

    return diffusers_src.list_names()


def _diffusers_bare(name: str) -> str | None:
    """A bundled pipeline by its name or one of its aliases (`sdxl`, `sd15`, `dit`), case-insensitive."""
    from afford.sources import diffusers_src

    key = name.lower()
    for stem, entry in diffusers_src.catalog().items():
        if key == stem.lower() or key in (a.lower() for a in entry.get("aliases", ())):
            return stem
    return None


def _diffusers_options() -> Collection[str]:
    """The union over the bundled pipelines of diffusers_src's option schema (DiT has no text_encoder);
    tests/test_registry.py checks it against the keys the source itself accepts."""
    return ("guidance", "steps", "text_encoder", "vae")


# ---- path-only sources: ONNX files and weight checkpoints --------------------------------------------------------


def _onnx_path(path: Path, request: Request) -> ModelSpec:
    """An .onnx file, converted with its weights as meta stand-ins."""
    from afford.sources import onnx as onnx_source

    return onnx_source.resolve_path(path)


def _checkpoint_path(path: Path, request: Request) -> ModelSpec:
    """Weight files (or a folder of them): counted from their headers, with a config beside them."""
    from afford.sources import checkpoint

    return checkpoint.resolve_path(path, trust_pickle=request.trust_pickle,
                                   trust_remote_code=request.trust_remote_code)


def _checkpoint_claims(path: Path) -> bool:
    """A folder holding weight files, or a file named like no known format whose first bytes are a zip, a pickle
    or a safetensors header (weights saved under another name)."""
    if path.is_dir():
        return (any(path.glob("*.safetensors")) or any(path.glob("*.safetensors.index.json"))
                or any((path / n).is_file() for n in ("pytorch_model.bin", "pytorch_model.bin.index.json")))
    if path.name.lower().endswith(".json"):
        return False
    from afford.sources import checkpoint

    return checkpoint.sniff(path) is not None


SOURCES: tuple[Source, ...] = (
    Source("torchvision", "torchvision", _torchvision, lister=_torchvision_names, glob_lister=_torchvision_classifiers,
           bare=_torchvision_bare, options=_torchvision_options),
    Source("timm", "timm", _timm, lister=_timm_names, bare=_timm_bare, extra="timm", needs=("timm",),
           options=_timm_options),
    Source("hf", "hf", _hf, resolve_path=_hf_path, lister=_hf_names, bare=_hf_bare, extra="hf",
           needs=("transformers",)),
    Source("module", "module", _module),
    Source("keras", "keras", _keras, suffixes=KERAS_SUFFIXES, resolve_path=_keras_path, lister=_keras_names,
           extra="keras", needs=("keras",)),
    Source("recsys", "recsys", _recsys, lister=_recsys_names, bare=_exact(_recsys_names), options=_recsys_options),
    Source("diffusers", "diffusers", _diffusers, lister=_diffusers_names, bare=_diffusers_bare,
           options=_diffusers_options, extra="diffusers", needs=("diffusers", "transformers")),
    Source("onnx", suffixes=ONNX_SUFFIXES, resolve_path=_onnx_path, extra="onnx", needs=("onnx", "onnx2torch")),
    Source("checkpoint", suffixes=CHECKPOINT_SUFFIXES + CHECKPOINT_INDEX_SUFFIXES, resolve_path=_checkpoint_path,
           claims=_checkpoint_claims),
)
"""The sources in the order they are tried (suffixes, claims, bare names) and listed."""


def prefixes() -> tuple[str, ...]:
    """Every spec prefix (without its colon), in table order."""
    return tuple(s.prefix for s in SOURCES if s.prefix)


def listable() -> tuple[str, ...]:
    """The prefixes of the sources that can list their names (`afford models --source`, globs)."""
    return tuple(s.prefix for s in SOURCES if s.prefix and s.lister is not None)


def find(prefix: str) -> Source | None:
    """The source whose spec prefix is `prefix` (exact), or None."""
    return next((s for s in SOURCES if s.prefix and s.prefix == prefix), None)


def resolve_prefixed(source: Source, rest: str, request: Request) -> ModelSpec:
    """`PREFIX:REST` by its source; a source that takes no `--model-option` refuses any given."""
    if source.resolve is None:
        raise UnknownModelError(f"{source.prefix}: takes no name, only files ({', '.join(source.suffixes)})")
    if source.options is None:
        refuse(request.options, f"{source.prefix}:{rest}")
    source.require(f"{source.prefix}:{shorten(rest)}")
    return source.resolve(rest, request)


def read_path(path: Path, request: Request) -> ModelSpec:
    """The ModelSpec of the file or folder `path`, read by the source that owns its suffix, else by the first that
    claims what it holds, else by DEFAULT_PATH_SOURCE (a config.json or a model folder)."""
    name = path.name.lower()
    readers = [s for s in SOURCES if s.resolve_path is not None]
    chosen = (next((s for s in readers if s.suffixes and name.endswith(s.suffixes)), None)
              or next((s for s in readers if s.claims is not None and s.claims(path)), None)
              or next(s for s in readers if s.name == DEFAULT_PATH_SOURCE))
    assert chosen.resolve_path is not None  # for mypy: `readers` holds only sources that read paths
    chosen.require(shorten(str(path)))
    return chosen.resolve_path(path, request)


def names(prefix: str) -> list[str]:
    """Every `PREFIX:NAME` a listable source offers; an InputError for a source that cannot list or none at all."""
    key = prefix.strip().rstrip(":")
    source = find(key)
    if source is None or source.lister is None:
        what = f"source {key!r} cannot list its models" if source else f"unknown source {shorten(key)!r}"
        raise InputError(f"{what}; choose {_choices(listable(), 'or')}"
                         + did_you_mean(key, listable()))
    return [f"{source.prefix}:{n}" for n in source.lister()]


def is_glob(spec: str) -> bool:
    """Whether `spec` is `PREFIX:PATTERN` with a wildcard in its pattern."""
    _, sep, pattern = spec.partition(":")
    return bool(sep) and any(c in pattern for c in GLOB_CHARS)


def expand_glob(spec: str) -> list[str]:
    """`PREFIX:GLOB` expanded over the names its source lists (fnmatch, case-sensitive); an InputError when the
    source cannot list or nothing matches."""
    prefix, _, pattern = spec.partition(":")
    source = find(prefix)
    pool = source.globbable() if source is not None else None
    if source is None or pool is None:
        raise InputError(f"{shorten(spec)}: globs work for {_choices([p + ':' for p in listable()], 'and')} specs")
    source.require(shorten(spec))
    hits = [f"{source.prefix}:{n}" for n in pool() if fnmatch.fnmatchcase(n, pattern)]
    if not hits:
        raise InputError(f"{shorten(spec)} matches no model")
    return hits


def bare_hits(name: str) -> list[str]:
    """`PREFIX:NAME` for every source that knows the bare `name` (one hit resolves, several are ambiguous)."""
    hits: list[str] = []
    for source in SOURCES:
        if source.prefix and source.bare is not None:
            try:
                found = source.bare(name)
            except MissingExtraError:  # a source whose library is not installed knows no names
                continue
            if found is not None:
                hits.append(f"{source.prefix}:{found}")
    return hits


def unknown(spec: str) -> UnknownModelError:
    """The error for a spec that no source knows: a close prefix when it starts with an unknown `PREFIX:`, else the
    closest names across the sources that look bare names up."""
    prefix, sep, rest = spec.partition(":")
    if sep and prefix.replace("-", "").replace("_", "").isalnum() and len(prefix) <= 40:
        hint = (": a URL is not a model spec; give hf:ORG/NAME for a Hub model" if rest.startswith("//")
                else did_you_mean(prefix, prefixes(), f":{shorten(rest)}"))
        return UnknownModelError(f"unknown source {shorten(prefix)!r} in {shorten(spec)!r}; sources: "
                                 f"{_choices([p + ':' for p in prefixes()], 'and')}{hint}")
    pool = {n: f"{s.prefix}:{n}" for s in SOURCES if s.prefix and s.bare is not None and s.lister is not None
            for n in _listed(s)}
    near = [pool[c] for c in closest(spec, list(pool))]
    return UnknownModelError(f"unknown model {shorten(spec)!r}; closest: {', '.join(near)}")


def _listed(source: Source) -> list[str]:
    """The names `source` lists, or none when a library it needs is not installed (for suggestions only)."""
    assert source.lister is not None  # for mypy: callers pass listing sources only
    try:
        return source.lister()
    except MissingExtraError:
        return []


def _choices(items: Collection[str], last: str) -> str:
    """`a, b and c` (or `... or c`)."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {last} {items[-1]}"
