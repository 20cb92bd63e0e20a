"""Shared fixtures: assessments are cached per argument set, since tracing a model costs a second or more."""

from __future__ import annotations

import os
import tempfile
from functools import lru_cache
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# the CLI keeps results in a local store: tests use a private one
os.environ["AFFORD_HOME"] = tempfile.mkdtemp(prefix="afford-test-home-")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@lru_cache(maxsize=64)
def _cached(model: str, items: tuple[tuple[str, Any], ...]) -> Any:
    import afford

    return afford.assess(model, **dict(items))


@pytest.fixture(scope="session")
def assessed() -> Any:
    """assessed(model, **kwargs) -> Assessment, cached for the whole session."""

    def get(model: str, **kwargs: Any) -> Any:
        return _cached(model, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items())))

    return get


@pytest.fixture(autouse=True)
def _fresh_trace_cache(request: pytest.FixtureRequest) -> Any:
    """A test that monkeypatches may change what a trace does: it starts and ends with an empty trace cache."""
    if "monkeypatch" not in request.fixturenames:
        yield
        return
    from afford import tracecache

    tracecache.clear()
    yield
    tracecache.clear()
