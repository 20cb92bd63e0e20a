"""The RTX PRO 6000 Blackwell Max-Q's matmul efficiency: its own measured efficiency.toml entry is the one the
estimate reads (not [matmul.default]), it names its source, and its numbers agree with each other and with the
device's catalog peak."""

from __future__ import annotations

import math

from afford.estimate.provenance import efficiency_entry
from afford.estimate.timing import Efficiency, factors
from afford.hardware.catalog import Catalog

DEVICE = "rtx-pro-6000-maxq"


def test_entry_is_measured_and_sourced() -> None:
    entry = factors()["matmul"][DEVICE]
    assert entry["source"].strip() and "github.com" in entry["source"]
    assert "MEASURED" in entry["note"]
    # fraction = measured / spec, rounded to three places: the stated derivation, not a tuned number
    assert math.isclose(entry["fraction"], entry["measured_tflops"] / entry["spec_tflops"], abs_tol=5e-4)
    assert 0 < entry["fraction"] < 1


def test_spec_is_the_catalog_peak() -> None:
    device = Catalog.load().get(DEVICE)
    spec = factors()["matmul"][DEVICE]["spec_tflops"]
    assert math.isclose(device.peak_tflops["fp16"], spec)
    assert math.isclose(device.peak_tflops["bf16"], spec)


def test_estimate_reads_the_device_entry_not_the_default() -> None:
    device = Catalog.load().get(DEVICE)
    entry = factors()["matmul"][DEVICE]
    assert entry["fraction"] != factors()["matmul"]["default"]["fraction"]
    assert Efficiency.for_device(device).matmul == entry["fraction"]
    assert efficiency_entry("matmul", DEVICE)["source"] == entry["source"]
    # an alias resolves to the same device, hence the same entry
    assert Efficiency.for_device(Catalog.load().get("rtx-pro-6000-max-q")).matmul == entry["fraction"]
