"""Memory per device for training and inference, from the trace's measured bytes and the optimizer's rules.

Weights, gradients and activations are measured by the trace; optimizer state and fp32 master weights follow
the optimizer's published storage rule per parameter shape (docs/methodology.md, "Memory").
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from afford.counting.profile import Trace
from afford.workload import Optimizer, Precision

# bitsandbytes' block-wise 8-bit optimizers: 8-bit states in blocks of 2048 values, one fp32 absmax per block;
# tensors under 4096 elements keep 32-bit states (Dettmers et al. 2022, "8-bit Optimizers via Block-wise
# Quantization", sec. 2; bitsandbytes `min_8bit_size=4096`, `blocksize=2048`).
ADAM_8BIT_BLOCK = 2048
ADAM_8BIT_MIN_SIZE = 4096
# FBGEMM's row-wise Adagrad keeps its per-row state in float32 whatever the weights' precision
# (fbgemm_gpu split_table_batched_embeddings_ops_training.py: momentum1 `dtype=torch.float32`, `rows` values per
# table when `rowwise`, `rows x dim` otherwise).
ROWWISE_STATE_BYTES = 4


def optimizer_state_bytes(shapes: list[tuple[tuple[int, ...], bool]], optimizer: Optimizer,
                          precision: Precision, tables: Collection[int] = ()) -> int:
    """Bytes of optimizer state for the trainable parameters, exact per shape.

    sgd: none; sgd-momentum: one buffer; adam/adamw: two moments (Kingma & Ba 2015); adam-8bit: two 8-bit
    moments plus block absmax; adafactor: factored second moment, row and column sums of each matrix, no
    first moment (Shazeer & Stern 2018, beta1 = 0, the paper's and transformers' default); adagrad: one sum of
    squared gradients per value (torch.optim.Adagrad `state["sum"]`, the parameter's shape and dtype);
    rowwise-adagrad: one fp32 sum per ROW of the embedding tables at positions `tables` (FBGEMM
    EmbOptimType.EXACT_ROWWISE_ADAGRAD: `momentum1` of `rows` float32 values per table), full Adagrad for
    every other parameter.
    """
    s = precision.state_bytes
    rowwise = set(tables) if optimizer is Optimizer.ROWWISE_ADAGRAD else set()
    total = 0
    for i, (shape, trainable) in enumerate(shapes):
        if not trainable:
            continue
        n = math.prod(shape) if shape else 1
        if optimizer is Optimizer.SGD:
            continue
        if i in rowwise and shape:
            total += shape[0] * ROWWISE_STATE_BYTES
        elif optimizer in (Optimizer.SGD_MOMENTUM, Optimizer.ADAGRAD, Optimizer.ROWWISE_ADAGRAD):
            total += n * s
        elif optimizer in (Optimizer.ADAM, Optimizer.ADAMW):
            total += 2 * n * s
        elif optimizer is Optimizer.ADAM_8BIT:
            if n < ADAM_8BIT_MIN_SIZE:
                total += 2 * n * 4
            else:
                total += 2 * (n + 4 * math.ceil(n / ADAM_8BIT_BLOCK))
        elif optimizer is Optimizer.ADAFACTOR:
            if len(shape) >= 2:
                lead = math.prod(shape[:-2]) if len(shape) > 2 else 1
                total += lead * (shape[-2] + shape[-1]) * 4
            else:
                total += n * 4
    return total


def gradient_share(trace: Trace) -> float:
    """Share of the trainable parameters' bytes that a step's gradients hold: 1 for dense gradients, the rows a
    batch looked up for sparse embedding gradients (docs/recsys.md). The optimizer step reads and writes the
    weights and states of those values only (torch.optim's sparse paths, FBGEMM's fused row updates)."""
    trainable = trace.weights_bytes * trace.trainable_params / trace.params if trace.params else 0.0
    return min(1.0, trace.gradients_bytes / trainable) if trainable else 0.0


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per device, for the model replicated on one device (no sharding)."""

    weights_bytes: int
    buffers_bytes: int
    gradients_bytes: int
    master_weights_bytes: int
    optimizer_bytes: int
    activations_bytes: int
    kv_cache_bytes: int
    train_peak_bytes: int
    infer_peak_bytes: int
    generate_peak_bytes: int


def memory(trace: Trace, optimizer: Optimizer, precision: Precision, training: bool) -> MemoryBreakdown:
    """Memory of one training step and one inference batch at the traced batch size. A step traced as torch.amp
    runs it (--amp) holds fp32 weights, which are their own master copy, and fp32 gradients (traced)."""
    fp32_weights = trace.weights_bytes * 4 // precision.compute_dtype.itemsize  # the weights torch.amp holds
    weights = fp32_weights if trace.amp else trace.weights_bytes
    master = 4 * trace.trainable_params if precision.mixed and not trace.amp else 0
    optim = optimizer_state_bytes(trace.param_shapes, optimizer, precision, trace.embedding_params)
    static = weights + trace.buffers_bytes
    # Live bytes during forward+backward hold activations, temporaries and gradients as they appear; after
    # backward the gradients stay for the optimizer step.
    step_live = max(trace.train_peak_live_bytes, trace.gradients_bytes)
    train_peak = static + master + optim + step_live if training and trace.trainable_params else 0
    # eager AMP inference (an autocast-traced batch) holds the weights in fp32; its 16-bit casts are live bytes
    weights_infer = fp32_weights if trace.infer.autocast else trace.weights_bytes
    infer_peak = weights_infer + trace.buffers_bytes + trace.infer.peak_live_bytes
    gen_live = max((p.peak_live_bytes for p in (trace.prefill, trace.decode) if p is not None), default=0)
    generating = trace.decode is not None or trace.generation is not None
    generate_peak = trace.weights_bytes + trace.buffers_bytes + gen_live if generating else 0  # 16-bit weights
    return MemoryBreakdown(weights_bytes=weights, buffers_bytes=trace.buffers_bytes,
                           gradients_bytes=trace.gradients_bytes if training else 0,
                           master_weights_bytes=master if training else 0,
                           optimizer_bytes=optim if training else 0,
                           activations_bytes=trace.saved_activations_bytes if training else 0,
                           kv_cache_bytes=trace.kv_cache_bytes, train_peak_bytes=train_peak,
                           infer_peak_bytes=infer_peak, generate_peak_bytes=generate_peak)
