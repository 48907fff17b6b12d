"""From the store to numbers: collapse, grade, confidence and metrics. No model needed.

:func:`analyze_run` reads one run's stored samples, classifies them with a collapsing
function B (cached in the store, keyed by B's name and the number of samples), takes the
plurality class as the prediction, grades it against the gold classes, computes the
confidence estimators, and summarises calibration (accuracy, smECE ± bootstrap CI, ECE,
Brier, log-loss, AUROC). Changing B or the grader re-reads the samples; it never re-samples.

The per-question table (:meth:`RunAnalysis.table`) is a list of flat dicts, one per
question, ready for CSV/Parquet export (:func:`write_table`).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semcal import metrics as M
from semcal.adaptive import next_round_size, should_stop
from semcal.collapse import COLLAPSES, collapse_key, get_collapse, open_judge, split_options
from semcal.collapse.judge import JudgeCollapse, default_judge_spec
from semcal.confidence import ESTIMATORS, estimate_all
from semcal.errors import InputError, SemcalError, StoreError, require
from semcal.files import atomic_path
from semcal.grade import (
    GRADER_REGISTRY,
    answer_confidence,
    get_grader,
    is_empty_answer,
    is_tied,
    plurality,
)
from semcal.metrics._validate import check_n_boot
from semcal.spec import JudgeSpec
from semcal.store import STORE_NAME, RunInfo, Store, has_store
from semcal.types import NO_ANSWER, NON_ANSWERS, REFUSAL, Collapsed, Completion, Question

log = logging.getLogger(__name__)

#: estimators shown by default (cheap, need only what a run stores)
DEFAULT_ESTIMATORS = (
    "semantic",
    "semantic_laplace",
    "logprob_weighted",
    "max_seq_prob",
    "greedy_mean_prob",
    "greedy_seq_prob",
    "neg_semantic_entropy",
    "neg_num_classes",
)


@dataclass
class QuestionResult:
    """One question of a run after analysis."""

    qid: str
    question: str
    task: str
    gold: tuple[str, ...]
    gold_labels: frozenset[str]
    n_samples: int
    labels: tuple[str, ...]
    texts: tuple[str, ...]
    prediction: str
    count: int
    correct: bool
    greedy_text: str | None = None
    greedy_label: str | None = None
    greedy_correct: bool | None = None
    estimates: dict[str, float | None] = field(default_factory=dict)

    @property
    def confidence(self) -> float:
        """Semantic confidence: the plurality share count / n_samples, 0 when the plurality
        is no answer (:func:`semcal.grade.answer_confidence`)."""
        return answer_confidence(self.prediction, self.count, self.n_samples)

    @property
    def class_counts(self) -> list[tuple[str, int]]:
        """Classes with their sample counts, largest first."""
        return Counter(self.labels).most_common()


@dataclass
class RunAnalysis:
    """A run's per-question results and summary metrics."""

    run: RunInfo
    collapse: str
    grader: str
    questions: list[QuestionResult]
    summary: dict[str, Any]
    estimators: list[dict[str, Any]]
    directory: Path | None = None
    #: the B audit (:func:`collapse_audit`), plus ``against`` when compared with a second B
    audit: dict[str, Any] = field(default_factory=dict)
    #: how the B and the grader are named where the numbers are shown, with their judge model
    #: and options (:func:`describe`): "auto", "judge[smollm2-135m-instruct]",
    #: "auto(answers_only=False)"; empty: the bare name
    collapse_label: str = ""
    grader_label: str = ""
    #: B against the run's hand labels (``semcal label``; :func:`semcal.label.check.b_check`),
    #: None when the run has no label file
    b_check: dict[str, Any] | None = None
    #: the grader object that graded the run (``grader``'s registered part, with its options
    #: and judge model): replays and diagnostics grade with it too
    grader_fn: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.collapse_label = self.collapse_label or self.collapse
        self.grader_label = self.grader_label or self.grader

    @property
    def confidences(self) -> np.ndarray:
        return np.array([q.confidence for q in self.questions], dtype=float)

    @property
    def correct(self) -> np.ndarray:
        return np.array([q.correct for q in self.questions], dtype=float)

    def table(self) -> list[dict[str, Any]]:
        """One flat dict per question (the CSV/Parquet export)."""
        rows = []
        for q in self.questions:
            row: dict[str, Any] = {
                "run": self.run.name,
                "model": self.run.model,
                "style": self.run.style,
                "qid": q.qid,
                "task": q.task,
                "question": q.question,
                "gold": " | ".join(q.gold),
                "n_samples": q.n_samples,
                "prediction": q.prediction,
                "count": q.count,
                "confidence": q.confidence,
                "correct": bool(q.correct),
                "n_classes": len(set(q.labels)),
                "no_answer": sum(1 for lab in q.labels if lab == NO_ANSWER),
                "classes": json.dumps(dict(q.class_counts), ensure_ascii=False),
                "samples": json.dumps([{"text": t, "label": lab} for t, lab in zip(q.texts, q.labels)],
                                      ensure_ascii=False),
                "greedy_text": q.greedy_text,
                "greedy_label": q.greedy_label,
                "greedy_correct": q.greedy_correct,
            }
            for name, v in q.estimates.items():
                row[f"conf_{name}"] = v
            rows.append(row)
        return rows


