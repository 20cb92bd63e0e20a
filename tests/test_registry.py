"""The sources registry (sources/registry.py): every prefix resolves, the CLI names the same prefixes, globs and
`afford models` work for every listable source, and one entry is all a new source needs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer
from torch import nn

from afford.decide.compare import expand
from afford.errors import InputError, UnknownModelError
from afford.sources import PREFIXES, ModelSpec, module_src, registry, resolve
from afford.sources.registry import Request, Source
from hostile.harness import Case, check_case

# the cheapest known name of each prefix: resolution only, nothing is built or traced
TINY = {
    "torchvision": "resnet18",
    "timm": "resnet18",
    "hf": "openai-community/gpt2",
    "module": "fixture_models:mlp",
    "keras": "MobileNetV2",
    "recsys": "two-tower",
    "diffusers": "DiT-XL-2-256",
}


def test_the_table_has_a_tiny_name_for_every_prefix() -> None:
    assert set(TINY) == set(registry.prefixes()) == set(PREFIXES)


@pytest.mark.parametrize("prefix", sorted(TINY))
def test_every_prefix_resolves_a_tiny_name(prefix: str) -> None:
    spec = resolve(f"{prefix}:{TINY[prefix]}")
    assert spec.source == prefix
    assert spec.name.startswith(f"{prefix}:")


def _help_of_model_argument() -> str:
    """The help text of `afford assess`'s model argument, read from the typer app as the CLI shows it."""
    from afford.cli import app

    command = typer.main.get_command(app).commands["assess"]  # type: ignore[attr-defined]
    argument = next(p for p in command.params if p.name == "model")
    return str(argument.help)


def test_the_registry_prefixes_are_the_ones_the_cli_help_names() -> None:
    text = _help_of_model_argument()
    named = set(re.findall(r"(?<![\w.])([a-z]+):", text))
    assert named == set(registry.prefixes()), text


def test_models_lists_every_listable_source_and_skips_the_rest() -> None:
    assert set(registry.listable()) == {"torchvision", "timm", "hf", "keras", "recsys", "diffusers"}
    from afford.cli.compare import MODEL_SOURCES

    assert MODEL_SOURCES.split(" | ") == list(registry.listable())
    result = check_case(Case("registry-models-recsys", ["models", "--source", "recsys", "--json"], 0), Path("."))
    assert json.loads(result.stdout)["models"] == ["recsys:dlrm", "recsys:dlrm-dcnv2-mlperf", "recsys:two-tower"]
    result = check_case(Case("registry-models-diffusers", ["models", "--source", "diffusers", "--pattern", "dit"],
                             0), Path("."))
    assert result.stdout.split() == ["diffusers:DiT-XL-2-256", "diffusers:DiT-XL-2-512"]


def test_globs_expand_for_listable_sources_other_than_torchvision() -> None:
    timm_hits = expand(["timm:resnet1*"])
    assert "timm:resnet18" in timm_hits and "timm:resnet101" in timm_hits
    assert all(re.fullmatch(r"timm:resnet1\S*", h) for h in timm_hits)
    assert expand(["recsys:*"]) == ["recsys:dlrm", "recsys:dlrm-dcnv2-mlperf", "recsys:two-tower"]
    assert expand(["diffusers:DiT-*", "recsys:dlrm"]) == ["diffusers:DiT-XL-2-256", "diffusers:DiT-XL-2-512",
                                                          "recsys:dlrm"]
    # torchvision globs keep to the classification models (compare ranks them by ImageNet accuracy)
    tv = expand(["torchvision:*"])
    assert "torchvision:resnet50" in tv and "torchvision:fasterrcnn_resnet50_fpn" not in tv


def test_an_unlistable_source_cannot_glob() -> None:
    with pytest.raises(InputError, match=r"module:\*: globs work for torchvision:, timm:, hf:, keras:, recsys: and "
                                         r"diffusers: specs"):
        expand(["module:*", "torchvision:resnet18"])


ROWS = [
    Case("registry-glob-unlistable", ["compare", "module:pkg.*", "torchvision:resnet18"], 2,
         r"module:pkg\.\*: globs work for torchvision:, timm:, hf:"),
    Case("registry-glob-unknown-prefix", ["compare", "nosuch:*", "torchvision:resnet18"], 2, r"globs work for"),
    Case("registry-glob-matches-nothing", ["compare", "recsys:zz*", "torchvision:resnet18"], 2,
         r"recsys:zz\* matches no model"),
    Case("registry-models-unlistable", ["models", "--source", "module"], 2,
         r"source 'module' cannot list its models; choose torchvision, timm, hf, keras, recsys or diffusers"),
    Case("registry-models-did-you-mean", ["models", "--source", "timn"], 2,
         r"unknown source 'timn'.*did you mean timm\?"),
    Case("registry-unknown-prefix", ["assess", "torchvison:resnet18", "--infer-samples", "1"], 2,
         r"unknown source 'torchvison'.*did you mean torchvision:resnet18\?"),
    Case("registry-unknown-prefix-case", ["assess", "HF:gpt2", "--infer-samples", "1"], 2, r"did you mean hf:gpt2\?"),
    Case("registry-unknown-prefix-far", ["assess", "zzz:model", "--infer-samples", "1"], 2,
         r"unknown source 'zzz' in 'zzz:model'; sources: torchvision:, timm:, hf:, module:, keras:, recsys: and "
         r"diffusers:$"),
    Case("registry-url-spec", ["assess", "https://huggingface.co/gpt2", "--infer-samples", "1"], 2,
         r"a URL is not a model spec; give hf:ORG/NAME"),
    Case("registry-bare-recsys", ["assess", "two-tower", "--train-samples", "10", "--json"], 0, r'"recsys:two-tower"'),
]


