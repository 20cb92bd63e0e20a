"""Published LLM max-load serving throughput (serving_throughput.toml) against afford's serving model
(estimate/serving.py). Shared by tests/golden/test_serving_throughput.py and bench/validate_serving.py (which writes
the "Serving throughput" table of docs/validation.md).

Each row is priced as afford's engine runs it: one replica (split over the row's TP degree, estimate/sharding.py),
the row's weights and KV dtype, its input and output lengths, at the maximum load (`serve.max_load`: min(KV
concurrency, max_num_seqs 256)) or at the published fixed batch. A row published per GPU is compared with the
replica's throughput over its TP devices.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import afford
from afford.estimate import formats
from afford.estimate.serving import ServeOptions, serve
from afford.hardware.catalog import Catalog

HERE = Path(__file__).parent
TOLERANCE = 0.40  # issue 11: "LLM max-load throughput within 40% for at least 70% of rows"


def rows() -> list[dict[str, Any]]:
    """The rows of serving_throughput.toml."""
    return list(tomllib.loads((HERE / "serving_throughput.toml").read_text())["row"])


@cache
def _assessed(model: str, prompt: int, output: int) -> Any:
    """One traced request of the row's lengths (batch 1, bf16), shared by the rows that have them."""
    return afford.assess(model, task="generate", prompt_tokens=prompt, generate_tokens=output, infer_samples=1,
                         precision="bf16", hardware="h100-sxm")


@dataclass
class Outcome:
    """One row priced, or why not."""

    row: dict[str, Any]
    predicted: float | None
    concurrency: int | None
    limited_by: str | None
    reason: str | None = None

    @property
    def published(self) -> float:
        return float(self.row["output_tokens_per_s"])

    @property
    def error(self) -> float | None:
        return None if self.predicted is None else self.predicted / self.published - 1.0


def evaluate(row: dict[str, Any]) -> Outcome:
    """Price one row (None with a reason when afford cannot price it)."""
    tp = int(row.get("tp", 1))
    device = Catalog.load().get(row["hardware"])
    fmt = formats.weight_format(row["weights"])
    if fmt.device_format and not device.has_format(fmt.device_format):
        return Outcome(row, None, None, None, f"{device.id} has no {fmt.device_format} in the catalog")
    a = _assessed(row["model"], int(row["input_tokens"]), int(row["output_tokens"]))
    fixed = row.get("concurrency")
    options = ServeOptions(concurrency=int(fixed) if isinstance(fixed, int) else None)
    s = serve(a, device, fmt, row.get("kv_cache_dtype"), options, None, tp)
    if not s["fits"]:
        return Outcome(row, 0.0, 0, "memory", s.get("reason"))
    figures = s.get("at_concurrency") or s["max_load"]
    per_gpu = tp if row.get("per_gpu", tp == 1) else 1
    return Outcome(row, float(figures["output_tokens_per_second"]) / per_gpu, int(figures["concurrency"]),
                   s["limited_by"] if "at_concurrency" not in s else "fixed batch")


def evaluate_all() -> list[Outcome]:
    """Every row, in file order."""
    return [evaluate(r) for r in rows()]