# ----------------------------------------------------------------------------- metrics


def _safe(fn: Callable[[], float]) -> float:
    try:
        v = float(fn())
    except (SemcalError, ValueError, ZeroDivisionError, FloatingPointError) as exc:
        log.debug("metric undefined: %s", exc)
        return float("nan")
    return v


def calibration_summary(
    conf: Sequence[float] | np.ndarray,
    correct: Sequence[float] | np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    draws: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The summary of one run's (confidence, correct) pairs: :func:`semcal.metrics.summarize`
    with the tilt diagnostic, NaN everywhere for no pairs (the one summary every command shows).
    ``draws``: resample values computed elsewhere (see :func:`_summaries_in_parallel`)."""
    return M.summarize(np.asarray(conf, dtype=float), np.asarray(correct, dtype=float),
                     n_boot=n_boot, seed=seed, tilt=True, allow_empty=True, draws=draws)


def estimator_table(
    questions: Sequence[QuestionResult], names: Sequence[str], n_boot: int = 200, seed: int = 0,
    summaries: Callable[[list[tuple[np.ndarray, np.ndarray, int]]], list[dict[str, Any]]] | None
    = None,
) -> list[dict[str, Any]]:
    """Compare confidence estimators on the same samples.

    Probabilities get smECE/ECE/Brier/AUROC; scores get AUROC only. An estimator about the
    greedy answer is graded against the greedy answer's correctness. Questions where an
    estimator has no value are left out of its row (``n`` says how many remain).
    ``summaries`` computes the rows' :func:`calibration_summary` calls as one batch (the
    analysis runs them in worker processes for a large run); default: one after another.
    """

    rows = []
    jobs: list[tuple[np.ndarray, np.ndarray, int]] = []
    needs: list[dict[str, Any]] = []
    for name in names:
        est = ESTIMATORS.get(name)
        if est is None:
            continue
        conf, ys = [], []
        for q in questions:
            v = q.estimates.get(name)
            if v is None or not math.isfinite(v):
                continue
            y = q.greedy_correct if getattr(est, "target", "prediction") == "greedy" else q.correct
            if y is None:
                continue
            conf.append(v)
            ys.append(float(y))
        row: dict[str, Any] = {
            "estimator": name,
            "kind": "probability" if est.is_probability else "score",
            "description": est.description,
            "n": len(conf),
        }
        rows.append(row)
        if not conf:
            continue
        c, y = np.array(conf), np.array(ys)
        row["accuracy"] = float(y.mean())
        row["auroc"] = (
            _safe(lambda c=c, y=y: M.auroc(c, y)) if 0 < y.sum() < len(y) else float("nan")
        )
        if est.is_probability:
            jobs.append((c, y, n_boot))
            needs.append(row)
    if summaries is None:
        done = [calibration_summary(c, y, n_boot=nb, seed=seed) for c, y, nb in jobs]
    else:
        done = summaries(jobs)
    for row, s in zip(needs, done):
        for k in ("mean_confidence", "smece", "smece_lo", "smece_hi", "ece", "brier"):
            row[k] = s[k]
    return rows


def _fork_pool(tasks: int, what: str) -> Any:
    """Worker processes (``fork``: they start at once, without importing semcal again), one
    per core up to 8 and ``tasks``; None when there is one core or no fork here. The workers
    run :func:`_worker_start` first: they leave Ctrl-C and SIGTERM to the parent, which stops
    them (:func:`_stop_pool`), and they end when the parent ends, even by SIGKILL."""
    workers = min(os.cpu_count() or 1, 8, tasks)
    if workers < 2:
        return None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    try:
        return ProcessPoolExecutor(max_workers=workers,
                                   mp_context=multiprocessing.get_context("fork"),
                                   initializer=_worker_start, initargs=(os.getpid(),))
    except (OSError, RuntimeError, ValueError) as exc:
        log.info("%s in one process (%s)", what, exc)
        return None


#: prctl option that sends the calling process a signal when its parent dies (Linux)
_PR_SET_PDEATHSIG = 1


def _worker_start(parent: int) -> None:
    """Set up a worker process. Ctrl-C goes to the whole process group: the worker ignores it
    and the parent stops the pool. SIGTERM (``timeout``, a scheduler, the parent stopping the
    pool) ends it at once and silently, with no traceback. On Linux the kernel kills it when
    the parent dies (``PR_SET_PDEATHSIG``); elsewhere, and for a parent that died before
    that was set, a watcher thread ends it once its parent pid changes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_exit)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, _worker_exit)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _worker_exit(signum: int, frame: Any) -> None:
    os._exit(128 + signum)


