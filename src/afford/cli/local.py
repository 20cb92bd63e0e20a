"""CLI commands about this machine: calibrate, measure, and the history kept in the local store."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from afford.cli.app import app, emit_json, fail, guarded
from afford.cli.jobs import remember, with_job
from afford.cli.options import (
    AllowLonger,
    AsJson,
    Available,
    BatchSize,
    BudgetUsd,
    Count,
    Deadline,
    Depth,
    Electricity,
    Epochs,
    Explain,
    Force,
    Freeze,
    GenerateTokens,
    GpusPerNode,
    GradAccum,
    GridIntensity,
    HardwareFile,
    Hub,
    ImageSize,
    InferSamples,
    Job,
    JobModelArg,
    MaxCo2,
    MaxKwh,
    Mfu,
    ModelOption,
    Nodes,
    Optim,
    Parallel,
    Pp,
    Precision,
    PricePerHour,
    PromptTokens,
    Pue,
    Recompute,
    Region,
    Report,
    SeqLen,
    Task,
    Tp,
    TrainSamples,
    TrainTokens,
    TrustCode,
    TrustPickle,
    TrustRemoteCode,
    Verbose,
)
from afford.sources.options import parse_pairs
from afford.units import duration


@app.command("calibrate")
def calibrate_command(
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    quick: Annotated[bool, typer.Option(help="fewer shapes, repeats and probe steps: faster, a rougher profile "
                                             "(what `afford measure` runs when there is none)")] = False,
    as_json: AsJson = False,
) -> None:
    """Measure this machine's matmul and convolution throughput, memory bandwidth and per-op overhead, and keep
    them as the calibrated profile `cpu-local` (or `cuda-local`) that later assessments and `afford measure` use."""
    from rich.progress import Progress

    from afford.measure.calibrate import calibrate
    from afford.store import Store

    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("calibrating", total=1.0)
        profile = guarded(lambda: calibrate(device, lambda what, frac: bar.update(task, completed=frac,
                                                                                      description=what), quick=quick))

    def save() -> int:
        with Store() as store:
            return store.add("calibration", profile["id"], {"device": device, "quick": quick}, profile)

    record = guarded(save)
    if as_json:
        emit_json({"record": record, "profile": profile})
        return
    p = profile["peak_tflops"]
    Console().print(f"{profile['id']}: matmul fp32 {p['fp32']:.3f} TFLOP/s, bf16 {p['bf16']:.3f} TFLOP/s, "
                    f"conv fp32 {p['tf32']:.3f} TFLOP/s, bandwidth {profile['memory_bandwidth_gb_s']:.1f} GB/s, "
                    f"op overhead {profile['op_overhead_s'] * 1e6:.1f} us (stored as record {record}; use "
                    f"--hardware {profile['id']})")


# assess options that do not apply to one process on this one device: accepted (a copied assess command runs)
# and reported as ignored in a note
IGNORED = ("depth", "count", "nodes", "gpus_per_node", "parallel", "tp", "pp", "recompute", "price_per_hour",
           "region", "grid_gco2_kwh", "pue", "mfu", "budget_usd", "deadline", "max_kwh", "max_co2_kg", "available",
           "electricity_usd_kwh", "report", "force", "explain", "verbose")


@app.command("measure")
def measure_command(
    ctx: typer.Context,
    model: JobModelArg = None,
    steps: Annotated[int, typer.Option(help="timed training steps and inference batches (1-1000)")] = 5,
    device: Annotated[str, typer.Option(help="cpu | cuda | cuda:N")] = "cpu",
    hardware: Annotated[str | None, typer.Option(
        help="device to predict for (default: this machine's calibration; a catalog id compares two devices)")]
    = None,
    calibrate: Annotated[str, typer.Option(
        help="with no stored calibration of this machine: quick (calibrate first, a few seconds; stored) | full | "
             "no (refuse and name the command)")] = "quick",
    train_samples: TrainSamples = None,
    epochs: Epochs = 1.0,
    train_tokens: TrainTokens = None,
    infer_samples: InferSamples = None,
    batch_size: BatchSize = 1,
    seq_len: SeqLen = None,
    image_size: ImageSize = None,
    precision: Precision = "fp32",
    optimizer: Optim = "adamw",
    freeze: Freeze = None,
    grad_accum: GradAccum = 1,
    allow_longer: AllowLonger = False,
    trust_remote_code: TrustRemoteCode = False,
    hub: Hub = False,
    task: Task = "auto",
    prompt_tokens: PromptTokens = None,
    generate_tokens: GenerateTokens = None,
    model_option: ModelOption = None,
    trust_pickle: TrustPickle = False,
    hardware_file: HardwareFile = None,
    depth: Depth = 2,
    count: Count = None,
    nodes: Nodes = None,
    gpus_per_node: GpusPerNode = None,
    parallel: Parallel = "dp",
    tp: Tp = 1,
    pp: Pp = 1,
    recompute: Recompute = False,
    price_per_hour: PricePerHour = None,
    region: Region = None,
    grid_gco2_kwh: GridIntensity = None,
    pue: Pue = None,
    mfu: Mfu = None,
    budget_usd: BudgetUsd = None,
    deadline: Deadline = None,
    max_kwh: MaxKwh = None,
    max_co2_kg: MaxCo2 = None,
    available: Available = None,
    electricity_usd_kwh: Electricity = None,
    job: Job = None,
    trust_code: TrustCode = False,
    report: Report = None,
    force: Force = False,
    explain: Explain = False,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Run real training steps and inference batches here and compare them with afford's prediction for this
    machine; takes assess's job options (the hardware, price and budget ones are reported as ignored)."""
    from rich.progress import Progress

    from afford.measure.run import measure

    p = with_job(ctx, "measure")
    ignored = _ignored(ctx, p)
    typed = getattr(ctx.get_parameter_source("hardware"), "name", "") in ("COMMANDLINE", "ENVIRONMENT")
    if p["hardware"] is not None and not typed:  # a job file's target device: measure predicts for this machine
        ignored.append(f"the job file's hardware device {p['hardware']} (type --hardware to predict for it)")
        p["hardware"] = None
    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task_id = bar.add_task("preparing", total=None)

        def tick(what: str, i: int, n: int) -> None:
            bar.update(task_id, description=what, completed=i, total=n)

        def announce(message: str) -> None:
            bar.console.print(f"afford: {message}", markup=False, highlight=False, soft_wrap=True)
            bar.update(task_id, description="calibrating this machine")

        result = guarded(lambda: measure(
            p["model"], steps=p["steps"], device=p["device"], batch_size=p["batch_size"], seq_len=p["seq_len"],
            image_size=p["image_size"], precision=p["precision"], optimizer=p["optimizer"], hardware=p["hardware"],
            train_samples=p["train_samples"], epochs=p["epochs"], train_tokens=p["train_tokens"],
            infer_samples=p["infer_samples"], freeze=tuple(p["freeze"] or ()), grad_accum=p["grad_accum"],
            allow_longer=p["allow_longer"], trust_remote_code=p["trust_remote_code"], allow_hub=p["hub"],
            task=p["task"], prompt_tokens=p["prompt_tokens"], generate_tokens=p["generate_tokens"],
            model_options=parse_pairs(p["model_option"] or ()), trust_pickle=p["trust_pickle"],
            hardware_file=p["hardware_file"], calibration=p["calibrate"], announce=announce, progress=tick))
    if ignored:
        result.notes.append(f"ignored by afford measure (one process on this one device; no prices, budgets or "
                            f"reports): {', '.join(ignored)}; `afford assess` takes them")
    data = result.to_dict()
    remember("measurement", result.model, {"model": p["model"], "argv": sys.argv[1:]}, data)
    if p["as_json"]:
        emit_json(data)
        return
    _render_measurement(result)


