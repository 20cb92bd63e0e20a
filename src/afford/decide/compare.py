"""`afford compare`: rank candidate models for one job and budget; accuracy per dollar and its Pareto front."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from afford.api import assess
from afford.assess import Assessment
from afford.decide.budget import Budget
from afford.decide.run import make_budget
from afford.decide.verdict import limit_reasons
from afford.errors import AffordError, InputError
from afford.hardware.catalog import Catalog


def expand(specs: list[str]) -> list[str]:
    """Model specs with globs expanded (decide/sweep.py `expand_specs`), refusing fewer than two models."""
    from afford.decide.sweep import expand_specs

    out = expand_specs(specs)
    if len(out) < 2:
        raise InputError("compare needs at least two models")
    return out


@dataclass
class Row:
    model: str
    params: int
    accuracy: dict[str, Any] | None
    cost_usd: float | None
    train_seconds: float
    per_device_bytes: float
    fits: bool
    verdict: str
    reasons: list[str]
    accuracy_per_dollar: float | None = None
    pareto: bool = False
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Comparison:
    rows: list[Row]
    budget: Budget
    hardware: str
    count: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"hardware": {"name": self.hardware, "count": self.count}, "models": [r.to_dict() for r in self.rows],
                "pareto": [r.model for r in self.rows if r.pareto], "notes": self.notes}

    def to_json(self, indent: int | None = 2) -> str:
        """The CLI's `--json` object as strict JSON text (`to_dict()` through the CLI's one serializer)."""
        from afford.display import dumps

        return dumps(self.to_dict(), indent)

    def __repr__(self) -> str:
        """The terminal's one screen as plain text (drawn by report/); one line if drawing it fails."""
        from afford.display import screen

        return screen(self, lambda: f"<Comparison of {len(self.rows)} models on {self.count} x {self.hardware}>")

    def _repr_html_(self) -> str:
        """Rich display in Jupyter: the same page as `--report PATH.html`, without the page chrome."""
        from afford.display import render

        return str(render("repr_html", self))

    def to_dataframe(self) -> Any:
        """A pandas DataFrame of the result's rows (pandas is optional: `pip install afford[notebook]`)."""
        from afford.display import render

        return render("to_dataframe", self)


def _row(model: str, a: Assessment, budget: Budget) -> Row:
    d = a.to_dict()
    cost = d["cost"].get("train_usd")
    secs = d["time"].get("train_seconds", 0.0)
    mem = d["memory"]
    reasons = limit_reasons(fits=mem["fits"], per_device_bytes=mem["per_device_bytes"],
                            device_bytes=mem["device_bytes"], cost_usd=cost, seconds=secs,
                            kwh=d["energy"]["train_kwh"], co2_kg=d["co2"]["train_kg"], budget=budget,
                            device_name=d["hardware"]["device"])
    accuracy = a.spec.metadata.get("accuracy")
    per_dollar = accuracy["value"] / cost if accuracy and cost else None
    return Row(model=model, params=d["model"]["params"], accuracy=accuracy, cost_usd=cost, train_seconds=secs,
               per_device_bytes=mem["per_device_bytes"], fits=mem["fits"],
               verdict="not_affordable" if reasons else "affordable", reasons=reasons,
               accuracy_per_dollar=per_dollar)


_OWN = ("hardware", "count", "budget_usd", "deadline", "max_kwh", "max_co2_kg", "hardware_file")  # its own parameters


def compare(models: list[str], *, hardware: str | None = None, count: int | None = None,
            budget_usd: float | None = None, deadline: str | float | None = None, max_kwh: float | None = None,
            max_co2_kg: float | None = None, hardware_file: str | Path | None = None, jobs: int = 1,
            **job: Any) -> Comparison:
    """Assess every model for the same job on the same hardware and rank them (affordable first, then by
    accuracy where the model's metadata gives one, else by cost). Each verdict is for the job as asked. `jobs`
    worker processes assess the models (decide/sweep.py `run_all`); the result is the same for any `jobs`."""
    from afford import schema
    from afford.decide.sweep import check_jobs, run_all

    request = schema.build("compare", job)  # an unknown option is one error here, not one per model
    # compare's own defaults (precision bf16-mixed), as the CLI passes them, not assess's
    job = {k: v for k, v in schema.values(request, "compare").items() if k not in _OWN}
    check_jobs(jobs)
    catalog = Catalog.load(Path(hardware_file) if hardware_file else None)
    budget = make_budget(budget_usd=budget_usd, deadline=deadline, max_kwh=max_kwh, max_co2_kg=max_co2_kg,
                         catalog=catalog)
    device = catalog.get(hardware or "a100-80gb")
    notes: list[str] = []
    tasks = [(model, device.id, count, hardware_file, job, budget) for model in expand(models)]
    rows = run_all(assess_row, tasks, jobs)
    _mark_pareto(rows)
    rows.sort(key=lambda r: (r.verdict != "affordable", -(r.accuracy or {}).get("value", -1.0),
                             r.cost_usd if r.cost_usd is not None else float("inf")))
    if any(r.accuracy for r in rows):
        notes.append("accuracy: top-1 on ImageNet-1k as published with each torchvision weights entry "
                     "(meta['_metrics']), for the pretrained weights, not after your fine-tune")
    return Comparison(rows=rows, budget=budget, hardware=device.id, count=count or 1, notes=notes)


def assess_row(task: tuple[str, str, int | None, str | Path | None, dict[str, Any], Budget]) -> Row:
    """One model's row of a comparison (run in a worker process with --jobs): its figures, or its error."""
    model, device, count, hardware_file, job, budget = task
    try:
        a = assess(model, hardware=device, count=count, hardware_file=hardware_file, **job)
    except AffordError as exc:
        return Row(model=model, params=0, accuracy=None, cost_usd=None, train_seconds=0.0, per_device_bytes=0.0,
                   fits=False, verdict="error", reasons=[str(exc)], error=str(exc))
    return _row(model, a, budget)


def _mark_pareto(rows: list[Row]) -> None:
    """A model is on the front when no other affordable model is both cheaper and at least as accurate."""
    scored = [r for r in rows if r.accuracy and r.cost_usd is not None and r.verdict == "affordable"]
    for r in scored:
        r.pareto = not any(o is not r and (o.cost_usd or 0.0) <= (r.cost_usd or 0.0)
                           and o.accuracy["value"] >= r.accuracy["value"]  # type: ignore[index]
                           and ((o.cost_usd or 0.0) < (r.cost_usd or 0.0)
                                or o.accuracy["value"] > r.accuracy["value"])  # type: ignore[index]
                           for o in scored)


def plot(c: Comparison, path: Path) -> Path:
    """Accuracy against cost, the Pareto front drawn through, saved as PNG or SVG (by the file's suffix)."""
    from afford.display import render

    return Path(render("pareto_plot", c, path))
