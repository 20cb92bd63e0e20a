"""`afford compare --jobs 1` against `--jobs 2` on 20 torchvision models (issue 15, item 3).

Each configuration runs twice in fresh processes sharing one empty AFFORD_HOME: the first traces every model (and
keeps the traces on disk), the second re-prices them from the disk cache. Both JSON outputs must be the same for
--jobs 1 and --jobs 2. Appends its table to docs/benchmarks.md ("Parallel compare"). Run by hand or with
`make bench`; pass --no-write to only print the table.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODELS = 20
JOB = ["--train-samples", "1000"]


def _models() -> list[str]:
    """The first MODELS names `torchvision:*` expands to (the glob compare itself expands)."""
    from afford.decide.compare import expand

    return expand(["torchvision:*"])[:MODELS]


def _run(models: list[str], jobs: int, home: str) -> tuple[float, dict[str, object]]:
    """One `afford compare` in a fresh process: its wall time and its JSON."""
    env = {**os.environ, "AFFORD_HOME": home}
    cmd = [sys.executable, "-m", "afford", "compare", *models, *JOB, "--jobs", str(jobs), "--json"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    return time.perf_counter() - t0, json.loads(out.stdout)


def main() -> int:
    """Run the four measurements, print the table and (unless --no-write) append it to docs/benchmarks.md."""
    models = _models()
    timings: dict[int, tuple[float, float]] = {}
    outputs: dict[int, dict[str, object]] = {}
    for jobs in (1, 2):
        home = tempfile.mkdtemp(prefix="afford-sweep-bench-")
        first, data = _run(models, jobs, home)
        cached, again = _run(models, jobs, home)
        timings[jobs], outputs[jobs] = (first, cached), data
        if again != data:
            print(f"--jobs {jobs}: the cached re-run differs from the first", file=sys.stderr)
            return 1
    same = outputs[1] == outputs[2]
    listed: list[dict[str, object]] = outputs[1]["models"]  # type: ignore[assignment]
    errors = sum(1 for r in listed if r["error"])
    rows = [f"| --jobs {j} | {timings[j][0]:.1f} s | {timings[j][1]:.1f} s |" for j in (1, 2)]
    speed = timings[1][0] / timings[2][0]
    lines = [
        "", "## Parallel compare", "",
        f"bench/sweep_bench.py: `afford compare` on the first {MODELS} models of `torchvision:*` "
        f"({' '.join(JOB)}), each configuration in fresh processes over one empty AFFORD_HOME: the first run traces "
        "every model (workers keep the traces on disk), the cached re-run re-prices them. Wall time of the whole "
        f"command, start-up and imports included. Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {date.today().isoformat()}.", "",
        "| command | first run | cached re-run |", "|---|---|---|", *rows, "",
        f"--jobs 2 over --jobs 1, first run: {speed:.2f}x; same JSON for --jobs 1 and 2: {'yes' if same else 'NO'}; "
        f"error rows: {errors}.",
    ]
    text = "\n".join(lines)
    print(text)
    if "--no-write" not in sys.argv:
        with (ROOT / "docs" / "benchmarks.md").open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
