"""The paper's experiments as run specs, and the ``reproduce`` driver that runs them and draws
the figures.

An *experiment spec* (TOML, see ``experiments/*.toml``) names a list of models (each with a
role: ``base``, ``instruct`` (RL/DPO-tuned) or ``sft``), datasets, and which comparisons to run:

* ``styles``       — base models, styles concise and sentence (finding 1: base models are calibrated);
* ``tuning``       — base vs instruct/RL-tuned models, same styles (finding 2: tuning → overconfident);
* ``cot``          — base models, sentence vs chain-of-thought (finding 3: CoT → underconfident);
* ``temperature``  — one base model at several sampling temperatures (theory: T = 1 is where a
  base model is calibrated; T < 1 sharpens it into overconfidence, as RL tuning does);
* ``trajectories`` — intermediate B-confidence g_i for sentence vs cot (:mod:`semcal.theory.trajectories`);
* ``selfpredict``  — first-token self-prediction per style (:mod:`semcal.theory.selfpredict`).

:func:`plan` expands a spec into :class:`semcal.spec.RunSpec` objects (deduplicated: a run shared by
two comparisons is sampled once). :func:`reproduce` samples them with :func:`semcal.runner.run`
into one store (so an interrupted reproduction resumes where it stopped), collapses and grades
them, computes smECE / accuracy / signed calibration error with bootstrap CIs, and writes
``results.json``, ``summary.md`` and the figures into the output directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semcal.analysis import analyze_run
from semcal.errors import InputError
from semcal.files import save_figure, write_text
from semcal.spec import STYLES, RunSpec, check_keys, read_toml

log = logging.getLogger(__name__)

COMPARISONS = ("styles", "tuning", "cot", "temperature", "trajectories", "selfpredict")
ROLES = ("base", "instruct", "sft")
#: colour groups of the smECE-vs-accuracy scatter
GROUPS = ("base", "instruct", "cot")
GROUP_COLORS = {"base": "#1f77b4", "instruct": "#d62728", "cot": "#2ca02c"}

#: the embedded models (offline, CPU): a pretrained base model and a small instruct model
DEFAULT_MODELS = (("gemma-3-270m", "base"), ("smollm2-135m-instruct", "instruct"))


# ----------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class ModelEntry:
    """A model of an experiment: ``model`` (short name, GGUF path or HF id) and its ``role``."""

    model: str
    role: str = "base"
    label: str | None = None
    backend: str | None = None
    backend_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise InputError(f"model must be a non-empty string, got {self.model!r}")
        if self.role not in ROLES:
            raise InputError(f"model {self.model!r}: role must be one of {ROLES}, got {self.role!r}")

    @property
    def name(self) -> str:
        if self.label:
            return self.label
        m = self.model
        return Path(m).stem if m.endswith(".gguf") else m.split("/")[-1]


@dataclass(frozen=True)
class TemperatureSpec:
    """The temperature perturbation: one base model, one style, several temperatures."""

    values: tuple[float, ...] = (0.3, 0.5, 0.7, 1.0, 1.3)
    model: str | None = None  # default: the first base model
    style: str = "concise"
    datasets: tuple[str, ...] | None = None  # default: the experiment's datasets


@dataclass(frozen=True)
class TrajectorySpec:
    """Intermediate B-confidence settings (see :func:`semcal.theory.estimate_trajectories`)."""

    model: str | None = None  # default: the first base model
    styles: tuple[str, ...] = ("sentence", "cot")
    dataset: str | None = None  # default: the first dataset
    questions: int = 20
    samples: int = 10
    continuations: int = 8
    trajectories: int = 1
    fractions: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
    absolute: tuple[int, ...] = (1, 2)
    max_tokens: int | None = None


@dataclass(frozen=True)
class SelfPredictSpec:
    """Self-prediction settings (see :func:`semcal.theory.self_prediction`)."""

    model: str | None = None  # default: the first base model
    styles: tuple[str, ...] = ("concise", "sentence", "cot")
    dataset: str | None = None  # default: the first dataset
    questions: int = 30
    samples: int = 20
    top_k: int = 20
    max_tokens: int | None = None


@dataclass(frozen=True)
class ExperimentSpec:
    """A full reproduction: models × datasets × comparisons, with sizes. See ``experiments/*.toml``."""

    name: str = "reproduce"
    backend: str = "llamacpp"
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    models: tuple[ModelEntry, ...] = tuple(ModelEntry(m, r) for m, r in DEFAULT_MODELS)
    datasets: tuple[str, ...] = ("world", "arithmetic")
    comparisons: tuple[str, ...] = COMPARISONS
    styles: tuple[str, ...] = ("concise", "sentence")  # styles of the styles/tuning comparisons
    questions: int | None = 40  # per dataset (None: all)
    samples: int = 10  # M
    seed: int = 0
    collapse: str = "auto"
    k_shot: int = 5
    max_tokens: Mapping[str, int] = field(default_factory=lambda: {"cot": 128})  # per style
    n_boot: int = 1000
    # questions per sample() call. Keep 1: with more, the runner gives the questions of a batch
    # one shared seed, so their samples use the same random draws (correlated confidences).
    batch_questions: int = 1
    temperature: TemperatureSpec = field(default_factory=TemperatureSpec)
    trajectories: TrajectorySpec = field(default_factory=TrajectorySpec)
    selfpredict: SelfPredictSpec = field(default_factory=SelfPredictSpec)

    def __post_init__(self) -> None:
        _validate(self)

    # -- derived
    def base_models(self) -> list[ModelEntry]:
        return [m for m in self.models if m.role == "base"]

    def model_entry(self, model: str | None) -> ModelEntry:
        """The entry of ``model`` (None: the first base model)."""
        if model is None:
            bases = self.base_models()
            if not bases:
                raise InputError("this comparison needs a base model (role = 'base')")
            return bases[0]
        for m in self.models:
            if model in (m.model, m.name):
                return m
        return ModelEntry(model, "base")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["backend_options"] = dict(self.backend_options)
        d["max_tokens"] = dict(self.max_tokens)
        for m in d["models"]:
            m["backend_options"] = dict(m["backend_options"])
        return d


def _validate(s: ExperimentSpec) -> None:
    if not s.models:
        raise InputError("the experiment has no models")
    if not s.datasets:
        raise InputError("the experiment has no datasets")
    for c in s.comparisons:
        if c not in COMPARISONS:
            raise InputError(f"unknown comparison {c!r} (known: {', '.join(COMPARISONS)})")
    for st in (*s.styles, *s.trajectories.styles, *s.selfpredict.styles, s.temperature.style):
        if st not in STYLES:
            raise InputError(f"unknown style {st!r} (known: {', '.join(STYLES)})")
    for k, v in s.max_tokens.items():
        if k not in STYLES or isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"max_tokens.{k} must be a style name with an integer >= 1, got {v!r}")
    for name, v, lo in (
        ("samples", s.samples, 1),
        ("n_boot", s.n_boot, 1),
        ("batch_questions", s.batch_questions, 1),
        ("seed", s.seed, 0),
        ("k_shot", s.k_shot, 0),
        ("trajectories.questions", s.trajectories.questions, 1),
        ("trajectories.samples", s.trajectories.samples, 1),
        ("trajectories.continuations", s.trajectories.continuations, 1),
        ("trajectories.trajectories", s.trajectories.trajectories, 1),
        ("selfpredict.questions", s.selfpredict.questions, 1),
        ("selfpredict.samples", s.selfpredict.samples, 1),
        ("selfpredict.top_k", s.selfpredict.top_k, 1),
    ):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise InputError(f"{name} must be an integer >= {lo}, got {v!r}")
    if s.questions is not None and (
        isinstance(s.questions, bool) or not isinstance(s.questions, int) or s.questions < 1
    ):
        raise InputError(f"questions must be an integer >= 1, got {s.questions!r}")
    if s.trajectories.trajectories > s.trajectories.samples:
        raise InputError("trajectories.trajectories cannot exceed trajectories.samples")
    for t in s.temperature.values:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise InputError(f"temperature values must be numbers > 0, got {t!r}")
    for f in s.trajectories.fractions:
        if not 0 <= f <= 1:
            raise InputError(f"trajectories.fractions must lie in [0, 1], got {f}")
    if "tuning" in s.comparisons and not any(m.role != "base" for m in s.models):
        raise InputError("the 'tuning' comparison needs at least one instruct/sft model")


def _tuple(v: Any, name: str, where: str) -> tuple:
    if isinstance(v, (str, int, float)):
        return (v,)
    if not isinstance(v, (list, tuple)):
        raise InputError(f"{name} must be a list, got {v!r}", where=where)
    return tuple(v)


def _sub(cls: type, data: Any, name: str, where: str) -> Any:
    if data is None:
        return cls()
    if not isinstance(data, Mapping):
        raise InputError(f"[{name}] must be a table", where=where)
    check_keys(data, cls, where, table=name)
    known = {f.name: f for f in dataclasses.fields(cls)}
    kw = {}
    for k, v in data.items():
        default = known[k].default
        kw[k] = _tuple(v, f"{name}.{k}", where) if isinstance(default, tuple) or k in (
            "styles", "fractions", "absolute", "values", "datasets"
        ) else v
    return cls(**kw)


def experiment_from_dict(data: Mapping[str, Any], where: str = "experiment") -> ExperimentSpec:
    """Build an :class:`ExperimentSpec` from a parsed TOML mapping (every key checked)."""
    data = dict(data)
    check_keys(data, ExperimentSpec, where)
    kw: dict[str, Any] = {}
    try:
        for k, v in data.items():
            if k == "models":
                models = []
                for i, m in enumerate(_tuple(v, "models", where)):
                    if isinstance(m, str):
                        models.append(parse_model_arg(m))
                    elif isinstance(m, Mapping):
                        check_keys(m, ModelEntry, None, label=f"models[{i}]")
                        models.append(ModelEntry(**m))
                    else:
                        raise InputError(f"models[{i}] must be a table or a string")
                kw["models"] = tuple(models)
            elif k in ("datasets", "comparisons", "styles"):
                kw[k] = tuple(str(x) for x in _tuple(v, k, where))
            elif k == "temperature":
                kw[k] = _sub(TemperatureSpec, v, k, where)
            elif k == "trajectories":
                kw[k] = _sub(TrajectorySpec, v, k, where)
            elif k == "selfpredict":
                kw[k] = _sub(SelfPredictSpec, v, k, where)
            elif k in ("backend_options", "max_tokens"):
                if not isinstance(v, Mapping):
                    raise InputError(f"[{k}] must be a table")
                kw[k] = dict(v)
            else:
                kw[k] = v
        return ExperimentSpec(**kw)
    except InputError as exc:
        if exc.where:
            raise
        raise InputError(str(exc), where=where) from None
    except TypeError as exc:  # a wrong value type deep inside a dataclass
        raise InputError(f"bad value: {exc}", where=where) from None


def load_experiment(path: str | os.PathLike[str]) -> ExperimentSpec:
    """Read an experiment spec file (TOML). A relative dataset path is relative to the file."""
    p = Path(path)
    data = read_toml(p, "experiment file")
    ds = data.get("datasets")
    if isinstance(ds, list):
        data["datasets"] = [
            str(p.parent / d) if isinstance(d, str) and not Path(d).is_absolute()
            and (p.parent / d).exists() else d
            for d in ds
        ]
    return experiment_from_dict(data, where=str(p))


def parse_model_arg(arg: str) -> ModelEntry:
    """``"name"`` or ``"name:role"`` (role base | instruct | sft) -> :class:`ModelEntry`.

    Without a role, the role is ``instruct`` when the model is a chat model (by
    :func:`semcal.backends.models.resolve_model` when it knows the name, else by its name).
    """
    name, _, role = arg.rpartition(":") if arg.rsplit(":", 1)[-1] in ROLES else (arg, "", "")
    if not role:
        role = "instruct" if _looks_chat(name) else "base"
    return ModelEntry(name, role)


def _looks_chat(name: str) -> bool:
    try:
        from semcal.backends.models import resolve_model

        spec = resolve_model(name)
        for attr in ("is_chat", "chat"):
            if isinstance(getattr(spec, attr, None), bool):
                return bool(getattr(spec, attr))
    except Exception:  # unknown names fall back to the name heuristic
        pass
    low = name.lower()
    return any(t in low for t in ("instruct", "-it", "chat", "zephyr", "-dpo", "-sft", "-rl"))


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

    comps = spec.comparisons
    for m in spec.models:
        for ds in spec.datasets:
            if "styles" in comps and m.role == "base":
                for st in spec.styles:
                    add(m, ds, st, 1.0, "styles")
            if "tuning" in comps:
                for st in spec.styles:
                    add(m, ds, st, 1.0, "tuning")
            if "cot" in comps and m.role == "base":
                add(m, ds, "sentence", 1.0, "cot")
                add(m, ds, "cot", 1.0, "cot")
    if "temperature" in comps:
        tm = spec.model_entry(spec.temperature.model)
        for ds in spec.temperature.datasets or spec.datasets:
            for t in spec.temperature.values:
                add(tm, ds, spec.temperature.style, float(t), "temperature")
    out = []
    for (_, backend, ds, style, t), (m, _, _, _, cs) in wanted.items():
        rs = RunSpec(
            model=m.model,
            name=None,
            backend=backend,
            backend_options={**dict(spec.backend_options), **dict(m.backend_options)},
            dataset=ds,
            limit=spec.questions,
            style=style,
            k_shot=spec.k_shot,
            samples=spec.samples,
            temperature=float(t),
            max_tokens=spec.max_tokens.get(style),
            seed=spec.seed,
            collapse=spec.collapse,
            greedy=False,
            batch_questions=spec.batch_questions,
        )
        # the name carries a hash of the sampling settings: changing sizes or seeds makes a new
        # run in the same store instead of a name clash
        from semcal.store import spec_key

        tag = spec_key(rs.key_fields())[:6]
        rs = rs.replace(name=f"{spec.name}-{m.name}-{_dataset_name(ds)}-{style}-T{t:g}-{tag}")
        out.append(PlannedRun(rs, m, ds, style, float(t), tuple(c for c in COMPARISONS if c in cs)))
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


# ----------------------------------------------------------------------------- execution


def _run_complete(out: Path, spec: RunSpec) -> bool:
    """True when the store in ``out`` already holds every sample of ``spec`` (no model needed)."""
    from semcal.runner import load_spec_questions
    from semcal.store import Store, has_store, spec_key

    if not has_store(out):
        return False
    with Store(out) as store:
        info = store.find_run_by_key(spec_key(spec.key_fields()))
        if info is None:
            return False
        wanted = {q.id for q in load_spec_questions(spec)}
        return wanted <= store.done_ids(info.id)


def _open(backend: str, model: ModelEntry, options: Mapping[str, Any]) -> Any:
    from semcal.backends import get_sampler

    return get_sampler(backend, model.model, **{**dict(options), **dict(model.backend_options)})


def _cache_key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


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


def reproduce(
    spec: ExperimentSpec | str | os.PathLike[str] | None = None,
    out_dir: str | os.PathLike[str] = "semcal-reproduce",
    *,
    models: Sequence[str] | None = None,
    backend: str | None = None,
    datasets: Sequence[str] | None = None,
    comparisons: Sequence[str] | None = None,
    questions: int | None = None,
    samples: int | None = None,
    seed: int | None = None,
    n_boot: int | None = None,
    quiet: bool = False,
) -> ReproduceResult:
    """Run the paper's comparisons and theory diagnostics; write figures and numbers to ``out_dir``.

    Args:
        spec: an :class:`ExperimentSpec`, a path to an experiment TOML file, or None for the
            default (embedded models gemma-3-270m base and smollm2-135m-instruct on llama.cpp).
        out_dir: output directory: the sample store (``semcal.sqlite``, resumable), ``results.json``,
            ``summary.md`` and ``figures/*.png``.
        models: override the models, each ``"name"`` or ``"name:role"`` (role base|instruct|sft).
        backend, datasets, comparisons, questions, samples, seed, n_boot: override the spec.
        quiet: no progress output.

    Returns:
        A :class:`ReproduceResult`. Running it again with the same arguments reuses every stored
        sample and cached theory result, so an interrupted reproduction resumes.
    """
    t0 = time.monotonic()
    if spec is None:
        exp = ExperimentSpec()
    elif isinstance(spec, ExperimentSpec):
        exp = spec
    else:
        exp = load_experiment(spec)
    overrides: dict[str, Any] = {}
    if models:
        overrides["models"] = tuple(parse_model_arg(m) for m in models)
    if backend:
        overrides["backend"] = backend
    if datasets:
        overrides["datasets"] = tuple(datasets)
    if comparisons:
        overrides["comparisons"] = tuple(comparisons)
    if questions is not None:
        overrides["questions"] = questions
    if samples is not None:
        overrides["samples"] = samples
    if seed is not None:
        overrides["seed"] = seed
    if n_boot is not None:
        overrides["n_boot"] = n_boot
    if overrides:
        exp = dataclasses.replace(exp, **overrides)  # re-validated in __post_init__
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    result = ReproduceResult(out_dir=out, spec=exp)
    say = (lambda *a: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))

    planned = plan(exp)
    theory_models = []
    if "trajectories" in exp.comparisons:
        theory_models.append(exp.model_entry(exp.trajectories.model))
    if "selfpredict" in exp.comparisons:
        theory_models.append(exp.model_entry(exp.selfpredict.model))
    order: list[tuple[ModelEntry, str]] = []
    for m, b in [(p.model, p.spec.backend) for p in planned] + [
        (m, m.backend or exp.backend) for m in theory_models
    ]:
        if (m, b) not in order:
            order.append((m, b))

    # cheap runs first, then chain-of-thought, then the theory diagnostics: an interrupted
    # reproduction has the most results per minute spent, and results are written after
    # every phase
    phases: list[tuple[ModelEntry, str, list[PlannedRun], bool]] = []
    for cot_phase in (False, True):
        for m, b in order:
            runs = [p for p in planned if p.model == m and p.spec.backend == b
                    and (p.style == "cot") == cot_phase]
            if runs:
                phases.append((m, b, runs, False))
    phases += [(m, b, [], True) for m, b in order if m in theory_models]

    from semcal import runner
    from semcal.store import Store

    for m, b, runs, theory in phases:
        sampler = None
        try:
            for p in runs:
                done = _run_complete(out, p.spec)
                if sampler is None and not done:
                    say(f"[reproduce] opening {m.model} ({b})")
                    sampler = _open(b, m, exp.backend_options)
                say(f"[reproduce] run {p.label}" + (" (stored)" if done else ""))
                rr = runner.run(p.spec, out, sampler=None if done else sampler, quiet=quiet,
                                progress=not quiet)
                if rr.interrupted:
                    raise KeyboardInterrupt
                qids = [q.id for q in runner.load_spec_questions(p.spec)]
                with Store(out) as store:
                    # the one road from stored samples to numbers, as `semcal analyze` takes it
                    ana = analyze_run(store, rr.run_id, collapse=p.spec.collapse, grader="auto",
                                      estimators=[], n_boot=exp.n_boot, seed=exp.seed, only=qids)
                oc = RunOutcome(p, [q.qid for q in ana.questions],
                                np.asarray([q.confidence for q in ana.questions], dtype=float),
                                np.asarray([q.correct for q in ana.questions], dtype=bool))
                oc.metrics = {**ana.summary, "collapse": ana.collapse, "grader": ana.grader,
                              "audit": ana.audit}
                result.runs.append(oc)
            if theory:
                say(f"[reproduce] opening {m.model} ({b})")
                sampler = _open(b, m, exp.backend_options)
                _theory(exp, m, sampler, out, result, say)
        finally:
            if sampler is not None:
                sampler.close()
        result.seconds = time.monotonic() - t0
        _write(result)

    result.figures.update(make_figures(result, fig_dir))
    result.seconds = time.monotonic() - t0
    _write(result)
    say(f"[reproduce] wrote {out / 'summary.md'} ({result.seconds:.0f} s)")
    return result


def _write(result: ReproduceResult) -> None:
    """Write results.json and summary.md (called after every phase and at the end)."""
    out = result.out_dir
    write_text(out / "results.json", json.dumps(result.to_dict(), indent=1, default=_json_default))
    write_text(out / "summary.md", summary_markdown(result))


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (Path, frozenset, set)):
        return str(o) if isinstance(o, Path) else sorted(o)
    raise TypeError(type(o))


def _theory_questions(ds: str, limit: int) -> list:
    from semcal.runner import load_spec_questions

    return load_spec_questions(RunSpec(model="-", dataset=ds, limit=limit))


def _theory(
    exp: ExperimentSpec, m: ModelEntry, sampler: Any, out: Path, result: ReproduceResult,
    say: Callable[[str], None],
) -> None:
    """Run the trajectory and self-prediction diagnostics of model ``m`` (cached as JSON)."""
    from semcal.collapse import get_collapse
    from semcal.theory import selfpredict as sp
    from semcal.theory import trajectories as tj

    cache = out / "theory"
    cache.mkdir(exist_ok=True)
    collapse = get_collapse(exp.collapse)
    ts = exp.trajectories
    if "trajectories" in exp.comparisons and exp.model_entry(ts.model) == m:
        ds = ts.dataset or exp.datasets[0]
        qs = _theory_questions(ds, ts.questions)
        for style in ts.styles:
            key = _cache_key(["traj", m.model, sampler.model_name, ds, style, dataclasses.asdict(ts),
                              exp.seed, exp.k_shot, exp.collapse, exp.max_tokens.get(style)])
            f = cache / f"trajectories-{m.name}-{style}-{key}.json"
            if f.exists():
                res = tj.TrajectoryResult.from_dict(json.loads(f.read_text()))
            else:
                say(f"[reproduce] trajectories {m.name} · {_dataset_name(ds)} · {style}")
                res = tj.estimate_trajectories(
                    sampler, qs, style, collapse, n_samples=ts.samples,
                    n_continuations=ts.continuations, n_trajectories=ts.trajectories,
                    fractions=ts.fractions, absolute=ts.absolute,
                    max_tokens=ts.max_tokens or exp.max_tokens.get(style),
                    k_shot=exp.k_shot, seed=exp.seed,
                )
                write_text(f, json.dumps(res.to_dict()))
            summ = tj.summarize_trajectories(res, n_boot=exp.n_boot, seed=exp.seed)
            summ["dataset"] = ds
            result.trajectories[style] = {"summary": summ, "result": res}
    ss = exp.selfpredict
    if "selfpredict" in exp.comparisons and exp.model_entry(ss.model) == m:
        ds = ss.dataset or exp.datasets[0]
        qs = _theory_questions(ds, ss.questions)
        for style in ss.styles:
            key = _cache_key(["self", m.model, sampler.model_name, ds, style, dataclasses.asdict(ss),
                              exp.seed, exp.k_shot, exp.collapse, exp.max_tokens.get(style)])
            f = cache / f"selfpredict-{m.name}-{style}-{key}.json"
            if f.exists():
                rows = [sp.SelfPrediction(**r) for r in json.loads(f.read_text())]
            else:
                say(f"[reproduce] self-prediction {m.name} · {_dataset_name(ds)} · {style}")
                rows = sp.self_prediction(
                    sampler, qs, style, collapse, n_samples=ss.samples, top_k=ss.top_k,
                    max_tokens=ss.max_tokens or exp.max_tokens.get(style),
                    k_shot=exp.k_shot, seed=exp.seed,
                )
                write_text(f, json.dumps(sp.rows_to_dicts(rows)))
            summ = sp.summarize_self_prediction(rows, n_boot=exp.n_boot, seed=exp.seed)
            summ["dataset"] = ds
            summ["model"] = m.model
            result.selfpredict[style] = {"summary": summ, "rows": rows}


# ----------------------------------------------------------------------------- figures


def make_figures(result: ReproduceResult, fig_dir: Path) -> dict[str, Path]:
    """Draw every figure the results allow; returns name -> PNG path."""
    figs: dict[str, Path] = {}
    fig_dir.mkdir(parents=True, exist_ok=True)
    runs = result.runs
    for comp, title in (
        ("styles", "Base models: concise vs sentence"),
        ("tuning", "Base vs instruct-tuned"),
        ("cot", "Sentence vs chain-of-thought"),
        ("temperature", "Sampling temperature (base model)"),
    ):
        sel = [o for o in runs if comp in o.run.comparisons]
        if sel:
            figs[f"reliability_{comp}"] = plot_reliability_grid(
                sel, fig_dir / f"reliability_{comp}.png", title=title
            )
    scatter = [o for o in runs if o.run.temperature == 1.0 and o.metrics.get("n")]
    if scatter:
        figs["scatter"] = plot_smece_accuracy(scatter, fig_dir / "smece_vs_accuracy.png")
    temps = [o for o in runs if "temperature" in o.run.comparisons and o.metrics.get("n")]
    if temps:
        figs["temperature"] = plot_temperature(temps, fig_dir / "temperature.png")
    if result.trajectories:
        from semcal.theory.trajectories import plot_trajectories

        figs["trajectories"] = plot_trajectories(
            [v["result"] for v in result.trajectories.values()], fig_dir / "trajectories.png"
        )
    if result.selfpredict:
        from semcal.theory.selfpredict import plot_self_prediction

        figs["selfpredict"] = plot_self_prediction(
            {k: v["rows"] for k, v in result.selfpredict.items()}, fig_dir / "selfpredict.png"
        )
    return figs


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _smoothed_curve(conf: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed reliability curve (mesh, P(correct | conf)) at the smECE bandwidth."""
    from semcal.metrics.smece import smooth_reliability

    curve = smooth_reliability(conf, correct)
    return np.asarray(curve.mesh), np.asarray(curve.mu)


def plot_reliability_grid(outcomes: Sequence[RunOutcome], path: Path, title: str = "") -> Path:
    """Smoothed reliability diagrams side by side: one panel per (dataset, model role), one curve
    per condition in the panel; the smECE of each curve is in the legend. Small PNG."""
    plt = _plt()
    path.parent.mkdir(parents=True, exist_ok=True)
    panels: dict[str, list[RunOutcome]] = {}
    for o in outcomes:
        panels.setdefault(_dataset_name(o.run.dataset), []).append(o)
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(3.3 * n, 3.4), dpi=80, squeeze=False)
    for ax, (ds, items) in zip(axes[0], panels.items()):
        ax.plot([0, 1], [0, 1], "k--", lw=0.8)
        for o in sorted(items, key=lambda o: (o.run.model.role, o.run.style, o.run.temperature)):
            if not o.metrics.get("n"):
                continue
            grid, curve = _smoothed_curve(o.confidence, o.correct)
            t = "" if o.run.temperature == 1.0 else f" T={o.run.temperature:g}"
            lab = f"{o.run.model.name} {o.run.style}{t} ({o.metrics['smece']:.3f})"
            (line,) = ax.plot(grid, curve, lw=1.6, label=lab)
            ax.plot(o.confidence, np.full_like(o.confidence, -0.02), "|", color=line.get_color(),
                    alpha=0.4, ms=6)
        ax.set_title(ds, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.05, 1.02)
        ax.set_xlabel("semantic confidence")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="upper left", title="smECE", title_fontsize=6)
    axes[0][0].set_ylabel("accuracy (smoothed)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def plot_smece_accuracy(outcomes: Sequence[RunOutcome], path: Path) -> Path:
    """smECE against accuracy, one point per (model, dataset, style), coloured base/instruct/cot,
    with bootstrap-CI error bars."""
    plt = _plt()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4.6, 3.6), dpi=80)
    seen = set()
    for o in outcomes:
        g = o.run.group
        mt = o.metrics
        xe = np.abs(np.array(_ci(mt, "accuracy")) - mt["accuracy"])[:, None]
        ye = np.abs(np.array(_ci(mt, "smece")) - mt["smece"])[:, None]
        ax.errorbar(mt["accuracy"], mt["smece"], xerr=xe, yerr=ye, fmt="o", ms=5,
                    color=GROUP_COLORS[g], alpha=0.8, elinewidth=0.7,
                    label=g if g not in seen else None)
        seen.add(g)
        ax.annotate(f"{o.run.model.name[:10]}/{_dataset_name(o.run.dataset)[:5]}/{o.run.style[:4]}",
                    (mt["accuracy"], mt["smece"]), fontsize=5, alpha=0.7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("accuracy")
    ax.set_ylabel("smECE")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("smECE vs accuracy (95% bootstrap CIs)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


def plot_temperature(outcomes: Sequence[RunOutcome], path: Path) -> Path:
    """smECE and signed calibration error (mean confidence - accuracy) against temperature."""
    plt = _plt()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(7.2, 3.1), dpi=80)
    by_ds: dict[str, list[RunOutcome]] = {}
    for o in outcomes:
        by_ds.setdefault(_dataset_name(o.run.dataset), []).append(o)
    for ds, items in by_ds.items():
        items = sorted(items, key=lambda o: o.run.temperature)
        t = np.array([o.run.temperature for o in items])
        for ax, key in zip(axes, ("smece", "overconfidence")):
            v = np.array([o.metrics[key] for o in items])
            ci = np.array([_ci(o.metrics, key) for o in items])
            ax.errorbar(t, v, yerr=np.abs(ci.T - v), marker="o", ms=4, capsize=2, label=ds)
    axes[0].set_ylabel("smECE")
    axes[1].set_ylabel("mean confidence - accuracy")
    axes[1].axhline(0, color="k", lw=0.8)
    for ax in axes:
        ax.axvline(1.0, color="grey", ls=":", lw=0.8)
        ax.set_xlabel("sampling temperature T")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Temperature perturbation (>0: overconfident)", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- summary


def _fmt(v: Any, ci: Any = None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    s = f"{v:+.{digits}f}" if ci == "signed" else f"{v:.{digits}f}"
    return s


def _ci(m: Mapping[str, Any], key: str) -> list[float] | None:
    """The interval of ``key``: ``key_lo``/``key_hi`` (metrics.summarize) or ``key_ci``."""
    if f"{key}_lo" in m:
        return [m[f"{key}_lo"], m[f"{key}_hi"]]
    ci = m.get(f"{key}_ci")
    return list(ci) if ci else None


def _fmt_gain(mt: Mapping[str, Any]) -> str:
    g = mt.get("tilt_gain")
    if g is None or not math.isfinite(g):
        return "-"
    return f"{mt['tilt_gain']:+.3f} ± {mt['tilt_gain_se']:.3f}"


def _fmt_ci(m: Mapping[str, Any], key: str, signed: bool = False) -> str:
    v = m.get(key)
    ci = _ci(m, key)
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
        return "n/a"
    s = f"{v:+.3f}" if signed else f"{v:.3f}"
    if ci and all(isinstance(x, (int, float)) and math.isfinite(x) for x in ci):
        s += f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if signed else f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return s


def _pct(v: float) -> str:
    return "-" if v != v else f"{100 * v:.0f}%"


def summary_markdown(result: ReproduceResult) -> str:
    """Markdown tables of every measured number (95% bootstrap CIs in brackets)."""
    exp = result.spec
    lines = [
        f"# semcal reproduce: {exp.name}",
        "",
        f"Backend `{exp.backend}`; models: "
        + ", ".join(f"`{m.model}` ({m.role})" for m in exp.models)
        + f"; datasets: {', '.join(f'`{d}`' for d in exp.datasets)}; "
        f"up to {exp.questions} questions per dataset, M = {exp.samples} samples per question, "
        f"collapse `{exp.collapse}`, seed {exp.seed}, {exp.n_boot} bootstrap resamples. "
        f"Wall time {result.seconds:.0f} s.",
        "",
    ]
    if result.runs:
        lines += [
            "## Calibration per run",
            "",
            "| model | role | dataset | style | T | n | accuracy | mean conf. | conf. - acc. | smECE "
            "| tilt gain (nats) |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for o in sorted(result.runs, key=lambda o: (o.run.model.role, o.run.model.name,
                                                     _dataset_name(o.run.dataset), o.run.style,
                                                     o.run.temperature)):
            mt = o.metrics
            lines.append(
                f"| {o.run.model.name} | {o.run.model.role} | {_dataset_name(o.run.dataset)} | "
                f"{o.run.style} | {o.run.temperature:g} | {mt.get('n', 0)} | "
                f"{_fmt_ci(mt, 'accuracy')} | {_fmt_ci(mt, 'mean_confidence')} | "
                f"{_fmt_ci(mt, 'overconfidence', True)} | {_fmt_ci(mt, 'smece')} | "
                f"{_fmt_gain(mt)} |"
            )
        lines.append("")
        lines += [
            f"## How B (`{exp.collapse}`) grouped the samples",
            "",
            "| model | dataset | style | T | classes per question | singleton answer classes "
            "| no answer | refusals | ties |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for o in result.runs:
            au = o.metrics.get("audit") or {}
            if not au:
                continue
            lines.append(
                f"| {o.run.model.name} | {_dataset_name(o.run.dataset)} | {o.run.style} | "
                f"{o.run.temperature:g} | {au['classes_per_question']:.2f} | "
                f"{_pct(au['singleton_share'])} | {_pct(au['no_answer_rate'])} | "
                f"{_pct(au['refusal_rate'])} | {_pct(au['tie_rate'])} |"
            )
        lines.append("")
    if result.trajectories:
        lines += ["## Intermediate B-confidence trajectories", ""]
        for style, v in result.trajectories.items():
            s = v["summary"]
            lines += [
                f"**{style}** ({s['model']}, {_dataset_name(s['dataset'])}): {s['n_trajectories']} "
                f"trajectories, mean length {s['mean_length']:.1f} tokens, half of the initial "
                "uncertainty resolved at fraction "
                f"{'(never)' if s['half_resolution_fraction'] is None else s['half_resolution_fraction']}.",
                "",
                "| fraction i/n | mean g (ends in z*) | mean g (other) | Brier vs final | "
                "resolved share | AUROC(final = z*) | AUROC(final correct) |",
                "|---|---|---|---|---|---|---|",
            ]
            for r in s["rows"]:
                lines.append(
                    f"| {r['fraction']:.2f} | {_fmt(r['mean_g_final'])} | {_fmt(r['mean_g_other'])} | "
                    f"{_fmt_ci(r, 'brier')} | {_fmt(r['resolved_share'])} | "
                    f"{_fmt_ci(r, 'auroc_final')} | {_fmt_ci(r, 'auroc_correct')} |"
                )
            lines.append("")
    if result.selfpredict:
        lines += [
            "## Self-prediction from first-token probabilities",
            "",
            "| style | n | mean TV(sampled, implied) | mean KL | unmapped mass | "
            "corr(implied, sampled conf.) | smECE implied | smECE sampled |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for style, v in result.selfpredict.items():
            s = v["summary"]
            lines.append(
                f"| {style} | {s['n']} | {_fmt_ci(s, 'mean_tv')} | {_fmt_ci(s, 'mean_kl')} | "
                f"{_fmt(s.get('mean_unmapped'))} | {_fmt_ci(s, 'corr_confidence', True)} | "
                f"{_fmt(s.get('smece_implied'))} | {_fmt(s.get('smece_sampled'))} |"
            )
        lines.append("")
    if result.figures:
        lines += ["## Figures", ""]
        for name, p in result.figures.items():
            lines.append(f"- {name}: `{p}`")
        lines.append("")
    return "\n".join(lines)
