"""The run spec: what to sample (model × questions × style × sampling parameters × M).

A spec comes from a TOML file (``semcal run SPEC.toml``), from command-line flags, or
both (flags override the file). Example::

    name = "gemma-sentence"
    model = "gemma-3-270m"          # embedded short name, GGUF path or HF id
    backend = "llamacpp"
    dataset = "demo"                # bundled name or a file path
    style = "sentence"              # concise | sentence | cot
    samples = 20                    # M (the maximum M when adaptive)
    temperature = 1.0
    seed = 0
    model_estimators = false        # also P(True) and verbalised confidence (2 model calls/question)

    [adaptive]                      # optional: stop sampling a question early
    enabled = true
    round = 5
    epsilon = 0.1
    delta = 0.05

    [backend_options]               # passed to the backend constructor
    n_ctx = 2048

    [judge]                         # the judge model of collapse = "judge" / the judge grader
    model = "smollm2-135m-instruct" # embedded name, GGUF path, HF id or a server's model name
    backend = "llamacpp"            # llamacpp | hf | vllm | openai
    base_url = "http://127.0.0.1:8080/v1"   # openai backend only

    [executor]                      # optional: where the sampling runs (not part of the key)
    kind = "ray"                    # local (default) | ray: data-parallel over Ray actors
    address = "auto"                # a running cluster (auto | HOST:PORT); none: a local one
    workers = 4                     # actors, each with its own model
    num_cpus = 1                    # resources of one actor
    num_gpus = 0
    shard_questions = 8             # questions handed to an actor at a time

Every value is checked here, so a bad spec fails before any model is loaded, with a message
naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semcal.errors import InputError
from semcal.limits import BOUNDS, MAX_SPEC_BYTES, check_int, regular_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from semcal.backends.models import EMBEDDED
from semcal.prompts import default_max_tokens
from semcal.prompts.styles import STYLES  # noqa: E402 - the one definition of the styles


@dataclass(frozen=True)
class AdaptiveSpec:
    """Adaptive sampling settings (see :mod:`semcal.runner`).

    Sample ``round`` completions at a time; stop a question once the Wilson interval of its
    plurality share has half-width <= ``epsilon`` at confidence ``1 - delta`` (``delta`` is
    split over the possible looks), or when ``samples`` (M) is reached. ``min_samples``
    is the least number of samples any question gets.
    """

    enabled: bool = False
    round: int = 5
    epsilon: float = 0.1
    delta: float = 0.05
    min_samples: int = 10



def check_keys(
    data: Mapping[str, Any], cls: type, where: str | None, table: str | None = None,
    label: str | None = None,
) -> None:
    """Reject keys of ``data`` that are not fields of the dataclass ``cls``, naming the known
    ones. ``table``: the TOML table they sit in; ``label``: a prefix such as ``models[2]``."""
    known = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(data) - known)
    if bad:
        head = f"unknown key(s) in [{table}]: " if table else "unknown key(s) "
        raise InputError(
            f"{label + ': ' if label else ''}{head}{', '.join(map(repr, bad))} "
            f"(known: {', '.join(sorted(known))})",
            where=where,
        )


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """Parse a TOML file (a spec of some kind); every failure is one InputError naming it."""
    if not path.exists() or path.is_dir():
        raise InputError(f"{what} not found: {path}" + (" is a folder" if path.is_dir() else ""))
    regular_file(path, what)  # a FIFO or a device: refused before it is opened
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_SPEC_BYTES + 1)
        if len(raw) > MAX_SPEC_BYTES:
            raise InputError(f"a {what} over {MAX_SPEC_BYTES >> 20} MiB is not a spec",
                             where=str(path))
        return tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"malformed TOML: {exc}", where=str(path)) from None
    except RecursionError:
        raise InputError("malformed TOML: nested too deeply", where=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {what}: {exc}", where=str(path)) from None

@dataclass(frozen=True)
class JudgeSpec:
    """The judge model of the judge B and the judge grader: any semcal backend.

    ``base_url`` goes to the ``openai`` backend; ``backend_options`` to any backend.
    """

    model: str
    backend: str = "llamacpp"
    base_url: str | None = None
    backend_options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("model", "backend"):
            v = getattr(self, name)
            if not isinstance(v, str) or not v.strip():
                raise InputError(f"judge.{name} must be a non-empty string, got {v!r}")
        if self.base_url is not None and (not isinstance(self.base_url, str)
                                          or not self.base_url.startswith(("http://", "https://"))):
            raise InputError(f"judge.base_url must be an http(s) URL, got {self.base_url!r}")
        if self.base_url is not None and not _backend_flag(self.backend, "server"):
            raise InputError("judge.base_url needs a server backend (judge.backend = \"openai\")")
        if not isinstance(self.backend_options, Mapping):
            raise InputError("judge.backend_options must be a table")

    def options(self) -> dict[str, Any]:
        """Keyword options for :func:`semcal.backends.get_sampler`."""
        opts = dict(self.backend_options)
        if self.base_url is not None:
            opts["base_url"] = self.base_url
        return opts

    @classmethod
    def parse(cls, data: Any, where: str | None = None) -> JudgeSpec | None:
        """A judge from a ``[judge]`` table (None stays None)."""
        if data is None or isinstance(data, JudgeSpec):
            return data
        if not isinstance(data, Mapping):
            raise InputError("'judge' must be a table", where=where)
        check_keys(data, cls, where, table="judge")
        if "model" not in data:
            raise InputError("[judge] has no 'model'", where=where)
        try:
            return cls(**dict(data))
        except InputError as exc:
            raise InputError(str(exc), where=where) from None


EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class ExecutorSpec:
    """Where a run's sampling happens: in this process (``local``) or on Ray actors (``ray``,
    see :mod:`semcal.ray_executor`). Not part of the run key: the samples are the same."""

    kind: str = "local"
    address: str | None = None
    workers: int = 2
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    shard_questions: int = 8

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise InputError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.kind!r}")
        if self.address is not None and (not isinstance(self.address, str)
                                         or not self.address.strip()):
            raise InputError(f"executor.address must be auto or HOST:PORT, got {self.address!r}")
        for name in ("workers", "shard_questions"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"executor.{name} must be an integer in "
                                 f"1..{BOUNDS[name].high}, got {v!r}")
            check_int(name, v, label=f"executor.{name}")
        for name in ("num_cpus", "num_gpus"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
                0 <= v <= 4096 and math.isfinite(v)
            ):
                raise InputError(f"executor.{name} must be a number in 0..4096, got {v!r}")

    @classmethod
    def parse(cls, data: Any, where: str | None) -> ExecutorSpec:
        if data is None:
            return cls()
        if isinstance(data, ExecutorSpec):
            return data
        if isinstance(data, str):
            data = {"kind": data}
        if not isinstance(data, Mapping):
            raise InputError("'executor' must be local, ray or a table", where=where)
        check_keys(data, cls, where, table="executor")
        try:
            return cls(**dict(data))
        except InputError as exc:
            raise InputError(str(exc), where=where) from None


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run. See the module docstring for the TOML form."""

    model: str
    name: str | None = None
    backend: str = "llamacpp"
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    dataset: str = "demo"
    format: str | None = None
    task: str | None = None
    limit: int | None = None
    style: str = "sentence"
    k_shot: int = 5
    samples: int = 20
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = None
    seed: int = 0
    collapse: str = "auto"
    greedy: bool = True
    batch_questions: int = 1
    adaptive: AdaptiveSpec = field(default_factory=AdaptiveSpec)
    #: after a question's samples are stored, ask the model for P(True) and its verbalised
    #: confidence in the plurality answer (two extra calls per question; not part of the key)
    model_estimators: bool = False
    #: the judge model for collapse = "judge" (not part of the key: it does not change samples)
    judge: JudgeSpec | None = None
    #: where the sampling runs (not part of the key: it does not change samples)
    executor: ExecutorSpec = field(default_factory=ExecutorSpec)

    def __post_init__(self) -> None:
        validate(self)

    # -- conversions

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["backend_options"] = dict(self.backend_options)
        if self.judge is None:
            d.pop("judge")
        else:
            d["judge"]["backend_options"] = dict(self.judge.backend_options)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str | None = None) -> RunSpec:
        """Build a spec from a plain mapping (a parsed TOML file, a stored spec)."""
        data = dict(data)
        check_keys(data, cls, where)
        if "model" not in data:
            raise InputError("the spec has no 'model'", where=where)
        adaptive = data.pop("adaptive", None)
        if adaptive is None:
            ad = AdaptiveSpec()
        elif isinstance(adaptive, bool):
            ad = AdaptiveSpec(enabled=adaptive)
        elif isinstance(adaptive, Mapping):
            check_keys(adaptive, AdaptiveSpec, where, table="adaptive")
            ad = AdaptiveSpec(**{"enabled": True, **dict(adaptive)})
        else:
            raise InputError("'adaptive' must be true/false or a table", where=where)
        bo = data.get("backend_options", {})
        if not isinstance(bo, Mapping):
            raise InputError("'backend_options' must be a table", where=where)
        data["judge"] = JudgeSpec.parse(data.get("judge"), where)
        data["executor"] = ExecutorSpec.parse(data.get("executor"), where)
        try:
            return cls(**data, adaptive=ad)
        except InputError as exc:
            if where and not exc.where:
                raise InputError(str(exc), where=where) from None
            raise

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str], **overrides: Any) -> RunSpec:
        """Read a spec file; ``overrides`` (not None) replace its values (command-line flags)."""
        p = Path(path)
        data = read_toml(p, "spec file")
        # a relative dataset path is relative to the spec file
        ds = data.get("dataset")
        if isinstance(ds, str) and ("/" in ds or ds.endswith((".jsonl", ".json", ".csv", ".parquet"))):
            cand = (p.parent / ds)
            if not Path(ds).is_absolute() and cand.exists():
                data["dataset"] = str(cand)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data, where=str(p))

    def replace(self, **changes: Any) -> RunSpec:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    # -- derived

    @property
    def run_name(self) -> str:
        """The run's name in the store (``name`` or ``<model>-<style>[-adaptive]``)."""
        if self.name:
            return self.name
        base = Path(self.model).stem if self.model.endswith(".gguf") else self.model.split("/")[-1]
        suffix = "-adaptive" if self.adaptive.enabled else ""
        return f"{base}-{self.style}{suffix}"

    def resolved_max_tokens(self) -> int:
        if self.max_tokens is not None:
            return self.max_tokens

        return int(default_max_tokens(self.style))

    def dataset_id(self) -> str:
        """The dataset as recorded in the run key: an absolute path for files, else the name."""
        p = Path(self.dataset)
        return str(p.resolve()) if p.exists() else self.dataset

    def model_id(self) -> str:
        """The model as recorded in the run key: an absolute path for a local model file or
        folder (``m.gguf``, ``./m.gguf`` and ``/abs/m.gguf`` are one run, resumable from any
        directory), the canonical name for an embedded model, else the name as given (a
        server's model name, a hub id)."""
        if _backend_flag(self.backend, "server"):
            return self.model

        key = self.model.strip().lower()
        if key in EMBEDDED:
            return EMBEDDED[key].name
        p = Path(self.model).expanduser()
        if p.exists() or self.model.endswith(".gguf"):
            return str(p.resolve())
        return self.model

    def key_fields(self, *, legacy_model: bool = False) -> dict[str, Any]:
        """The fields that change the samples: equal fields = the same run (resume).
        ``legacy_model``: the model as given, as keys of semcal before 0.1.1 had it."""
        d: dict[str, Any] = {
            "model": self.model if legacy_model else self.model_id(),
            "backend": self.backend,
            "dataset": self.dataset_id(),
            "format": self.format,
            "task": self.task,
            "style": self.style,
            "k_shot": self.k_shot,
            "samples": self.samples,
            "temperature": float(self.temperature),
            "top_p": float(self.top_p),
            "max_tokens": self.resolved_max_tokens(),
            "seed": self.seed,
            "seed_mode": "question" if self.batch_questions == 1 else "round",
        }
        if self.adaptive.enabled:
            d["adaptive"] = dataclasses.asdict(self.adaptive)
            d["collapse"] = self.collapse
        return d


