"""The `afford` command line: parse, call the library, render. No logic of its own.

Every AffordError becomes one line on stderr and exit code 2; set AFFORD_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from afford.errors import AffordError, cli_names
from afford.sources.options import parse_pairs

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Is a pretrained model affordable for your job? Exact compute and memory, no weights.")

ModelArg = Annotated[str, typer.Argument(help="torchvision:NAME, timm:NAME, hf:ORG/NAME, module:pkg.mod:fn, a "
                                              "config.json or model directory, or a bare name")]
JobModelArg = Annotated[str | None, typer.Argument(
    help="torchvision:NAME, timm:NAME, hf:ORG/NAME, keras:NAME, recsys:NAME, diffusers:NAME, module:pkg.mod:fn, a "
         "config.json, model directory, .onnx, .keras or .safetensors path, or a bare name (or set it in --job)")]
Job = Annotated[str | None, typer.Option(help="a job file (.toml/.yaml) with model, workload, hardware and budget; "
                                              "flags override it")]
Report = Annotated[str | None, typer.Option(help="also write a report: PATH.html (self-contained) or PATH.md")]

# Options shared by assess, plan and compare (one declaration each).
TrainSamples = Annotated[int | None, typer.Option(help="training samples per epoch (N)")]
Epochs = Annotated[float, typer.Option(help="passes over the training samples")]
TrainTokens = Annotated[int | None, typer.Option(help="training tokens in all (language models; instead of samples)")]
SeqLen = Annotated[int | None, typer.Option(help="tokens per sample (default: model max, capped)")]
ImageSize = Annotated[int | None, typer.Option(help="image side in pixels (default: the model's native size)")]
Optim = Annotated[str, typer.Option(help="sgd | sgd-momentum | adam | adamw | adam-8bit | adafactor | adagrad | "
                                                 "rowwise-adagrad")]
Count = Annotated[int | None, typer.Option(help="devices in all")]
BudgetUsd = Annotated[float | None, typer.Option(help="money you can spend (USD)")]
Deadline = Annotated[str | None, typer.Option(help="time you have, e.g. 36h, 7d")]
MaxKwh = Annotated[float | None, typer.Option(help="energy limit (kWh)")]
MaxCo2 = Annotated[float | None, typer.Option(help="carbon limit (kg CO2e)")]
Available = Annotated[str | None, typer.Option(help="hardware you own: NAME:COUNT[,NAME:COUNT...]")]
Electricity = Annotated[float | None, typer.Option(help="electricity price for owned hardware (USD/kWh)")]
PricePerHour = Annotated[float | None, typer.Option(help="USD per device-hour (overrides the catalog)")]
Region = Annotated[str | None, typer.Option(help="grid region for CO2 (default: world average)")]
HardwareFile = Annotated[str | None, typer.Option(help="TOML/YAML file adding or overriding devices")]
AsJson = Annotated[bool, typer.Option("--json", help="print exactly one JSON object")]
ModelOption = Annotated[list[str] | None, typer.Option("--model-option", "-O",
                                                       help="KEY=VALUE size of a built-in spec (recsys:, diffusers:); "
                                                            "repeatable")]
TrustPickle = Annotated[bool, typer.Option(help="unpickle .bin/.pt checkpoints (runs code from the file: only if "
                                                "you trust it)")]
TrustCode = Annotated[bool, typer.Option(help="let the --job file run code: a module: model (imports and calls it), "
                                              "trust_remote_code or trust_pickle set in the file")]
Force = Annotated[bool, typer.Option(help="overwrite an existing --report file (and its _files/ folder); let a --job "
                                          "file's report path lie outside the job's folder")]


# set by main() when the command line asks for --json: errors then also print one JSON object on stdout
_JSON_ERRORS = False


def _error_line(message: str, kind: str, code: int) -> None:
    """The one error line on stderr (newlines folded), and with --json one `{"error": {...}}` object on stdout."""
    text = " ".join(str(message).split())
    sys.stderr.write(f"afford: error: {text}\n")
    sys.stderr.flush()
    if _JSON_ERRORS:
        sys.stdout.write(json.dumps({"error": {"type": kind, "message": text, "exit_code": code}}) + "\n")
        sys.stdout.flush()


def _fail(message: str, code: int = 2, kind: str = "InputError") -> None:
    _error_line(message, kind, code)
    raise typer.Exit(code)


def _guarded(fn: Callable[[], Any]) -> Any:
    """Run a library call of a command: its messages name options as flags (`errors.opt`), and an AffordError
    becomes one line on stderr and exit 2."""
    try:
        with cli_names():
            return fn()
    except AffordError as exc:
        if os.environ.get("AFFORD_DEBUG"):
            raise
        _fail(str(exc), kind=type(exc).__name__)
    except (KeyboardInterrupt, typer.Exit):
        raise
    except Exception as exc:
        if os.environ.get("AFFORD_DEBUG"):
            raise
        _fail(_internal(exc), code=1, kind="InternalError")


def _internal(exc: BaseException) -> str:
    first = str(exc).splitlines()[0][:300] if str(exc).strip() else ""
    return f"internal error ({type(exc).__name__}: {first}); rerun with AFFORD_DEBUG=1 and report it"


def _remember(kind: str, name: str, inputs: dict[str, Any], result: dict[str, Any]) -> None:
    """Keep a result in the local store; a store that cannot be used is one line on stderr, never a failure."""
    if os.environ.get("AFFORD_NO_STORE"):
        return
    from afford.store import Store, StoreError

    try:
        with Store() as store:
            store.add(kind, name, inputs, result)
    except StoreError as exc:
        Console(stderr=True, highlight=False).print(f"afford: warning: {exc}", markup=False, soft_wrap=True)


@contextmanager
def _working(text: str) -> Iterator[None]:
    """A spinner on stderr while something slow runs (only when stderr is a terminal; stdout stays clean)."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with console.status(text):
        yield