def _watch_parent(parent: int, every: float = 1.0) -> None:
    while os.getppid() == parent:
        time.sleep(every)
    os._exit(1)


def _stop_pool(pool: Any) -> None:
    """Stop a pool now, on an interrupt: drop the queued jobs and end the workers (their
    jobs are bootstrap or labelling work, which the parent no longer waits for)."""
    procs = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=2)
        if p.is_alive():
            p.kill()


def _summary_job(task: tuple[Any, ...]) -> Any:
    """One task of :func:`_summaries_in_parallel`: a whole summary, or the resample values of
    some metrics for a range of resamples (a part of a large summary)."""
    if task[0] == "summary":
        _, c, y, n_boot, seed = task
        return calibration_summary(c, y, n_boot=n_boot, seed=seed)
    _, c, y, n_boot, seed, names, start, stop = task
    return M.bootstrap_draws(c, y, names, n_boot=n_boot, seed=seed, start=start, stop=stop)


#: bootstrap work (pairs x resamples) of one summary from which its smECE resamples, the
#: costly part, are split into one range per worker
SPLIT_MIN_BOOT_WORK = 1_000_000


def _summary_tasks(
    jobs: list[tuple[np.ndarray, np.ndarray, int]], seed: int, workers: int,
) -> list[tuple[int, tuple[Any, ...]]]:
    """(job number, task) pairs, the costliest first: a small summary is one task; a large one
    is its smECE resamples cut into ``workers`` ranges plus one task for its other metrics."""
    tasks: list[tuple[float, int, tuple[Any, ...]]] = []
    for j, (c, y, nb) in enumerate(jobs):
        work = float(len(c) * nb)
        if workers < 2 or work < SPLIT_MIN_BOOT_WORK or len(c) == 0:
            tasks.append((work, j, ("summary", c, y, nb, seed)))
            continue
        # cut at the block starts nearest to equal shares (a block is never computed twice)
        starts = np.array(M.resample_blocks(len(c), nb))
        cuts = sorted({0, nb, *(int(starts[np.abs(starts - nb * i / workers).argmin()])
                                 for i in range(1, workers))})
        for a, b in zip(cuts[:-1], cuts[1:]):
            if b > a:
                tasks.append((work * (b - a) / nb, j, ("draws", c, y, nb, seed, ("smece",),
                                                       int(a), int(b))))
        others = tuple(n for n in M.metric_names() if n != "smece")
        tasks.append((work / 4, j, ("draws", c, y, nb, seed, others, 0, nb)))
    tasks.sort(key=lambda t: -t[0])
    return [(j, task) for _, j, task in tasks]


def _summaries_in_parallel(
    jobs: list[tuple[np.ndarray, np.ndarray, int]], seed: int,
) -> list[dict[str, Any]]:
    """:func:`calibration_summary` of each job, in worker processes when the bootstrap work is
    large (the same numbers: every resample's value depends only on its place in the sequence
    drawn from ``seed``, wherever it is computed). A large summary's smECE resamples are
    split among the workers, so that one big run does not keep the others waiting."""
    work = sum(len(c) * nb for c, _, nb in jobs)
    workers = min(os.cpu_count() or 1, 8)
    pool = None
    if work >= PARALLEL_MIN_BOOT_WORK:
        tasks = _summary_tasks(jobs, seed, workers)
        pool = _fork_pool(min(len(tasks), workers), "summaries")
    if pool is not None:
        try:
            done = list(pool.map(_summary_job, [t for _, t in tasks]))
            pool.shutdown()
        except (OSError, RuntimeError) as exc:
            _stop_pool(pool)
            log.info("summaries in one process (%s)", exc)
        except BaseException:  # Ctrl-C, SIGTERM: end the workers, not wait for them
            _stop_pool(pool)
            raise
        else:
            whole: dict[int, dict[str, Any]] = {}
            parts: dict[int, dict[str, list[np.ndarray]]] = {}
            for (j, task), result in zip(tasks, done):
                if task[0] == "summary":
                    whole[j] = result
                else:  # tasks of one job are in resample order within each metric
                    for name, values in result.items():
                        parts.setdefault(j, {}).setdefault(name, []).append((task[6], values))
            out = []
            for j, (c, y, nb) in enumerate(jobs):
                if j in whole:
                    out.append(whole[j])
                    continue
                draws = {name: np.concatenate([v for _, v in sorted(pieces, key=lambda p: p[0])])
                         for name, pieces in parts[j].items()}
                out.append(calibration_summary(c, y, n_boot=nb, seed=seed, draws=draws))
            return out
    return [calibration_summary(c, y, n_boot=nb, seed=seed) for c, y, nb in jobs]


