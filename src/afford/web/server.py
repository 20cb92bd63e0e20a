"""`afford web`'s HTTP server: the standard library's ThreadingHTTPServer, one page and a small JSON API.

    GET  /                      the page (page.html, package data; no file from the internet)
    GET  /api/sources           the sources whose names the page completes
    GET  /api/models?source=S   every S:NAME (afford models)
    GET  /api/hardware          the catalog's devices
    POST /api/assess            {"model": SPEC, "options": {JobRequest fields}} -> {"result": Assessment.to_dict()}
    POST /api/plots             the same body -> {"plots": [{"key", "title", "svg", "caption"}]} (the report's plots)
    POST /api/report            the same body -> the HTML report (afford.report.write_report) as a download

Bounded: loopback by default with the Host header checked (no DNS rebinding), POST bodies of JSON only (a page of
another site cannot send one without a CORS preflight, which this server never grants) and at most
`Limits.max_body` bytes, assessments on one worker thread under a time limit (service.py). Every error is
`{"error": {"type", "message"}}`, one line, never a traceback.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import tempfile
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from afford.errors import AffordError, InputError, MissingExtraError
from afford.web import service
from afford.web.service import BusyError, Limits, TimeLimitError, Worker

LOG = logging.getLogger("afford.web")
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
       "img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'")
STATUS = {BusyError: HTTPStatus.SERVICE_UNAVAILABLE, TimeLimitError: HTTPStatus.GATEWAY_TIMEOUT}


def page() -> bytes:
    """The page's HTML, read from the package."""
    return resources.files("afford.web").joinpath("page.html").read_bytes()


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (localhost, 127.0.0.0/8, ::1)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class WebServer(ThreadingHTTPServer):
    """The HTTP server of one page, with its limits and its assessment worker."""

    daemon_threads = True

    def __init__(self, host: str, port: int, limits: Limits) -> None:
        """Bind `host`:`port` (0: a free port); OSError when the address cannot be bound."""
        self.limits = limits
        self.worker = Worker(limits)
        self.loopback = is_loopback(host)
        super().__init__((host, port), Handler)

    @property
    def url(self) -> str:
        """The page's address."""
        host, port = str(self.server_address[0]), self.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    def server_close(self) -> None:
        """Close the socket and stop the worker taking work."""
        super().server_close()
        self.worker.close()


