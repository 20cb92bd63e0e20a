"""An HTML report loaded in headless Chromium, offline: every plot is in the DOM with a size, no script error,
no failed (external) load. Chromium comes from scripts/install-test-deps.sh, which `make test` runs first."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from afford.report import write_report

INSTALL = "scripts/install-test-deps.sh"
# Records uncaught errors, resources that fail to load (capture phase sees <script src>, <img>, <link> errors)
# and, after load, the rendered size of every <svg>, as attributes of <html> that the DOM dump shows.
PROBE = ("<script>var H=document.documentElement;"
         "window.onerror=function(m){H.setAttribute('data-script-error',String(m));};"
         "window.addEventListener('error',function(e){var t=e.target;if(t&&t!==window&&(t.src||t.href)){"
         "H.setAttribute('data-load-error',t.src||t.href);}},true);"
         "window.addEventListener('load',function(){var s=[].slice.call(document.querySelectorAll('svg'));"
         "H.setAttribute('data-svg-sizes',s.map(function(e){var r=e.getBoundingClientRect();"
         "return Math.round(r.width)+'x'+Math.round(r.height);}).join(','));});</script>")


def chromium() -> str:
    """The Chromium executable; a failure naming the install script when it is missing (never a skip)."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None and Path("/usr/bin/chromium").exists():
        exe = "/usr/bin/chromium"
    if exe is None:
        pytest.fail(f"headless Chromium is missing: run `sh {INSTALL}` (make test runs it)", pytrace=False)
    return exe


def load(page: Path, profile: Path) -> tuple[str, str, str]:
    """Open `page` with the probe injected; (DOM after load, the <html> tag with the probe's marks, stderr with
    the console log)."""
    probed = page.with_name(page.stem + ".probed.html")
    text = page.read_text(encoding="utf-8")
    probed.write_text(text.replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           # offline: any host lookup fails, so an external resource would show up as a failed load
           "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1280,2400", "--dump-dom", probed.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    root = re.search(r"<html[^>]*>", done.stdout)
    return done.stdout, root.group(0) if root else "", done.stderr


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    import afford

    # a budget gives the verdict and the plans, so all five plots of an assessment are on the page
    a = afford.assess("torchvision:resnet18", train_samples=10_000, infer_samples=1000, budget_usd=5,
                      hardware="t4")
    return a, write_report(a, tmp_path_factory.mktemp("browser") / "report.html")


def test_report_renders_every_plot_without_errors(report: tuple[Any, Path], tmp_path: Path) -> None:
    _, page = report
    dom, root, log = load(page, tmp_path / "profile")
    assert "data-script-error" not in root and "data-load-error" not in root, root
    assert "Uncaught" not in log
    assert "Failed to load resource" not in log and "ERR_NAME_NOT_RESOLVED" not in log
    plots = re.findall(r'<figure id="plot-([a-z_]+)"', dom)
    assert plots == ["modules", "memory", "cost_time", "roofline", "batch_curve", "plans"]
    assert dom.count("<svg") == 6
    sizes = re.search(r'data-svg-sizes="([^"]*)"', root)
    assert sizes is not None
    dims = [tuple(int(v) for v in s.split("x")) for s in sizes.group(1).split(",")]
    assert len(dims) == 6
    # the page is 1280 px wide with a 1180 px content column, plots beside narrow tables get 7/12 of it:
    # every plot is laid out at a readable size
    assert all(w >= 500 and h >= 150 for w, h in dims), dims
    assert 'data-status="affordable"' in dom


def test_the_probe_sees_a_broken_page(tmp_path: Path) -> None:
    """The checks above can fail: a page with an uncaught error and an external script is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><head></head><body><svg width="10" height="10"></svg>'
                   '<script src="https://cdn.example.com/x.js"></script><script>undefinedFn();</script></body></html>',
                   encoding="utf-8")
    _, root, log = load(bad, tmp_path / "profile")
    assert 'data-script-error="Uncaught ReferenceError' in root
    assert 'data-load-error="https://cdn.example.com/x.js"' in root
    assert "Uncaught" in log