# ----------------------------------------------------------------------------- analysis


def _collapse_fn(name: str, **opts: Any) -> Callable[[Question, Sequence[str]], Collapsed]:
    return get_collapse(name, **opts)


#: texts to label below which the analysis collapses in its own process
PARALLEL_MIN_TEXTS = 20_000
#: bootstrap work (questions x resamples, summed over the summaries) below which the
#: summaries are computed in the analysis's own process
PARALLEL_MIN_BOOT_WORK = 2_000_000


def _collapse_chunk(
    args: tuple[str, dict[str, Any], list[tuple[Question, list[str]]]],
) -> list[tuple[tuple[str, ...], frozenset[str]]]:
    name, opts, items = args
    fn = _collapse_fn(name, **opts)
    out = []
    for q, texts in items:
        col = fn(q, texts)
        out.append((tuple(col.labels), frozenset(col.gold)))
    return out


def _parallel_collapse(name: str) -> bool:
    """Whether B ``name`` was registered as safe to run in worker processes (``parallel=True``:
    pure Python, deterministic, picklable options)."""
    return name in COLLAPSES and bool(COLLAPSES.meta(name).get("parallel"))


class _CollapsePool:
    """Worker processes that label questions' texts while the analysis is still reading the
    store: B reads every sample of a run (about 40 µs a sample) and is the one step of the
    analysis that grows with the number of samples. :meth:`open` gives None when it does not
    pay (a small run, one core, a B that is not rule-based) or cannot run; :meth:`results`
    gives {} on any failure, and the caller then labels in its own process."""

    CHUNK_TEXTS = 4000

    def __init__(self, name: str, opts: dict[str, Any], pool: Any) -> None:
        self.name, self.opts, self.pool = name, opts, pool
        self.futures: list[tuple[list[str], Any]] = []
        self.buf: list[tuple[str, Question, list[str]]] = []
        self.n_buf = 0

    @classmethod
    def open(cls, name: str, opts: dict[str, Any], n_texts: int) -> _CollapsePool | None:
        # only a B registered with parallel=True (COLLAPSES metadata) runs in workers
        if n_texts < PARALLEL_MIN_TEXTS or not _parallel_collapse(name):
            return None
        pool = _fork_pool(8, "collapsing")
        return None if pool is None else cls(name, opts, pool)

    def add(self, qid: str, question: Question, texts: list[str]) -> None:
        self.buf.append((qid, question, texts))
        self.n_buf += len(texts)
        if self.n_buf >= self.CHUNK_TEXTS:
            self._flush()

    def _flush(self) -> None:
        if self.buf:
            job = (self.name, self.opts, [(q, t) for _, q, t in self.buf])
            self.futures.append(([qid for qid, _, _ in self.buf],
                                 self.pool.submit(_collapse_chunk, job)))
        self.buf, self.n_buf = [], 0

    def results(self) -> dict[str, tuple[tuple[str, ...], frozenset[str]]]:
        out: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {}
        try:
            self._flush()
            for qids, fut in self.futures:
                out.update(zip(qids, fut.result()))
        except Exception as exc:  # a worker died (memory...): label in this process instead
            log.info("collapsing in one process (%s: %s)", type(exc).__name__, exc)
            _stop_pool(self.pool)
            return {}
        except BaseException:  # Ctrl-C, SIGTERM: end the workers, not wait for them
            self.stop()
            raise
        self.pool.shutdown(cancel_futures=True)
        return out

    def stop(self) -> None:
        """End the workers at once (the analysis was interrupted)."""
        _stop_pool(self.pool)


def _uncached_texts(order: Sequence[str], questions: dict[str, Question], samples: dict[str, Any],
                    greedy: dict[str, Any], cached: dict[str, Any]) -> Any:
    """(question, texts) of each question in ``order`` whose classes are not cached: what a B
    with a ``prepare`` method (the judge) may read all at once before the per-question calls."""
    for qid in order:
        rows, g = samples[qid], greedy.get(qid)
        if not _cached_classes_fresh(cached.get(qid), len(rows), g):
            yield questions[qid], [r.completion.text for r in rows] + ([g.text] if g else [])


