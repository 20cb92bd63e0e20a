"""Time `afford.sources.checkpoint.inspect` on a sparse 10 GiB safetensors file (a Llama-2-70B-shaped slice:
80 BF16 tensors of 8192 x 8192): only the header is read, so the time does not grow with the file.

Target: under 100 ms (the header is ~10 kB). Prints milliseconds (best and median of 20 runs) and exits
non-zero if the target is missed. Run with `make bench` or `.venv/bin/python bench/checkpoint_bench.py`.
"""

from __future__ import annotations

import json
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

from docsection import replace_section  # bench/ is the script folder, first on sys.path

from afford.sources.checkpoint import inspect

TENSORS, SIDE, BYTES_PER = 80, 8192, 2  # BF16
TARGET_MS = 100.0
RUNS = 20


def write_sparse(path: Path) -> int:
    """A valid safetensors header claiming 10 GiB of data, then a truncate to the full length (sparse: the data
    takes no disk space). Returns the claimed data bytes."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for i in range(TENSORS):
        size = SIDE * SIDE * BYTES_PER
        header[f"model.layers.{i}.weight"] = {"dtype": "BF16", "shape": [SIDE, SIDE],
                                              "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
    return offset


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sparse-10gib.safetensors"
        data = write_sparse(path)
        times = []
        for _ in range(RUNS):
            t0 = time.perf_counter()
            info = inspect(path)
            times.append((time.perf_counter() - t0) * 1e3)
        assert info.weight_bytes == data and info.params == TENSORS * SIDE * SIDE
        best, median = min(times), statistics.median(times)
        ok = median < TARGET_MS
        print(f"checkpoint inspect, sparse {path.stat().st_size / 2**30:.2f} GiB safetensors ({TENSORS} tensors, "
              f"{info.params:,} params): best {best:.2f} ms, median {median:.2f} ms over {RUNS} runs "
              f"(target < {TARGET_MS:.0f} ms) -> {'pass' if ok else 'FAIL'}")
        line = (f"| `inspect`, sparse {path.stat().st_size / 2**30:.2f} GiB safetensors, {TENSORS} tensors | "
                f"{median:.2f} ms median, {best:.2f} ms best of {RUNS} (target < {TARGET_MS:.0f} ms) | "
                f"{'pass' if ok else 'FAIL'} |")
    replace_section("Checkpoint headers", "| case | time | result |\n|---|---|---|\n" + line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
