"""Element-wise fusion (counting/fusion.py, estimate/runtime.py `as_run`): the fused events of a traced phase
against hand-derived kernels and bytes, and the runtimes that use them."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import afford
from afford.counting.fusion import FUSED
from afford.estimate.runtime import Runtime, as_run

N, D = 64, 256  # batch rows and width of the toy models' activations (fp32: 4 bytes an element)
ACT = N * D * 4


class _Chain(nn.Module):
    """linear -> relu -> x * 2 -> + 1 -> linear: three element-wise ops between two matmuls."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(D, D, bias=False)
        self.b = nn.Linear(D, D, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x)) * 2.0 + 1.0)


class _Branch(nn.Module):
    """y = linear(x); out = linear(relu(y)) + sigmoid(y): relu's group is closed once the second matmul reads it,
    so sigmoid (issued after that matmul) starts a group, which the final add joins."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(D, D, bias=False)
        self.b = nn.Linear(D, D, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        return self.b(torch.relu(y)) + torch.sigmoid(y)


def _infer(model: nn.Module) -> Any:
    with torch.device("meta"):
        m = model
    a = afford.assess(m, example_inputs=(torch.zeros(N, D, device="meta"),), infer_samples=N, batch_size=N,
                      forward_only=True)
    return a.trace.infer


def _pointwise(events: dict[tuple[str, int, int], int]) -> dict[tuple[str, int, int], int]:
    """The element-wise events, without the input the trace makes (`zeros`)."""
    return {k: c for k, c in events.items() if not k[1] and k[0] != "zeros"}


def test_a_chain_between_matmuls_is_one_kernel_reading_once_and_writing_once() -> None:
    with torch.device("meta"):
        phase = _infer(_Chain())
    # eager: relu, mul, add: each reads and writes one activation (the scalars are not tensors)
    assert sum(c for k, c in _pointwise(phase.events).items()) == 3
    assert sum(k[2] * c for k, c in _pointwise(phase.events).items()) == 3 * 2 * ACT
    # fused: one kernel reads the first matmul's output and writes what the second matmul reads
    assert _pointwise(phase.fused_events) == {(FUSED, 0, 2 * ACT): 1}
    matmuls = {k: c for k, c in phase.events.items() if k[1]}
    assert {k: c for k, c in phase.fused_events.items() if k[1]} == matmuls


def test_a_group_read_by_a_matmul_is_closed_and_a_value_read_only_inside_its_group_is_never_written() -> None:
    with torch.device("meta"):
        phase = _infer(_Branch())
    groups = _pointwise(phase.fused_events)
    # relu alone (read y, write relu(y)); sigmoid + add: read y and the matmul's output, write the sum only
    # (sigmoid(y) is read by the add alone): 5 activations moved against eager's 2 + 2 + 3
    assert groups == {("relu", 0, 2 * ACT): 1, (FUSED, 0, 3 * ACT): 1}
    assert sum(k[2] * c for k, c in _pointwise(phase.events).items()) == 7 * ACT


def test_fusion_lowers_the_bytes_and_kernels_of_a_real_model_and_keeps_every_flop() -> None:
    a = afford.assess("hf:openai-community/gpt2", seq_len=512, batch_size=8, train_samples=8)
    for phase in (a.trace.forward, a.trace.backward, a.trace.infer):
        assert phase is not None and phase.fused_events
        fused, traced = phase.fused_events, phase.events
        assert sum(fused.values()) < 0.7 * sum(traced.values())  # GELU's tanh chain, LayerNorm + residual adds
        assert sum(k[2] * c for k, c in fused.items()) < 0.8 * sum(k[2] * c for k, c in traced.items())
        assert sum(k[1] * c for k, c in fused.items()) == sum(k[1] * c for k, c in traced.items())


def test_only_compiled_and_cudagraphs_runtimes_run_the_fused_events() -> None:
    with torch.device("meta"):
        phase = _infer(_Chain())
    assert as_run(phase, Runtime.EAGER) is phase
    for rt in (Runtime.COMPILED, Runtime.CUDAGRAPHS):
        run = as_run(phase, rt)
        assert run.events == phase.fused_events and not run.fused_events
        assert as_run(run, rt) is run  # fusing again changes nothing


def test_a_compiled_training_step_is_faster_than_eager_on_a_gpu_and_its_breakdown_counts_fewer_kernels() -> None:
    times = {}
    for rt in ("eager", "compiled"):
        d = afford.assess("hf:openai-community/gpt2", seq_len=512, batch_size=8, train_samples=8,
                          hardware="a100-80gb", precision="bf16-mixed", runtime=rt).to_dict()
        times[rt] = d["time"]["train_step_breakdown"]
    # bf16 matmuls leave the element-wise traffic a large share of the step: fused, the kernels take far less
    assert times["compiled"]["compute_seconds"] < 0.8 * times["eager"]["compute_seconds"]
    assert times["compiled"]["host"]["forward"]["kernels"] < times["eager"]["host"]["forward"]["kernels"]
