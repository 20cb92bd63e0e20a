"""Hostile files and specs (issue 14, security and files): code a job file would run, reports written outside
their folder or over existing files, reads without bound (/dev/zero, FIFOs, huge or deeply nested files), YAML
alias bombs, names thousands of characters long, hub ids that are paths, ONNX external data outside the model's
folder, pickles without a suffix. Every row is one line and exit 2 (or a run that succeeds where it should).
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable, Sequence
from pathlib import Path

from hostile.harness import Case, Result

Setup = Callable[[Path], Sequence[str] | None]
Check = Callable[[Path, Result], None]

TINY = "module:hostile.files_fixtures:tiny"
INFER = ["--infer-samples", "1"]
LONG = "x" * 5000


# --- setups -----------------------------------------------------------------------------------------------------

def _job_setup(text: str, name: str = "job.toml", extra: Sequence[str] = ()) -> Setup:
    """A setup writing `text` (with {tmp} replaced) to TMP/job/NAME and returning `--job PATH` + extra."""

    def setup(tmp: Path) -> list[str]:
        folder = tmp / "job"
        folder.mkdir(exist_ok=True)
        (folder / name).write_text(text.replace("{tmp}", str(tmp)), encoding="utf-8")
        return ["--job", str(folder / name), *extra]

    return setup


def _write(name: str, content: str | bytes, extra: Sequence[str] = ()) -> Setup:
    """A setup writing TMP/NAME and returning its path + extra."""

    def setup(tmp: Path) -> list[str]:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return [str(path), *extra]

    return setup


def _fifo(name: str, flag: str = "", extra: Sequence[str] = ()) -> Setup:
    """A setup making TMP/NAME a FIFO (nobody writes to it: a read would block forever)."""

    def setup(tmp: Path) -> list[str]:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(path)
        return [*([flag] if flag else []), str(path), *extra]

    return setup


def _link(name: str, target: str, flag: str = "") -> Setup:
    """A setup making TMP/NAME a symbolic link to `target`."""

    def setup(tmp: Path) -> list[str]:
        (tmp / name).symlink_to(target)
        return [*([flag] if flag else []), str(tmp / name)]

    return setup


def _existing_report(name: str, extra: Sequence[str] = (), files_dir: bool = False) -> Setup:
    """A setup leaving TMP/NAME (or only its _files/ folder) from an earlier run, and asking for it again."""

    def setup(tmp: Path) -> list[str]:
        path = tmp / name
        if files_dir:
            (tmp / f"{path.stem}_files").mkdir()
            (tmp / f"{path.stem}_files" / "old.svg").write_text("old", encoding="utf-8")
        else:
            path.write_text("old report", encoding="utf-8")
        return ["--report", str(path), *extra]

    return setup


def _safetensors(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    """A valid safetensors file: the JSON header with data offsets, then zero bytes for the data."""
    header: dict[str, object] = {}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = 4
        for d in shape:
            size *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


def _torch_save(name: str, extra: Sequence[str] = ()) -> Setup:
    """A setup saving a small state dict with torch.save (a zip of pickles) under NAME, no suffix."""

    def setup(tmp: Path) -> list[str]:
        import torch

        torch.save({"fc.weight": torch.zeros(4, 16), "fc.bias": torch.zeros(4)}, tmp / name)
        return [str(tmp / name), *extra]

    return setup


def _onnx_external(location: str) -> Setup:
    """A setup writing TMP/m/model.onnx whose one weight is stored externally at `location` ({tmp} replaced),
    with a real secret file at TMP/secret.bin that the location may point to."""

    def setup(tmp: Path) -> list[str]:
        import onnx
        from onnx import TensorProto, helper

        (tmp / "secret.bin").write_bytes(bytes(64))
        weight = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[4, 4])
        weight.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location.replace("{tmp}", str(tmp))), ("offset", "0"), ("length", "64")):
            entry = weight.external_data.add()
            entry.key, entry.value = key, value
        graph = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["Y"])], "g",
                                  [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
                                  [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])], [weight])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        (tmp / "m").mkdir()
        onnx.save(model, str(tmp / "m" / "model.onnx"))
        return [str(tmp / "m" / "model.onnx")]

    return setup


def _symlinked_job(tmp: Path) -> list[str]:
    """A job whose report goes through a link in the job's folder to a folder outside it."""
    (tmp / "etc").mkdir()
    (tmp / "job").mkdir()
    (tmp / "job" / "link").symlink_to(tmp / "etc")
    (tmp / "job" / "job.toml").write_text(f'model = "{TINY}"\nreport = "link/x.html"\n[workload]\ninfer_samples = 1\n',
                                          encoding="utf-8")
    return ["--job", str(tmp / "job" / "job.toml")]


