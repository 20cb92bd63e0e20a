"""An Assessment with its eager attention priced as the kernel the job runs (estimate/attention.py `fuse`), and
its memory measured again. Kept above assess.py and estimate/, which it joins, so neither imports the other."""

from __future__ import annotations

from dataclasses import replace

from afford.assess import Assessment
from afford.errors import opt
from afford.estimate.attention import Attention, fuse
from afford.estimate.memory import memory


def fuse_assessment(a: Assessment, kernel: Attention) -> Assessment:
    """The assessment with its trace fused for `kernel` and its memory measured again (the same when nothing
    changes); the assessment given is left as it is (it may be the trace cache's)."""
    fused = fuse(a.trace, kernel)
    if fused is a.trace:
        return a
    mem = memory(fused, a.workload.optimizer, a.workload.precision, training=True)
    blocks = max(len(p.eager) for p in (a.trace.forward, a.trace.backward, a.trace.infer) if p is not None)
    note = (f"{blocks} eager attention block(s) priced as the {kernel.value} kernel (same FLOPs, no S x S scores in "
            f"memory); {opt('attention')} eager prices the model's own ops")
    return replace(a, trace=fused, memory=mem, notes=[*a.notes, note])
