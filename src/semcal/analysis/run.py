"""From the store to numbers: collapse, grade, confidence and metrics. No model needed.

:func:`analyze_run` reads one run's stored samples, classifies them with a collapsing
function B (cached in the store, keyed by B's name and the number of samples), takes the
plurality class as the prediction, grades it against the gold classes, computes the
confidence estimators, and summarises calibration (accuracy, smECE ± bootstrap CI, ECE,
Brier, log-loss, AUROC). Changing B or the grader re-reads the samples; it never re-samples.

Each step has its room: :mod:`~semcal.analysis.label` (B), :mod:`~semcal.analysis.grading`
(the grader), :mod:`~semcal.analysis.estimate` (the estimators) and
:mod:`~semcal.analysis.summary` (the metrics); this module sets a run's analysis up and calls
them in that order.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semcal.analysis.compare import collapse_audit, compare_collapses, describe
from semcal.analysis.estimate import _model_extra, estimator_names, estimator_table, with_stored
from semcal.analysis.grading import grade_question, grader_key, make_grader, save_grades
from semcal.analysis.label import Labelled, Labeller, read_run, save_classes
from semcal.analysis.results import QuestionResult, RunAnalysis
from semcal.analysis.summary import _summaries_in_parallel, calibration_summary
from semcal.analysis.timing import sampling_time
from semcal.analysis.workers import package_value
from semcal.collapse import COLLAPSES, collapse_key, uses_judge
from semcal.collapse.judge import JudgeCollapse, default_judge_spec
from semcal.confidence import estimate_all
from semcal.errors import InputError, StoreError
from semcal.grade import GRADER_REGISTRY
from semcal.metrics._validate import check_n_boot
from semcal.spec import JudgeSpec
from semcal.store import STORE_NAME, RunInfo, Store, has_store
from semcal.types import NO_ANSWER, NON_ANSWERS, Question

# ----------------------------------------------------------------------------- setting up

#: judge models opened in this process, by (model, backend, base_url, options); read through
#: the package (``semcal.analysis._JUDGES``)
_JUDGES: dict[Any, Any] = {}


def _judge_sampler(judge: Any, info: RunInfo) -> Any:
    """The judge model: an open Sampler as given, else opened (once per process) from a
    JudgeSpec, from the run's own ``[judge]`` table, or the embedded default judge."""

    if judge is not None and not isinstance(judge, JudgeSpec):
        return judge  # already a Sampler
    if judge is None:
        judge = JudgeSpec.parse((info.spec or {}).get("judge"), where=f"run {info.name}")
    if judge is None:  # the embedded default judge, or an error saying how to install it
        judge = default_judge_spec()
    key = (judge.model, judge.backend, judge.base_url, tuple(sorted(judge.backend_options.items())))
    judges = package_value("_JUDGES")
    if key not in judges:
        judges[key] = package_value("open_judge")(judge)
    return judges[key]


def _judge_options(info: RunInfo, collapse: str, grader: str,
                   collapse_opts: dict[str, Any] | None, grader_opts: dict[str, Any] | None,
                   judge: Any) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """B's and the grader's options with the judge model added where either is the judge;
    a judge model given when neither is the judge is an InputError."""
    collapse_opts = dict(collapse_opts or {})
    b_judge, g_judge = uses_judge(collapse), GRADER_REGISTRY.flag(grader, "judge")
    if judge is not None and not (b_judge or g_judge):
        raise InputError(f"run {info.name}: a judge model was given but neither the B "
                         f"({collapse}) nor the grader ({grader}) is the judge: add --collapse "
                         "judge or --grader judge, or leave the judge model out")
    if b_judge or g_judge:
        sampler = _judge_sampler(judge, info)
        if b_judge:
            collapse_opts.setdefault("sampler", sampler)
        if g_judge:
            grader_opts = {"sampler": sampler, **(grader_opts or {})}
    return collapse_opts, grader_opts


@dataclass
class _Setup:
    """How one run is analysed: B (``ckey``: its cache key), the grader (``gkey``: its cache
    key) with the verdicts it cached, the estimators with the model-based estimates the runner
    stored, whether results are cached, and the second B of the audit."""

    collapse: str
    collapse_opts: dict[str, Any]
    ckey: str
    grader: str
    gopts: dict[str, Any]
    grader_obj: Any
    gkey: str
    cached_grades: dict[str, Any]
    names: list[str]
    model_est: dict[str, Any]
    cache: bool
    audit_against: str | None