class Handler(BaseHTTPRequestHandler):
    """One request: route it, answer JSON (or the page), map every error to one line."""

    server: WebServer
    server_version = "afford-web"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        """Requests go to the `afford.web` logger, not to stderr."""
        LOG.info("%s " + format, self.address_string(), *args)

    # --- answers ------------------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        """Send one complete answer with the page's security headers."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Referrer-Policy", "no-referrer")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: dict[str, Any], status: int = HTTPStatus.OK) -> None:
        """Send `data` as strict JSON."""
        from afford.display import dumps

        self._send(status, dumps(data, indent=None).encode(), "application/json; charset=utf-8")

    def _error(self, status: int, kind: str, message: str) -> None:
        """Send one error: its type and one line of message."""
        self._json({"error": {"type": kind, "message": " ".join(str(message).split())[:1000]}}, status)

    # --- routing ------------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        """The page and the read-only API."""
        if not self._host_ok():
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        routes: dict[str, Callable[[], dict[str, Any]]] = {
            "/api/sources": lambda: {"sources": service.sources()},
            "/api/models": lambda: {"names": service.model_names((query.get("source") or ["torchvision"])[0])},
            "/api/hardware": lambda: {"devices": service.hardware()},
        }
        if url.path in ("/", "/index.html"):
            self._send(HTTPStatus.OK, page(), "text/html; charset=utf-8")
        elif url.path in routes:
            self._guarded(lambda: self._json(routes[url.path]()))
        else:
            self._error(HTTPStatus.NOT_FOUND, "NotFound", f"no such page: {url.path[:100]}")

    def do_HEAD(self) -> None:
        """HEAD as GET without the body."""
        self.do_GET()

    def do_POST(self) -> None:
        """An assessment, as JSON or as the HTML report."""
        if not self._host_ok():
            return
        path = urlsplit(self.path).path
        if path not in ("/api/assess", "/api/plots", "/api/report"):
            self._error(HTTPStatus.NOT_FOUND, "NotFound", f"no such endpoint: {path[:100]}")
            return
        body = self._body()
        if body is None:
            return
        if path == "/api/assess":
            self._guarded(lambda: self._json({"result": self._assess(body).to_dict()}))
        elif path == "/api/plots":
            self._guarded(lambda: self._json({"plots": self._plots(body)}))
        else:
            self._guarded(lambda: self._report(body))

    # --- checks -------------------------------------------------------------------------------------------
    def _host_ok(self) -> bool:
        """On a loopback bind, only a loopback Host header (a rebound DNS name is refused)."""
        if not self.server.loopback:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        # NAME:PORT, or [IPV6]:PORT
        name = host[: host.find("]") + 1] if host.startswith("[") and "]" in host else host.split(":")[0]
        if is_loopback(name):
            return True
        self._error(HTTPStatus.FORBIDDEN, "InputError", f"Host {host[:60]!r} refused: this server answers only "
                                                        "localhost")
        return False

    def _body(self) -> dict[str, Any] | None:
        """The request's JSON object, or None once an error was sent (not JSON, too large, malformed)."""
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "InputError", "send the job as application/json")
            return None
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            self._error(HTTPStatus.LENGTH_REQUIRED, "InputError", "a Content-Length is required")
            return None
        limit = self.server.limits.max_body
        if length < 0 or length > limit:
            self.close_connection = True  # the unread body is not drained
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "InputError",
                        f"the request has {length} bytes; the server takes at most {limit}")
            return None
        try:
            data = json.loads(self.rfile.read(length) or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            self._error(HTTPStatus.BAD_REQUEST, "InputError", f"the request is not JSON: {exc}")
            return None
        if not isinstance(data, dict):
            self._error(HTTPStatus.BAD_REQUEST, "InputError", 'send {"model": ..., "options": {...}}')
            return None
        return data

    def _assess(self, body: dict[str, Any]) -> Any:
        """The Assessment the body asks for, its spec and options checked first."""
        unknown = set(body) - {"model", "options"}
        if unknown:
            raise InputError(f"unknown field {sorted(unknown)[0]!r}; send model and options")
        model = service.check_spec(body.get("model"))
        return self.server.worker.assess(model, service.check_options(body.get("options")))

    def _plots(self, body: dict[str, Any]) -> list[dict[str, str]]:
        """The report's plots of the body's assessment, as inline SVG (drawn with matplotlib: the web extra)."""
        from afford import extras
        from afford.report.document import build

        extras.require("matplotlib", what="the plots", extra="web")
        doc = build(self._assess(body))
        return [{"key": f.key, "title": f.title, "svg": f.svg, "caption": f.caption} for f in doc.figures()]

    def _report(self, body: dict[str, Any]) -> None:
        """The HTML report of the body's assessment, as a download (its plots need matplotlib)."""
        from afford import extras
        from afford.report import write_report

        extras.require("matplotlib", what="the HTML report", extra="web")
        result = self._assess(body)
        with tempfile.TemporaryDirectory(prefix="afford-web-") as tmp:
            html = write_report(result, Path(tmp) / "report.html").read_bytes()
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in result.spec.name)[:80] or "report"
        self._send(HTTPStatus.OK, html, "text/html; charset=utf-8",
                   {"Content-Disposition": f'attachment; filename="afford-{name}.html"'})

    def _guarded(self, answer: Callable[[], None]) -> None:
        """Run `answer()`; an AffordError becomes a 4xx/5xx line, anything else a logged 500 line."""
        try:
            answer()
        except MissingExtraError as exc:
            self._error(HTTPStatus.NOT_IMPLEMENTED, type(exc).__name__, str(exc))
        except AffordError as exc:
            self._error(STATUS.get(type(exc), HTTPStatus.BAD_REQUEST), type(exc).__name__, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            LOG.info("the client went away")
        except Exception as exc:
            from afford import extras

            missing = extras.from_import_error(exc)
            if missing is not None:
                self._error(HTTPStatus.NOT_IMPLEMENTED, type(missing).__name__, str(missing))
                return
            LOG.exception("internal error")
            first = str(exc).splitlines()[0][:300] if str(exc).strip() else ""
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "InternalError", f"internal error ({type(exc).__name__}: "
                                                                            f"{first})")


def make_server(host: str = "127.0.0.1", port: int = 8765, limits: Limits | None = None) -> WebServer:
    """A bound server (not yet serving): `serve_forever()` it, `shutdown()` and `server_close()` it. An InputError
    when the address cannot be bound."""
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port}: give a port from 0 to 65535 (0: any free port)")
    try:
        return WebServer(host, port, limits or Limits())
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
