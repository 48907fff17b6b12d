"""The ``reproduce`` driver: plan the runs, sample them with the runner into one store
(resumable), score each through the one analysis (:func:`semcal.analysis.analyze_run`), run
the theory diagnostics, and write results.json, summary.md and the figures."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from semcal import runner
from semcal.analysis import analyze_run
from semcal.backends import BACKENDS, get_sampler
from semcal.collapse import collapse_for, collapse_key
from semcal.executors import open_executor
from semcal.files import write_text
from semcal.grade import get_grader
from semcal.reproduce.figures import make_figures
from semcal.reproduce.plan import PlannedRun, ReproduceResult, RunOutcome, _dataset_name, plan
from semcal.reproduce.spec import ExperimentSpec, ModelEntry, load_experiment, parse_model_arg
from semcal.reproduce.summary import b_sensitivity, summary_markdown
from semcal.runner import load_spec_questions
from semcal.spec import ExecutorSpec, RunSpec
from semcal.store import Store, has_store, spec_key
from semcal.theory import selfpredict as sp
from semcal.theory import trajectories as tj

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- execution


def _run_complete(out: Path, spec: RunSpec) -> bool:
    """True when the store in ``out`` already holds every sample of ``spec`` (no model needed)."""

    if not has_store(out):
        return False
    with Store(out) as store:
        info = store.find_run_by_key(spec_key(spec.key_fields()))
        if info is None:
            return False
        wanted = {q.id for q in load_spec_questions(spec)}
        return wanted <= store.done_ids(info.id)


def _open(backend: str, model: ModelEntry, options: Mapping[str, Any],
          executor: ExecutorSpec | None = None) -> Any:
    """The sampler of one model. With a Ray executor (always for vLLM) the engine lives in its
    own actor process(es): closing the pool kills them, so one model's GPU memory is certainly
    free before the next model starts (engines sharing one process did not free it)."""

    # chat or text prompts from the model's role (or its explicit chat field), not its name
    kw = {"chat": model.is_chat, **dict(options), **dict(model.backend_options)}
    if executor is None and BACKENDS.flag(backend, "ray_by_default"):
        executor = ExecutorSpec(kind="ray", workers=1, num_gpus=1)
    if executor is not None and executor.kind != "local":
        return open_executor(RunSpec(model=model.model, backend=backend, backend_options=kw,
                                     executor=executor))
    return get_sampler(backend, model.model, **kw)


def _cache_key(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]



def _experiment(
    spec: ExperimentSpec | str | os.PathLike[str] | None,
    *,
    models: Sequence[str] | None,
    backend: str | None,
    datasets: Sequence[str] | None,
    comparisons: Sequence[str] | None,
    questions: int | None,
    samples: int | None,
    seed: int | None,
    n_boot: int | None,
) -> ExperimentSpec:
    """The experiment to run: ``spec`` (default, object or TOML path) with the overrides applied."""
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
    return exp


def _phases(
    exp: ExperimentSpec, planned: list[PlannedRun]
) -> list[tuple[ModelEntry, str, list[PlannedRun], bool]]:
    """The order of work: (model, backend, its runs, whether to run the theory diagnostics)."""
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
    return phases


def _run_phase(exp: ExperimentSpec, m: ModelEntry, b: str, runs: list[PlannedRun], theory: bool,
               out: Path, result: ReproduceResult, say: Callable[[str], None], quiet: bool) -> None:
    """Sample one phase's runs (opening the model only when one is not stored) or its theory."""
    sampler = None
    try:
        for p in runs:
            done = _run_complete(out, p.spec)
            if sampler is None and not done:
                say(f"[reproduce] opening {m.model} ({b})")
                sampler = _open(b, m, exp.backend_options, exp.executor)
            say(f"[reproduce] run {p.label}" + (" (stored)" if done else ""))
            rr = runner.run(p.spec, out, sampler=None if done else sampler, quiet=quiet,
                            progress=not quiet)
            if rr.interrupted:
                raise KeyboardInterrupt
            result.runs.append(_outcome(exp, p, out, rr.run_id))
        if theory:
            say(f"[reproduce] opening {m.model} ({b})")
            sampler = _open(b, m, exp.backend_options, exp.executor)
            _theory(exp, m, sampler, out, result, say)
    finally:
        if sampler is not None:
            sampler.close()


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
    exp = _experiment(spec, models=models, backend=backend, datasets=datasets,
                      comparisons=comparisons, questions=questions, samples=samples, seed=seed,
                      n_boot=n_boot)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    result = ReproduceResult(out_dir=out, spec=exp)
    say = (lambda *a: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))

    for m, b, runs, theory in _phases(exp, plan(exp)):
        _run_phase(exp, m, b, runs, theory, out, result, say, quiet)
        result.seconds = time.monotonic() - t0
        _write(result)

    result.figures.update(make_figures(result, fig_dir))
    result.seconds = time.monotonic() - t0
    _write(result)
    say(f"[reproduce] wrote {out / 'summary.md'} ({result.seconds:.0f} s)")
    return result


