"""Emulated CUDA autocast on meta (counting/autocast.py): the mixed-precision inference pass runs each op in the
dtype autocast's lists give it, with its casts as kernels, and falls back to the 16-bit trace when refused."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch import nn

import afford
from afford.counting.autocast import autocast
from afford.estimate.runtime import weight_casts

N, D = 32, 64


class _Block(nn.Module):
    """x (fp32 input) -> conv-free pre-norm block: LayerNorm -> linear -> softmax, plus an fp32 layer scale."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(D)
        self.fc = nn.Linear(D, D)
        self.scale = nn.Parameter(torch.ones(D))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * torch.softmax(self.fc(self.norm(x)), dim=-1)


def _assess(model: nn.Module, precision: str) -> Any:
    return afford.assess(model, example_inputs=(torch.zeros(N, D, device="meta"),), infer_samples=N, batch_size=N,
                         forward_only=True, precision=precision)


def test_autocast_lists_on_meta_match_cuda_autocast() -> None:
    """The dtypes CUDA autocast gives (ATen/autocast_mode.h): 16-bit matmul and conv from fp32 operands, fp32
    LayerNorm and softmax from 16-bit inputs, promotion elsewhere."""
    with torch.device("meta"):
        fc, norm, conv = nn.Linear(D, D), nn.LayerNorm(D), nn.Conv2d(3, 8, 3)
        x = torch.zeros(N, D)
        with autocast(torch.float16):
            y = fc(x)  # fp32 input, weight and bias: cast, run in fp16
            z = norm(y)  # fp16 input: cast up, fp32 out
            s = torch.softmax(y, dim=-1)  # fp16 in, fp32 out (one kernel)
            r = z + y  # promotion: fp32
            g = torch.nn.functional.gelu(y)  # not listed: stays fp16
            c = conv(torch.zeros(2, 3, 9, 9))  # the conv composite checks dtypes first: cast at F.conv2d
            b = torch.zeros(N, D, dtype=torch.bfloat16).sum(-1)  # sums write fp32
    assert (y.dtype, z.dtype, s.dtype, r.dtype, g.dtype, c.dtype, b.dtype) == (
        torch.float16, torch.float32, torch.float32, torch.float32, torch.float16, torch.float16, torch.float32)


def test_a_broadcast_operand_is_cast_before_it_is_expanded() -> None:
    """matmul can run bmm over a linear layer's weight expanded to the batch; autocast cast that weight before the
    expansion, so the cast moves the weight's own elements, not one copy per batch entry."""
    from afford.counting.engine import Counter, LiveBytes

    with torch.device("meta"):
        a, w = torch.zeros(N, 8, D, dtype=torch.float16), torch.zeros(D, D)
        counter = Counter(LiveBytes(set()))
        with counter:
            counter.start_phase("infer")
            with autocast(torch.float16):
                out = torch.bmm(a, w.expand(N, D, D))
            phase = counter.finish_phase()
    assert out.dtype == torch.float16
    casts = {k: c for k, c in phase.events.items() if k[0] == "_to_copy"}
    assert casts == {("_to_copy", 0, 6 * D * D): 1}  # fp32 to fp16: 6 bytes an element, the weight once


def test_mixed_precision_inference_traces_the_casts_and_fp32_traffic() -> None:
    with torch.device("meta"):
        model = _Block()
    mixed, half = _assess(model, "fp16-mixed").trace.infer, _assess(model, "fp16").trace.infer
    assert mixed.autocast and not half.autocast
    # LayerNorm reads the fp32 input as it is; the matmul casts its three operands (the fp32 norm output, the
    # weight and the bias) to fp16; the 16-bit trace casts only its input
    assert mixed.by_op["_to_copy"].calls == 3 and half.by_op["_to_copy"].calls == 1
    assert mixed.flops == half.flops  # the math is the same; only bytes and kernels change
    assert mixed.bytes_moved > 1.4 * half.bytes_moved  # fp32 norm, softmax output, scale and residual
    # the traced casts replace the per-call weight-cast estimate of an untraced phase
    assert weight_casts(mixed, True) == 0 and weight_casts(half, True) == 1


def test_amp_inference_memory_holds_fp32_weights_and_the_flag_survives_the_disk_cache() -> None:
    from afford import tracecodec

    with torch.device("meta"):
        model = _Block()
    a = _assess(model, "bf16-mixed")
    params = sum(p.numel() for p in model.parameters())
    assert a.memory.weights_bytes == 2 * params  # the 16-bit training copy
    assert a.memory.infer_peak_bytes >= 4 * params + a.trace.infer.peak_live_bytes
    kept = tracecodec.Traced(dims=a.dims, trace=a.trace, memory=a.memory, module_params=a.module_params, notes=[])
    assert tracecodec.loads(tracecodec.dumps(kept)).trace.infer.autocast


