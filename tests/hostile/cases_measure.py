"""`afford measure` with odd and hostile input (issue 14): a copied assess command (its job options accepted, the
ones a local run cannot use reported as ignored), devices that are not here, models that cannot run, steps out
of range, no calibration when refusing was asked; and a config whose `auto_map` code afford does not run.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from hostile.harness import Case, Result

TINY_GPT2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 2, "n_embd": 64, "n_head": 2,
             "vocab_size": 1000, "n_positions": 128}
AUTO_MAP = {"AutoConfig": "configuration_mine.MyConfig", "AutoModelForCausalLM": "modeling_mine.MyModel"}
# a store no calibration was ever written to (made once, at import: a row's env is fixed)
EMPTY_HOME = tempfile.mkdtemp(prefix="afford-measure-empty-home-")
# tiny runs, predicted for a named catalog CPU so that no row calibrates this machine
FAST = ["--steps", "1", "--seq-len", "16", "--hardware", "cpu-generic"]


def _config(extra: dict[str, object] | None = None, folder: str = "model") -> Callable[[Path], list[str]]:
    """A setup writing a 2-layer GPT-2 config.json (with `extra` fields) to TMP/FOLDER; returns its path."""

    def setup(tmp: Path) -> list[str]:
        path = tmp / folder / "config.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**TINY_GPT2, **(extra or {})}), encoding="utf-8")
        return [str(path)]

    return setup

def _json(check: Callable[[dict[str, object]], bool]) -> Callable[[Path, Result], None]:
    def run(tmp: Path, result: Result) -> None:
        data = json.loads(result.stdout)
        assert check(data), data

    return run

def _job_totals(d: dict[str, object]) -> bool:
    measured, predicted = d["measured"], d["predicted"]
    assert isinstance(measured, dict) and isinstance(predicted, dict)
    return (d["job"] == {"train_steps": 50, "infer_batches": 10} and d["hardware"] == "cpu-generic"
            and measured["train_seconds"] > 0 and predicted["train_seconds"] > 0)

CASES = [
    # a copied assess command: job options used, hardware/price/budget options accepted and named as ignored
    Case("measure-assess-options", ["measure", *FAST, "--train-samples", "50", "--epochs", "2", "--batch-size", "2",
                                    "--infer-samples", "20", "--count", "8", "--parallel", "zero2",
                                    "--budget-usd", "20", "--deadline", "2h", "--region", "eu", "--json"],
         0, r"ignored by afford measure.*--count 8.*--parallel zero2", setup=_config(),
         check=_json(_job_totals)),
    Case("measure-prediction-elsewhere-says-so", ["measure", *FAST, "--hardware", "a100-80gb"], 0,
         r"crosses devices", setup=_config()),
    # an assess job file: its budget ignored, and its target GPU too (only a typed --hardware crosses devices)
    Case("measure-job-file", ["measure", *FAST], 0, r"ignored by afford measure.*--budget-usd 3",
         setup=lambda tmp: [*_config()(tmp), "--job", str(_job(tmp))]),
    Case("measure-job-file-device-not-used", ["measure", "--steps", "1", "--seq-len", "16", "--calibrate", "no"], 2,
         r"run `afford calibrate`", env={"AFFORD_HOME": EMPTY_HOME},
         setup=lambda tmp: [*_config()(tmp), "--job", str(_job(tmp))]),
    # devices that are not here
    Case("measure-device-cuda-absent", ["measure", "torchvision:resnet18", "--device", "cuda:4096"], 2,
         r"CUDA device"),
    Case("measure-device-unknown", ["measure", "torchvision:resnet18", "--device", "tpu"], 2,
         r"choose cpu or cuda"),
    Case("measure-hardware-unknown", ["measure", "torchvision:resnet18", "--hardware", "h900"], 2,
         r"unknown hardware"),
    # no calibration, and the user asked measure not to make one
    Case("measure-no-calibration-refused", ["measure", "torchvision:resnet18", "--calibrate", "no"], 2,
         r"run `afford calibrate`", env={"AFFORD_HOME": EMPTY_HOME}),
    Case("measure-calibrate-mode-unknown", ["measure", "torchvision:resnet18", "--calibrate", "maybe"], 2,
         r"choose quick, full, no"),
    # models that cannot run here
    Case("measure-detector-not-measurable", ["measure", "torchvision:fasterrcnn_mobilenet_v3_large_320_fpn"], 2,
         r"cannot run .*box targets"),
    Case("measure-optimizer-needs-cuda", ["measure", "torchvision:resnet18", "--optimizer", "adam-8bit"], 2,
         r"bitsandbytes needs CUDA"),
    Case("measure-unknown-model", ["measure", "torchvision:resnet9000"], 2, r"resnet"),
    # steps and job options out of range: refused before any work
    Case("measure-steps-zero", ["measure", "torchvision:resnet18", "--steps", "0"], 2, r"--steps must be"),
    Case("measure-steps-negative", ["measure", "torchvision:resnet18", "--steps", "-1"], 2, r"--steps must be"),
    Case("measure-steps-huge", ["measure", "torchvision:resnet18", "--steps", str(10**9)], 2,
         r"--steps must be .* at most 1,000"),
    Case("measure-steps-not-a-number", ["measure", "torchvision:resnet18", "--steps", "five"], 2, r"steps"),
    Case("measure-grad-accum-zero", ["measure", "torchvision:resnet18", "--grad-accum", "0"], 2, r"grad-accum"),
    Case("measure-epochs-zero", ["measure", "torchvision:resnet18", "--train-samples", "10", "--epochs", "0"], 2,
         r"epochs"),
    Case("measure-freeze-matches-nothing", ["measure", *FAST, "--freeze", "no_such_layer"], 2,
         r"matches no parameter", setup=_config()),
    # a stock model_type with the repository's own code mapped: counted as the stock model, and said so
    Case("measure-auto-map-note", ["assess", "--json"], 0, r"auto_map: configuration_mine.MyConfig.*was not run",
         setup=_config({"auto_map": AUTO_MAP})),
    Case("measure-auto-map-trusted-without-code", ["assess", "--trust-remote-code"], 2, r"remote code failed",
         setup=lambda tmp: [str(Path(_config({"auto_map": AUTO_MAP})(tmp)[0]).parent)]),
]

def _job(tmp: Path) -> Path:
    """A job file with a training job and a budget (the budget is what measure ignores)."""
    path = tmp / "job.toml"
    path.write_text('[workload]\ntrain_samples = 8\n[hardware]\ndevice = "h100-sxm"\n[budget]\nusd = 3\n',
                    encoding="utf-8")
    return path
