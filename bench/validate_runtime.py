"""Price every row of tests/golden/runtime_overheads.toml with and without the runtime-overhead model and write
the "Runtime overheads" table of docs/validation.md (between its <!-- runtime --> markers).

Run with `.venv/bin/python bench/validate_runtime.py` (about a minute). The asserted rows are checked by
tests/golden/test_runtime_overheads.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

from docsection import replace_marked  # bench/ is the script folder, first on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "golden"))

from runtime_golden import (  # noqa: E402
    TRAIN_AMP,
    TRAIN_HARDWARE,
    TRAIN_OPTIMIZER,
    TRAIN_PRECISION,
    Outcome,
    evaluate_all,
)

START, END = "<!-- runtime -->", "<!-- /runtime -->"


def _row(o: Outcome) -> str:
    """One markdown row."""
    r = o.row
    hardware = r.get("hardware", TRAIN_HARDWARE)
    precision = r.get("precision", TRAIN_PRECISION)
    unit = "tok/s" if o.kind == "decode" else "/s"
    within = abs(o.error) <= o.tolerance
    status = (("within" if within else "outside") + f" {o.tolerance:.0%}"
              + ("" if o.asserted else f" (not asserted: {r.get('reason', 'training rows are shown only')})"))
    bound = {True: "host", False: "GPU", None: "-"}[o.host_bound]
    what = r["model"].split(":", 1)[1] + (f", seq {r['seq_len']}" if "seq_len" in r else "")
    if o.kind == "decode":
        what += f", decode at context {r['context']}"
    return (f"| {o.kind} | {what} | {hardware} | {precision} | {r['batch_size']} | {r.get('runtime', 'eager')} "
            f"| {o.published:,.1f} {unit} | {o.before:,.1f} | {o.after:,.1f} | {o.error_before:+.0%} | {o.error:+.0%} "
            f"| {bound} | {status} |")


def main() -> int:
    outcomes = evaluate_all()
    lines = [_row(o) for o in outcomes]
    for line in lines:
        print(line, flush=True)
    asserted = [o for o in outcomes if o.asserted]
    shown = [o for o in outcomes if o.kind != "train"]
    table = "\n".join([
        START, "",
        f"Asserted rows within tolerance: {sum(abs(o.error) <= o.tolerance for o in asserted)} of {len(asserted)} "
        f"(roofline alone: {sum(abs(o.error_before) <= o.tolerance for o in asserted)}). All inference rows within "
        f"35%: {sum(abs(o.error) <= 0.35 for o in shown)} of {len(shown)} (roofline alone: "
        f"{sum(abs(o.error_before) <= 0.35 for o in shown)}). Training rows: {TRAIN_PRECISION}, "
        f"{TRAIN_OPTIMIZER}, {TRAIN_HARDWARE}{', amp (torch.amp step)' if TRAIN_AMP else ''}.", "",
        "| kind | model | device | precision | batch | runtime | published | before | after | error before "
        "| error after | bound by | result |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        *lines, "", END])
    replace_marked(START, END, table, "Runtime overheads (issues 11 item 4, 13 item 3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
