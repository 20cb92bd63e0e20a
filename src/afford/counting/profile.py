"""What a trace measured: FLOPs, bytes and memory by phase, op and module (plain data, no torch objects)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction


@dataclass
class OpStat:
    """Totals for one op name within one phase."""

    calls: int = 0
    flops: int = 0
    bytes: int = 0


@dataclass
class AttentionCall:
    """One scaled-dot-product attention call as traced, with the share of its score matrix a mask keeps."""

    module: str
    batch: int
    q_heads: int
    kv_heads: int
    q_len: int
    kv_len: int
    head_dim: int
    causal: bool
    window: int | None
    forward_flops: int
    backward_flops: int
    useful_fraction: float
    # what PyTorch's math path needs to run the call again (a CPU runs it so when dropout is on,
    # counting/mathpath.py): the dropout probability, the query's dtype, the value's head size (0: the query's)
    # and the attention mask's shape and dtype as passed (None: no mask)
    dropout_p: float = 0.0
    dtype: str = "float32"
    value_dim: int = 0
    mask: tuple[tuple[int, ...], str] | None = None


@dataclass
class EagerBlock:
    """The ops of one eager attention block in one phase: a module whose ops touched an S x S score tensor and ran a
    softmax over it (or its gradient), as HF's eager implementations do (matmul, mask/scale, softmax, matmul)."""

    events: dict[tuple[str, int, int], int] = field(default_factory=dict)  # (op, flops, bytes) -> calls
    flops: int = 0
    operand_bytes: int = 0  # bytes of the tensors those ops touch that are not S x S: Q, K, V, O (and gradients)
    calls: int = 0  # softmax (or softmax-gradient) calls: one fused attention kernel each
    heads: int = 0  # query heads and head size, from the score matmul's query operand (0 where not seen)
    head_dim: int = 0
    batch: int = 0  # the traced batch and S
    seq_len: int = 0
    causal: bool = False
    window: int | None = None


@dataclass
class PhaseProfile:
    """One traced phase (forward, backward, prefill or decode) of one batch."""

    name: str
    flops: int = 0
    by_op: dict[str, OpStat] = field(default_factory=dict)
    by_module: dict[str, int] = field(default_factory=dict)
    uncounted: dict[str, int] = field(default_factory=dict)
    # (op, flops, bytes) -> calls: the per-call shape of the work, for a roofline
    events: dict[tuple[str, int, int], int] = field(default_factory=dict)
    attention: list[AttentionCall] = field(default_factory=list)
    peak_live_bytes: int = 0
    bytes_moved: int = 0
    # eager attention blocks by module (counting/engine.py), and the live peak without their S x S tensors
    eager: dict[str, EagerBlock] = field(default_factory=dict)
    lean_peak_bytes: int = 0
    module_calls: int = 0  # nn.Module forward calls (each pays Python's module call in eager PyTorch)
    # ops (and, of them, kernels) a library issues from C++ inside one dispatched call, which the trace emulates op
    # by op (cuDNN's RNN, counting/rnn.py): a launch each, no Python dispatch; `library_calls` such calls
    library_ops: int = 0
    library_kernels: int = 0
    library_calls: int = 0
    # `events` as a fusing compiler runs them: element-wise chains as one kernel each (counting/fusion.py); empty
    # for phases a fusing runtime does not price (generation steps)
    fused_events: dict[tuple[str, int, int], int] = field(default_factory=dict)
    # event key -> per-thread loop length (N x C) of the calls a GPU runs in a kernel that loops over the batch
    # and the channels in every thread (counting/serial.py); eager PyTorch's kernels only
    serial: dict[tuple[str, int, int], int] = field(default_factory=dict)
    # event key -> thread blocks one call launches, in a GPU norm kernel that gives each row its own block
    # (counting/rowblocks.py); eager PyTorch's kernels only
    row_blocks: dict[tuple[str, int, int], int] = field(default_factory=dict)
    autocast: bool = False  # traced as eager autocast runs it (fp32 weights, per-op dtypes, the casts as kernels)
    # where a mixed-precision batch was not traced quite as autocast runs it: the ops the meta device refused in
    # autocast's dtypes (run as traced), or why the whole pass fell back to 16 bits; empty when it was
    autocast_note: str = ""

    @property
    def macs(self) -> int:
        """Multiply-accumulates: every counted op is a matmul, convolution or attention, 2 FLOPs per MAC."""
        return self.flops // 2

    def attention_flops(self, backward: bool = False) -> int:
        """FLOPs of this phase's attention calls (score and value matmuls), full matrix as PyTorch counts them;
        with `backward`, the FLOPs of their gradients (the backward phase itself records no calls)."""
        return sum(a.backward_flops if backward else a.forward_flops for a in self.attention)

    def masked_attention_flops(self, backward: bool = False) -> int:
        """FLOPs spent on score entries a causal or sliding-window mask discards (of the calls' gradients
        with `backward`)."""
        total = 0.0
        for a in self.attention:
            total += (a.backward_flops if backward else a.forward_flops) * (1.0 - a.useful_fraction)
        return round(total)