def _cached_classes_fresh(hit: Any, n_samples: int, greedy: Any) -> bool:
    """Whether a question's cached classes cover its ``n_samples`` samples and, when it has a
    greedy completion, that one too."""
    return hit is not None and hit[0] == n_samples and (greedy is None or hit[3] is not None)


def describe(name: str, opts: dict[str, Any] | None = None) -> str:
    """The name under which a B or a grader made its numbers: ``name``, its judge model in
    brackets and its other options in parentheses ("judge[smollm2-135m-instruct]",
    "auto(answers_only=False)", "numeric(rel_tol=0.01)"). Objects passed in as options (an
    encoder) are left out."""
    sampler, opts = split_options(opts)
    label = name if sampler is None else f"{name}[{sampler.model_name}]"
    if opts:
        label += "(" + ", ".join(f"{k}={opts[k]}" for k in sorted(opts)) + ")"
    return label


def collapse_audit(labels: Sequence[Sequence[str]]) -> dict[str, Any]:
    """How a B partitioned a run's samples (``labels``: one sequence of class labels per
    question): the figures to read before trusting its numbers.

    ``classes_per_question`` (mean distinct classes, non-answers included),
    ``singleton_share`` (share of answer classes holding one sample: high means B splits),
    ``no_answer_rate`` and ``refusal_rate`` (share of samples), ``tie_rate`` (share of
    questions whose plurality is a tie, decided by the tie rule).
    """

    labels = [tuple(x) for x in labels]
    n_q = len(labels)
    n_s = sum(len(x) for x in labels)
    classes = singles = answer_classes = 0
    for q_labels in labels:
        counts = Counter(q_labels)
        classes += len(counts)
        answer_counts = [c for lab, c in counts.items() if lab not in NON_ANSWERS]
        answer_classes += len(answer_counts)
        singles += sum(c == 1 for c in answer_counts)
    nan = float("nan")
    return {
        "questions": n_q,
        "classes_per_question": classes / n_q if n_q else nan,
        "singleton_share": singles / answer_classes if answer_classes else nan,
        "no_answer_rate": sum(x.count(NO_ANSWER) for x in labels) / n_s if n_s else nan,
        "refusal_rate": sum(x.count(REFUSAL) for x in labels) / n_s if n_s else nan,
        "tie_rate": sum(is_tied(x) for x in labels) / n_q if n_q else nan,
    }


def compare_collapses(a: RunAnalysis, b: RunAnalysis, max_listed: int = 200) -> dict[str, Any]:
    """Agreement of two Bs on the same run: a sample agrees when the set of samples sharing its
    class is the same under both. Returns the agreement (share of samples), the share of
    questions with the same plurality class (as a set of samples), and the disagreeing samples
    (at most ``max_listed``: question id, sample index, text, ``label`` under ``a``'s B and
    ``other_label`` under ``b``'s)."""
    other = {q.qid: q for q in b.questions}
    n = agree = same_plurality = n_q = 0
    listed: list[dict[str, Any]] = []
    for q in a.questions:
        o = other.get(q.qid)
        if o is None or o.n_samples != q.n_samples:
            continue
        n_q += 1
        members_a = [frozenset(j for j, x in enumerate(q.labels) if x == lab) for lab in q.labels]
        members_b = [frozenset(j for j, x in enumerate(o.labels) if x == lab) for lab in o.labels]
        top_a = frozenset(j for j, x in enumerate(q.labels) if x == q.prediction)
        top_b = frozenset(j for j, x in enumerate(o.labels) if x == o.prediction)
        same_plurality += top_a == top_b
        for i, (ma, mb) in enumerate(zip(members_a, members_b)):
            n += 1
            if ma == mb:
                agree += 1
            elif len(listed) < max_listed:
                listed.append({"qid": q.qid, "sample": i, "text": q.texts[i],
                               "label": q.labels[i], "other_label": o.labels[i]})
    nan = float("nan")
    return {
        "against": b.collapse,
        "agreement": agree / n if n else nan,
        "same_plurality": same_plurality / n_q if n_q else nan,
        "disagreements": n - agree,
        "listed": listed,
    }


