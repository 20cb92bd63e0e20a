"""Formatting of FLOPs, bytes, seconds and money, in one place (FLOPs SI; bytes in GB = 1e9 and GiB = 2^30)."""

from __future__ import annotations

_SI = [(1e24, "Y"), (1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]


def si(value: float, unit: str = "", digits: int = 3) -> str:
    """A number with an SI prefix: 8.18e9 -> '8.18 G' + unit."""
    v = float(value)
    for scale, prefix in _SI:
        if abs(v) >= scale:
            return f"{v / scale:.{digits}g} {prefix}{unit}"
    return f"{v:.{digits}g} {unit}".rstrip()


def flops(value: float) -> str:
    return si(value, "FLOPs")


def macs(value: float) -> str:
    return si(value, "MACs")


def gb(nbytes: float) -> str:
    """Bytes in decimal gigabytes (1 GB = 1e9 bytes), the unit of GPU spec sheets' bandwidth."""
    if nbytes < 1e9:
        return f"{nbytes / 1e6:,.1f} MB"
    return f"{nbytes / 1e9:,.2f} GB"


def gib(nbytes: float) -> str:
    """Bytes in binary gibibytes (1 GiB = 2^30 bytes), the unit of GPU memory capacities."""
    if nbytes < 2**30:
        return f"{nbytes / 2**20:,.1f} MiB"
    return f"{nbytes / 2**30:,.2f} GiB"


def count(value: float) -> str:
    """A parameter or sample count: 6738415616 -> '6.74 B'."""
    v = float(value)
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.3g} {suffix}"
    return f"{v:,.0f}"


def duration(seconds: float) -> str:
    """Wall time as people read it: µs and ms under a second, then s, min, h and days."""
    if 0 < seconds < 1:
        return f"{seconds * 1e3:.3g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.3g} µs"
    if seconds < 120:
        return f"{seconds:,.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    if seconds < 3 * 86400:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 86400:,.1f} days"
