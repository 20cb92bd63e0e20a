"""Start-up stays light (issue 15): `afford --help` and `afford hardware list` never import torch, so they answer
in a fraction of a second; only the commands that trace import it. Checked in a fresh interpreter, not timed."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
from afford.cli.app import main
sys.argv = ["afford", *{argv!r}]
try:
    main()
except SystemExit:
    pass
print("TORCH-IMPORTED", "torch" in sys.modules)
"""


@pytest.mark.parametrize("argv", [["--help"], ["assess", "--help"], ["hardware", "list", "--json"],
                                  ["hardware", "show", "h100-sxm"]])
def test_command_does_not_import_torch(argv: list[str]) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert "TORCH-IMPORTED False" in out, out[-2000:]


def test_the_python_api_still_loads_on_first_use() -> None:
    code = ("import sys, afford; assert 'torch' not in sys.modules; f = afford.assess; import afford.assess as m; "
            "assert afford.assess is f and callable(f) and afford.Assessment.__name__ == 'Assessment'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]
