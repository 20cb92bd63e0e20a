"""A report as Markdown: the same sections as tables, plots written as SVG files in `NAME_files/` beside the
.md file and linked relatively (GitHub, VS Code and most viewers show them inline)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from afford.report.model import STATUS_TEXT, Bullets, Cards, Cell, Document, Figure, Num, Para, Table
from afford.report.plots import standalone_svg


def _esc(value: str) -> str:
    """Text safe inside a table cell: pipes escaped, newlines flattened."""
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _cell(c: Cell) -> str:
    return _esc(c.text if isinstance(c, Num) else c)


def _table(t: Table) -> list[str]:
    align = ["---:" if any(isinstance(r[i], Num) for r in t.rows if i < len(r)) else "---"
             for i in range(len(t.columns))]
    lines = ["| " + " | ".join(_esc(c) for c in t.columns) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in t.rows]
    if t.caption:
        lines += ["", f"_{t.caption}_"]
    return lines


def _cards(c: Cards) -> list[str]:
    lines = []
    if c.status in STATUS_TEXT:
        lines += [f"**Status: {STATUS_TEXT[c.status]}**", ""]
    if c.items:
        lines += ["| figure | value | detail |", "| --- | ---: | --- |"]
        lines += [f"| {_esc(label)} | {_cell(value)} | {_esc(detail)} |" for label, value, detail in c.items]
    return lines


def render(doc: Document, files_dir: Path) -> tuple[str, dict[str, str]]:
    """The Markdown text (images linked under `files_dir.name/`) and the SVG files to write {name: content}."""
    files: dict[str, str] = {}
    lines = [f"# {doc.title}", "", doc.subtitle, ""]
    lines.append(" · ".join(f"[{s.title}](#{s.title.lower().replace(' ', '-')})" for s in doc.sections))
    for s in doc.sections:
        lines += ["", f"## {s.title}", ""]
        for b in s.blocks:
            if isinstance(b, Table):
                lines += _table(b)
            elif isinstance(b, Figure):
                name = f"{b.key}.svg"
                files[name] = standalone_svg(b.svg)
                lines.append(f"![{b.title}]({quote(files_dir.name)}/{name})")
                if b.caption:
                    lines += ["", f"_{b.caption}_"]
            elif isinstance(b, Para):
                lines.append(b.text)
            elif isinstance(b, Bullets):
                lines += [f"- {item}" for item in b.items]
            else:
                lines += _cards(b)
            lines.append("")
    return "\n".join(lines).rstrip() + "\n", files


def write(doc: Document, path: Path) -> Path:
    """Write `path` and its plots under `PATH_STEM_files/`."""
    files_dir = path.with_name(f"{path.stem}_files")
    text, files = render(doc, files_dir)
    files_dir.mkdir(exist_ok=True)
    for name, content in files.items():
        (files_dir / name).write_text(content, encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    return path
