"""Property tests over hostile numbers, config fields and job-file keys (issue 14).

The property, for any input drawn: `afford assess ... --json` either exits 0 with one strict, finite JSON
object on stdout, or exits 2 with exactly one line on stderr (and at most one JSON error object on stdout),
within a time bound; and the whole run stays within a memory bound. Examples are derandomised so the suite is
deterministic, and sized to run in well under 60 s on the 2-core build machine.
"""

from __future__ import annotations

import json
import math
import resource
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostile.harness import Result, assert_finite, run, strict_json

SECONDS_PER_EXAMPLE = 30.0
MAX_RSS_GROWTH_KIB = 3 * 1024 * 1024  # 3 GiB over the whole module

TINY_GPT2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 64, "n_layer": 2,
             "n_head": 2, "vocab_size": 1000, "n_positions": 128, "bos_token_id": 0, "eos_token_id": 0}

def _settings(examples: int) -> settings:
    return settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _holds(args: list[str], started: float) -> Result:
    """Run `afford ARGS` and assert the property."""
    result = run(args)
    elapsed = time.monotonic() - started
    where = f"afford {' '.join(args)[:300]}: exit {result.code}, stderr {result.stderr[-500:]!r}"
    assert elapsed < SECONDS_PER_EXAMPLE, f"{where}: took {elapsed:.1f} s"
    assert result.code in (0, 2), where
    assert "Traceback" not in result.stderr, where
    if result.code == 0:
        data = strict_json(result.stdout)
        assert isinstance(data, dict), where
        assert_finite(data)
    else:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, where
        if result.stdout.strip():
            error = strict_json(result.stdout)["error"]
            assert error["message"] and error["type"], where
    return result


_RSS_START = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

# --- numeric options --------------------------------------------------------------------------------------

_NUMBERS = st.one_of(
    st.integers(min_value=-5, max_value=100),
    st.sampled_from([0, -1, 2**31, 2**63, 10**15, 10**18, 10**30, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "-0", "1_000", "abc", "", "0x10", "1e-400"]),
)
_OPTIONS = ["--train-samples", "--infer-samples", "--epochs", "--batch-size", "--budget-usd", "--price-per-hour",
            "--max-kwh", "--max-co2-kg", "--pue", "--mfu", "--grid-gco2-kwh", "--electricity-usd-kwh",
            "--deadline", "--count", "--grad-accum", "--tp", "--pp", "--image-size", "--depth"]


@_settings(30)
@given(st.dictionaries(st.sampled_from(_OPTIONS), _NUMBERS, min_size=1, max_size=3))
def test_numeric_options(values: dict[str, Any]) -> None:
    args = ["assess", "module:fixture_models:mlp", "--json"]
    if "--train-samples" not in values:
        args += ["--train-samples", "10"]
    for option, value in values.items():
        args.append(f"{option}={value}")
    _holds(args, time.monotonic())


# --- config fields ----------------------------------------------------------------------------------------

_FIELD_VALUES = st.one_of(
    st.integers(min_value=-3, max_value=96),
    st.sampled_from([0, -1, 10**6, 10**9, 10**12, 2**63, 10**30]),
    st.sampled_from(["big", "", "64", None, True, [], [64], {"a": 1}, 64.5, float("nan")]),
)
_FIELDS = ["n_embd", "n_layer", "n_head", "vocab_size", "n_positions", "n_inner", "layer_norm_epsilon",
           "model_type", "architectures"]


@_settings(12)
@given(st.dictionaries(st.sampled_from(_FIELDS), _FIELD_VALUES, min_size=1, max_size=2))
def test_config_fields(tmp_path_factory: Any, fields: dict[str, Any]) -> None:
    folder: Path = tmp_path_factory.mktemp("cfg")
    config = {**TINY_GPT2, **fields}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    _holds(["assess", str(folder / "config.json"), "--train-samples", "4", "--seq-len", "16", "--json"],
           time.monotonic())


# --- job-file keys ----------------------------------------------------------------------------------------

_JOB_KEYS = {
    "workload": ["train_samples", "epochs", "infer_samples", "batch_size", "image_size", "precision", "optimizer",
                 "freeze", "task", "prompt_tokens", "generate_tokens", "no_such_key"],
    "hardware": ["device", "count", "tp", "pp", "grad_accum", "price_per_hour", "pue", "mfu", "grid_gco2_kwh"],
    "budget": ["usd", "deadline", "max_kwh", "max_co2_kg", "available", "electricity_usd_kwh"],
}
_TOML_VALUES = st.one_of(
    st.integers(min_value=-3, max_value=50),
    st.sampled_from([10**18, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.text(max_size=12),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=3),
)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


@_settings(20)
@given(st.lists(st.tuples(st.sampled_from(sorted(_JOB_KEYS)), st.integers(0, 20), _TOML_VALUES),
                min_size=1, max_size=3))
def test_job_file_keys(tmp_path_factory: Any, entries: list[tuple[str, int, Any]]) -> None:
    folder: Path = tmp_path_factory.mktemp("job")
    sections: dict[str, dict[str, Any]] = {}
    for section, index, value in entries:
        keys = _JOB_KEYS[section]
        sections.setdefault(section, {})[keys[index % len(keys)]] = value
    lines: list[str] = []  # the model comes from the command line: a job file's module: needs --trust-code
    for section, items in sections.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml(v)}" for k, v in items.items()]
    job = folder / "job.toml"
    job.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["assess", "module:fixture_models:mlp", "--job", str(job), "--json"]
    if "workload" not in sections or "train_samples" not in sections["workload"]:
        args += ["--train-samples", "8"]
    _holds(args, time.monotonic())


def test_memory_stayed_bounded() -> None:
    """Runs last in this module: the examples above did not grow the process by more than the bound."""
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - _RSS_START
    assert grown < MAX_RSS_GROWTH_KIB, f"grew {grown / 1024:.0f} MiB"
