"""The job request, declared once: every option a job takes, with its type, default, help, job-file place and the
commands that take it.

`JobRequest` is the declaration. From it come the command line's options (`cli/options.py` builds each command's
flags), the job-file schema (`jobfile.py`) and the keyword arguments of `afford.assess`, `afford.plan`,
`afford.measure` and `afford.compare` (`build` checks them; `signature` shows them to `help()`). A test
(`tests/test_schema.py`) fails if any of them drifts. Values are validated once, by the object that takes them:
the job by `Workload`, the hardware by `estimate.request.request`, the limits by `decide.run.make_budget`.

Adding an option is one field here (see docs/architecture.md for a worked example), then its use.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass, field
from typing import Any

from afford.errors import InputError

COMMANDS = ("assess", "plan", "measure", "compare")
SECTIONS = ("workload", "hardware", "budget", "plan")  # job-file sections; None is the file's top level

_A, _P, _M, _C = COMMANDS
_ALL = (_A, _P, _M, _C)
_PRICED = (_A, _P)  # options of a priced job on rented or owned hardware, which `measure` reports as ignored


@dataclass(frozen=True)
class Option:
    """How one field of JobRequest appears: its help, job-file section and key, command-line name, the commands
    that take it, and per-command defaults where a command starts from another value."""

    help: str
    section: str | None
    commands: tuple[str, ...]
    key: str | None = None  # the job-file key, when not the field's name
    flag: str | None = None  # the command-line parameter (its --flag with dashes), when not the field's name
    defaults: tuple[tuple[str, Any], ...] = ()  # (command, default) where a command's default differs
    helps: tuple[tuple[str, str], ...] = ()  # (command, help) where a command says it differently
    short: str | None = None  # a one-letter command-line alias (-O)

    def default_for(self, command: str, default: Any) -> Any:
        """The default of this option for `command`."""
        return dict(self.defaults).get(command, default)

    def help_for(self, command: str) -> str:
        """The help of this option for `command`."""
        return dict(self.helps).get(command, self.help)


def _opt(default: Any, help: str, section: str | None, commands: tuple[str, ...], **kw: Any) -> Any:
    """A JobRequest field: its default and its Option."""
    return field(default=default, metadata={"afford": Option(help=help, section=section, commands=commands, **kw)})


@dataclass(frozen=True, kw_only=True)
class JobRequest:
    """Everything a job asks for, apart from the model: the workload, the hardware and layout, the budget and the
    search. Each field's metadata (`Option`) says where it appears."""

    # the model's source (job file top level)
    depth: int = _opt(2, "depth of the module tree", None, (_A,))
    trust_remote_code: bool = _opt(False, "run a Hub model's own code (only if you trust it)", None, _ALL)
    allow_hub: bool = _opt(False, "look a config up on the Hugging Face Hub if not found offline", None, _ALL,
                           key="hub", flag="hub")
    trust_pickle: bool = _opt(False, "unpickle .bin/.pt checkpoints (runs code from the file: only if you trust it)",
                              None, (_A, _P, _M))
    cache: bool = _opt(True, "reuse a trace of the same model and job (kept in memory and on disk); --no-cache "
                             "traces afresh", None, (_A, _C))
    forward_only: bool = _opt(False, "trace the inference pass only, no training step: backward and training "
                                     "figures are left out (about 4x faster to count many models)", None, (_A, _C))
    # [workload]
    train_samples: int | None = _opt(None, "training samples per epoch (N)", "workload", _ALL)
    epochs: float = _opt(1.0, "passes over the training samples", "workload", _ALL)
    train_tokens: int | None = _opt(None, "training tokens in all (language models; instead of samples)", "workload",
                                    _ALL)
    infer_samples: int | None = _opt(None, "inference samples (M)", "workload", (_A, _P, _M))
    eval_samples: int | None = _opt(None, "evaluation samples after each training epoch (forward passes at the "
                                          "batch size, added to the training time and cost; not in plans' "
                                          "times)", "workload", (_A, _C))
    batch_size: int = _opt(1, "samples per step on one device", "workload", _ALL)
    seq_len: int | None = _opt(None, "tokens per sample (default: model max, capped)", "workload", _ALL)
    image_size: int | None = _opt(None, "image side in pixels (default: the model's native size)", "workload", _ALL)
    precision: str = _opt("fp32", "fp32 | fp16-mixed | bf16-mixed | bf16 | fp16 | tf32", "workload", _ALL,
                          defaults=((_P, "bf16-mixed"), (_C, "bf16-mixed")))
    amp: bool = _opt(False, "train as torch.amp does (with fp16-mixed or bf16-mixed): fp32 weights and gradients, "
                            "each weight cast to 16 bits once per step, norms, softmax and losses in fp32, as timm's "
                            "and torchvision's training scripts run; default: 16-bit weights and gradients with fp32 "
                            "master weights (Megatron, DeepSpeed)", "workload", (_A, _P, _C))
    optimizer: str = _opt("adamw", "sgd | sgd-momentum | adam | adamw | adam-8bit | adafactor | adagrad | "
                                   "rowwise-adagrad", "workload", _ALL)
    freeze: tuple[str, ...] = _opt((), "freeze parameters matching a glob; '!GLOB' unfreezes; repeatable, applied in "
                                       "order", "workload", (_A, _P, _M))
    allow_longer: bool = _opt(False, "allow --seq-len beyond the model's maximum", "workload", (_A, _P, _M))
    task: str = _opt("auto", "auto | generate (prefill + cached decode per request)", "workload", (_A, _P, _M))
    prompt_tokens: int | None = _opt(None, "prompt tokens per request (--task generate)", "workload",
                                     (_A, _P, _M))
    generate_tokens: int | None = _opt(None, "generated tokens per request (--task generate)", "workload",
                                       (_A, _P, _M))
    weights: str | None = _opt(
        None, "weight format for inference: fp32 | fp16 | bf16 | int8 | nf4 | nf4-dq | gptq-4bit | awq-4bit "
              "(-g32, -g64: another group size) | "
              "int4-g32 | int4-g128 | fp8 | nvfp4 | mxfp4 | a GGUF file type (q4_k_m, q8_0, ...): its exact bytes, "
              "KV cache and fit in memory.inference, and the inference time of reading it", "workload", (_A, _P, _C))
    kv_cache_dtype: str | None = _opt(None, "KV cache dtype with --weights: fp16 | bf16 | fp8 | fp32 (default: the "
                                            "compute dtype)", "workload", (_A, _P, _C))
    concurrency: int | None = _opt(None, "requests served at once for the serving figures (serve.at_concurrency; "
                                         "default: the maximum load only)", "workload", (_A, _P))
    rate: float | None = _opt(None, "sustained load in requests per second: serve.replicas_for_rate", "workload",
                              (_A, _P))
    gpu_memory_utilization: float = _opt(0.9, "share of device memory the serving engine takes (vLLM's "
                                              "--gpu-memory-utilization)", "workload", (_A, _P))
    model_options: dict[str, Any] | None = _opt(  # noqa: RUF009 (_opt is dataclasses.field; the default is None)
        None, "KEY=VALUE size of a built-in spec (recsys:, diffusers:), or timm's `reparam`, `fast_norm`; "
              "repeatable", "workload",
        (_A, _P, _M), flag="model_option", short="-O")
    # [hardware]
    hardware: str | None = _opt(
        None, "device id (afford hardware list); default a100-80gb", "hardware", _ALL, key="device",
        helps=((_M, "device to predict for (default: this machine's calibration; a catalog id compares two "
                    "devices)"),))
    count: int | None = _opt(None, "devices in all", "hardware", (_A, _P, _C))
    nodes: int | None = _opt(None, "nodes (count = nodes x gpus-per-node)", "hardware", _PRICED)
    gpus_per_node: int | None = _opt(None, "devices per node (default: the device's usual)", "hardware", _PRICED)
    parallel: str = _opt("dp", "dp | zero1 | zero2 | zero3 | fsdp", "hardware", _PRICED,
                         defaults=((_P, "auto"),),
                         helps=((_P, "dp | zero1 | zero2 | zero3 | fsdp | auto (dp on one device, else fsdp) for the "
                                     "job as asked"),))
    tp: int = _opt(1, "tensor-parallel degree", "hardware", _PRICED)
    pp: int = _opt(1, "pipeline-parallel degree", "hardware", _PRICED)
    grad_accum: int = _opt(1, "micro-batches per optimizer step", "hardware", (_A, _P, _M))
    recompute: bool = _opt(False, "activation checkpointing (re-run forward in backward)", "hardware", _PRICED)
    price_per_hour: float | None = _opt(None, "USD per device-hour (overrides the catalog)", "hardware", _PRICED)
    region: str | None = _opt(None, "grid region for CO2 (default: world average)", "hardware", _PRICED)
    grid_gco2_kwh: float | None = _opt(None, "grid intensity, gCO2e/kWh", "hardware", _PRICED)
    pue: float | None = _opt(None, "data-centre PUE (default: industry average)", "hardware", _PRICED)
    mfu: float | None = _opt(None, "fix model FLOPs utilisation instead of the roofline", "hardware", _PRICED)
    runtime: str = _opt("eager", "eager | compiled | cudagraphs: how ops reach the GPU (host dispatch per op, one "
                                 "launch per kernel, or graph replay)", "hardware", (_A, _P))
    data_workers: int | None = _opt(None, "DataLoader worker processes (CPU cores) decoding images for each GPU "
                                          "in training: the step is input-bound when they cannot keep up (the "
                                          "decode rate per core is measured by afford calibrate: --host-profile "
                                          "local)", "hardware", (_A, _C))
    host_profile: str | None = _opt(None, "the CPU host driving the GPUs, for eager dispatch per op: dgx1-2021 "
                                          "(default: NVIDIA's 2021 DLE hosts) | h200-2026 (a current server, "
                                          "measured) | local (this machine's, from afford calibrate)", "hardware",
                                    (_A, _P, _C))
    attention: str = _opt("auto", "auto | flash | sdpa | eager: the attention kernel; auto is the fused kernel a "
                                  "tuned trainer runs (flash on NVIDIA Ampere+, memory-efficient SDPA elsewhere); "
                                  "eager prices a model's own softmax ops", "hardware", (_A, _P, _C))
    hardware_file: str | None = _opt(None, "TOML/YAML file adding or overriding devices", "hardware", _ALL,
                                     key="file")
    # [budget]
    budget_usd: float | None = _opt(None, "money you can spend (USD)", "budget", (_A, _P, _C), key="usd")
    deadline: str | float | None = _opt(None, "time you have, e.g. 36h, 7d (seconds from Python)", "budget",
                                        (_A, _P, _C))
    max_kwh: float | None = _opt(None, "energy limit (kWh)", "budget", (_A, _P, _C))
    max_co2_kg: float | None = _opt(None, "carbon limit (kg CO2e)", "budget", (_A, _P, _C))
    available: str | None = _opt(None, "hardware you own: NAME:COUNT[,NAME:COUNT...]", "budget", _PRICED)
    electricity_usd_kwh: float | None = _opt(None, "electricity price for owned hardware (USD/kWh)", "budget",
                                             _PRICED)
    max_latency: float | None = _opt(None, "latency target in seconds per inference batch (per request batch with "
                                           "--task generate)", "budget", (_A, _P))
    ttft: float | None = _opt(None, "time-to-first-token target in seconds (generation)", "budget", (_A, _P))
    tpot: float | None = _opt(None, "time-per-output-token target in seconds (generation)", "budget", (_A, _P))
    # [plan]
    lora_rank: int = _opt(16, "rank of LoRA/QLoRA adapters in the plans", "plan", _PRICED)
    max_count: int = _opt(16384, "most devices a plan may use", "plan", _PRICED)


