"""The command line's options: the job options generated from the one declaration (`afford.schema.JobRequest`),
and the arguments and switches of the commands themselves, each declared once here."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from afford import schema

F = TypeVar("F", bound=Callable[..., Any])
_CLI_TYPES: dict[type, Any] = {bool: bool, int: int, float: float, str: str, list: list[str], dict: list[str]}

JobModelArg = Annotated[str | None, typer.Argument(
    help="torchvision:NAME, timm:NAME, hf:ORG/NAME, keras:NAME, recsys:NAME, diffusers:NAME, module:pkg.mod:fn, a "
         "config.json, model directory, .onnx, .keras or .safetensors path, or a bare name (or set it in --job)")]
Job = Annotated[str | None, typer.Option(help="a job file (.toml/.yaml) with model, workload, hardware and budget; "
                                              "flags override it")]
Report = Annotated[str | None, typer.Option(help="also write a report: PATH.html (self-contained) or PATH.md")]

# the command's own switches
HardwareFile = Annotated[str | None, typer.Option(help="TOML/YAML file adding or overriding devices")]
TrustCode = Annotated[bool, typer.Option(help="let the --job file run code: a module: model (imports and calls it), "
                                              "trust_remote_code or trust_pickle set in the file")]
Force = Annotated[bool, typer.Option(help="overwrite an existing --report file (and its _files/ folder); let a --job "
                                          "file's report path lie outside the job's folder")]
Explain = Annotated[bool, typer.Option(help="show each headline figure's formula, inputs and sources")]
AsJson = Annotated[bool, typer.Option("--json", help="print exactly one JSON object")]
Verbose = Annotated[bool, typer.Option(help="every table: compute, memory parts, hardware, modules, coverage")]
Jobs = Annotated[int | None, typer.Option(help="processes that assess the models: this one and N-1 workers, started "
                                               "at the first model that needs tracing (default: the cores this "
                                               "process may use; 1: one after another in this process)")]


def job_parameters(command: str, offered: str | None = None) -> list[inspect.Parameter]:
    """typer parameters for the request fields `command` takes (or `offered`'s, for a command that accepts
    another's options to report them as ignored): name, type, default and help from `schema.JobRequest`."""
    out = []
    for s in schema.specs(offered or command):
        kind = schema.file_type(s)
        default = None if kind in (list, dict) else s.default
        base = _CLI_TYPES[kind]
        annotation = base if default is not None else base | None
        decls = (f"--{s.flag.replace('_', '-')}", s.option.short) if s.option.short else ()
        info = typer.Option(*decls, help=s.option.help_for(command))
        out.append(inspect.Parameter(s.flag, inspect.Parameter.KEYWORD_ONLY, default=default,
                                     annotation=Annotated[annotation, info]))
    return out


def job_command(command: str, offered: str | None = None) -> Callable[[F], F]:
    """Give a command function `f(ctx, model, **options)` plus its own switches the request's options as
    parameters, placed after its positional arguments: what typer reads to build the command's flags."""

    def wrap(fn: F) -> F:
        hints = typing.get_type_hints(fn, include_extras=True)
        own = [p.replace(annotation=hints.get(p.name, p.annotation))
               for p in inspect.signature(fn).parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        head = [p for p in own if p.name in ("ctx", "model", "models")]
        tail = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if p not in head]
        fn.__signature__ = inspect.Signature([*head, *job_parameters(command, offered), *tail])  # type: ignore[attr-defined]
        return fn

    return wrap


def request_kwargs(command: str, params: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of `afford.<command>` from the command's parameters: repeatable flags as the
    Python values (`--freeze` a tuple, `--model-option K=V` a dict)."""
    from afford.sources.options import parse_pairs

    out: dict[str, Any] = {}
    for s in schema.specs(command):
        value = params.get(s.flag, s.default)
        if s.name == "freeze":
            value = tuple(value or ())
        elif s.name == "model_options":
            value = parse_pairs(value or ())
        out[s.name] = value
    return out
