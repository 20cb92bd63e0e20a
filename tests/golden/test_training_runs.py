"""At least 8 published training runs, predicted with the default efficiency within 35% of the reported
GPU-hours (or of the GPU-hours a reported throughput implies). docs/validation.md shows every run."""

from __future__ import annotations

import pytest
from golden_runs import SPECS, TOLERANCE, evaluate

ASSERTED = [s for s in SPECS if s.validated]


def test_enough_runs_across_sizes_and_generations() -> None:
    from golden_runs import runs

    table = runs()
    assert len(ASSERTED) >= 8
    hardware = {table[s.run_id]["hardware"] for s in ASSERTED}
    assert {"a100-80gb", "a100-40gb", "h100-sxm"} <= hardware
    sizes = [table[s.run_id]["params"] for s in ASSERTED]
    assert min(sizes) < 2e9 and max(sizes) > 1e11


@pytest.mark.parametrize("spec", ASSERTED, ids=lambda s: s.run_id)
def test_predicted_gpu_hours_within_tolerance(spec: object) -> None:
    outcome = evaluate(spec)  # type: ignore[arg-type]
    assert abs(outcome.error) <= TOLERANCE, (
        f"{outcome.spec.run_id}: predicted {outcome.predicted_gpu_hours:,.0f} GPU-h vs reported "
        f"{outcome.reported_gpu_hours:,.0f} ({outcome.basis}), error {outcome.error:+.1%}")
