"""The typer app of `afford` and its error plumbing: every AffordError becomes one line on stderr and exit code 2.

Set AFFORD_DEBUG=1 to see tracebacks. Command modules register on `app`; `afford.cli` imports them.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console

from afford import extras
from afford.display import dumps
from afford.errors import AffordError, MissingExtraError, cli_names

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Is a pretrained model affordable for your job? Exact compute and memory, no weights.")

# set by main() when the command line asks for --json: errors then also print one JSON object on stdout
_JSON_ERRORS = False

INTERRUPTED = 130  # the shell's code for SIGINT


def error_line(message: str, kind: str, code: int) -> None:
    """The one error line on stderr (newlines folded), and with --json one `{"error": {...}}` object on stdout."""
    text = " ".join(str(message).split())
    sys.stderr.write(f"afford: error: {text}\n")
    sys.stderr.flush()
    if _JSON_ERRORS:
        sys.stdout.write(json.dumps({"error": {"type": kind, "message": text, "exit_code": code}}) + "\n")
        sys.stdout.flush()


def fail(message: str, code: int = 2, kind: str = "InputError") -> None:
    """Write the one error line and leave the command with exit code `code` (2: bad input)."""
    error_line(message, kind, code)
    raise typer.Exit(code)


def guarded(fn: Callable[[], Any]) -> Any:
    """Run a library call of a command: its messages name options as flags (`errors.opt`), and an AffordError
    becomes one line on stderr and exit 2."""
    try:
        with cli_names():
            return fn()
    except AffordError as exc:
        if os.environ.get("AFFORD_DEBUG"):
            raise
        fail(str(exc), kind=type(exc).__name__)
    except (KeyboardInterrupt, typer.Exit):
        raise
    except Exception as exc:
        if os.environ.get("AFFORD_DEBUG"):
            raise
        missing = extras.from_import_error(exc)  # an optional library imported without extras.require
        if missing is not None:
            fail(str(missing), kind=type(missing).__name__)
        fail(_internal(exc), code=1, kind="InternalError")


def _internal(exc: BaseException) -> str:
    """The one line of an unexpected exception: its type and first line, and how to report it."""
    first = str(exc).splitlines()[0][:300] if str(exc).strip() else ""
    return f"internal error ({type(exc).__name__}: {first}); rerun with AFFORD_DEBUG=1 and report it"


def emit_json(data: dict[str, Any]) -> None:
    """Print one strict JSON object: a NaN or infinity (never produced on purpose) is an internal error."""
    try:
        text = dumps(data)  # the serializer of the results' .to_json()
    except ValueError as exc:
        fail(f"internal error (a non-finite number in the output: {exc}); rerun with AFFORD_DEBUG=1 and report it",
             code=1)
    sys.stdout.write(text + "\n")


@contextmanager
def working(text: str) -> Iterator[None]:
    """A spinner on stderr while something slow runs (only when stderr is a terminal; stdout stays clean)."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with console.status(text):
        yield


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
            # a missing optional library, whether raised outside `guarded` or imported without extras.require
            missing = exc if isinstance(exc, MissingExtraError) else extras.from_import_error(exc)
            if missing is not None:
                error_line(str(missing), type(missing).__name__, 2)
                return 2
            error_line(_internal(exc), "InternalError", 1)
            return 1
        else:
            ctx = getattr(exc, "ctx", None)
            where = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
            if exc.exit_code:
                error_line(f"{exc.format_message()}{where}", "UsageError", 2)
            return 2 if exc.exit_code else 0
    code = code if isinstance(code, int) else 0
    if code == INTERRUPTED:  # typer turns Ctrl-C inside a command into a silent exit code 130
        error_line("interrupted (Ctrl-C); nothing was written", "Interrupted", INTERRUPTED)
    return code
