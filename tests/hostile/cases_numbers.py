"""Hostile numbers (issue 14): NaN, infinities, negatives, zeros and absurd sizes for every numeric option,
bad architecture sizes in config.json files, deadline strings, the trace's op budget, and verdict consistency.

Every refused value is refused before a model is traced, so these rows cost milliseconds; the few that trace
use the tiny `module:fixture_models:mlp`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hostile.harness import Case, Result, assert_finite, strict_json

MLP = "module:fixture_models:mlp"
BIG = "1" + "0" * 400  # 10**400: past float's range, 401 digits
ASSESS = ["assess", MLP, "--train-samples", "10"]
# a job file's head (a module: model in a job file needs --trust-code, so a built-in one)
JOB = 'model = "torchvision:resnet18"\n[workload]\ntrain_samples = 10\n'
TINY_GPT2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 64, "n_layer": 2, "n_head": 2,
             "vocab_size": 1000, "n_positions": 128, "bos_token_id": 0, "eos_token_id": 0}


def _float(case_id: str, option: str, value: str, flag_text: str | None = None, extra: Sequence[str] = ()) -> Case:
    """A float option refused with a one-line message naming the flag and the word 'finite'."""
    name = flag_text or option
    return Case(case_id, [*ASSESS, *extra, f"{option}={value}"], 2, rf"{name} must be a finite number")


def _int(case_id: str, option: str, value: str, args: Sequence[str] = ASSESS) -> Case:
    """An integer option refused with its stated upper bound."""
    return Case(case_id, [*args, f"{option}={value}"], 2,
                rf"{option} must be (a positive integer of at most|an integer from \d+ to) [\d,]+, got")


def _config(fields: dict[str, Any], raw: str | None = None) -> Any:
    """setup(tmp): a tiny GPT-2 config.json with `fields` replaced (or the raw text), its path as the model."""

    def setup(tmp: Path) -> list[str]:
        path = tmp / "config.json"
        path.write_text(raw if raw is not None else json.dumps({**TINY_GPT2, **fields}), encoding="utf-8")
        return [str(path), "--train-samples", "4", "--seq-len", "16"]

    return setup


def _cfg_case(case_id: str, fields: dict[str, Any], message: str, raw: str | None = None) -> Case:
    return Case(case_id, ["assess"], 2, message, setup=_config(fields, raw))


def _file(name: str, text: str, option: str) -> Any:
    """setup(tmp): write `text` to tmp/name and pass it with `option`."""

    def setup(tmp: Path) -> list[str]:
        (tmp / name).write_text(text, encoding="utf-8")
        return [option, str(tmp / name)]

    return setup


def _consistent_verdict(tmp: Path, result: Result) -> None:
    """Strict, finite JSON; the verdict's plan feasible when affordable; every MFU in (0, 1]; the plan as asked
    has the assessment's MFU (one peak per precision)."""
    data = strict_json(result.stdout)
    assert_finite(data)
    verdict = data["verdict"]
    assert verdict["status"] == "affordable", verdict
    assert verdict["plan"]["feasible"] and not verdict["plan"]["violations"], verdict["plan"]
    assert math.isclose(verdict["plan"]["mfu"], data["time"]["train_mfu"], rel_tol=1e-9)
    for plan in [verdict["plan"], *data["plans"], *verdict["options"].values()]:
        assert 0 < plan["mfu"] <= 1, plan


