"""Counting the traces a test runs: afford.assess's `run_trace` wrapped to record each traced module's class."""

from __future__ import annotations

import importlib
from typing import Any

import pytest


def count_traces(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the module classes traced from now until the test ends (filled as traces run)."""
    module = importlib.import_module("afford.assess")
    real = module.run_trace
    seen: list[str] = []

    def counted(spec: Any, mod: Any, **kwargs: Any) -> Any:
        seen.append(type(mod).__name__)
        return real(spec, mod, **kwargs)

    monkeypatch.setattr(module, "run_trace", counted)
    return seen
