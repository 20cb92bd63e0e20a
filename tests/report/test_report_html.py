"""HTML reports of an Assessment: sections in order, every plot, numbers equal to to_dict(), nothing external."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
from html_page import lookup, parse

from afford import units
from afford.errors import InputError
from afford.report import write_report
from afford.report.document import memory_bars, module_groups, roofline_data


@pytest.fixture(scope="module")
def resnet(assessed: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str]:
    a = assessed("torchvision:resnet18", train_samples=1000, infer_samples=100)
    out = write_report(a, tmp_path_factory.mktemp("html") / "resnet18.html")
    return a, out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def mlp(assessed: Any) -> Any:
    # Linear(1024, 4096) -> ReLU -> Linear(4096, 1024), fp32, batch 1, on the default a100-80gb
    return assessed("module:fixture_models:mlp", train_samples=1000)


def test_sections_in_order_and_no_budget_verdict_first(resnet: tuple[Any, str]) -> None:
    _, text = resnet
    page = parse(text)
    assert page.sections == ["verdict", "compute", "memory", "hardware", "serving", "notes", "provenance"]
    verdict = text[text.index('data-section="verdict"'):text.index('data-section="compute"')]
    assert 'data-status="none"' in verdict and "no budget given" in verdict


def test_every_plot_is_an_inline_svg(resnet: tuple[Any, str]) -> None:
    page = parse(resnet[1])
    assert page.plots == ["modules", "memory", "cost_time", "roofline", "batch_curve"]
    assert page.svgs == 5
    # matplotlib ids are salted per plot: no id repeats across the page
    ids = [a["id"] for tag, a in page.tags if a.get("id")]
    assert len(ids) == len(set(ids))


def test_every_keyed_number_equals_to_dict(resnet: tuple[Any, str]) -> None:
    a, text = resnet
    d = a.to_dict()
    keyed = parse(text).keyed
    keys = {k for k, _ in keyed}
    for must in ("per_sample.forward_flops", "compute.train_flops", "memory.per_device_bytes", "time.train_seconds",
                 "cost.train_usd", "energy.train_kwh", "co2.train_kg"):
        assert must in keys
    for key, value in keyed:
        assert value == pytest.approx(float(lookup(d, key)), rel=1e-12), key


def test_headline_figures_match_an_independent_derivation(resnet: tuple[Any, str]) -> None:
    a, text = resnet
    d = a.to_dict()
    # torchvision's ResNet18_Weights.IMAGENET1K_V1 meta: 11,689,512 params, 1.814 GFLOPS (its "_ops", in MACs)
    assert d["model"]["params"] == 11_689_512
    assert d["per_sample"]["forward_macs"] == pytest.approx(1.814e9, rel=0.01)
    assert f">{units.macs(d['per_sample']['forward_macs'])}, traced" in text
    # C_train = N x (forward + backward) per sample, N = 1000
    c_train = 1000 * (d["per_sample"]["train_forward_flops"] + d["per_sample"]["backward_flops"])
    assert f">{units.flops(c_train)}<" in text


def test_self_contained(resnet: tuple[Any, str]) -> None:
    text = resnet[1]
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//[^"']*\.(js|css|woff2?|ttf)""", text)
    assert not re.search(r"url\(\s*['\"]?https?:", text)
    assert "xlink:href=\"http" not in text


def test_module_groups_add_up_to_the_forward_and_fold_repeats(resnet: tuple[Any, str], mlp: Any) -> None:
    a, _ = resnet
    groups = module_groups(a)
    assert sum(g[2] for g in groups) == pytest.approx(a.to_dict()["modules"][0]["forward_flops"], rel=1e-9)
    assert ("layer1.*.conv1", 2, pytest.approx(2 * 2 * 64 * 64 * 9 * 56 * 56)) in groups  # 2 blocks, 3x3, 56x56
    # the MLP by hand: each Linear is 2 x 1024 x 4096 FLOPs per sample, ReLU counts none
    assert module_groups(mlp) == [("0", 1, 2 * 1024 * 4096), ("2", 1, 2 * 1024 * 4096)]


def test_memory_bars_add_up_to_the_per_device_figures(resnet: tuple[Any, str]) -> None:
    a, _ = resnet
    d = a.to_dict()
    train, infer = memory_bars(a, d)
    assert sum(n for _, n in train.parts) == pytest.approx(d["memory"]["per_device_bytes"], rel=1e-9)
    assert sum(n for _, n in infer.parts) == pytest.approx(d["memory"]["infer_peak_bytes"], rel=1e-9)
    parts = dict(train.parts)
    assert parts["weights"] == d["memory"]["weights_bytes"] + d["memory"]["buffers_bytes"]
    assert parts["optimizer state"] == d["memory"]["optimizer_bytes"]  # AdamW, fp32: 2 x 4 bytes per parameter
    assert parts["optimizer state"] == 8 * d["model"]["params"]
    assert train.limit == d["memory"]["usable_bytes"]