@dataclass(frozen=True)
class Spec:
    """One JobRequest field as a command sees it."""

    name: str  # the Python keyword
    type: Any  # its Python annotation
    default: Any  # its default for this command
    option: Option

    @property
    def flag(self) -> str:
        """The command-line parameter name (`--flag` with dashes)."""
        return self.option.flag or self.name

    @property
    def key(self) -> str:
        """The job-file key."""
        return self.option.key or self.name


def specs(command: str | None = None) -> list[Spec]:
    """The fields `command` takes (every field when None), in declaration order, with that command's defaults."""
    hints = _hints()
    out = []
    for f in dataclasses.fields(JobRequest):
        o: Option = f.metadata["afford"]
        if command is None or command in o.commands:
            out.append(Spec(f.name, hints[f.name], o.default_for(command or "", f.default), o))
    return out


@functools.cache
def _hints() -> dict[str, Any]:
    """JobRequest's annotations as objects (resolved once: the strings are compiled on each resolution, and a
    sweep builds a request for every point)."""
    import typing

    return typing.get_type_hints(JobRequest)


def names(command: str) -> list[str]:
    """The keyword arguments `command` takes."""
    return [s.name for s in specs(command)]


def build(command: str, options: dict[str, Any], where: str | None = None) -> JobRequest:
    """The JobRequest of `command` from keyword arguments: an unknown or misplaced one is one InputError naming it
    (with the closest valid name); values are validated later, by the objects that take them."""
    from afford.names import closest, shorten

    valid = names(command)
    for key in options:
        if key not in valid:
            elsewhere = [c for c in COMMANDS if c != command and key in names(c)]
            if elsewhere:
                raise InputError(f"{where or command}: {key!r} is an option of {', '.join(elsewhere)}, not of "
                                 f"{command}")
            near = closest(str(key), valid)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise InputError(f"{where or command}: unknown option {shorten(str(key))!r}{hint}")
    defaults = {s.name: s.default for s in specs(command)}
    return JobRequest(**{**defaults, **options})


