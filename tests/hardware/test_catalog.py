"""The hardware catalog: every device loads with sources, names resolve, user files override, bad files fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from afford.cli import app
from afford.errors import ConfigError, InputError
from afford.hardware.catalog import Catalog, builtin

REQUIRED = ["v100-16gb", "v100-32gb", "t4", "a10g", "l4", "l40s", "a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie",
            "h200", "b200", "rtx3090", "rtx4090", "rtx5090", "mi250x", "mi300x", "tpu-v4", "tpu-v5e", "tpu-v5p",
            "gaudi2", "gaudi3", "cpu-generic"]
runner = CliRunner()


def test_every_required_device_ships_with_sources() -> None:
    devices = {d.id: d for d in builtin()}
    for name in REQUIRED:
        d = devices[name]
        assert d.memory_bytes > 0 and d.memory_bandwidth_gb_s > 0
        assert d.source and d.source_date
        # a figure no primary source gives is omitted, never guessed, and the entry says why
        assert d.peak_tflops or "OMITTED" in d.notes, name
        if d.price_usd_per_hour is not None:
            assert d.price_source and d.price_date, name


def test_device_without_a_sourced_peak_is_a_one_line_error() -> None:
    import afford

    missing = [d for d in builtin() if not d.peak_tflops]
    if not missing:
        pytest.skip("every device has a sourced peak")
    with pytest.raises(InputError, match="in a hardware_file entry"):
        afford.assess("torchvision:resnet18", train_samples=10, hardware=missing[0].id)


def test_aliases_and_suggestions() -> None:
    cat = Catalog.load()
    assert cat.get("A100").id in ("a100-80gb", "a100-40gb")
    assert cat.get("4090").id == "rtx4090"
    with pytest.raises(InputError, match=r"closest: .*h100-sxm"):
        cat.get("h100-sxn")


def test_user_file_adds_and_overrides(tmp_path: Path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text('[[device]]\nid = "a100-80gb"\nprice_usd_per_hour = 0.5\n\n[[device]]\nid = "my-card"\n'
                 'memory_bytes = 1000000000\nmemory_bandwidth_gb_s = 100\npeak_tflops = { bf16 = 10.0 }\n')
    cat = Catalog.load(f)
    assert cat.get("a100-80gb").price_usd_per_hour == 0.5
    assert cat.get("a100-80gb").memory_bytes == 80 * 2**30
    assert cat.get("my-card").peak_flops("bf16") == 10e12
    y = tmp_path / "mine.yaml"
    y.write_text("device:\n  - id: t4\n    price_usd_per_hour: 0.11\n")
    assert Catalog.load(y).get("t4").price_usd_per_hour == 0.11


@pytest.mark.parametrize(("text", "match"), [
    ("[[device]\nid=1", "not valid"),
    ('[[device]]\nid = "x"\n', "lacks memory_bytes"),
    ('[[device]]\nid = "x"\nmemory_bytes = 1\nmemory_bandwidth_gb_s = 1\npeak_tflops = { bf17 = 1.0 }\n',
     "unknown number format"),
    ('[[device]]\nid = "a100-80gb"\nprice_usd_per_hour = -3\n', "non-negative"),
    ('title = "no devices"\n', "expected a list of devices"),
])
def test_bad_user_files(tmp_path: Path, text: str, match: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        Catalog.load(f)


def test_cli_list_and_show() -> None:
    listed = runner.invoke(app, ["hardware", "list", "--json"])
    assert listed.exit_code == 0
    ids = {d["id"] for d in json.loads(listed.stdout)["devices"]}
    assert set(REQUIRED) <= ids
    shown = runner.invoke(app, ["hardware", "show", "h100", "--json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["id"].startswith("h100")
    bad = runner.invoke(app, ["hardware", "show", "h100-sxn"])
    assert bad.exit_code == 2 and "closest" in bad.output
