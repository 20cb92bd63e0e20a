"""The command line: the JSON contract, and one-line errors with exit code 2 for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from afford.cli import app

runner = CliRunner()

CONTRACT = ["model.params", "model.trainable_params", "per_sample.forward_flops", "per_sample.forward_macs",
            "per_sample.backward_flops", "compute.train_flops", "compute.infer_flops", "memory.weights_bytes",
            "memory.gradients_bytes", "memory.optimizer_bytes", "memory.activations_bytes", "memory.kv_cache_bytes",
            "memory.train_peak_bytes", "memory.infer_peak_bytes", "coverage.uncounted_ops"]


def _get(data: dict, dotted: str) -> object:
    node: object = data
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"missing {dotted}"
        node = node[part]
    return node


def test_json_is_one_object_with_the_contract_keys() -> None:
    result = runner.invoke(app, ["assess", "torchvision:resnet18", "--train-samples", "100", "--infer-samples",
                                 "10", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in CONTRACT:
        _get(data, key)
    assert data["compute"]["train_flops"] == 100 * (data["per_sample"]["train_forward_flops"]
                                                    + data["per_sample"]["backward_flops"])
    assert data["compute"]["infer_flops"] == 10 * data["per_sample"]["forward_flops"]
    assert isinstance(data["coverage"]["uncounted_ops"], dict)


def test_python_api_to_dict_equals_cli_json() -> None:
    import afford

    result = runner.invoke(app, ["assess", "torchvision:resnet18", "--train-samples", "7", "--json"])
    api = afford.assess("torchvision:resnet18", train_samples=7).to_dict()
    assert json.loads(result.stdout) == json.loads(json.dumps(api, default=str))


def _error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.output)
    text = result.output.strip()
    assert "Traceback" not in text
    return text


@pytest.mark.parametrize(("args", "expect"), [
    (["assess", "torchvision:resnet5O"], "closest: resnet50"),
    (["assess", "hf:meta-llama/Llama-2-7b-hfx"], "meta-llama/Llama-2-7b-hf"),
    (["assess", "resnet50"], "ambiguous"),
    (["assess", "no_such_model_anywhere"], "closest"),
    (["assess", "torchvision:resnet18", "--train-samples", "-5"], "--train-samples must be a positive integer"),
    (["assess", "torchvision:resnet18", "--infer-samples", "0"], "--infer-samples must be a positive integer"),
    (["assess", "torchvision:resnet18", "--batch-size", "0"], "--batch-size"),
    (["assess", "torchvision:resnet18", "--epochs", "-1", "--train-samples", "5"], "--epochs"),
    (["assess", "torchvision:resnet18", "--precision", "fp8"], "unknown precision"),
    (["assess", "torchvision:resnet18", "--optimizer", "lion"], "unknown optimizer"),
    (["assess", "torchvision:resnet18", "--freeze", "encoder.*"], "matches no parameter"),
    (["assess", "hf:openai-community/gpt2", "--seq-len", "4096"], "exceeds"),
    (["assess", "torchvision:resnet18", "--train-tokens", "1000"], "--train-tokens applies to language models"),
    (["assess", "module:fixture_models:reads_values"], "cannot run on the meta device"),
    (["assess", "module:fixture_models:not_a_module"], "not a torch.nn.Module"),
    (["assess", "module:no_such_pkg:fn"], "cannot import"),
])
def test_bad_input_is_one_line_exit_2(args: list[str], expect: str) -> None:
    text = _error(args)
    assert expect in text
    assert len(text.splitlines()) == 1 or text.startswith("Usage")


def test_seq_len_beyond_max_allowed_with_flag() -> None:
    result = runner.invoke(app, ["assess", "hf:openai-community/gpt2", "--seq-len", "2048", "--allow-longer",
                                 "--json"])
    assert result.exit_code == 0, result.output
    assert any("beyond the model's maximum" in n for n in json.loads(result.stdout)["notes"])


def test_malformed_and_truncated_config_files(tmp_path: Path) -> None:
    truncated = tmp_path / "config.json"
    truncated.write_text('{"model_type": "llama", "hidden_size": 4096, "num_hidden')
    assert "not valid JSON" in _error(["assess", str(truncated)])
    no_type = tmp_path / "other.json"
    no_type.write_text('{"hidden_size": 4096}')
    assert "no 'model_type'" in _error(["assess", str(no_type)])
    wrong = tmp_path / "wrong.json"
    wrong.write_text("[1, 2]")
    assert "JSON object" in _error(["assess", str(wrong)])
    remote = tmp_path / "remote.json"
    remote.write_text('{"model_type": "my_private_arch"}')
    assert "--trust-remote-code" in _error(["assess", str(remote)])
    assert "no such file" in _error(["assess", str(tmp_path / "missing.json")])


def test_config_file_and_directory_are_assessed(tmp_path: Path) -> None:
    from afford.sources import hf

    entry = hf.catalog()["openai-community/gpt2"]
    (tmp_path / "config.json").write_text(json.dumps(entry["config"]))
    for spec in (str(tmp_path), str(tmp_path / "config.json")):
        result = runner.invoke(app, ["assess", spec, "--seq-len", "64", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["model"]["params"] == 124_439_808


def test_python_dash_m_entry_point_and_no_traceback() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    ok = subprocess.run([sys.executable, "-m", "afford", "assess", "torchvision:alexnet", "--json"],
                        capture_output=True, text=True, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["model"]["params"] == 61_100_840
    bad = subprocess.run([sys.executable, "-m", "afford", "assess", "module:fixture_models:reads_values"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
