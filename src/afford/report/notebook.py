"""Notebook display: `repr_html` (the HTML report without page chrome, for `_repr_html_`) and `to_dataframe`
(pandas, an optional dependency): an Assessment's modules, a PlanResult's plans, a Comparison's models.

Importing this module registers them, the text screen of `__repr__` (report/text.py) and the Pareto plot of
`afford.decide.compare.plot` as the display hooks of afford/display.py that the result classes call (afford.report
imports it; `import afford` imports that)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from afford import display
from afford.errors import InputError
from afford.extras import require


def repr_html(obj: Any) -> str:
    """The same content as `write_report(obj, 'x.html')`, as a fragment for a notebook cell."""
    from afford.report.document import build
    from afford.report.html import fragment

    return fragment(build(obj))


def _flat(prefix: str, value: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    for k, v in value.items():
        if isinstance(v, dict):
            _flat(f"{prefix}{k}.", v, out)
        else:
            out[f"{prefix}{k}"] = v
    return out


def rows(obj: Any) -> list[dict[str, Any]]:
    """The rows `to_dataframe` shows, as dicts (nested fields flattened with dots)."""
    from afford.assess import Assessment
    from afford.decide.compare import Comparison
    from afford.decide.run import PlanResult

    if isinstance(obj, Assessment):
        return [dict(r) for r in obj.module_rows()]
    if isinstance(obj, PlanResult):
        out = []
        for p in obj.to_dict()["plans"]:
            flat = _flat("", {k: v for k, v in p.items() if k != "strategy"}, {})
            out.append({**p["strategy"], **flat})
        return out
    if isinstance(obj, Comparison):
        return [_flat("", r, {}) for r in obj.to_dict()["models"]]
    raise InputError(f"to_dataframe needs an Assessment, a PlanResult or a Comparison, got {type(obj).__name__}")


def to_dataframe(obj: Any) -> Any:
    """A pandas DataFrame of the result's rows; pandas is optional (`pip install pandas`)."""
    pd = require("pandas", what="to_dataframe")
    return pd.DataFrame(rows(obj))


def _repr_text(obj: Any) -> str:
    """The terminal's one screen of a result as plain text, for its `__repr__` (report/text.py)."""
    from afford.report.text import screen

    return screen(obj)


def _pareto_plot(c: Any, path: Path) -> Path:
    """A Comparison's accuracy against cost saved as PNG or SVG (report/plots.py save_pareto)."""
    from afford.report.plots import save_pareto

    return save_pareto(c, Path(path))


display.register("repr_html", repr_html)
display.register("repr_text", _repr_text)
display.register("to_dataframe", to_dataframe)
display.register("pareto_plot", _pareto_plot)
