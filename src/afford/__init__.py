"""afford: is a pretrained model affordable for your job? Exact compute and memory from a meta-device trace,
time and money on real hardware, and the verdict with the plans that make it affordable."""

from afford.api import assess
from afford.assess import Assessment
from afford.errors import AffordError
from afford.report import notebook as _display  # noqa: F401 - fills afford.display's hooks (_repr_html_, ...)
from afford.schema import JobRequest

__all__ = ["AffordError", "Assessment", "JobRequest", "assess", "compare", "plan"]
__version__ = "0.1.0"


def plan(model: object, **kwargs: object) -> object:
    """Verdict and plans for a training job within a budget (see afford.decide.run.plan; the options are
    JobRequest's fields that plan takes)."""
    from afford.decide.run import plan as run

    return run(model, **kwargs)  # type: ignore[arg-type]


def compare(models: list[str], **kwargs: object) -> object:
    """Rank candidate models for one job and budget (see afford.decide.compare.compare)."""
    from afford.decide.compare import compare as run

    return run(models, **kwargs)  # type: ignore[arg-type]
