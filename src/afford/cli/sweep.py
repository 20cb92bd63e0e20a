"""`afford sweep`: every point of models x hardware x precisions x batch sizes priced, in worker processes; a
table, CSV, Parquet or JSON."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from afford import schema, units
from afford.cli.app import app, emit_json, fail, guarded
from afford.cli.jobs import check_report, write_report
from afford.cli.options import AsJson, Force, Jobs, Report, job_parameters, request_kwargs

F = TypeVar("F", bound=Callable[..., Any])

Hardware = Annotated[str, typer.Option(help="device ids, comma-separated (afford hardware list)")]
Precisions = Annotated[str, typer.Option(
    help="precisions, comma-separated: fp32 | fp16-mixed | bf16-mixed | bf16 | fp16 | tf32")]
BatchSizes = Annotated[str, typer.Option(help="samples per step on one device, comma-separated (1,8,64)")]
Csv = Annotated[str | None, typer.Option(help="also write the rows to this CSV file")]
Parquet = Annotated[str | None, typer.Option(help="also write the rows to this Parquet file (needs pyarrow)")]
Scheduler = Annotated[str | None, typer.Option(help="price on the Dask cluster whose scheduler is at this address "
                                               "(tcp://host:8786), or 'local': a local one of --jobs processes "
                                               "(needs afford[dask])")]


def _sweep_flags() -> set[str]:
    """The command-line parameters of the request fields a sweep takes (decide/sweep.py `taken`)."""
    from afford.decide.sweep import taken

    return {s.flag for s in taken(schema.specs("assess"))}


def sweep_options(fn: F) -> F:
    """Give the sweep function assess's job options that a sweep takes (not its axes, a budget or plans), from
    the schema, after its positional argument and before its own switches."""
    hints = typing.get_type_hints(fn, include_extras=True)
    own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in inspect.signature(fn).parameters.values()
           if p.kind is not inspect.Parameter.VAR_KEYWORD]
    head = [p for p in own if p.name == "models"]
    tail = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p not in head]
    flags = _sweep_flags()
    job = [p for p in job_parameters("sweep", offered="assess") if p.name in flags]
    fn.__signature__ = inspect.Signature([*head, *job, *tail])  # type: ignore[attr-defined]
    return fn


def _list(text: str, name: str) -> list[str]:
    """A comma-separated option as its items; none is one error line."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        fail(f"--{name} needs at least one value, comma-separated")
    return items


def _sizes(text: str) -> list[int]:
    """`--batch-size 1,8,64` as integers; a word that is not one is one error line."""
    out = []
    for item in _list(text, "batch-size"):
        try:
            out.append(int(item))
        except ValueError:
            fail(f"--batch-size {item!r} is not a whole number (give sizes like 1,8,64)")
    return out


def _check_out(path: str | None, name: str, force: bool) -> None:
    """Refuse, before any work, an output path whose folder is missing, that is not a file, or that exists
    (without --force)."""
    if not path:
        return
    from afford import safeio

    target = Path(path)
    if not safeio.exists(target.parent) or not target.parent.is_dir():
        fail(f"--{name} {path}: the folder {target.parent} does not exist")
    if safeio.exists(target):
        kind = safeio.kind_of(target.stat().st_mode)
        if kind is not None:
            fail(f"--{name} {path} is {kind}, not a file afford can write")
        if not force:
            fail(f"--{name} {path} exists; pass --force to overwrite it")


@app.command("sweep")
@sweep_options
def sweep_command(
    models: Annotated[list[str], typer.Argument(help="model specs; globs like 'torchvision:*' expand")],
    hardware: Hardware = "a100-80gb",
    precision: Precisions = "bf16-mixed",
    batch_size: BatchSizes = "1",
    jobs: Jobs = None,
    scheduler: Scheduler = None,
    csv: Csv = None,
    parquet: Parquet = None,
    report: Report = None,
    force: Force = False,
    as_json: AsJson = False,
    **options: Any,
) -> None:
    """Price every point of MODELS x --hardware x --precision x --batch-size for one job, in parallel worker
    processes (a model is traced once per precision and batch size, and re-priced on each device)."""
    from afford.decide.sweep import default_jobs, need_pyarrow, sweep, write_csv, write_parquet

    devices, precisions, sizes = _list(hardware, "hardware"), _list(precision, "precision"), _sizes(batch_size)
    _check_out(csv, "csv", force)
    _check_out(parquet, "parquet", force)
    check_report(report, force)
    if parquet:
        guarded(need_pyarrow)  # refused before the work, not after
    flags = _sweep_flags()
    names = {s.name for s in schema.specs("assess") if s.flag in flags}
    kwargs = {k: v for k, v in request_kwargs("assess", options).items() if k in names}
    workers = default_jobs() if jobs is None else jobs
    result = guarded(lambda: sweep(models, hardware=devices, precision=precisions, batch_size=sizes, jobs=workers,
                                   scheduler=scheduler, **kwargs))
    data = result.to_dict()
    written = []
    for path, write in ((csv, write_csv), (parquet, write_parquet)):
        if path:
            guarded(lambda w=write, p=path: w(result, Path(p)))  # type: ignore[misc]
            written.append(path)
    if report:
        written.append(write_report(result, report) or report)
    if as_json:
        data["written"] = written
        emit_json(data)
        return
    console = Console()
    render_sweep(data, console, SCREEN_ROWS if written else None)
    for path in written:
        console.print(f"wrote {path}")


def _fig(value: Any, fmt: Callable[[float], str]) -> str:
    """A figure of a row, or '-' where the point has none."""
    return "-" if value is None else fmt(value)


SCREEN_ROWS = 100  # points shown on screen when every row went to a file as well


def render_sweep(data: dict[str, Any], console: Console, limit: int | None = None) -> None:
    """The sweep's priced points, one line each (the first `limit`, the rest said to be in the files written);
    then each model's errors once, with the points they cost."""
    priced = [r for r in data["rows"] if not r["error"]]
    rows = priced if limit is None else priced[:limit]
    t = Table(title=f"{len(priced)} of {len(data['rows'])} points priced", header_style="bold")
    for col in ("model", "hardware", "precision", "batch", "params", "fwd/sample", "train", "train $", "infer",
                "per device", "fits"):
        t.add_column(col, justify="left" if col in ("model", "hardware", "precision") else "right")
    for r in rows:
        t.add_row(r["model"], r["hardware"], r["precision"], str(r["batch_size"]), _fig(r["params"], units.count),
                  _fig(r["forward_flops"], units.flops), _fig(r["train_seconds"] or None, units.duration),
                  _fig(r["train_usd"], lambda v: f"${v:,.2f}"), _fig(r["infer_seconds"] or None, units.duration),
                  _fig(r["per_device_bytes"], units.gib), "yes" if r["fits"] else "no")
    if rows:
        console.print(t)
    if len(rows) < len(priced):
        console.print(f"... {len(priced) - len(rows):,} more priced points in the file(s) written")
    failed: dict[tuple[str, str], int] = {}
    for r in data["rows"]:
        if r["error"]:
            failed[(r["model"], r["error"])] = failed.get((r["model"], r["error"]), 0) + 1
    for (model, error), n in failed.items():
        console.print(f"[red]error[/red] {model} ({n} point{'s' if n > 1 else ''}): {error}", soft_wrap=True)
    for note in data.get("notes", []):
        console.print(f"[dim]{note}[/dim]")
