"""timm's torch.compile inference table (RTX PRO 6000 Blackwell Max-Q, AMP fp16) against afford's compiled runtime.

The csv is timm's own file, byte for byte: huggingface/pytorch-image-models@90cae8c5ab83d2d7e23b1fb2bab1559bfdcbc7e9
`results/benchmark-infer-amp-nchw-pt291-cu130-pro6000maxq-dynamo.csv` (timm 1.0.24, PyTorch 2.9.1, CUDA 13.0,
`benchmark.py --torchcompile`: Inductor, default mode, no CUDA graphs; CRLF lines as published). afford was not
fitted to it. The whole table is priced by `bench/validate_timm_infer.py --table dynamo`
(docs/timm_inference_dynamo.md); here a few rows check element-wise fusion under `runtime="compiled"`: a net of
convolutions with BatchNorm and activation chains gains from fusion, a GEMM-bound ViT hardly does, as measured."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Any

import pytest

CSV = Path(__file__).with_name("timm_infer_pro6000_dynamo.csv")
EAGER_CSV = Path(__file__).with_name("timm_infer_pro6000.csv")
SHA256 = "d655736ea1fe44604b2067e5f2cc62bf8799e3d1995ff5fb13e8983f82ea8fe9"  # of the published file
HEADER = ("model,infer_img_size,infer_samples_per_sec,infer_step_time,infer_batch_size,param_count,infer_gmacs,"
          "infer_macts")
HARDWARE = "rtx-pro-6000-maxq"
SIZE = 224


def _rows(path: Path = CSV) -> list[dict[str, str]]:
    """A measured table, one dict per csv row."""
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _measured(path: Path, model: str, size_column: str) -> dict[str, str]:
    """The row of `model` at 224 px in the csv at `path`."""
    found = [r for r in _rows(path) if r["model"] == model and int(r[size_column]) == SIZE]
    assert len(found) == 1, f"{model}@{SIZE}: {len(found)} rows in {path.name}"
    return found[0]


def _rates(model: str) -> tuple[float, float, float, float]:
    """(predicted compiled, predicted eager, measured compiled, measured eager) samples/s of `model` at 224 px:
    the bench script's call at the dynamo row's batch, with and without `runtime="compiled"` (one trace: afford's
    in-process trace cache re-prices it)."""
    import afford

    row = _measured(CSV, model, "infer_img_size")
    batch = int(row["infer_batch_size"])
    job: dict[str, Any] = dict(image_size=SIZE, batch_size=batch, infer_samples=batch, precision="fp16-mixed",
                               hardware=HARDWARE, model_options={"reparam": True})
    eager = afford.assess(f"timm:{model}", **job).to_dict()["time"]["infer_samples_per_second"]
    compiled = afford.assess(f"timm:{model}", runtime="compiled", **job).to_dict()["time"]["infer_samples_per_second"]
    measured_eager = float(_measured(EAGER_CSV, model, "img_size")["infer_samples_per_sec"])
    return compiled, eager, float(row["infer_samples_per_sec"]), measured_eager


def test_csv_is_timms_published_file() -> None:
    data = CSV.read_bytes()
    assert hashlib.sha256(data).hexdigest() == SHA256
    assert len(data) == 98_619
    assert data.decode().split("\r\n", 1)[0] == HEADER
    rows = _rows()
    assert len(rows) == 1628
    eager = {(r["model"], r["img_size"]): r for r in _rows(EAGER_CSV)}
    for r in rows:
        batch, rate = int(r["infer_batch_size"]), float(r["infer_samples_per_sec"])
        assert abs(1000 * batch / rate / float(r["infer_step_time"]) - 1) < 0.01, r["model"]  # step time in ms
        e = eager[(r["model"], r["infer_img_size"])]  # every row is also in the eager table, same fvcore counts
        assert (r["infer_gmacs"], r["param_count"]) == (e["gmacs"], e["param_count_millions"]), r["model"]


@pytest.mark.parametrize("model", ["resnet50", "efficientnet_b0"])
def test_fusion_speeds_up_bn_activation_chains(model: str) -> None:
    """BatchNorm, activation, residual add and squeeze-excite chains fuse into one kernel each: timm measured 1.89x
    (resnet50) and 1.43x (efficientnet_b0) from torch.compile; afford must predict a clear gain, within 20 % of
    the measured speed-up, and a compiled rate within 30 % of the measured one."""
    compiled, eager, m_compiled, m_eager = _rates(model)
    predicted, measured = compiled / eager, m_compiled / m_eager
    print(f"{model}: compiled {compiled:,.0f}/s vs measured {m_compiled:,.0f}/s; speed-up predicted "
          f"{predicted:.2f}x, measured {measured:.2f}x")
    assert predicted > 1.3
    assert abs(predicted / measured - 1) <= 0.20
    assert abs(compiled / m_compiled - 1) <= 0.30


def test_gemm_bound_vit_gains_little() -> None:
    """vit_base_patch16_224 spends its time in GEMMs and attention: timm measured 1.13x from torch.compile, and
    afford's compiled runtime must not invent a large gain (fusion only removes LayerNorm/GELU/bias traffic)."""
    compiled, eager, m_compiled, m_eager = _rates("vit_base_patch16_224")
    predicted, measured = compiled / eager, m_compiled / m_eager
    print(f"vit_base_patch16_224: speed-up predicted {predicted:.2f}x, measured {measured:.2f}x")
    assert 1.0 <= predicted < 1.2
    assert abs(predicted / measured - 1) <= 0.20
