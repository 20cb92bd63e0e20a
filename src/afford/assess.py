"""The Assessment: what tracing a model for a job measured (compute, memory, per module), and the steps that
make one (`prepare`, `traced_assessment`). The pipeline that adds hardware and a verdict is `afford.api.assess`.

C_train = N x (C_forward + C_backward), C_infer = M x C_forward, N and M counted in samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from afford.counting.profile import GenerationProfile, PhaseProfile, Trace
from afford.counting.trace import trace as run_trace
from afford.errors import TraceError, WorkloadError, flag, opt
from afford.estimate.memory import MemoryBreakdown, memory
from afford.estimate.request import Estimate
from afford.sources import ModelKind, ModelSpec, resolve
from afford.sources.base import Dims
from afford.workload import Task, Workload

CONVENTION = ("FLOPs count 2 per multiply-accumulate for matmul, convolution and attention ops (PyTorch's "
              "torch.utils.flop_counter registry); element-wise ops, norms and softmax count 0 FLOPs and are "
              "listed in coverage.uncounted_ops. Attention counts the full score matrix; "
              "*_useful figures drop the score entries a causal or sliding-window mask discards.")
MAX_DEPTH = 1000  # levels of the module tree shown


@dataclass
class Assessment:
    """The result of `assess`: the resolved model, the job, what the trace measured and memory per device."""

    spec: ModelSpec
    workload: Workload
    dims: Dims
    trace: Trace
    memory: MemoryBreakdown
    module_params: dict[str, int]
    depth: int = 2
    notes: list[str] = field(default_factory=list)
    estimate: Estimate | None = None
    decision: Any = None  # a decide.run.PlanResult when a budget was given
    inference_memory: dict[str, Any] | None = None  # --weights/--kv-cache-dtype: estimate/formats.inference_memory
    serving: dict[str, Any] | None = None  # generation on a GPU: estimate/serving.serve (JSON `serve`)

    # --- per-sample figures -------------------------------------------------------------------------------
    def _per_sample(self, phase: PhaseProfile | None, attr: str = "flops") -> float:
        if phase is None:
            return 0
        value = getattr(phase, attr)
        return value / self.trace.batch_size

    @property
    def forward_flops(self) -> float:
        """Inference forward FLOPs per sample (eval mode)."""
        return self._per_sample(self.trace.infer)

    @property
    def train_forward_flops(self) -> float:
        """Training-mode forward FLOPs per sample (auxiliary heads and the loss included)."""
        return self._per_sample(self.trace.forward)

    @property
    def backward_flops(self) -> float:
        return self._per_sample(self.trace.backward)

    @property
    def train_samples_total(self) -> float:
        w = self.workload
        if w.train_tokens is not None:
            seq = self.dims.seq_len or 1
            return math.ceil(w.train_tokens / seq)
        if w.train_samples is not None:
            return w.train_samples * w.epochs
        return 0

    @property
    def train_flops(self) -> float:
        return self.train_samples_total * (self.train_forward_flops + self.backward_flops)

    @property
    def generation(self) -> GenerationProfile | None:
        """The traced generation request batch (--task generate), else None."""
        return self.trace.generation

    @property
    def flops_per_request(self) -> float:
        """--task generate: FLOPs of one request, its prefill and every decode step (docs/generation.md)."""
        g = self.generation
        return 0.0 if g is None else (g.prefill.flops + g.decode_flops) / self.trace.batch_size

    @property
    def infer_flops(self) -> float:
        """C_infer: M x C_forward, or M x the FLOPs of a request (prefill + decode steps) for --task generate."""
        per = self.flops_per_request if self.generation is not None else self.forward_flops
        return (self.workload.infer_samples or 0) * per

    def _infer_useful(self, fwd_masked: float) -> float:
        g = self.generation
        if g is None:
            return (self.workload.infer_samples or 0) * (self.forward_flops - fwd_masked)
        masked = (g.prefill.masked_attention_flops() + g.decode_masked_flops) / self.trace.batch_size
        return (self.workload.infer_samples or 0) * (self.flops_per_request - masked)

    def _generate_section(self) -> dict[str, Any]:
        """--task generate: the request as traced (prefill + G - 1 cached decode steps), per request and in all."""
        g, t, w = self.generation, self.trace, self.workload
        assert g is not None
        b = t.batch_size
        steps = sorted(g.steps.items())
        per_request = self.flops_per_request
        approx = 2 * t.params * (g.prompt_tokens + g.generate_tokens)
        encoder = g.prompt_tokens if self.spec.kind is ModelKind.SEQ2SEQ else self.spec.metadata.get(
            "encoder_positions")
        return {
            "prompt_tokens": g.prompt_tokens, "generate_tokens": g.generate_tokens,
            "requests": w.infer_samples or 0, "batch_size": b, "encoder_tokens": encoder,
            "decoder_prompt_tokens": g.kv_cache_tokens - max(g.generate_tokens - 1, 0),
            "decode_steps": max(g.generate_tokens - 1, 0), "traced_decode_steps": g.traced_steps,
            "closed_form": not g.every_step and bool(steps),
            "prefill_flops": g.prefill.flops / b, "decode_flops": g.decode_flops / b,
            "decode_step_flops_first": steps[0][1][0].flops / b if steps else 0,
            "decode_step_flops_last": steps[-1][1][0].flops / b if steps else 0,
            "flops_per_request": per_request,
            "flops_per_generated_token": per_request / g.generate_tokens,
            "flops_total": self.infer_flops,
            "approx_2n_flops_per_request": approx,
            "vs_approx_2n": per_request / approx - 1 if approx else None,
            "kv_cache_tokens": g.kv_cache_tokens, "kv_cache_bytes_per_request": g.kv_cache_bytes / b,
            "kv_cache_bytes": g.kv_cache_bytes,
        }

    def _masked(self, phase: PhaseProfile | None, backward: bool = False) -> float:
        return 0 if phase is None else phase.masked_attention_flops(backward) / self.trace.batch_size

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract (README, "JSON output"): nested sections, numbers unformatted."""
        t, w, mem = self.trace, self.workload, self.memory
        tokens = self.dims.seq_len if self.spec.kind.uses_tokens or self.spec.kind is ModelKind.SPEECH_SEQ2SEQ else None
        fwd_masked = self._masked(t.infer)
        bwd_masked = self._masked(t.forward, backward=True) if t.backward is not None else 0
        train_masked = self._masked(t.forward) + bwd_masked
        out: dict[str, Any] = {
            "model": {
                "name": self.spec.name, "source": self.spec.source, "kind": self.spec.kind.value,
                "params": t.params, "trainable_params": t.trainable_params,
                "published_params": self.spec.metadata.get("published_params"),
                "max_seq_len": self.spec.max_seq_len, "native_image_size": self.spec.native_image_size,
            },
            "workload": {
                "train_samples": w.train_samples, "epochs": w.epochs, "train_tokens": w.train_tokens,
                "infer_samples": w.infer_samples, "batch_size": w.batch_size, "seq_len": self.dims.seq_len,
                "image_size": self.dims.image_size if not self.spec.kind.uses_tokens else None,
                "precision": w.precision.value, "optimizer": w.optimizer.value, "freeze": list(w.freeze),
            },
            "per_sample": {
                "forward_flops": self.forward_flops, "forward_macs": self.forward_flops / 2,
                "backward_flops": self.backward_flops, "backward_macs": self.backward_flops / 2,
                "train_forward_flops": self.train_forward_flops,
                "attention_flops": self._per_sample_attention(t.infer),
                "forward_flops_useful": self.forward_flops - fwd_masked,
                "backward_flops_useful": self.backward_flops - bwd_masked,
                "tokens": tokens,
            },
            "compute": {
                "train_samples": self.train_samples_total, "train_flops": self.train_flops,
                "train_flops_useful": self.train_samples_total * (
                    self.train_forward_flops + self.backward_flops - train_masked),
                "infer_samples": w.infer_samples or 0, "infer_flops": self.infer_flops,
                "infer_flops_useful": self._infer_useful(fwd_masked),
            },
            "memory": {
                "weights_bytes": mem.weights_bytes, "buffers_bytes": mem.buffers_bytes,
                "gradients_bytes": mem.gradients_bytes, "master_weights_bytes": mem.master_weights_bytes,
                "optimizer_bytes": mem.optimizer_bytes, "activations_bytes": mem.activations_bytes,
                "kv_cache_bytes": mem.kv_cache_bytes, "train_peak_bytes": mem.train_peak_bytes,
                "infer_peak_bytes": mem.infer_peak_bytes, "generate_peak_bytes": mem.generate_peak_bytes,
                "batch_size": t.batch_size,
            },
            "coverage": self._coverage(),
            **({k: v for k, v in self.estimate.data.items() if k != "memory"} if self.estimate else {}),
            "modules": self.module_rows(),
            "notes": list(self.notes),
        }
        if self.estimate is not None:
            out["memory"].update(self.estimate.data["memory"])
        if self.inference_memory is not None:
            out["memory"]["inference"] = dict(self.inference_memory)
        if self.generation is not None:
            out["generate"] = {**self._generate_section(), **out.get("generate", {})}
        if self.serving is not None:
            out["serve"] = dict(self.serving)
        if self.decision is not None:
            decided = self.decision.to_dict()
            out["verdict"], out["plans"] = decided["verdict"], decided["plans"]
        if tokens:
            out["per_token"] = {
                "forward_flops": self.forward_flops / tokens,
                "train_flops": (self.train_forward_flops + self.backward_flops) / tokens,
                "train_flops_useful": (self.train_forward_flops + self.backward_flops - train_masked) / tokens,
            }
        if t.decode is not None:
            out["decode"] = {
                "context_tokens": t.kv_cache_tokens,
                "flops_per_token": t.decode.flops / t.batch_size,
                "prefill_flops": t.prefill.flops / t.batch_size if t.prefill else 0,
                "kv_cache_bytes_per_token": t.kv_cache_bytes / max(t.kv_cache_tokens * t.batch_size, 1),
            }
        return out

    def to_json(self, indent: int | None = 2) -> str:
        """The CLI's `--json` object as strict JSON text (`to_dict()` through the CLI's one serializer)."""
        from afford.display import dumps

        return dumps(self.to_dict(), indent)

    def __repr__(self) -> str:
        """The terminal's one screen as plain text (drawn by report/); one line if drawing it fails."""
        from afford.display import screen

        return screen(self, lambda: f"<Assessment {self.spec.name}: {self.trace.params:,} params>")

    def _repr_html_(self) -> str:
        """Rich display in Jupyter: the same page as `--report PATH.html`, without the page chrome."""
        from afford.display import render

        return str(render("repr_html", self))

    def to_dataframe(self) -> Any:
        """A pandas DataFrame of the result's rows (pandas is optional: `pip install afford[notebook]`)."""
        from afford.display import render

        return render("to_dataframe", self)

    def _per_sample_attention(self, phase: PhaseProfile) -> float:
        return phase.attention_flops() / self.trace.batch_size

    def _coverage(self) -> dict[str, Any]:
        uncounted: dict[str, int] = {}
        counted: dict[str, int] = {}
        for phase in self._phases():
            for op, calls in phase.uncounted.items():
                uncounted[op] = uncounted.get(op, 0) + calls
            for op, stat in phase.by_op.items():
                if stat.flops:
                    counted[op] = counted.get(op, 0) + stat.calls
        return {"uncounted_ops": dict(sorted(uncounted.items())), "counted_ops": dict(sorted(counted.items())),
                "formulas_added": self.trace.extra_registered, "convention": CONVENTION}

    def _phases(self) -> list[PhaseProfile]:
        t = self.trace
        return [p for p in (t.forward, t.backward, t.infer, t.prefill, t.decode) if p is not None]

    def module_rows(self, depth: int | None = None) -> list[dict[str, Any]]:
        """The per-module tree down to `depth` (0 = the whole model), in model order."""
        limit = self.depth if depth is None else depth
        t = self.trace
        fwd = t.forward.by_module if t.backward is not None else t.infer.by_module
        bwd = t.backward.by_module if t.backward is not None else {}
        rows = []
        for name, params in self.module_params.items():
            d = name.count(".")
            if d > limit:
                continue
            f, b = fwd.get(name, 0), bwd.get(name, 0)
            if f == 0 and b == 0 and params == 0:
                continue
            rows.append({"module": name, "depth": d, "params": params,
                         "forward_flops": f / t.batch_size, "backward_flops": b / t.batch_size})
        return rows


