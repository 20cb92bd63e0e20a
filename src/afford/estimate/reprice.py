"""The same traced job priced on other catalog devices (same device count and layout, grid, PUE, MFU and
recompute): `estimate()` again on each device, no re-trace."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from afford.errors import AffordError

if TYPE_CHECKING:
    from afford.assess import Assessment

# Devices an Assessment is re-priced on for the "per hardware option" table and plot, besides its own: one or two
# per class (inference cards, 24 GB consumer/workstation, the A100/H100/H200/B200 line, AMD), all with an
# on-demand price in hardware/devices.toml.
COMPARED_DEVICES = ("t4", "l4", "rtx4090", "l40s", "a100-80gb", "h100-sxm", "h200", "b200", "mi300x")


def reprice(a: Assessment, device_ids: Iterable[str] = COMPARED_DEVICES) -> list[tuple[str, dict[str, Any]]]:
    """The traced job on other devices (same count and layout, grid and PUE) through estimate(): no re-trace.
    Returns (label, estimate data) with the assessment's own hardware first; a device that lacks the peak
    format the job needs is left out."""
    from afford.estimate.job import estimate
    from afford.estimate.request import request
    from afford.hardware.catalog import Catalog

    assert a.estimate is not None
    own = a.estimate.req
    out: list[tuple[str, dict[str, Any]]] = [
        (f"{own.layout.count} x {own.device.id}" + (" (owned)" if own.energy_usd_per_kwh else ""), a.estimate.data)]
    catalog = Catalog.load()
    lay = own.layout
    for dev_id in device_ids:
        if dev_id == own.device.id or dev_id not in catalog.devices:
            continue
        try:
            req = request(hardware=dev_id, count=lay.count, parallel=lay.parallel.value, tp=lay.tp, pp=lay.pp,
                          grad_accum=lay.grad_accum, catalog=catalog)
            req = replace(req, grid=own.grid, pue=own.pue, mfu=own.mfu, recompute=own.recompute,
                          runtime=own.runtime)
            out.append((f"{lay.count} x {dev_id}", estimate(a, req).data))
        except AffordError:
            continue  # a device without the needed peak format: left out of the comparison
    return out
