"""Regenerate docs/report.png: the HTML report of a Llama 2 7B full fine-tune on an owned RTX 4090 with a budget
(a verdict with plans), rendered by headless Chromium at 1280 x 2400 (the top of the page: verdict, compute,
memory).

    .venv/bin/python bench/report_screenshot.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PNG = ROOT / "docs" / "report.png"


def main() -> int:
    import afford
    from afford.report import write_report

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is missing: run `sh scripts/install-test-deps.sh`", file=sys.stderr)
        return 2
    # The README's case: 10,000 samples of 512 tokens, bf16 mixed precision, AdamW, one owned RTX 4090, $5.
    a = afford.assess("hf:meta-llama/Llama-2-7b-hf", train_samples=10_000, seq_len=512, precision="bf16-mixed",
                      infer_samples=1000, available="rtx4090:1", budget_usd=5)
    with tempfile.TemporaryDirectory() as tmp:
        page = write_report(a, Path(tmp) / "report.html")
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp}/profile", "--hide-scrollbars", f"--screenshot={PNG}",
                        "--window-size=1280,2400", page.as_uri()],
                       check=True, capture_output=True, timeout=120)
    print(f"wrote {PNG.relative_to(ROOT)} ({a.to_dict()['verdict']['status']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
