"""LSTMs as cuDNN runs them (counting/rnn.py): one input GEMM per layer and direction, then per step a recurrent
GEMM and PyTorch's fused gate kernel; weights cast once per call under autocast; the kernels marked as the
library's own launches for the host model."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import torch
from torch import nn

import afford
from afford.estimate.runtime import Runtime, overhead
from afford.hardware.catalog import builtin

B, T, IN, H = 4, 6, 8, 16


class _Lstm(nn.Module):
    """A 2-layer bidirectional batch-first LSTM (optionally with a projection, which cuDNN's route leaves alone)."""

    def __init__(self, proj: int = 0) -> None:
        super().__init__()
        self.rnn = nn.LSTM(IN, H, num_layers=2, batch_first=True, bidirectional=True, proj_size=proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


def _assess(model: nn.Module, precision: str = "fp32", train: bool = True) -> Any:
    job: dict[str, Any] = {"train_samples": B} if train else {"forward_only": True}
    return afford.assess(model, example_inputs=(torch.zeros(B, T, IN, device="meta"),), batch_size=B,
                         infer_samples=B, precision=precision, hardware="h100-sxm", **job)


def _ops(phase: Any) -> Counter[str]:
    out: Counter[str] = Counter()
    for (op, _, _), calls in phase.events.items():
        out[op] += calls
    return out


def test_lstm_runs_cudnns_kernels_with_the_maths_flops() -> None:
    """Per layer and direction one input GEMM and T recurrent GEMMs, T fused gate kernels; the FLOPs are the
    LSTM's: 2 x 4H x (input + H) per step, sequence and direction."""
    a = _assess(_Lstm())
    ops = _ops(a.trace.forward)
    assert ops["mm"] == 4 * (1 + T) and ops["_thnn_fused_lstm_cell"] == 4 * T
    assert not {"sigmoid", "sigmoid_", "tanh", "tanh_", "addmm"} & set(ops)
    flops = sum(2 * B * T * 4 * H * (n_in + H) for n_in in (IN, IN, 2 * H, 2 * H))
    assert a.trace.forward.flops == flops
    assert _ops(a.trace.backward)["_thnn_fused_lstm_cell_backward_impl"] == 4 * T


def test_the_output_is_the_lstms() -> None:
    """Shapes and autograd as nn.LSTM's own on the CPU: output, h_n and c_n."""
    from afford.counting import rnn

    cpu = nn.LSTM(IN, H, num_layers=2, batch_first=True, bidirectional=True)
    meta = nn.LSTM(IN, H, num_layers=2, batch_first=True, bidirectional=True, device="meta")
    x = torch.zeros(B, T, IN)
    want = cpu(x)
    h0 = torch.zeros(4, B, H, device="meta")
    got = rnn._cudnn_rnn(True, x.to("meta").requires_grad_(), (h0, h0), meta._flat_weights, True, 2, 0.0, True,
                         True, True)
    assert [tuple(t.shape) for t in got] == [tuple(want[0].shape), *(tuple(t.shape) for t in want[1])]
    assert got[0].requires_grad


def test_autocast_casts_the_weights_once_per_call_not_per_step() -> None:
    """cuDNN's autocast wrapper casts input, states and the 16 weight tensors once: 19 casts, whatever T is."""
    a = _assess(_Lstm(), "fp16-mixed", train=False)
    assert _ops(a.trace.infer)["_to_copy"] == 1 + 2 + 16
    assert a.trace.infer.library_calls == 1


def test_the_steps_are_the_librarys_launches_on_the_host() -> None:
    """Eager PyTorch dispatches `_cudnn_rnn` once; its kernels are launched from C++: the host pays a launch
    each, far below a dispatched op each."""
    a = _assess(_Lstm())
    fwd = a.trace.forward
    assert fwd.library_calls == 1 and fwd.library_kernels == sum(_ops(fwd).values()) - _ops(fwd)["zeros"] - 1
    gpu = next(d for d in builtin() if d.id == "h100-sxm")
    dispatched = replace(fwd, library_kernels=0, library_ops=0, library_calls=0)  # as each op were dispatched
    assert overhead(fwd, Runtime.EAGER, gpu).host_s < 0.3 * overhead(dispatched, Runtime.EAGER, gpu).host_s


def test_projections_keep_the_traced_path() -> None:
    """An LSTM with proj_size has a fifth weight per layer and direction: not routed, traced as PyTorch's
    CPU-style cells."""
    ops = _ops(_assess(_Lstm(proj=8)).trace.forward)
    assert "_thnn_fused_lstm_cell" not in ops and ops["sigmoid"] + ops["sigmoid_"] > 0


class _Gru(nn.Module):
    """A 2-layer bidirectional batch-first GRU."""

    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(IN, H, num_layers=2, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x)[0]


def test_gru_runs_cudnns_kernels_with_the_maths_flops() -> None:
    """Per layer and direction one input GEMM, T recurrent GEMMs and T fused gate kernels (afford's op of PyTorch's
    `_thnn_fused_gru_cell`, which has no meta kernel); FLOPs 2 x 3H x (input + H) per step; one library call."""
    a = _assess(_Gru())
    ops = _ops(a.trace.forward)
    assert ops["mm"] == 4 * (1 + T) and ops["_thnn_fused_gru_cell"] == 4 * T
    assert a.trace.forward.flops == sum(2 * B * T * 3 * H * (n_in + H) for n_in in (IN, IN, 2 * H, 2 * H))
    assert _ops(a.trace.backward)["_thnn_fused_gru_cell_backward"] == 4 * T
    assert a.trace.forward.library_calls == 1


def test_the_gru_cell_computes_pytorchs_gru_and_its_gradients() -> None:
    """Off meta the cell and its backward are the GRU's math: one step of nn.GRUCell, values and gradients."""
    from afford.counting import rnn

    torch.manual_seed(0)
    cell = nn.GRUCell(IN, H).double()
    x = torch.randn(B, IN, dtype=torch.float64, requires_grad=True)
    h = torch.randn(B, H, dtype=torch.float64, requires_grad=True)
    want = cell(x, h)
    got, _ = rnn.fused_gru_cell(x @ cell.weight_ih.t(), h @ cell.weight_hh.t(), h, cell.bias_ih, cell.bias_hh)
    assert torch.allclose(got, want)
    g = torch.randn_like(want)
    params = (x, h, cell.weight_ih, cell.bias_hh)
    for a_grad, b_grad in zip(torch.autograd.grad(want, params, g), torch.autograd.grad(got, params, g), strict=True):
        assert torch.allclose(a_grad, b_grad)