def _with_job(ctx: typer.Context, command: str) -> dict[str, Any]:
    """The command's parameters, with a --job file's values under the flags typed on the command line."""
    params = dict(ctx.params)
    # compared by name: typer may ship its own copy of click's ParameterSource enum
    explicit = {name for name in params
                if getattr(ctx.get_parameter_source(name), "name", "") in ("COMMANDLINE", "ENVIRONMENT")}
    if params.get("job"):
        from afford import jobfile

        params = _guarded(lambda: jobfile.merge(params["job"], params, explicit, command,
                                                trust_code=bool(params.get("trust_code")),
                                                force=bool(params.get("force"))))
    if not params.get("model"):
        _fail(f"afford {command}: give MODEL (or a --job file that sets model)")
    _check_report(params.get("report"), bool(params.get("force")))
    return params


def _check_report(path: str | None, force: bool = False) -> None:
    """Refuse, before any work is done, a --report path with an unknown suffix, in a folder that does not exist,
    that is not a regular file, or that exists already (it, or the `_files/` folder a .md report writes beside it)
    unless `force`."""
    if not path:
        return
    target = Path(path)
    if target.suffix.lower() not in (".html", ".htm", ".md"):
        _fail(f"--report {path}: give a .html, .htm or .md file")
    from afford import safeio

    if not safeio.exists(target.parent) or not target.parent.is_dir():
        _fail(f"--report {path}: the folder {target.parent} does not exist")
    beside = [target.with_name(f"{target.stem}_files")] if target.suffix.lower() == ".md" else []
    for existing in [p for p in (target, *beside) if p.is_symlink() or safeio.exists(p)]:
        kind = safeio.kind_of(existing.stat().st_mode) if safeio.exists(existing) else "a dangling link"
        if existing == target and kind is not None:
            _fail(f"--report {path} is {kind}, not a file afford can write")
        if not force:
            _fail(f"--report {path}: {existing} exists; pass --force to overwrite it")


