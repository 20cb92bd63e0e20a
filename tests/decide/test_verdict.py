"""The verdict and the planner on the issue's scenarios, launch configs, and bad constraints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import afford
from afford.cli import app
from afford.decide.run import plan

runner = CliRunner()
GIB = 2**30


def test_resnet50_finetune_on_one_t4_with_5_dollars_is_affordable() -> None:
    a = afford.assess("torchvision:resnet50", train_samples=10_000, epochs=10, batch_size=32, hardware="t4",
                      budget_usd=5.0)
    v = a.to_dict()["verdict"]
    assert v["status"] == "affordable", v["reasons"]
    assert any("budget" in r for r in v["reasons"])
    assert a.to_dict()["cost"]["train_usd"] < 5.0


@pytest.fixture(scope="module")
def llama7b_on_4090() -> Any:
    return plan("hf:meta-llama/Llama-2-7b-hf", train_samples=10_000, seq_len=512, precision="bf16-mixed",
                optimizer="adamw", available="rtx4090:1")


def test_llama2_7b_full_finetune_on_a_4090_needs_lora_or_qlora(llama7b_on_4090: Any) -> None:
    r = llama7b_on_4090
    d = r.to_dict()
    v = d["verdict"]
    assert v["status"] == "affordable_with_changes"
    # as asked: 16 bytes per parameter of model states alone exceed 24 GiB
    assert not d["asked"]["fits"] and d["asked"]["per_device_bytes"] > 100 * GIB
    assert any(reason.startswith("as asked: needs") and "24.0 GiB" in reason for reason in v["reasons"])
    for adapter in ("lora", "qlora"):
        option = v["options"][adapter]
        assert option["fits"] and option["per_device_bytes"] <= 24 * GIB - GIB, adapter
        assert any(adapter in reason.lower() for reason in v["reasons"])
    assert v["plan"]["strategy"]["adapter"] in ("lora", "qlora")
    assert v["options"]["qlora"]["per_device_bytes"] < v["options"]["lora"]["per_device_bytes"] or \
        v["options"]["lora"]["strategy"]["recompute"]


def test_qlora_65b_fits_one_48gb_gpu() -> None:
    """QLoRA (Dettmers et al. 2023, abstract): 'finetune a 65B parameter model on a single 48GB GPU'."""
    r = plan("hf:huggyllama/llama-65b", train_samples=1000, seq_len=512, precision="bf16-mixed",
             available="l40s:1", lora_rank=64, adapters=("full", "qlora"))
    q = r.found.by_adapter["qlora"]
    assert q.fits and q.per_device_bytes < 48 * GIB
    assert r.to_dict()["verdict"]["status"] == "affordable_with_changes"
    assert "full" not in r.found.by_adapter  # 65B at 16 bytes/parameter cannot fit one card


def test_pretraining_llama2_70b_on_2t_tokens_for_100k_is_not_affordable() -> None:
    r = plan("hf:meta-llama/Llama-2-70b-hf", train_tokens=2 * 10**12, seq_len=4096, precision="bf16-mixed",
             budget_usd=100_000, adapters=("full",))
    v = r.to_dict()["verdict"]
    assert v["status"] == "not_affordable"
    # Llama 2 70B took 1.72M A100-hours (Touvron et al. 2023, about $3M at the catalog's A100 price); the
    # cheapest plan searched (FP8 on H100s) still needs several times the budget
    assert 5 * 100_000 < v["minimal_budget_usd"] < 10_000_000
    assert any("smallest budget that would do" in reason for reason in v["reasons"])
    assert v["minimal_budget_plan"]["strategy"]["count"] >= 1


def test_plan_json_contract(llama7b_on_4090: Any) -> None:
    d = llama7b_on_4090.to_dict()
    assert set(d["verdict"]) >= {"status", "reasons", "plan"}
    assert isinstance(d["verdict"]["reasons"], list)
    for p in d["plans"]:
        assert set(p) >= {"strategy", "cost_usd", "train_seconds", "per_device_bytes", "fits"}


def test_emitted_configs_load_with_their_parsers(tmp_path: Path, llama7b_on_4090: Any) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    from afford.decide.emit import write
    from afford.decide.planner import Strategy

    s = Strategy(device="a100-80gb", count=16, adapter="full", precision="bf16-mixed", parallel="zero2",
                 micro_batch=4, grad_accum=8, offload=True)
    ds = json.loads(write("deepspeed", tmp_path / "ds", s)[0].read_text())
    # DeepSpeed configuration reference: batch = micro x accumulation x data-parallel ranks
    assert ds["train_batch_size"] == 4 * 8 * 16
    assert ds["zero_optimization"]["stage"] == 2
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert ds["bf16"]["enabled"] is True and ds["fp16"]["enabled"] is False
    for strategy in (s, Strategy(device="a100-80gb", count=8, parallel="fsdp", recompute=True),
                     Strategy(device="rtx4090", count=1)):
        path = write("accelerate", tmp_path / strategy.parallel, strategy)[0]
        cfg = load_config_from_file(str(path))  # accelerate's own loader validates the file
        assert cfg.num_processes == strategy.count
        assert cfg.mixed_precision == "bf16"


@pytest.mark.parametrize(("args", "expect"), [
    (["--deadline", "0h"], "--deadline"),
    (["--deadline", "soon"], "--deadline"),
    (["--budget-usd", "-5"], "--budget-usd"),
    (["--available", "rtx4099:1"], "closest"),
    (["--available", "rtx4090:0"], "at least 1"),
    (["--max-kwh", "0"], "--max-kwh"),
])
def test_impossible_constraints_are_one_line_exit_2(args: list[str], expect: str) -> None:
    result = runner.invoke(app, ["plan", "torchvision:resnet18", "--train-samples", "100", *args])
    assert result.exit_code == 2, result.output
    assert expect in result.output and "Traceback" not in result.output


def test_compare_torchvision_models_for_a_1m_image_finetune_with_200_dollars(tmp_path: Path) -> None:
    from afford.decide.compare import compare, plot

    models = ["torchvision:resnet18", "torchvision:resnet50", "torchvision:mobilenet_v3_small",
              "torchvision:efficientnet_b0", "torchvision:convnext_tiny", "torchvision:vit_b_16"]
    c = compare(models, hardware="a100-80gb", budget_usd=200, train_samples=1_000_000, batch_size=64,
                precision="bf16-mixed")
    d = c.to_dict()
    assert d["models"][0]["model"] == "torchvision:convnext_tiny"  # most accurate, affordable
    assert all(r["verdict"] == "affordable" and r["accuracy"] for r in d["models"])
    costs = {r["model"]: r["cost_usd"] for r in d["models"]}
    assert costs["torchvision:vit_b_16"] > costs["torchvision:resnet18"]  # 17.6 vs 1.8 GMACs
    front = set(d["pareto"])
    # at batch 64 on an A100 eager MobileNetV3-small is host-bound (its ~700 small ops a step cost more host time
    # than ResNet-18's GPU time; estimate/runtime.py), so ResNet-18 is cheaper and more accurate: it dominates
    assert "torchvision:resnet18" in front and "torchvision:convnext_tiny" in front
    assert costs["torchvision:mobilenet_v3_small"] > costs["torchvision:resnet18"]
    for r in d["models"]:
        assert r["accuracy_per_dollar"] == pytest.approx(r["accuracy"]["value"] / r["cost_usd"])
    for suffix in (".png", ".svg"):
        out = plot(c, tmp_path / f"front{suffix}")
        assert out.stat().st_size > 1000


def test_compare_glob_expands_every_classification_model() -> None:
    from afford.decide.compare import expand

    names = expand(["torchvision:*"])
    assert len(names) > 70 and "torchvision:resnet50" in names
    with pytest.raises(Exception, match="matches no model"):
        expand(["torchvision:nothing*"])


def _every_plan(d: dict[str, Any]) -> list[dict[str, Any]]:
    v = d["verdict"]
    return [p for p in [v["plan"], v.get("minimal_budget_plan"), v.get("minimal_deadline_plan"), *d["plans"],
                        *v["options"].values()] if p]


def test_affordable_resnet18_verdict_names_a_feasible_plan_with_the_assessments_mfu() -> None:
    """Issue 14: `assess torchvision:resnet18 --train-samples 10 --budget-usd 5 --json` said affordable with an
    infeasible plan (the plan as asked was never marked) and an MFU of 1.067 against the fp32 peak while the
    assessment said 0.133 against TF32 (its convolutions run in TF32). One peak per precision, one feasibility."""
    result = runner.invoke(app, ["assess", "torchvision:resnet18", "--train-samples", "10", "--budget-usd", "5",
                                 "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    v = d["verdict"]
    assert v["status"] == "affordable"
    assert v["plan"]["feasible"] is True and v["plan"]["violations"] == []
    assert v["plan"]["strategy"]["precision"] == "fp32" and v["plan"]["strategy"]["device"] == "a100-80gb"
    assert v["plan"]["mfu"] == pytest.approx(d["time"]["train_mfu"], rel=1e-9)
    # a tiny batch-1 CNN step is host-bound in eager PyTorch (estimate/runtime.py): dispatch and launches, not the
    # GPU, set it (0.134 before the runtime model, which priced the kernels alone; 0.0075 with it)
    assert 0.002 < d["time"]["train_mfu"] < 0.05
    assert d["time"]["train_step_breakdown"]["host"]["bound"] is True
    assert d["time"]["mfu_peak_format"] == "tf32+fp32"  # convolutions in TF32, the classifier's matmul in fp32
    tf32, fp32 = 156e12, 19.5e12  # A100 dense peaks (devices.toml)
    assert fp32 < d["time"]["mfu_peak_flops_per_second"] <= tf32
    plans = _every_plan(d)
    assert len(plans) > 3
    for p in plans:
        assert 0 < p["mfu"] <= 1, p
    lo, hi = d["time"]["train_mfu_range"]
    assert 0 < lo <= d["time"]["train_mfu"] <= hi <= 1


@pytest.mark.parametrize("precision", ["fp16-mixed", "bf16-mixed"])
def test_the_plan_as_asked_has_the_assessments_mfu_in_every_precision(precision: str) -> None:
    a = afford.assess("torchvision:resnet18", train_samples=1000, batch_size=32, precision=precision,
                      budget_usd=50).to_dict()
    assert a["verdict"]["status"] == "affordable"
    assert a["verdict"]["plan"]["mfu"] == pytest.approx(a["time"]["train_mfu"], rel=1e-9)
    assert a["verdict"]["plan"]["feasible"]
    assert all(0 < p["mfu"] <= 1 for p in _every_plan(a))


def test_a_plan_as_asked_that_breaks_the_budget_is_marked_infeasible() -> None:
    r = plan("torchvision:resnet18", train_samples=10**7, epochs=10, batch_size=64, hardware="a100-80gb",
             budget_usd=0.01)
    d = r.to_dict()
    assert d["verdict"]["status"] != "affordable"
    assert d["asked"]["feasible"] is False and d["asked"]["violations"] == ["budget"]
    assert d["verdict"]["plan"] is None or d["verdict"]["plan"]["feasible"]


def test_a_batch_larger_than_the_training_set_gets_a_note() -> None:
    a = afford.assess("torchvision:resnet18", train_samples=10, batch_size=64)
    assert any("--batch-size 64 is larger than the 10 training samples" in n for n in a.notes)
    r = plan("torchvision:resnet18", train_samples=10, batch_size=64, budget_usd=5)
    assert any("larger than the 10 training samples" in n for n in r.to_dict()["notes"])
    assert not any("larger than" in n for n in afford.assess("torchvision:resnet18", train_samples=64,
                                                             batch_size=64).notes)
