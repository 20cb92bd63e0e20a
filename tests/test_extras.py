"""The extras table (afford/extras.py) against pyproject.toml, and the helper that turns a missing optional library
into one line naming its extra (issue 15, packaging). The CLI rows are in tests/hostile/cases_extras.py."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from afford import extras
from afford.errors import AffordError, MissingExtraError

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _name(requirement: str) -> str:
    """The distribution name of a requirement string (`transformers>=5.0` -> `transformers`), normalized."""
    found = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert found, requirement
    return re.sub(r"[-_.]+", "-", found.group(0)).lower()


def _project() -> dict[str, object]:
    """pyproject.toml's [project] table."""
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    project = data["project"]
    assert isinstance(project, dict)
    return project


def test_extras_table_matches_pyproject() -> None:
    optional = _project()["optional-dependencies"]
    assert isinstance(optional, dict)
    for extra, modules in extras.EXTRAS.items():
        declared = {_name(r) for r in optional[extra]}
        assert declared == {_name(d) for d in modules.values()}, (extra, declared)
    # `all` is every extra (and only them); `dev` (make test) and `bench` (make bench: the peers) are for developers
    assert optional["all"] == [f"afford[{','.join(extras.EXTRAS)}]"]
    assert set(optional) == {*extras.EXTRAS, "all", "dev", "bench"}


def test_core_holds_no_optional_library() -> None:
    core = {_name(r) for r in _project()["dependencies"]}  # type: ignore[attr-defined]
    optional = {_name(d) for modules in extras.EXTRAS.values() for d in modules.values()}
    assert core & optional == set()
    assert {"torch", "torchvision", "typer", "rich", "platformdirs", "pyyaml"} <= core


def test_require_imports_an_installed_library() -> None:
    mod = extras.require("yaml")  # a core library goes through the same call: the module itself
    assert hasattr(mod, "safe_load")


def test_require_names_the_extra_and_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keras", None)
    with pytest.raises(MissingExtraError) as err:
        extras.require("keras", what="keras:ResNet50")
    assert str(err.value) == ("keras:ResNet50 needs the keras extra (keras is not installed): "
                              "pip install 'afford[keras]'")
    assert isinstance(err.value, AffordError)
    with pytest.raises(MissingExtraError, match=r"^timm models need the timm extra"):
        monkeypatch.setitem(sys.modules, "timm", None)
        extras.require("timm")
    # a submodule names its library's extra; `extra` overrides (diffusers pipelines need transformers)
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.setitem(sys.modules, "transformers.modeling_outputs", None)  # an earlier test may have loaded it
    with pytest.raises(MissingExtraError, match=r"the hf extra \(transformers is not installed\)"):
        extras.require("transformers.modeling_outputs")
    with pytest.raises(MissingExtraError, match=re.escape("pip install 'afford[diffusers]'")):
        extras.require("transformers", extra="diffusers")


def test_require_of_a_library_that_is_no_extra_is_a_plain_import_error() -> None:
    with pytest.raises(ModuleNotFoundError):
        extras.require("afford_no_such_library")


def test_need_checks_without_importing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "onnx2torch", raising=False)
    extras.need("onnx", ["onnx2torch"], "x.onnx")  # installed here (the dev environment holds every extra)
    assert "onnx2torch" not in sys.modules  # found, not imported
    monkeypatch.setitem(sys.modules, "onnx2torch", None)
    assert not extras.installed("onnx2torch")
    with pytest.raises(MissingExtraError, match=r"^x\.onnx needs the onnx extra \(onnx2torch is not installed\)"):
        extras.need("onnx", ["onnx", "onnx2torch"], "x.onnx")


def test_a_broken_install_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def find_spec(self, name: str, path: object = None, target: object = None) -> None:
            if name == "matplotlib":
                raise ImportError("libfreetype.so.6: cannot open shared object file")
            return None

    monkeypatch.delitem(sys.modules, "matplotlib", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    with pytest.raises(MissingExtraError, match=r"report extra \(matplotlib failed to import: ImportError: libfree"):
        extras.require("matplotlib")


def test_from_import_error_maps_only_optional_libraries() -> None:
    found = extras.from_import_error(ModuleNotFoundError("No module named 'peft'", name="peft"))
    assert isinstance(found, MissingExtraError) and "pip install 'afford[hf]'" in str(found)
    assert extras.from_import_error(ModuleNotFoundError("x", name="afford_nothing")) is None
    assert extras.from_import_error(ValueError("peft")) is None


def test_parameters_on_meta_builds_what_accelerate_builds() -> None:
    """The core's stand-in for accelerate's init_empty_weights (torchvision's RegNets need one): the same
    parameters, all on meta, with the same classes and flags, and the buffers left where accelerate leaves them."""
    import torch
    import torchvision
    from accelerate import init_empty_weights

    from afford.sources.building import parameters_on_meta

    with pytest.raises((RuntimeError, NotImplementedError)), torch.device("meta"):
        torchvision.models.regnet_x_400mf()  # why the fallback exists
    with parameters_on_meta():
        ours = torchvision.models.regnet_x_400mf()
    with init_empty_weights(include_buffers=False):
        theirs = torchvision.models.regnet_x_400mf()
    mine = {n: (tuple(p.shape), p.device.type, type(p), p.requires_grad) for n, p in ours.named_parameters()}
    ref = {n: (tuple(p.shape), p.device.type, type(p), p.requires_grad) for n, p in theirs.named_parameters()}
    assert mine == ref and {v[1] for v in mine.values()} == {"meta"}
    assert {n: b.device.type for n, b in ours.named_buffers()} == {n: b.device.type for n, b in theirs.named_buffers()}
    assert torch.nn.Module.register_parameter.__qualname__ == "Module.register_parameter"  # restored
