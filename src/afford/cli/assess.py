"""`afford assess` and `afford plan`: one job on one model, its figures and verdict, or the plans that fit."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from afford.cli.app import app, emit_json, fail, guarded, working
from afford.cli.jobs import remember, with_job, write_report
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


@app.command()
@job_command("assess")
def assess(
    ctx: typer.Context,
    model: JobModelArg = None,
    job: Job = None,
    trust_code: TrustCode = False,
    report: Report = None,
    force: Force = False,
    explain: Explain = False,
    as_json: AsJson = False,
    verbose: Verbose = False,
    **options: Any,
) -> None:
    """Count compute and memory of MODEL for a job, and its time, cost, energy and CO2 on hardware; with a
    budget (or --available), the verdict and the plans that make it affordable."""
    from afford.api import assess as run
    from afford.sources.checkpoint import NoArchitecture

    p = with_job(ctx, "assess")

    def attempt() -> Any:
        try:
            return run(p["model"], **request_kwargs("assess", p))
        except NoArchitecture as exc:  # weights with no config beside them: the header figures instead
            return exc

    with working(f"tracing {p['model']} on the meta device"):
        result = guarded(attempt)
    if isinstance(result, NoArchitecture):
        _weights_only(result, p)
        return
    data = result.to_dict()
    explained = _explain(data) if p["explain"] else None
    if explained is not None:
        data["explain"] = [x.to_dict() for x in explained]
    remember("assessment", str(data["model"]["name"]), {"model": p["model"], "argv": sys.argv[1:]}, data)
    _show(result, data, p, verbose=p["verbose"], explained=explained)


def _show(result: Any, data: dict[str, Any], p: dict[str, Any], verbose: bool = False,
          explained: Any = None) -> None:
    """An assessment's output: its report (--report), then its JSON, or its screen (and --explain's table)."""
    written = write_report(result, p["report"])
    if p["as_json"]:
        if written:
            data["report"] = written
        emit_json(data)
        return
    from afford.report.terminal import render_assessment

    console = Console()
    render_assessment(data, console, verbose=verbose)
    if explained is not None:
        from afford.report.explain import render_explanations

        render_explanations(explained, console)
    if written:
        console.print(f"report: {written}")


def _weights_only(exc: Any, p: dict[str, Any]) -> None:
    """A checkpoint with no config.json beside it (`checkpoint.NoArchitecture`): print what its headers tell
    (parameters, dtypes, the static memory of the job) and say that compute needs the architecture."""
    from afford import workload
    from afford.sources import checkpoint

    info, why = exc.info, str(exc)
    data = guarded(lambda: checkpoint.summary(info, workload.parse_enum(workload.Precision, p["precision"],
                                                                        "precision"),
                                              workload.parse_enum(workload.Optimizer, p["optimizer"], "optimizer")))
    data["notes"] = [why]
    if p["as_json"]:
        emit_json(data)
        return
    console = Console()
    checkpoint.render(data, console)
    console.print(f"[yellow]note:[/yellow] {why}")


def _explain(data: dict[str, Any]) -> Any:
    """Each headline figure's formula, inputs and sources (`--explain`)."""
    from afford.report.explain import explain

    return guarded(lambda: explain(data))


@app.command("plan")
@job_command("plan")
def plan_command(
    ctx: typer.Context,
    model: JobModelArg = None,
    emit: Annotated[tuple[str, str] | None, typer.Option(help="write launch config: accelerate|deepspeed DIR")] = None,
    job: Job = None,
    trust_code: TrustCode = False,
    report: Report = None,
    force: Force = False,
    as_json: AsJson = False,
    **options: Any,
) -> None:
    """Search precisions, LoRA/QLoRA, memory savers, sharding and hardware for the cheapest and fastest
    feasible ways to train MODEL within a budget; for an inference job (--infer-samples or --task generate
    alone), the devices, replicas and weight formats that serve it (at --rate, as served)."""
    from afford.api import plan_job
    from afford.assess import Assessment

    if emit is not None and emit[0] not in ("accelerate", "deepspeed"):
        fail(f"--emit {emit[0]!r}: choose accelerate or deepspeed")
    p = with_job(ctx, "plan")
    with working(f"planning {p['model']}"):
        result = guarded(lambda: plan_job(p["model"], **request_kwargs("plan", p)))
    if isinstance(result, Assessment):  # an inference job: its verdict and plans, as assess shows them
        if emit is not None:
            fail("--emit writes training launch configs; an inference job has none")
        _show(result, result.to_dict(), p)  # an inference job: its verdict, plans and serving figures
        return
    data = result.to_dict()
    written = write_report(result, p["report"])
    if written:
        data["report"] = written
    if emit is not None:
        from afford.decide.emit import write

        chosen = result.verdict.plan or result.found.cheapest or result.asked
        data["emitted"] = guarded(lambda: [str(p) for p in write(emit[0], Path(emit[1]), chosen.strategy)])
    if as_json:
        emit_json(data)
        return
    from afford.report.terminal import render_verdict

    render_verdict(data["verdict"], data["plans"], Console())
    for path in [*data.get("emitted", []), *([written] if written else [])]:
        Console().print(f"wrote {path}")