def _weights_only(exc: Any, p: dict[str, Any]) -> None:
    """A checkpoint with no config.json beside it (`checkpoint.NoArchitecture`): print what its headers tell
    (parameters, dtypes, the static memory of the job) and say that compute needs the architecture."""
    from afford.sources import checkpoint
    from afford.workload import Optimizer, Precision, parse_enum

    info, why = exc.info, str(exc)
    data = _guarded(lambda: checkpoint.summary(info, parse_enum(Precision, p["precision"], "precision"),
                                               parse_enum(Optimizer, p["optimizer"], "optimizer")))
    data["notes"] = [why]
    if p["as_json"]:
        _emit_json(data)
        return
    console = Console()
    checkpoint.render(data, console)
    console.print(f"[yellow]note:[/yellow] {why}")


def _write_report(result: Any, path: str | None) -> str | None:
    """Write `--report PATH` (.html or .md) for a result; the path written, or None when not asked."""
    if not path:
        return None
    from afford.report import write_report

    return str(_guarded(lambda: write_report(result, Path(path))))


def _explain(data: dict[str, Any]) -> Any:
    from afford.report.explain import explain

    return _guarded(lambda: explain(data))


def _emit_json(data: dict[str, Any]) -> None:
    """Print one strict JSON object: a NaN or infinity (never produced on purpose) is an internal error."""
    try:
        text = json.dumps(data, indent=2, default=str, allow_nan=False)
    except ValueError as exc:
        _fail(f"internal error (a non-finite number in the output: {exc}); rerun with AFFORD_DEBUG=1 and report it",
              code=1)
    sys.stdout.write(text + "\n")


