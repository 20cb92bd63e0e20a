"""Predict every published training run in tests/golden/training_runs.toml and write docs/validation.md.

Run with `make validate` (about 2 minutes). The asserted subset is checked by tests/golden/test_training_runs.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "golden"))

from docsection import replace_marked  # noqa: E402  # bench/ is the script folder, first on sys.path
from golden_runs import SPECS, TOLERANCE, evaluate  # noqa: E402


def main() -> int:
    rows = []
    for spec in SPECS:
        o = evaluate(spec)
        within = abs(o.error) <= TOLERANCE
        status = ("within" if within else "outside") + ("" if spec.validated else " (not asserted)")
        gpus = spec.count or o.run.get("gpu_count")
        rows.append(f"| {spec.run_id} | {o.run['model']} | {o.run['hardware']} | {gpus} "
                    f"| {o.reported_gpu_hours:,.0f} | {o.basis} | {o.predicted_gpu_hours:,.0f} | {o.error:+.1%} | "
                    f"{o.predicted_mfu:.1%} | {status} | {spec.assumption} | {o.run['source'][:160]} |")
        print(rows[-1], flush=True)
    # only the marked table: the sections after it belong to other scripts (it once cut them off)
    table = ("<!-- runs -->\n\n| run | model | hardware | GPUs | reported GPU-h | basis | predicted GPU-h | error "
             "| predicted MFU | within 35% | layout assumed | source |\n"
             "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
             + "\n".join(rows) + "\n\n<!-- /runs -->")
    replace_marked("<!-- runs -->", "<!-- /runs -->", table, "Training runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