def _module_params(module: nn.Module) -> dict[str, int]:
    root = type(module).__name__
    out: dict[str, int] = {}
    for name, sub in module.named_modules():
        seen = {id(p): p.numel() for p in sub.parameters()}
        out[f"{root}.{name}" if name else root] = int(sum(seen.values()))
    return out


def batch_note(a: Assessment) -> str | None:
    """A note when the batch is larger than the training set of one epoch (the samples, or the sequences the
    tokens make): every step is then one partial batch, which the estimate times as a full one."""
    w = a.workload
    per_epoch = w.train_samples if w.train_samples is not None else (
        a.train_samples_total if w.train_tokens is not None else None)
    if not per_epoch or w.batch_size <= per_epoch:
        return None
    what = "training samples" if w.train_samples is not None else "training sequences (tokens / seq-len)"
    return (f"--batch-size {w.batch_size} is larger than the {per_epoch:,.0f} {what}: each epoch is one "
            f"partial batch, timed and priced here as a full batch of {w.batch_size}; a batch of at most "
            f"{per_epoch:,.0f} gives a closer estimate")


def traced_assessment(spec: ModelSpec, workload: Workload, dims: Dims, module: nn.Module, *, depth: int = 2,
                      notes: list[str] | None = None, infer: bool = True, decode: bool | None = None,
                      train: bool = True) -> Assessment:
    """Trace `module` (built from `spec`) for `workload` and measure its memory; no hardware yet. `train=False`
    traces no training step (`--forward-only`: counting many models)."""
    notes = [] if notes is None else notes
    dtype = workload.precision.compute_dtype
    want_decode = spec.decode is not None if decode is None else decode
    # --task generate: the request (prefill of P, G - 1 cached steps) replaces the one-step decode
    generate = (workload.prompt_tokens, workload.generate_tokens) if (
        infer and workload.task is Task.GENERATE and workload.prompt_tokens and workload.generate_tokens) else None
    want_decode = want_decode and generate is None
    try:
        traced = run_trace(spec, module, batch_size=workload.batch_size, dims=dims, dtype=dtype,
                           freeze=workload.freeze, train=train, decode=want_decode, infer=infer or not train,
                           generate=generate, autocast=workload.precision.mixed, amp=workload.amp_training)
    except TraceError as exc:
        if workload.wants_training:
            raise
        # an inference-only job must not fail because a training step would (e.g. BatchNorm at batch 1)
        traced = run_trace(spec, module, batch_size=workload.batch_size, dims=dims, dtype=dtype,
                           freeze=workload.freeze, train=False, decode=want_decode, infer=True, generate=generate,
                           autocast=workload.precision.mixed, amp=workload.amp_training)
        notes.append(f"training step not traced ({exc}); backward and training memory are 0")
    if traced.forward.autocast_note:
        notes.append(f"torch.amp training step: {traced.forward.autocast_note}")
    if traced.infer.autocast_note:
        notes.append(f"mixed-precision inference: {traced.infer.autocast_note}")
    if traced.trainable_params == 0 and workload.wants_training:
        notes.append("every parameter is frozen: training does no backward pass")
    if traced.forward.uncounted:
        notes.append("element-wise ops, norms and softmax are not counted as FLOPs (see coverage.uncounted_ops)")
    mem = memory(traced, workload.optimizer, workload.precision, training=True)
    return Assessment(spec=spec, workload=workload, dims=dims, trace=traced, memory=mem,
                      module_params=_module_params(module), depth=depth, notes=notes)


