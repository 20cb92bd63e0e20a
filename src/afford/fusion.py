"""An Assessment with its attention priced as the kernel the job runs (estimate/attention.py `fuse`; on a CPU,
dropout's math path, `math_on_cpu`), and its memory measured again. Kept above assess.py and estimate/, which
it joins, so neither imports the other."""

from __future__ import annotations

from dataclasses import replace

from afford.assess import Assessment
from afford.errors import opt
from afford.estimate.attention import Attention, fuse, math_on_cpu
from afford.estimate.memory import memory
from afford.hardware.catalog import Device


def fuse_assessment(a: Assessment, kernel: Attention, device: Device | None = None) -> Assessment:
    """The assessment with its trace fused for `kernel` (on a CPU `device`, attention with dropout as its math
    path) and its memory measured again (the same when nothing changes); the assessment given is left as it is
    (it may be the trace cache's)."""
    fused = fuse(a.trace, kernel)
    notes = list(a.notes)
    if fused is not a.trace:
        blocks = max(len(p.eager) for p in (a.trace.forward, a.trace.backward, a.trace.infer) if p is not None)
        notes.append(f"{blocks} eager attention block(s) priced as the {kernel.value} kernel (same FLOPs, no S x S "
                     f"scores in memory); {opt('attention')} eager prices the model's own ops")
    if device is not None and device.kind == "cpu":
        on_cpu = math_on_cpu(fused)
        if on_cpu is not fused:
            notes.append("attention with dropout priced as PyTorch's math path, which a CPU runs it as (its flash "
                         "kernel refuses dropout): the S x S scores, softmax and dropout mask, saved for backward")
            fused = on_cpu
    if fused is a.trace:
        return a
    mem = memory(fused, a.workload.optimizer, a.workload.precision, training=True)
    return replace(a, trace=fused, memory=mem, notes=notes)