@dataclass
class GenerationProfile:
    """A traced generation batch: the prefill of P prompt tokens (it yields the first new token) and the G - 1
    cached decode steps after it, summed exactly from a few traced contexts (docs/generation.md)."""

    prompt_tokens: int
    generate_tokens: int
    prefill: PhaseProfile
    # cache length before a step -> (that step as traced, its weight in the exact sum over all steps)
    steps: dict[int, tuple[PhaseProfile, Fraction]] = field(default_factory=dict)
    decode_flops: int = 0  # all G - 1 steps of the batch
    decode_bytes: int = 0
    decode_masked_flops: int = 0  # attention score entries a mask discards, over all steps
    kv_cache_bytes: int = 0  # at the end of the request (batch)
    kv_cache_tokens: int = 0  # decoder positions cached at the end: decoder prompt + G - 1
    peak_live_bytes: int = 0
    traced_steps: int = 0  # decode steps actually traced (each at its own context)
    every_step: bool = False  # every step traced in sequence, no closed form

    @property
    def last_step(self) -> PhaseProfile | None:
        """The decode step at the longest context (None when G = 1: the prefill alone yields the token)."""
        return self.steps[max(self.steps)][0] if self.steps else None


@dataclass
class Trace:
    """Everything measured from one model at one batch shape."""

    batch_size: int
    params: int
    trainable_params: int
    weights_bytes: int
    buffers_bytes: int
    gradients_bytes: int
    saved_activations_bytes: int
    forward: PhaseProfile
    backward: PhaseProfile | None
    infer: PhaseProfile
    prefill: PhaseProfile | None = None
    decode: PhaseProfile | None = None
    kv_cache_bytes: int = 0
    kv_cache_tokens: int = 0
    train_peak_live_bytes: int = 0
    param_shapes: list[tuple[tuple[int, ...], bool]] = field(default_factory=list)
    # positions in param_shapes of embedding tables (nn.Embedding / nn.EmbeddingBag weights): row-wise
    # optimizers keep one state value per row of these
    embedding_params: list[int] = field(default_factory=list)
    extra_registered: list[str] = field(default_factory=list)
    generation: GenerationProfile | None = None  # --task generate: prefill + every decode step
    # what weight formats need to know (estimate/formats.py): parameter names in param_shapes' order, the linear
    # layers' weights as (position, in_features, out_features), and the position of the output head's weight
    # (the token embedding when the two are tied)
    param_names: list[str] = field(default_factory=list)
    linear_params: list[tuple[int, int, int]] = field(default_factory=list)
    output_param: int | None = None
    # the same without the S x S scores and probabilities of eager attention blocks (a fused kernel's memory)
    saved_score_bytes: int = 0
    train_lean_peak_bytes: int = 0

    @property
    def trainable_tensors(self) -> int:
        """Trainable parameter tensors: what an optimizer's per-tensor host work counts (estimate/runtime.py)."""
        return sum(1 for _, trainable in self.param_shapes if trainable)

    @property
    def amp(self) -> bool:
        """Whether the training step was traced as torch.amp runs it (--amp): fp32 weights and gradients."""
        return self.backward is not None and self.forward.autocast
