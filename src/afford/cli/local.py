"""CLI commands about this machine: calibrate, measure, and the history kept in the local store."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from afford.cli.app import app, emit_json, fail, guarded
from afford.cli.jobs import remember, with_job
from afford.cli.options import (
    AsJson,
    Explain,
    Force,
    Job,
    JobModelArg,
    Report,
    TrustCode,
    Verbose,
    job_command,
    request_kwargs,
)
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


# the command's own switches that a local measurement takes (a copied assess command runs) and does not use
IGNORED_SWITCHES = ("report", "force", "explain", "verbose")


@app.command("measure")
@job_command("measure", offered="assess")
def measure_command(
    ctx: typer.Context,
    model: JobModelArg = None,
    steps: Annotated[int, typer.Option(help="timed training steps and inference batches (1-1000)")] = 5,
    device: Annotated[str, typer.Option(help="cpu | cuda | cuda:N")] = "cpu",
    calibrate: Annotated[str, typer.Option(
        help="with no stored calibration of this machine: quick (calibrate first, a few seconds; stored) | full | "
             "no (refuse and name the command)")] = "quick",
    job: Job = None,
    trust_code: TrustCode = False,
    report: Report = None,
    force: Force = False,
    explain: Explain = False,
    as_json: AsJson = False,
    verbose: Verbose = False,
    **options: Any,
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

        result = guarded(lambda: measure(p["model"], steps=p["steps"], device=p["device"],
                                         calibration=p["calibrate"], announce=announce, progress=tick,
                                         **request_kwargs("measure", p)))
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
    from afford import schema

    unused = {s.flag for s in schema.specs("assess")} - {s.flag for s in schema.specs("measure")}
    out = []
    for param in ctx.command.params:
        name = param.name or ""
        if (name in unused or name in IGNORED_SWITCHES) and p.get(name) not in (None, False, param.default):
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
