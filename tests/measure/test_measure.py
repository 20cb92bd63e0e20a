"""`afford calibrate` and `afford measure` on this machine's CPU (small models; no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

import afford
from afford.cli import app
from afford.errors import InputError
from afford.hardware.catalog import Catalog
from afford.measure import calibrate as calibration
from afford.measure import target
from afford.measure.target import check_device, prediction_target
from afford.store import Store

runner = CliRunner()
Calls = list[tuple[str, bool]]  # (device, quick) of each on-the-fly calibration
# A calibration small enough for a test (every part of the real one runs, on tiny shapes and single repeats)
TINY = calibration.Effort(((128, 128, 128),), ((2, 8, 14, 3),), repeats=1, budget_s=0.1, copy_floats=2**18,
                          op_runs=1, probe_steps=(0, 1))
TINY_GPT2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 2, "n_embd": 64, "n_head": 2,
             "vocab_size": 1000, "n_positions": 128}


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AFFORD_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture()
def tiny_quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """`afford calibrate --quick`, at test size."""
    monkeypatch.setattr(calibration, "QUICK", TINY)


@pytest.fixture()
def fake_calibration(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """`afford measure`'s on-the-fly calibration, replaced by a fixed profile (the real one is tested through
    `afford calibrate --quick`); the calls it got."""
    calls: Calls = []

    def fake(device: str, quick: bool) -> dict[str, Any]:
        calls.append((device, quick))
        return _fake_profile(device, quick)

    monkeypatch.setattr(target, "_calibrate", fake)
    return calls


def _calibrations(device: str = "cpu-local") -> int:
    with Store() as store:
        return sum(1 for r in store.list("calibration", 100) if r.name == device)


def _fake_profile(device: str, quick: bool) -> dict[str, Any]:
    """A valid device entry as `calibrate` returns it, without measuring (and the CUDA path on a CPU box)."""
    cpu = device == "cpu"
    return {"id": calibration.local_id(device), "name": f"test {'CPU' if cpu else 'GPU'} (calibrated, quick)",
            "vendor": "local", "kind": "cpu" if cpu else "gpu", "memory_bytes": 2**34,
            "memory_bandwidth_gb_s": 10.0 if cpu else 900.0,
            "peak_tflops": {"fp32": 0.05, "bf16": 0.1} if cpu else {"fp32": 20.0, "bf16": 80.0},
            "calibrated": True, "quick": quick, "op_overhead_s": 1e-5, "gpus_per_node": 1}


def test_calibrate_stores_a_profile_that_assessments_use(home: Path, tiny_quick: None) -> None:
    """Every part of a calibration (the quick one, shrunk to test size: the full one differs only in its
    shapes and repeats, calibrate.FULL)."""
    with pytest.raises(InputError, match="afford calibrate"):
        Catalog.load().get("cpu-local")
    result = runner.invoke(app, ["calibrate", "--quick", "--json"])
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)["profile"]
    assert profile["id"] == "cpu-local" and profile["calibrated"] and profile["quick"]
    assert profile["peak_tflops"]["fp32"] > 0 and profile["memory_bandwidth_gb_s"] > 0
    assert 0 < profile["op_overhead_s"] < 1e-3
    # per-op rates for the ops that run below copy bandwidth, an AdamW rate and the probe-measured system factor
    assert {"bernoulli_", "tanh", "gelu", "native_layer_norm"} <= set(profile["op_gb_s"])
    assert profile["optimizer_gb_s"] > 0 and 0.1 <= profile["system_efficiency"] <= 1.0
    assert set(profile["system_probes"]) == {"transformer encoder", "conv net"}
    device = Catalog.load().get("cpu-local")
    assert device.peak_flops("fp32") == pytest.approx(profile["peak_tflops"]["fp32"] * 1e12)
    out = runner.invoke(app, ["assess", "torchvision:resnet18", "--train-samples", "8", "--batch-size", "8",
                              "--hardware", "cpu-local", "--json"])
    d = json.loads(out.stdout)
    assert d["hardware"]["name"] == "cpu-local"
    low, high = d["time"]["train_seconds_range"]
    assert low == high == d["time"]["train_seconds"]  # measured figures carry no efficiency range
    # the host profile it measured prices eager dispatch of catalog GPUs with --host-profile local
    host = profile["host_profile"]
    assert host["device"] == "cpu" and 0 < host["op_us"] < 1e3 and host["conv_us"] >= host["op_us"] - 5
    assert host["input_images_per_s_per_core"] > 0  # JPEG decode and augmentation on one core (--data-workers)
    from afford.estimate import runtime

    runtime._local.cache_clear()
    local = runtime.host_profile("local")
    assert local.op_s == pytest.approx(host["op_us"] * 1e-6) and local.module_s >= 0
    fast = afford.assess("torchvision:resnet18", infer_samples=1, hardware="h200", host_profile="local")
    assert fast.to_dict()["infer"]["latency_seconds"] < afford.assess(
        "torchvision:resnet18", infer_samples=1, hardware="h200").to_dict()["infer"]["latency_seconds"]


def test_the_host_profile_derivation_reproduces_the_h200_entry() -> None:
    """runtime.toml's h200-2026 comes from that machine's three microbenchmarks by calibrate's own rule."""
    from afford.estimate.runtime import host_profile

    entry = calibration.host_profile_entry({"add_us": 7.2214, "linear_module_us": 22.4433,
                                            "conv_module_us": 32.0352}, "cuda")
    h = host_profile("h200-2026")
    assert entry["op_us"] == pytest.approx(h.op_s * 1e6, abs=0.05)
    assert entry["module_us"] == pytest.approx(h.module_s * 1e6, abs=0.05)
    assert entry["conv_us"] == pytest.approx(h.conv_s * 1e6, abs=0.05)


