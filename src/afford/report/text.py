"""The plain-text screen of a result (`__repr__` of Assessment, PlanResult and Comparison): what the CLI prints
for it (`afford assess`, `afford plan`, `afford compare`), drawn by the same terminal functions without colour."""

from __future__ import annotations

from io import StringIO
from typing import Any

from rich.console import Console

from afford.errors import InputError

WIDTH = 100  # columns of the screen


def console(width: int = WIDTH) -> Console:
    """A Console that writes plain text to memory: no colour or ANSI codes, no terminal, never Jupyter's output."""
    return Console(file=StringIO(), width=width, color_system=None, force_terminal=False, force_jupyter=False,
                   force_interactive=False, legacy_windows=False)


def screen(obj: Any) -> str:
    """The CLI's one screen of `obj` as text, trailing blanks trimmed; its hints name the result's methods."""
    from afford.assess import Assessment
    from afford.decide.compare import Comparison
    from afford.decide.run import PlanResult
    from afford.report.terminal import render_assessment, render_comparison, render_verdict

    out = console()
    if isinstance(obj, Assessment):
        render_assessment(obj.to_dict(), out, python=True)
    elif isinstance(obj, PlanResult):
        data = obj.to_dict()
        render_verdict(data["verdict"], data["plans"], out)
    elif isinstance(obj, Comparison):
        render_comparison(obj.to_dict(), out)
    else:
        raise InputError(f"a screen needs an Assessment, a PlanResult or a Comparison, got {type(obj).__name__}")
    text = out.file.getvalue()  # type: ignore[attr-defined]
    return "\n".join(line.rstrip() for line in text.splitlines()).strip("\n")