def prepare(model: Any, workload: Workload, *, trust_remote_code: bool = False, allow_hub: bool = False,
            notes: list[str] | None = None) -> tuple[ModelSpec, Dims]:
    """Resolve a model spec and the sample shape for a workload (validates seq-len against the model)."""
    spec = resolve(model, trust_remote_code=trust_remote_code, allow_hub=allow_hub)
    return spec, job_dims(spec, workload, [] if notes is None else notes)


def job_dims(spec: ModelSpec, w: Workload, notes: list[str]) -> Dims:
    kind = spec.kind
    text = kind.uses_tokens or kind is ModelKind.SPEECH_SEQ2SEQ
    if w.train_tokens is not None and not text:
        raise WorkloadError(f"{opt('train_tokens')} applies to language models; {spec.name} takes images, use "
                            f"{opt('train_samples')}")
    if w.seq_len is not None and not text:
        notes.append(f"--seq-len ignored: {spec.name} does not take token sequences")
    if w.image_size is not None and kind not in (ModelKind.IMAGE, ModelKind.VISION_TEXT):
        notes.append(f"--image-size ignored: {spec.name} does not take images")
    seq_len = w.seq_len
    if w.task is Task.GENERATE:
        default = _generation_dims(spec, w, notes)
        if seq_len is None and text:
            seq_len = default
            notes.append(f"seq-len (one forward pass, training) defaults to {default} tokens, prompt + generated; "
                         "set --seq-len")
    dims = spec.dims(seq_len if text else None, w.image_size)
    if text and dims.seq_len and spec.max_seq_len and dims.seq_len > spec.max_seq_len:
        if not w.allow_longer:
            raise WorkloadError(f"{opt('seq_len')} {dims.seq_len} exceeds {spec.name}'s maximum of "
                                f"{spec.max_seq_len} tokens; pass {opt('allow_longer')} to count it anyway")
        notes.append(f"seq-len {dims.seq_len} is beyond the model's maximum of {spec.max_seq_len} tokens")
    if text and seq_len is None and dims.seq_len:
        notes.append(f"seq-len defaults to {dims.seq_len} tokens (the model's maximum, capped); set --seq-len")
    return dims


