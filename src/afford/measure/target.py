"""What `afford measure` runs on and predicts for.

A measurement checks afford's prediction for the machine it ran on, so the prediction is for this machine:
its calibrated profile (`cpu-local` / `cuda-local`, `afford calibrate`). When there is none yet, measure
calibrates here first (quick by default, a few seconds), says so on stderr and stores it, so the next
measurement and `assess --hardware cpu-local` use it; `--calibrate no` refuses instead and names the command.
A catalog device is predicted only when `--hardware` names one, with a note saying that the comparison is
between two devices and not afford's accuracy.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from afford.errors import InputError, opt
from afford.hardware.catalog import Catalog
from afford.measure.calibrate import local_id

MODES = ("quick", "full", "no")
AnnounceFn = Callable[[str], None]
CalibrateFn = Callable[[str, bool], dict[str, Any]]  # (device, quick) -> a catalog device entry


@dataclass
class Target:
    """The hardware id the prediction is made for, and the notes that say how it was chosen."""

    hardware: str
    notes: list[str] = field(default_factory=list)
    calibrated_now: bool = False


def check_device(device: str) -> str:
    """The torch device `--device` names (cpu, cuda or cuda:N), when it is usable here; else one line."""
    key = str(device).strip().lower()
    if key == "cpu":
        return key
    if key == "cuda" or re.fullmatch(r"cuda:\d{1,4}", key):
        if not torch.cuda.is_available():
            built = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA support"
            raise InputError(f"{opt('device')} {device}: no CUDA device is visible here (this PyTorch "
                             f"{torch.__version__} has {built}); use {opt('device')} cpu")
        index = int(key.partition(":")[2] or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise InputError(f"{opt('device')} {device}: this machine has {count} CUDA device"
                             f"{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})")
        return key
    raise InputError(f"{opt('device')} {device!r}: choose cpu or cuda (cuda:N for another GPU)")


def check_mode(mode: str) -> str:
    """`--calibrate`: quick, full or no."""
    if mode not in MODES:
        raise InputError(f"{opt('calibrate')} {mode!r}: choose {', '.join(MODES)}")
    return mode


def _stored(local: str) -> bool:
    from afford.store import Store

    with Store() as store:
        return store.latest("calibration", local) is not None


def _calibrate(device: str, quick: bool) -> dict[str, Any]:
    from afford.measure.calibrate import calibrate

    return calibrate(device, quick=quick)


def prediction_target(device: str, hardware: str | None, *, calibration: str = "quick",
                      hardware_file: str | Path | None = None, announce: AnnounceFn | None = None,
                      run_calibration: CalibrateFn | None = None) -> Target:
    """The hardware to predict a measurement on `device` for: `hardware` when the user named a device (with a
    note when it is not this machine), else this machine's calibration, calibrated now (`calibration` quick or
    full, stored) when there is none, or refused with the command to run when `calibration` is "no"."""
    check_mode(calibration)
    catalog = Catalog.load(Path(hardware_file) if hardware_file else None)
    local = local_id(device)
    kind = "cpu" if device == "cpu" else "gpu"
    if hardware is not None and hardware.strip().lower() not in ("local", local):
        return Target(catalog.get(hardware).id, [_elsewhere_note(catalog, hardware, device, kind)])
    if local in catalog.devices or _stored(local):
        return Target(local)
    flag = "" if device == "cpu" else " --device cuda"
    if calibration == "no":
        raise InputError(f"no calibration of this machine's {device} to predict with: run `afford calibrate{flag}` "
                         f"(or `afford calibrate{flag} --quick`) first, or drop {opt('calibrate')} no to calibrate "
                         "on the fly")
    quick = calibration == "quick"
    if announce is not None:
        announce(f"no calibration of this machine's {device} yet: calibrating it now ({'quick' if quick else 'full'} "
                 f"mode) and storing it as {local}"
                 + (f"; `afford calibrate{flag}` runs the full one" if quick else ""))
    started = time.perf_counter()
    profile = (run_calibration or _calibrate)(device, quick)
    took = time.perf_counter() - started
    from afford.store import Store

    with Store() as store:
        record = store.add("calibration", profile["id"], {"device": device, "quick": quick, "by": "afford measure"},
                       profile)
    note = (f"this machine had no calibration: afford measure calibrated its {device} first "
            f"({'quick' if quick else 'full'}, {took:.0f} s) and stored it as {local} (record {record})")
    if quick:
        note += f"; `afford calibrate{flag}` runs the full one (more shapes and repeats)"
    return Target(local, [note], calibrated_now=True)


def _elsewhere_note(catalog: Catalog, hardware: str, device: str, kind: str) -> str:
    """The note for a prediction on a device the user named that is not this machine's calibration."""
    dev = catalog.get(hardware)
    if dev.kind != kind:
        return (f"the comparison crosses devices: measured on this machine's {device}, predicted for {dev.id} "
                f"(a {dev.kind}) because {opt('hardware')} asked for it; the error column is the gap between the "
                "two devices, not afford's accuracy")
    return (f"predicted for {dev.id} ({dev.name}), not this machine, because {opt('hardware')} asked for it: the "
            f"error column compares two different {kind}s; drop {opt('hardware')} to predict with this machine's "
            "calibration")