def _setup(store: Store, info: RunInfo, *, collapse: str | None, grader: str,
           estimators: Sequence[str] | str | None, cache: bool,
           collapse_opts: dict[str, Any] | None, grader_opts: dict[str, Any] | None,
           judge: Any, audit_against: str | None) -> _Setup:
    """Resolve :func:`analyze_run`'s arguments against the run and the store."""
    if collapse is None:  # the B the run was sampled with (its estimates are stored under it)
        collapse = str((info.spec or {}).get("collapse") or "auto")
    collapse_opts, grader_opts = _judge_options(info, collapse, grader, collapse_opts,
                                                grader_opts, judge)
    if audit_against is None and collapse in COLLAPSES:
        audit_against = COLLAPSES.meta(collapse).get("audit_against")
    gopts = dict(grader_opts or {})
    grader_obj = make_grader(grader, gopts)
    gkey = grader_key(grader, gopts)
    ckey = collapse_key(collapse, collapse_opts)
    cached_grades = (store.grades(info.id, ckey, gkey)
                     if GRADER_REGISTRY.flag(grader, "judge") else {})
    names = estimator_names(estimators)
    cache = cache and not store.readonly
    # model-based estimates (P(True), verbalised) stored by the runner for this B (under its
    # key; an older store kept them under the bare name: each value is used
    # only where it rated this B's prediction, so the older ones are safe to read)
    model_est = store.model_estimates(info.id, ckey) or store.model_estimates(info.id, collapse)
    if estimators is None and model_est:
        names = with_stored(names, model_est)
    return _Setup(collapse, collapse_opts, ckey, grader, gopts, grader_obj, gkey, cached_grades,
                  names, model_est, cache, audit_against)


# ----------------------------------------------------------------------------- the steps


def _result(qid: str, q: Question, lab: Labelled, s: _Setup) -> QuestionResult:
    """One question graded and estimated, from its classes."""
    prediction, count, correct, g_correct = grade_question(
        q, lab, s.grader, s.grader_obj, s.cached_grades.get(qid))
    return QuestionResult(
        qid=qid,
        question=q.question,
        task=q.task,
        gold=tuple(q.answers),
        gold_labels=lab.gold,
        n_samples=len(lab.texts),
        labels=tuple(lab.labels),
        texts=lab.texts,
        prediction=prediction,
        count=count,
        correct=correct,
        greedy_text=None if lab.g is None else lab.g.text,
        greedy_label=lab.g_label,
        greedy_correct=g_correct,
        estimates=estimate_all(
            lab.labels, prediction, lab.comps, greedy=lab.g, names=s.names,
            extra=_model_extra(s.model_est.get(qid), prediction, len(lab.texts)),
        ),
    )


