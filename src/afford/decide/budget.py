"""What the user can spend: money, time, energy, carbon, and the hardware they own."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from afford.errors import InputError
from afford.hardware.catalog import Catalog

_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "day": 86400,
          "days": 86400, "w": 604800, "wk": 604800, "week": 604800, "weeks": 604800}


def parse_duration(text: str) -> float:
    """'36h', '7d', '90min', '2w', '1.5d' or plain seconds -> seconds (> 0)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m:
        raise InputError(f"--deadline {text!r} is not a duration; write e.g. 36h, 7d, 90min")
    value, unit = float(m.group(1)), (m.group(2) or "s").lower()
    if unit not in _UNITS:
        raise InputError(f"--deadline {text!r}: unknown unit {unit!r}; use s, min, h, d or w")
    seconds = value * _UNITS[unit]
    if seconds <= 0:
        raise InputError(f"--deadline must be longer than zero, got {text!r}")
    return seconds


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
            raise InputError(f"--available {part!r}: the count after ':' must be an integer") from None
        if n < 1:
            raise InputError(f"--available {part!r}: the count must be at least 1")
        out.append(Owned(device=catalog.get(name).id, count=n))
    if not out:
        raise InputError("--available needs NAME:COUNT[,NAME:COUNT...], e.g. rtx4090:1")
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
        if self.usd is not None and self.usd < 0:
            raise InputError(f"--budget-usd must be zero or more, got {self.usd}")
        if self.max_kwh is not None and self.max_kwh <= 0:
            raise InputError(f"--max-kwh must be positive, got {self.max_kwh}")
        if self.max_co2_kg is not None and self.max_co2_kg <= 0:
            raise InputError(f"--max-co2-kg must be positive, got {self.max_co2_kg}")

    @property
    def given(self) -> bool:
        return any(v is not None for v in (self.usd, self.deadline_s, self.max_kwh, self.max_co2_kg)) or bool(
            self.available)
