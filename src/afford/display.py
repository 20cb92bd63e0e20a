"""Display hooks of the result objects (Assessment, PlanResult, Comparison): their notebook display
(`_repr_html_`), text screen (`__repr__`), pandas rows (`to_dataframe`) and plots are drawn by report/, which
registers its renderers here when it is imported; `dumps` is their one JSON serializer (`.to_json()`, `--json`).
`render` loads that provider (PROVIDER) by name on first use, so the hooks are filled whichever way a result was
made (`import afford` stays light: it imports neither torch nor report/). The result modules call `render` and
import nothing from report/, so report/ alone knows about display."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

from afford.errors import UnsupportedError

_RENDERERS: dict[str, Callable[..., Any]] = {}
PROVIDER = "afford.report.notebook"  # registers the renderers when imported


def register(name: str, renderer: Callable[..., Any]) -> None:
    """Make `renderer` the one `render(name, ...)` calls ('repr_html', 'repr_text', 'to_dataframe',
    'pareto_plot')."""
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


def dumps(data: dict[str, Any], indent: int | None = 2) -> str:
    """A result's dict as the CLI's `--json` text: strict JSON (a NaN or infinity raises ValueError)."""
    return json.dumps(data, indent=indent, default=str, allow_nan=False)


def screen(obj: Any, summary: Callable[[], str]) -> str:
    """`obj`'s terminal screen as plain text (the 'repr_text' renderer); `summary()`, one line, if drawing
    it fails, and the bare object repr if that fails too: a `__repr__` never raises."""
    try:
        return str(render("repr_text", obj))
    except Exception:  # noqa: BLE001  # a repr must not raise, whatever broke
        try:
            return summary()
        except Exception:  # noqa: BLE001
            return object.__repr__(obj)
