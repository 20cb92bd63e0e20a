"""The weight-format validation table of docs/validation.md: afford's exact bytes of each quantized file type
against published file sizes (tests/golden/weight_formats.toml). Prints markdown; `make validate` runs it."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import afford
from afford.estimate.formats import params_of, weight_bytes, weight_format

UNITS = {"GiB": 2**30, "GB": 1e9}


def main() -> None:
    """One row per published size: predicted, published, error; known differences marked."""
    tables = tomllib.loads((Path(__file__).parent.parent / "tests/golden/weight_formats.toml").read_text())["table"]
    rows = ["| model | file type | published | afford | error | note |", "|---|---|---|---|---|---|"]
    for t in tables:
        a = afford.assess(t["model"], infer_samples=1, seq_len=8, precision="fp16")
        params, meta = params_of(a.trace), {**a.spec.metadata, "params": a.trace.params}
        for fmt, size in t["sizes"].items():
            got = weight_bytes(params, weight_format(fmt), meta).bytes / UNITS[t["unit"]]
            note = "known: " + " ".join(t["known"][fmt].split()) if fmt in t["known"] else ""
            rows.append(f"| {t['model']} | {fmt} | {size:.2f} {t['unit']} | {got:.3f} {t['unit']} | "
                        f"{(got / size - 1) * 100:+.1f}% | {note} |")
    sys.stdout.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
