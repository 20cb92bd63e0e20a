"""`afford models` and `afford compare`: the models a source offers, and candidate models ranked for one job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from afford.cli.app import app, emit_json, guarded
from afford.cli.jobs import check_report, write_report
from afford.cli.options import AsJson, Force, Jobs, Report, job_command, request_kwargs

# the listable sources (sources/registry.py `listable()`, checked by tests/test_registry.py): written out so that
# building the CLI does not import the sources package (and torch)
MODEL_SOURCES = "torchvision | timm | hf | keras | recsys | diffusers"


@app.command("models")
def models(
    source: Annotated[str, typer.Option(help=MODEL_SOURCES)] = "hf",
    pattern: Annotated[str, typer.Option(help="substring filter")] = "",
    as_json: AsJson = False,
) -> None:
    """List the models a source offers (hf: the bundled offline catalog)."""
    from afford.sources import registry

    found = [n for n in guarded(lambda: registry.names(source)) if pattern.lower() in n.lower()]
    if as_json:
        emit_json({"models": found})
    else:
        Console().print("\n".join(found))


@app.command("compare")
@job_command("compare")
def compare_command(
    models: Annotated[list[str], typer.Argument(help="model specs; globs like 'torchvision:*' expand")],
    plot: Annotated[str | None, typer.Option(help="write accuracy-against-cost to a .png or .svg file")] = None,
    report: Report = None,
    force: Force = False,
    as_json: AsJson = False,
    jobs: Jobs = None,
    **options: Any,
) -> None:
    """Rank candidate models for one job and budget: cost, time, memory, verdict, accuracy per dollar."""
    from afford.decide.compare import compare
    from afford.decide.compare import plot as draw
    from afford.decide.sweep import default_jobs

    check_report(report, force)
    workers = default_jobs() if jobs is None else jobs
    result = guarded(lambda: compare(models, jobs=workers, **request_kwargs("compare", options)))
    data = result.to_dict()
    if plot:
        data["plot"] = str(guarded(lambda: draw(result, Path(plot))))
    written = write_report(result, report)
    if written:
        data["report"] = written
    if as_json:
        emit_json(data)
        return
    from afford.report.terminal import render_comparison

    render_comparison(data, Console())
    if written:
        Console().print(f"wrote {written}")
