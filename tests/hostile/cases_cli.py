"""Hostile-table rows for the command line itself: usage errors, --json error objects, one line each."""

from __future__ import annotations

import json
from pathlib import Path

from hostile.harness import Case, Result


def _json_error(kind: str) -> object:
    """A check that stdout is exactly one JSON error object of type `kind`, with the stderr line's message."""

    def check(tmp: Path, result: Result) -> None:
        data = json.loads(result.stdout)
        assert set(data) == {"error"}, data
        assert data["error"]["type"] == kind, data
        assert data["error"]["exit_code"] == result.code
        assert data["error"]["message"] in result.stderr

    return check


def _no_stdout(tmp: Path, result: Result) -> None:
    assert result.stdout == "", result.stdout


CASES = [
    Case("cli-json-unknown-model", ["assess", "torchvision:resnet5O", "--json"], 2, "closest: resnet50",
         check=_json_error("UnknownModelError")),  # type: ignore[arg-type]
    Case("cli-json-usage-error", ["assess", "torchvision:resnet18", "--no-such-flag", "--json"], 2,
         "no such option", check=_json_error("UsageError")),  # type: ignore[arg-type]
    Case("cli-json-workload-error", ["assess", "torchvision:resnet18", "--batch-size", "0", "--json"], 2,
         "--batch-size", check=_json_error("WorkloadError")),  # type: ignore[arg-type]
    Case("cli-no-json-no-stdout", ["assess", "torchvision:resnet5O"], 2, "closest", check=_no_stdout),
    Case("cli-unknown-command", ["assesss", "torchvision:resnet18"], 2, "no such command"),
    Case("cli-missing-model", ["assess"], 2, "give MODEL"),
    Case("cli-int-option-text", ["assess", "torchvision:resnet18", "--batch-size", "many"], 2, "valid integer"),
    Case("cli-unknown-models-source", ["models", "--source", "pypi"], 2, "unknown source"),
    Case("cli-hardware-unknown", ["assess", "torchvision:resnet18", "--hardware", "a1000000"], 2, "unknown"),
    Case("cli-report-suffix", ["assess", "torchvision:resnet18", "--report", "{tmp}/r.pdf"], 2, r"\.html"),
]


def _hardware_bomb(tmp: Path) -> list[str]:
    """A --hardware-file whose YAML expands nine levels of nine aliases: refused at the first alias."""
    laughs = "".join(f"&l{i} [{', '.join([f'*l{i - 1}'] * 9)}], " for i in range(1, 9))
    (tmp / "hw.yaml").write_text(f"device: [&l0 [{', '.join(['lol'] * 9)}], {laughs}x]\n", encoding="utf-8")
    return ["--hardware-file", str(tmp / "hw.yaml")]


CASES.append(Case("cli-hardware-file-yaml-alias-bomb", ["assess", "torchvision:resnet18", "--infer-samples", "1"],
                  2, r"aliases .* not allowed", setup=_hardware_bomb))