@app.command()
def assess(
    ctx: typer.Context,
    model: JobModelArg = None,
    train_samples: TrainSamples = None,
    epochs: Epochs = 1.0,
    train_tokens: TrainTokens = None,
    infer_samples: Annotated[int | None, typer.Option(help="inference samples (M)")] = None,
    batch_size: Annotated[int, typer.Option(help="samples per step on one device")] = 1,
    seq_len: SeqLen = None,
    image_size: ImageSize = None,
    precision: Annotated[str, typer.Option(help="fp32 | fp16-mixed | bf16-mixed | bf16")] = "fp32",
    optimizer: Optim = "adamw",
    freeze: Annotated[list[str] | None, typer.Option(help="freeze parameters matching a glob; '!GLOB' unfreezes; "
                                                           "repeatable, applied in order")] = None,
    depth: Annotated[int, typer.Option(help="depth of the module tree")] = 2,
    allow_longer: Annotated[bool, typer.Option(help="allow --seq-len beyond the model's maximum")] = False,
    trust_remote_code: Annotated[bool, typer.Option(help="run a Hub model's own code (only if you trust it)")] = False,
    hub: Annotated[bool, typer.Option(help="look a config up on the Hugging Face Hub if not found offline")] = False,
    hardware: Annotated[str | None, typer.Option(help="device id (afford hardware list); default a100-80gb")] = None,
    count: Annotated[int | None, typer.Option(help="devices in all")] = None,
    nodes: Annotated[int | None, typer.Option(help="nodes (count = nodes x gpus-per-node)")] = None,
    gpus_per_node: Annotated[int | None, typer.Option(help="devices per node (default: the device's usual)")] = None,
    parallel: Annotated[str, typer.Option(help="dp | zero1 | zero2 | zero3 | fsdp")] = "dp",
    tp: Annotated[int, typer.Option(help="tensor-parallel degree")] = 1,
    pp: Annotated[int, typer.Option(help="pipeline-parallel degree")] = 1,
    grad_accum: Annotated[int, typer.Option(help="micro-batches per optimizer step")] = 1,
    recompute: Annotated[bool, typer.Option(help="activation checkpointing (re-run forward in backward)")] = False,
    price_per_hour: PricePerHour = None,
    region: Region = None,
    grid_gco2_kwh: Annotated[float | None, typer.Option(help="grid intensity, gCO2e/kWh")] = None,
    pue: Annotated[float | None, typer.Option(help="data-centre PUE (default: industry average)")] = None,
    mfu: Annotated[float | None, typer.Option(help="fix model FLOPs utilisation instead of the roofline")] = None,
    hardware_file: HardwareFile = None,
    budget_usd: BudgetUsd = None,
    deadline: Deadline = None,
    max_kwh: MaxKwh = None,
    max_co2_kg: MaxCo2 = None,
    available: Available = None,
    electricity_usd_kwh: Electricity = None,
    task: Annotated[str, typer.Option(help="auto | generate (prefill + cached decode per request)")] = "auto",
    prompt_tokens: Annotated[int | None, typer.Option(help="prompt tokens per request (--task generate)")] = None,
    generate_tokens: Annotated[int | None, typer.Option(help="generated tokens per request (--task generate)")] = None,
    model_option: ModelOption = None,
    trust_pickle: TrustPickle = False,
    job: Job = None,
    trust_code: TrustCode = False,
    report: Report = None,
    force: Force = False,
    explain: Annotated[bool, typer.Option(help="show each headline figure's formula, inputs and sources")] = False,
    as_json: AsJson = False,
    verbose: Annotated[bool, typer.Option(help="every table: compute, memory parts, hardware, modules, coverage")]
    = False,
) -> None:
    """Count compute and memory of MODEL for a job, and its time, cost, energy and CO2 on hardware; with a
    budget (or --available), the verdict and the plans that make it affordable."""
    from afford.assess import assess as run
    from afford.sources.checkpoint import NoArchitecture

    p = _with_job(ctx, "assess")

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

    with _working(f"tracing {p['model']} on the meta device"):
        result = _guarded(attempt)
    if isinstance(result, NoArchitecture):
        _weights_only(result, p)
        return
    data = result.to_dict()
    explained = _explain(data) if p["explain"] else None
    if explained is not None:
        data["explain"] = [x.to_dict() for x in explained]
    _remember("assessment", str(data["model"]["name"]), {"model": p["model"], "argv": sys.argv[1:]}, data)
    written = _write_report(result, p["report"])
    if p["as_json"]:
        if written:
            data["report"] = written
        _emit_json(data)
        return
    from afford.report.terminal import render_assessment

    console = Console()
    render_assessment(data, console, verbose=p["verbose"])
    if explained is not None:
        from afford.report.explain import render_explanations

        render_explanations(explained, console)
    if written:
        console.print(f"report: {written}")


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
    allow_longer: Annotated[bool, typer.Option(help="allow --seq-len beyond the model's maximum")] = False,
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
        _fail(f"--emit {emit[0]!r}: choose accelerate or deepspeed")
    p = _with_job(ctx, "plan")
    result = _guarded(lambda: run_plan(
        p["model"], train_samples=p["train_samples"], epochs=p["epochs"], train_tokens=p["train_tokens"],
        batch_size=p["batch_size"], seq_len=p["seq_len"], image_size=p["image_size"], precision=p["precision"],
        optimizer=p["optimizer"], hardware=p["hardware"], count=p["count"], budget_usd=p["budget_usd"],
        deadline=p["deadline"], max_kwh=p["max_kwh"], max_co2_kg=p["max_co2_kg"], available=p["available"],
        electricity_usd_kwh=p["electricity_usd_kwh"], price_per_hour=p["price_per_hour"], region=p["region"],
        lora_rank=p["lora_rank"], max_count=p["max_count"], hardware_file=p["hardware_file"],
        allow_longer=p["allow_longer"], model_options=parse_pairs(p["model_option"] or ()),
        trust_pickle=p["trust_pickle"]))
    data = result.to_dict()
    written = _write_report(result, p["report"])
    if written:
        data["report"] = written
    if emit is not None:
        from afford.decide.emit import write

        chosen = result.verdict.plan or result.found.cheapest or result.asked
        data["emitted"] = _guarded(lambda: [str(p) for p in write(emit[0], Path(emit[1]), chosen.strategy)])
    if as_json:
        _emit_json(data)
        return
    from afford.report.terminal import render_verdict

    render_verdict(data["verdict"], data["plans"], Console())
    for path in [*data.get("emitted", []), *([written] if written else [])]:
        Console().print(f"wrote {path}")


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

    found = [n for n in _guarded(names) if pattern.lower() in n.lower()]
    if as_json:
        _emit_json({"models": found})
    else:
        Console().print("\n".join(found))


