"""Markdown reports: the same sections as tables, plots as SVG files in NAME_files/ linked relatively."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from afford import units
from afford.report import write_report


@pytest.fixture(scope="module")
def report(assessed: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, str]:
    a = assessed("torchvision:resnet18", train_samples=1000, infer_samples=100)
    out = write_report(a, tmp_path_factory.mktemp("md") / "resnet 18.md")
    return a, out, out.read_text(encoding="utf-8")


def test_sections_in_order(report: tuple[Any, Path, str]) -> None:
    text = report[2]
    titles = re.findall(r"^## (.+)$", text, flags=re.M)
    assert titles == ["Verdict", "Compute", "Memory per device", "Time and money per hardware option", "Serving",
                      "Notes", "Provenance"]
    assert text.index("**Status: no budget given**") < text.index("## Compute")


def test_plots_are_files_beside_the_report_linked_relatively(report: tuple[Any, Path, str]) -> None:
    _, path, text = report
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links == ["resnet%2018_files/modules.svg", "resnet%2018_files/memory.svg",
                     "resnet%2018_files/cost_time.svg", "resnet%2018_files/roofline.svg",
                     "resnet%2018_files/batch_curve.svg"]
    for link in links:
        f = path.parent / link.replace("%20", " ")
        content = f.read_text(encoding="utf-8")
        assert content.startswith("<?xml") and "<svg" in content and content.rstrip().endswith("</svg>")


def test_tables_carry_the_to_dict_figures(report: tuple[Any, Path, str]) -> None:
    a, _, text = report
    d = a.to_dict()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in text.splitlines() if line.startswith("| ") and not line.startswith("| ---")}
    assert rows["forward / sample"][0] == units.flops(d["per_sample"]["forward_flops"])
    assert rows["C_train"][0] == units.flops(1000 * (d["per_sample"]["train_forward_flops"]
                                                     + d["per_sample"]["backward_flops"]))
    assert rows["weights"][0] == units.gib(d["memory"]["weights_bytes"])
    assert rows["per device (layout)"][0] == units.gib(d["memory"]["per_device_bytes"])
    # the hardware asked for comes first in the per-device table, then catalog devices
    assert rows["1 x a100-80gb"][0] == units.gib(d["memory"]["per_device_bytes"])
    assert "1 x h100-sxm" in rows and "1 x mi300x" in rows
    # every table row has as many cells as its header
    blocks = re.findall(r"((?:^\|.*\|\n)+)", text, flags=re.M)
    for block in blocks:
        widths = {len(re.split(r"(?<!\\)\|", line)) for line in block.strip().splitlines()}
        assert len(widths) == 1, block
