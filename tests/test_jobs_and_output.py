"""Job files (strict keys, flags override), --explain (formulas re-evaluated), the short terminal output and
NO_COLOR."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from afford import jobfile
from afford.cli import app
from afford.errors import InputError
from afford.hardware.catalog import Catalog

runner = CliRunner()

JOB = """
model = "torchvision:resnet18"

[workload]
train_samples = 2000
epochs = 2
infer_samples = 100
batch_size = 8
precision = "fp32"

[hardware]
device = "t4"
count = 1

[budget]
usd = 5.0
"""


def _job(tmp_path: Path, text: str, name: str = "job.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_job_file_gives_the_same_result_as_the_flags(tmp_path: Path) -> None:
    path = _job(tmp_path, JOB)
    by_job = runner.invoke(app, ["assess", "--job", str(path), "--json"])
    assert by_job.exit_code == 0, by_job.output
    by_flags = runner.invoke(app, ["assess", "torchvision:resnet18", "--train-samples", "2000", "--epochs", "2",
                                   "--infer-samples", "100", "--batch-size", "8", "--hardware", "t4",
                                   "--budget-usd", "5", "--json"])
    a, b = json.loads(by_job.stdout), json.loads(by_flags.stdout)
    assert a["compute"] == b["compute"]
    assert a["cost"]["train_usd"] == b["cost"]["train_usd"]
    assert a["verdict"]["status"] == b["verdict"]["status"]
    assert a["workload"]["batch_size"] == 8 and a["hardware"]["name"] == "t4"


def test_flags_override_the_job_file(tmp_path: Path) -> None:
    path = _job(tmp_path, JOB)
    out = runner.invoke(app, ["assess", "--job", str(path), "--batch-size", "4", "torchvision:resnet34", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["workload"]["batch_size"] == 4  # flag wins
    assert data["workload"]["train_samples"] == 2000  # file kept
    assert data["model"]["name"] == "torchvision:resnet34"  # MODEL argument wins


def test_yaml_job_file(tmp_path: Path) -> None:
    path = _job(tmp_path, "model: torchvision:resnet18\nworkload:\n  infer_samples: 10\n  batch_size: 2\n",
                "job.yaml")
    assert jobfile.load(path) == {"model": "torchvision:resnet18", "infer_samples": 10, "batch_size": 2}


@pytest.mark.parametrize(("text", "message"), [
    (JOB.replace("train_samples", "trian_samples"), "[workload] unknown key 'trian_samples' (did you mean "
                                                    "'train_samples'?)"),
    (JOB.replace("batch_size = 8", 'batch_size = "8x"'), "[workload] batch_size must be an integer, got '8x'"),
    (JOB.replace('model = "torchvision:resnet18"', ""), "no model"),
    (JOB.replace("[hardware]", "[hardwre]"), "unknown section [hardwre] (did you mean [hardware]?)"),
    (JOB.replace("usd = 5.0", "usd = true"), "[budget] usd must be a number, got True"),
    ('model = "torchvision:resnet18"\nbatch_size = 4\n', "key 'batch_size' belongs in the [workload] section"),
    ("model = \n", "not valid TOML"),
])
def test_bad_job_files_are_one_line_errors_naming_the_place(tmp_path: Path, text: str, message: str) -> None:
    path = _job(tmp_path, text)
    out = runner.invoke(app, ["assess", "--job", str(path)])
    assert out.exit_code == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(path) in lines[0], out.stderr


def test_job_keys_a_command_does_not_take_are_errors(tmp_path: Path) -> None:
    path = _job(tmp_path, JOB + "\n[hardware.extra]\n")  # a nested table is not a key of [hardware]
    with pytest.raises(InputError, match=r"\[hardware\] unknown key .extra."):
        jobfile.load(path)
    plan_job = _job(tmp_path, 'model = "torchvision:resnet18"\ndepth = 3\n', "plan.toml")
    out = runner.invoke(app, ["plan", "--job", str(plan_job)])
    assert out.exit_code == 2 and "'depth' does not apply to `afford plan`" in out.stderr


def test_explain_reevaluates_every_formula() -> None:
    out = runner.invoke(app, ["assess", "torchvision:resnet18", "--train-samples", "1000", "--infer-samples", "50",
                              "--batch-size", "16", "--hardware", "t4", "--explain", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    items = {x["figure"]: x for x in data["explain"]}
    for figure in ("parameters", "forward FLOPs per sample", "C_train", "C_infer", "memory per device",
                   "training time", "training cost", "training energy", "training CO2", "MFU"):
        assert figure in items, figure
        assert items[figure]["sources"], figure
    assert all(x["consistent"] for x in data["explain"])
    assert items["C_train"]["value"] == data["compute"]["train_flops"]
    assert "C_train = N x (C_forward,train + C_backward)" == items["C_train"]["formula"]
    # the cost's inputs are the ones priced: devices x hours x the catalog price with its source
    t4 = Catalog.load().get("t4")
    assert items["training cost"]["inputs"]["price"] == f"${t4.price_usd_per_hour:g}/h"
    assert items["training cost"]["sources"] == [f"price: {t4.price_source}"]
    assert any(s.startswith("devices.toml [t4]") for s in items["training time"]["sources"])


def test_explain_flags_an_inconsistent_figure() -> None:
    from afford.api import assess
    from afford.report.explain import explain

    data = assess("torchvision:resnet18", train_samples=100, infer_samples=10).to_dict()
    data["compute"]["train_flops"] *= 1.5  # a figure that no longer follows from its inputs
    bad = {x.figure: x for x in explain(data)}
    assert not bad["C_train"].consistent and bad["C_infer"].consistent


def test_default_output_is_one_screen_and_verbose_has_every_table() -> None:
    args = ["assess", "torchvision:resnet18", "--train-samples", "1000", "--infer-samples", "50", "--hardware", "t4"]
    short = runner.invoke(app, args)
    full = runner.invoke(app, [*args, "--verbose"])
    assert short.exit_code == 0 and full.exit_code == 0
    assert len(short.stdout.splitlines()) <= 24
    for word in ("compute", "memory / device", "time", "cost", "energy, CO2"):
        assert word in short.stdout
    assert "Modules" not in short.stdout and "Modules" in full.stdout
    assert "Memory per device" in full.stdout and len(full.stdout.splitlines()) > len(short.stdout.splitlines())


def _run_in_tty(args: list[str], env: dict[str, str]) -> str:
    """Run the CLI on a pseudo-terminal (so rich sees a terminal) and return what it printed."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "afford", *args], stdin=follower, stdout=follower,
                            stderr=follower, env=env, close_fds=True)
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=120)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_colours_on_a_terminal_and_off_with_no_color() -> None:
    # SGR colour parameters (foreground/background, 8/16/256/true colour); bold and dim are not colours
    colour = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;[0-9;]*)?m")
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    env.update(TERM="xterm-256color", COLUMNS="120", AFFORD_NO_STORE="1")
    args = ["assess", "torchvision:resnet18", "--infer-samples", "10"]
    assert colour.search(_run_in_tty(args, env)), "a terminal gets colours"
    assert not colour.search(_run_in_tty(args, {**env, "NO_COLOR": "1"})), "NO_COLOR turns them off"
    piped = subprocess.run([sys.executable, "-m", "afford", *args], capture_output=True, text=True, env=env,
                           check=True)
    assert not colour.search(piped.stdout), "no colours when not a terminal"


def test_report_suffix_is_checked_before_any_work(tmp_path: Path) -> None:
    out = runner.invoke(app, ["plan", "torchvision:resnet18", "--train-samples", "10", "--report",
                              str(tmp_path / "r.pdf")])
    assert out.exit_code == 2 and "give a .html, .htm or .md file" in out.stderr
    written = runner.invoke(app, ["assess", "torchvision:resnet18", "--infer-samples", "10", "--report",
                                  str(tmp_path / "r.html"), "--json"])
    assert written.exit_code == 0
    assert json.loads(written.stdout)["report"] == str(tmp_path / "r.html")
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>")
