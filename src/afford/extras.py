"""The optional libraries behind pip extras: `pip install afford` is the light core (torch, torchvision, typer,
rich, ...); `afford[hf]`, `afford[timm]`, `afford[keras]`, `afford[onnx]`, `afford[diffusers]`, `afford[report]`,
`afford[notebook]`, `afford[web]`, `afford[parquet]` and `afford[dask]` add the rest (pyproject.toml;
tests/test_extras.py keeps the two tables equal).

Every import of an optional library goes through `require` (or is preceded by `need`), so that a missing one is a
one-line MissingExtraError naming the pip command, never a traceback. Nothing here imports a library up front.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from types import ModuleType

from afford.errors import MissingExtraError

# extra -> {import name: distribution name}: what each extra of pyproject.toml brings (its `all` is their union)
EXTRAS: dict[str, dict[str, str]] = {
    "hf": {"transformers": "transformers", "accelerate": "accelerate", "huggingface_hub": "huggingface-hub",
           "peft": "peft"},
    "timm": {"timm": "timm"},
    "keras": {"keras": "keras", "h5py": "h5py"},
    "onnx": {"onnx": "onnx", "onnxscript": "onnxscript", "onnx2torch": "onnx2torch"},
    "diffusers": {"diffusers": "diffusers", "transformers": "transformers"},  # transformers: CLIP text encoders
    "report": {"matplotlib": "matplotlib"},
    "notebook": {"pandas": "pandas"},
    "web": {"matplotlib": "matplotlib"},  # afford web's HTML report download (the server itself is stdlib)
    "parquet": {"pyarrow": "pyarrow"},  # afford sweep --parquet
    # afford sweep --scheduler (decide/cluster.py); distributed comes as dask[distributed], at dask's own version
    "dask": {"dask": "dask", "distributed": "dask"},
}
# what each extra is for, as the subject of its message when no model spec is at hand ("timm models need ...")
PURPOSE = {"hf": "Hugging Face models", "timm": "timm models", "keras": "Keras models", "onnx": "ONNX files",
           "diffusers": "diffusion pipelines", "report": "plots and HTML reports", "notebook": "DataFrames",
           "web": "the web page's reports", "parquet": "Parquet output (afford sweep --parquet)",
           "dask": "sweeps on a Dask cluster (afford sweep --scheduler)"}
# the extra named for a library several extras bring (transformers: hf and diffusers): the first one listed
_EXTRA_OF: dict[str, str] = {}
for _extra, _modules in EXTRAS.items():
    for _module in _modules:
        _EXTRA_OF.setdefault(_module, _extra)


def extra_of(module: str) -> str | None:
    """The extra that brings the library `module` (or a submodule of it: `transformers.models`), or None."""
    return _EXTRA_OF.get(module.split(".")[0])


def install_command(extra: str) -> str:
    """The pip command that installs `extra`, quoted for a shell."""
    return f"pip install 'afford[{extra}]'"


def message(extra: str, module: str, what: str | None = None, why: str = "") -> str:
    """The one line of a missing extra: `keras:ResNet50 needs the keras extra (keras is not installed): pip
    install 'afford[keras]'`; without `what`, the extra's purpose is the subject."""
    subject = f"{what} needs" if what else f"{PURPOSE.get(extra, 'this')} need"
    reason = why or f"{module.split('.')[0]} is not installed"
    return f"{subject} the {extra} extra ({reason}): {install_command(extra)}"


def _reason(exc: ImportError, module: str) -> str:
    """Why `module` did not import: not installed (the usual case), or its own import failed (a broken install)."""
    top = module.split(".")[0]
    missing = (exc.name or "").split(".")[0]
    if isinstance(exc, ModuleNotFoundError) and missing in ("", top):
        return f"{top} is not installed"
    first = str(exc).splitlines()[0][:200] if str(exc).strip() else ""
    return f"{top} failed to import: {type(exc).__name__}: {first}"


def require(module: str, what: str | None = None, extra: str | None = None) -> ModuleType:
    """Import the optional library `module` (`transformers`, `onnx2torch.utils.common`, ...); when it cannot be
    imported, a MissingExtraError naming its extra (`extra`, else the one that brings it) and the pip command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        name = extra or extra_of(module)
        if name is None:  # not an optional library: a programming error, not a missing extra
            raise
        raise MissingExtraError(message(name, module, what, _reason(exc, module))) from None


def installed(module: str) -> bool:
    """Whether the library `module` can be found, without importing it (None in sys.modules counts as absent)."""
    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):  # a parent that fails, or a module whose __spec__ is unset
        return False


def need(extra: str, modules: Iterable[str], what: str | None = None) -> None:
    """A MissingExtraError naming `extra` when one of `modules` is not installed (checked without importing, so a
    source can refuse a spec before any slow import)."""
    for module in modules:
        if not installed(module):
            raise MissingExtraError(message(extra, module, what))


def from_import_error(exc: BaseException) -> MissingExtraError | None:
    """The MissingExtraError for an import of an optional library that escaped `require` (a ModuleNotFoundError
    naming it), or None for any other exception: the CLI's last line of defence."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    name = extra_of(exc.name)
    return MissingExtraError(message(name, exc.name)) if name else None