def _sharded_outside(tmp: Path) -> list[str]:
    """A safetensors index naming a shard in the folder above its own."""
    (tmp / "secret.safetensors").write_bytes(_safetensors({"w": ("F32", [2])}))
    (tmp / "m").mkdir()
    index = {"metadata": {}, "weight_map": {"w": "../secret.safetensors"}}
    (tmp / "m" / "model.safetensors.index.json").write_text(json.dumps(index), encoding="utf-8")
    return [str(tmp / "m" / "model.safetensors.index.json")]


def _directory(tmp: Path) -> None:
    (tmp / "d.html").mkdir()


def _dangling(tmp: Path) -> list[str]:
    """TMP/r.html, a link to a file that does not exist yet (in a folder that does not exist either)."""
    (tmp / "r.html").symlink_to(tmp / "etc" / "x.html")
    return [str(tmp / "r.html")]


def _config_dir_fifo(tmp: Path) -> list[str]:
    """A model folder whose config.json is a FIFO."""
    (tmp / "m").mkdir()
    os.mkfifo(tmp / "m" / "config.json")
    return [str(tmp / "m")]


# --- checks -----------------------------------------------------------------------------------------------------

def _absent(*names: str) -> Check:
    """A check that nothing was written at TMP/NAME (each)."""

    def check(tmp: Path, result: Result) -> None:
        for name in names:
            assert not (tmp / name).exists(), f"{name} was written"

    return check


def _unchanged(name: str, text: str = "old report") -> Check:
    def check(tmp: Path, result: Result) -> None:
        assert (tmp / name).read_text(encoding="utf-8") == text, f"{name} was overwritten"

    return check


def _report_written(name: str) -> Check:
    def check(tmp: Path, result: Result) -> None:
        written = (tmp / name).read_text(encoding="utf-8")
        assert written != "old report" and "tiny" in written.lower(), written[:200]

    return check


def _exists(name: str) -> Check:
    def check(tmp: Path, result: Result) -> None:
        assert (tmp / name).is_file(), f"{name} was not written"

    return check


def _nothing_in_cwd(name: str) -> Check:
    """The job's report lands in the job's folder, not in the working directory."""

    def check(tmp: Path, result: Result) -> None:
        assert (tmp / "job" / name).is_file()
        assert not Path(name).exists()

    return check


# a "billion laughs": nine levels of nine aliases each, ~387 million strings once expanded
_LAUGHS = "".join(f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}], " for i in range(1, 9))
_BOMB = (f"model: torchvision:resnet18\nworkload:\n  freeze: [&l0 [{', '.join(['lol'] * 9)}], {_LAUGHS}x]\n")

