"""Renderers: the only layer that prints. `write_report` writes an Assessment, a PlanResult or a Comparison as a
self-contained HTML page (.html/.htm) or as Markdown with SVG plots beside it (.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from afford.errors import InputError
from afford.report import notebook as notebook  # registers the display hooks of afford/display.py

SUFFIXES = {".html": "html", ".htm": "html", ".md": "markdown"}


def write_report(obj: Any, path: Path) -> Path:
    """Write the report of `obj` to `path`, HTML or Markdown by the suffix; returns the path written."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"--report {path}: give a .html, .htm or .md file")
    if not path.parent.is_dir():
        raise InputError(f"--report {path}: the folder {path.parent} does not exist")
    from afford.report.document import build

    doc = build(obj)
    try:
        if kind == "html":
            from afford.report.html import render_page

            path.write_text(render_page(doc), encoding="utf-8")
        else:
            from afford.report.markdown import write

            write(doc, path)
    except OSError as exc:
        raise InputError(f"--report: cannot write {path}: {exc.strerror or exc}") from None
    return path


__all__ = ["write_report"]
