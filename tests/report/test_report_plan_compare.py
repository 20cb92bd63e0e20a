"""Reports of a PlanResult and a Comparison, the notebook display (repr_html, to_dataframe), compare.plot."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from html_page import lookup, parse

from afford.errors import InputError, MissingExtraError
from afford.report import write_report
from afford.report.notebook import repr_html, to_dataframe


@pytest.fixture(scope="module")
def planned() -> Any:
    from afford.decide.run import plan

    # ResNet-18, 10k images on one T4 with $5: the README's "affordable" case
    return plan("torchvision:resnet18", train_samples=10_000, budget_usd=5, hardware="t4")


@pytest.fixture(scope="module")
def compared() -> Any:
    from afford.decide.compare import compare

    return compare(["torchvision:resnet18", "torchvision:mobilenet_v3_small"], hardware="t4", budget_usd=5,
                   train_samples=100_000)


def test_plan_report_sections_plots_and_numbers(planned: Any, tmp_path: Path) -> None:
    text = write_report(planned, tmp_path / "plan.html").read_text(encoding="utf-8")
    page = parse(text)
    assert page.sections == ["verdict", "compute", "memory", "hardware", "plans", "notes", "provenance"]
    assert page.plots == ["memory", "plans"] and page.svgs == 2
    d = planned.to_dict()
    assert 'data-status="affordable"' in text
    keys = {k for k, _ in page.keyed}
    assert "plans.0.cost_usd" in keys and "asked.train_seconds" in keys
    for key, value in page.keyed:
        assert value == pytest.approx(float(lookup(d, key)), rel=1e-12), key
    for reason in d["verdict"]["reasons"]:
        assert reason in text


def test_comparison_report_has_the_pareto_plot(compared: Any, tmp_path: Path) -> None:
    text = write_report(compared, tmp_path / "cmp.htm").read_text(encoding="utf-8")
    page = parse(text)
    assert page.sections == ["verdict", "models", "memory", "notes", "provenance"]
    assert page.plots == ["pareto", "cost_time", "memory"] and page.svgs == 3
    d = compared.to_dict()
    for key, value in page.keyed:
        assert value == pytest.approx(float(lookup(d, key)), rel=1e-12), key
    # published top-1 (torchvision weights meta): ResNet18 69.758, MobileNet V3 Small 67.668
    assert ">69.76<" in text and ">67.67<" in text


def test_compare_plot_still_writes_png_and_svg(compared: Any, tmp_path: Path) -> None:
    from afford.decide.compare import plot

    png = plot(compared, tmp_path / "front.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = plot(compared, tmp_path / "front.svg")
    assert "<svg" in svg.read_text(encoding="utf-8")
    with pytest.raises(InputError, match=r"\.png or \.svg"):
        plot(compared, tmp_path / "front.pdf")


def test_repr_html_is_a_fragment_with_the_same_content(planned: Any, tmp_path: Path) -> None:
    fragment = repr_html(planned)
    assert planned._repr_html_() == fragment
    assert "<html" not in fragment and "<body" not in fragment and "<!DOCTYPE" not in fragment
    page = write_report(planned, tmp_path / "p.html").read_text(encoding="utf-8")
    assert parse(fragment).sections == parse(page).sections
    assert parse(fragment).keyed == parse(page).keyed


def test_dataframes(assessed: Any, planned: Any, compared: Any) -> None:
    a = assessed("torchvision:resnet18", train_samples=1000, infer_samples=100)
    df = a.to_dataframe()
    assert list(df["module"]) == [r["module"] for r in a.module_rows()]
    assert df["forward_flops"].iloc[0] == a.to_dict()["modules"][0]["forward_flops"]
    pdf = to_dataframe(planned)
    assert len(pdf) == len(planned.to_dict()["plans"])
    assert list(pdf["cost_usd"]) == [p["cost_usd"] for p in planned.to_dict()["plans"]]
    assert {"device", "count", "adapter", "train_seconds", "per_device_bytes"} <= set(pdf.columns)
    cdf = compared.to_dataframe()
    assert list(cdf["model"]) == [r["model"] for r in compared.to_dict()["models"]]
    assert "accuracy.value" in cdf.columns


def test_dataframe_without_pandas_is_one_line(planned: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(MissingExtraError, match=r"notebook extra .*pip install 'afford\[notebook\]'") as err:
        to_dataframe(planned)
    assert "\n" not in str(err.value)
