"""Planning: an experiment spec expanded into run specs (a run shared by two comparisons
is sampled once), and the outcome types the driver fills in."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semcal.reproduce.comparisons import COMPARISON_REGISTRY
from semcal.reproduce.spec import ExperimentSpec, ModelEntry
from semcal.spec import RunSpec
from semcal.store import spec_key

# ----------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlannedRun:
    """One run of the plan: a :class:`RunSpec` and where it belongs in the figures."""

    spec: RunSpec
    model: ModelEntry
    dataset: str
    style: str
    temperature: float
    comparisons: tuple[str, ...]

    @property
    def group(self) -> str:
        """Colour group of the scatter: cot (any cot run), else base or instruct (sft counts as instruct)."""
        if self.style == "cot":
            return "cot"
        return "base" if self.model.role == "base" else "instruct"

    @property
    def label(self) -> str:
        t = "" if self.temperature == 1.0 else f" T={self.temperature:g}"
        return f"{self.model.name} · {_dataset_name(self.dataset)} · {self.style}{t}"


def _dataset_name(ds: str) -> str:
    return Path(ds).stem if ("/" in ds or "." in ds) else ds


def plan(spec: ExperimentSpec) -> list[PlannedRun]:
    """Expand an experiment into runs (one per model × dataset × style × temperature), deduplicated."""
    wanted: dict[tuple, tuple[ModelEntry, str, str, float, set[str]]] = {}

    def add(m: ModelEntry, ds: str, style: str, t: float, comp: str) -> None:
        key = (m.model, m.backend or spec.backend, ds, style, float(t))
        if key in wanted:
            wanted[key][4].add(comp)
        else:
            wanted[key] = (m, ds, style, float(t), {comp})

    # each chosen comparison adds its runs (semcal.reproduce.comparisons), in registry order
    chosen = [(name, COMPARISON_REGISTRY[name]) for name in COMPARISON_REGISTRY
              if name in spec.comparisons]
    for m in spec.models:
        for ds in spec.datasets:
            for name, comp in chosen:
                if comp.per_dataset is not None:
                    comp.per_dataset(spec, m, ds, lambda *run, c=name: add(*run, c))
    for name, comp in chosen:
        if comp.whole is not None:
            comp.whole(spec, lambda *run, c=name: add(*run, c))
    out = []
    for (_, backend, ds, style, t), (m, _, _, _, cs) in wanted.items():
        rs = RunSpec(
            model=m.model,
            name=None,
            backend=backend,
            backend_options={"chat": m.is_chat, **dict(spec.backend_options),
                             **dict(m.backend_options)},
            dataset=ds,
            limit=spec.questions,
            style=style,
            k_shot=spec.k_shot,
            samples=spec.samples,
            temperature=float(t),
            max_tokens=spec.max_tokens.get(style),
            seed=spec.seed,
            collapse=spec.primary_collapse,
            judge=spec.judge,
            greedy=False,
            batch_questions=spec.batch_questions,
        )
        # the name carries a hash of the sampling settings: changing sizes or seeds makes a new
        # run in the same store instead of a name clash

        tag = spec_key(rs.key_fields())[:6]
        rs = rs.replace(name=f"{spec.name}-{m.name}-{_dataset_name(ds)}-{style}-T{t:g}-{tag}")
        out.append(PlannedRun(rs, m, ds, style, float(t),
                              tuple(c for c in COMPARISON_REGISTRY if c in cs)))
    return out


# ----------------------------------------------------------------------------- metrics


@dataclass
class RunOutcome:
    """Per-question results of one planned run (after collapse + grading)."""

    run: PlannedRun
    question_ids: list[str]
    confidence: np.ndarray  # (n,) plurality share in [0, 1]
    correct: np.ndarray  # (n,) bool
    metrics: dict[str, Any] = field(default_factory=dict)
    #: the same samples under each further B of the experiment (``collapse = [...]``): the
    #: keys of :attr:`metrics`, by the B's name; empty with one B
    by_collapse: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ReproduceResult:
    """What :func:`reproduce` produced: per-run outcomes, theory summaries, written files."""

    out_dir: Path
    spec: ExperimentSpec
    runs: list[RunOutcome] = field(default_factory=list)
    trajectories: dict[str, Any] = field(default_factory=dict)
    selfpredict: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "runs": [
                {
                    "name": o.run.spec.run_name,
                    "model": o.run.model.model,
                    "role": o.run.model.role,
                    "dataset": o.run.dataset,
                    "style": o.run.style,
                    "temperature": o.run.temperature,
                    "group": o.run.group,
                    "comparisons": list(o.run.comparisons),
                    "metrics": o.metrics,
                    **({"by_collapse": o.by_collapse} if o.by_collapse else {}),
                }
                for o in self.runs
            ],
            "trajectories": {
                k: {"summary": v["summary"], "result": v["result"].to_dict()}
                for k, v in self.trajectories.items()
            },
            "selfpredict": {
                k: {"summary": v["summary"], "rows": [dataclasses.asdict(r) for r in v["rows"]]}
                for k, v in self.selfpredict.items()
            },
            "figures": {k: str(v) for k, v in self.figures.items()},
            "seconds": self.seconds,
        }
