"""`afford web` (issue 15, item 4): the server on a free port in a thread, its JSON API (a good job, a re-price from
the trace cache, bad options, refused specs and flags, the body limits, the Host check, the time limit) and the page
in headless Chromium (tests/report/test_report_browser.py finds and drives it the same way)."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from afford.web import Limits, make_server
from afford.web.server import WebServer

JOB = {"model": "torchvision:resnet18", "options": {"train_samples": 1000, "budget_usd": 5, "hardware": "t4"}}


@pytest.fixture(scope="module")
def server() -> Iterator[WebServer]:
    """A server on a free loopback port, serving from a thread for the module's tests."""
    srv = make_server("127.0.0.1", 0, Limits(max_body=4096, trace_seconds=120))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def call(srv: WebServer, path: str, body: Any = None, *, raw: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of a GET (no body) or a JSON POST to `path`."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    head = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(srv.url.rstrip("/") + path, data=data, headers={**head, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def error(srv: WebServer, path: str, body: Any = None, **kw: Any) -> tuple[int, str]:
    """(status, message) of a request that must fail with the one-line JSON error."""
    status, _, out = call(srv, path, body, **kw)
    err = json.loads(out)["error"]
    assert set(err) == {"type", "message"} and "\n" not in err["message"] and "Traceback" not in err["message"]
    return status, err["message"]


def test_a_good_job_and_a_reprice_from_the_cache(server: WebServer) -> None:
    status, _, out = call(server, "/api/assess", JOB)
    assert status == 200
    result = json.loads(out)["result"]
    assert result["model"]["params"] == 11_689_512
    assert result["per_sample"]["forward_flops"] == pytest.approx(2 * 1.814e9, rel=1e-3)  # torchvision: 1.81 GMACs
    assert result["verdict"]["status"] == "affordable" and result["hardware"]["name"] == "t4"
    assert result["plans"]
    # other hardware re-prices the same trace: no re-trace, milliseconds
    start = time.perf_counter()
    status, _, out = call(server, "/api/assess", {**JOB, "options": {**JOB["options"], "hardware": "h100-sxm"}})
    assert status == 200 and time.perf_counter() - start < 1.0
    other = json.loads(out)["result"]
    assert other["hardware"]["name"] == "h100-sxm"
    assert other["time"]["train_seconds"] < result["time"]["train_seconds"]


def test_bad_options_are_one_line(server: WebServer) -> None:
    status, message = error(server, "/api/assess", {"model": "torchvision:resnet18",
                                                    "options": {"train_sample": 10}})
    assert status == 400 and message == "options: unknown option 'train_sample' (did you mean 'train_samples'?)"
    status, message = error(server, "/api/assess", {"model": "torchvision:resnet18",
                                                    "options": {"train_samples": -3}})
    assert status == 400 and "train_samples must be a positive integer" in message
    status, message = error(server, "/api/assess", {"model": "torchvision:resnet5O", "options": {}})
    assert status == 400 and "resnet50" in message  # the did-you-mean of the registry
    status, message = error(server, "/api/assess", {"model": "torchvision:resnet18", "options": [1]})
    assert status == 400 and message.startswith("options: a JSON object")


@pytest.mark.parametrize(("model", "options", "expected"), [
    ("module:os:getcwd", {}, r"module: specs import Python code and are refused"),
    (" Module:afford.api:assess", {}, r"module: specs import Python code"),
    ("/etc/passwd", {}, r"looks like a file"),
    ("model.pt", {}, r"looks like a file"),
    ("C:\\models\\m.onnx", {}, r"looks like a file"),
    ("hf:./config.json", {}, r"names a file"),
    ("torchvision:resnet18", {"trust_pickle": True}, r"trust_pickle: not allowed from the web page"),
    ("torchvision:resnet18", {"trust_remote_code": True}, r"trust_remote_code: not allowed"),
    ("torchvision:resnet18", {"allow_hub": True}, r"allow_hub: not allowed"),
    ("torchvision:resnet18", {"hardware_file": "/etc/hosts"}, r"hardware_file: not allowed"),
    (42, {}, r"give a model name"),
])
def test_code_files_and_remote_access_are_refused(server: WebServer, model: Any, options: dict[str, Any],
                                                  expected: str) -> None:
    status, message = error(server, "/api/assess", {"model": model, "options": options})
    assert status == 400 and re.search(expected, message), message


def test_the_request_is_bounded(server: WebServer) -> None:
    big = json.dumps({"model": "torchvision:resnet18", "options": {"freeze": ["x" * 5000]}}).encode()
    status, message = error(server, "/api/assess", raw=big)
    assert status == 413 and f"the request has {len(big)} bytes; the server takes at most 4096" == message
    status, message = error(server, "/api/assess", raw=b'{"model": "torchvision:resnet18"}',
                            headers={"Content-Type": "text/plain"})  # a cross-site form post is refused
    assert status == 415 and "application/json" in message
    status, message = error(server, "/api/assess", raw=b"{not json")
    assert status == 400 and message.startswith("the request is not JSON")
    # a DNS name rebound to 127.0.0.1 is not this server's host
    status, message = error(server, "/api/hardware", headers={"Host": f"evil.example:{server.server_address[1]}"})
    assert status == 403 and "answers only localhost" in message
    status, message = error(server, "/api/nothing", {})
    assert status == 404


def test_the_page_and_its_lists(server: WebServer) -> None:
    status, head, page = call(server, "/")
    assert status == 200 and head["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in head["Content-Security-Policy"]
    assert not re.search(rb"""(src|href)=["']?(https?:)?//""", page)  # nothing from the internet
    names = json.loads(call(server, "/api/models?source=torchvision")[2])["names"]
    assert "torchvision:resnet50" in names
    devices = {d["id"] for d in json.loads(call(server, "/api/hardware")[2])["devices"]}
    assert {"t4", "a100-80gb", "h100-sxm"} <= devices
    assert "torchvision" in json.loads(call(server, "/api/sources")[2])["sources"]
    status, message = error(server, "/api/models?source=nope")
    assert status == 400 and "unknown source 'nope'" in message


def test_the_html_report_download(server: WebServer) -> None:
    status, head, html = call(server, "/api/report", JOB)
    assert status == 200 and head["Content-Disposition"] == 'attachment; filename="afford-torchvision_resnet18.html"'
    assert html.startswith(b"<!DOCTYPE html>") and b'data-status="affordable"' in html


def test_the_plots_of_the_page(server: WebServer) -> None:
    status, _, out = call(server, "/api/plots", JOB)
    plots = json.loads(out)["plots"]
    assert status == 200 and [p["key"] for p in plots] == ["modules", "memory", "cost_time", "roofline", "plans"]
    assert all(p["svg"].startswith("<svg") and "<script" not in p["svg"] for p in plots)


def test_a_trace_past_the_time_limit_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import afford

    release = threading.Event()

    def slow(model: str, **options: Any) -> Any:
        release.wait(10)
        raise AssertionError("not reached by the answer")

    monkeypatch.setattr(afford, "assess", slow)
    srv = make_server("127.0.0.1", 0, Limits(trace_seconds=0.2, queue=1))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        status, message = error(srv, "/api/assess", JOB)
        assert status == 504 and "longer than the server's limit of 0.2 s" in message
        # the slow trace still holds the one queue place: the next request is told the server is busy
        status, message = error(srv, "/api/assess", JOB)
        assert status == 503 and "busy" in message
    finally:
        release.set()
        srv.shutdown()
        srv.server_close()


# --- the page in headless Chromium --------------------------------------------------------------------------
# Records uncaught errors and rejected promises, and once a verdict shows, the address bar and the form's values,
# as attributes of <html> that the DOM dump shows. With FILL it types the model and train samples into the form.
PROBE = ("<script>var H=document.documentElement;"
         "window.onerror=function(m){H.setAttribute('data-script-error',String(m));};"
         "window.addEventListener('unhandledrejection',function(e){H.setAttribute('data-rejected',String(e.reason));});"
         "var FILL=%s;window.addEventListener('load',function(){"
         "if(FILL){var f=document.getElementById('job');Object.keys(FILL).forEach(function(k){"
         "var e=f.elements.namedItem(k);e.value=FILL[k];e.dispatchEvent(new Event('input',{bubbles:true}));});}"
         "var t=setInterval(function(){var v=document.getElementById('verdict');"
         "if(v.getAttribute('data-status')){clearInterval(t);H.setAttribute('data-search',location.search);}},50);"
         "});</script>")


def browse(srv: WebServer, query: str, fill: dict[str, str] | None, profile: Path,
           monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, str]:
    """Load the served page (the probe injected) in headless Chromium until its fetches settle: (DOM, <html> tag,
    console log)."""
    from afford.web import server as web_server
    from report.test_report_browser import chromium

    page = web_server.page()
    probed = page.replace(b"<head>", b"<head>" + (PROBE % json.dumps(fill)).encode(), 1)
    monkeypatch.setattr(web_server, "page", lambda: probed)
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--window-size=1280,1000",
           "--virtual-time-budget=20000", "--dump-dom", srv.url + query]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    root = re.search(r"<html[^>]*>", done.stdout)
    return done.stdout, root.group(0) if root else "", done.stderr


def _clean(root: str, log: str) -> None:
    """No script error, no rejected promise, no failed load, nothing fetched from outside."""
    assert "data-script-error" not in root and "data-rejected" not in root, root
    assert "Uncaught" not in log and "Failed to load resource" not in log and "ERR_NAME_NOT_RESOLVED" not in log


def test_the_page_fills_a_form_and_shows_a_verdict(server: WebServer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fill = {"model": "torchvision:resnet18", "train_samples": "2000", "budget_usd": "5"}
    dom, root, log = browse(server, "", fill, tmp_path / "profile", monkeypatch)
    _clean(root, log)
    assert re.search(r'id="verdict"[^>]*data-status="affordable"', dom), dom[-3000:]
    assert 'id="figures"' in dom and "training compute" in dom and "Plans" in dom
    # the report's plots follow, as images of inline SVG
    assert re.findall(r'<figure id="plot-([a-z_]+)"', dom) == ["modules", "memory", "cost_time", "roofline", "plans"]
    assert dom.count('src="data:image/svg+xml;charset=utf-8,') == 5
    # the job went to the address bar, to share
    assert "model=torchvision%3Aresnet18" in root and "train_samples=2000" in root, root


def test_a_shared_address_restores_the_job(server: WebServer, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    query = "?model=torchvision%3Aresnet18&train_samples=1000&budget_usd=5&hardware=t4"
    dom, root, log = browse(server, query, None, tmp_path / "profile", monkeypatch)
    _clean(root, log)
    assert re.search(r'id="verdict"[^>]*data-status="affordable"', dom)
    assert "torchvision:resnet18 on 1 x NVIDIA T4" in dom


def test_a_served_generation_job_from_the_address(server: WebServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The generation, weights, rate and latency-target fields: a verdict and the serving figures."""
    query = ("?model=hf%3Aopenai-community%2Fgpt2&task=generate&prompt_tokens=64&generate_tokens=32"
             "&infer_samples=1000&weights=fp16&rate=5&tpot=0.05&hardware=h100-sxm&available=h100-sxm%3A2")
    dom, root, log = browse(server, query, None, tmp_path / "profile", monkeypatch)
    _clean(root, log)
    assert re.search(r'id="verdict"[^>]*data-status="affordable', dom), dom[-3000:]
    assert "serving: max load" in dom and "serving: replicas for the rate" in dom and "time to first token" in dom
    assert 'name="tpot"' in dom and "rate=5" in root


def test_the_page_shows_bad_input_inline(server: WebServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dom, root, _ = browse(server, "?model=module%3Aos%3Agetcwd", None, tmp_path / "profile", monkeypatch)
    assert "data-script-error" not in root and "data-rejected" not in root
    shown = re.search(r'<div id="error"[^>]*>([^<]*)</div>', dom)
    assert shown and "module: specs import Python code and are refused" in shown.group(1), dom[-2000:]
    assert "Traceback" not in dom


def test_the_page_ships_and_the_server_starts_light() -> None:
    """page.html is package data (pyproject's glob matches it), and `afford web` starts without importing torch."""
    import fnmatch
    import sys
    import tomllib

    root = Path(__file__).resolve().parents[1]
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]
    assert any(fnmatch.fnmatch("web/page.html", glob) for glob in data["afford"])
    assert (root / "src/afford/web/page.html").is_file()
    code = "import sys, afford.cli.web, afford.web; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False", done.stderr
