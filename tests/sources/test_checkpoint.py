"""Checkpoints on disk: counts from safetensors headers equal the torch model's own, only the header is read,
bad and pickled files give one-line errors, and a config beside the weights gives the full assessment."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file, save_model
from typer.testing import CliRunner

import afford
from afford.cli import app
from afford.errors import ConfigError, InputError
from afford.sources import checkpoint, hf, resolve
from afford.sources.checkpoint import NoArchitecture, inspect, summary
from afford.workload import Optimizer, Precision

runner = CliRunner()


def _gpt2() -> Any:
    """The bundled GPT-2 config (src/afford/sources/hf_configs/openai-community--gpt2.json), shrunk: 2 layers,
    width 64, vocabulary 1000, so the files are under 1 MB."""
    import transformers

    data = dict(hf.catalog()["openai-community/gpt2"]["config"])
    data.update(n_layer=2, n_embd=64, n_head=4, vocab_size=1000, n_positions=128, n_ctx=128, bos_token_id=0,
                eos_token_id=0)
    data.pop("model_type")
    cfg = transformers.GPT2Config(**data)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(cfg)


def _torch_counts(model: torch.nn.Module) -> tuple[int, int]:
    """The independent figure: numel and bytes of the model's parameters (tied ones once), from torch."""
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() * p.element_size() for p in params)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One tiny GPT-2 saved four ways: save_pretrained (with config.json), sharded in two, save_model alone, and
    pickled with torch.save."""
    root = tmp_path_factory.mktemp("ckpt")
    model = _gpt2()
    model.save_pretrained(root / "full")
    model.save_pretrained(root / "sharded", max_shard_size="400KB")
    (root / "lone").mkdir()
    save_model(model, str(root / "lone" / "model.safetensors"))
    torch.save(model.state_dict(), root / "weights.bin")
    torch.save({"state_dict": model.state_dict(), "epoch": 3, "optimizer_states": [{"step": torch.tensor(1.0)}]},
               root / "lightning.ckpt")
    return {"root": root, "model": model, "counts": _torch_counts(model)}


def test_safetensors_file_counts_equal_torch(saved: dict[str, Any]) -> None:
    params, nbytes = saved["counts"]
    info = inspect(saved["root"] / "lone" / "model.safetensors")
    assert (info.params, info.weight_bytes) == (params, nbytes)
    assert info.format == "safetensors" and info.params_by_dtype == {"F32": params}
    # save_model stores the tied lm_head once: one tensor fewer than the state dict's names
    assert info.tensors == len(saved["model"].state_dict()) - 1
    d = info.to_dict()
    for key in ("files", "tensors", "params", "weight_bytes", "params_by_dtype", "bytes_by_dtype", "format",
                "metadata"):
        assert key in d
    assert json.loads(json.dumps(d)) == d


def test_dtypes_are_counted_per_dtype(tmp_path: Path) -> None:
    tensors = {"a": torch.zeros(3, 5, dtype=torch.bfloat16), "b": torch.zeros(7, dtype=torch.float32),
               "c": torch.zeros(2, 2, dtype=torch.int64), "scalar": torch.tensor(1.0, dtype=torch.float16)}
    save_file(tensors, str(tmp_path / "mixed.safetensors"), metadata={"note": "x"})
    info = inspect(tmp_path / "mixed.safetensors")
    assert info.params_by_dtype == {"BF16": 15, "F32": 7, "I64": 4, "F16": 1}
    # torch's element sizes: 15 x 2 + 7 x 4 + 4 x 8 + 1 x 2
    assert info.bytes_by_dtype == {"BF16": 30, "F32": 28, "I64": 32, "F16": 2}
    assert info.weight_bytes == sum(t.numel() * t.element_size() for t in tensors.values()) == 92
    assert info.metadata == {"note": "x"}


def test_sharded_index_reads_every_shard(saved: dict[str, Any]) -> None:
    params, nbytes = saved["counts"]
    folder = saved["root"] / "sharded"
    shards = sorted(folder.glob("*.safetensors"))
    assert len(shards) == 2
    info = inspect(folder / "model.safetensors.index.json")
    assert (info.params, info.weight_bytes) == (params, nbytes)
    assert info.format == "safetensors-sharded" and len(info.files) == 3 and not info.notes
    # the directory resolves to the same index
    assert inspect(folder).params == params


def test_sharded_index_names_a_missing_shard(saved: dict[str, Any], tmp_path: Path) -> None:
    folder = saved["root"] / "sharded"
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    first = sorted(folder.glob("*.safetensors"))[0]
    (tmp_path / first.name).write_bytes(first.read_bytes())
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ConfigError, match="missing"):
        inspect(tmp_path / "model.safetensors.index.json")


def test_directory_with_config_is_assessed_and_agrees_with_the_header(saved: dict[str, Any]) -> None:
    folder = saved["root"] / "full"
    params, _ = saved["counts"]
    a = afford.assess(str(folder), infer_samples=1)
    assert a.to_dict()["model"]["params"] == params == inspect(folder).params
    meta = a.spec.metadata
    assert meta["checkpoint"]["params"] == params
    cmp = meta["checkpoint_vs_config"]
    assert cmp["checkpoint_params"] == cmp["config_params"] == params
    # GPT-2 ties lm_head.weight to transformer.wte.weight; save_pretrained stores it once
    assert cmp["tied_not_stored"] == ["lm_head.weight"] and "agree" in cmp["note"]
    assert cmp["note"] in meta["notes"] and cmp["note"] in a.notes  # the comparison reaches the assessment


def test_sharded_directory_and_file_beside_config_resolve_to_hf(saved: dict[str, Any]) -> None:
    params, _ = saved["counts"]
    spec = resolve(str(saved["root"] / "sharded"))
    assert spec.source == "hf" and spec.metadata["checkpoint"]["format"] == "safetensors-sharded"
    assert spec.metadata["checkpoint_vs_config"]["config_params"] == params
    spec = resolve(saved["root"] / "full" / "model.safetensors")
    assert spec.name.endswith("model.safetensors") and spec.metadata["checkpoint"]["params"] == params


def test_comparison_reports_what_differs(tmp_path: Path, saved: dict[str, Any]) -> None:
    """A checkpoint that stores an extra buffer and lacks the final norm: both named, with their sizes."""
    sd = {k: v for k, v in saved["model"].state_dict().items() if k != "lm_head.weight"}
    ln_f = sd.pop("transformer.ln_f.weight").numel() + sd.pop("transformer.ln_f.bias").numel()
    sd["transformer.h.0.attn.bias"] = torch.ones(1, 1, 128, 128)
    save_file(sd, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((saved["root"] / "full" / "config.json").read_text())
    cmp = resolve(str(tmp_path)).metadata["checkpoint_vs_config"]
    assert cmp["missing"] == ["transformer.ln_f.bias", "transformer.ln_f.weight"] and cmp["missing_params"] == ln_f
    assert cmp["unexpected"] == ["transformer.h.0.attn.bias"] and cmp["unexpected_params"] == 128 * 128
    assert cmp["difference"] == 128 * 128 - ln_f and "\n" not in cmp["note"]


def test_config_only_directory_still_goes_to_hf(saved: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text((saved["root"] / "full" / "config.json").read_text())
    spec = resolve(str(tmp_path))
    assert spec.source == "hf" and "checkpoint" not in spec.metadata


def test_weights_without_config_raise_no_architecture_with_the_counts(saved: dict[str, Any]) -> None:
    params, _ = saved["counts"]
    with pytest.raises(NoArchitecture) as err:
        resolve(str(saved["root"] / "lone" / "model.safetensors"))
    assert isinstance(err.value, InputError) and err.value.info.params == params
    text = str(err.value)
    assert "\n" not in text and f"{params:,}" in text and "config.json" in text
    with pytest.raises(NoArchitecture):
        resolve(str(saved["root"] / "lone"))


# --- header only ------------------------------------------------------------------------------------------

class _Counting:
    """A file object that counts the bytes read through it."""

    def __init__(self, f: Any, tally: list[int]) -> None:
        self._f, self._tally = f, tally

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self._tally.append(len(data))
        return data

    def __enter__(self) -> _Counting:
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()

    def __getattr__(self, name: str) -> Any:
        if name in ("readinto", "readline", "readlines", "mmap", "fileno"):
            raise AssertionError(f"unexpected file access: {name}")
        return getattr(self._f, name)


def test_sparse_10gb_file_is_read_from_its_header_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """80 BF16 tensors of 8192 x 8192 claim 10 GiB; the file is sparse and only 8 + N bytes may be read."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    size = 8192 * 8192 * 2
    for i in range(80):
        header[f"layers.{i}.weight"] = {"dtype": "BF16", "shape": [8192, 8192],
                                        "data_offsets": [i * size, (i + 1) * size]}
    raw = json.dumps(header).encode()
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + 80 * size)
    assert path.stat().st_size == 8 + len(raw) + 10 * 2**30
    tally: list[int] = []
    monkeypatch.setattr(checkpoint.headers, "open",
                        lambda p, mode="r", *a, **k: _Counting(open(p, mode, *a, **k), tally), raising=False)
    info = inspect(path)
    assert info.params == 80 * 8192 * 8192 and info.weight_bytes == 10 * 2**30
    assert 0 < sum(tally) <= 8 + len(raw)


