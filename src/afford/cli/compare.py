"""`afford models` and `afford compare`: the models a source offers, and candidate models ranked for one job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from afford.cli.app import app, emit_json, guarded
from afford.cli.jobs import check_report, write_report
from afford.cli.options import (
    AsJson,
    BatchSize,
    BudgetUsd,
    Deadline,
    Epochs,
    Force,
    HardwareFile,
    ImageSize,
    MaxCo2,
    MaxKwh,
    Optim,
    Precision,
    Report,
    SeqLen,
    TrainSamples,
    TrainTokens,
)
from afford.errors import AffordError


@app.command("models")
def models(
    source: Annotated[str, typer.Option(help="hf | torchvision | timm")] = "hf",
    pattern: Annotated[str, typer.Option(help="substring filter")] = "",
    as_json: AsJson = False,
) -> None:
    """List the models a source offers (hf: the bundled offline catalog)."""
    from afford.sources import hf, timm_src, torchvision_src

    def names() -> list[str]:
        if source == "hf":
            return [f"hf:{k}" for k in sorted(hf.catalog())]
        if source == "torchvision":
            return [f"torchvision:{n}" for n in torchvision_src.list_names()]
        if source == "timm":
            return [f"timm:{n}" for n in timm_src.list_names()]
        raise AffordError(f"unknown source {source!r}; choose hf, torchvision or timm")

    found = [n for n in guarded(names) if pattern.lower() in n.lower()]
    if as_json:
        emit_json({"models": found})
    else:
        Console().print("\n".join(found))


@app.command("compare")
def compare_command(
    models: Annotated[list[str], typer.Argument(help="model specs; globs like 'torchvision:*' expand")],
    train_samples: TrainSamples = None,
    epochs: Epochs = 1.0,
    train_tokens: TrainTokens = None,
    batch_size: BatchSize = 1,
    seq_len: SeqLen = None,
    image_size: ImageSize = None,
    precision: Precision = "bf16-mixed",
    optimizer: Optim = "adamw",
    hardware: Annotated[str | None, typer.Option(help="device id (default a100-80gb)")] = None,
    count: Annotated[int | None, typer.Option(help="devices")] = None,
    budget_usd: BudgetUsd = None,
    deadline: Deadline = None,
    max_kwh: MaxKwh = None,
    max_co2_kg: MaxCo2 = None,
    plot: Annotated[str | None, typer.Option(help="write accuracy-against-cost to a .png or .svg file")] = None,
    hardware_file: HardwareFile = None,
    report: Report = None,
    force: Force = False,
    as_json: AsJson = False,
) -> None:
    """Rank candidate models for one job and budget: cost, time, memory, verdict, accuracy per dollar."""
    from afford.decide.compare import compare
    from afford.decide.compare import plot as draw

    check_report(report, force)
    result = guarded(lambda: compare(models, hardware=hardware, count=count, budget_usd=budget_usd,
                                     deadline=deadline, max_kwh=max_kwh, max_co2_kg=max_co2_kg,
                                     hardware_file=hardware_file, train_samples=train_samples, epochs=epochs,
                                     train_tokens=train_tokens, batch_size=batch_size, seq_len=seq_len,
                                     image_size=image_size, precision=precision, optimizer=optimizer))
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
