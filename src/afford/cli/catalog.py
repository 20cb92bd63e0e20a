"""CLI commands over the hardware catalog: `afford hardware list` and `afford hardware show`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from afford.cli.app import app, emit_json, guarded
from afford.cli.options import AsJson, HardwareFile

hardware_app = typer.Typer(help="The hardware catalog: devices, their figures and sources.", no_args_is_help=True)
app.add_typer(hardware_app, name="hardware")


@hardware_app.command("list")
def hardware_list(
    as_json: AsJson = False,
    hardware_file: HardwareFile = None,
) -> None:
    """List every device: memory, bandwidth, bf16 peak, power and price."""
    from afford.hardware.catalog import Catalog

    cat = guarded(lambda: Catalog.load(Path(hardware_file) if hardware_file else None))
    if as_json:
        emit_json({"devices": [d.to_dict() for d in cat.devices.values()]})
        return
    from afford.report.terminal import render_hardware_list

    render_hardware_list(list(cat.devices.values()), Console())


@hardware_app.command("show")
def hardware_show(
    name: Annotated[str, typer.Argument(help="device id or alias")],
    as_json: AsJson = False,
    hardware_file: HardwareFile = None,
) -> None:
    """Every figure of one device, with its sources."""
    from afford.hardware.catalog import Catalog

    device = guarded(lambda: Catalog.load(Path(hardware_file) if hardware_file else None).get(name))
    if as_json:
        emit_json(device.to_dict())
        return
    from afford.report.terminal import render_device

    render_device(device, Console())
