"""Ctrl-C: one line on stderr and exit code 130, never a traceback (issue 14)."""

from __future__ import annotations

from typing import Any

import pytest

from hostile.harness import run


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    module = importlib.import_module("afford.api")  # where `afford assess` (cli/assess.py) takes the function from

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "assess", interrupted)
    result = run(["assess", "torchvision:resnet18"])
    assert result.code == 130
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
