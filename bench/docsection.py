"""Replace one `## Title` section of docs/benchmarks.md (up to the next `## ` heading), keeping every other
section, hand-written ones included; shared by the bench scripts so that `make bench` never erases the rest."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def replace_section(title: str, body: str, doc: Path = DOC) -> None:
    """Set the body of section `## title` to `body` (appended at the end when the section is missing); a title
    of "" is the preamble before the first `## ` heading."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    if not title:
        head, sep, rest = text.partition("\n## ")
        doc.write_text(body.rstrip("\n") + "\n" + (sep + rest if sep else ""), encoding="utf-8")
        return
    marker = f"\n## {title}\n"
    head, found, rest = text.partition(marker)
    if not found:
        doc.write_text(text.rstrip("\n") + "\n" + marker + "\n" + body.strip("\n") + "\n", encoding="utf-8")
        return
    tail = rest.split("\n## ", 1)[1] if "\n## " in rest else ""
    doc.write_text(head + marker + "\n" + body.strip("\n") + "\n" + (f"\n## {tail}" if tail else ""),
                   encoding="utf-8")


VALIDATION = DOC.parent / "validation.md"


def replace_marked(start: str, end: str, block: str, heading: str, doc: Path = VALIDATION) -> None:
    """Put `block` (which begins with `start` and ends with `end`) where those markers stand in `doc`, else at the
    end under `## heading`; shared by the validation scripts that each own one marked table of docs/validation.md."""
    text = doc.read_text(encoding="utf-8")
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + f"\n\n## {heading}\n\n" + block + "\n"
    doc.write_text(text, encoding="utf-8")


def marked_table(start: str, end: str, heading: str, summary: str, columns: list[str], lines: list[str]) -> None:
    """Print a validation script's markdown rows and write them, under `summary` and a header of `columns`,
    between the script's markers of docs/validation.md (`replace_marked`)."""
    for line in lines:
        print(line, flush=True)
    table = "\n".join([start, "", summary, "", "| " + " | ".join(columns) + " |",
                       "|" + "---|" * len(columns), *lines, "", end])
    replace_marked(start, end, table, heading)
