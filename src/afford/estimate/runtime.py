"""What a runtime adds to the per-op roofline: host dispatch per aten op, kernel launches, CUDA-graph replay and a
fixed cost per step. One model for inference and training, used by the assessment (estimate/job.py) and the
planner (decide/planner.py).

The host issues ops while the GPU runs earlier ones, so a phase takes max(GPU time, host time):

    GPU  = roofline kernels / eta_system + kernels x gap          (gap: idle GPU time between queued kernels)
    host = eager:      kernels x (dispatch + launch) + views x view (backward: the engine's share of dispatch)
           compiled:   kernels x (launch + wrapper)
           cudagraphs: one graph launch per phase
    step = max(GPU, host) + a fixed cost per step (inference batch or optimizer step; a step synchronises once,
           for its loss or outputs, so the fixed cost does not overlap the GPU)

Compiled and cudagraphs runtimes also fuse: their kernels, bytes and counts are the trace's fused events
(`as_run`; counting/fusion.py), element-wise chains as one kernel each.

Ops and kernels come from the trace: every aten op a phase dispatched (`PhaseProfile.by_op`, views included)
and those that launch a kernel (`PhaseProfile.events`, views excluded); a view is issued by the C++ dispatcher
alone (most come from composite ops such as F.linear decomposing into t + view + addmm). Under autocast (fp16-
or bf16-mixed) eager PyTorch also casts the weight of every convolution and linear layer, one extra op and kernel
each, in the forward and again (the cast's gradient) in the backward. Constants and their sources: `runtime.toml`.
Overheads apply to GPUs priced from the catalog; a calibrated profile measured its own per-op cost, and CPUs,
TPUs and other accelerators are left as the roofline times them.
"""

from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Any, overload

from afford.bounds import show
from afford.counting.profile import PhaseProfile
from afford.errors import InputError, opt
from afford.hardware.catalog import Device

__all__ = ["DEFAULT_HOST", "NONE", "HostProfile", "Overhead", "Runtime", "applies", "as_run", "constants", "host_of",
           "host_profile", "hosts", "optimizer_host_seconds", "overhead", "step_fixed_seconds", "wall", "weight_casts"]

# aten ops that take a layer's weight (autocast casts that weight once per call)
WEIGHT_OPS = frozenset({"convolution", "addmm", "mm", "linear", "_convolution", "cudnn_convolution",
                        # depthwise and grouped convolutions, as the trace names them (counting/convkind.py)
                        "convolution_depthwise", "convolution_depthwise_direct", "convolution_grouped"})
# aten convolution ops, forward and backward: cuDNN's set-up in the host profiles, TF32 under fp32 (timing.py)
CONV_OPS = frozenset({"convolution", "_convolution", "convolution_backward", "cudnn_convolution",
                      "convolution_overrideable", "_slow_conv2d_forward",
                      "convolution_depthwise", "convolution_depthwise_direct", "convolution_grouped",
                      "convolution_backward_depthwise", "convolution_backward_depthwise_direct",
                      "convolution_backward_grouped"})
DEFAULT_HOST = "dgx1-2021"  # the [eager] constants: the hosts of NVIDIA's 2021 DLE measurements


class Runtime(enum.StrEnum):
    """How the job's ops reach the GPU."""

    EAGER = "eager"  # PyTorch eager: Python dispatches every aten op, each kernel launched on its own
    COMPILED = "compiled"  # torch.compile (Inductor) without CUDA graphs: no Python per op, fused element-wise kernels
    CUDAGRAPHS = "cudagraphs"  # captured graphs replayed (torch.compile mode='reduce-overhead', TensorRT, vLLM)

    @property
    def fuses(self) -> bool:
        """Whether this runtime runs element-wise chains as fused kernels (counting/fusion.py): all but eager."""
        return self is not Runtime.EAGER

    @classmethod
    def parse(cls, value: str | Runtime) -> Runtime:
        """A Runtime from its name (case-insensitive; 'graphs' and 'reduce-overhead' name cudagraphs)."""
        text = str(value).strip().lower()
        text = {"graphs": "cudagraphs", "cuda-graphs": "cudagraphs", "reduce-overhead": "cudagraphs",
                "compile": "compiled", "torch.compile": "compiled"}.get(text, text)
        try:
            return cls(text)
        except ValueError:
            raise InputError(f"unknown {opt('runtime')} {show(value)}; choose eager, compiled or cudagraphs") from None


@dataclass(frozen=True)
class Constants:
    """runtime.toml, in seconds."""

    launch_s: float  # host time per kernel launch
    dispatch_s: float  # eager: host time per kernel-launching aten op issued from Python, besides its launch
    view_s: float  # eager: host time per aten op that launches nothing (views, from C++ composites)
    engine_fraction: float  # the share of `dispatch_s` an op replayed by the autograd engine pays
    step_s: float  # fixed host cost per step
    wrapper_s: float  # compiled: host time per kernel of the generated wrapper, besides the launch
    graph_launch_s: float  # host time per CUDA-graph launch
    graph_gap_s: float  # GPU time per kernel inside a graph, beyond the kernel itself
    stream_gap_s: float  # GPU time per kernel launched into a stream, beyond the kernel itself