def _ignored(ctx: typer.Context, p: dict[str, Any]) -> list[str]:
    """The assess options given (on the command line or in --job) that a local measurement does not use."""
    out = []
    for param in ctx.command.params:
        name = param.name or ""
        if name in IGNORED and p.get(name) not in (None, False, param.default):
            flag = max(param.opts, key=len)
            out.append(flag if isinstance(p[name], bool) else f"{flag} {p[name]}")
    return out


def _render_measurement(result: Any) -> None:
    """The measured-against-predicted table, the peak-memory method and the notes."""
    from rich.table import Table

    table = Table(title=f"{result.model} on {result.device}: measured vs predicted ({result.hardware})",
                  header_style="bold")
    for col in ("figure", "measured", "predicted", "error"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    err, m, pr = result.error_pct, result.measured, result.predicted
    gen = result.job.get("generation")
    batch = f"generation batch ({gen['prompt_tokens']} + {gen['generate_tokens']} tokens)" if gen else "inference batch"
    rows = [("train_step_seconds", "training step"), ("infer_batch_seconds", batch),
            ("train_seconds", f"training job ({result.job.get('train_steps', 0):,} steps, extrapolated)"),
            ("infer_seconds", f"inference job ({result.job.get('infer_batches', 0):,} batches, extrapolated)")]
    for key, label in rows:
        if key in m and key in pr:
            table.add_row(label, duration(m[key]), duration(pr[key]), _pct(err.get(key)))
    table.add_row("peak memory", f"{m['peak_bytes'] / 2**20:,.0f} MiB", f"{pr['peak_bytes'] / 2**20:,.0f} MiB",
                  _pct(err.get("peak_bytes")))
    console = Console()
    console.print(table)
    console.print(f"[dim]peak memory: {result.peak_method}[/dim]")
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}", soft_wrap=True)


def _pct(value: float | None) -> str:
    """A relative error as a signed percentage; "-" when there is none."""
    return "-" if value is None else f"{value:+.1f}%"


history_app = typer.Typer(help="Past assessments, measurements and calibrations kept in the local store.",
                          invoke_without_command=True)
app.add_typer(history_app, name="history")


@history_app.callback()
def history_list(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option(help="assessment | measurement | calibration")] = None,
    limit: Annotated[int, typer.Option(help="most records to list")] = 20,
    as_json: AsJson = False,
) -> None:
    """List stored records, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from afford.store import KINDS, Store

    if kind is not None and kind not in KINDS:
        fail(f"unknown --kind {kind!r}; choose {', '.join(KINDS)}")

    def read() -> list[Any]:
        with Store() as store:
            return [r.to_dict() for r in store.list(kind, limit)]

    records = guarded(read)
    if as_json:
        emit_json({"records": records})
        return
    from rich.table import Table

    table = Table(title="afford history", header_style="bold")
    for col in ("id", "when", "kind", "name"):
        table.add_column(col)
    for r in records:
        table.add_row(str(r["id"]), r["created"], r["kind"], r["name"])
    Console().print(table)


@history_app.command("show")
def history_show(record_id: Annotated[int, typer.Argument(help="record id from `afford history`")]) -> None:
    """Print one stored record as JSON."""
    from afford.store import Store

    def read() -> dict[str, Any]:
        with Store() as store:
            return store.get(record_id).to_dict()

    emit_json(guarded(read))
