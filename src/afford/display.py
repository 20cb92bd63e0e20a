"""Display hooks of the result objects (Assessment, PlanResult, Comparison): their notebook display
(`_repr_html_`), pandas rows (`to_dataframe`) and plots are drawn by report/, which registers its renderers
here when it is imported. `render` loads that provider (PROVIDER) by name on first use, so the hooks are filled
whichever way a result was made (`import afford` stays light: it imports neither torch nor report/). The result
modules call `render` and import nothing from report/, so report/ alone knows about display."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from afford.errors import UnsupportedError

_RENDERERS: dict[str, Callable[..., Any]] = {}
PROVIDER = "afford.report.notebook"  # registers the renderers when imported


def register(name: str, renderer: Callable[..., Any]) -> None:
    """Make `renderer` the one `render(name, ...)` calls ('repr_html', 'to_dataframe', 'pareto_plot')."""
    _RENDERERS[name] = renderer


def render(name: str, *args: Any) -> Any:
    """Call the renderer registered under `name`; an UnsupportedError when report/ registered none."""
    renderer = _RENDERERS.get(name)
    if renderer is None:
        importlib.import_module(PROVIDER)
        renderer = _RENDERERS.get(name)
    if renderer is None:
        raise UnsupportedError(f"no {name} renderer is registered: import afford.report.notebook first")
    return renderer(*args)