@cache
def _table() -> dict[str, Any]:
    """runtime.toml, read and parsed once for every reader below."""
    text = resources.files("afford.estimate").joinpath("runtime.toml").read_text(encoding="utf-8")
    table: dict[str, Any] = tomllib.loads(text)
    return table


@cache
def constants() -> Constants:
    """runtime.toml's per-op and per-step constants."""
    t = _table()
    us = 1e-6
    return Constants(launch_s=t["launch"]["host_us"] * us, dispatch_s=t["eager"]["dispatch_us"] * us,
                     view_s=t["eager"]["view_us"] * us,
                     engine_fraction=float(t["eager"]["engine_fraction"]), step_s=t["eager"]["step_ms"] * 1e-3,
                     wrapper_s=t["compiled"]["wrapper_us"] * us, graph_launch_s=t["graph"]["launch_us"] * us,
                     graph_gap_s=t["graph"]["kernel_gap_us"] * us, stream_gap_s=t["stream"]["kernel_gap_us"] * us)


@dataclass(frozen=True)
class HostProfile:
    """What one eager op costs the CPU that drives the GPU (runtime.toml [hosts]), in seconds."""

    name: str
    op_s: float  # a kernel-launching aten op: dispatch and launch
    conv_s: float  # a convolution op (cuDNN's set-up included)
    module_s: float  # an nn.Module call (Python's __call__ and hooks)
    step_s: float  # fixed per step
    source: str
    input_per_core: float | None = None  # images per second one CPU core decodes and augments (measured only)


@cache
def hosts() -> dict[str, HostProfile]:
    """The host profiles: the default (the [eager] constants) and runtime.toml's [hosts] entries."""
    t = _table()
    c = constants()
    op = c.dispatch_s + c.launch_s
    out = {DEFAULT_HOST: HostProfile(DEFAULT_HOST, op, op, 0.0, c.step_s, str(t["eager"]["source"]))}
    for name, h in t.get("hosts", {}).items():
        out[name] = HostProfile(name, h["op_us"] * 1e-6, h["conv_us"] * 1e-6, h["module_us"] * 1e-6,
                                h["step_ms"] * 1e-3, str(h["source"]))
    return out


def host_profile(name: str | None) -> HostProfile:
    """A host profile by name (None: the default; `local`: this machine's, from `afford calibrate`); a one-line
    InputError naming the choices otherwise."""
    key = DEFAULT_HOST if name is None else str(name).strip().lower()
    known = hosts()
    if key == "local":
        return _local()
    if key not in known:
        raise InputError(f"unknown {opt('host_profile')} {show(name)}; choose {', '.join([*known, 'local'])}")
    return known[key]


@cache
def _local() -> HostProfile:
    """This machine's host profile: the latest `afford calibrate` that measured one (CUDA before CPU)."""
    from afford.store import Store, StoreError

    try:
        with Store() as store:
            records = [store.latest("calibration", key) for key in ("cuda-local", "cpu-local")]
    except StoreError as exc:
        raise InputError(f"cannot read calibrations: {exc}") from None
    for record in records:
        h = (record.result or {}).get("host_profile") if record is not None else None
        if isinstance(h, dict):
            rate = h.get("input_images_per_s_per_core")
            return HostProfile("local", float(h["op_us"]) * 1e-6, float(h["conv_us"]) * 1e-6,
                               float(h["module_us"]) * 1e-6, float(h.get("step_ms", 0.0)) * 1e-3,
                               str(h.get("source", "afford calibrate")), float(rate) if rate else None)
    raise InputError(f"{opt('host_profile')} local: no host profile measured on this machine yet; run "
                     "`afford calibrate`")


def host_of(device: Device) -> HostProfile:
    """The host profile a device is driven by (Catalog.with_host), else the default."""
    return host_profile(device.extra.get("host"))


@dataclass(frozen=True)
class Overhead:
    """What the runtime adds to one execution of a phase: host seconds to issue it, GPU seconds between its
    kernels, and the counts they come from."""

    host_s: float = 0.0
    gap_s: float = 0.0
    ops: int = 0
    kernels: int = 0

    def __add__(self, other: Overhead) -> Overhead:
        return Overhead(self.host_s + other.host_s, self.gap_s + other.gap_s, self.ops + other.ops,
                        self.kernels + other.kernels)

    def scaled(self, k: float) -> Overhead:
        """This overhead `k` times (a weighted decode step, a share of a pipeline)."""
        return Overhead(self.host_s * k, self.gap_s * k, round(self.ops * k), round(self.kernels * k))

    def to_dict(self) -> dict[str, float]:
        return {"host_seconds": self.host_s, "kernel_gap_seconds": self.gap_s, "ops": self.ops,
                "kernels": self.kernels}