def _plurality(labels: Sequence[str]) -> tuple[str, int]:
    label, count = plurality(list(labels))
    return str(label), int(count)


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
    if collapse is None:  # the B the run was sampled with (its estimates are stored under it)
        collapse = str((info.spec or {}).get("collapse") or "auto")
    collapse_opts = dict(collapse_opts or {})
    if judge is not None and "judge" not in (collapse, grader):
        raise InputError(f"run {info.name}: a judge model was given but neither the B "
                         f"({collapse}) nor the grader ({grader}) is the judge: add --collapse "
                         "judge or --grader judge, or leave the judge model out")
    if "judge" in (collapse, grader):
        sampler = _judge_sampler(judge, info)
        if collapse == "judge":
            collapse_opts.setdefault("sampler", sampler)
        if grader == "judge":
            grader_opts = {"sampler": sampler, **(grader_opts or {})}
    if audit_against is None and collapse == "judge":
        audit_against = "auto"
    GRADER_REGISTRY.lookup(grader)  # asked now: a grader registered after import counts
    gopts = dict(grader_opts or {})
    grader_obj = get_grader(grader, **gopts)

    grader_key = grader
    if grader == "judge":
        judge_sampler = gopts.get("sampler")
        grader_key = f"judge:{judge_sampler.model_name}"
    ckey = collapse_key(collapse, collapse_opts)
    cached_grades = store.grades(info.id, ckey, grader_key) if grader == "judge" else {}
    if estimators is None:
        names = [n for n in DEFAULT_ESTIMATORS if n in ESTIMATORS]
    elif isinstance(estimators, str):
        names = list(ESTIMATORS) if estimators == "all" else [s for s in estimators.split(",") if s]
    else:
        names = list(estimators)
    unknown = [n for n in names if n not in ESTIMATORS]
    if unknown:
        raise InputError(
            f"unknown estimator(s) {', '.join(unknown)} (known: {', '.join(ESTIMATORS)}, all)"
        )
    cache = cache and not store.readonly
    # model-based estimates (P(True), verbalised) stored by the runner for this collapse
    model_est = store.model_estimates(info.id, collapse)
    if estimators is None and model_est:
        stored = {e for per_q in model_est.values() for e in per_q}
        names += [n for n in ESTIMATORS if n in stored and n not in names]

    questions = {q.id: q for q in store.questions(info.id)}
    done = store.done_ids(info.id)
    greedy = store.greedy(info.id)
    cached = store.classes(info.id, ckey) if cache or store.readonly else {}
    fn = None
    new_classes = []
    results: list[QuestionResult] = []
    keep = None if only is None else set(only)
    fn_opts = {"style": info.style, **(collapse_opts or {})}
    # the samples are read question by question; for a large run, worker processes label
    # each question's texts while the rest is still being read
    pool = _CollapsePool.open(collapse, fn_opts, store.progress(info.id)[2])
    samples: dict[str, list[Any]] = {}
    try:
        for qid, rows in store.iter_samples(info.id, tokens=False):
            samples[qid] = rows
            if pool is None or qid not in done or qid not in questions or (
                keep is not None and qid not in keep
            ):
                continue
            g = greedy.get(qid)
            if not _cached_classes_fresh(cached.get(qid), len(rows), g):
                pool.add(qid, questions[qid],
                         [r.completion.text for r in rows] + ([g.text] if g else []))
    except BaseException:  # an error or an interrupt while reading: end the workers now
        if pool is not None:
            pool.stop()
        raise
    precomputed = pool.results() if pool is not None else {}
    order = [qid for qid in questions
             if qid in done and samples.get(qid) and (keep is None or qid in keep)]
    for qid in order:
        q = questions[qid]
        comps: list[Completion] = [s.completion for s in samples[qid]]
        texts = tuple(c.text for c in comps)
        g = greedy.get(qid)
        hit = cached.get(qid)
        if _cached_classes_fresh(hit, len(texts), g):
            _, labels, gold, g_label = hit
        else:
            all_texts = list(texts) + ([g.text] if g is not None else [])
            if qid in precomputed:
                labs, col_gold = precomputed[qid]
            else:
                if fn is None:
                    fn = _collapse_fn(collapse, **fn_opts)
                    if hasattr(fn, "prepare"):  # the judge B: all questions' responses in batches
                        fn.prepare(_uncached_texts(order, questions, samples, greedy, cached))
                col = fn(q, all_texts)
                labs, col_gold = tuple(col.labels), frozenset(col.gold)
            if len(labs) != len(all_texts):
                raise SemcalError(
                    f"collapse {collapse!r} returned {len(labs)} labels for {len(all_texts)} texts"
                )
            labels = labs[: len(texts)]
            g_label = labs[-1] if g is not None else None
            gold = col_gold
            new_classes.append((qid, len(texts), labels, gold, g_label))
        # an empty answer is no answer in every B, a user's own included
        labels = tuple(NO_ANSWER if is_empty_answer(t) else lab for t, lab in zip(texts, labels))
        if g is not None and is_empty_answer(g.text):
            g_label = NO_ANSWER
        prediction, count = _plurality(labels)
        hit_g = cached_grades.get(qid)
        if hit_g is not None and hit_g[0] == len(texts) and hit_g[1] == prediction:
            correct = hit_g[3]
        else:
            gr = grader_obj(q, Collapsed(tuple(labels), gold), list(texts))
            correct = bool(gr.correct)
        if g is None:
            g_correct = None
        elif grader == "judge" and g_label == prediction:
            g_correct = correct  # the judge graded this class already (one response of it)
        else:
            g_correct = bool(grader_obj(q, Collapsed((g_label,), gold), [g.text]).correct)
        results.append(
            QuestionResult(
                qid=qid,
                question=q.question,
                task=q.task,
                gold=tuple(q.answers),
                gold_labels=gold,
                n_samples=len(texts),
                labels=tuple(labels),
                texts=texts,
                prediction=prediction,
                count=count,
                correct=correct,
                greedy_text=None if g is None else g.text,
                greedy_label=g_label,
                greedy_correct=g_correct,
                estimates=estimate_all(
                    labels, prediction, comps, greedy=g, names=names,
                    extra=_model_extra(model_est.get(qid), prediction, len(texts)),
                ),
            )
        )
    if new_classes and cache:
        try:
            store.save_classes(info.id, ckey, new_classes)
        except StoreError as exc:
            # harmless (a read-only or full store): the classes are computed again next time;
            # not a warning, so that an error stays the one line it promises to be
            log.info("could not cache collapse results: %s", exc)
    if cache and results:
        try:
            store.save_grades(
                info.id, ckey, grader_key,
                [(r.qid, r.n_samples, r.prediction, r.count, r.correct) for r in results],
            )
        except StoreError as exc:
            log.info("could not cache grades: %s", exc)

    conf = [r.confidence for r in results]
    corr = [float(r.correct) for r in results]
    # the run's summary and the estimator table's are one batch (worker processes when large)
    batch: dict[str, Any] = {}

    def summaries(jobs: list[tuple[np.ndarray, np.ndarray, int]]) -> list[dict[str, Any]]:
        out = _summaries_in_parallel(
            [(np.asarray(conf, dtype=float), np.asarray(corr, dtype=float), n_boot), *jobs], seed)
        batch["run"] = out[0]
        return out[1:]

    est = (estimator_table(results, names, n_boot=min(n_boot, 200), seed=seed,
                           summaries=summaries) if results else [])
    summary = batch.get("run") or calibration_summary(conf, corr, n_boot=n_boot, seed=seed)
    summary["n_questions_total"] = len(questions)
    summary["n_samples_total"] = int(sum(r.n_samples for r in results))
    summary["mean_samples"] = summary["n_samples_total"] / len(results) if results else float("nan")
    summary["no_answer_rate"] = (
        sum(lab == NO_ANSWER for r in results for lab in r.labels) / summary["n_samples_total"]
        if results and summary["n_samples_total"]
        else float("nan")
    )
    audit = collapse_audit([r.labels for r in results])
    # the engine builds that drew the samples (one per sampling session; empty before schema 4)
    audit["engines"] = list(dict.fromkeys(x["engine"] for x in store.sessions(info.id)))
    if isinstance(fn, JudgeCollapse):  # how often the judge was overruled
        audit.update(judge_calls=fn.calls, judged=fn.judged, judge_fallbacks=fn.fallbacks,
                     judge_agrees_with_rules=fn.agree / fn.judged if fn.judged else float("nan"))
    res = RunAnalysis(
        run=info, collapse=collapse, grader=grader, questions=results, summary=summary,
        estimators=est, directory=store.directory, audit=audit,
        collapse_label=describe(collapse, collapse_opts), grader_label=describe(grader, gopts),
        grader_fn=grader_obj, b_check=_hand_check(store, info, results, samples, summary, n_boot, seed),
    )
    if audit_against and audit_against != collapse:
        other = analyze_run(store, info, collapse=audit_against, grader="auto", estimators=[],
                            n_boot=0, seed=seed, cache=cache)
        audit["against"] = compare_collapses(res, other)
    return res


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
    if key not in _JUDGES:
        _JUDGES[key] = open_judge(judge)
    return _JUDGES[key]


