"""Judge every documented deployment fact of tests/golden/deployment_facts.toml with afford's inference verdict and
write the "Deployment facts" table of docs/validation.md (between its <!-- deployment --> markers).

Run with `.venv/bin/python bench/validate_deployment.py` (about a minute: one trace per model).
tests/golden/test_deployment_facts.py asserts the rows without the 405B model on every `make test`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from docsection import marked_table  # bench/ is the script folder, first on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "golden"))

from deployment_golden import GENERATE, PROMPT, Verdict, facts, judge  # noqa: E402

START, END = "<!-- deployment -->", "<!-- /deployment -->"


def _row(v: Verdict) -> str:
    """One markdown row."""
    f = v.fact
    said = "fits" if f["fits"] else "does not fit"
    got = "fits" if v.fits else "does not fit"
    return (f"| {f['model'].split('/', 1)[1]} | {f['bits']} ({f['weights']}) | {f['tp']} x {f['hardware']} "
            f"| {said} | {got}: {v.per_device_gib:,.1f} of {v.device_gib:,.0f} GiB per device "
            f"| {'agrees' if v.agrees else 'DISAGREES'} | {f['source']} |")


def main() -> int:
    verdicts = [judge(f) for f in facts()]
    agree = sum(v.agrees for v in verdicts)
    marked_table(
        START, END, "Deployment facts (issue 11)",
        f"{agree} of {len(verdicts)} documented deployments reproduced by the verdict (each job: {PROMPT} + "
        f"{GENERATE} tokens, batch 1, the asked devices split by tensor parallelism; a device holds the job when "
        "its bytes fit its memory less the 1 GiB reserve). Written by bench/validate_deployment.py from "
        "tests/golden/deployment_facts.toml, where each row quotes its source.",
        ["model", "bits (format)", "devices", "documented", "afford", "result", "source"],
        [_row(v) for v in verdicts])
    print(f"{agree}/{len(verdicts)} agree")
    return 0 if agree == len(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
