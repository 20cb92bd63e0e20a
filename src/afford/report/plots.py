"""Plots for reports as SVG text: memory per device, FLOPs by module, cost and time per hardware option, a
roofline, and accuracy against cost (compare).

Every plot is drawn on a bare `matplotlib.figure.Figure` and rendered by the SVG backend: no pyplot, so no global
backend is switched (a notebook's stays as it is) and no window opens. Text stays text (`svg.fonttype = none`)
so the SVG needs no embedded or external font, and ids are salted per plot so several SVGs can share one page.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from afford.errors import InputError
from afford.estimate.roofline import Roofline, RooflinePoint
from afford.extras import require

if TYPE_CHECKING:
    from pathlib import Path

    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from afford.decide.compare import Comparison

__all__ = ["Bar", "Option", "Roofline", "RooflinePoint", "cost_time", "memory_bars", "module_flops", "pareto",
           "pareto_figure", "roofline", "save_pareto", "standalone_svg", "to_svg"]

# One colour per memory part, in stacking order (matplotlib's tab10, colour-blind safer order first).
PART_COLOURS = {
    "weights": "#1f77b4", "gradients": "#ff7f0e", "master weights": "#9467bd", "optimizer state": "#d62728",
    "activations": "#2ca02c", "other live tensors": "#bcbd22", "KV cache": "#17becf", "per device": "#1f77b4",
}
_FALLBACK = ("#8c564b", "#e377c2", "#7f7f7f")


def _figure(width: float, height: float) -> Figure:
    require("matplotlib")  # a missing library: one line naming the report extra
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def to_svg(fig: Figure, key: str) -> str:
    """The figure as an SVG element for inline use: no XML prolog, ids salted with `key`, fluid width."""
    matplotlib = require("matplotlib")

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"afford-{key}"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": "afford"})
    text = buf.getvalue()
    start = text.find("<svg")
    # element ids ('figure_1', 'axes_1', ...) repeat from one figure to the next: prefix them (and every
    # reference to them) with the plot's key so that one page can hold several plots
    text = re.sub(r'\bid="([^"]+)"', rf'id="{key}-\1"', text[start:])
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{key}-\1)", text)
    text = re.sub(r'href="#([^"]+)"', rf'href="#{key}-\1"', text)
    # fluid width: keep the viewBox, drop the fixed size so the page (or a notebook cell) sets it
    head_end = text.find(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", text[:head_end])
    head = head.replace("<svg", f'<svg class="afford-plot" data-plot="{key}" role="img"', 1)
    return head + text[head_end:]


def standalone_svg(inline: str) -> str:
    """An inline SVG from `to_svg` as a file of its own (for Markdown reports)."""
    return '<?xml version="1.0" encoding="utf-8" standalone="no"?>\n' + inline


def _style(ax: Axes) -> None:
    ax.grid(True, alpha=0.3, linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)


def _tick(value: float, _pos: object = None) -> str:
    """A log-axis tick as plain digits (0.0002, 5, 1,000): no mathtext, which is slow to lay out."""
    if value <= 0:
        return ""
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value >= 1e-3 else f"{value:.0e}"


def _log_axes(ax: Axes, x: bool = True, y: bool = True) -> None:
    """Log scale with ticks at 1, 2 and 5 per decade (1 only past four decades, where they would crowd),
    labelled in plain digits, no minor ticks."""
    import math

    require("matplotlib")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    for on, axis, set_scale, get_lim in ((x, ax.xaxis, ax.set_xscale, ax.get_xlim),
                                         (y, ax.yaxis, ax.set_yscale, ax.get_ylim)):
        if not on:
            continue
        set_scale("log")
        ax.autoscale_view()
        lo, hi = get_lim()
        decades = math.log10(hi / lo) if lo > 0 and hi > lo else 0.0
        subs = (1.0, 2.0, 5.0) if decades <= 4 else (1.0,)
        axis.set_major_locator(LogLocator(base=10, subs=subs, numticks=12))
        axis.set_major_formatter(FuncFormatter(_tick))
        axis.set_minor_locator(NullLocator())


# ---- (1) memory per device, stacked by part -------------------------------------------------------------------


@dataclass
class Bar:
    """One stacked bar: a label, (part, bytes) pieces bottom-up, and the memory limit it must fit under."""

    label: str
    parts: list[tuple[str, float]]
    limit: float | None = None
    limit_label: str = "usable memory"


def memory_bars(bars: Sequence[Bar], title: str) -> str:
    """Stacked bars of memory per device with each bar's memory limit drawn across it; when every bar is under
    a tenth of its limit the axis zooms to the bars and says so (the limit would flatten them)."""
    fig = _figure(7.0, max(2.6, 0.5 * len(bars) + 1.8))
    ax = fig.add_subplot()
    top = max((sum(max(n, 0.0) for _, n in b.parts) for b in bars), default=0.0)
    limits = [b.limit for b in bars if b.limit]
    zoom = bool(limits) and top < 0.1 * min(limits)
    unit, scale = ("MiB", 2.0**20) if max(top, 0.0 if zoom else max(limits, default=0.0)) < 2**30 else ("GiB", 2.0**30)
    seen: set[str] = set()
    fallback = 0
    for i, bar in enumerate(bars):
        left = 0.0
        for part, nbytes in bar.parts:
            if nbytes <= 0:
                continue
            colour = PART_COLOURS.get(part)
            if colour is None:
                colour = _FALLBACK[fallback % len(_FALLBACK)]
                fallback += 1
            ax.barh(i, nbytes / scale, left=left, color=colour, height=0.6, label=None if part in seen else part)
            seen.add(part)
            left += nbytes / scale
    if zoom:
        ax.set_xlim(0, top / scale * 1.15)
        ax.text(0.99, 0.02, f"usable memory {min(limits) / 2**30:,.1f} GiB: off this scale", transform=ax.transAxes,
                ha="right", va="bottom", fontsize=8, color="#333333")
    elif len(set(limits)) == 1 and len(limits) == len(bars):
        ax.axvline(limits[0] / scale, color="black", linestyle="--", linewidth=1.2,
                   label=f"{bars[0].limit_label} ({limits[0] / 2**30:,.1f} GiB)")
    else:
        first = True
        for i, bar in enumerate(bars):
            if bar.limit:
                ax.plot([bar.limit / scale] * 2, [i - 0.42, i + 0.42], color="black", linewidth=2,
                        label="usable memory of the device" if first else None)
                first = False
    ax.set_yticks(range(len(bars)), [b.label for b in bars], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{unit} per device")
    ax.set_title(title, fontsize=11, loc="left")
    _style(ax)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return to_svg(fig, "memory")


# ---- (2) FLOPs by module ---------------------------------------------------------------------------------------


def module_flops(rows: Sequence[tuple[str, float]], title: str) -> str:
    """Horizontal bars of forward FLOPs per sample for the top module groups (label, FLOPs)."""
    fig = _figure(7.0, max(2.6, 0.3 * len(rows) + 1.4))
    ax = fig.add_subplot()
    scale, prefix = _si_scale(max((r[1] for r in rows), default=1.0))
    ax.barh(range(len(rows)), [r[1] / scale for r in rows], color="#1f77b4", height=0.65)
    for i, r in enumerate(rows):
        ax.annotate(f"{r[1] / scale:.3g}", (r[1] / scale, i), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=7)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{prefix}FLOPs per sample, forward")
    ax.set_title(title, fontsize=11, loc="left")
    _style(ax)
    return to_svg(fig, "modules")


def _si_scale(value: float) -> tuple[float, str]:
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return scale, prefix
    return 1.0, ""


# ---- (3) cost and time per hardware option -----------------------------------------------------------------------


@dataclass
class Option:
    """One way to run the job: where it runs, how long, what it costs, whether it fits and meets the limits."""

    label: str
    seconds: float
    usd: float | None
    seconds_range: tuple[float, float] | None = None
    usd_range: tuple[float, float] | None = None
    fits: bool = True
    feasible: bool = True
    highlight: str = ""  # "chosen", "asked" or ""
    pareto: bool = False


def _time_unit(seconds: Sequence[float]) -> tuple[str, float]:
    """The unit that keeps the longest time readable: seconds, minutes, hours or days."""
    top = max(seconds, default=0.0)
    for unit, scale, limit in (("seconds", 1.0, 120.0), ("minutes", 60.0, 7200.0), ("hours", 3600.0, 3 * 86400.0)):
        if top < limit:
            return unit, scale
    return "days", 86400.0


def cost_time(options: Sequence[Option], title: str, budget_usd: float | None = None,
              deadline_s: float | None = None, key: str = "cost_time", x_what: str = "time") -> str:
    """Cost against time (log-log) per option with its range (`x_what` names the time: a latency); options that do
    not fit are hollow grey."""
    fig = _figure(8.5, 5.2)
    ax = fig.add_subplot()
    priced = [o for o in options if o.usd is not None and o.usd > 0 and o.seconds > 0]
    unit, scale = _time_unit([o.seconds for o in priced])

    def _scaled(seconds: float) -> float:
        return seconds / scale
    for o in priced:
        usd = float(o.usd or 0.0)
        colour = "#2ca02c" if o.fits and o.feasible else ("#ff7f0e" if o.fits else "#7f7f7f")
        xerr = yerr = None
        if o.seconds_range:
            lo, hi = o.seconds_range
            xerr = [[max(_scaled(o.seconds - lo), 0.0)], [max(_scaled(hi - o.seconds), 0.0)]]
        if o.usd_range:
            lo, hi = o.usd_range
            yerr = [[max(usd - lo, 0.0)], [max(hi - usd, 0.0)]]
        if xerr or yerr:
            ax.errorbar([_scaled(o.seconds)], [usd], xerr=xerr, yerr=yerr, fmt="none", ecolor=colour,
                        alpha=0.5, linewidth=1)
        marker = "*" if o.highlight == "chosen" else ("D" if o.highlight == "asked" else "o")
        size = 160 if o.highlight == "chosen" else 46
        ax.scatter([_scaled(o.seconds)], [usd], s=size, marker=marker, zorder=3,
                   facecolors=colour if o.fits else "none", edgecolors=colour if o.fits else "#7f7f7f")
    front = sorted((o for o in priced if o.pareto), key=lambda o: o.seconds)
    # name every point unless a long Pareto front would overlap: then its two ends, the chosen and the asked
    quiet = {id(o) for o in front[1:-1]} if len(front) > 6 else set()
    for o in priced:
        if id(o) not in quiet or o.highlight:
            ax.annotate(o.label, (_scaled(o.seconds), float(o.usd or 0.0)), fontsize=7, xytext=(5, 3),
                        textcoords="offset points")
    if len(front) > 1:
        ax.plot([_scaled(o.seconds) for o in front], [float(o.usd or 0.0) for o in front], color="#d62728", linewidth=1,
                alpha=0.7, label="Pareto front (cost, time)")
    if budget_usd is not None:
        ax.axhline(budget_usd, color="black", linestyle="--", linewidth=1, label=f"budget ${budget_usd:,.2f}")
    if deadline_s is not None:
        ax.axvline(_scaled(deadline_s), color="black", linestyle=":", linewidth=1,
                   label=f"deadline {_scaled(deadline_s):,.3g} {unit}")
    # legend entries for the colour code
    ax.scatter([], [], color="#2ca02c", s=30, label="fits" + (" and meets the limits" if budget_usd or deadline_s
                                                              else ""))
    if any(o.fits and not o.feasible for o in priced):
        ax.scatter([], [], color="#ff7f0e", s=30, label="fits, misses a limit")
    if any(not o.fits for o in priced):
        ax.scatter([], [], facecolors="none", edgecolors="#7f7f7f", s=30, label="does not fit in memory")
    if any(o.highlight == "chosen" for o in priced):
        ax.scatter([], [], marker="*", color="#2ca02c", s=90, label="chosen plan")
    if any(o.highlight == "asked" for o in priced):
        ax.scatter([], [], marker="D", color="#7f7f7f", s=30, label="as asked")
    _log_axes(ax)
    ax.set_xlabel(f"{x_what}, {unit} (log scale)")
    ax.set_ylabel("cost, USD (log scale)")
    ax.set_title(title, fontsize=11, loc="left")
    _style(ax)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    if not priced:
        ax.text(0.5, 0.5, "no option has a price", transform=ax.transAxes, ha="center")
    return to_svg(fig, key)


# ---- (4) roofline -----------------------------------------------------------------------------------------------


def roofline(r: Roofline, title: str) -> str:
    """Log-log roofline: vendor ceilings (solid), the achievable ones the model uses (dashed), and one dot per
    traced op shape, coloured by op (the ops taking most time named in the legend with their share of the
    phase's modelled time), shaped by phase, sized by share of time."""
    import numpy as np

    require("matplotlib")
    from matplotlib.lines import Line2D

    fig = _figure(8.5, 5.4)
    ax = fig.add_subplot()
    tera = 1e12
    xs = [p.intensity for p in r.points if p.intensity > 0]
    lo = min([*xs, 1.0]) / 2
    hi = max([*xs, *(peak / r.bandwidth * 8 for peak in r.peaks.values())])
    grid = np.logspace(np.log10(lo), np.log10(hi), 200)
    greys = ["#000000", "#666666", "#aaaaaa"]
    handles: list[Line2D] = []
    for i, (fmt, peak) in enumerate(sorted(r.peaks.items(), key=lambda kv: -kv[1])):
        colour = greys[i % len(greys)]
        handles += ax.plot(grid, np.minimum(peak, grid * r.bandwidth) / tera, color=colour, linewidth=1.6,
                           label=f"{fmt} peak {peak / tera:,.1f} TFLOP/s; {r.bandwidth / 1e9:,.0f} GB/s")
        line = ax.plot(grid, np.minimum(peak * r.matmul_fraction, grid * r.bandwidth * r.bandwidth_fraction) / tera,
                       color=colour, linewidth=1, linestyle="--",
                       label=f"achievable: {r.matmul_fraction:.0%} of peak, {r.bandwidth_fraction:.0%} of bandwidth")
        if i == 0:
            handles += line
    series = list(dict.fromkeys(p.series for p in r.points))
    share = {(s, name): 0.0 for s in series for name in {p.label for p in r.points}}
    for p in r.points:
        share[(p.series, p.label)] += p.share
    weight: dict[str, float] = {}
    for (_, name), v in share.items():
        weight[name] = max(weight.get(name, 0.0), v)
    named = sorted(weight, key=lambda k: -weight[k])[:6]
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf"]
    colour_of = {name: palette[i] for i, name in enumerate(named)}
    markers = dict(zip(series, "o^sD", strict=False))
    for p in r.points:
        if p.intensity <= 0:
            continue
        ax.scatter([p.intensity], [p.flops_per_s / tera], s=14 + 500 * p.share, marker=markers[p.series],
                   color=colour_of.get(p.label, "#9a9a9a"), alpha=0.75, edgecolors="white", linewidths=0.5,
                   zorder=3)
    for name in named:
        shares = ", ".join(f"{share[(s, name)]:.0%}" for s in series)
        handles.append(Line2D([], [], linestyle="none", marker="o", color=colour_of[name],
                              label=f"{name}: {shares} of the time"))
    if len(weight) > len(named):
        handles.append(Line2D([], [], linestyle="none", marker="o", color="#9a9a9a", label="other ops"))
    if len(series) > 1:
        handles += [Line2D([], [], linestyle="none", marker=markers[s], color="#555555", label=f"shape: {s}")
                    for s in series]
    _log_axes(ax)
    ax.set_xlabel("arithmetic intensity, FLOPs per byte of memory traffic (log scale)")
    ax.set_ylabel("TFLOP/s (log scale)")
    ax.set_title(title + (f" (time shares: {', '.join(series)})" if len(series) > 1 else ""), fontsize=11, loc="left")
    _style(ax)
    ax.legend(handles=handles, loc="upper left", fontsize=7, framealpha=0.9)
    return to_svg(fig, "roofline")


# ---- (5) accuracy against cost (compare) -----------------------------------------------------------------------


def pareto_figure(c: Comparison) -> Figure:
    """Accuracy against cost of compared models, the Pareto front drawn through (used by `compare.plot` and
    reports); an InputError when no model has both an accuracy figure and a cost."""
    pts = [r for r in c.rows if r.accuracy and r.cost_usd is not None]
    if not pts:
        raise InputError("--plot: no model has both an accuracy figure and a cost")

    def cost(r: object) -> float:
        return float(getattr(r, "cost_usd", 0.0) or 0.0)

    def acc(r: object) -> float:
        return float((getattr(r, "accuracy", None) or {}).get("value", 0.0))

    fig = _figure(9, 6)
    ax = fig.add_subplot()
    for r in pts:
        ax.scatter([cost(r)], [acc(r)], color="tab:blue" if r.verdict == "affordable" else "tab:gray", s=18)
    front = sorted((r for r in pts if r.pareto), key=cost)
    if front:
        ax.plot([cost(r) for r in front], [acc(r) for r in front], color="tab:red", marker="o", label="Pareto front")
        for r in front:
            ax.annotate(r.model.split(":")[-1], (cost(r), acc(r)), fontsize=7, xytext=(4, 2),
                        textcoords="offset points")
    if c.budget.usd is not None:
        ax.axvline(c.budget.usd, color="black", linestyle="--", linewidth=1, label=f"budget ${c.budget.usd:,.0f}")
    _log_axes(ax, y=False)
    ax.set_xlabel(f"training cost, USD ({c.count} x {c.hardware}, log scale)")
    ax.set_ylabel("published top-1 accuracy, %")
    ax.set_title("Accuracy against cost for the same job")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    ax.grid(True, alpha=0.3)
    return fig


def pareto(c: Comparison) -> str:
    """`pareto_figure` as inline SVG."""
    return to_svg(pareto_figure(c), "pareto")


def save_pareto(c: Comparison, path: Path) -> Path:
    """`pareto_figure` saved as PNG or SVG (by the file's suffix): what `afford.decide.compare.plot` draws."""
    if path.suffix.lower() not in (".png", ".svg"):
        raise InputError(f"--plot {path}: give a .png or .svg file")
    fig = pareto_figure(c)
    try:
        fig.savefig(path)
    except OSError as exc:
        raise InputError(f"--plot: cannot write {path}: {exc.strerror or exc}") from None
    return path
