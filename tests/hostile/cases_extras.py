"""A light core with extras (issue 15, packaging): a spec whose library is not installed is refused with one line
naming the extra and its pip command, exit 2, before any slow import; the core (torchvision) works without any
extra. Each row hides libraries from the run (`Case.hide`: None in sys.modules, as if not installed).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from hostile.harness import Case, Result

INFER = ["--infer-samples", "1"]
# every optional library of every extra (afford/extras.py EXTRAS): hidden, the run sees the bare core
OPTIONAL = ("transformers", "accelerate", "huggingface_hub", "peft", "timm", "keras", "h5py", "onnx", "onnxscript",
            "onnx2torch", "diffusers", "matplotlib", "pandas")


def _pip(extra: str) -> str:
    """The regex of the pip command that the message of a missing `extra` names."""
    return rf"pip install 'afford\[{extra}\]'"


def _h5_file(tmp: Path) -> None:
    """A file that starts like HDF5 (the legacy Keras format), so that reading it needs h5py."""
    (tmp / "model.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)


def _keras_file(tmp: Path) -> None:
    """A (truncated) .keras archive: the keras source owns the suffix, so keras itself is needed."""
    (tmp / "model.keras").write_bytes(b"PK\x03\x04" + b"\0" * 64)


def _onnx_file(tmp: Path) -> None:
    """A file named .onnx: the onnx source owns the suffix."""
    (tmp / "model.onnx").write_bytes(b"\x08\x07" + b"\0" * 64)


def _config(tmp: Path) -> None:
    """A tiny GPT-2 config.json: read by the hf source, which needs transformers."""
    (tmp / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 1, "n_embd": 64, "n_head": 2,
                                                 "architectures": ["GPT2LMHeadModel"]}))


def _safetensors(tmp: Path) -> None:
    """A one-tensor safetensors file: its header is read by afford itself (no safetensors library)."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}).encode()
    (tmp / "m.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 64)


def _no_report(tmp: Path, result: Result) -> None:
    """A refused report leaves no file behind."""
    assert not (tmp / "r.html").exists()


def _json_error(tmp: Path, result: Result) -> None:
    """With --json the refusal is also one JSON object on stdout, typed MissingExtraError."""
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "MissingExtraError" and error["exit_code"] == 2, error


CASES: list[Case] = [
    # --- each extra, refused by name with the pip command -------------------------------------------------------
    Case("extras-keras-spec", ["assess", "keras:ResNet50"], 2,
         r"^afford: error: keras:ResNet50 needs the keras extra \(keras is not installed\): " + _pip("keras"),
         hide=("keras", "h5py")),
    Case("extras-keras-spec-json", ["assess", "keras:ResNet50", "--json"], 2, r"keras extra", check=_json_error,
         hide=("keras",)),
    Case("extras-keras-file", ["assess", "{tmp}/model.keras"], 2,
         r"model\.keras( \(\d+ characters\))? needs the keras extra.*"
         + _pip("keras"), setup=lambda t: _keras_file(t), hide=("keras",)),
    Case("extras-keras-h5-without-h5py", ["assess", "{tmp}/model.h5"], 2,
         r"model\.h5 needs the keras extra \(h5py is not installed\).*" + _pip("keras"), setup=lambda t: _h5_file(t),
         hide=("h5py",)),
    Case("extras-timm-spec", ["assess", "timm:resnet18"], 2,
         r"timm:resnet18 needs the timm extra \(timm is not installed\): " + _pip("timm"), hide=("timm",)),
    Case("extras-timm-models-list", ["models", "--source", "timm"], 2, r"timm models need the timm extra.*"
         + _pip("timm"), hide=("timm",)),
    Case("extras-timm-glob", ["compare", "timm:resnet1*", "--train-samples", "10"], 2,
         r"timm:resnet1\* needs the timm extra.*" + _pip("timm"), hide=("timm",)),
    Case("extras-hf-spec", ["assess", "hf:openai-community/gpt2"], 2,
         r"hf:openai-community/gpt2 needs the hf extra \(transformers is not installed\): " + _pip("hf"),
         hide=("transformers",)),
    Case("extras-hf-config-path", ["assess", "{tmp}/config.json"], 2,
         r"config\.json( \(\d+ characters\))? needs the hf extra.*"
         + _pip("hf"), setup=lambda t: _config(t), hide=("transformers",)),
    Case("extras-onnx-file", ["assess", "{tmp}/model.onnx"], 2,
         r"model\.onnx( \(\d+ characters\))? needs the onnx extra \(onnx is not installed\).*" + _pip("onnx"),
         setup=lambda t: _onnx_file(t), hide=("onnx", "onnx2torch")),
    Case("extras-onnx2torch-alone", ["assess", "{tmp}/model.onnx"], 2,
         r"needs the onnx extra \(onnx2torch is not installed\)", setup=lambda t: _onnx_file(t),
         hide=("onnx2torch",)),
    Case("extras-diffusers-spec", ["assess", "diffusers:sd15"], 2,
         r"diffusers:sd15 needs the diffusers extra \(diffusers is not installed\): " + _pip("diffusers"),
         hide=("diffusers",)),
    Case("extras-diffusers-without-transformers", ["assess", "diffusers:sd15"], 2,
         r"diffusers:sd15 needs the diffusers extra \(transformers is not installed\)", hide=("transformers",)),
    Case("extras-report-html", ["assess", "torchvision:resnet18", *INFER, "--report", "{tmp}/r.html"], 2,
         r"plots and HTML reports need the report extra \(matplotlib is not installed\): " + _pip("report"),
         check=_no_report, hide=("matplotlib",)),
    Case("extras-report-compare-plot", ["compare", "torchvision:resnet18", "torchvision:alexnet", "--train-samples",
                                        "10", "--plot", "{tmp}/p.svg"], 2,
         r"need the report extra \(matplotlib is not installed\)", hide=("matplotlib",)),
    # --- what the core does without any extra -------------------------------------------------------------------
    Case("extras-core-torchvision", ["assess", "torchvision:resnet18", *INFER, "--json"], 0, r'"torchvision:resnet18"',
         hide=OPTIONAL),
    # RegNets' constructors read values: built with afford's own parameters_on_meta, not accelerate's
    Case("extras-core-regnet-without-accelerate", ["assess", "torchvision:regnet_x_400mf", *INFER], 0,
         r"regnet_x_400mf\s+5\.5 M params.*828 MFLOPs", hide=OPTIONAL),
    # a bare name that timm also knows is ambiguous with timm installed; without it, torchvision's is the one
    Case("extras-core-bare-name-without-timm", ["assess", "resnet18", *INFER, "--json"], 0,
         r'"torchvision:resnet18"', hide=OPTIONAL),
    Case("extras-core-unknown-name", ["assess", "resnet18x"], 2, r"unknown model 'resnet18x'; closest: .*resnet18",
         hide=OPTIONAL),
    # the hf catalog is data: it lists without transformers (resolving one of its models needs the extra)
    Case("extras-core-hf-catalog-lists", ["models", "--pattern", "gpt2"], 0, r"hf:openai-community/gpt2",
         hide=OPTIONAL),
    Case("extras-core-recsys", ["assess", "recsys:two-tower", *INFER], 0, r"recsys:two-tower\s+513 M params",
         hide=OPTIONAL),
    Case("extras-core-safetensors-headers", ["assess", "{tmp}/m.safetensors"], 0,
         r"parameters\s+.\s+16 .\s+16 elements in 1 tensors", setup=lambda t: _safetensors(t), hide=OPTIONAL),
    Case("extras-core-hardware", ["hardware", "list", "--json"], 0, r'"devices"', hide=OPTIONAL),
]