def _generation_dims(spec: ModelSpec, w: Workload, notes: list[str]) -> int:
    """Check a --task generate job against the model: it must generate, and its positions fit (unless
    --allow-longer). Returns the sequence length of the one-forward and training figures: P + G, capped."""
    if spec.decode is None:
        article = "an" if spec.kind.value[0] in "aeiou" else "a"
        raise WorkloadError(f"{opt('task')} generate needs a causal or encoder-decoder language model; {spec.name} is "
                            f"{article} {spec.kind.value} model, which does not generate tokens")
    p, g = w.prompt_tokens or 0, w.generate_tokens or 0
    start = spec.decode.decoder_prompt(p) if spec.decode.decoder_prompt is not None else p
    limit = spec.max_seq_len
    name = opt if not w.allow_longer else flag  # an error names the caller's options; a note names flags
    over = []
    if limit and start + g > limit:
        what = f"{name('prompt_tokens')} {p} + {name('generate_tokens')} {g}" if start == p else (
            f"{start} decoder start token(s) + {name('generate_tokens')} {g}")
        over.append(f"{what} = {start + g} positions")
    if limit and spec.kind is ModelKind.SEQ2SEQ and p > limit:
        over.append(f"{name('prompt_tokens')} {p} (the encoder's source)")
    if over:
        if not w.allow_longer:
            raise WorkloadError(f"{'; '.join(over)} exceed {spec.name}'s maximum of {limit} positions; pass "
                                f"{opt('allow_longer')} to count it anyway")
        notes.append(f"{'; '.join(over)} beyond the model's maximum of {limit} positions")
    if not w.infer_samples:
        notes.append("--task generate without --infer-samples: figures per request only; give --infer-samples M "
                     "(requests) for the job's totals")
    return p + g if limit is None else min(p + g, limit)
