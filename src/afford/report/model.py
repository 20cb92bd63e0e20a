"""The document model of a report: sections of paragraphs, bullets, headline cards, tables and plots, built once
per result (report/assessment.py, plan.py, comparison.py) and rendered by html.py, markdown.py and notebook.py
alike. Table cells keep the raw value and its `to_dict()` path beside the formatted text."""

from __future__ import annotations

from dataclasses import dataclass, field

STATUS_TEXT = {"affordable": "affordable", "affordable_with_changes": "affordable with changes",
               "not_affordable": "not affordable", "none": "no budget given", "error": "error"}


@dataclass(frozen=True)
class Num:
    """A formatted number with its raw value and, where it is one, its path in `to_dict()` ('time.train_seconds')."""

    text: str
    value: float | None = None
    key: str = ""


Cell = str | Num


@dataclass
class Table:
    """Columns, rows of cells (text or Num) and an optional caption under the table."""

    columns: list[str]
    rows: list[list[Cell]]
    caption: str = ""


@dataclass
class Figure:
    """A plot: `key` names it (file stem in Markdown, data-plot in HTML); `svg` is the inline SVG element."""

    key: str
    title: str
    svg: str
    caption: str = ""


@dataclass
class Para:
    """A paragraph of plain text (URLs become links in HTML)."""

    text: str


@dataclass
class Bullets:
    """A bulleted list of plain-text items."""

    items: list[str]


@dataclass
class Cards:
    """Headline figures: a status (a key of STATUS_TEXT) and (label, value, detail) cards."""

    status: str
    items: list[tuple[str, Cell, str]]


Block = Table | Figure | Para | Bullets | Cards


@dataclass
class Section:
    """A titled section; `key` is its anchor and CSS class."""

    key: str
    title: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Document:
    """A whole report: title, subtitle and sections in order."""

    title: str
    subtitle: str
    sections: list[Section]

    def figures(self) -> list[Figure]:
        """Every plot of the document, in order."""
        return [b for s in self.sections for b in s.blocks if isinstance(b, Figure)]
