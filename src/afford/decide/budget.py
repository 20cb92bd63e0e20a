"""What the user can spend: money, time, energy, carbon, and the hardware they own."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from afford import bounds as b
from afford.errors import InputError, opt
from afford.hardware.catalog import Catalog

_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "day": 86400,
          "days": 86400, "w": 604800, "wk": 604800, "week": 604800, "weeks": 604800}


def parse_duration(text: str) -> float:
    """'36h', '7d', '90min', '2w', '1.5d' or plain seconds -> seconds (finite, > 0, at most a century)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m:
        raise InputError(f"{opt('deadline')} {b.show(text)} is not a duration; write e.g. 36h, 7d, 90min")
    value, unit = float(m.group(1)), (m.group(2) or "s").lower()
    if unit not in _UNITS:
        raise InputError(f"{opt('deadline')} {b.show(text)}: unknown unit {unit!r}; use s, min, h, d or w")
    return deadline_seconds(value * _UNITS[unit], text)


def deadline_seconds(seconds: float, given: object) -> float:
    """A deadline in seconds, finite, above zero and at most a century; else an InputError quoting `given`."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not math.isfinite(seconds) \
            or not 0 < seconds <= b.MAX_DEADLINE_S:
        raise InputError(f"{opt('deadline')} must be longer than zero and at most 100 years (a finite "
                         f"duration such as 36h or 7d), got {b.show(given)}")
    return float(seconds)


@dataclass(frozen=True)
class Owned:
    """Devices the user owns: `count` of catalog device `device`, at `price_per_hour` (0 = owned outright)."""

    device: str
    count: int


def parse_available(text: str, catalog: Catalog) -> list[Owned]:
    """'rtx4090:2,a100-80gb:8' -> owned devices; unknown names list the closest catalog ids."""
    out: list[Owned] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        name, _, count = part.partition(":")
        try:
            n = int(count) if count else 1
        except ValueError:
            raise InputError(f"{opt('available')} {b.show(part)}: the count after ':' must be an integer") from None
        if not 1 <= n <= b.MAX_DEVICES:
            raise InputError(f"{opt('available')} {b.show(part)}: the count must be at least 1 and at most "
                             f"{b.MAX_DEVICES:,}")
        out.append(Owned(device=catalog.get(name).id, count=n))
    if not out:
        raise InputError(f"{opt('available')} needs NAME:COUNT[,NAME:COUNT...], e.g. rtx4090:1")
    return out


@dataclass(frozen=True)
class Budget:
    """Limits of a job; None means no limit. Owned hardware costs its energy only (at `electricity_usd_kwh`)."""

    usd: float | None = None
    deadline_s: float | None = None
    max_kwh: float | None = None
    max_co2_kg: float | None = None
    available: tuple[Owned, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        """Every limit a finite number in range (afford.bounds); one-line InputError naming the option."""
        if self.usd is not None:
            b.real(self.usd, "budget_usd", high=b.MAX_USD, unit=" USD")
        if self.deadline_s is not None:
            deadline_seconds(self.deadline_s, self.deadline_s)
        if self.max_kwh is not None:
            b.real(self.max_kwh, "max_kwh", high=b.MAX_KWH, open_low=True, unit=" kWh")
        if self.max_co2_kg is not None:
            b.real(self.max_co2_kg, "max_co2_kg", high=b.MAX_CO2_KG, open_low=True, unit=" kg")

    def violations(self, cost_usd: float | None, seconds: float, kwh: float, co2_kg: float) -> list[str]:
        """The limits a plan's cost, time, energy and CO2 break (an unknown cost breaks none): budget, deadline,
        energy, co2, in that order."""
        out = []
        if self.usd is not None and (cost_usd or 0.0) > self.usd:
            out.append("budget")
        if self.deadline_s is not None and seconds > self.deadline_s:
            out.append("deadline")
        if self.max_kwh is not None and kwh > self.max_kwh:
            out.append("energy")
        if self.max_co2_kg is not None and co2_kg > self.max_co2_kg:
            out.append("co2")
        return out

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.usd, self.deadline_s, self.max_kwh, self.max_co2_kg)) or bool(
            self.available)
