"""The hostile-input table's shared parts: a Case row and an in-process runner of the real `afford` entry point.

Each `cases_*.py` module beside this file holds a CASES list; `test_table.py` runs them all. Running `main()`
in-process (not a subprocess) keeps a row at milliseconds once torch is imported, and still goes through the
same argument parsing, error handling and exit codes as the installed script.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Case:
    """One hostile or odd input: the argv (after `afford`), the exit code and a regex the output must match.

    `setup(tmp)` may write files into a fresh temporary folder and return extra argv (or None); `{tmp}` in
    `args` is replaced by that folder. `check(tmp, result)` may assert more (files not written, ...). `hide`
    names libraries that the run sees as not installed (an extra left out, tests/hostile/cases_extras.py)."""

    id: str
    args: Sequence[str]
    code: int
    message: str = ""
    setup: Callable[[Path], Sequence[str] | None] | None = None
    check: Callable[[Path, Result], None] | None = None
    stdin: str = ""
    env: dict[str, str] = field(default_factory=dict)
    hide: Sequence[str] = ()


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


def run(args: Sequence[str], stdin: str = "", env: dict[str, str] | None = None, hide: Sequence[str] = ()) -> Result:
    """`afford ARGS` through `afford.cli.main`, in this process; stdout/stderr captured, exit code returned. The
    libraries in `hide` (and their submodules) are None in sys.modules for the run: importing them fails as if they
    were not installed; they are put back afterwards."""
    from afford.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_argv, old_stdin = sys.argv, sys.stdin
    saved = {k: os.environ.get(k) for k in (env or {})}
    hidden = {k: sys.modules.get(k) for k in list(sys.modules) for name in hide
              if k == name or k.startswith(name + ".")} | {name: sys.modules.get(name) for name in hide}
    code = 0
    before = set(sys.modules)
    try:
        sys.modules.update(dict.fromkeys(hidden))  # type: ignore[arg-type]  # None: "not installed"
        sys.argv = ["afford", *args]
        sys.stdin = io.StringIO(stdin)
        os.environ.update(env or {})
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        for k, mod in hidden.items():
            if mod is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = mod
        if hide:  # an optional library first imported during the run may have cached the hidden one as absent
            # (keras caches h5py = None): drop it, so the next import sees everything installed (torch and afford
            # stay: torch cannot be imported twice)
            from afford.extras import EXTRAS

            optional = {lib for libs in EXTRAS.values() for lib in libs}
            for k in set(sys.modules) - before:
                if k.split(".")[0] in optional:
                    sys.modules.pop(k, None)
        sys.argv, sys.stdin = old_argv, old_stdin
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return Result(code, out.getvalue(), err.getvalue())


def check_case(case: Case, tmp: Path) -> Result:
    """Run one row and assert its contract: the exit code, one line on stderr for an error (no traceback),
    and the message regex found in stderr (or stdout for exit 0)."""
    extra = case.setup(tmp) if case.setup else None
    args = [a.replace("{tmp}", str(tmp)) for a in case.args] + list(extra or ())
    result = run(args, stdin=case.stdin, env=case.env, hide=case.hide)
    where = f"{case.id}: afford {' '.join(args)[:200]}\nexit {result.code}\nstderr: {result.stderr[-2000:]}"
    assert result.code == case.code, where
    assert "Traceback" not in result.stderr, where
    if case.code == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, where
        assert len(lines[0]) <= 1000, where
    if case.message:
        text = result.stderr if case.code else result.stdout + result.stderr
        assert re.search(case.message, text, re.IGNORECASE | re.DOTALL), f"{where}\nexpected /{case.message}/"
    if case.check:
        case.check(tmp, result)
    return result


def strict_json(text: str) -> Any:
    """JSON as a strict parser reads it: NaN and Infinity are refused."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def assert_finite(node: Any, where: str = "") -> None:
    """Every number in a parsed JSON document is finite."""
    if isinstance(node, float):
        assert math.isfinite(node), f"non-finite number at {where}"
    elif isinstance(node, dict):
        for k, v in node.items():
            assert_finite(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            assert_finite(v, f"{where}[{i}]")


def job_file(text: str) -> Callable[[Path], list[str]]:
    """A Case setup that writes a job file (job.toml) with `text` and passes it as `--job`."""

    def setup(tmp: Path) -> list[str]:
        path = tmp / "job.toml"
        path.write_text(text)
        return ["--job", str(path)]

    return setup
