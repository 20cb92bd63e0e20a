"""Python ergonomics of the results (issue 15, item 5): `.to_json()` is the CLI's `--json` object, and `repr()`
is the CLI's one screen as plain text (its hints naming the result's methods), and never raises."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest

import afford
from afford import display
from afford.decide.compare import Comparison, Row
from hostile.harness import run, strict_json

SCREEN = {"COLUMNS": "100"}  # the CLI's width when stdout is not a terminal; repr draws 100 columns too
JOB = ["--train-samples", "1000000", "--epochs", "10", "--budget-usd", "5"]
KW: dict[str, Any] = {"train_samples": 1_000_000, "epochs": 10, "budget_usd": 5}
PAIR = ["torchvision:resnet18", "torchvision:squeezenet1_0"]


def cli(*args: str) -> str:
    """`afford ARGS` in this process: its stdout, the run asserted to succeed."""
    result = run(list(args), env=SCREEN)
    assert result.code == 0, result.stderr
    return result.stdout


def lines(text: str) -> list[str]:
    """A screen's lines with trailing blanks trimmed (repr trims them; rich pads table cells)."""
    return [line.rstrip() for line in text.strip("\n").splitlines()]


def no_hints(text: str) -> list[str]:
    """A screen without its hints, which name flags or methods: the "N more plans: ..." line and the trailing
    "N notes; ..." (one line or wrapped onto more)."""
    out = [line for line in lines(text) if " more plans: " not in line]
    ends = [i for i, line in enumerate(out) if re.match(r"\d+ notes?; ", line)]
    assert ends, text
    return out[:ends[-1]]


def test_assessment_to_json_is_the_cli_json(assessed: Any) -> None:
    a = assessed("torchvision:resnet18")
    text = a.to_json()
    assert text.startswith('{\n  "model": {')  # indent 2, as the CLI prints it
    assert strict_json(text) == strict_json(cli("assess", "torchvision:resnet18", "--json"))
    assert json.loads(a.to_json(indent=None)) == json.loads(text) and "\n" not in a.to_json(indent=None)


def test_assessment_repr_is_the_cli_screen(assessed: Any) -> None:
    a = assessed("torchvision:resnet18")
    shown = repr(a)
    assert "\x1b" not in shown and shown == shown.strip()
    screen = cli("assess", "torchvision:resnet18")
    assert no_hints(shown) == no_hints(screen) == lines(shown)[:-1]  # all but the trailing hint
    assert lines(screen)[-1].endswith("--json or --report PATH.html")
    assert lines(shown)[-1].startswith("3 notes; everything: .to_json()")
    assert "11.7 M params" in shown and "3.63 GFLOPs" in shown


def test_repr_of_an_assessment_with_a_budget_shows_the_verdict(assessed: Any) -> None:
    a = assessed("torchvision:resnet18", **KW)
    shown = repr(a)
    assert "verdict: affordable with changes" in shown
    assert "as asked: costs $47.60, budget $5.00" in shown and "Plans (Pareto set" in shown
    assert no_hints(shown) == no_hints(cli("assess", "torchvision:resnet18", *JOB))
    assert "more plans: .decision (its PlanResult)" in shown
    assert json.loads(a.to_json())["verdict"]["status"] == "affordable_with_changes"


def test_plan_result_to_json_and_repr_are_the_cli_ones() -> None:
    p = afford.plan("torchvision:resnet18", **KW)
    assert strict_json(p.to_json()) == strict_json(cli("plan", "torchvision:resnet18", *JOB, "--json"))
    shown = repr(p)
    assert lines(shown) == lines(cli("plan", "torchvision:resnet18", *JOB))
    assert shown.startswith("verdict: affordable with changes") and "\x1b" not in shown


def test_comparison_to_json_and_repr_are_the_cli_ones() -> None:
    c = afford.compare(PAIR, train_samples=100_000, budget_usd=5)
    job = ["--train-samples", "100000", "--budget-usd", "5", "--jobs", "1"]  # in this process: no worker start-up
    assert strict_json(c.to_json()) == strict_json(cli("compare", *PAIR, *job, "--json"))
    shown = repr(c)
    assert lines(shown) == lines(cli("compare", *PAIR, *job))
    assert "Models for the same job on 1 x a100-80gb" in shown and "69.76" in shown and "58.09" in shown


def test_to_json_is_strict() -> None:
    """A NaN (never produced on purpose) is refused, as the CLI's --json refuses it, not written as `NaN`."""
    row = Row(model="m", params=1, accuracy=None, cost_usd=math.nan, train_seconds=1.0, per_device_bytes=1.0,
              fits=True, verdict="affordable", reasons=[])
    c = Comparison(rows=[row], budget=None, hardware="x", count=1)  # type: ignore[arg-type]  # to_dict skips it
    with pytest.raises(ValueError, match="not JSON compliant"):
        c.to_json()


def test_repr_never_raises(assessed: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A screen that fails to draw falls back to one line; an object too broken for that to its bare repr."""
    a = assessed("torchvision:resnet18")

    def broken(obj: Any) -> str:
        raise RuntimeError("drawing failed")

    monkeypatch.setitem(display._RENDERERS, "repr_text", broken)
    assert repr(a) == "<Assessment torchvision:resnet18: 11,689,512 params>"
    empty = Comparison.__new__(Comparison)
    monkeypatch.undo()
    assert repr(empty).startswith("<afford.decide.compare.Comparison object at 0x")