def values(request: JobRequest, command: str) -> dict[str, Any]:
    """The fields of `request` that `command` takes, as keyword arguments."""
    return {name: getattr(request, name) for name in names(command)}


def signature(command: str, head: list[inspect.Parameter],
              tail: tuple[inspect.Parameter, ...] | list[inspect.Parameter] = ()) -> inspect.Signature:
    """A Python signature for `command`'s function: `head` (the model...), the request's fields as keyword-only
    parameters with their defaults, then `tail`; what `help(afford.assess)` shows."""
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [*head, *(inspect.Parameter(s.name, kw, default=s.default, annotation=s.type) for s in specs(command)),
              *tail]
    return inspect.Signature(params)


def job_file_schema() -> dict[str | None, dict[str, tuple[str, type]]]:
    """{section: {job-file key: (command-line parameter, type)}}: what a job file may set (jobfile.SCHEMA)."""
    out: dict[str | None, dict[str, tuple[str, type]]] = {None: {}, **{s: {} for s in SECTIONS}}
    for s in specs():
        out[s.option.section][s.key] = (s.flag, file_type(s))
    return out


def file_type(s: Spec) -> type:
    """The type a job file gives a field in: bool, int, float, str, list (of strings) or dict (KEY = VALUE)."""
    if s.name == "model_options":
        return dict
    if s.name == "freeze":
        return list
    for kind in (bool, int, float):
        if s.type in (kind, kind | None):
            return kind
    return str


def table() -> str:
    """The options as a markdown table (the README's, kept equal by a test; scripts/update_readme_options.py
    rewrites it): Python name, flag, job-file place, default per command, commands, help."""
    rows = ["| Python keyword | flag | job file | default | commands | what |", "|---|---|---|---|---|---|"]
    for s in specs():
        flag = f"`--{s.flag.replace('_', '-')}`" + (f" `{s.option.short}`" if s.option.short else "")
        if s.type is bool:
            flag = f"`--{s.flag.replace('_', '-')}` / `--no-{s.flag.replace('_', '-')}`"
        place = f"`[{s.option.section}] {s.key}`" if s.option.section else f"`{s.key}`"
        default = f"`{s.default!r}`" + "".join(f", {c}: `{v!r}`" for c, v in s.option.defaults)
        rows.append(f"| `{s.name}` | {flag} | {place} | {default} | {', '.join(s.option.commands)} | "
                    f"{s.option.help.replace('|', '/')} |")
    return "\n".join(rows)


__all__ = ["COMMANDS", "JobRequest", "Option", "Spec", "build", "job_file_schema", "names", "signature",
           "specs", "table", "values"]