def _outcome(exp: ExperimentSpec, p: PlannedRun, out: Path, run_id: int) -> RunOutcome:
    """The numbers of one sampled run under the primary B, and under each further B of the
    experiment from the same stored samples (nothing is sampled again)."""
    qids = [q.id for q in runner.load_spec_questions(p.spec)]
    with Store(out) as store:
        # the one road from stored samples to numbers, as `semcal analyze` takes it
        analyses = [analyze_run(store, run_id, collapse=b, grader=THEORY_GRADER, estimators=[],
                                n_boot=exp.n_boot, seed=exp.seed, only=qids)
                    for b in (p.spec.collapse, *exp.collapses[1:])]
    ana = analyses[0]
    oc = RunOutcome(p, [q.qid for q in ana.questions],
                    np.asarray([q.confidence for q in ana.questions], dtype=float),
                    np.asarray([q.correct for q in ana.questions], dtype=bool))
    oc.metrics = _metrics(ana)
    oc.by_collapse = {a.collapse: _metrics(a) for a in analyses[1:]}
    return oc


def _metrics(ana: Any) -> dict[str, Any]:
    """A run's summary under one B, with its B audit and, when the run has hand labels
    (``semcal label``), its B check and the B's name as the check names it."""
    m = {**ana.summary, "collapse": ana.collapse, "grader": ana.grader, "audit": ana.audit}
    if ana.b_check is not None:
        m.update(b_check=ana.b_check, collapse_label=ana.collapse_label)
    return m


def _write(result: ReproduceResult) -> None:
    """Write results.json and summary.md (called after every phase and at the end)."""
    out = result.out_dir
    data = result.to_dict()
    if len(result.spec.collapses) > 1:
        data["b_sensitivity"] = b_sensitivity(result)
    write_text(out / "results.json", json.dumps(data, indent=1, default=_json_default))
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
    return load_spec_questions(RunSpec(model="-", dataset=ds, limit=limit))


#: the grader of the reproduction's runs (``analyze_run(..., grader="auto")`` above) and so of
#: its theory diagnostics
THEORY_GRADER = "auto"


def _theory(
    exp: ExperimentSpec, m: ModelEntry, sampler: Any, out: Path, result: ReproduceResult,
    say: Callable[[str], None],
) -> None:
    """Run the trajectory and self-prediction diagnostics of model ``m`` (cached as JSON)."""

    cache = out / "theory"
    cache.mkdir(exist_ok=True)
    # the B and grader the runs are analysed with: B read with each style, the auto grader
    # (the primary B when the spec lists several)
    primary = exp.collapse if isinstance(exp.collapse, str) else exp.collapse[0]
    collapses: dict[str, Any] = {}

    def collapse(style: str) -> Any:
        if style not in collapses:
            collapses[style] = collapse_for(primary, style=style, judge=exp.judge)
        return collapses[style]

    grader = get_grader(THEORY_GRADER)

    def cached(kind: str, settings: Any, ds: str, style: str, compute: Callable[[], Any],
               dump: Callable[[Any], Any], load: Callable[[Any], Any]) -> Any:
        """A diagnostic's result from the JSON cache, or computed (and cached) now."""
        key = _cache_key([kind, m.model, sampler.model_name, ds, style,
                          dataclasses.asdict(settings), exp.seed, exp.k_shot,
                          collapse_key(primary), THEORY_GRADER, exp.max_tokens.get(style)])
        name = {"traj": "trajectories", "self": "selfpredict"}[kind]
        f = cache / f"{name}-{m.name}-{style}-{key}.json"
        if f.exists():
            return load(json.loads(f.read_text()))
        say(f"[reproduce] {name} {m.name} · {_dataset_name(ds)} · {style}")
        res = compute()
        write_text(f, json.dumps(dump(res)))
        return res

    ts = exp.trajectories
    if "trajectories" in exp.comparisons and exp.model_entry(ts.model) == m:
        ds = ts.dataset or exp.datasets[0]
        qs = _theory_questions(ds, ts.questions)
        for style in ts.styles:
            res = cached(
                "traj", ts, ds, style,
                lambda style=style, qs=qs: tj.estimate_trajectories(
                    sampler, qs, style, collapse(style), samples=ts.samples,
                    n_continuations=ts.continuations, n_trajectories=ts.trajectories,
                    fractions=ts.fractions, absolute=ts.absolute,
                    max_tokens=ts.max_tokens or exp.max_tokens.get(style),
                    k_shot=exp.k_shot, seed=exp.seed, grader=grader),
                lambda r: r.to_dict(), tj.TrajectoryResult.from_dict)
            summ = tj.summarize_trajectories(res, n_boot=exp.n_boot, seed=exp.seed)
            summ["dataset"] = ds
            result.trajectories[style] = {"summary": summ, "result": res}
    ss = exp.selfpredict
    if "selfpredict" in exp.comparisons and exp.model_entry(ss.model) == m:
        ds = ss.dataset or exp.datasets[0]
        qs = _theory_questions(ds, ss.questions)
        for style in ss.styles:
            rows = cached(
                "self", ss, ds, style,
                lambda style=style, qs=qs: sp.self_prediction(
                    sampler, qs, style, collapse(style), samples=ss.samples, top_k=ss.top_k,
                    max_tokens=ss.max_tokens or exp.max_tokens.get(style),
                    k_shot=exp.k_shot, seed=exp.seed, grader=grader),
                sp.rows_to_dicts, lambda data: [sp.SelfPrediction(**r) for r in data])
            summ = sp.summarize_self_prediction(rows, n_boot=exp.n_boot, seed=exp.seed)
            summ["dataset"] = ds
            summ["model"] = m.model
            result.selfpredict[style] = {"summary": summ, "rows": rows}