NONE = Overhead()


@overload
def as_run(phase: PhaseProfile, runtime: Runtime) -> PhaseProfile: ...
@overload
def as_run(phase: None, runtime: Runtime) -> None: ...
@overload
def as_run(phase: PhaseProfile | None, runtime: Runtime) -> PhaseProfile | None: ...
def as_run(phase: PhaseProfile | None, runtime: Runtime) -> PhaseProfile | None:
    """The phase as `runtime` executes its kernels: under compiled and cudagraphs (torch.compile, TensorRT) its
    element-wise chains fused into one kernel each (counting/fusion.py) and none of eager PyTorch's serial-loop
    or block-per-row kernels (counting/serial.py, counting/rowblocks.py: the compiler generates its own), as eager
    PyTorch runs it otherwise; phases traced without a fusion log (generation steps) as traced."""
    if phase is None or not runtime.fuses:
        return phase
    if not phase.fused_events:
        return replace(phase, serial={}, row_blocks={}) if phase.serial or phase.row_blocks else phase
    return replace(phase, events=phase.fused_events, fused_events={}, serial={}, row_blocks={})


def applies(device: Device) -> bool:
    """Whether the overhead model prices this device: a catalog GPU (a calibrated profile measured its own)."""
    return device.kind == "gpu" and not device.extra.get("calibrated")


def weight_casts(phase: PhaseProfile | None, mixed: bool) -> int:
    """Casts autocast adds to a forward phase: one per call of a weight-taking op (none outside mixed precision, and
    none for a phase traced under emulated autocast, which holds its casts as kernels)."""
    if phase is None or not mixed or phase.autocast:
        return 0
    return sum(calls for (op, _, _), calls in phase.events.items() if op in WEIGHT_OPS)


def overhead(phase: PhaseProfile | None, runtime: Runtime, device: Device, *, backward: bool = False,
             casts: int = 0) -> Overhead:
    """Host and GPU-side overhead of one execution of a traced phase under `runtime` (`casts`: autocast's
    extra cast ops, see `weight_casts`); nothing for a device the model does not price."""
    if phase is None or not applies(device):
        return NONE
    c = constants()
    ops = sum(s.calls for s in phase.by_op.values()) + casts
    kernels = sum(phase.events.values()) + casts
    if not kernels:
        return Overhead(ops=ops)
    if runtime is Runtime.CUDAGRAPHS:
        return Overhead(c.graph_launch_s, kernels * c.graph_gap_s, ops, kernels)
    if runtime is Runtime.COMPILED:
        return Overhead(kernels * (c.launch_s + c.wrapper_s), kernels * c.stream_gap_s, ops, kernels)
    h = host_of(device)
    convs = sum(calls for (op, _, _), calls in phase.events.items() if op in CONV_OPS)
    op_s, conv_s = h.op_s, h.conv_s
    if backward:  # the engine replays from C++: the dispatch part of each op scaled, its launch whole
        op_s = (op_s - c.launch_s) * c.engine_fraction + c.launch_s
        conv_s = (conv_s - c.launch_s) * c.engine_fraction + c.launch_s
    # a library's own launches (cuDNN's RNN steps, counting/rnn.py): a launch each, no dispatch; the call one
    lib_kernels, lib_views = phase.library_kernels, phase.library_ops - phase.library_kernels
    library = lib_kernels * c.launch_s + phase.library_calls * (op_s - c.launch_s)
    host = ((kernels - convs - lib_kernels) * op_s + library + convs * conv_s + phase.module_calls * h.module_s
            + (ops - kernels - lib_views) * c.view_s)
    return Overhead(host, kernels * c.stream_gap_s, ops, kernels)


def optimizer_host_seconds(tensors: int, optimizer: str, runtime: Runtime, device: Device) -> float:
    """Host seconds of one optimizer step's per-tensor work on `tensors` parameter tensors: torch.optim's foreach
    ops (runtime.toml [optimizer]); 0 under CUDA graphs (the step is captured), for an optimizer without a
    foreach path in torch.optim, and on devices the overhead model does not price."""
    table = _table()["optimizer"]
    ops = table["foreach_ops"].get(str(optimizer))
    if not ops or runtime is Runtime.CUDAGRAPHS or not applies(device):
        return 0.0
    return float(tensors) * int(ops) * float(table["foreach_op_us"]) * 1e-6


def step_fixed_seconds(device: Device) -> float:
    """The fixed host cost of one step (an inference batch or an optimizer step) on a device the model prices."""
    return host_of(device).step_s if applies(device) else 0.0


def wall(gpu_s: float, host: Overhead) -> float:
    """Seconds of a phase whose kernels take `gpu_s` (system efficiency applied): the GPU works while the host
    issues ahead, so the slower of the two sets the time."""
    return max(gpu_s + host.gap_s, host.host_s)