CASES: list[Case] = [
    # --- module: runs code: refused before anything is called -----------------------------------------------
    Case("files-module-os-system", ["assess", "module:os:system", *INFER], 2, r"standard library.*refused"),
    Case("files-module-os-abort", ["assess", "module:os:abort", *INFER], 2, r"standard library.*refused"),
    Case("files-module-code-interact", ["assess", "module:code:interact", *INFER], 2, r"standard library"),
    Case("files-module-builtin-callable", ["assess", "module:torch:zeros", *INFER], 2,
         r"builtin.*not a Python function"),
    Case("files-module-stdlib-reexported", ["assess", "module:hostile.files_fixtures:urlopen", *INFER], 2,
         r"standard library \(urllib"),
    Case("files-module-import-raises", ["assess", "module:hostile.files_import_raises:f", *INFER], 2,
         r"importing .*raised RuntimeError"),
    Case("files-module-import-exits", ["assess", "module:hostile.files_import_exits:f", *INFER], 2,
         r"raised SystemExit"),
    Case("files-module-import-missing", ["assess", "module:no_such_pkg_for_afford:f", *INFER], 2, r"cannot import"),
    Case("files-module-not-a-module-class", ["assess", "module:hostile.files_fixtures:NotAModule", *INFER], 2,
         r"not a torch\.nn\.Module"),
    Case("files-module-needs-args", ["assess", "module:hostile.files_fixtures:needs_args", *INFER], 2,
         r"needs arguments"),
    Case("files-module-returns-int", ["assess", "module:hostile.files_fixtures:returns_int", *INFER], 2,
         r"returned int, not a torch\.nn\.Module"),
    Case("files-module-builder-raises", ["assess", "module:hostile.files_fixtures:builds_badly", *INFER], 2,
         r"raised RuntimeError while building"),
    Case("files-module-bad-syntax", ["assess", "module:../etc:passwd", *INFER], 2, r"package\.module:callable"),
    Case("files-module-typed-is-allowed", ["assess", TINY, *INFER], 0, r"tiny"),
    Case("files-module-class-is-allowed", ["assess", "module:hostile.files_fixtures:Tiny", *INFER], 0, r"Tiny"),
    # --- a job file cannot run code by itself ----------------------------------------------------------------
    Case("files-job-module-needs-trust-code", ["assess"], 2, r"imports and runs Python code.*--trust-code",
         setup=_job_setup(f'model = "{TINY}"\n[workload]\ninfer_samples = 1\n')),
    Case("files-job-module-trusted", ["assess", "--trust-code"], 0, r"tiny",
         setup=_job_setup(f'model = "{TINY}"\n[workload]\ninfer_samples = 1\n')),
    Case("files-job-os-system-even-trusted", ["assess", "--trust-code"], 2, r"standard library",
         setup=_job_setup('model = "module:os:system"\n[workload]\ninfer_samples = 1\n')),
    Case("files-job-module-overridden-by-flag", ["assess", TINY], 0, r"tiny",
         setup=_job_setup('model = "module:os:system"\n[workload]\ninfer_samples = 1\n')),
    Case("files-plan-job-module-needs-trust-code", ["plan"], 2, r"--trust-code",
         setup=_job_setup(f'model = "{TINY}"\n[workload]\ntrain_samples = 10\n')),
    Case("files-job-yaml-module-needs-trust-code", ["assess"], 2, r"--trust-code",
         setup=_job_setup(f"model: {TINY}\nworkload:\n  infer_samples: 1\n", name="job.yaml")),
    Case("files-job-sets-trust-code", ["assess"], 2, r"trust_code cannot be set in a job file",
         setup=_job_setup(f'model = "{TINY}"\ntrust_code = true\n[workload]\ninfer_samples = 1\n')),
    Case("files-job-trust-remote-code-needs-flag", ["assess"], 2, r"trust_remote_code = true.*--trust-code",
         setup=_job_setup('model = "torchvision:resnet18"\ntrust_remote_code = true\n')),
    Case("files-job-trust-pickle-needs-flag", ["assess"], 2, r"trust_pickle = true.*--trust-code",
         setup=_job_setup('model = "torchvision:resnet18"\ntrust_pickle = true\n')),
    # --- reports: never over an existing file, never outside the job's folder without --force -----------------
    Case("files-report-exists-refused", ["assess", TINY, *INFER], 2, r"exists; pass --force",
         setup=_existing_report("r.html"), check=_unchanged("r.html")),
    Case("files-report-force-overwrites", ["assess", TINY, *INFER, "--force"], 0, r"report:",
         setup=_existing_report("r.html"), check=_report_written("r.html")),
    Case("files-report-md-files-folder-exists", ["assess", TINY, *INFER], 2, r"r_files exists; pass --force",
         setup=_existing_report("r.md", files_dir=True), check=_absent("r.md")),
    Case("files-report-md-force", ["assess", TINY, *INFER, "--force"], 0, r"report:",
         setup=_existing_report("r.md", files_dir=True), check=_report_written("r.md")),
    Case("files-plan-report-exists-refused", ["plan", TINY, "--train-samples", "10"], 2, r"exists; pass --force",
         setup=_existing_report("p.html"), check=_unchanged("p.html")),
    Case("files-compare-report-exists-refused", ["compare", TINY, "--train-samples", "10"], 2,
         r"exists; pass --force", setup=_existing_report("c.md"), check=_unchanged("c.md")),
    Case("files-report-is-a-directory", ["assess", TINY, *INFER, "--report", "{tmp}/d.html", "--force"], 2,
         r"is a directory", setup=_directory),
    Case("files-report-dangling-link", ["assess", TINY, *INFER, "--force", "--report"], 2, r"dangling link",
         setup=_dangling, check=_absent("etc/x.html")),
    Case("files-report-folder-missing", ["assess", TINY, *INFER, "--report", "{tmp}/nope/r.html"], 2,
         r"folder .*nope does not exist", check=_absent("nope")),
    Case("files-job-report-dotdot-refused", ["assess", "--trust-code"], 2, r"outside the job file's folder.*--force",
         setup=_job_setup(f'model = "{TINY}"\nreport = "../etc/passwd.html"\n[workload]\ninfer_samples = 1\n'),
         check=_absent("etc/passwd.html")),
    Case("files-job-report-absolute-refused", ["assess", "--trust-code"], 2, r"outside the job file's folder",
         setup=_job_setup(f'model = "{TINY}"\nreport = "{{tmp}}/etc/x.html"\n[workload]\ninfer_samples = 1\n'),
         check=_absent("etc/x.html")),
    Case("files-job-report-link-out-refused", ["assess", "--trust-code"], 2, r"outside the job file's folder",
         setup=_symlinked_job, check=_absent("etc/x.html")),
    Case("files-job-report-outside-with-force", ["assess", "--trust-code", "--force"], 0, r"report:",
         setup=_job_setup(f'model = "{TINY}"\nreport = "../out.html"\n[workload]\ninfer_samples = 1\n'),
         check=_exists("out.html")),
    Case("files-job-report-beside-the-job", ["assess", "--trust-code"], 0, r"report:",
         setup=_job_setup(f'model = "{TINY}"\nreport = "beside.html"\n[workload]\ninfer_samples = 1\n'),
         check=_nothing_in_cwd("beside.html")),
    Case("files-job-sets-force", ["assess"], 2, r"force cannot be set in a job file",
         setup=_job_setup(f'model = "{TINY}"\nforce = true\n')),
    # --- reads without bound: devices, FIFOs, sizes, nesting ---------------------------------------------------
    Case("files-dev-zero-model", ["assess", "/dev/zero", *INFER], 2, r"character device"),
    Case("files-fifo-model", ["assess", *INFER], 2, r"FIFO", setup=_fifo("pipe")),
    Case("files-fifo-config-in-folder", ["assess", *INFER], 2, r"FIFO", setup=_config_dir_fifo),
    Case("files-fifo-safetensors", ["assess", *INFER], 2, r"FIFO", setup=_fifo("w.safetensors")),
    Case("files-fifo-job", ["assess"], 2, r"--job .* FIFO", setup=_fifo("j.toml", flag="--job")),
    Case("files-dev-zero-job-via-link", ["assess"], 2, r"character device",
         setup=_link("j.toml", "/dev/zero", flag="--job")),
    Case("files-fifo-hardware-file", ["assess", "torchvision:resnet18", *INFER], 2, r"hardware file .*FIFO",
         setup=_fifo("hw.toml", flag="--hardware-file")),
    Case("files-job-over-size-cap", ["assess"], 2, r"over the 1,048-byte limit.*AFFORD_MAX_FILE_MB",
         setup=_job_setup('model = "torchvision:resnet18"\n' + "# padding\n" * 200),
         env={"AFFORD_MAX_FILE_MB": "0.001"}),
    Case("files-config-over-size-cap", ["assess", *INFER], 2, r"is 4,0\d\d bytes, over the 1,048-byte limit",
         setup=_write("m/config.json", json.dumps({"model_type": "gpt2", "pad": "x" * 4000})),
         env={"AFFORD_MAX_FILE_MB": "0.001"}),
    Case("files-bad-size-cap", ["assess", *INFER], 2, r"AFFORD_MAX_FILE_MB.*positive number",
         setup=_write("m/config.json", '{"model_type": "gpt2"}'), env={"AFFORD_MAX_FILE_MB": "lots"}),
    Case("files-config-not-utf8", ["assess", *INFER], 2, r"not UTF-8",
         setup=_write("m/config.json", b'{"model_type": "\xff\xfe"}')),
    Case("files-config-deep-nesting", ["assess", *INFER], 2, r"nests too deep",
         setup=_write("deep/config.json", '{"a":' * 10_000 + "1" + "}" * 10_000)),
    Case("files-config-top-level-list", ["assess", *INFER], 2, r"must hold a JSON object, found list",
         setup=_write("m/config.json", "[1, 2, 3]")),
    Case("files-job-deep-toml", ["assess"], 2, r"nests too deep",
         setup=_job_setup("model = " + "[" * 10_000 + "]" * 10_000 + "\n")),
    Case("files-job-deep-yaml", ["assess"], 2, r"nests too deep",
         setup=_job_setup("model: " + "[" * 10_000 + "]" * 10_000 + "\n", name="job.yaml")),
    Case("files-job-yaml-alias-bomb", ["assess"], 2, r"aliases .* not allowed",
         setup=_job_setup(_BOMB, name="job.yaml")),
    Case("files-job-yaml-merge-key", ["assess"], 2, r"aliases",
         setup=_job_setup("base: &b {batch_size: 2}\nmodel: torchvision:resnet18\nworkload:\n  <<: *b\n",
                          name="job.yml")),
    Case("files-job-long-bad-value", ["assess"], 2, r"must be a list of strings, got .{0,300}$",
         setup=_job_setup('model = "torchvision:resnet18"\n[workload]\nfreeze = ' + "[" * 50 + "]" * 50 + "\n")),
    # --- names and ids ---------------------------------------------------------------------------------------
    Case("files-long-bare-name", ["assess", LONG, *INFER], 2,
         r"unknown model 'x{40,60}\u2026x{20,30} \(5,000 characters\)'"),
    Case("files-long-hf-name", ["assess", "hf:" + LONG, *INFER], 2, r"\u2026x+ \(5,000 characters\)"),
    Case("files-long-torchvision-name", ["assess", "torchvision:" + LONG, *INFER], 2, r"5,000 characters"),
    Case("files-long-path-name", ["assess", "/" + LONG + ".json", *INFER], 2, r"no such file"),
    Case("files-hf-path-traversal", ["assess", "hf:../../etc/passwd", *INFER], 2, r"not a Hugging Face model id"),
    Case("files-hf-absolute-path", ["assess", "hf:/etc/passwd", *INFER], 2, r"not a Hugging Face model id"),
    Case("files-hf-url", ["assess", "hf:https://huggingface.co/gpt2", *INFER], 2, r"not a Hugging Face model id"),
    # --- ONNX external data, checkpoints by content -----------------------------------------------------------
    Case("files-onnx-external-dotdot", ["assess", *INFER], 2, r"outside the model's folder",
         setup=_onnx_external("../secret.bin")),
    Case("files-onnx-external-absolute", ["assess", *INFER], 2, r"outside the model's folder",
         setup=_onnx_external("{tmp}/secret.bin")),
    Case("files-onnx-fifo", ["assess", *INFER], 2, r"FIFO", setup=_fifo("m.onnx")),
    Case("files-index-shard-outside", ["assess", *INFER], 2, r"outside its own folder", setup=_sharded_outside),
    Case("files-pickle-without-suffix", ["assess", *INFER], 2, r"pickle.*--trust-pickle", setup=_torch_save("weights")),
    Case("files-pickle-without-suffix-trusted", ["assess", *INFER, "--trust-pickle"], 0,
         r"pytorch-pickle.*68 elements in 2 tensors",
         setup=_torch_save("weights")),
    Case("files-safetensors-without-suffix", ["assess", *INFER], 0, r"safetensors.*\b6 elements in 1 tensors",
         setup=_write("weights", _safetensors({"w": ("F32", [2, 3])}))),
]
