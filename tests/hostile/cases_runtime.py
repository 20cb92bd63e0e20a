"""Hostile-table rows for --runtime (estimate/runtime.py): an unknown runtime is one line and exit 2, on the
command line and in a job file; the accepted names (and their aliases) price without error."""

from __future__ import annotations

import json
from pathlib import Path

from hostile.harness import Case, Result, job_file

MODEL = "torchvision:resnet18"


def _host_breakdown(runtime: str):  # type: ignore[no-untyped-def]
    """A check that the JSON names the runtime in the inference and training breakdowns."""

    def check(tmp: Path, result: Result) -> None:
        data = json.loads(result.stdout)
        assert data["time"]["infer_batch_breakdown"]["runtime"] == runtime
        assert data["time"]["train_step_breakdown"]["host"]["runtime"] == runtime

    return check


CASES = [
    Case("runtime-unknown", ["assess", MODEL, "--runtime", "tensorrtx"], 2,
         r"unknown --runtime 'tensorrtx'; choose eager, compiled or cudagraphs"),
    Case("runtime-empty", ["assess", MODEL, "--runtime", ""], 2, r"unknown --runtime"),
    Case("runtime-plan-unknown", ["plan", MODEL, "--train-samples", "1000", "--runtime", "jit"], 2,
         r"unknown --runtime 'jit'"),
    Case("runtime-job-file-unknown", ["assess", MODEL], 2, r"unknown --runtime 'fast'",
         setup=job_file('[hardware]\nruntime = "fast"\n')),
    Case("runtime-alias-graphs", ["assess", MODEL, "--train-samples", "64", "--batch-size", "8", "--runtime",
                                  "reduce-overhead", "--hardware", "t4", "--json"], 0,
         check=_host_breakdown("cudagraphs")),
    Case("runtime-eager-default", ["assess", MODEL, "--train-samples", "64", "--batch-size", "8", "--hardware",
                                   "t4", "--json"], 0, check=_host_breakdown("eager")),
]
