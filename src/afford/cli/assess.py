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


@app.command()
def assess(
    ctx: typer.Context,
    model: JobModelArg = None,
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
    depth: Depth = 2,
    allow_longer: AllowLonger = False,
    trust_remote_code: TrustRemoteCode = False,
    hub: Hub = False,
    hardware: Annotated[str | None, typer.Option(help="device id (afford hardware list); default a100-80gb")] = None,
    count: Count = None,
    nodes: Nodes = None,
    gpus_per_node: GpusPerNode = None,
    parallel: Parallel = "dp",
    tp: Tp = 1,
    pp: Pp = 1,
    grad_accum: GradAccum = 1,
    recompute: Recompute = False,
    price_per_hour: PricePerHour = None,
    region: Region = None,
    grid_gco2_kwh: GridIntensity = None,
    pue: Pue = None,
    mfu: Mfu = None,
    hardware_file: HardwareFile = None,
    budget_usd: BudgetUsd = None,
    deadline: Deadline = None,
    max_kwh: MaxKwh = None,
    max_co2_kg: MaxCo2 = None,
    available: Available = None,
    electricity_usd_kwh: Electricity = None,
    task: Task = "auto",
    prompt_tokens: PromptTokens = None,
    generate_tokens: GenerateTokens = None,
    model_option: ModelOption = None,
    trust_pickle: TrustPickle = False,
    job: Job = None,
    trust_code: TrustCode = False,
    report: Report = None,
    force: Force = False,
    explain: Explain = False,
    as_json: AsJson = False,
    verbose: Verbose = False,
) -> None:
    """Count compute and memory of MODEL for a job, and its time, cost, energy and CO2 on hardware; with a
    budget (or --available), the verdict and the plans that make it affordable."""
    from afford.api import assess as run
    from afford.sources.checkpoint import NoArchitecture

    p = with_job(ctx, "assess")

    def attempt() -> Any:
        try:
            return run(
                p["model"], train_samples=p["train_samples"], epochs=p["epochs"], train_tokens=p["train_tokens"],
                infer_samples=p["infer_samples"], batch_size=p["batch_size"], seq_len=p["seq_len"],
                image_size=p["image_size"], precision=p["precision"], optimizer=p["optimizer"],
                freeze=tuple(p["freeze"] or ()), depth=p["depth"], allow_longer=p["allow_longer"],
                trust_remote_code=p["trust_remote_code"], allow_hub=p["hub"], hardware=p["hardware"], count=p["count"],
                nodes=p["nodes"], gpus_per_node=p["gpus_per_node"], parallel=p["parallel"], tp=p["tp"], pp=p["pp"],
                grad_accum=p["grad_accum"], recompute=p["recompute"], price_per_hour=p["price_per_hour"],
                region=p["region"], grid_gco2_kwh=p["grid_gco2_kwh"], pue=p["pue"], mfu=p["mfu"],
                hardware_file=p["hardware_file"], budget_usd=p["budget_usd"], deadline=p["deadline"],
                max_kwh=p["max_kwh"], max_co2_kg=p["max_co2_kg"], available=p["available"],
                electricity_usd_kwh=p["electricity_usd_kwh"], task=p["task"], prompt_tokens=p["prompt_tokens"],
                generate_tokens=p["generate_tokens"], model_options=parse_pairs(p["model_option"] or ()),
                trust_pickle=p["trust_pickle"])
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
    written = write_report(result, p["report"])
    if p["as_json"]:
        if written:
            data["report"] = written
        emit_json(data)
        return
    from afford.report.terminal import render_assessment

    console = Console()
    render_assessment(data, console, verbose=p["verbose"])
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
def plan_command(
    ctx: typer.Context,
    model: JobModelArg = None,
    train_samples: TrainSamples = None,
    epochs: Epochs = 1.0,
    train_tokens: TrainTokens = None,
    batch_size: Annotated[int, typer.Option(help="samples per optimizer step per device")] = 1,
    seq_len: SeqLen = None,
    image_size: ImageSize = None,
    precision: Annotated[str, typer.Option(help="precision as asked")] = "bf16-mixed",
    optimizer: Optim = "adamw",
    hardware: Annotated[str | None, typer.Option(help="the device as asked")] = None,
    count: Annotated[int | None, typer.Option(help="devices as asked")] = None,
    budget_usd: BudgetUsd = None,
    deadline: Deadline = None,
    max_kwh: MaxKwh = None,
    max_co2_kg: MaxCo2 = None,
    available: Available = None,
    electricity_usd_kwh: Electricity = None,
    price_per_hour: PricePerHour = None,
    region: Region = None,
    lora_rank: Annotated[int, typer.Option(help="rank of LoRA/QLoRA adapters")] = 16,
    max_count: Annotated[int, typer.Option(help="most devices to consider")] = 16384,
    emit: Annotated[tuple[str, str] | None, typer.Option(help="write launch config: accelerate|deepspeed DIR")] = None,
    hardware_file: HardwareFile = None,
    allow_longer: AllowLonger = False,
    model_option: ModelOption = None,
    trust_pickle: TrustPickle = False,
    job: Job = None,
    trust_code: TrustCode = False,
    report: Report = None,
    force: Force = False,
    as_json: AsJson = False,
) -> None:
    """Search precisions, LoRA/QLoRA, memory savers, sharding and hardware for the cheapest and fastest
    feasible ways to train MODEL within a budget."""
    from afford.decide.run import plan as run_plan

    if emit is not None and emit[0] not in ("accelerate", "deepspeed"):
        fail(f"--emit {emit[0]!r}: choose accelerate or deepspeed")
    p = with_job(ctx, "plan")
    result = guarded(lambda: run_plan(
        p["model"], train_samples=p["train_samples"], epochs=p["epochs"], train_tokens=p["train_tokens"],
        batch_size=p["batch_size"], seq_len=p["seq_len"], image_size=p["image_size"], precision=p["precision"],
        optimizer=p["optimizer"], hardware=p["hardware"], count=p["count"], budget_usd=p["budget_usd"],
        deadline=p["deadline"], max_kwh=p["max_kwh"], max_co2_kg=p["max_co2_kg"], available=p["available"],
        electricity_usd_kwh=p["electricity_usd_kwh"], price_per_hour=p["price_per_hour"], region=p["region"],
        lora_rank=p["lora_rank"], max_count=p["max_count"], hardware_file=p["hardware_file"],
        allow_longer=p["allow_longer"], model_options=parse_pairs(p["model_option"] or ()),
        trust_pickle=p["trust_pickle"]))
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
