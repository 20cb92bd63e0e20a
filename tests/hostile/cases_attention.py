"""Hostile-table rows for --attention (estimate/attention.py): an unknown kernel, or flash on a device that cannot
run it, is one line and exit 2, on the command line, in plan and in a job file; the accepted names price and the
JSON names the kernel the job runs."""

from __future__ import annotations

import json
from pathlib import Path

from hostile.harness import Case, Result, job_file

MODEL = "hf:openai-community/gpt2"


def _kernel(name: str):  # type: ignore[no-untyped-def]
    """A check that the JSON names the attention kernel the job was priced with."""

    def check(tmp: Path, result: Result) -> None:
        assert json.loads(result.stdout)["hardware"]["attention"] == name

    return check


CASES = [
    Case("attention-unknown", ["assess", MODEL, "--seq-len", "64", "--attention", "flashy"], 2,
         r"unknown --attention 'flashy'; choose auto, flash, sdpa or eager"),
    Case("attention-empty", ["assess", MODEL, "--seq-len", "64", "--attention", ""], 2, r"unknown --attention"),
    Case("attention-flash-v100", ["assess", MODEL, "--seq-len", "64", "--hardware", "v100-16gb", "--attention",
                                  "flash"], 2, r"--attention flash needs an NVIDIA GPU of compute capability 8\.0"),
    Case("attention-plan-unknown", ["plan", MODEL, "--seq-len", "64", "--train-samples", "1000", "--attention",
                                    "xformers"], 2, r"unknown --attention 'xformers'"),
    Case("attention-job-file", ["assess", MODEL, "--seq-len", "64"], 2, r"unknown --attention 'tri'",
         setup=job_file('[hardware]\nattention = "tri"\n')),
    Case("attention-auto-h100", ["assess", MODEL, "--seq-len", "64", "--hardware", "h100-sxm", "--json"], 0,
         check=_kernel("flash")),
    Case("attention-auto-v100", ["assess", MODEL, "--seq-len", "64", "--hardware", "v100-16gb", "--json"], 0,
         check=_kernel("sdpa")),
    Case("attention-eager", ["assess", MODEL, "--seq-len", "64", "--attention", "EAGER", "--json"], 0,
         check=_kernel("eager")),
]