class _Refuses(nn.Module):
    """A model whose fp32 pass fails on meta (stands for an op whose meta kernel refuses the emulated dtypes)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(D, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fc.weight.dtype == torch.float32:
            raise RuntimeError("Tensor on device meta is not on the expected device")
        return self.fc(x)


def test_a_refused_autocast_pass_falls_back_to_the_16_bit_trace() -> None:
    with torch.device("meta"):
        model = _Refuses()
    a = _assess(model, "bf16-mixed")
    phase = a.trace.infer
    assert not phase.autocast and phase.flops == 2 * N * D * D
    assert "failed under autocast and is traced in 16 bits" in phase.autocast_note
    assert any("mixed-precision inference: the batch failed under autocast" in n for n in a.notes)


def test_an_op_refused_in_autocast_dtypes_runs_as_traced_and_is_named(monkeypatch: Any) -> None:
    import afford.counting.autocast as ac

    def refuse(dtype: torch.dtype, only: Any = None) -> Any:
        def cast(t: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("refused")
        return cast

    monkeypatch.setattr(ac, "caster", refuse)
    with torch.device("meta"):
        fc, x = nn.Linear(D, D).half(), torch.zeros(N, D, dtype=torch.float16)
        with autocast(torch.float16) as mode:
            y = fc(x)
    assert y.dtype == torch.float16 and mode.refused == {"linear"}  # F.linear, where autocast casts


class _Mixed(nn.Module):
    """conv -> GroupNorm -> ReLU -> LayerNorm -> linear -> softmax, with an fp32 layer scale on a residual."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.gn = nn.GroupNorm(2, 8)
        self.ln = nn.LayerNorm(8 * 4 * 4)
        self.fc = nn.Linear(8 * 4 * 4, 8 * 4 * 4)
        self.gamma = nn.Parameter(torch.ones(8 * 4 * 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.gn(self.conv(x))).flatten(1)
        return h + self.gamma * torch.softmax(self.fc(self.ln(h)), dim=-1)


def _signature(run: Any, inside: Any = None) -> dict[tuple[str, str, str], int]:
    """(op, input dtypes, output dtype) -> calls of the aten ops `run` dispatches (under the mode `inside`, which
    sees them first), views and metadata left out."""
    from collections import Counter

    from torch.utils._python_dispatch import TorchDispatchMode

    seen: Counter[tuple[str, str, str]] = Counter()
    skip = {"device", "view", "t", "_unsafe_view", "detach", "alias", "expand", "as_strided"}

    class _Log(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            name = func._overloadpacket.__name__
            first = out[0] if isinstance(out, (tuple, list)) else out
            if name not in skip and isinstance(first, torch.Tensor):
                ins = ",".join(str(a.dtype)[6:] for a in args if isinstance(a, torch.Tensor))
                seen[(name, ins, str(first.dtype)[6:])] += 1
            return out

    from contextlib import nullcontext

    with _Log(), inside if inside is not None else nullcontext():
        run()
    return dict(seen)


@contextmanager
def _cuda_autocast() -> Iterator[None]:
    """PyTorch's own CUDA autocast to fp16, switched on by hand: `torch.autocast("cuda")` turns itself off on a
    machine without CUDA, but its dispatch keys act on fake CUDA tensors all the same."""
    torch.set_autocast_enabled("cuda", True)
    torch.set_autocast_dtype("cuda", torch.float16)
    torch.autocast_increment_nesting()
    try:
        yield
    finally:
        torch.autocast_decrement_nesting()
        torch.clear_autocast_cache()
        torch.set_autocast_enabled("cuda", False)


def test_the_emulation_dispatches_what_cuda_autocast_dispatches() -> None:
    """The same module under PyTorch's own CUDA autocast (fake CUDA tensors, no GPU needed) and under the
    emulation on meta: every op runs with the same input and output dtypes, casts included."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    cpu_model = _Mixed().eval()
    with FakeTensorMode(allow_non_fake_inputs=True):
        cuda_model = cpu_model.to("cuda")
        x = torch.zeros(2, 3, 4, 4, device="cuda")
        with _cuda_autocast(), torch.no_grad():
            real = _signature(lambda: cuda_model(x))
    with torch.device("meta"):
        meta_model, y = _Mixed().eval(), torch.zeros(2, 3, 4, 4)
    with torch.no_grad():
        emulated = _signature(lambda: meta_model(y), autocast(torch.float16))
    assert emulated == real


def test_bf16_softmax_is_cast_up_then_run_in_fp32() -> None:
    """CUDA's softmax writes fp32 from a Half input in one kernel, but casts a bfloat16 input up first
    (SoftMax.cpp): the bf16 autocast pass no longer fails on the meta kernel's Half-only check."""
    with torch.device("meta"):
        x = torch.zeros(N, D, dtype=torch.bfloat16)
        with autocast(torch.bfloat16):
            s = torch.softmax(x, dim=-1)
        with autocast(torch.float16):
            h = torch.softmax(x.half(), dim=-1)
    assert s.dtype == h.dtype == torch.float32
    a = _assess(_Block(), "bf16-mixed")
    assert a.trace.infer.autocast and not a.trace.infer.autocast_note


def test_a_failed_autocast_pass_leaves_nothing_behind() -> None:
    """A model whose autocast pass fails is traced in 16 bits; the tensors the failed pass made (here one it
    keeps on the module) are not counted in the 16-bit pass's peak, which equals a plain fp16 job's."""

    class Refuses(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(D, D)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.kept = torch.zeros(N, 4096, device=x.device)  # a cache the module holds on to
            if x.dtype == torch.float32:
                raise RuntimeError("refuses fp32 inputs")
            return self.fc(x)

    mixed, plain = _assess(Refuses(), "fp16-mixed"), _assess(Refuses(), "fp16")
    assert not mixed.trace.infer.autocast and "failed under autocast" in mixed.trace.infer.autocast_note
    assert mixed.trace.infer.peak_live_bytes == plain.trace.infer.peak_live_bytes


def test_an_amp_training_step_dispatches_what_cuda_autocast_dispatches() -> None:
    """A training step's forward (with the loss) under PyTorch's CUDA autocast (fake CUDA tensors, weights that
    require grad, so their casts are cached) and under the emulation on meta dispatch the same ops in the same
    dtypes. Backward runs after the region, as torch.amp's recipe runs it: the casts sit above autograd, so it
    sees the 16-bit copies autograd saved and casts the weights' 16-bit gradients back to fp32 (autograd's
    engine needs a real device for fake CUDA tensors, so backward is checked on meta alone)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    def forward(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(x), target)

    cpu_model = _Mixed().train()
    with FakeTensorMode(allow_non_fake_inputs=True):
        cuda_model = cpu_model.to("cuda")
        x, target = torch.zeros(2, 3, 4, 4, device="cuda"), torch.zeros(2, dtype=torch.long, device="cuda")
        with _cuda_autocast():
            real = _signature(lambda: forward(cuda_model, x, target))
    with torch.device("meta"):
        meta_model, y, t = _Mixed().train(), torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long)
    region = autocast(torch.float16, backstop=False)
    losses: list[torch.Tensor] = []
    emulated = _signature(lambda: losses.append(forward(meta_model, y, t)), region)
    assert emulated == real
    backward = _signature(lambda: losses[0].backward())
    assert {n: p.grad.dtype for n, p in meta_model.named_parameters()} == {
        n: torch.float32 for n, _ in meta_model.named_parameters()}
    # the weight gradients come out of the matmul and the conv in fp16 and are cast up, one cast per weight
    assert backward[("_to_copy", "float16", "float32")] >= 3
    assert all("float16,float32" not in ins and "float32,float16" not in ins
               for (op, ins, _), _n in backward.items() if op in ("mm", "convolution_backward"))


class _Functions(nn.Module):
    """Listed functions reached through Python wrappers and Tensor operators: F.normalize, Tensor.norm, **,
    Tensor.exp, F.interpolate, einsum, a bf16-safe sum, and a bilinear upsample of a 16-bit conv output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)  # fp16
        h = torch.nn.functional.interpolate(h, scale_factor=2.0, mode="bilinear")  # fp32
        h = torch.nn.functional.normalize(self.conv(h[:, :3]), dim=1)  # fp32 from an fp16 input
        n = h.norm(dim=1, keepdim=True) + (h ** 2).exp().sum()
        e = torch.einsum("bchw,bchw->bc", h, h)
        pooled = torch.nn.functional.adaptive_avg_pool2d(h * n, 8).flatten(1)
        return self.fc(pooled) + e.sum(-1, keepdim=True)


def test_functions_behind_python_wrappers_and_operators_match_cuda_autocast() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    cpu_model = _Functions().train()
    with FakeTensorMode(allow_non_fake_inputs=True):
        cuda_model = cpu_model.to("cuda")
        x = torch.zeros(2, 3, 4, 4, device="cuda")
        with _cuda_autocast():
            real = _signature(lambda: cuda_model(x))
    with torch.device("meta"):
        meta_model, y = _Functions().train(), torch.zeros(2, 3, 4, 4)
    region = autocast(torch.float16, backstop=False)
    emulated = _signature(lambda: meta_model(y), region)
    assert emulated == real


def _train(model: nn.Module, precision: str = "bf16-mixed", **kw: Any) -> Any:
    return afford.assess(model, example_inputs=(torch.zeros(N, D, device="meta"),), train_samples=N, batch_size=N,
                         precision=precision, optimizer="adamw", **kw)


def test_an_amp_step_holds_fp32_weights_and_gradients_and_no_master_copy() -> None:
    with torch.device("meta"):
        model = _Block()
    params = sum(p.numel() for p in model.parameters())
    amp, plain = _train(model, amp=True), _train(model)
    assert amp.trace.amp and not plain.trace.amp
    m, p = amp.memory, plain.memory
    assert (m.weights_bytes, m.gradients_bytes, m.master_weights_bytes) == (4 * params, 4 * params, 0)
    assert (p.weights_bytes, p.gradients_bytes, p.master_weights_bytes) == (2 * params, 2 * params, 4 * params)
    assert m.optimizer_bytes == p.optimizer_bytes == 8 * params
    # each weight is cast once in forward and its gradient once in backward; the 16-bit step casts only its input
    fwd, bwd = amp.trace.forward.by_op["_to_copy"].calls, amp.trace.backward.by_op["_to_copy"].calls
    assert fwd >= 3 and bwd >= 2 and "_to_copy" not in plain.trace.backward.by_op
    # the cached 16-bit weights are saved for backward but are not activations
    assert amp.trace.saved_activations_bytes < plain.trace.saved_activations_bytes + 4 * N * D * 4
    assert amp.trace.forward.flops == plain.trace.forward.flops  # the math is the same


def test_fp16_amp_adds_grad_scalers_unscale_pass_to_the_optimizer_step() -> None:
    """GradScaler.unscale_ reads and writes every fp32 gradient once more before an fp16 AMP step; bf16 needs no
    loss scaling: AdamW's traffic 4 + 2 x 4 + 2 x 8 = 28 bytes a parameter becomes 36 (same trace otherwise)."""
    with torch.device("meta"):
        model = _Block()
    fp16, bf16 = _train(model, precision="fp16-mixed", amp=True), _train(model, amp=True)
    opt16, optbf = (a.estimate.data["time"]["train_step_breakdown"]["optimizer_seconds"] for a in (fp16, bf16))
    assert opt16 == pytest.approx(optbf * 36 / 28, rel=1e-9)


def test_amp_needs_a_mixed_precision() -> None:
    from afford.errors import WorkloadError

    with torch.device("meta"):
        model = _Block()
    try:
        _train(model, precision="fp32", amp=True)
    except WorkloadError as exc:
        assert "amp is torch.amp" in str(exc) and "fp16-mixed or bf16-mixed" in str(exc)
    else:
        raise AssertionError("--amp with fp32 was accepted")


def test_an_amp_step_the_meta_device_refuses_falls_back_to_the_16_bit_step() -> None:
    with torch.device("meta"):
        model = _Refuses()
    a = _train(model, amp=True)
    assert not a.trace.amp and a.memory.master_weights_bytes == 4 * sum(p.numel() for p in model.parameters())
    assert any("torch.amp training step: the training step failed under autocast" in n for n in a.notes)


def test_a_broadcast_operand_is_read_once() -> None:
    """Under autocast in eval (a cast weight does not require grad) matmul runs a 3-d input whose leading dims do
    not merge against the weight as bmm over the weight expanded to the batch, as PyTorch's matmul does; the kernel
    reads the weight's own elements (its repeats come from cache), so the event's bytes hold the weight once."""
    from afford.counting.engine import Counter, LiveBytes

    with torch.device("meta"):
        x, w = torch.zeros(8, N, D).transpose(0, 1), torch.zeros(D, D).requires_grad_()  # (N, 8, D), not mergeable
        counter = Counter(LiveBytes(set()))
        with counter, torch.no_grad():
            counter.start_phase("infer")
            with autocast(torch.float16):
                out = torch.matmul(x, w)
            phase = counter.finish_phase()
    assert out.dtype == torch.float16
    (key,) = [k for k in phase.events if k[0] in ("bmm", "mm")]
    assert key[0] == "bmm" and key[2] == 2 * (N * 8 * D + D * D + N * 8 * D)  # input, the weight once, output
