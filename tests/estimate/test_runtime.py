"""The runtime-overhead model (estimate/runtime.py): counts from a phase, the three runtimes, which devices it
prices, and a step that is host-bound when dispatch x ops exceeds the GPU work."""

from __future__ import annotations

import dataclasses

import pytest

from afford.counting.profile import OpStat, PhaseProfile
from afford.errors import InputError
from afford.estimate.parallel import Layout, Parallel
from afford.estimate.runtime import NONE, Runtime, applies, constants, overhead, wall, weight_casts
from afford.estimate.timing import Efficiency, step_from_times
from afford.hardware.catalog import Catalog


def _phase() -> PhaseProfile:
    """10 convolutions, 10 ReLUs and 5 views (no kernel)."""
    return PhaseProfile(name="forward", by_op={"convolution": OpStat(calls=10), "relu_": OpStat(calls=10),
                                               "view": OpStat(calls=5)},
                        events={("convolution", 1000, 100): 10, ("relu_", 0, 100): 10})


def test_eager_counts_kernels_views_and_casts() -> None:
    dev = Catalog.load().get("a100-80gb")
    c = constants()
    ov = overhead(_phase(), Runtime.EAGER, dev)
    assert (ov.ops, ov.kernels) == (25, 20)
    assert ov.host_s == pytest.approx(20 * (c.dispatch_s + c.launch_s) + 5 * c.view_s)
    assert ov.gap_s == pytest.approx(20 * c.stream_gap_s)
    casts = weight_casts(_phase(), mixed=True)
    assert casts == 10 and weight_casts(_phase(), mixed=False) == 0
    amp = overhead(_phase(), Runtime.EAGER, dev, casts=casts)
    assert (amp.ops, amp.kernels) == (35, 30)
    back = overhead(_phase(), Runtime.EAGER, dev, backward=True)
    assert back.host_s == pytest.approx(20 * (c.engine_fraction * c.dispatch_s + c.launch_s) + 5 * c.view_s)


def test_compiled_and_graphs_cost_less_host_time_than_eager() -> None:
    dev = Catalog.load().get("h100-sxm")
    eager, compiled, graphs = (overhead(_phase(), r, dev) for r in Runtime)
    assert eager.host_s > compiled.host_s > graphs.host_s == pytest.approx(constants().graph_launch_s)
    assert graphs.gap_s < compiled.gap_s == eager.gap_s


def test_only_catalog_gpus_are_priced() -> None:
    cat = Catalog.load()
    assert applies(cat.get("t4")) and not applies(cat.get("cpu-generic")) and not applies(cat.get("tpu-v4"))
    gpu = cat.get("t4")
    calibrated = dataclasses.replace(gpu, extra={**gpu.extra, "calibrated": True})
    assert not applies(calibrated) and overhead(_phase(), Runtime.EAGER, calibrated) == NONE


@pytest.mark.parametrize("text,expect", [("eager", Runtime.EAGER), ("Compiled", Runtime.COMPILED),
                                         ("reduce-overhead", Runtime.CUDAGRAPHS), ("graphs", Runtime.CUDAGRAPHS)])
def test_parse_names_and_aliases(text: str, expect: Runtime) -> None:
    assert Runtime.parse(text) is expect


def test_unknown_runtime_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown runtime 'tensorrt'; choose eager, compiled or cudagraphs"):
        Runtime.parse("tensorrt")


def test_a_step_is_host_bound_when_issuing_takes_longer_than_the_gpu() -> None:
    dev = Catalog.load().get("a100-80gb")
    eff = Efficiency.for_device(dev)
    lay = Layout(count=1, gpus_per_node=1, parallel=Parallel.DP, tp=1, pp=1, grad_accum=2)
    ov = overhead(_phase(), Runtime.EAGER, dev)
    kw = dict(b_fwd=0.0, b_bwd=0.0, device=dev, eff=eff, layout=lay, gradient_bytes=0.0, parameter_bytes=0.0,
              optimizer_bytes_touched=0.0, tp_activation_bytes=0.0, layers=None, recompute=False, notes=[],
              host_fwd=ov, host_bwd=ov, fixed_s=0.003)
    fast = step_from_times(t_fwd=1e-5, t_bwd=1e-5, **kw)  # type: ignore[arg-type]
    assert fast.host_bound and fast.step_s == pytest.approx(2 * 2 * ov.host_s + 0.003)
    slow = step_from_times(t_fwd=0.5, t_bwd=1.0, **kw)  # type: ignore[arg-type]
    assert not slow.host_bound
    assert slow.step_s == pytest.approx(2 * 1.5 / eff.system + 2 * 2 * ov.gap_s + 0.003)
    assert wall(1.0, ov) == pytest.approx(1.0 + ov.gap_s) and wall(0.0, ov) == pytest.approx(ov.host_s)