# --- bad files --------------------------------------------------------------------------------------------

def _one_line(exc: pytest.ExceptionInfo[Exception]) -> str:
    text = str(exc.value)
    assert text and "\n" not in text
    return text


def _header_file(path: Path, header: dict[str, Any], data: int) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * data)
    return path


def test_truncated_safetensors(saved: dict[str, Any], tmp_path: Path) -> None:
    whole = (saved["root"] / "lone" / "model.safetensors").read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(whole[: len(whole) - 1000])
    with pytest.raises(ConfigError) as err:
        inspect(cut)
    assert "truncated" in _one_line(err)
    cut.write_bytes(whole[:100])  # cut inside the header
    with pytest.raises(ConfigError) as err:
        inspect(cut)
    assert "truncated" in _one_line(err)


@pytest.mark.parametrize(("header", "data", "match"), [
    ({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}}, 20, "needs 24"),
    ({"w": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 2]}}, 2, "unknown dtype"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, 16, "gap"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, 12, "overlaps"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, 9, "follow the last tensor"),
    ({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, 8, "invalid shape"),
    ({"w": {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]}}, 2, "whole bytes"),
    ({"__metadata__": {"k": 1}}, 0, "strings to strings"),
])
def test_inconsistent_headers(tmp_path: Path, header: dict[str, Any], data: int, match: str) -> None:
    with pytest.raises(ConfigError) as err:
        inspect(_header_file(tmp_path / "bad.safetensors", header, data))
    assert match in _one_line(err)