@app.command("compare")
def compare_command(
    models: Annotated[list[str], typer.Argument(help="model specs; globs like 'torchvision:*' expand")],
    train_samples: TrainSamples = None,
    epochs: Epochs = 1.0,
    train_tokens: TrainTokens = None,
    batch_size: Annotated[int, typer.Option(help="samples per step on one device")] = 1,
    seq_len: SeqLen = None,
    image_size: ImageSize = None,
    precision: Annotated[str, typer.Option(help="fp32 | fp16-mixed | bf16-mixed | bf16")] = "bf16-mixed",
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

    _check_report(report, force)
    result = _guarded(lambda: compare(models, hardware=hardware, count=count, budget_usd=budget_usd,
                                      deadline=deadline, max_kwh=max_kwh, max_co2_kg=max_co2_kg,
                                      hardware_file=hardware_file, train_samples=train_samples, epochs=epochs,
                                      train_tokens=train_tokens, batch_size=batch_size, seq_len=seq_len,
                                      image_size=image_size, precision=precision, optimizer=optimizer))
    data = result.to_dict()
    if plot:
        data["plot"] = str(_guarded(lambda: draw(result, Path(plot))))
    written = _write_report(result, report)
    if written:
        data["report"] = written
    if as_json:
        _emit_json(data)
        return
    from afford.report.terminal import render_comparison

    render_comparison(data, Console())
    if written:
        Console().print(f"wrote {written}")


# Commands defined in sibling modules register themselves on `app` when imported.
from afford import cli_catalog, cli_local  # noqa: E402, F401


def main() -> None:
    """Entry point of the `afford` script: usage errors, like every other error, are one line and exit 2;
    Ctrl-C is one line and exit 130."""
    global _JSON_ERRORS
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "--hub" not in sys.argv:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _JSON_ERRORS = "--json" in sys.argv[1:]
    try:
        code = _run_app()
    finally:
        _JSON_ERRORS = False
    raise SystemExit(code)


INTERRUPTED = 130  # the shell's code for SIGINT


def _run_app() -> int:
    """Run the typer app without its own exit handling; the exit code, every error already written as one line."""
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except KeyboardInterrupt:
        code = INTERRUPTED
    except Exception as exc:
        if type(exc).__name__ == "Abort":  # click's word for Ctrl-C inside a prompt
            code = INTERRUPTED
        elif not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            if os.environ.get("AFFORD_DEBUG"):
                raise
            _error_line(_internal(exc), "InternalError", 1)
            return 1
        else:
            ctx = getattr(exc, "ctx", None)
            where = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
            if exc.exit_code:
                _error_line(f"{exc.format_message()}{where}", "UsageError", 2)
            return 2 if exc.exit_code else 0
    code = code if isinstance(code, int) else 0
    if code == INTERRUPTED:  # typer turns Ctrl-C inside a command into a silent exit code 130
        _error_line("interrupted (Ctrl-C); nothing was written", "Interrupted", INTERRUPTED)
    return code


if __name__ == "__main__":
    main()