def test_measure_calibrates_this_machine_first_and_predicts_for_it(home: Path, fake_calibration: Calls) -> None:
    """Issue 14: with no calibration, measure predicts for THIS machine (a quick calibration made on the fly,
    announced on stderr and stored), never for a catalog device it did not run on."""
    result = runner.invoke(app, ["measure", "module:fixture_models:mlp", "--batch-size", "16", "--steps", "2",
                                 "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["hardware"] == "cpu-local"
    for key in ("train_step_seconds", "infer_batch_seconds", "peak_bytes"):
        assert d["measured"][key] > 0 and d["predicted"][key] > 0
        assert d["error_pct"][key] == pytest.approx(
            100 * (d["predicted"][key] - d["measured"][key]) / d["measured"][key])
    assert "allocation events" in d["peak_method"] and d["measured"]["rss_peak_bytes"] > 0
    assert "calibrating it now (quick" in result.stderr
    assert any("calibrated its cpu first (quick" in n for n in d["notes"])
    assert not any("price" in n for n in d["notes"])  # the estimate's pricing notes do not apply here
    assert _calibrations() == 1 and fake_calibration == [("cpu", True)]
    assert Catalog.load().get("cpu-local").extra["quick"] is True
    history = json.loads(runner.invoke(app, ["history", "--kind", "measurement", "--json"]).stdout)["records"]
    assert history and history[0]["kind"] == "measurement"
    again = runner.invoke(app, ["measure", "module:fixture_models:mlp", "--batch-size", "16", "--steps", "1",
                                "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["hardware"] == "cpu-local" and len(fake_calibration) == 1  # stored, reused
    assert "calibrating" not in again.stderr


def test_measure_can_refuse_instead_of_calibrating(home: Path) -> None:
    result = runner.invoke(app, ["measure", "module:fixture_models:mlp", "--calibrate", "no"])
    assert result.exit_code == 2
    assert "`afford calibrate`" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert _calibrations() == 0


def test_a_catalog_device_is_predicted_only_when_asked_and_says_so(home: Path) -> None:
    gpu = prediction_target("cpu", "a100-80gb")
    assert gpu.hardware == "a100-80gb" and "crosses devices" in gpu.notes[0]
    other_cpu = prediction_target("cpu", "cpu-generic")
    assert other_cpu.hardware == "cpu-generic" and "not this machine" in other_cpu.notes[0]
    with pytest.raises(InputError, match="unknown hardware"):
        prediction_target("cpu", "no-such-gpu")
    assert _calibrations() == 0  # naming a device never calibrates


def test_cuda_measurement_predicts_for_the_local_gpu(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA path without a GPU: device checks, an on-the-fly cuda-local calibration (faked here) and the
    crossing note for a CPU profile."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda") == "cuda" and check_device("CUDA:1") == "cuda:1"
    with pytest.raises(InputError, match="has 2 CUDA devices"):
        check_device("cuda:2")
    said: list[str] = []
    target = prediction_target("cuda", None, announce=said.append, run_calibration=_fake_profile)
    assert target.hardware == "cuda-local" and target.calibrated_now and "--device cuda" in said[0]
    assert Catalog.load().get("cuda-local").kind == "gpu" and _calibrations("cuda-local") == 1
    assert not prediction_target("cuda", None, run_calibration=_fake_profile).calibrated_now
    crossing = prediction_target("cuda:1", "cpu-generic")
    assert "crosses devices" in crossing.notes[0]
    monkeypatch.setenv("AFFORD_HOME", str(home / "fresh"))  # another machine with no calibration yet
    with pytest.raises(InputError, match="run `afford calibrate --device cuda`"):
        prediction_target("cuda", None, calibration="no", run_calibration=_fake_profile)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_measure_on_cuda_without_cuda_is_one_line(home: Path) -> None:
    result = runner.invoke(app, ["measure", "module:fixture_models:mlp", "--device", "cuda"])
    assert result.exit_code == 2 and "no CUDA device" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_measure_takes_assess_job_options(home: Path) -> None:
    """A copied assess command runs: job totals predicted and extrapolated from the measured step, the options
    a local run cannot use reported as ignored."""
    result = runner.invoke(app, ["measure", "module:fixture_models:mlp", "--batch-size", "16", "--steps", "1",
                                 "--train-samples", "100", "--epochs", "2", "--infer-samples", "40",
                                 "--grad-accum", "2", "--count", "8", "--budget-usd", "5", "--recompute",
                                 "--hardware", "cpu-generic", "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["job"] == {"train_steps": 7, "infer_batches": 3}  # 200 samples / (16 x 2 per step), 40 / 16
    assert d["measured"]["train_seconds"] == pytest.approx(7 * d["measured"]["train_step_seconds"])
    assert d["measured"]["infer_seconds"] == pytest.approx(3 * d["measured"]["infer_batch_seconds"])
    assert d["predicted"]["train_seconds"] > 0 and d["predicted"]["infer_seconds"] > 0
    assert "train_seconds" in d["error_pct"]
    ignored = next(n for n in d["notes"] if n.startswith("ignored"))
    assert "--count 8" in ignored and "--budget-usd 5.0" in ignored and "--recompute" in ignored
    assert "--grad-accum" not in ignored and any("not this machine" in n for n in d["notes"])


def test_freeze_changes_what_the_real_step_trains(home: Path) -> None:
    """--freeze runs for real: the first layer's gradients and AdamW state are not allocated, and the measured
    peak falls with the predicted one; with everything frozen no training step is measured."""
    args = ["measure", "module:fixture_models:mlp", "--batch-size", "4", "--steps", "1", "--hardware", "cpu-generic",
            "--json"]
    full = json.loads(runner.invoke(app, args).stdout)
    frozen = json.loads(runner.invoke(app, [*args, "--freeze", "0"]).stdout)
    saved = (1024 * 4096 + 4096) * 4 * 3  # the first Linear's gradient and two AdamW moments, fp32
    assert full["measured"]["peak_bytes"] - frozen["measured"]["peak_bytes"] == pytest.approx(saved, rel=0.1)
    assert full["predicted"]["peak_bytes"] - frozen["predicted"]["peak_bytes"] == pytest.approx(saved, rel=0.1)
    none = runner.invoke(app, [*args, "--freeze", "*"])
    assert none.exit_code == 0, none.output
    d = json.loads(none.stdout)
    assert "train_step_seconds" not in d["measured"] and d["measured"]["infer_batch_seconds"] > 0
    assert any("every parameter is frozen" in n for n in d["notes"])


def test_measure_runs_whole_generation_requests(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(TINY_GPT2))
    result = runner.invoke(app, ["measure", str(config), "--steps", "1", "--hardware", "cpu-generic", "--seq-len",
                                 "16", "--task", "generate", "--prompt-tokens", "8", "--generate-tokens", "4",
                                 "--infer-samples", "3", "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert d["job"]["generation"] == {"prompt_tokens": 8, "generate_tokens": 4} and d["job"]["infer_batches"] == 3
    assert d["measured"]["infer_batch_seconds"] > 0 and d["predicted"]["infer_batch_seconds"] > 0


def test_cpu_peak_from_allocation_events_matches_the_traced_prediction(home: Path, fake_calibration: Calls) -> None:
    """Issue 5's memory target (within 15%): the real step's tensor peak, from PyTorch's CPU allocation events,
    against the peak afford traces on meta (ResNet-18, batch 2, AdamW: measured -1.3% at batch 8)."""
    result = runner.invoke(app, ["measure", "torchvision:resnet18", "--batch-size", "2", "--steps", "1", "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert abs(d["error_pct"]["peak_bytes"]) < 15
    assert d["measured"]["rss_peak_bytes"] > 0  # kept beside it for comparison


def test_measure_refuses_what_will_not_fit(home: Path, fake_calibration: Calls) -> None:
    result = runner.invoke(app, ["measure", "hf:meta-llama/Llama-2-70b-hf", "--seq-len", "128"])
    assert result.exit_code == 2
    assert "free" in result.output and "smaller" in result.output


def test_measure_bad_input(home: Path) -> None:
    for steps in ("0", "-1", str(10**9)):
        bad = runner.invoke(app, ["measure", "torchvision:resnet18", "--steps", steps])
        assert bad.exit_code == 2 and "--steps must be a positive integer of at most 1,000" in bad.stderr
    for args, message in ((["--device", "tpu"], "choose cpu or cuda"), (["--calibrate", "maybe"], "choose quick"),
                          (["--optimizer", "adam-8bit"], "bitsandbytes"), (["--grad-accum", "0"], "grad-accum")):
        bad = runner.invoke(app, ["measure", "torchvision:resnet18", *args])
        assert bad.exit_code == 2 and message in bad.stderr, bad.output
    assert _calibrations() == 0  # every one refused before any work


def test_a_config_with_auto_map_says_its_code_was_not_run(tmp_path: Path) -> None:
    from afford.sources.hf import resolve_path

    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps(TINY_GPT2))
    assert not resolve_path(plain).metadata["notes"]
    mapped = tmp_path / "config.json"
    mapped.write_text(json.dumps({**TINY_GPT2, "auto_map": {"AutoModelForCausalLM": "modeling_mine.MyModel"}}))
    result = runner.invoke(app, ["assess", str(mapped), "--json"])
    assert result.exit_code == 0, result.output
    note = next(n for n in json.loads(result.stdout)["notes"] if "auto_map" in n)
    assert "modeling_mine.MyModel" in note and "'gpt2'" in note and "--trust-remote-code" in note
    # asked to run that code, afford runs it (here there is none: one line, nothing counted in its place)
    bad = runner.invoke(app, ["assess", str(tmp_path), "--trust-remote-code"])
    assert bad.exit_code == 2 and "remote code" in bad.stderr


def test_calibrated_op_rates_price_their_ops() -> None:
    """A traced op with a calibrated rate costs bytes / its rate (+ the per-op overhead); others stream at the
    device bandwidth; the system factor divides the whole step."""
    from afford.counting.profile import PhaseProfile
    from afford.estimate.timing import Efficiency, phase_seconds
    from afford.hardware.catalog import _device

    entry = {"id": "probe", "name": "probe", "vendor": "local", "kind": "cpu", "memory_bytes": 2**34,
             "memory_bandwidth_gb_s": 20.0, "peak_tflops": {"fp32": 0.1}, "calibrated": True,
             "op_overhead_s": 1e-6, "op_gb_s": {"tanh": 5.0}, "system_efficiency": 0.8}
    device = _device(entry, "test")
    phase = PhaseProfile(name="forward")
    phase.events = {("tanh", 0, 10**9): 2, ("add", 0, 10**9): 1}
    eff = Efficiency.for_device(device)
    assert eff.system == 0.8 and eff.scaled("low") is eff
    total, busy = phase_seconds(phase, device, eff, "fp32")
    assert total == pytest.approx(2 * (1e9 / 5e9 + 1e-6) + (1e9 / 20e9 + 1e-6))
    assert busy == 0


def test_a_cpu_measurement_says_when_glibcs_default_allocator_ran_it() -> None:
    """glibc's defaults re-fault large tensors every step, which the prediction does not price: a measured CPU
    training step says so unless a reusing allocator is preloaded or glibc's mmap threshold is raised."""
    from afford.measure.run import allocator_note

    assert "glibc's default allocator" in (allocator_note({}, "Linux") or "")
    assert allocator_note({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}, "Linux") is None
    assert allocator_note({"LD_PRELOAD": "libtcmalloc.so.4"}, "Linux") is None
    assert allocator_note({"MALLOC_MMAP_THRESHOLD_": "4294967296"}, "Linux") is None
    assert allocator_note({}, "Darwin") is None