def _model_extra(
    stored: dict[str, tuple[float | None, str, int]] | None, prediction: str, n_samples: int
) -> dict[str, float | None]:
    """The stored model-based estimates of one question that are about ``prediction`` over
    the same ``n_samples`` samples (else the value rated another answer: left out)."""
    if not stored:
        return {}
    return {
        name: value
        for name, (value, label, n) in stored.items()
        if label == prediction and n == n_samples
    }


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


# ----------------------------------------------------------------------------- adaptive replay


def adaptive_replay(
    analysis: RunAnalysis, adaptive: Any, n_boot: int = 0, seed: int = 0
) -> dict[str, Any]:
    """What adaptive sampling would have done on a fixed-M run, from its stored samples.

    For each question, the stopping rule of :mod:`semcal.runner` is applied to its labels in
    sample order (the samples are i.i.d., so a prefix is distributed like an adaptive run's
    samples); the question's confidence and verdict are then recomputed on the prefix.
    Returns the samples used (total and as a fraction of the fixed run's) and the calibration
    summaries of both, so the change in smECE can be read off (``smece_fixed`` and
    ``smece_adaptive``). ``adaptive`` is an :class:`~semcal.spec.AdaptiveSpec`; the most a
    question gets is the run's M (``samples``). The prefix is graded by the run's grader
    (``RunAnalysis.grader_fn``: its tolerance, its judge), as the full run was.
    """
    samples = analysis.run.samples
    grader = analysis.grader_fn or get_grader(analysis.grader)
    conf_a, corr_a, used = [], [], []
    for q in analysis.questions:
        labels = list(q.labels)
        n = 0
        while True:
            step = next_round_size(n, adaptive, samples)
            if step == 0 or n + step > len(labels):
                n = len(labels)
                break
            n += step
            if should_stop(labels[:n], adaptive, samples):
                break
        gr = grader(_question_of(q), Collapsed(tuple(labels[:n]), q.gold_labels),
                    list(q.texts[:n]))
        conf_a.append(gr.confidence)
        corr_a.append(float(gr.correct))
        used.append(n)
    fixed = analysis.summary
    adapt = calibration_summary(conf_a, corr_a, n_boot=n_boot, seed=seed)
    total_fixed = int(sum(q.n_samples for q in analysis.questions))
    return {
        "run": analysis.run.name,
        "n_questions": len(used),
        "samples_fixed": total_fixed,
        "samples_adaptive": int(sum(used)),
        "fraction": sum(used) / total_fixed if total_fixed else float("nan"),
        "stopped_early": int(sum(u < q.n_samples for u, q in zip(used, analysis.questions))),
        "smece_fixed": fixed.get("smece"),
        "smece_adaptive": adapt["smece"],
        "accuracy_fixed": fixed.get("accuracy"),
        "accuracy_adaptive": adapt["accuracy"],
        "ece_fixed": fixed.get("ece"),
        "ece_adaptive": adapt["ece"],
        "per_question_samples": used,
    }


