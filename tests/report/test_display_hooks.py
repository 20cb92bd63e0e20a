"""Only report/ knows about display: the result modules reach it through the hooks of afford/display.py, which a
plain `import afford` fills; nothing below report/ (and outside the CLI) imports afford.report."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from afford import display
from afford.errors import UnsupportedError

SRC = Path(__file__).resolve().parents[2] / "src" / "afford"
# the composition roots: the CLI (cli/) renders, the package's __init__ registers the display hooks
ALLOWED = {"__init__.py"}


def _imports_report(path: Path) -> list[str]:
    """The afford.report modules a source file imports (at any depth: lazy imports count)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [])
        found += [n for n in names if n == "afford.report" or n.startswith("afford.report.")]
    return found


def test_nothing_below_report_imports_it() -> None:
    offenders = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC)
        if rel.parts[0] in ("report", "cli", "web") or (len(rel.parts) == 1 and rel.name in ALLOWED):
            continue
        if hits := _imports_report(path):
            offenders[str(rel)] = hits
    assert offenders == {}


def test_the_first_render_fills_the_hooks_in_a_fresh_process() -> None:
    """Nothing imports report/ up front (`import afford` stays light); the first render loads the provider."""
    code = """
import afford, afford.display as d
from afford.assess import Assessment
print(sorted(d._RENDERERS), callable(Assessment._repr_html_))
try:
    d.render("nothing", None)
except afford.AffordError:
    pass
print(sorted(d._RENDERERS))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split("\n")[:2] == ["[] True", "['pareto_plot', 'repr_html', 'repr_text', 'to_dataframe']"]


def test_an_unregistered_hook_is_a_one_line_error() -> None:
    with pytest.raises(UnsupportedError, match="no nothing renderer") as err:
        display.render("nothing", object())
    assert "\n" not in str(err.value)
