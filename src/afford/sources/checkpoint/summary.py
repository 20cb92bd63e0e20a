"""The weights-only view of a checkpoint: static memory from the parameters alone, and its table."""

from __future__ import annotations

from typing import Any

from afford.estimate.memory import optimizer_state_bytes
from afford.sources.checkpoint.info import FLOAT_DTYPES, CheckpointInfo
from afford.workload import Optimizer, Precision


def summary(info: CheckpointInfo, precision: Precision, optimizer: Optimizer) -> dict[str, Any]:
    """Static memory a job needs from the parameters alone: inference holds the weights as stored; training holds
    weights and gradients at the precision's compute dtype, fp32 master weights (mixed precision) and the
    optimizer's state (afford.estimate.memory's rule, so figures agree with a traced assessment)."""
    import torch

    compute = torch.empty((), dtype=precision.compute_dtype).element_size()
    trainable = [e for e in info.entries if e.dtype in FLOAT_DTYPES]
    n_train = sum(e.numel for e in trainable)
    frozen_bytes = sum(e.nbytes for e in info.entries if e.dtype not in FLOAT_DTYPES)
    weights = n_train * compute + frozen_bytes
    gradients = n_train * compute
    master = 4 * n_train if precision.mixed else 0
    optim = optimizer_state_bytes([(e.shape, e.dtype in FLOAT_DTYPES) for e in info.entries], optimizer, precision)
    return {
        "checkpoint": info.to_dict(), "precision": precision.value, "optimizer": optimizer.value,
        "trainable_params": n_train,
        "inference": {"weights_bytes": info.weight_bytes},
        "training": {"weights_bytes": weights, "gradients_bytes": gradients, "master_weights_bytes": master,
                     "optimizer_bytes": optim, "static_bytes": weights + gradients + master + optim},
        "not_counted": "activations, KV cache, temporaries, FLOPs and time: they need the architecture (put the "
                       "model's config.json beside the weights)",
    }


def render(data: dict[str, Any], console: Any) -> None:
    """A short table of a checkpoint (`CheckpointInfo.to_dict()`) or of its `summary(...)`."""
    from rich.table import Table

    from afford.units import count, gb, gib

    ck = data.get("checkpoint", data)
    table = Table(title=f"{ck['path']}  ({ck['format']})", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("how")
    table.add_row("parameters", f"{count(ck['params'])}", f"{ck['params']:,} elements in {ck['tensors']:,} tensors")
    table.add_row("weights", gib(ck["weight_bytes"]), f"{gb(ck['weight_bytes'])} in {len(ck['files'])} file(s)")
    for dtype, n in ck["params_by_dtype"].items():
        table.add_row(f"  {dtype}", count(n), gib(ck["bytes_by_dtype"][dtype]))
    if "training" in data:
        tr = data["training"]
        table.add_row("inference weights", gib(data["inference"]["weights_bytes"]), "as stored")
        table.add_row("training, static", gib(tr["static_bytes"]),
                      f"{data['precision']} weights {gib(tr['weights_bytes'])} + gradients {gib(tr['gradients_bytes'])}"
                      f" + master {gib(tr['master_weights_bytes'])} + {data['optimizer']} {gib(tr['optimizer_bytes'])}")
    console.print(table)
    for note in ck.get("notes", []):
        console.print(f"note: {note}")
    if "not_counted" in data:
        console.print(f"note: not counted: {data['not_counted']}")

