"""Money, energy and carbon from device-seconds.

    usd  = device-hours x price per device-hour
    kWh  = devices x P x seconds / 3.6e6 x PUE,  P = TDP x (idle + (full - idle) x busy)
    kgCO2 = kWh x grid intensity (gCO2e/kWh) / 1000

Power fractions, PUE and grid intensities live in data files with their sources (efficiency.toml,
grid_intensity.toml).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from afford import bounds as b
from afford.errors import InputError
from afford.estimate.timing import factors
from afford.hardware.catalog import Device
from afford.names import closest


@cache
def grid_table() -> dict[str, Any]:
    """grid_intensity.toml, read once."""
    text = resources.files("afford.estimate").joinpath("grid_intensity.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


@dataclass(frozen=True)
class Grid:
    """Carbon intensity of the electricity a job runs on."""

    id: str
    gco2_per_kwh: float
    source: str


def grid(region: str | None = None, gco2_per_kwh: float | None = None) -> Grid:
    """A region's grid intensity, an explicit figure, or the world average (the default)."""
    if gco2_per_kwh is not None:
        value = b.real(gco2_per_kwh, "grid_gco2_kwh", high=b.MAX_GRID_GCO2_KWH, unit=" gCO2e/kWh")
        return Grid(id="custom", gco2_per_kwh=value, source="--grid-gco2-kwh")
    table = grid_table()
    key = (region or table.get("default_region", "world")).strip().lower()
    names: dict[str, dict[str, Any]] = {}
    for entry in table["region"]:
        for name in (entry["id"], *entry.get("aliases", [])):
            names.setdefault(str(name).lower(), entry)
    if key not in names:
        raise InputError(f"unknown region {region!r}; closest: {', '.join(closest(key, list(names)))}")
    entry = names[key]
    return Grid(id=entry["id"], gco2_per_kwh=float(entry["gco2_per_kwh"]),
                source=f"{entry.get('source', '')} ({entry.get('year', '')})")


def electricity_price() -> float:
    """USD per kWh for owned hardware (grid_intensity.toml [electricity_price], with its source)."""
    return float(grid_table()["electricity_price"]["usd_per_kwh"])


def default_pue() -> float:
    return float(grid_table()["pue"]["default"])


def device_power_w(device: Device, busy: float) -> float:
    """Average draw of one device given the share of time it runs compute-bound kernels."""
    table = factors()["power"]
    own = table.get(device.id) if isinstance(table.get(device.id), dict) else {}
    tdp = device.tdp_w or 0.0
    if "average_fraction" in own and "idle_fraction" not in own:
        return tdp * float(own["average_fraction"])  # a single sourced average (codecarbon's CPU fallback)
    idle = float(own.get("idle_fraction", table["idle_fraction"]))
    full = float(own.get("full_load_fraction", table["full_load_fraction"]))
    return tdp * (idle + (full - idle) * max(0.0, min(1.0, busy)))


@dataclass(frozen=True)
class Footprint:
    usd: float | None
    kwh: float
    co2_kg: float
    device_hours: float


def footprint(device: Device, count: int, seconds: float, busy: float, *, price_per_hour: float | None,
              pue: float, grid_: Grid) -> Footprint:
    """Cost, energy and carbon of `count` devices running for `seconds`."""
    hours = count * seconds / 3600.0
    usd = hours * price_per_hour if price_per_hour is not None else None
    kwh = count * device_power_w(device, busy) * seconds / 3.6e6 * pue
    return Footprint(usd=usd, kwh=kwh, co2_kg=kwh * grid_.gco2_per_kwh / 1000.0, device_hours=hours)
