"""CLI commands about this machine: calibrate, measure, and the history kept in the local store."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from afford.cli import AsJson, ImageSize, ModelArg, Optim, SeqLen, _emit_json, _fail, _guarded, _remember, app


@app.command("calibrate")
def calibrate_command(
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    as_json: AsJson = False,
) -> None:
    """Measure this machine's matmul and convolution throughput, memory bandwidth and per-op overhead, and keep
    them as the calibrated profile `cpu-local` (or `cuda-local`) that later assessments can use."""
    from rich.progress import Progress

    from afford.measure.calibrate import calibrate
    from afford.store import Store

    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("calibrating", total=1.0)
        profile = _guarded(lambda: calibrate(device, lambda what, frac: bar.update(task, completed=frac,
                                                                                      description=what)))

    def save() -> int:
        with Store() as store:
            return store.add("calibration", profile["id"], {"device": device}, profile)

    record = _guarded(save)
    if as_json:
        _emit_json({"record": record, "profile": profile})
        return
    p = profile["peak_tflops"]
    Console().print(f"{profile['id']}: matmul fp32 {p['fp32']:.3f} TFLOP/s, bf16 {p['bf16']:.3f} TFLOP/s, "
                    f"conv fp32 {p['tf32']:.3f} TFLOP/s, bandwidth {profile['memory_bandwidth_gb_s']:.1f} GB/s, "
                    f"op overhead {profile['op_overhead_s'] * 1e6:.1f} us (stored as record {record}; use "
                    f"--hardware {profile['id']})")


@app.command("measure")
def measure_command(
    model: ModelArg,
    steps: Annotated[int, typer.Option(help="timed training steps and inference batches")] = 5,
    device: Annotated[str, typer.Option(help="cpu | cuda")] = "cpu",
    batch_size: Annotated[int, typer.Option(help="samples per step")] = 1,
    seq_len: SeqLen = None,
    image_size: ImageSize = None,
    precision: Annotated[str, typer.Option(help="fp32 | fp16-mixed | bf16-mixed | bf16")] = "fp32",
    optimizer: Optim = "adamw",
    hardware: Annotated[str | None, typer.Option(help="profile to predict with (default: the calibrated one)")] = None,
    as_json: AsJson = False,
) -> None:
    """Run real training steps and inference batches here and compare them with afford's prediction."""
    from rich.progress import Progress

    from afford.measure.run import measure

    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("preparing", total=None)

        def tick(what: str, i: int, n: int) -> None:
            bar.update(task, description=what, completed=i, total=n)

        result = _guarded(lambda: measure(model, steps=steps, device=device, batch_size=batch_size,
                                          seq_len=seq_len, image_size=image_size, precision=precision,
                                          optimizer=optimizer, hardware=hardware, progress=tick))
    data = result.to_dict()
    _remember("measurement", result.model, {"model": model, "argv": sys.argv[1:]}, data)
    if as_json:
        _emit_json(data)
        return
    from rich.table import Table

    table = Table(title=f"{result.model} on {device}: measured vs predicted ({result.hardware})", header_style="bold")
    for col in ("figure", "measured", "predicted", "error"):
        table.add_column(col, justify="left" if col == "figure" else "right")
    err = result.error_pct
    for key, label in (("train_step_seconds", "training step"), ("infer_batch_seconds", "inference batch")):
        table.add_row(label, f"{result.measured[key]:.3f} s", f"{result.predicted[key]:.3f} s", f"{err[key]:+.1f}%")
    table.add_row("peak memory", f"{result.measured['peak_bytes'] / 2**20:,.0f} MiB",
                  f"{result.predicted['peak_bytes'] / 2**20:,.0f} MiB", f"{err['peak_bytes']:+.1f}%")
    Console().print(table)
    Console().print(f"[dim]peak memory: {result.peak_method}[/dim]")
    for note in result.notes:
        Console().print(f"[yellow]note:[/yellow] {note}")


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
        _fail(f"unknown --kind {kind!r}; choose {', '.join(KINDS)}")

    def read() -> list[Any]:
        with Store() as store:
            return [r.to_dict() for r in store.list(kind, limit)]

    records = _guarded(read)
    if as_json:
        _emit_json({"records": records})
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

    _emit_json(_guarded(read))
