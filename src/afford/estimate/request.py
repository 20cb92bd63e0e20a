"""What a job runs on (HardwareRequest: device, layout, price, grid, PUE) and the priced result (Estimate).

Kept apart from estimate/job.py, which prices an Assessment, so that the Assessment can hold an Estimate
without the two modules importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from afford import bounds as b
from afford.errors import InputError, opt
from afford.estimate import footprint as fp
from afford.estimate.attention import Attention
from afford.estimate.attention import resolve as resolve_attention
from afford.estimate.parallel import Layout, Parallel
from afford.estimate.runtime import Runtime, host_profile
from afford.hardware.catalog import Catalog, Device

__all__ = ["DEFAULT_HARDWARE", "Estimate", "HardwareRequest", "check_rates", "load_catalog", "request"]

DEFAULT_HARDWARE = "a100-80gb"


@dataclass(frozen=True)
class HardwareRequest:
    """Where and how a job runs: device, count and layout, price, grid, PUE, an optional fixed MFU."""

    device: Device
    layout: Layout
    price_per_hour: float | None
    grid: fp.Grid
    pue: float
    mfu: float | None = None
    recompute: bool = False
    default_device: bool = False
    energy_usd_per_kwh: float = 0.0  # owned hardware: its electricity is what it costs
    runtime: Runtime = Runtime.EAGER  # how ops reach the device (estimate/runtime.py)
    attention: Attention = Attention.EAGER  # the attention kernel, resolved for the device (estimate/attention.py)
    weights: str | None = None  # an inference weight format (estimate/formats.py id): its bytes and precision
    data_workers: int | None = None  # DataLoader workers (CPU cores) decoding images for each GPU in training


def load_catalog(hardware_file: str | None, host: str | None) -> Catalog:
    """The device catalog (with a user's file), every device driven by the named host profile (checked: a
    one-line InputError for an unknown one; estimate/runtime.py)."""
    catalog = Catalog.load(Path(hardware_file) if hardware_file else None)
    return catalog.with_host(host_profile(host).name if host is not None else None)


def request(*, hardware: str | None = None, count: int | None = None, nodes: int | None = None,
            gpus_per_node: int | None = None, parallel: str = "dp", tp: int = 1, pp: int = 1, grad_accum: int = 1,
            price_per_hour: float | None = None, region: str | None = None, grid_gco2_kwh: float | None = None,
            pue: float | None = None, mfu: float | None = None, recompute: bool = False,
            catalog: Catalog | None = None, runtime: str | Runtime = Runtime.EAGER,
            attention: str | Attention = Attention.AUTO) -> HardwareRequest:
    """Validate and resolve the hardware options (every bad value is an InputError naming the option)."""
    check_rates(price_per_hour=price_per_hour, pue=pue, mfu=mfu)
    rt = Runtime.parse(runtime)
    Attention.parse(attention)
    cat = catalog or Catalog.load()
    device = cat.get(hardware or DEFAULT_HARDWARE)
    kernel = resolve_attention(attention, device)
    per_node = gpus_per_node if gpus_per_node is not None else device.gpus_per_node
    b.whole(per_node, "gpus_per_node", high=b.MAX_GPUS_PER_NODE)
    if nodes is not None:
        b.whole(nodes, "nodes", high=b.MAX_DEVICES)
    if count is not None:
        b.whole(count, "count", high=b.MAX_DEVICES)
    if nodes is not None and count is not None and count != nodes * per_node:
        raise InputError(f"{opt('count')} {count} disagrees with {opt('nodes')} {nodes} x {opt('gpus_per_node')} "
                         f"{per_node}")
    total = count if count is not None else (nodes * per_node if nodes is not None else 1)
    try:
        par = Parallel(str(parallel).lower())
    except ValueError:
        raise InputError(f"unknown {opt('parallel')} {b.show(parallel)}; choose dp, zero1, zero2, zero3 or "
                         "fsdp") from None
    layout = Layout(count=total, gpus_per_node=min(per_node, total) if nodes is None else per_node,
                    parallel=par, tp=tp, pp=pp, grad_accum=grad_accum)
    price = price_per_hour if price_per_hour is not None else device.price_usd_per_hour
    return HardwareRequest(device=device, layout=layout, price_per_hour=price,
                           grid=fp.grid(region, grid_gco2_kwh), pue=pue if pue is not None else fp.default_pue(),
                           mfu=mfu, recompute=recompute, default_device=hardware is None, runtime=rt,
                           attention=kernel)


def check_rates(*, price_per_hour: float | None = None, pue: float | None = None, mfu: float | None = None,
                electricity_usd_kwh: float | None = None) -> None:
    """The rates of a job, each finite and in range when given (the one check of these options, for assess,
    plan and the API): USD per device-hour, PUE, a fixed MFU, USD per kWh of owned hardware."""
    if price_per_hour is not None:
        b.real(price_per_hour, "price_per_hour", high=b.MAX_PRICE_PER_HOUR, unit=" USD")
    if pue is not None:
        b.real(pue, "pue", low=b.PUE_RANGE[0], high=b.PUE_RANGE[1])
    if mfu is not None:
        b.real(mfu, "mfu", high=1.0, open_low=True)
    if electricity_usd_kwh is not None:
        b.real(electricity_usd_kwh, "electricity_usd_kwh", high=b.MAX_ELECTRICITY_USD_KWH, unit=" USD/kWh")


@dataclass
class Estimate:
    """Time, money, energy and carbon of an assessment on a HardwareRequest (point, low, high)."""

    req: HardwareRequest
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