def test_roofline_places_an_op_by_hand(mlp: Any) -> None:
    r = roofline_data(mlp)
    first = next(p for p in r.points if p.label == "addmm")
    # addmm(bias[4096], x[1, 1024], W.t()[1024, 4096]) -> y[1, 4096], fp32: 2 x 1024 x 4096 FLOPs over
    # (4096 + 1024 + 1024 x 4096 + 4096) x 4 bytes = 0.4989 FLOPs per byte
    flops, nbytes = 2 * 1024 * 4096, (4096 + 1024 + 1024 * 4096 + 4096) * 4
    assert first.intensity == pytest.approx(flops / nbytes, rel=1e-9)
    # memory-bound on the A100 80GB (ridge about 10 FLOPs/byte): 2,039 GB/s x 0.834 achievable (efficiency.toml)
    assert first.flops_per_s == pytest.approx(flops / nbytes * 2039e9 * 0.834, rel=1e-6)
    assert r.peaks == {"fp32": 19.5e12}
    total = sum(p.share for p in r.points) + r.zero_flop_share["training step"]
    assert total == pytest.approx(1.0, rel=1e-9)


def test_cost_time_repricing_keeps_the_asked_row_and_prices_others(resnet: tuple[Any, str]) -> None:
    a, text = resnet
    from afford.report.document import reprice

    priced = reprice(a)
    assert priced[0][1] is a.estimate.data
    by_label = dict(priced)
    h100 = by_label["1 x h100-sxm"]
    # same traced job: the same number of steps; the price is the catalog's per device-hour
    assert h100["time"]["train_steps"] == a.to_dict()["time"]["train_steps"]
    hours = h100["time"]["train_seconds"] / 3600
    assert h100["cost"]["train_usd"] == pytest.approx(hours * 2.99, rel=1e-9)  # devices.toml: h100-sxm $2.99/h
    assert "1 x h100-sxm" in text and math.isfinite(h100["time"]["train_seconds"])


@pytest.mark.parametrize("name", ["report.pdf", "report", "report.txt"])
def test_bad_suffix_is_one_line_input_error(resnet: tuple[Any, str], tmp_path: Path, name: str) -> None:
    with pytest.raises(InputError) as err:
        write_report(resnet[0], tmp_path / name)
    assert "\n" not in str(err.value) and ".html" in str(err.value)


def test_missing_folder_and_wrong_object_are_input_errors(resnet: tuple[Any, str], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        write_report(resnet[0], tmp_path / "nope" / "r.html")
    with pytest.raises(InputError, match="Assessment, a PlanResult, a Comparison or a Sweep"):
        write_report({"not": "a result"}, tmp_path / "r.html")


def test_same_result_same_page(resnet: tuple[Any, str], tmp_path: Path) -> None:
    """Plot ids are salted per plot and the SVG carries no date: a report is byte-for-byte reproducible."""
    a, text = resnet
    assert write_report(a, tmp_path / "again.html").read_text(encoding="utf-8") == text


def test_a_served_generation_job_reports_its_serving_curve_and_plans(assessed: Any, tmp_path: Path) -> None:
    """Issue 11 item 5: the serving figures (keyed to JSON `serve`), throughput and TPOT against concurrency with
    the KV memory each level holds, and the inference plans' cost against latency."""
    a = assessed("hf:openai-community/gpt2", task="generate", prompt_tokens=64, generate_tokens=32,
                 infer_samples=1000, hardware="t4", rate=2.0, budget_usd=100.0)
    text = write_report(a, tmp_path / "gen.html").read_text(encoding="utf-8")
    page = parse(text)
    assert "serving" in page.sections
    assert "serving_curve" in page.plots and "inference_plans" in page.plots
    d = a.to_dict()
    keys = {k for k, _ in page.keyed}
    for must in ("serve.kv_cache_capacity_tokens", "serve.max_concurrency", "serve.throughput_output_tokens_per_s",
                 "serve.ttft_seconds", "serve.tpot_seconds", "serve.replicas"):
        assert must in keys
    for key, value in page.keyed:
        assert value == pytest.approx(float(lookup(d, key)), rel=1e-12), key
    curve = d["serve"]["curve"]
    assert [r["concurrency"] for r in curve] == sorted({r["concurrency"] for r in curve})
    assert curve[-1]["concurrency"] == d["serve"]["max_concurrency"]
    kv = [r["kv_cache_bytes"] for r in curve]
    assert kv == sorted(kv) and kv[-1] <= d["serve"]["kv_cache_bytes"]
