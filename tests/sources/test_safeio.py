"""Bounded file reading (safeio), names cut for messages, module: refusals, job-file gates (issue 14)."""

from __future__ import annotations

import os
import struct
import time
from pathlib import Path

import pytest

from afford import jobfile, safeio
from afford.errors import ConfigError, InputError
from afford.sources import checkpoint, module_src
from afford.sources.names import closest, shorten


def test_a_regular_file_is_read_and_a_bom_dropped(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}')
    assert safeio.read_json(path) == {"a": 1}
    assert safeio.regular_file(path).st_size == 11


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(InputError, match="FIFO"):
        safeio.read_text(fifo)
    assert time.monotonic() - start < 5


@pytest.mark.parametrize(("path", "kind"), [("/dev/zero", "character device"), ("/", "directory")])
def test_devices_and_directories_are_refused(path: str, kind: str) -> None:
    with pytest.raises(InputError, match=kind):
        safeio.read_text(Path(path))


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        safeio.read_text(tmp_path / "nope.json", "--job")


def test_the_size_cap_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"a": "' + "x" * 3000 + '"}', encoding="utf-8")
    assert safeio.max_bytes() == 16 << 20
    monkeypatch.setenv(safeio.MAX_FILE_MB_ENV, "0.002")
    assert safeio.max_bytes() == int(0.002 * (1 << 20))
    with pytest.raises(InputError, match="over the 2,097-byte limit"):
        safeio.read_text(path)
    assert safeio.read_text(path, scale=4).startswith('{"a"')
    monkeypatch.setenv(safeio.MAX_FILE_MB_ENV, "-1")
    with pytest.raises(InputError, match="positive number"):
        safeio.max_bytes()


def test_binary_deep_and_non_object_json_are_config_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_bytes(b"\x80\x04\x95")
    with pytest.raises(ConfigError, match="not UTF-8"):
        safeio.read_json(path)
    path.write_text("[" * 10_000 + "]" * 10_000, encoding="utf-8")
    with pytest.raises(ConfigError, match="nests too deep"):
        safeio.read_json(path)
    path.write_text("[1]", encoding="utf-8")
    with pytest.raises(ConfigError, match="found list"):
        safeio.read_json(path)
    path.write_text('{"a": ', encoding="utf-8")
    with pytest.raises(ConfigError, match="line 1, column 7"):
        safeio.read_json(path)


def test_exists_answers_false_for_names_too_long() -> None:
    assert safeio.exists(Path("x" * 5000)) is False
    assert safeio.exists(Path("/")) is True


def test_names_are_cut_for_messages_and_compared_quickly() -> None:
    cut = shorten("y" * 5000)
    assert len(cut) < 110 and "\u2026" in cut and cut.endswith(" (5,000 characters)")
    assert shorten("gpt2") == "gpt2"
    assert shorten("a\nb") == "a\\nb"
    start = time.monotonic()
    assert closest("resnet" + "z" * 100_000, ["resnet18", "resnet50"])
    assert time.monotonic() - start < 2


def test_sniff_tells_weights_by_their_first_bytes(tmp_path: Path) -> None:
    header = b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}'
    (tmp_path / "a").write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
    (tmp_path / "b").write_bytes(b"\x80\x04\x95\x00")
    (tmp_path / "c").write_bytes(b"PK\x03\x04rest")
    (tmp_path / "d").write_text('{"model_type": "gpt2"}', encoding="utf-8")
    os.mkfifo(tmp_path / "e")
    assert [checkpoint.sniff(tmp_path / n) for n in "abcde"] == ["safetensors", "pickle", "zip", None, None]


@pytest.mark.parametrize(("target", "message"), [
    ("os:system", "standard library"), ("os:abort", "standard library"), ("code:interact", "standard library"),
    ("subprocess:run", "standard library"), ("torch:zeros", "not a Python function"),
    ("fixture_models:not_a_module", "not a torch.nn.Module"), ("../x:y", "package.module:callable"),
    ("fixture_models:", "package.module:callable"),
])
def test_module_specs_refused_before_any_call(target: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        module_src.resolve(target)


def test_a_typed_module_spec_still_builds() -> None:
    spec = module_src.resolve("fixture_models:mlp")
    assert spec.name == "module:fixture_models:mlp"


def _job(tmp_path: Path, text: str) -> Path:
    (tmp_path / "job").mkdir(exist_ok=True)
    path = tmp_path / "job" / "job.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _given() -> dict[str, object]:
    return {"model": None, "report": None, "trust_remote_code": False, "trust_pickle": False, "infer_samples": None}


def test_a_job_file_needs_trust_code_to_run_code(tmp_path: Path) -> None:
    path = _job(tmp_path, 'model = "module:fixture_models:mlp"\n')
    with pytest.raises(InputError, match="--trust-code"):
        jobfile.merge(path, _given(), set(), "assess")
    assert jobfile.merge(path, _given(), set(), "assess", trust_code=True)["model"] == "module:fixture_models:mlp"
    # the same model typed on the command line wins over the file and needs nothing
    assert jobfile.merge(path, {**_given(), "model": "torchvision:resnet18"}, {"model"}, "assess")["model"] == (
        "torchvision:resnet18")
    path = _job(tmp_path, 'model = "torchvision:resnet18"\ntrust_pickle = true\n')
    with pytest.raises(InputError, match="trust_pickle = true"):
        jobfile.merge(path, _given(), set(), "assess")


def test_a_job_report_is_relative_to_the_job_and_kept_inside(tmp_path: Path) -> None:
    path = _job(tmp_path, 'model = "torchvision:resnet18"\nreport = "r.html"\n')
    assert jobfile.merge(path, _given(), set(), "assess")["report"] == str(tmp_path / "job" / "r.html")
    for outside in ("../r.html", str(tmp_path / "r.html"), "/tmp/r.html"):
        path = _job(tmp_path, f'model = "torchvision:resnet18"\nreport = "{outside}"\n')
        with pytest.raises(InputError, match="outside the job file's folder"):
            jobfile.merge(path, _given(), set(), "assess")
        assert jobfile.merge(path, _given(), set(), "assess", force=True)["report"].endswith("r.html")


def test_yaml_aliases_are_refused_in_job_files(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text("model: &m torchvision:resnet18\nworkload:\n  precision: *m\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 3: YAML aliases"):
        jobfile.load(path)
