"""Number formatting for reports: dollars, durations, memory, counts and percentages as the terminal shows them,
and `num`, a figure of a `to_dict()` as a table cell that keeps its raw value and JSON path."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from afford import units
from afford.report.model import Num


def _get(data: dict[str, Any], key: str) -> Any:
    """The value at a dotted path ('time.train_seconds') of a nested dict, or None when a part is absent."""
    cur: Any = data
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def num(data: dict[str, Any], key: str, fmt: Any) -> Num:
    """The figure at `key` of a to_dict() formatted by `fmt`, or '-' when absent."""
    value = _get(data, key)
    if value is None:
        return Num("-", None, key)
    return Num(fmt(value), float(value), key)


def keyed(p: dict[str, Any], prefix: str, key: str, fmt: Any) -> Num:
    """`num(p, key, fmt)` with its JSON path under `prefix` ('plans.3.cost_usd')."""
    return replace(num(p, key, fmt), key=f"{prefix}.{key}")


def span(fmt: Any, pair: Any) -> str:
    """A (low, high) range as 'low .. high', empty when there is none."""
    if not pair or pair[0] is None:
        return ""
    return f"{fmt(pair[0])} .. {fmt(pair[1])}"


def positional(value: float, digits: int) -> str:
    """`digits` significant digits without an exponent: 4.8e-06 -> '0.0000048'."""
    import numpy as np

    return str(np.format_float_positional(value, precision=digits, unique=False, fractional=False, trim="-"))


def n3(value: float) -> str:
    """Three significant digits, thousands separated, no exponent: 0.0000228, 12.3, 1,720,320."""
    if value == 0:
        return "0"
    return f"{value:,.0f}" if abs(value) >= 1000 else positional(value, 3)


def usd(value: float | None) -> str:
    """Dollars as the terminal shows them ($1,234, $12.34), small sums without an exponent ($0.0000048)."""
    if value is None:
        return "-"
    if value >= 100:
        return f"${value:,.0f}"
    if value >= 0.01 or value == 0:
        return f"${value:.2f}"
    return "$" + positional(value, 2)


duration = units.duration


def size(nbytes: float) -> str:
    """Memory in GiB/MiB as the terminal shows it, KiB under one MiB."""
    return f"{nbytes / 2**10:,.1f} KiB" if 0 < nbytes < 2**20 else units.gib(nbytes)


def pct(value: float) -> str:
    """A share as a whole percentage: 0.375 -> '38%'."""
    return f"{value:.0%}"
