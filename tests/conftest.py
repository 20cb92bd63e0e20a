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
    """A test that monkeypatches may change what a trace does: it starts with an empty trace cache, and what it
    traced is forgotten after it; the traces made before it (unpatched) are put back, for the tests after it."""
    if "monkeypatch" not in request.fixturenames:
        yield
        return
    from afford import tracecache

    kept = dict(tracecache._entries)
    tracecache.clear()
    yield
    tracecache.clear()
    tracecache._entries.update(kept)


def _shares_work(item: pytest.Item) -> bool:
    """Whether a test shares traced work with its module's other tests: a module-scoped fixture (an ONNX export,
    a traced detector or pipeline), the session's `assessed` cache, or a functools cache in its module."""
    info = getattr(item, "_fixtureinfo", None)
    defs = getattr(info, "name2fixturedefs", {})
    if "assessed" in defs or any(d.scope == "module" for fixturedefs in defs.values() for d in fixturedefs):
        return True
    module = getattr(item, "module", None)
    return any(hasattr(v, "cache_info") for v in vars(module).values()) if module is not None else False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`--dist loadgroup`, as `make test` runs), the tests of a module that share traced work
    run on one worker, so that work is done once; every other test is spread on its own."""
    for item in items:
        if _shares_work(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
