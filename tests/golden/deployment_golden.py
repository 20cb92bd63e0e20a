"""Documented deployment facts (deployment_facts.toml) against afford's inference verdict: the job as asked on the
fact's devices, split over its TP degree, in its weight format, fits or does not. Shared by
tests/golden/test_deployment_facts.py and bench/validate_deployment.py (docs/validation.md, "Deployment facts")."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import afford

HERE = Path(__file__).parent
PROMPT, GENERATE = 32, 2  # a short request: the facts are about holding the model, not long contexts (one
# decode step keeps the trace of a 70B model a few seconds)


def facts() -> list[dict[str, Any]]:
    """The rows of deployment_facts.toml."""
    return list(tomllib.loads((HERE / "deployment_facts.toml").read_text())["fact"])


@dataclass
class Verdict:
    """One fact as afford judges it."""

    fact: dict[str, Any]
    fits: bool
    per_device_gib: float
    device_gib: float
    reason: str

    @property
    def agrees(self) -> bool:
        return self.fits == bool(self.fact["fits"])


def judge(fact: dict[str, Any]) -> Verdict:
    """afford's verdict on the fact's job: the asked plan's fit and its first reason (bytes per device)."""
    tp, device = int(fact["tp"]), fact["hardware"]
    a = afford.assess(fact["model"], task="generate", prompt_tokens=PROMPT, generate_tokens=GENERATE,
                      infer_samples=1, precision="bf16", hardware=device, count=tp, tp=tp,
                      weights=fact["weights"], available=f"{device}:{tp}")
    asked = a.decision.asked
    return Verdict(fact, asked.fits, asked.per_device_bytes / 2**30, asked.device_bytes / 2**30,
                   a.decision.reasons[0])