CASES: list[Case] = [
    # ---- money, energy, carbon: the budget ---------------------------------------------------------------
    _float("num-budget-nan", "--budget-usd", "nan"),
    _float("num-budget-inf", "--budget-usd", "inf"),
    _float("num-budget-1e400", "--budget-usd", "1e400"),
    _float("num-budget-negative", "--budget-usd", "-5"),
    _float("num-budget-absurd", "--budget-usd", "1e13"),
    _float("num-max-kwh-nan", "--max-kwh", "nan"),
    _float("num-max-kwh-zero", "--max-kwh", "0"),
    _float("num-max-kwh-neg-inf", "--max-kwh", "-inf"),
    _float("num-max-co2-inf", "--max-co2-kg", "inf"),
    _float("num-max-co2-negative", "--max-co2-kg", "-1"),
    # ---- rates: price, PUE, MFU, grid, electricity ----------------------------------------------------
    _float("num-price-nan", "--price-per-hour", "nan"),
    _float("num-price-neg-inf", "--price-per-hour", "-inf"),
    _float("num-price-absurd", "--price-per-hour", "1e9"),
    _float("num-pue-nan", "--pue", "nan"),
    _float("num-pue-inf", "--pue", "inf"),
    _float("num-pue-below-one", "--pue", "0.5"),
    _float("num-mfu-nan", "--mfu", "nan"),
    _float("num-mfu-zero", "--mfu", "0"),
    _float("num-mfu-inf", "--mfu", "inf"),
    _float("num-grid-nan", "--grid-gco2-kwh", "nan"),
    _float("num-grid-1e400", "--grid-gco2-kwh", "1e400"),
    _float("num-electricity-nan", "--electricity-usd-kwh", "nan", extra=["--available", "rtx4090:1"]),
    _float("num-electricity-negative", "--electricity-usd-kwh", "-0.1"),
    # ---- epochs ------------------------------------------------------------------------------------------
    _float("num-epochs-nan", "--epochs", "nan"),
    _float("num-epochs-inf", "--epochs", "inf"),
    _float("num-epochs-zero", "--epochs", "0"),
    _float("num-epochs-negative", "--epochs", "-2"),
    _float("num-epochs-absurd", "--epochs", "1e7"),
    # ---- deadlines ---------------------------------------------------------------------------------------
    Case("num-deadline-nanh", [*ASSESS, "--deadline", "nanh"], 2, r"--deadline 'nanh' is not a duration"),
    Case("num-deadline-negative", [*ASSESS, "--deadline=-5h"], 2, r"--deadline '-5h' is not a duration"),
    Case("num-deadline-1e400d", [*ASSESS, "--deadline", "1e400d"], 2, r"--deadline '1e400d' is not a duration"),
    Case("num-deadline-zero", [*ASSESS, "--deadline", "0h"], 2, r"--deadline must be longer than zero"),
    Case("num-deadline-millennia", [*ASSESS, "--deadline", "9999999w"], 2, r"--deadline .*at most 100 years"),
    Case("num-deadline-400-digits", [*ASSESS, "--deadline", "9" * 400], 2, r"--deadline .*at most 100 years"),
    # ---- counts and sizes: stated upper bounds, never an OverflowError ---------------------------------
    _int("num-train-samples-1e400", "--train-samples", BIG, ["assess", MLP]),
    _int("num-train-samples-1e16", "--train-samples", str(10**16), ["assess", MLP]),
    _int("num-train-samples-negative", "--train-samples", "-1", ["assess", MLP]),
    _int("num-infer-samples-1e400", "--infer-samples", BIG, ["assess", MLP]),
    _int("num-train-tokens-1e19", "--train-tokens", str(10**19), ["assess", MLP]),
    _int("num-batch-size-1e400", "--batch-size", BIG),
    _int("num-batch-size-zero", "--batch-size", "0"),
    _int("num-seq-len-absurd", "--seq-len", str(10**8)),
    _int("num-image-size-absurd", "--image-size", str(10**5)),
    _int("num-count-1e400", "--count", BIG),
    _int("num-count-absurd", "--count", str(10**7)),
    _int("num-gpus-per-node-absurd", "--gpus-per-node", str(10**6)),
    _int("num-grad-accum-1e400", "--grad-accum", BIG),
    _int("num-tp-1e400", "--tp", BIG),
    _int("num-depth-absurd", "--depth", str(10**6)),
    _int("num-prompt-tokens-1e400", "--prompt-tokens", BIG,
         ["assess", MLP, "--infer-samples", "1", "--task", "generate", "--generate-tokens", "1"]),
    Case("num-available-count-absurd", [*ASSESS, "--available", f"rtx4090:{10**30}"], 2,
         r"--available .*the count must be at least 1 and at most 1,000,000"),
    # ---- hardware files: NaN, infinities and absurd figures ---------------------------------------------
    Case("num-hwfile-nan-peak", ASSESS, 2, r"peak_tflops\.bf16 must be a finite, positive number",
         setup=_file("hw.toml", '[[device]]\nid = "mine"\nmemory_bytes = 1e9\nmemory_bandwidth_gb_s = 100\n'
                                "peak_tflops = { bf16 = nan }\n", "--hardware-file")),
    Case("num-hwfile-inf-bandwidth", ASSESS, 2, r"memory_bandwidth_gb_s must be a finite, positive number",
         setup=_file("hw.toml", '[[device]]\nid = "a100-80gb"\nmemory_bandwidth_gb_s = inf\n', "--hardware-file")),
    Case("num-hwfile-yaml-nan-price", ASSESS, 2, r"price_usd_per_hour must be a finite, non-negative number",
         setup=_file("hw.yaml", "device:\n  - id: t4\n    price_usd_per_hour: .nan\n", "--hardware-file")),
    Case("num-hwfile-absurd-memory", ASSESS, 2, r"memory_bytes must be a finite, positive number",
         setup=_file("hw.toml", '[[device]]\nid = "a100-80gb"\nmemory_bytes = 1e300\n', "--hardware-file")),
    # ---- architecture sizes in a config.json, refused before anything is built --------------------------
    _cfg_case("num-cfg-n-embd-word", {"n_embd": "big"}, r"config field n_embd must be a positive integer"),
    _cfg_case("num-cfg-n-embd-negative", {"n_embd": -1}, r"config field n_embd must be a positive integer"),
    _cfg_case("num-cfg-n-embd-zero", {"n_embd": 0}, r"config field n_embd .*at most 1,000,000"),
    _cfg_case("num-cfg-layers-100000", {"n_layer": 100000}, r"config field n_layer .*at most 1,000"),
    _cfg_case("num-cfg-vocab-absurd", {"vocab_size": 10**8}, r"config field vocab_size .*at most 10,000,000"),
    _cfg_case("num-cfg-heads-fraction", {"n_head": 2.5}, r"config field n_head must be a positive integer"),
    _cfg_case("num-cfg-positions-huge-int", {"n_positions": 10**30}, r"config field n_positions .*31-digit"),
    _cfg_case("num-cfg-inner-nan", {}, r"config field n_inner must be a positive integer",
              raw=json.dumps(TINY_GPT2)[:-1] + ', "n_inner": NaN}'),
    _cfg_case("num-cfg-nested-layers", {"text_config": {"num_hidden_layers": 0}},
              r"config field text_config\.num_hidden_layers must be a positive integer"),
    _cfg_case("num-cfg-layers-list", {"n_layer": [2, -2]}, r"config field n_layer must be a positive integer"),
    # ---- the trace's op budget -------------------------------------------------------------------------
    Case("num-trace-op-budget", ASSESS, 2, r"budget of 20 dispatched ops .*AFFORD_MAX_TRACE_OPS",
         env={"AFFORD_MAX_TRACE_OPS": "20"}),
    Case("num-trace-op-budget-bad", ASSESS, 2, r"AFFORD_MAX_TRACE_OPS must be a positive integer",
         env={"AFFORD_MAX_TRACE_OPS": "lots"}),
    # ---- plan and compare take the same checks -----------------------------------------------------------
    Case("num-plan-budget-nan", ["plan", MLP, "--train-samples", "10", "--budget-usd", "nan"], 2,
         r"--budget-usd must be a finite number"),
    Case("num-plan-price-inf", ["plan", MLP, "--train-samples", "10", "--price-per-hour", "inf"], 2,
         r"--price-per-hour must be a finite number"),
    Case("num-plan-lora-rank-1e400", ["plan", MLP, "--train-samples", "10", "--lora-rank", BIG], 2,
         r"--lora-rank must be a positive integer of at most"),
    Case("num-plan-max-count-zero", ["plan", MLP, "--train-samples", "10", "--max-count", "0"], 2,
         r"--max-count must be a positive integer"),
    Case("num-compare-max-kwh-nan", ["compare", MLP, "--train-samples", "10", "--max-kwh", "nan"], 2,
         r"--max-kwh must be a finite number"),
    # ---- job files reach the same checks -------------------------------------------------------------------
    Case("num-job-budget-nan", ["assess"], 2, r"budget-usd must be a finite number",
         setup=_file("job.toml", f"{JOB}[budget]\nusd = nan\n", "--job")),
    Case("num-job-epochs-inf", ["assess"], 2, r"epochs must be a finite number",
         setup=_file("job.toml", f"{JOB}epochs = inf\n", "--job")),
    # ---- what passes: a note for a batch past the data set, and a consistent, strict verdict -----------
    Case("num-batch-larger-than-data", [*ASSESS, "--batch-size", "64", "--json"], 0,
         r"--batch-size 64 is larger than the 10 training samples"),
    Case("num-verdict-consistent", [*ASSESS, "--budget-usd", "5", "--json"], 0, r'"status": "affordable"',
         check=_consistent_verdict),
]
