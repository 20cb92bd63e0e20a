"""`module:pkg.mod:callable` specs and nn.Module objects handed in from Python.

A `module:` spec imports the named module and calls the named callable: it runs that code. What is refused before
anything is called: standard-library targets (`module:os:system`, `module:code:interact`), builtins and other
non-Python callables (`module:os:abort`), classes that are not nn.Module, callables that need arguments; after
the call, a result that is not an nn.Module. A job file may name a `module:` model only with `--trust-code`
(checked by the CLI, `jobfile.merge`)."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn

from afford.errors import InputError, UnknownModelError
from afford.sources.base import Dims, ModelKind, ModelSpec, classification_loss, first_tensor, image_inputs
from afford.sources.example_inputs import config_inputs, example_loss, with_example_inputs
from afford.sources.names import shorten


def _generic_loss(output: Any, inputs: dict[str, Any]) -> torch.Tensor:
    return classification_loss(output, inputs) if "_target" in inputs else first_tensor(output).sum()


def _no_inputs(batch: int, dims: Dims, train: bool) -> dict[str, Any]:
    """Placeholder input maker, replaced by `with_example_inputs`."""
    return {}


def _guess_inputs(module: nn.Module, input_shape: tuple[int, ...] | None) -> Any:
    """Inputs for an arbitrary module: an explicit per-sample shape, else an image if it starts with a conv,
    else a vector of the first Linear's width."""
    if input_shape is not None:
        shape = tuple(input_shape)

        def make(batch: int, dims: Dims, train: bool) -> dict[str, Any]:
            return {"_args": (torch.empty(batch, *shape, device="meta"),)}

        return make, ModelKind.GENERIC
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            return image_inputs(sub.in_channels), ModelKind.IMAGE
        if isinstance(sub, nn.Linear):
            width = sub.in_features

            def make_vec(batch: int, dims: Dims, train: bool, width: int = width) -> dict[str, Any]:
                return {"_args": (torch.empty(batch, width, device="meta"),)}

            return make_vec, ModelKind.GENERIC
    raise InputError("cannot guess this module's input; pass example_inputs (a tensor, a tuple of tensors or a "
                     "dict of keyword tensors, batch dimension first)")


def from_module(module: nn.Module, name: str | None = None, input_shape: tuple[int, ...] | None = None,
                image_size: int = 224, example_inputs: Any = None) -> ModelSpec:
    """A ModelSpec around an existing module; its weights stay where they are (the trace uses stand-ins).

    Its inputs: `example_inputs` when given (a tensor, a tuple of tensors or a dict of keyword tensors, batch
    dimension first, re-batched to the job's batch size: sources/example_inputs.py), else `input_shape`, else for a
    transformers PreTrainedModel token ids (or pixels, audio) made from its config, else a guess from its layers."""
    label = name or f"module:{type(module).__name__}"
    if example_inputs is not None:
        plain = ModelSpec(name=label, source="module", kind=ModelKind.GENERIC,
                          build=lambda dtype, dims, device="meta": module, make_inputs=_no_inputs, loss=_generic_loss)
        return with_example_inputs(plain, example_inputs)
    made = config_inputs(module) if input_shape is None else None
    if made is not None:
        return ModelSpec(name=label, source="module", kind=made.kind, build=lambda dtype, dims, device="meta": module,
                         make_inputs=made.make_inputs, loss=example_loss, native_image_size=made.native_image_size,
                         max_seq_len=made.max_seq_len, default_seq_len=made.default_seq_len,
                         causal_for=made.causal_for, context=made.context, metadata=made.metadata)
    make, kind = _guess_inputs(module, input_shape)
    return ModelSpec(name=label, source="module", kind=kind,
                     build=lambda dtype, dims, device="meta": module, make_inputs=make, loss=_generic_loss,
                     native_image_size=image_size if kind is ModelKind.IMAGE else None,
                     metadata={"inputs_guessed": True} if input_shape is None else {})


def _stdlib(name: str) -> bool:
    """Whether a dotted module name lies in Python's standard library (os, subprocess, code, ...)."""
    return name.split(".")[0] in sys.stdlib_module_names


def _factory(target: str) -> Callable[[], Any]:
    """The callable `pkg.mod:callable` names, checked before anything is called: not in the standard library, and
    a Python function or an nn.Module subclass (never a builtin such as os.system or os.abort)."""
    mod_name, _, attr = target.partition(":")
    shown = shorten(target)
    if not attr.isidentifier() or not all(part.isidentifier() for part in mod_name.split(".")):
        raise InputError(f"module:{shown}: give module:package.module:callable (a Python module path, a colon, the "
                         "name of a function or nn.Module class that builds the model)")
    if _stdlib(mod_name):
        raise InputError(f"module:{shown}: {mod_name.split('.')[0]!r} is Python's standard library, which builds no "
                         "model; refused without importing it")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as exc:
        raise UnknownModelError(f"module:{shown}: cannot import {shorten(mod_name)!r}: {_first_line(exc)}") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a module's import-time code may fail in any way
        raise InputError(f"module:{shown}: importing {shorten(mod_name)!r} raised {type(exc).__name__}: "
                         f"{_first_line(exc)}") from None
    factory = getattr(mod, attr, None)
    if factory is None or not callable(factory):
        raise UnknownModelError(f"module:{shown}: {shorten(mod_name)!r} has no callable {shorten(attr)!r}")
    if inspect.isclass(factory):
        if not issubclass(factory, nn.Module):
            raise InputError(f"module:{shown}: {attr} is a class but not a torch.nn.Module; give a function or an "
                             "nn.Module class that builds the model")
    elif not inspect.isfunction(factory):
        raise InputError(f"module:{shown}: {attr} is a {type(factory).__name__}, not a Python function or nn.Module "
                         "class; refused without calling it")
    if _stdlib(str(getattr(factory, "__module__", "") or "")):
        raise InputError(f"module:{shown}: {attr} comes from Python's standard library ({factory.__module__}), "
                         "which builds no model; refused without calling it")
    try:
        inspect.signature(factory).bind()
    except TypeError:
        raise InputError(f"module:{shown}: {attr} needs arguments; give a callable that builds the model with "
                         "none (wrap it in a function)") from None
    except ValueError:  # no signature to inspect: called as it is
        pass
    return cast(Callable[[], Any], factory)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return shorten(text.splitlines()[0], 200) if text else type(exc).__name__


def _call(factory: Callable[[], Any], target: str) -> Any:
    """`factory()`, with anything it raises as one line naming the spec."""
    try:
        return factory()
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's builder may fail in any way
        raise InputError(f"module:{shorten(target)} raised {type(exc).__name__} while building the model: "
                         f"{_first_line(exc)}") from None


def resolve(target: str) -> ModelSpec:
    """`pkg.mod:callable` -> the module the callable returns, built under the meta device. This imports and runs
    the named code: the callable must be a Python function or an nn.Module class outside the standard library,
    and what it returns must be an nn.Module."""
    if ":" not in target:
        raise InputError(f"module spec {shorten(target)!r} must look like module:package.module:callable")
    factory = _factory(target)
    with torch.device("meta"):
        built = _call(factory, target)
    if not isinstance(built, nn.Module):
        raise InputError(f"module:{shorten(target)} returned {type(built).__name__}, not a torch.nn.Module")
    spec = from_module(built, name=f"module:{target}")

    def build(dtype: torch.dtype, dims: Any, device: str = "meta") -> nn.Module:
        if device == "meta":
            return built
        with torch.device(device):
            return cast(nn.Module, _call(factory, target)).to(dtype=dtype)

    spec.build = build
    return spec