def _question_of(q: QuestionResult) -> Question:
    """The :class:`~semcal.types.Question` a grader needs, from an analysed question."""
    return Question(id=q.qid, question=q.question, answers=tuple(q.gold), task=q.task)


# ----------------------------------------------------------------------------- export


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_safe(v: Any) -> Any:
    """Defuse a text cell a spreadsheet would run as a formula (model output and dataset text
    are untrusted): prefix it with ``'``. Plain numbers such as ``-5`` are left alone."""
    if isinstance(v, str) and v.startswith(_FORMULA_START):
        try:
            float(v.replace(",", ""))
        except ValueError:
            return "'" + v
    return v


def write_table(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write the per-question table as CSV (``.csv``) or Parquet (``.parquet``).

    CSV text cells that start like a spreadsheet formula get a leading ``'`` (see
    :func:`_csv_safe`); Parquet keeps every value as it is."""
    p = Path(path)
    if not rows:
        raise InputError("nothing to export (no analysed questions)")
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    if p.suffix == ".csv":
        with atomic_path(p) as tmp:
            try:
                with tmp.open("w", newline="", encoding="utf-8") as f:
                    w = csv.DictWriter(f, fieldnames=cols)
                    w.writeheader()
                    for r in rows:
                        w.writerow({k: _csv_safe(r.get(k)) for k in cols})
            except OSError as exc:
                raise InputError(f"cannot write {p}: {exc.strerror or exc}") from None
    elif p.suffix == ".parquet":
        pa = require("pyarrow", "Parquet export", "parquet")
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([{k: r.get(k) for k in cols} for r in rows])
        with atomic_path(p) as tmp:
            try:
                pq.write_table(table, str(tmp))
            except OSError as exc:
                raise InputError(f"cannot write {p}: {exc.strerror or exc}") from None
    else:
        raise InputError(f"unknown export format {p.suffix!r} (use .csv or .parquet)")
    return p
