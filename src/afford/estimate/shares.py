"""Shares of a traced job: forward FLOPs by module group (repeated blocks folded) and the memory per device split
into the parts that add up to an assessment's per-device figures (the estimate's own sharding rule)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from afford.assess import Assessment


@dataclass(frozen=True)
class MemoryShare:
    """Memory live on one device at a peak: a label, (part, bytes) pieces bottom-up that add up to the peak, and
    the device's usable memory (None before an estimate)."""

    label: str
    parts: list[tuple[str, float]]
    limit: float | None = None


def short_module(module: str) -> str:
    """'LlamaForCausalLM.model.layers.0.mlp' -> 'model.layers.0.mlp' (the root class name dropped)."""
    return module.split(".", 1)[1] if "." in module else f"{module} (root)"


def module_groups(a: Assessment) -> list[tuple[str, int, float]]:
    """Forward FLOPs per sample by module, every module split into its children and its own ops (attention's
    score matmuls, say) so the groups add up to the whole model, repeated blocks folded
    ('layers.*.mlp.down_proj' x32): (label, instances, forward FLOPs), largest first.

    A container that is never called (an nn.ModuleList) records no FLOPs of its own; it counts as the sum of
    its children. Forward only; per-module backward is in the JSON `modules` rows."""
    rows = a.module_rows(depth=10**6)
    recorded = {r["module"]: float(r["forward_flops"]) for r in rows}
    children: dict[str, list[str]] = {}
    for name in recorded:
        parent = name
        while "." in parent:
            parent = parent.rsplit(".", 1)[0]
            if parent in recorded:
                children.setdefault(parent, []).append(name)
                break
    effective: dict[str, float] = {}
    for name in sorted(recorded, key=lambda n: -n.count(".")):  # children before parents
        below = sum(effective[k] for k in children.get(name, []))
        effective[name] = recorded[name] if recorded[name] > 0 else below
    groups: dict[str, list[float]] = {}
    for name, value in recorded.items():
        kids = children.get(name, [])
        own = value - sum(effective[k] for k in kids) if value > 0 else 0.0
        if own <= 1e-9 * max(value, 1.0):
            continue
        label = re.sub(r"\.\d+(?=\.|$)", ".*", short_module(name)) + (" (own ops)" if kids else "")
        g = groups.setdefault(label, [0, 0.0])
        g[0] += 1
        g[1] += own
    return sorted(((label, int(g[0]), g[1]) for label, g in groups.items()), key=lambda x: -x[2])


def memory_shares(a: Assessment) -> list[MemoryShare]:
    """Training, inference and generation memory per device split into parts that add up to the figures of
    `a.to_dict()`: the training share re-derives the layout's sharding with estimate.parallel (the estimate's
    own rule), for the job's layout on its device."""
    from afford.estimate.job import live_peaks
    from afford.estimate.parallel import train_memory_per_device

    mem, t = a.memory, a.trace
    # the device's usable memory once an estimate exists (to_dict()'s memory.usable_bytes); None before
    usable = a.estimate.data["memory"].get("usable_bytes") if a.estimate is not None else None
    out: list[MemoryShare] = []
    # the training share whenever the per-device figure is the training one (estimate/job.py: a training job, or
    # no job at all)
    w = a.workload
    if t.backward is not None and a.estimate is not None and (w.wants_training or not w.infer_samples):
        lay = a.estimate.req.layout
        states = mem.optimizer_bytes + mem.master_weights_bytes
        dm = train_memory_per_device(lay, weights=mem.weights_bytes + mem.buffers_bytes,
                                     gradients=mem.gradients_bytes, optimizer=states,
                                     live=live_peaks(a, a.estimate.req.recompute, []))
        master = mem.master_weights_bytes / states if states else 0.0
        saved = min(t.saved_activations_bytes * lay.activation_scale, dm.activations_bytes)
        label = f"training ({lay.count} x {a.estimate.req.device.id}" + (
            f", {lay.parallel.value}" if lay.count > 1 else "") + ")"
        out.append(MemoryShare(label, [("weights", dm.weights_bytes), ("gradients", dm.gradients_bytes),
                                       ("master weights", dm.optimizer_bytes * master),
                                       ("optimizer state", dm.optimizer_bytes * (1 - master)),
                                       ("activations", saved),
                                       ("other live tensors", dm.activations_bytes - saved)], usable))
    static = mem.weights_bytes + mem.buffers_bytes
    out.append(MemoryShare("inference", [("weights", static), ("other live tensors", mem.infer_peak_bytes - static)],
                           usable))
    if mem.generate_peak_bytes:
        out.append(MemoryShare("generation", [("weights", static), ("KV cache", mem.kv_cache_bytes),
                                              ("other live tensors",
                                               max(mem.generate_peak_bytes - static - mem.kv_cache_bytes, 0))],
                               usable))
    return out
