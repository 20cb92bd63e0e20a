"""A report as one self-contained HTML page: inline CSS, plots as inline SVG, no script, no external resource
(it opens offline; links to sources are plain anchors)."""

from __future__ import annotations

import html
import re

from afford.report.model import STATUS_TEXT, Block, Bullets, Cards, Cell, Document, Figure, Num, Para, Table

# Scoped under .afford-report so the same rules style a page and a notebook cell without touching the notebook.
CSS = """
.afford-report{--fg:#1d2330;--muted:#5b6475;--line:#dde1e8;--bg:#ffffff;--soft:#f5f7fa;--ok:#1b7f3b;
 --warn:#a45a00;--bad:#b42318;--none:#475467;color:var(--fg);background:var(--bg);
 font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;max-width:1180px;
 margin:0 auto;padding:24px 28px 48px}
.afford-report h1{font-size:24px;margin:0 0 4px}
.afford-report h2{font-size:18px;margin:32px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
.afford-report .subtitle{color:var(--muted);margin:0 0 14px}
.afford-report nav{font-size:13px;color:var(--muted);margin-bottom:8px}
.afford-report nav a{color:var(--muted);margin-right:14px;text-decoration:none}
.afford-report nav a:hover{text-decoration:underline}
.afford-report .status{display:inline-block;font-weight:700;font-size:20px;padding:6px 16px;border-radius:8px;
 color:#fff;margin:4px 0 10px;letter-spacing:.2px}
.afford-report .status.affordable{background:var(--ok)}
.afford-report .status.affordable_with_changes{background:var(--warn)}
.afford-report .status.not_affordable,.afford-report .status.error{background:var(--bad)}
.afford-report .status.none{background:var(--none)}
.afford-report ul.reasons li{margin:4px 0}
.afford-report .cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px;margin:12px 0}
.afford-report .card{background:var(--soft);border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.afford-report .card .label{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.4px}
.afford-report .card .value{font-size:20px;font-weight:650;margin:2px 0}
.afford-report .card .detail{font-size:12px;color:var(--muted)}
.afford-report table{border-collapse:collapse;margin:10px 0 4px;font-size:13px;width:100%}
.afford-report th,.afford-report td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;
 vertical-align:top}
.afford-report th{background:var(--soft);font-weight:600}
.afford-report td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.afford-report tbody tr:nth-child(even){background:#fafbfc}
.afford-report .caption{font-size:12px;color:var(--muted);margin:2px 0 12px}
.afford-report figure{margin:16px 0;padding:8px;border:1px solid var(--line);border-radius:8px}
.afford-report figure svg{width:100%;height:auto;display:block}
.afford-report figcaption{font-size:12px;color:var(--muted);margin-top:4px}
.afford-report .pair{display:grid;grid-template-columns:minmax(0,5fr) minmax(0,7fr);gap:18px;align-items:start}
.afford-report .pair figure{margin-top:10px}
@media (max-width:900px){.afford-report .pair{grid-template-columns:minmax(0,1fr)}}
.afford-report section.provenance td{font-size:12px;word-break:break-word}
.afford-report a{color:#1f5fbf}
.afford-report footer{margin-top:36px;font-size:12px;color:var(--muted)}
@media print{.afford-report nav{display:none}.afford-report figure{break-inside:avoid}}
"""

_URL = re.compile(r"https?://[^\s<>\"')\];,]+")


def text(value: str) -> str:
    """Escaped text with http(s) URLs turned into links."""
    out, last = [], 0
    for m in _URL.finditer(value):
        out.append(html.escape(value[last:m.start()]))
        url = m.group(0).rstrip(".")
        out.append(f'<a href="{html.escape(url)}">{html.escape(url)}</a>')
        last = m.start() + len(url)
    out.append(html.escape(value[last:]))
    return "".join(out)


def _data(c: Num) -> str:
    """The raw value and its to_dict() path as attributes, so a page can be checked against the JSON."""
    attrs = f' data-value="{c.value!r}"' if c.value is not None else ""
    return attrs + (f' data-key="{html.escape(c.key)}"' if c.key else "")


def _cell(c: Cell) -> str:
    if isinstance(c, Num):
        return f'<td class="num"{_data(c)}>{html.escape(c.text)}</td>'
    return f"<td>{text(c)}</td>"


def _table(t: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    body = "".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in t.rows)
    cap = f'<p class="caption">{text(t.caption)}</p>' if t.caption else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{cap}"


def _cards(c: Cards) -> str:
    out = ""
    if c.status in STATUS_TEXT:
        out += f'<div class="status {c.status}" data-status="{c.status}">{STATUS_TEXT[c.status]}</div>'
    if c.items:
        cards = []
        for label, value, detail in c.items:
            v = (f'<div class="value"{_data(value)}>{html.escape(value.text)}</div>' if isinstance(value, Num)
                 else f'<div class="value">{html.escape(value)}</div>')
            cards.append(f'<div class="card"><div class="label">{html.escape(label)}</div>{v}'
                         f'<div class="detail">{html.escape(detail)}</div></div>')
        out += f'<div class="cards">{"".join(cards)}</div>'
    return out


def _block(b: Block) -> str:
    if isinstance(b, Table):
        return _table(b)
    if isinstance(b, Figure):
        cap = f"<figcaption>{text(b.caption)}</figcaption>" if b.caption else ""
        return f'<figure id="plot-{b.key}" data-plot="{b.key}">{b.svg}{cap}</figure>'
    if isinstance(b, Para):
        return f"<p>{text(b.text)}</p>"
    if isinstance(b, Bullets):
        return '<ul class="reasons">' + "".join(f"<li>{text(i)}</li>" for i in b.items) + "</ul>"
    return _cards(b)


def _blocks(blocks: list[Block]) -> str:
    """Blocks in order; a narrow table followed by its plot sit side by side (stacked on small screens)."""
    out: list[str] = []
    i = 0
    while i < len(blocks):
        b = blocks[i]
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        if isinstance(b, Table) and isinstance(nxt, Figure) and len(b.columns) <= 5:
            out.append(f'<div class="pair"><div>{_block(b)}</div>{_block(nxt)}</div>')
            i += 2
            continue
        out.append(_block(b))
        i += 1
    return "".join(out)


def render_body(doc: Document) -> str:
    """The report's content in a <div class="afford-report"> (no page chrome, no style)."""
    nav = "".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in doc.sections)
    parts = [f"<h1>{html.escape(doc.title)}</h1>", f'<p class="subtitle">{html.escape(doc.subtitle)}</p>',
             f"<nav>{nav}</nav>"]
    for s in doc.sections:
        inner = _blocks(s.blocks)
        parts.append(f'<section id="{s.key}" class="{s.key}" data-section="{s.key}"><h2>{html.escape(s.title)}</h2>'
                     f"{inner}</section>")
    parts.append("<footer>Made by afford from a meta-device trace; every figure's source is under Provenance and "
                 "in docs/methodology.md.</footer>")
    return '<div class="afford-report">' + "\n".join(parts) + "</div>"


def fragment(doc: Document) -> str:
    """Style and content without <html> chrome, for a notebook cell."""
    return f"<style>{CSS}</style>\n{render_body(doc)}"


def render_page(doc: Document) -> str:
    """A complete, self-contained HTML page."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(doc.title)}</title><style>{CSS}</style></head>\n"
            f"<body style=\"margin:0;background:#fff\">\n{render_body(doc)}\n</body></html>\n")
