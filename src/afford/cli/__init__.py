"""The `afford` command line: parse, call the library, render. No logic of its own.

`app` (the typer app, from `cli/app.py`) and `main` (the console script) are the public names. Each command module
registers its commands on `app` when imported; they are imported here once (`afford --help` lists the plain commands
in import order, then the sub-apps `hardware` and `history`). No command module imports this package's `__init__`.
"""

from __future__ import annotations

from afford.cli import assess, catalog, compare, local, sweep, web  # noqa: F401  (importing registers the commands)
from afford.cli.app import app, main

__all__ = ["app", "main"]
