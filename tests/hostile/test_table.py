"""The hostile-input table (issue 14): every row exits as stated, with one line and no traceback."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

from hostile.harness import Case, check_case


def _cases() -> list[Case]:
    here = Path(__file__).parent
    out: list[Case] = []
    for info in sorted(pkgutil.iter_modules([str(here)]), key=lambda i: i.name):
        if info.name.startswith("cases_"):
            out.extend(importlib.import_module(f"hostile.{info.name}").CASES)
    return out


CASES = _cases()


def test_the_table_is_large_and_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(set(ids)) == len(ids), [i for i in ids if ids.count(i) > 1]
    assert len(CASES) >= 80, len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, tmp_path: Path) -> None:
    check_case(case, tmp_path)
