"""The `afford` command line: parse, call the library, render. No logic of its own.

Every AffordError becomes one line on stderr and exit code 2; set AFFORD_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console

from afford.errors import AffordError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Is a pretrained model affordable for your job? Exact compute and memory, no weights.")

ModelArg = Annotated[str, typer.Argument(help="torchvision:NAME, timm:NAME, hf:ORG/NAME, module:pkg.mod:fn, a "
                                              "config.json or model directory, or a bare name")]


def _fail(message: str, code: int = 2) -> None:
    Console(stderr=True, highlight=False).print(f"afford: error: {message}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def _guarded(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except AffordError as exc:
        if os.environ.get("AFFORD_DEBUG"):
            raise
        _fail(str(exc).replace("\n", " "))
    except (KeyboardInterrupt, typer.Exit):
        raise
    except Exception as exc:
        if os.environ.get("AFFORD_DEBUG"):
            raise
        _fail(f"internal error ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
              "rerun with AFFORD_DEBUG=1 and report it", code=1)


def _emit_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.command()
def assess(
    model: ModelArg,
    train_samples: Annotated[int | None, typer.Option(help="training samples per epoch (N)")] = None,
    epochs: Annotated[float, typer.Option(help="passes over the training samples")] = 1.0,
    train_tokens: Annotated[int | None, typer.Option(help="training tokens in all (LMs; instead of samples)")] = None,
    infer_samples: Annotated[int | None, typer.Option(help="inference samples (M)")] = None,
    batch_size: Annotated[int, typer.Option(help="samples per step on one device")] = 1,
    seq_len: Annotated[int | None, typer.Option(help="tokens per sample (default: model max, capped)")] = None,
    image_size: Annotated[int | None, typer.Option(help="image side in pixels (default: native)")] = None,
    precision: Annotated[str, typer.Option(help="fp32 | fp16-mixed | bf16-mixed | bf16")] = "fp32",
    optimizer: Annotated[str, typer.Option(help="sgd | sgd-momentum | adam | adamw | adam-8bit | adafactor")] = "adamw",
    freeze: Annotated[list[str] | None, typer.Option(help="freeze parameters matching a glob; '!GLOB' unfreezes; "
                                                           "repeatable, applied in order")] = None,
    depth: Annotated[int, typer.Option(help="depth of the module tree")] = 2,
    allow_longer: Annotated[bool, typer.Option(help="allow --seq-len beyond the model's maximum")] = False,
    trust_remote_code: Annotated[bool, typer.Option(help="run a Hub model's own code (only if you trust it)")] = False,
    hub: Annotated[bool, typer.Option(help="look a config up on the Hugging Face Hub if not found offline")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print exactly one JSON object")] = False,
    verbose: Annotated[bool, typer.Option(help="show every module row")] = False,
) -> None:
    """Count compute and memory of MODEL for a training and/or inference job."""
    from afford.assess import assess as run

    result = _guarded(lambda: run(model, train_samples=train_samples, epochs=epochs, train_tokens=train_tokens,
                                  infer_samples=infer_samples, batch_size=batch_size, seq_len=seq_len,
                                  image_size=image_size, precision=precision, optimizer=optimizer,
                                  freeze=tuple(freeze or ()), depth=depth, allow_longer=allow_longer,
                                  trust_remote_code=trust_remote_code, allow_hub=hub))
    data = result.to_dict()
    if as_json:
        _emit_json(data)
        return
    from afford.report.terminal import render_assessment

    render_assessment(data, Console(), verbose=verbose)


@app.command("models")
def models(
    source: Annotated[str, typer.Option(help="hf | torchvision | timm")] = "hf",
    pattern: Annotated[str, typer.Option(help="substring filter")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="print exactly one JSON object")] = False,
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


def main() -> None:
    """Entry point of the `afford` script: usage errors, like every other error, are one line and exit 2."""
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if "--hub" not in sys.argv:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except Exception as exc:
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            raise
        ctx = getattr(exc, "ctx", None)
        where = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
        sys.stderr.write(f"afford: error: {exc.format_message()}{where}\n")
        raise SystemExit(2 if exc.exit_code else 0) from None
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
