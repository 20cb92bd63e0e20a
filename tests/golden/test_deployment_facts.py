"""Documented deployment facts reproduced as verdicts (issue 11): which devices, split how, hold a model at 16, 8
and 4 bits. The 405B rows (one 16 s trace) are checked by bench/validate_deployment.py, not here."""

from __future__ import annotations

import pytest
from deployment_golden import facts, judge

CHEAP = [f for f in facts() if "405B" not in f["model"]]


def test_the_facts_cover_16_8_and_4_bits_fitting_and_not() -> None:
    rows = facts()
    assert {int(f["bits"]) for f in rows} == {4, 8, 16}
    assert {bool(f["fits"]) for f in rows} == {True, False}
    assert all(f["source"] and f["quote"] for f in rows)


@pytest.mark.parametrize("fact", CHEAP, ids=[f"{f['model'].split('/')[-1]}-{f['weights']}-{f['tp']}x{f['hardware']}"
                                              for f in CHEAP])
def test_a_documented_deployment_is_the_verdict(fact: dict) -> None:
    v = judge(fact)
    assert v.agrees, (v.reason, fact["quote"])