def test_sub_byte_dtype_is_counted_in_bits(tmp_path: Path) -> None:
    """F4 packs two values per byte (safetensors Dtype::bitsize = 4): 6 values take 3 bytes."""
    info = inspect(_header_file(tmp_path / "f4.safetensors",
                                {"w": {"dtype": "F4", "shape": [2, 3], "data_offsets": [0, 3]}}, 3))
    assert (info.params, info.weight_bytes) == (6, 3)


def test_garbage_and_bad_json(tmp_path: Path) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ConfigError) as err:
        inspect(junk)
    assert "not safetensors" in _one_line(err)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(struct.pack("<Q", 12) + b'{"w": {"dty' + b" ")
    with pytest.raises(ConfigError) as err:
        inspect(broken)
    assert "JSON" in _one_line(err)
    record = b'{"dtype":"F32","shape":[1],"data_offsets":[0,4]}'
    header = b'{"a":' + record + b',"a":' + record + b"}"  # json.loads alone would keep the last "a"
    dup = tmp_path / "dup.safetensors"
    dup.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    with pytest.raises(ConfigError) as err:
        inspect(dup)
    assert "duplicate key 'a'" in _one_line(err)


def test_pickle_renamed_safetensors_is_refused_without_unpickling(saved: dict[str, Any], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    renamed = tmp_path / "model.safetensors"
    renamed.write_bytes((saved["root"] / "weights.bin").read_bytes())
    raw = tmp_path / "raw.safetensors"
    raw.write_bytes(pickle.dumps({"w": [1.0, 2.0]}, protocol=4))

    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", never)
    for path in (renamed, raw):
        with pytest.raises(InputError) as err:
            inspect(path)
        text = _one_line(err)
        assert "pickle named .safetensors" in text and "nothing was unpickled" in text and "--trust-pickle" in text


def test_bin_is_refused_unless_trusted_then_counted(saved: dict[str, Any]) -> None:
    params, nbytes = saved["counts"]
    with pytest.raises(InputError) as err:
        inspect(saved["root"] / "weights.bin")
    assert "nothing was unpickled" in _one_line(err)
    info = inspect(saved["root"] / "weights.bin", trust_pickle=True)
    # the state dict names lm_head.weight and transformer.wte.weight, one storage: counted once
    assert (info.params, info.weight_bytes) == (params, nbytes)
    assert info.format == "pytorch-pickle" and info.metadata["shared_tensors_counted_once"] == 1


def test_trusted_nested_and_legacy_pickles(saved: dict[str, Any], tmp_path: Path) -> None:
    params, _ = saved["counts"]
    info = inspect(saved["root"] / "lightning.ckpt", trust_pickle=True)
    assert (info.params, info.metadata["state_dict_key"]) == (params, "state_dict")
    legacy = tmp_path / "legacy.pt"
    sd = {"w": torch.zeros(4, 3, dtype=torch.float16), "b": torch.zeros(3)}
    torch.save({"model": sd}, legacy, _use_new_zipfile_serialization=False)
    info = inspect(legacy, trust_pickle=True)
    assert (info.params, info.weight_bytes, info.params_by_dtype) == (15, 4 * 3 * 2 + 3 * 4, {"F16": 12, "F32": 3})
    arbitrary = tmp_path / "obj.pkl"
    arbitrary.write_bytes(pickle.dumps(Path("x")))
    with pytest.raises(InputError) as err:
        inspect(arbitrary, trust_pickle=True)
    assert "weights_only" in _one_line(err)


def test_directory_with_config_and_untrusted_bin_assesses_the_config(saved: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text((saved["root"] / "full" / "config.json").read_text())
    (tmp_path / "pytorch_model.bin").write_bytes((saved["root"] / "weights.bin").read_bytes())
    spec = resolve(str(tmp_path))
    assert "nothing was unpickled" in spec.metadata["checkpoint"]["skipped"]
    trusted = resolve(str(tmp_path), trust_pickle=True)
    assert trusted.metadata["checkpoint_vs_config"]["checkpoint_params"] == saved["counts"][0]
    with pytest.raises(InputError, match="nothing was unpickled"):
        resolve(str(tmp_path / "pytorch_model.bin"))


# --- static memory from the parameters ----------------------------------------------------------------------

@pytest.mark.parametrize(("precision", "per_param"), [
    ("fp32", 4 + 4 + 0 + 8),  # fp32 weights, fp32 gradients, Adam's two fp32 moments
    ("bf16-mixed", 2 + 2 + 4 + 8),  # ZeRO paper (Rajbhandari et al. 2020, sec. 3.1): 2 + 2 + 12 bytes
])
def test_summary_matches_the_traced_assessment(saved: dict[str, Any], precision: str, per_param: int) -> None:
    params, nbytes = saved["counts"]
    info = inspect(saved["root"] / "full")
    s = summary(info, Precision(precision), Optimizer.ADAMW)
    assert s["inference"]["weights_bytes"] == nbytes
    assert s["training"]["static_bytes"] == per_param * params
    mem = afford.assess(str(saved["root"] / "full"), train_samples=1, precision=precision).to_dict()["memory"]
    traced = (mem["weights_bytes"] + mem["buffers_bytes"] + mem["gradients_bytes"] + mem["master_weights_bytes"]
              + mem["optimizer_bytes"])
    assert s["training"]["static_bytes"] == traced


def test_render_prints_the_summary(saved: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console(record=True, width=120)
    info = inspect(saved["root"] / "lone")
    checkpoint.render(summary(info, Precision.FP32, Optimizer.ADAMW), console)
    text = console.export_text()
    assert f"{info.params:,}" in text and "training, static" in text


# --- the command line ---------------------------------------------------------------------------------------

def test_cli_assesses_a_directory_with_config(saved: dict[str, Any]) -> None:
    result = runner.invoke(app, ["assess", str(saved["root"] / "full"), "--infer-samples", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"]["params"] == saved["counts"][0]


def test_cli_bad_safetensors_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    result = runner.invoke(app, ["assess", str(bad)])
    assert result.exit_code == 2
    text = result.output.strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1 and "JSON" in text


def test_cli_weights_without_config_print_the_header_figures(tmp_path: Path) -> None:
    """`afford assess model.safetensors` with no config beside: exit 0, the header counts and static memory."""
    path = tmp_path / "w.safetensors"
    save_file({"a.weight": torch.zeros(64, 32), "b.bias": torch.zeros(32, dtype=torch.bfloat16)}, str(path))
    out = runner.invoke(app, ["assess", str(path), "--train-samples", "10", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["checkpoint"]["params"] == 64 * 32 + 32
    assert data["checkpoint"]["bytes_by_dtype"] == {"F32": 64 * 32 * 4, "BF16": 32 * 2}
    # fp32 AdamW: weights + gradients + two moments, 4 bytes each per parameter (ZeRO paper, sec. 3.1)
    assert data["training"]["static_bytes"] == 16 * (64 * 32 + 32)
    assert "config.json" in data["notes"][0]