def _summarise(results: list[QuestionResult], names: list[str], n_boot: int,
               seed: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run's calibration summary and its estimator table, computed as one batch of
    summaries (in worker processes when large)."""
    conf = [r.confidence for r in results]
    corr = [float(r.correct) for r in results]
    batch: dict[str, Any] = {}

    def summaries(jobs: list[tuple[np.ndarray, np.ndarray, int]]) -> list[dict[str, Any]]:
        out = _summaries_in_parallel(
            [(np.asarray(conf, dtype=float), np.asarray(corr, dtype=float), n_boot), *jobs], seed)
        batch["run"] = out[0]
        return out[1:]

    est = (estimator_table(results, names, n_boot=min(n_boot, 200), seed=seed,
                           summaries=summaries) if results else [])
    summary = batch.get("run") or calibration_summary(conf, corr, n_boot=n_boot, seed=seed)
    return summary, est


def _add_totals(summary: dict[str, Any], results: list[QuestionResult], n_questions: int) -> None:
    """The run's counts: questions in the run, samples analysed, mean samples a question, the
    share of samples that are no answer, and the share of questions whose prediction is no
    answer or a refusal (``no_prediction_rate``: such a question has confidence 0 and is
    wrong, so a run made mostly of them looks calibrated whatever the model knows)."""
    summary["n_questions_total"] = n_questions
    summary["n_samples_total"] = int(sum(r.n_samples for r in results))
    summary["mean_samples"] = summary["n_samples_total"] / len(results) if results else float("nan")
    summary["no_answer_rate"] = (
        sum(lab == NO_ANSWER for r in results for lab in r.labels) / summary["n_samples_total"]
        if results and summary["n_samples_total"]
        else float("nan")
    )
    summary["no_prediction_rate"] = (
        sum(r.prediction in NON_ANSWERS for r in results) / len(results) if results
        else float("nan"))


def _audit(store: Store, info: RunInfo, results: list[QuestionResult], fn: Any) -> dict[str, Any]:
    """The B audit, with the engine builds that drew the samples and the judge B's calls."""
    audit = collapse_audit([r.labels for r in results])
    # the engine builds that drew the samples (one per sampling session; empty before schema 4)
    # and how long the sampling took across its sessions (timed from schema 5 on)
    sessions = store.sessions(info.id)
    audit["engines"] = list(dict.fromkeys(x["engine"] for x in sessions))
    audit["sampling"] = sampling_time(sessions)
    if isinstance(fn, JudgeCollapse):  # how often the judge was overruled
        audit.update(judge_calls=fn.calls, judged=fn.judged, judge_fallbacks=fn.fallbacks,
                     judge_agrees_with_rules=fn.agree / fn.judged if fn.judged else float("nan"))
    return audit


def _hand_check(store: Store, info: RunInfo, results: list[QuestionResult],
                samples: dict[str, list[Any]], summary: dict[str, Any], n_boot: int,
                seed: int) -> dict[str, Any] | None:
    """The B check of the run's label file (``semcal label``), None without one; a label file
    that does not belong to the run's samples is an InputError naming it."""
    from semcal.label.check import b_check
    from semcal.label.labels import label_path, read_labels

    if store.directory is None:
        return None
    path = label_path(store.directory, info.name)
    if not os.path.lexists(path):
        return None
    indices = {qid: [s.index for s in rows] for qid, rows in samples.items()}
    hand = read_labels(path, info.name, indices)
    return b_check(results, hand, summary, n_boot=n_boot, seed=seed, path=path)


# ----------------------------------------------------------------------------- entry points


def analyze_run(
    store: Store,
    run: RunInfo | str | int,
    *,
    collapse: str | None = None,
    grader: str = "auto",
    estimators: Sequence[str] | str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    cache: bool = True,
    collapse_opts: dict[str, Any] | None = None,
    grader_opts: dict[str, Any] | None = None,
    judge: Any = None,
    audit_against: str | None = None,
    only: Sequence[str] | None = None,
) -> RunAnalysis:
    """Analyse one run of ``store``. See the module docstring.

    ``judge`` (a :class:`~semcal.spec.JudgeSpec`, or an open Sampler) is the judge model of
    ``collapse="judge"`` and ``grader="judge"``; without it, the run's own ``[judge]`` table is
    used. ``audit_against`` names a second B whose classes are compared with this one's in
    ``RunAnalysis.audit["against"]`` (for the judge B it defaults to ``"auto"``).

    ``run`` is a :class:`RunInfo`, a run name or a run id. ``estimators`` is a list of names,
    "all" (every registered estimator) or None (:data:`DEFAULT_ESTIMATORS`). ``cache`` writes
    collapse results and grades back into the store (skipped for a read-only store).
    Only questions whose sampling is finished are analysed (and, with ``only``, only those
    ids).
    """

    n_boot = check_n_boot(n_boot, "analyze", allow_zero=True)
    info = _resolve_run(store, run)
    s = _setup(store, info, collapse=collapse, grader=grader, estimators=estimators, cache=cache,
               collapse_opts=collapse_opts, grader_opts=grader_opts, judge=judge,
               audit_against=audit_against)
    fn_opts = {"style": info.style, **(s.collapse_opts or {})}
    # the samples are read question by question; for a large run, worker processes label
    # each question's texts while the rest is still being read
    data = read_run(store, info, collapse=s.collapse, fn_opts=fn_opts, ckey=s.ckey,
                    cache=s.cache, only=only)
    labeller = Labeller(s.collapse, fn_opts, data)
    results = [_result(qid, data.questions[qid], labeller.label(qid), s) for qid in data.order]
    if labeller.new_classes and s.cache:
        save_classes(store, info, s.ckey, labeller.new_classes)
    if s.cache and results:
        save_grades(store, info, s.ckey, s.gkey, results)
    summary, est = _summarise(results, s.names, n_boot, seed)
    _add_totals(summary, results, len(data.questions))
    audit = _audit(store, info, results, labeller.fn)
    res = RunAnalysis(
        run=info, collapse=s.collapse, grader=s.grader, questions=results, summary=summary,
        estimators=est, directory=store.directory, audit=audit,
        collapse_label=describe(s.collapse, s.collapse_opts),
        grader_label=describe(s.grader, s.gopts), grader_fn=s.grader_obj,
        b_check=_hand_check(store, info, results, data.samples, summary, n_boot, seed),
    )
    if s.audit_against and s.audit_against != s.collapse:
        other = analyze_run(store, info, collapse=s.audit_against, grader="auto", estimators=[],
                            n_boot=0, seed=seed, cache=s.cache)
        audit["against"] = compare_collapses(res, other)
    return res


def _resolve_run(store: Store, run: RunInfo | str | int) -> RunInfo:
    if isinstance(run, RunInfo):
        return run
    info = store.get_run(run) if isinstance(run, int) else store.find_run(str(run))
    if info is None:
        names = ", ".join(r.name for r in store.runs()) or "none"
        raise InputError(f"no run {run!r} in {store.directory} (runs: {names})")
    return info


def analyze_dir(
    directory: str | os.PathLike[str],
    runs: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[RunAnalysis]:
    """Analyse every run (or the named ``runs``) of an experiment directory."""
    d = Path(directory)
    if not d.exists():
        raise InputError(f"directory not found: {d}")

    if not has_store(d):
        raise InputError(f"no semcal store in {d} ({STORE_NAME} not found)")
    try:
        store = Store(d, create=False)
    except StoreError:
        store = Store(d, readonly=True)
    with store:
        infos = store.runs()
        if runs:
            infos = [_resolve_run(store, r) for r in runs]
        if not infos:
            raise InputError(f"{d}: the store has no runs")
        return [analyze_run(store, info, **kwargs) for info in infos]
