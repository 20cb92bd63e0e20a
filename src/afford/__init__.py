"""afford: is a pretrained model affordable for your job? Exact compute and memory from a meta-device trace,
time and money on real hardware, and the verdict with the plans that make it affordable.

The public names are loaded on first use (PEP 562 `__getattr__`), so `import afford.cli` and `afford --help` do not
import torch: only the commands that trace do.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from afford.errors import AffordError
from afford.schema import JobRequest

if TYPE_CHECKING:
    from afford.api import assess
    from afford.assess import Assessment

__all__ = ["AffordError", "Assessment", "JobRequest", "assess", "compare", "plan"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`afford.assess` and `afford.Assessment`, imported (with torch) when first asked for."""
    if name in ("assess", "Assessment"):
        import importlib

        api, result = importlib.import_module("afford.api"), importlib.import_module("afford.assess")
        globals().update(assess=api.assess, Assessment=result.Assessment)
        return globals()[name]
    raise AttributeError(f"module 'afford' has no attribute {name!r}")


class _Package(types.ModuleType):
    """afford's module object. `afford.assess` is the function: loading the `afford.assess` submodule (the
    Assessment's home, always reachable as `sys.modules["afford.assess"]`) must not replace it, as the import
    system would by setting the parent's attribute."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "assess" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def plan(model: object, **kwargs: object) -> object:
    """Verdict and plans for a job within a budget: a training job's PlanResult (afford.decide.run.plan), or an
    inference job's Assessment with its inference verdict and plans (afford.api.plan_job); the options are
    JobRequest's fields that plan takes."""
    from afford.api import plan_job

    return plan_job(model, **kwargs)


def compare(models: list[str], **kwargs: object) -> object:
    """Rank candidate models for one job and budget (see afford.decide.compare.compare)."""
    from afford.decide.compare import compare as run

    return run(models, **kwargs)  # type: ignore[arg-type]
