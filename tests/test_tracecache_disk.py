"""The trace cache's disk level (tracedisk.py, tracecodec.py): a new process re-assessing the same job reads the
trace from SQLite and gets the same result; stale, corrupt or foreign data is ignored, never an error."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import afford
from afford import tracecache, tracecodec, tracedisk
from afford.tracecodec import CodecError
from afford.workload import Workload
from trace_counter import count_traces

TINY_GPT2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 64, "n_layer": 2, "n_head": 2,
             "vocab_size": 1000, "n_positions": 128, "bos_token_id": 0, "eos_token_id": 0}
RESNET = ("torchvision:resnet18", {"train_samples": 1000, "batch_size": 8, "hardware": "t4"})


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A private store folder, the process level empty, and the traces made counted (a list of module names)."""
    monkeypatch.setenv("AFFORD_HOME", str(tmp_path))
    monkeypatch.delenv("AFFORD_NO_CACHE", raising=False)
    tracecache.clear()
    return tmp_path


@pytest.fixture
def traces(home: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the modules traced while the test runs."""
    return count_traces(monkeypatch)


def _gpt2_config(tmp: Path) -> str:
    path = tmp / "tiny-gpt2" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(TINY_GPT2), encoding="utf-8")
    return str(path)


def _new_process() -> None:
    """What a new process starts with: an empty process level, the disk as it is."""
    tracecache.clear(disk=False)


JOBS = {
    "resnet18-train": lambda tmp: RESNET,
    "gpt2-config-generate": lambda tmp: (_gpt2_config(tmp), {
        "task": "generate", "prompt_tokens": 16, "generate_tokens": 8, "infer_samples": 100, "batch_size": 2}),
    "resnet18-forward-only": lambda tmp: ("torchvision:resnet18", {"infer_samples": 100, "forward_only": True}),
    "recsys-dlrm-options": lambda tmp: ("recsys:dlrm", {
        "train_samples": 1000, "batch_size": 4, "optimizer": "adagrad",
        "model_options": {"rows": 1000, "dim": 16, "bottom": "32,16", "top": "32,1"}}),
}


@pytest.mark.parametrize("job", list(JOBS))
def test_a_disk_hit_gives_the_fresh_result_without_tracing(job: str, traces: list[str], home: Path) -> None:
    model, kwargs = JOBS[job](home)
    fresh = afford.assess(model, **kwargs)
    assert len(traces) == 1 and len(tracedisk.rows()) == 1
    _new_process()
    again = afford.assess(model, **kwargs)
    assert len(traces) == 1, "the disk hit must not trace"
    assert again.trace is not fresh.trace  # read back from disk, not this process's object
    assert again.to_dict() == fresh.to_dict()
    assert json.dumps(again.to_dict(), sort_keys=True) == json.dumps(fresh.to_dict(), sort_keys=True)


def test_a_disk_hit_attaches_a_spec_the_planner_can_build(traces: list[str]) -> None:
    model, kwargs = RESNET
    afford.assess(model, **kwargs)
    _new_process()
    priced = afford.assess(model, **kwargs)
    assert "_key" in priced.spec.__dict__  # re-pricing did not need the model's code
    _new_process()
    with_budget = afford.assess(model, **kwargs, budget_usd=5)
    assert len(traces) == 1
    tracecache.clear()
    fresh = afford.assess(model, **kwargs, budget_usd=5)
    assert len(traces) == 2
    assert with_budget.to_dict() == fresh.to_dict()
    assert priced.spec.build is not None and priced.spec.make_inputs is not None  # resolved on first use


def test_a_config_edited_between_runs_is_traced_again(traces: list[str], home: Path) -> None:
    path = _gpt2_config(home)
    a = afford.assess(path, train_samples=10, seq_len=16)
    _new_process()
    Path(path).write_text(json.dumps({**TINY_GPT2, "n_layer": 3}), encoding="utf-8")
    b = afford.assess(path, train_samples=10, seq_len=16)
    assert len(traces) == 2 and b.trace.params > a.trace.params


def test_jobs_whose_code_the_key_cannot_see_stay_off_disk(traces: list[str]) -> None:
    afford.assess("module:fixture_models:mlp", train_samples=10)  # the user's code may change between runs
    afford.assess("torchvision:resnet18", train_samples=10, trust_pickle=True)
    assert len(traces) == 2 and tracedisk.rows() == []
    afford.assess("module:fixture_models:mlp", train_samples=10)
    assert len(traces) == 2  # this process still reuses its trace


def test_another_versions_row_is_ignored_and_replaced(traces: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    model, kwargs = RESNET
    afford.assess(model, **kwargs)
    monkeypatch.setattr(tracedisk, "stamp", lambda: "another afford or torch")
    _new_process()
    afford.assess(model, **kwargs)
    assert len(traces) == 2
    assert [r["stamp"] for r in tracedisk.rows()] == ["another afford or torch"]


@pytest.mark.parametrize("payload", [b"not zlib", zlib.compress(b"{not json"), zlib.compress(b'{"format": 1}'),
                                     zlib.compress(json.dumps({"format": 1, "traced": {"dims": [1]}}).encode()),
                                     zlib.compress(b"[" * 100_000)])
def test_a_corrupt_row_is_ignored_and_replaced(payload: bytes, traces: list[str]) -> None:
    model, kwargs = RESNET
    fresh = afford.assess(model, **kwargs).to_dict()
    with sqlite3.connect(tracedisk.path()) as conn:
        conn.execute("UPDATE traces SET payload = ?", (payload,))
    _new_process()
    assert afford.assess(model, **kwargs).to_dict() == fresh
    assert len(traces) == 2
    _new_process()
    assert afford.assess(model, **kwargs).to_dict() == fresh
    assert len(traces) == 2  # the row was replaced by the new trace


def test_the_least_recently_used_rows_go_first(traces: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracedisk, "MAX_ROWS", 2)
    model, _ = RESNET
    for batch in (1, 2):
        afford.assess(model, train_samples=100, batch_size=batch)
    _new_process()
    afford.assess(model, train_samples=100, batch_size=1)  # a disk hit: batch 1 is now the most recent
    afford.assess(model, train_samples=100, batch_size=3)
    assert len(traces) == 3 and len(tracedisk.rows()) == 2
    _new_process()
    afford.assess(model, train_samples=100, batch_size=1)
    assert len(traces) == 3  # kept
    afford.assess(model, train_samples=100, batch_size=2)
    assert len(traces) == 4  # evicted


def test_the_bytes_bound_keeps_the_newest(traces: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    model, _ = RESNET
    afford.assess(model, train_samples=100, batch_size=1)
    size = tracedisk.rows()[0]["size"]
    monkeypatch.setattr(tracedisk, "MAX_BYTES", int(size * 1.5))
    afford.assess(model, train_samples=100, batch_size=2)
    rows = tracedisk.rows()
    assert len(rows) == 1 and sum(r["size"] for r in rows) <= tracedisk.MAX_BYTES


def test_no_cache_turns_off_both_levels(traces: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    model, kwargs = RESNET
    monkeypatch.setenv("AFFORD_NO_CACHE", "1")
    afford.assess(model, **kwargs)
    afford.assess(model, **kwargs)
    assert len(traces) == 2 and not tracedisk.path().exists()
    monkeypatch.delenv("AFFORD_NO_CACHE")
    w = Workload.parse(train_samples=10)
    assert tracecache.key(model, w, options=None, flags=(False,) * 3, example_inputs=None, cache=False) is None
    assert tracecache.key(model, w, options=None, flags=(False,) * 3, example_inputs=None) is not None


def test_an_unusable_folder_means_no_disk_level_and_one_warning(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = home / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("AFFORD_HOME", str(blocker / "store"))
    monkeypatch.setattr(tracedisk, "_warned", set())
    model, kwargs = RESNET
    with pytest.warns(RuntimeWarning, match="trace cache on disk off") as caught:
        a = afford.assess(model, **kwargs)
        tracecache.clear(disk=False)
        b = afford.assess(model, **kwargs)
    assert len(caught) == 1 and a.to_dict() == b.to_dict()


@pytest.mark.parametrize("content", [b"this is not SQLite at all" * 40, "foreign"])
def test_a_foreign_or_corrupt_cache_file_is_left_untouched(content: bytes | str, home: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = tracedisk.path()
    if content == "foreign":
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE theirs (x)")
        conn.close()
    else:
        path.write_bytes(content)  # type: ignore[arg-type]
    before = path.read_bytes()
    monkeypatch.setattr(tracedisk, "_warned", set())
    with pytest.warns(RuntimeWarning, match="trace cache on disk off"):
        afford.assess(*RESNET[:1], **RESNET[1])
    assert path.read_bytes() == before


def test_the_stamp_follows_the_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    base = tracedisk.stamp.__wrapped__()
    real = tracedisk.metadata.version
    monkeypatch.setattr(tracedisk.metadata, "version", lambda n: "9.9" if n == "torch" else real(n))
    assert tracedisk.stamp.__wrapped__() != base


def test_the_codec_refuses_what_is_not_a_trace(home: Path) -> None:
    a = afford.assess(*RESNET[:1], **RESNET[1])
    traced = tracecodec.Traced(dims=a.dims, trace=a.trace, memory=a.memory, module_params=a.module_params,
                               notes=list(a.notes))
    raw = tracecodec.dumps(traced)
    assert tracecodec.loads(raw) == traced
    data = json.loads(raw)
    data["traced"]["trace"]["batch_size"] = "8"
    with pytest.raises(CodecError):
        tracecodec.loads(json.dumps(data).encode())
    data = json.loads(raw)
    data["traced"]["trace"]["forward"]["by_op"] = {"aten.mm": {"__class__": "os.system", "calls": 1}}
    with pytest.raises(CodecError):
        tracecodec.loads(json.dumps(data).encode())
    with pytest.raises(CodecError):
        tracecodec.dumps(tracecodec.Traced(dims=a.dims, trace=a.trace, memory=a.memory,
                                           module_params={"x": object()}, notes=[]))  # type: ignore[dict-item]


CHILD = r"""
import json, sys
import afford
from afford import tracedisk
a = afford.assess(sys.argv[1], **json.loads(sys.argv[2]))
print(json.dumps({"result": a.to_dict(), "rows": len(tracedisk.rows()), "torchvision": "torchvision" in sys.modules}))
"""


def test_a_new_process_reads_the_trace_from_disk(home: Path) -> None:
    model, kwargs = RESNET
    fresh = afford.assess(model, **kwargs).to_dict()
    env = {**os.environ, "AFFORD_HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", CHILD, model, json.dumps(kwargs)], capture_output=True, text=True,
                         check=False, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    child = json.loads(out.stdout.strip().splitlines()[-1])
    assert child["rows"] == 1, child["rows"]
    assert not child["torchvision"]  # no trace: not even the model's library was imported
    assert child["result"] == json.loads(json.dumps(fresh))
