"""The hardware catalog: typed devices from `devices.toml` (every figure with its source), plus user files.

Names are short lowercase ids (`a100-80gb`, `h100-sxm`, `rtx4090`, ...) with aliases; an unknown name is an
error listing the closest ones. A user TOML or YAML file adds devices or overrides fields of existing ones.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from afford.bounds import show, within
from afford.errors import AffordError, ConfigError, InputError, opt
from afford.names import closest

PRECISIONS = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4")


@dataclass(frozen=True)
class Device:
    """One accelerator (or CPU socket): memory, bandwidth, dense peak per format, power, links and price."""

    id: str
    name: str
    vendor: str
    kind: str
    memory_bytes: int
    memory_bandwidth_gb_s: float
    peak_tflops: dict[str, float]
    tdp_w: float | None = None
    intra_node_gb_s: float | None = None
    inter_node_gb_s: float | None = None
    gpus_per_node: int = 8
    price_usd_per_hour: float | None = None
    price_source: str | None = None
    price_date: str | None = None
    aliases: tuple[str, ...] = ()
    intra_node_link: str | None = None
    source: str = ""
    source_date: str | None = None
    notes: str = ""
    # streaming multiprocessors and resident threads per SM (NVIDIA GPUs): how many thread blocks run at once
    # (estimate/timing.py, kernels that give each row its own block); None where the catalog does not say
    sm_count: int | None = None
    threads_per_sm: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def peak_flops(self, fmt: str) -> float:
        """Dense peak in FLOP/s for a number format, falling back to the nearest wider format it has."""
        chain = {"fp4": ["fp4", "fp8", "bf16", "fp16"], "fp8": ["fp8", "bf16", "fp16"], "int8": ["int8", "fp16"],
                 "bf16": ["bf16", "fp16", "tf32", "fp32"], "fp16": ["fp16", "bf16", "tf32", "fp32"],
                 "tf32": ["tf32", "fp32"], "fp32": ["fp32"]}[fmt]
        for key in chain:
            if key in self.peak_tflops:
                return self.peak_tflops[key] * 1e12
        raise InputError(f"{self.id} has no published {fmt} (or wider) peak in the catalog; give one in a "
                         f"{opt('hardware_file')} entry")

    def has_format(self, fmt: str) -> bool:
        return fmt in self.peak_tflops

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["aliases"] = list(self.aliases)
        out.pop("extra")
        out.update(self.extra)
        return out


_FIELDS = {f.name for f in dataclasses.fields(Device)}
# Ranges of a device's figures (a hardware file's NaN, inf or absurd values are refused where they are read),
# and of the measured figures `afford calibrate` adds (kept in `extra`).
MAX_PEAK_TFLOPS = 1e6
_RANGES = {"memory_bytes": (0.0, 2.0**50), "memory_bandwidth_gb_s": (0.0, 1e6), "tdp_w": (0.0, 1e5),
           "intra_node_gb_s": (0.0, 1e6), "inter_node_gb_s": (0.0, 1e6), "price_usd_per_hour": (0.0, 10_000.0),
           "op_overhead_s": (0.0, 1.0), "optimizer_gb_s": (0.0, 1e6), "system_efficiency": (0.0, 10.0)}
_POSITIVE = ("memory_bytes", "memory_bandwidth_gb_s", "optimizer_gb_s", "system_efficiency")

_REQUIRED = ("id", "memory_bytes", "memory_bandwidth_gb_s")
_COUNTS = {"sm_count": (1, 100_000), "threads_per_sm": (32, 100_000)}  # integer figures, where given


def _device(entry: dict[str, Any], where: str) -> Device:
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise ConfigError(f"{where}: device {entry.get('id', '?')!r} lacks {', '.join(missing)}")
    known = {k: v for k, v in entry.items() if k in _FIELDS}
    extra = {k: v for k, v in entry.items() if k not in _FIELDS}
    known["id"] = str(known["id"]).lower()
    known.setdefault("name", known["id"])
    known.setdefault("vendor", "unknown")
    known.setdefault("kind", "gpu")
    known["aliases"] = tuple(str(a).lower() for a in known.get("aliases", ()))
    peaks = known.setdefault("peak_tflops", {})
    if not isinstance(peaks, dict):
        raise ConfigError(f"{where}: device {known['id']!r}: peak_tflops must be a table of format = TFLOPS")
    for fmt, value in peaks.items():
        if fmt not in PRECISIONS:
            raise ConfigError(f"{where}: device {known['id']!r}: unknown number format {fmt!r} in peak_tflops "
                              f"(use {', '.join(PRECISIONS)})")
        if within(value, 0.0, MAX_PEAK_TFLOPS, open_low=True) is None:
            raise ConfigError(f"{where}: device {known['id']!r}: peak_tflops.{fmt} must be a finite, positive number "
                              f"of at most {MAX_PEAK_TFLOPS:,.0f}, got {show(value)}")
    figures = {**known, **extra}
    for key, (low, high) in _RANGES.items():
        value = figures.get(key)
        if value is None and key not in _REQUIRED:
            continue
        if within(value, low, high, open_low=key in _POSITIVE) is None:
            what = "positive" if key in _POSITIVE else "non-negative"
            raise ConfigError(f"{where}: device {known['id']!r}: {key} must be a finite, {what} number of at most "
                              f"{high:,.0f}, got {show(value)}")
    rates = extra.get("op_gb_s", {})
    if not isinstance(rates, dict) or any(within(r, 0.0, 1e6, open_low=True) is None for r in rates.values()):
        raise ConfigError(f"{where}: device {known['id']!r}: op_gb_s must be a table of op = GB/s, each a finite "
                          "number above 0")
    for key, (low, high) in _COUNTS.items():
        value = known.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high):
            raise ConfigError(f"{where}: device {known['id']!r}: {key} must be an integer from {low:,} to {high:,}, "
                              f"got {show(value)}")
    gpn = known.get("gpus_per_node", 8)
    if not isinstance(gpn, int) or isinstance(gpn, bool) or not 1 <= gpn <= 1024:
        raise ConfigError(f"{where}: device {known['id']!r}: gpus_per_node must be an integer from 1 to 1024, "
                          f"got {show(gpn)}")
    return Device(**known, extra=extra)


@cache
def builtin() -> tuple[Device, ...]:
    """The devices shipped with afford (read on first use)."""
    text = resources.files("afford.hardware").joinpath("devices.toml").read_text(encoding="utf-8")
    return tuple(_device(e, "devices.toml") for e in tomllib.loads(text)["device"])


def read_user_file(path: Path) -> list[dict[str, Any]]:
    """Device entries from a user TOML or YAML file (`[[device]]` tables, or a `device:` list)."""
    from afford import safeio

    text = safeio.read_text(path, "hardware file")  # a regular file of bounded size, UTF-8
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            data = safeio.load_yaml(text, str(path))
        else:
            data = tomllib.loads(text)
    except AffordError:
        raise
    except RecursionError:
        raise ConfigError(f"{path}: nests too deep to read; not a hardware file") from None
    except Exception as exc:  # noqa: BLE001 - parser errors of either format become one line
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'TOML'}: "
                          f"{str(exc).splitlines()[0]}") from None
    entries = data.get("device") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{path}: expected a list of devices under 'device' ([[device]] tables in TOML)")
    return entries


class Catalog:
    """Devices by id and alias; a user file's entries add devices or override fields of built-in ones."""

    def __init__(self, devices: tuple[Device, ...] | list[Device]) -> None:
        self.devices = {d.id: d for d in devices}
        self._names: dict[str, str] = {}
        for d in self.devices.values():
            for name in (d.id, *d.aliases):
                self._names.setdefault(name, d.id)

    @classmethod
    def load(cls, user_file: Path | None = None) -> Catalog:
        devices = {d.id: d for d in builtin()}
        if user_file is not None:
            for entry in read_user_file(user_file):
                key = str(entry.get("id", "")).lower()
                base = devices.get(key)
                merged = {**base.to_dict(), **entry} if base is not None else entry
                devices[key] = _device(merged, str(user_file))
        return cls(list(devices.values()))

    def with_host(self, host: str | None) -> Catalog:
        """This catalog with every device driven by the named host profile (estimate/runtime.py `hosts`: the
        per-op cost of eager dispatch); the same catalog for None."""
        if host is None:
            return self
        return Catalog([dataclasses.replace(d, extra={**d.extra, "host": host}) for d in self.devices.values()])

    def get(self, name: str) -> Device:
        key = name.strip().lower()
        if key in self._names:
            return self.devices[self._names[key]]
        if key in ("cpu-local", "cuda-local", "local"):
            return self._calibrated("cuda-local" if key == "cuda-local" else "cpu-local")
        near = closest(key, list(self._names))
        ids = list(dict.fromkeys(self._names[n] for n in near))
        raise InputError(f"unknown hardware {name!r}; closest: {', '.join(ids)} (see: afford hardware list)")

    def _calibrated(self, key: str) -> Device:
        """The latest profile `afford calibrate` stored for this machine."""
        from afford.store import Store, StoreError

        try:
            with Store() as store:
                record = store.latest("calibration", key)
        except StoreError as exc:
            raise InputError(f"cannot read calibrations: {exc}") from None
        if record is None:
            device = "cuda" if key == "cuda-local" else "cpu"
            raise InputError(f"no calibration of this machine yet; run `afford calibrate --device {device}`")
        device_obj = _device(record.result, f"calibration #{record.id}")
        self.devices[device_obj.id] = device_obj
        return device_obj

    def rentable(self) -> list[Device]:
        """Devices with an on-demand price in the catalog."""
        return [d for d in self.devices.values() if d.price_usd_per_hour]
