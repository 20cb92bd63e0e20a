"""A report as plain data (sections of paragraphs, tables and plots), built once from an Assessment, a PlanResult
or a Comparison and rendered by html.py, markdown.py and notebook.py alike.

Every number comes from the object's `to_dict()` (the JSON contract) or, for the plots that need more, from
estimate/ (shares.py, reprice.py, roofline.py: the same trace and estimate machinery that produced it); table
cells keep the raw value and its JSON path beside the formatted text, so a rendering can be checked against
`to_dict()`. The document model is in model.py, the shared blocks in blocks.py and one builder per result type
in assessment.py, plan.py and comparison.py; this module dispatches and keeps the names callers import.
"""

from __future__ import annotations

from typing import Any

from afford.errors import InputError
from afford.estimate.reprice import COMPARED_DEVICES, reprice
from afford.estimate.roofline import roofline_data
from afford.estimate.shares import module_groups
from afford.report import assessment, comparison, plan
from afford.report.assessment import TOP_MODULES, memory_bars
from afford.report.blocks import PLAN_COLUMNS, PROVENANCE_COLUMNS, fold_notes
from afford.report.fmt import num
from afford.report.model import (
    STATUS_TEXT,
    Block,
    Bullets,
    Cards,
    Cell,
    Document,
    Figure,
    Num,
    Para,
    Section,
    Table,
)

__all__ = ["COMPARED_DEVICES", "PLAN_COLUMNS", "PROVENANCE_COLUMNS", "STATUS_TEXT", "TOP_MODULES", "Block",
           "Bullets", "Cards", "Cell", "Document", "Figure", "Num", "Para", "Section", "Table", "build", "fold_notes",
           "memory_bars", "module_groups", "num", "reprice", "roofline_data"]


def build(obj: Any) -> Document:
    """The report document of an Assessment, a PlanResult, a Comparison or a Sweep."""
    from afford.assess import Assessment
    from afford.decide.compare import Comparison
    from afford.decide.run import PlanResult
    from afford.decide.sweep import Sweep

    if isinstance(obj, Assessment):
        return assessment.build(obj)
    if isinstance(obj, PlanResult):
        return plan.build(obj)
    if isinstance(obj, Comparison):
        return comparison.build(obj)
    if isinstance(obj, Sweep):
        from afford.report import sweep

        return sweep.build(obj)
    raise InputError(f"a report needs an Assessment, a PlanResult, a Comparison or a Sweep, got "
                     f"{type(obj).__name__}")
