"""What the job-taking commands share: the --job file merged under the flags, the --report path checked before any
work and written after it, and results kept in the local store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from afford.cli.app import fail, guarded


def with_job(ctx: typer.Context, command: str) -> dict[str, Any]:
    """The command's parameters, with a --job file's values under the flags typed on the command line."""
    params = dict(ctx.params)
    # compared by name: typer may ship its own copy of click's ParameterSource enum
    explicit = {name for name in params
                if getattr(ctx.get_parameter_source(name), "name", "") in ("COMMANDLINE", "ENVIRONMENT")}
    if params.get("job"):
        from afford import jobfile

        params = guarded(lambda: jobfile.merge(params["job"], params, explicit, command,
                                               trust_code=bool(params.get("trust_code")),
                                               force=bool(params.get("force"))))
    if not params.get("model"):
        fail(f"afford {command}: give MODEL (or a --job file that sets model)")
    check_report(params.get("report"), bool(params.get("force")))
    return params


def check_report(path: str | None, force: bool = False) -> None:
    """Refuse, before any work is done, a --report path with an unknown suffix, in a folder that does not exist,
    that is not a regular file, or that exists already (it, or the `_files/` folder a .md report writes beside it)
    unless `force`."""
    if not path:
        return
    target = Path(path)
    if target.suffix.lower() not in (".html", ".htm", ".md"):
        fail(f"--report {path}: give a .html, .htm or .md file")
    from afford import safeio

    if not safeio.exists(target.parent) or not target.parent.is_dir():
        fail(f"--report {path}: the folder {target.parent} does not exist")
    beside = [target.with_name(f"{target.stem}_files")] if target.suffix.lower() == ".md" else []
    for existing in [p for p in (target, *beside) if p.is_symlink() or safeio.exists(p)]:
        kind = safeio.kind_of(existing.stat().st_mode) if safeio.exists(existing) else "a dangling link"
        if existing == target and kind is not None:
            fail(f"--report {path} is {kind}, not a file afford can write")
        if not force:
            fail(f"--report {path}: {existing} exists; pass --force to overwrite it")


def write_report(result: Any, path: str | None) -> str | None:
    """Write `--report PATH` (.html or .md) for a result; the path written, or None when not asked."""
    if not path:
        return None
    from afford.report import write_report as write

    return str(guarded(lambda: write(result, Path(path))))


def remember(kind: str, name: str, inputs: dict[str, Any], result: dict[str, Any]) -> None:
    """Keep a result in the local store; a store that cannot be used is one line on stderr, never a failure."""
    if os.environ.get("AFFORD_NO_STORE"):
        return
    from afford.store import Store, StoreError

    try:
        with Store() as store:
            store.add(kind, name, inputs, result)
    except StoreError as exc:
        Console(stderr=True, highlight=False).print(f"afford: warning: {exc}", markup=False, soft_wrap=True)
