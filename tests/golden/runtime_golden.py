"""Published small-batch inference and training throughput (runtime_overheads.toml) against afford's prediction,
with the runtime-overhead model (estimate/runtime.py) and without it (the roofline alone, as before the model).

Shared by tests/golden/test_runtime_overheads.py and bench/validate_runtime.py (which writes the "Runtime
overheads" table of docs/validation.md).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from afford.api import assess
from afford.estimate import runtime

HERE = Path(__file__).parent
TOLERANCE = 0.35  # on samples/s (tokens/s for decode), per asserted row; issue 11's target for vision latency
TRAIN_PRECISION = "fp16-mixed"
TRAIN_OPTIMIZER = "sgd-momentum"
TRAIN_HARDWARE = "rtx3090"
TRAIN_AMP = True  # timm's benchmark trains under torch.autocast with fp32 weights (afford's --amp step)


def rows() -> dict[str, list[dict[str, Any]]]:
    """The rows of runtime_overheads.toml by kind: infer, decode, train."""
    data = tomllib.loads((HERE / "runtime_overheads.toml").read_text())
    return {kind: data.get(kind, []) for kind in ("infer", "decode", "train")}


@contextmanager
def roofline_only() -> Iterator[None]:
    """Price without the runtime model (every device left as the roofline times it): the figures before it."""
    applies = runtime.applies
    runtime.applies = lambda device: False  # type: ignore[assignment]
    try:
        yield
    finally:
        runtime.applies = applies  # type: ignore[assignment]


@dataclass
class Outcome:
    """One row priced with and without the runtime model."""

    row: dict[str, Any]
    kind: str
    published: float
    before: float
    after: float
    host_bound: bool | None  # None for decode (the flag of the traced forward is not the decode step's)

    @property
    def error(self) -> float:
        return self.after / self.published - 1.0

    @property
    def error_before(self) -> float:
        return self.before / self.published - 1.0

    @property
    def tolerance(self) -> float:
        return float(self.row.get("tolerance", TOLERANCE))

    @property
    def asserted(self) -> bool:
        return bool(self.row.get("asserted", self.kind != "train"))


def _price(row: dict[str, Any], kind: str) -> tuple[float, bool | None]:
    """samples/s (tokens/s for decode) of one row, and whether the host sets the pace."""
    rt = row.get("runtime", "eager")
    if kind == "train":
        b = int(row["batch_size"])
        d = assess(row["model"], train_samples=10 * b, batch_size=b, precision=TRAIN_PRECISION,
                   optimizer=TRAIN_OPTIMIZER, hardware=TRAIN_HARDWARE, runtime=rt, amp=TRAIN_AMP).to_dict()["time"]
        return float(d["train_samples_per_second"]), bool(d["train_step_breakdown"]["host"]["bound"])
    if kind == "decode":
        d = assess(row["model"], seq_len=int(row["context"]), batch_size=int(row["batch_size"]),
                   precision=row["precision"], hardware=row["hardware"], runtime=rt).to_dict()
        return float(d["generate"]["decode_tokens_per_second"]), None
    extra = {"seq_len": int(row["seq_len"])} if "seq_len" in row else {}
    d = assess(row["model"], infer_samples=1000, batch_size=int(row["batch_size"]), precision=row["precision"],
               hardware=row["hardware"], runtime=rt, **extra).to_dict()["time"]
    return float(d["infer_samples_per_second"]), bool(d["infer_batch_breakdown"]["host_bound"])


def evaluate(row: dict[str, Any], kind: str) -> Outcome:
    """Price one row with the runtime model and without it."""
    published = float(row["tokens_per_s"] if kind == "decode" else row["samples_per_s"])
    after, bound = _price(row, kind)
    with roofline_only():
        before, _ = _price(row, kind)
    return Outcome(row=row, kind=kind, published=published, before=before, after=after, host_bound=bound)


def evaluate_all() -> list[Outcome]:
    """Every row of the file, in order: inference, decode, training."""
    return [evaluate(r, kind) for kind, rs in rows().items() for r in rs]