def test_a_host_profile_prices_ops_convolutions_and_module_calls() -> None:
    """`--host-profile h200-2026` (runtime.toml [hosts]): a kernel op, a convolution and a module call each at the
    measured host's cost; the default profile is the [eager] constants, modules folded into each op."""
    from afford.estimate.runtime import DEFAULT_HOST, host_profile, hosts

    assert set(hosts()) >= {DEFAULT_HOST, "h200-2026"}
    h = host_profile("h200-2026")
    dev = Catalog.load().with_host("h200-2026").get("h200")
    phase = dataclasses.replace(_phase(), module_calls=7)
    ov = overhead(phase, Runtime.EAGER, dev)
    assert ov.host_s == pytest.approx(10 * h.conv_s + 10 * h.op_s + 7 * h.module_s + 5 * constants().view_s)
    default = overhead(phase, Runtime.EAGER, Catalog.load().get("h200"))
    c = constants()
    assert default.host_s == pytest.approx(20 * (c.dispatch_s + c.launch_s) + 5 * c.view_s)
    with pytest.raises(InputError, match="host_profile"):
        host_profile("pentium-4")


def test_module_calls_are_counted_per_phase() -> None:
    """The trace counts nn.Module forward calls (each one a Python call in eager PyTorch): ResNet-18's inference
    pass calls as many as forward pre-hooks see on the real module."""
    import torch
    import torchvision

    import afford

    calls = 0

    def hook(*_: object) -> None:
        nonlocal calls
        calls += 1

    model = torchvision.models.resnet18().eval()
    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 224, 224))
    finally:
        handle.remove()
    a = afford.assess("torchvision:resnet18", infer_samples=1, hardware="h200")
    assert a.trace.infer.module_calls == calls > 50


def test_the_optimizer_step_takes_the_longer_of_its_traffic_and_its_per_tensor_host_work() -> None:
    from afford.estimate.runtime import optimizer_host_seconds

    dev = Catalog.load().get("h200")
    per_op = 1.41e-6  # runtime.toml [optimizer].foreach_op_us
    # AdamW issues 8 foreach ops over the tensors, SGD with momentum 3; CUDA graphs capture the step; CPUs unpriced
    assert optimizer_host_seconds(152, "adamw", Runtime.EAGER, dev) == pytest.approx(152 * 8 * per_op)
    assert optimizer_host_seconds(152, "sgd-momentum", Runtime.COMPILED, dev) == pytest.approx(152 * 3 * per_op)
    assert optimizer_host_seconds(152, "adamw", Runtime.CUDAGRAPHS, dev) == 0.0
    assert optimizer_host_seconds(152, "adafactor", Runtime.EAGER, dev) == 0.0
    assert optimizer_host_seconds(152, "adamw", Runtime.EAGER, Catalog.load().get("cpu-generic")) == 0.0
    eff = Efficiency.for_device(dev)
    layout = Layout(count=1, gpus_per_node=1, parallel=Parallel("dp"))
    common = dict(t_fwd=1e-3, b_fwd=0.0, t_bwd=2e-3, b_bwd=0.0, device=dev, eff=eff, layout=layout,
                  gradient_bytes=0.0, parameter_bytes=0.0, tp_activation_bytes=0.0, layers=None, recompute=False,
                  notes=[])
    host = optimizer_host_seconds(152, "adamw", Runtime.EAGER, dev)
    small = step_from_times(**common, optimizer_bytes_touched=1e6, optimizer_host_s=host)  # type: ignore[arg-type]
    plain = step_from_times(**common, optimizer_bytes_touched=1e6)  # type: ignore[arg-type]
    assert small.step_s - plain.step_s == pytest.approx(host - plain.optimizer_s / eff.system)
    assert small.host_s - plain.host_s == pytest.approx(small.optimizer_host_s)
    big = step_from_times(**common, optimizer_bytes_touched=1e12, optimizer_host_s=host)  # type: ignore[arg-type]
    assert big.optimizer_host_s == 0.0  # traffic longer than the host's work: nothing added


def test_vit_base_adamw_step_against_the_measurement_kept_out_of_the_derivation() -> None:
    """ViT-B/16's AdamW (foreach) step on the lent H200: 2.03 ms measured (bench/results/gpu_check_h200_run2.jsonl),
    not used to derive [optimizer].foreach_op_us; afford prices 152 tensors x 8 ops against 0.6 ms of traffic."""
    from afford.estimate.runtime import optimizer_host_seconds

    dev = Catalog.load().get("h200")
    predicted = optimizer_host_seconds(152, "adamw", Runtime.EAGER, dev)
    assert predicted == pytest.approx(2.03e-3, rel=0.20)
