"""Parse a report page for the tests: section order, plots, and every number that names its to_dict() path."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any


class Page(HTMLParser):
    """Section order, plots, and every element carrying a to_dict() path (data-key) with its raw value."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.plots: list[str] = []
        self.svgs = 0
        self.keyed: list[tuple[str, float]] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "section":
            self.sections.append(str(a["data-section"]))
        if tag == "figure":
            self.plots.append(str(a["data-plot"]))
        if tag == "svg":
            self.svgs += 1
        if a.get("data-key") and a.get("data-value") is not None:
            self.keyed.append((str(a["data-key"]), float(str(a["data-value"]))))


def parse(text: str) -> Page:
    p = Page()
    p.feed(text)
    return p


def lookup(data: dict[str, Any], key: str) -> Any:
    cur: Any = data
    for part in key.split("."):
        cur = cur[int(part)] if isinstance(cur, list) else cur[part]
    return cur
