"""Experiment specs: which models (with their roles), datasets and comparisons a
reproduction runs; read from TOML (``experiments/*.toml``) and checked."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semcal.backends.models import resolve_model
from semcal.collapse import COLLAPSES
from semcal.errors import InputError
from semcal.limits import MAX_LIST_ITEMS, check_int
from semcal.spec import STYLES, ExecutorSpec, JudgeSpec, check_keys, read_toml

#: the built-in comparisons, every one run by default (the registry of what each needs, and
#: of comparisons added from outside, is semcal.reproduce.comparisons.COMPARISON_REGISTRY)
COMPARISONS = ("styles", "tuning", "cot", "temperature", "trajectories", "selfpredict")
ROLES = ("base", "instruct", "sft")
#: colour groups of the smECE-vs-accuracy scatter
GROUPS = ("base", "instruct", "cot")
GROUP_COLORS = {"base": "#1f77b4", "instruct": "#d62728", "cot": "#2ca02c"}

#: the most Bs one experiment compares (``collapse = ["auto", "exact", ...]``), as
#: ``semcal analyze --collapse``: each is a full analysis of every run
MAX_BS = 8

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
    #: chat prompts (the model's chat template) or text prompts; default: from the role
    #: (base -> text, instruct/sft -> chat), never guessed from the model's name
    chat: bool | None = None

    def __post_init__(self) -> None:
        if self.chat is not None and not isinstance(self.chat, bool):
            raise InputError(f"model {self.model!r}: chat must be true or false, got {self.chat!r}")
        if not isinstance(self.model, str) or not self.model.strip():
            raise InputError(f"model must be a non-empty string, got {self.model!r}")
        if self.role not in ROLES:
            raise InputError(f"model {self.model!r}: role must be one of {ROLES}, got {self.role!r}")

    @property
    def is_chat(self) -> bool:
        """Whether this model gets chat prompts: ``chat`` when given, else ``role != base``."""
        return self.chat if self.chat is not None else self.role != "base"

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
class CotSpec:
    """The direct-vs-reasoning comparison: which styles it sets side by side, and for which
    model roles (the paper's finding 3 is about base models; an instruct model that solves the
    questions shows it too, with the direct answer in the concise style)."""

    styles: tuple[str, ...] = ("sentence", "cot")
    roles: tuple[str, ...] = ("base",)


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
    #: the model roles the ``styles`` comparison runs (the paper's finding 1 is about base
    #: models; an instruct model's styles can be set side by side the same way)
    style_roles: tuple[str, ...] = ("base",)
    questions: int | None = 40  # per dataset (None: all)
    samples: int = 10  # M
    seed: int = 0
    #: the B, or a list of Bs: the first is the primary B (its numbers fill the tables); the
    #: others analyse the same samples again, and the summary says where they change a verdict
    collapse: str | tuple[str, ...] = "auto"
    k_shot: int = 5
    max_tokens: Mapping[str, int] = field(default_factory=lambda: {"cot": 128})  # per style
    n_boot: int = 1000
    # questions per sample() call. Keep 1: with more, the runner gives the questions of a batch
    # one shared seed, so their samples use the same random draws (correlated confidences).
    batch_questions: int = 1
    #: the judge model of collapse = "judge" (the paper's LLM answer extraction)
    judge: JudgeSpec | None = None
    #: where each model's sampler lives: a Ray actor per model (``kind = "ray"``, and always
    #: for ``backend = "vllm"``: one engine per process, its GPU memory freed with it), with
    #: ``workers`` actors sharing a run's questions
    executor: ExecutorSpec | None = None
    temperature: TemperatureSpec = field(default_factory=TemperatureSpec)
    cot: CotSpec = field(default_factory=CotSpec)
    trajectories: TrajectorySpec = field(default_factory=TrajectorySpec)
    selfpredict: SelfPredictSpec = field(default_factory=SelfPredictSpec)

    def __post_init__(self) -> None:
        _validate(self)

    # -- derived
    @property
    def collapses(self) -> tuple[str, ...]:
        """Every B of the experiment, the primary first."""
        return (self.collapse,) if isinstance(self.collapse, str) else tuple(self.collapse)

    @property
    def primary_collapse(self) -> str:
        """The B the runs are sampled and tabulated with (the first of :attr:`collapses`)."""
        return self.collapses[0]

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
    from semcal.reproduce.comparisons import COMPARISON_REGISTRY  # (it imports nothing of ours)

    for c in s.comparisons:
        COMPARISON_REGISTRY.lookup(c)  # an unknown name: one InputError naming the known ones
    for st in (*s.styles, *s.trajectories.styles, *s.selfpredict.styles, s.temperature.style,
               *s.cot.styles):
        if st not in STYLES:
            raise InputError(f"unknown style {st!r} (known: {', '.join(STYLES)})")
    for k, v in s.max_tokens.items():
        if k not in STYLES:
            raise InputError(f"max_tokens.{k} must be a style name with an integer >= 1, got {v!r}")
        check_int("max_tokens", v, label=f"max_tokens.{k}")
    for part in ("trajectories", "selfpredict"):
        mt = getattr(s, part).max_tokens
        if mt is not None:
            check_int("max_tokens", mt, label=f"{part}.max_tokens")
    for name, v in (
        ("samples", s.samples),
        ("batch_questions", s.batch_questions),
        ("seed", s.seed),
        ("k_shot", s.k_shot),
        ("trajectories.questions", s.trajectories.questions),
        ("trajectories.samples", s.trajectories.samples),
        ("trajectories.continuations", s.trajectories.continuations),
        ("trajectories.trajectories", s.trajectories.trajectories),
        ("selfpredict.questions", s.selfpredict.questions),
        ("selfpredict.samples", s.selfpredict.samples),
        ("selfpredict.top_k", s.selfpredict.top_k),
    ):
        check_int(name, v)
    check_int("n_boot", s.n_boot, low=1)
    if s.questions is not None:
        check_int("questions", s.questions)
    _check_lengths(s)
    _check_collapses(s)
    if s.trajectories.trajectories > s.trajectories.samples:
        raise InputError("trajectories.trajectories cannot exceed trajectories.samples")
    for t in s.temperature.values:
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
            raise InputError(f"temperature values must be numbers > 0, got {t!r}")
    for f in s.trajectories.fractions:
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 <= f <= 1:
            raise InputError(f"trajectories.fractions must lie in [0, 1], got {f!r}")
    for a in s.trajectories.absolute:
        check_int("max_tokens", a, low=0, label="trajectories.absolute")
    if len(set(s.cot.styles)) < 2 or len(s.cot.styles) > MAX_LIST_ITEMS:
        raise InputError(f"cot.styles must name 2 or more different styles, got {list(s.cot.styles)}")
    for label, roles in (("cot.roles", s.cot.roles), ("style_roles", s.style_roles)):
        for r in roles:
            if r not in ROLES:
                raise InputError(f"{label}: unknown role {r!r} (known: {', '.join(ROLES)})")
    if "tuning" in s.comparisons and not any(m.role != "base" for m in s.models):
        raise InputError("the 'tuning' comparison needs at least one instruct/sft model")


def _check_lengths(s: ExperimentSpec) -> None:
    """Every list of the spec within :data:`semcal.limits.MAX_LIST_ITEMS` (each item is a run
    or a pass over the questions)."""
    for name, items in (("models", s.models), ("datasets", s.datasets),
                        ("temperature.values", s.temperature.values),
                        ("trajectories.fractions", s.trajectories.fractions),
                        ("trajectories.absolute", s.trajectories.absolute)):
        if len(items) > MAX_LIST_ITEMS:
            raise InputError(f"{name} has {len(items)} entries; at most {MAX_LIST_ITEMS} "
                             "(each is a run or a pass over the questions)")


def _check_collapses(s: ExperimentSpec) -> None:
    """``collapse``: one known B, or a list of 1 to :data:`MAX_BS` different known Bs."""
    bs = s.collapse if isinstance(s.collapse, (list, tuple)) else (s.collapse,)
    if not 1 <= len(bs) <= MAX_BS:
        raise InputError(f"collapse: give 1 to {MAX_BS} Bs, got {len(bs)}")
    for b in bs:
        if not isinstance(b, str) or not b.strip():
            raise InputError(f"collapse must be a B's name or a list of them, got {b!r}")
        COLLAPSES.lookup(b)
    if len(set(bs)) != len(bs):
        raise InputError(f"collapse lists a B twice: {list(bs)}")
    if "judge" in bs and s.judge is None:
        raise InputError('collapse "judge" needs a [judge] table naming the judge model')


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
            "styles", "fractions", "absolute", "values", "datasets", "roles"
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
            elif k in ("datasets", "comparisons", "styles", "style_roles"):
                kw[k] = tuple(str(x) for x in _tuple(v, k, where))
            elif k == "collapse" and isinstance(v, list):
                kw[k] = tuple(v)  # checked with the spec (names, length, no repeats)
            elif k == "temperature":
                kw[k] = _sub(TemperatureSpec, v, k, where)
            elif k == "cot":
                kw[k] = _sub(CotSpec, v, k, where)
            elif k == "trajectories":
                kw[k] = _sub(TrajectorySpec, v, k, where)
            elif k == "selfpredict":
                kw[k] = _sub(SelfPredictSpec, v, k, where)
            elif k == "judge":
                kw[k] = JudgeSpec.parse(v, where)
            elif k == "executor":
                kw[k] = ExecutorSpec.parse(v, where)
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
        spec = resolve_model(name)
        for attr in ("is_chat", "chat"):
            if isinstance(getattr(spec, attr, None), bool):
                return bool(getattr(spec, attr))
    except Exception:  # unknown names fall back to the name heuristic
        pass
    low = name.lower()
    return any(t in low for t in ("instruct", "-it", "chat", "zephyr", "-dpo", "-sft", "-rl"))
