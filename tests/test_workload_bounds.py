"""Issue 14: every number checked once in the library (finite, in range, one-line error naming the option the
way the caller spells it), architecture sizes of a config checked before building, the trace's op budget, and
strict JSON output."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import afford
from afford import bounds
from afford.cli import app
from afford.cli.app import emit_json
from afford.decide.budget import Budget, parse_duration
from afford.errors import ConfigError, InputError, TraceError, WorkloadError, cli_names, flag, opt
from afford.estimate.request import request
from afford.hardware.catalog import Catalog
from afford.sources.hf import check_sizes, spec_from_config
from afford.workload import Workload

runner = CliRunner()
NAN, INF = float("nan"), float("inf")


# ---- one mechanism for option names ----------------------------------------------------------------------

def test_opt_names_parameters_from_python_and_flags_on_the_command_line() -> None:
    assert opt("batch_size") == "batch_size"
    with cli_names():
        assert opt("batch_size") == "--batch-size"
        assert opt("allow_hub") == "--hub"
    assert opt("batch_size") == "batch_size"  # the context is left as it was
    assert flag("max_co2_kg") == "--max-co2-kg"


def test_python_api_errors_name_parameters() -> None:
    with pytest.raises(WorkloadError) as err:
        afford.assess("torchvision:resnet18", train_samples=10, batch_size=0)
    assert str(err.value).startswith("batch_size must be a positive integer")
    assert "--" not in str(err.value)
    with pytest.raises(InputError, match=r"^budget_usd must be a finite number"):
        afford.assess("torchvision:resnet18", train_samples=10, budget_usd=NAN)
    with pytest.raises(InputError, match=r"^price_per_hour must be a finite number"):
        afford.plan("torchvision:resnet18", train_samples=10, price_per_hour=INF)


def test_cli_errors_name_flags() -> None:
    out = runner.invoke(app, ["assess", "torchvision:resnet18", "--train-samples", "10", "--batch-size", "0"])
    assert out.exit_code == 2
    assert "--batch-size must be a positive integer of at most 1,000,000, got 0" in out.output


# ---- floats: finite and in range, wherever they enter ------------------------------------------------

@pytest.mark.parametrize("value", [NAN, INF, -INF, -1.0, 1e13])
def test_budget_usd(value: float) -> None:
    with pytest.raises(InputError, match="budget_usd must be a finite number at least 0 and at most"):
        Budget(usd=value)


@pytest.mark.parametrize("value", [NAN, INF, 0.0, -3.0, 1e13])
def test_energy_and_carbon_limits(value: float) -> None:
    with pytest.raises(InputError, match=r"^max_kwh must be a finite number greater than 0"):
        Budget(max_kwh=value)
    with pytest.raises(InputError, match=r"^max_co2_kg must be a finite number greater than 0"):
        Budget(max_co2_kg=value)


@pytest.mark.parametrize("value", [NAN, INF, 0.0, -5.0, 4e9])
def test_numeric_deadlines(value: float) -> None:
    with pytest.raises(InputError, match="deadline must be longer than zero and at most 100 years"):
        Budget(deadline_s=value)


@pytest.mark.parametrize("text", ["nanh", "-5h", "1e400d", "inf", "5 fortnights"])
def test_deadline_strings_that_are_not_durations(text: str) -> None:
    with pytest.raises(InputError, match="deadline"):
        parse_duration(text)


def test_deadline_strings_past_a_century_or_float_range() -> None:
    assert parse_duration("36h") == 36 * 3600
    for text in ("9999999w", "9" * 400):
        with pytest.raises(InputError, match="at most 100 years"):
            parse_duration(text)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"price_per_hour": NAN}, "price_per_hour must be a finite number at least 0 and at most 10,000"),
    ({"price_per_hour": -INF}, "price_per_hour"),
    ({"pue": NAN}, "pue must be a finite number at least 1 and at most 3"),
    ({"pue": INF}, "pue"),
    ({"mfu": NAN}, "mfu must be a finite number greater than 0 and at most 1"),
    ({"mfu": 0.0}, "mfu"),
    ({"grid_gco2_kwh": NAN}, "grid_gco2_kwh must be a finite number"),
    ({"grid_gco2_kwh": 1e400}, "grid_gco2_kwh"),
    ({"count": 10**400}, "count must be a positive integer of at most 1,000,000, got a 401-digit integer"),
    ({"gpus_per_node": 10**6}, "gpus_per_node must be a positive integer of at most 1,024"),
    ({"grad_accum": 10**7}, "grad_accum must be a positive integer of at most 1,000,000"),
    ({"tp": 10**400}, "tp must be a positive integer"),
])
def test_hardware_request(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        request(**kwargs)


@pytest.mark.parametrize("value", [NAN, INF, 0.0, -1.0, 2e6])
def test_epochs(value: float) -> None:
    with pytest.raises(WorkloadError, match="epochs must be a finite number greater than 0"):
        Workload(train_samples=10, epochs=value)


# ---- integers: a stated upper bound, never an OverflowError -------------------------------------------

@pytest.mark.parametrize(("field", "bound"), [
    ("train_samples", "1,000,000,000,000,000"), ("infer_samples", "1,000,000,000,000,000"),
    ("train_tokens", "1,000,000,000,000,000,000"), ("batch_size", "1,000,000"), ("seq_len", "10,000,000"),
    ("image_size", "16,384"),
])
@pytest.mark.parametrize("value", [10**400, 10**19, 0, -1, True, 2.0])
def test_counts(field: str, bound: str, value: Any) -> None:
    with pytest.raises(WorkloadError, match=f"^{field} must be a positive integer of at most {bound}, got"):
        Workload(**{field: value})


def test_counts_at_their_bounds_are_accepted() -> None:
    Workload(train_samples=bounds.MAX_SAMPLES, batch_size=bounds.MAX_BATCH, seq_len=bounds.MAX_SEQ)
    Workload(train_tokens=bounds.MAX_TOKENS, infer_samples=bounds.MAX_SAMPLES)


def test_huge_integers_are_shown_by_their_digits() -> None:
    assert bounds.show(10**400) == "a 401-digit integer"
    assert bounds.show(12) == "12"
    assert len(bounds.show("x" * 5000)) <= 60


# ---- hardware files ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("entry", "message"), [
    ("peak_tflops = { bf16 = nan }", r"peak_tflops\.bf16 must be a finite, positive number"),
    ("peak_tflops = { bf16 = inf }", r"peak_tflops\.bf16"),
    ("memory_bandwidth_gb_s = nan", "memory_bandwidth_gb_s must be a finite, positive number"),
    ("memory_bytes = 1e300", "memory_bytes must be a finite, positive number"),
    ("tdp_w = -inf", "tdp_w must be a finite, non-negative number"),
    ("price_usd_per_hour = nan", "price_usd_per_hour"),
    ("gpus_per_node = 0", "gpus_per_node must be an integer from 1 to 1024"),
    ("system_efficiency = nan", "system_efficiency"),
])
def test_hardware_file_figures(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "hw.toml"
    path.write_text(f'[[device]]\nid = "a100-80gb"\n{entry}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        Catalog.load(path)


# ---- architecture sizes of a config, before anything is built ----------------------------------------------

GPT2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 64, "n_layer": 2, "n_head": 2,
        "vocab_size": 1000, "n_positions": 128, "n_inner": None}


@pytest.mark.parametrize(("fields", "message"), [
    ({"n_embd": "big"}, "config field n_embd must be a positive integer of at most 1,000,000, got 'big'"),
    ({"n_embd": -1}, "config field n_embd"),
    ({"n_embd": 0}, "config field n_embd"),
    ({"n_embd": NAN}, "config field n_embd"),
    ({"n_layer": 100000}, "config field n_layer must be a positive integer of at most 1,000, got 100000"),
    ({"vocab_size": 10**8}, "config field vocab_size must be a positive integer of at most 10,000,000"),
    ({"n_head": True}, "config field n_head"),
    ({"n_inner": 10**30}, "config field n_inner .*a 31-digit integer"),
    ({"n_positions": [128, 0]}, "config field n_positions"),
    ({"text_config": {"num_experts": -1}}, r"config field text_config\.num_experts must be an integer from 0"),
])
def test_bad_architecture_sizes(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_sizes({**GPT2, **fields}, "config.json")


def test_the_size_check_runs_before_transformers_builds_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("transformers was asked to build a config with absurd sizes")

    monkeypatch.setattr(transformers.AutoConfig, "for_model", refuse)
    with pytest.raises(ConfigError, match="n_layer"):
        spec_from_config({**GPT2, "n_layer": 100000}, "tiny")


def test_every_bundled_config_is_within_the_bounds() -> None:
    from afford.sources import hf

    for hub_id, entry in hf.catalog().items():
        check_sizes(entry["config"], hub_id)


# ---- the trace's op budget -------------------------------------------------------------------------------------

def test_the_trace_stops_at_its_op_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFFORD_MAX_TRACE_OPS", "20")
    with pytest.raises(TraceError, match="budget of 20 dispatched ops"):
        afford.assess("torchvision:resnet18", train_samples=10)
    monkeypatch.setenv("AFFORD_MAX_TRACE_OPS", "-3")
    with pytest.raises(InputError, match="AFFORD_MAX_TRACE_OPS must be a positive integer"):
        afford.assess("torchvision:resnet18", train_samples=10)
    monkeypatch.setenv("AFFORD_MAX_TRACE_OPS", "100000")
    assert afford.assess("torchvision:resnet18", train_samples=10).train_flops > 0


# ---- strict JSON -------------------------------------------------------------------------------------------------

def test_json_output_refuses_nan(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as err:
        emit_json({"figure": math.nan})
    assert err.value.exit_code == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "non-finite number" in captured.err


def test_json_output_of_an_assessment_is_strict_and_finite() -> None:
    out = runner.invoke(app, ["assess", "torchvision:resnet18", "--train-samples", "10", "--infer-samples", "5",
                              "--budget-usd", "5", "--json"])
    assert out.exit_code == 0, out.output

    def refuse(name: str) -> Any:
        raise AssertionError(name)

    json.loads(out.stdout, parse_constant=refuse)
