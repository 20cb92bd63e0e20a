"""Price every row of tests/golden/serving_throughput.toml with afford's serving model and write the "Serving
throughput" table of docs/validation.md (between its <!-- serving --> markers).

Run with `.venv/bin/python bench/validate_serving.py` (about two minutes: one trace per model and length pair).
tests/golden/test_serving_throughput.py asserts a subset of the rows on every `make test`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from docsection import marked_table  # bench/ is the script folder, first on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "golden"))

from serving_golden import TOLERANCE, Outcome, evaluate_all  # noqa: E402

START, END = "<!-- serving -->", "<!-- /serving -->"


def _row(o: Outcome) -> str:
    """One markdown row."""
    r = o.row
    what = r["model"].split(":", 1)[1].split("/", 1)[1]
    load = r.get("concurrency", "max")
    if o.error is None:
        result, predicted, error, conc = f"not priced: {o.reason}", "-", "-", "-"
    else:
        within = abs(o.error) <= TOLERANCE
        result = f"{'within' if within else 'outside'} {TOLERANCE:.0%}"
        predicted, error = f"{o.predicted:,.0f}", f"{o.error:+.0%}"
        conc = f"{o.concurrency} ({o.limited_by})"
    return (f"| {r['id']} | {what} | {r['hardware']} | {r.get('tp', 1)} | {r['weights']} "
            f"| {r.get('kv_cache_dtype', '-')} | {r['input_tokens']}/{r['output_tokens']} | {load} "
            f"| {o.published:,.0f} | {predicted} | {error} | {conc} | {result} |")


def main() -> int:
    outcomes = evaluate_all()
    priced = [o for o in outcomes if o.error is not None]
    within = sum(abs(o.error or 0.0) <= TOLERANCE for o in priced)
    errors = sorted(o.error or 0.0 for o in priced)
    marked_table(
        START, END, "Serving throughput (issue 11)",
        f"{within} of {len(priced)} priced rows within {TOLERANCE:.0%} on output tokens/s (target: at least 70%); "
        f"median error {errors[len(errors) // 2]:+.0%}; {len(outcomes) - len(priced)} rows not priced (reason in "
        "the row). Written by bench/validate_serving.py from tests/golden/serving_throughput.toml.",
        ["id", "model", "device", "TP", "weights", "KV", "in/out", "load", "published out tok/s", "predicted",
         "error", "afford's concurrency (limit)", "result"], [_row(o) for o in outcomes])
    print(f"{within}/{len(priced)} within {TOLERANCE:.0%}")
    return 0 if within >= 0.7 * len(priced) else 1


if __name__ == "__main__":
    sys.exit(main())
