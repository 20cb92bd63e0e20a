"""Where the estimate's factors come from: the efficiency.toml entry each device's factor is read from, the
system efficiency range, and the source of a PUE (grid_intensity.toml's default or the user's flag)."""

from __future__ import annotations

import math
from typing import Any

from afford.estimate.footprint import grid_table
from afford.estimate.timing import factors


def efficiency_entry(section: str, device_id: str) -> dict[str, Any]:
    """The efficiency.toml entry of `section` ('matmul', 'bandwidth') a device's factor is read from: its own,
    else the section's default (with its `fraction` and `source`)."""
    table = factors().get(section, {})
    entry = table.get(device_id) or table.get("default", {})
    return entry if isinstance(entry, dict) else {}


def system_efficiency() -> dict[str, Any]:
    """efficiency.toml [system.default]: the system factor, its low/high range and source."""
    return dict(factors()["system"]["default"])


def pue_source(pue: float) -> str:
    """The source of a PUE: grid_intensity.toml's default (with its source) or the --pue flag."""
    table = grid_table()["pue"]
    return str(table["default_source"]) if math.isclose(pue, float(table["default"])) else "--pue"