def _int(name: str, v: Any, lo: int | None = None) -> None:
    """An integer field within its bounds (:data:`semcal.limits.BOUNDS`)."""
    check_int(name, v, lo)


def _num(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise InputError(f"{name} must be a finite number, got {v!r}")
    return float(v)


def validate(spec: RunSpec) -> None:
    """Check every field of a spec; raise :class:`InputError` naming the bad one."""
    for name in ("model", "backend", "dataset", "style", "collapse"):
        v = getattr(spec, name)
        if not isinstance(v, str) or not v.strip():
            raise InputError(f"{name} must be a non-empty string, got {v!r}")
    if spec.name is not None and (not isinstance(spec.name, str) or not spec.name.strip()):
        raise InputError(f"name must be a non-empty string, got {spec.name!r}")
    if spec.style not in STYLES:
        raise InputError(f"unknown style {spec.style!r} (known: {', '.join(STYLES)})")
    _int("samples", spec.samples, 1)
    _int("k_shot", spec.k_shot, 0)
    _int("seed", spec.seed, 0)
    _int("batch_questions", spec.batch_questions, 1)
    if spec.limit is not None:
        _int("limit", spec.limit, 1)
    if spec.max_tokens is not None:
        _int("max_tokens", spec.max_tokens, 1)
    t = _num("temperature", spec.temperature)
    if t < 0:
        raise InputError(f"temperature must be >= 0, got {spec.temperature}")
    p = _num("top_p", spec.top_p)
    if not 0 < p <= 1:
        raise InputError(f"top_p must be in (0, 1], got {spec.top_p}")
    if not isinstance(spec.greedy, bool):
        raise InputError(f"greedy must be true or false, got {spec.greedy!r}")
    if not isinstance(spec.model_estimators, bool):
        raise InputError(
            f"model_estimators must be true or false, got {spec.model_estimators!r}"
        )
    for name in ("format", "task"):
        v = getattr(spec, name)
        if v is not None and (not isinstance(v, str) or not v.strip()):
            raise InputError(f"{name} must be a non-empty string, got {v!r}")
    validate_adaptive(spec.adaptive)
    if spec.judge is not None and not isinstance(spec.judge, JudgeSpec):
        raise InputError(f"judge must be a JudgeSpec, got {type(spec.judge).__name__}")
    if spec.judge is None and _uses_judge(spec.collapse):
        raise InputError(f'collapse = "{spec.collapse}" needs a [judge] table naming the judge model')
    if spec.adaptive.enabled and spec.temperature == 0:
        raise InputError("adaptive sampling needs temperature > 0 (greedy samples are all equal)")


def validate_adaptive(ad: AdaptiveSpec) -> None:
    """Check adaptive-sampling settings; raise :class:`InputError` naming the bad one."""
    if not isinstance(ad.enabled, bool):
        raise InputError(f"adaptive.enabled must be true or false, got {ad.enabled!r}")
    _int("adaptive.round", ad.round, 1)
    _int("adaptive.min_samples", ad.min_samples, 1)
    eps = _num("adaptive.epsilon", ad.epsilon)
    if not 0 < eps < 0.5:
        raise InputError(f"adaptive.epsilon must be in (0, 0.5), got {ad.epsilon}")
    d = _num("adaptive.delta", ad.delta)
    if not 0 < d < 1:
        raise InputError(f"adaptive.delta must be in (0, 1), got {ad.delta}")


def _backend_flag(backend: Any, key: str) -> bool:
    """Whether ``backend`` was registered with the metadata ``key`` true."""
    from semcal.backends import BACKENDS

    return BACKENDS.flag(backend, key)


def _uses_judge(collapse: Any) -> bool:
    """Whether the B ``collapse`` needs a judge model (its registration says so)."""
    from semcal.collapse import uses_judge  # the registry, read when a spec is checked

    return isinstance(collapse, str) and uses_judge(collapse)