@pytest.mark.parametrize("case", ROWS, ids=[c.id for c in ROWS])
def test_cli_rows(case: Case, tmp_path: Path) -> None:
    check_case(case, tmp_path)


def test_bare_names_look_across_every_source_that_looks_them_up() -> None:
    assert resolve("sdxl").name == "diffusers:stable-diffusion-xl-base-1.0"
    assert registry.bare_hits("resnet50") == ["torchvision:resnet50", "timm:resnet50"]
    with pytest.raises(UnknownModelError, match=r"unknown model 'dlrn'; closest: recsys:dlrm"):
        resolve("dlrn")


def _valid_options(spec: str) -> set[str]:
    """The option keys `spec` accepts, read from the error an unknown key raises (empty when it takes none)."""
    try:
        resolve(spec, options={"zz_not_an_option": "1"})
    except InputError as exc:
        found = re.search(r"valid options: (.*)$", str(exc))
        if found is None:
            assert "takes no --model-option" in str(exc), exc
            return set()
        return set(found.group(1).split(", "))
    raise AssertionError(f"{spec} took an unknown option")


@pytest.mark.parametrize("prefix", ["torchvision", "recsys", "diffusers"])
def test_declared_option_keys_are_the_ones_the_source_takes(prefix: str) -> None:
    source = registry.find(prefix)
    assert source is not None and source.options is not None and source.lister is not None
    taken = set().union(*(_valid_options(name) for name in registry.names(prefix)))
    assert taken == set(source.options())


def test_sources_without_options_refuse_them() -> None:
    assert [s.prefix for s in registry.SOURCES if s.prefix and s.options is not None] == [
        "torchvision", "timm", "recsys", "diffusers"]
    with pytest.raises(InputError, match=r"hf:openai-community/gpt2 takes no --model-option \(got dim\)"):
        resolve("hf:openai-community/gpt2", options={"dim": "3"})
    with pytest.raises(InputError, match=r"timm:resnet18 has no option 'dim'; valid options: fast_norm, reparam"):
        resolve("timm:resnet18", options={"dim": "3"})


# ---- one entry is all a new source needs ----------------------------------------------------------------------


def _fake_spec(name: str) -> ModelSpec:
    """A three-layer MLP on 8 features, named `name`."""
    return module_src.from_module(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2)), name=name,
                                  input_shape=(8,))


def _fake(name: str, request: Request) -> ModelSpec:
    """The fake source's name resolver: two names, anything else unknown."""
    if name not in ("tiny-a", "tiny-b"):
        raise UnknownModelError(f"unknown fake model {name!r}")
    return _fake_spec(f"fake:{name}")


def _fake_path(path: Path, request: Request) -> ModelSpec:
    """The fake source's path resolver: any file ending in .fake."""
    return _fake_spec(f"fake:{path.stem}")


FAKE = Source("fake", "fake", _fake, suffixes=(".fake",), resolve_path=_fake_path,
              lister=lambda: ["tiny-a", "tiny-b"], bare=lambda n: n if n in ("tiny-a", "tiny-b") else None)


@pytest.fixture
def fake_source(monkeypatch: pytest.MonkeyPatch) -> Source:
    """FAKE appended to the registry for one test: the only change a new source needs."""
    monkeypatch.setattr(registry, "SOURCES", (*registry.SOURCES, FAKE))
    return FAKE


def test_a_new_entry_resolves_by_prefix_suffix_and_bare_name(fake_source: Source, tmp_path: Path) -> None:
    assert resolve("fake:tiny-a").name == "fake:tiny-a"
    assert resolve("tiny-b").name == "fake:tiny-b"
    weights = tmp_path / "mine.fake"
    weights.write_text("anything")
    assert resolve(str(weights)).name == "fake:mine"
    with pytest.raises(UnknownModelError, match=r"did you mean fake:tiny-a\?"):
        resolve("fak:tiny-a")
    with pytest.raises(InputError, match="fake:tiny-a takes no --model-option"):
        resolve("fake:tiny-a", options={"rows": "3"})


def test_a_new_entry_is_listed_and_globbed(fake_source: Source) -> None:
    assert registry.names("fake") == ["fake:tiny-a", "fake:tiny-b"]
    assert expand(["fake:tiny-*"]) == ["fake:tiny-a", "fake:tiny-b"]
    result = check_case(Case("registry-fake-models", ["models", "--source", "fake", "--json"], 0), Path("."))
    assert json.loads(result.stdout)["models"] == ["fake:tiny-a", "fake:tiny-b"]
    bad = check_case(Case("registry-fake-glob-unlistable", ["compare", "module:*", "fake:tiny-a"], 2,
                          r"globs work for .*diffusers: and fake: specs"), Path("."))
    assert bad.stdout == ""


def test_a_new_entry_runs_through_compare(fake_source: Source) -> None:
    result = check_case(Case("registry-fake-compare", ["compare", "fake:tiny-*", "--train-samples", "100", "--json"],
                             0), Path("."))
    rows = json.loads(result.stdout)["models"]
    assert sorted(r["model"] for r in rows) == ["fake:tiny-a", "fake:tiny-b"]
    assert all(r["params"] == 8 * 16 + 16 + 16 * 2 + 2 and r["verdict"] != "error" for r in rows)
