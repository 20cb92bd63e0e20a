"""`afford web`: serve the local web page (afford/web/) until Ctrl-C."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from afford.cli.app import app, guarded


@app.command("web")
def web_command(
    host: Annotated[str, typer.Option(help="address to listen on; the default serves this machine only")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on (0: any free port)")] = 8765,
    trace_seconds: Annotated[float, typer.Option(help="longest an assessment may take before the page is told so")]
    = 120.0,
    max_body: Annotated[int, typer.Option(help="largest request body, in bytes")] = 64 * 1024,
) -> None:
    """A local web page for the same engine: pick a model, set the job, the hardware and the budget, see the
    verdict, the figures and the plans; the address bar holds the job. No module: specs, files, pickles or remote
    code from the page."""
    from afford.web.server import make_server
    from afford.web.service import Limits

    server = guarded(lambda: make_server(host, port, Limits(max_body=max_body, trace_seconds=trace_seconds)))
    sys.stderr.write(f"afford web: serving {server.url} (Ctrl-C to stop)\n")
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        sys.stderr.write("afford web: stopped\n")
    finally:
        server.server_close()
