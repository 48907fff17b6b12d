"""Label a run's samples with a B: read the stored samples (:func:`read_run`), give each
question's samples and greedy answer their classes (:class:`Labeller`, from the store's cache,
from worker processes, or from B in this process) and cache new classes
(:func:`save_classes`).

B reads every sample of a run (about 40 µs a sample) and is the one step of the analysis that
grows with the number of samples: for a large run, worker processes (:class:`_CollapsePool`)
label questions' texts while the rest of the run is still being read. Their job,
:func:`_collapse_chunk`, is a module-level function so that it can be sent to them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from semcal.analysis.workers import _stop_pool, package_value
from semcal.collapse import COLLAPSES, get_collapse
from semcal.errors import SemcalError, StoreError
from semcal.grade import is_empty_answer
from semcal.store import RunInfo, Store
from semcal.types import NO_ANSWER, Collapsed, Completion, Question

log = logging.getLogger(__package__)


def _collapse_fn(name: str, **opts: Any) -> Callable[[Question, Sequence[str]], Collapsed]:
    return get_collapse(name, **opts)


def _make_collapse(name: str,
                   opts: dict[str, Any]) -> Callable[[Question, Sequence[str]], Collapsed]:
    """B ``name`` with ``opts``, made by ``semcal.analysis._collapse_fn`` (the package's, which
    a caller may replace)."""
    return package_value("_collapse_fn")(name, **opts)


def _collapse_chunk(
    args: tuple[str, dict[str, Any], list[tuple[Question, list[str]]]],
) -> list[tuple[tuple[str, ...], frozenset[str]]]:
    """Label a chunk of questions' texts in a worker process."""
    name, opts, items = args
    fn = _make_collapse(name, opts)
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
        if n_texts < package_value("PARALLEL_MIN_TEXTS") or not _parallel_collapse(name):
            return None
        pool = package_value("_fork_pool")(8, "collapsing")
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


# ----------------------------------------------------------------------------- reading a run


@dataclass
class RunSamples:
    """What the analysis reads of a run: its questions, the samples of the questions whose
    sampling is finished, greedy completions, cached classes, and the labels the worker
    processes gave (``precomputed``); ``order`` lists the questions to analyse."""

    questions: dict[str, Question]
    samples: dict[str, list[Any]]
    greedy: dict[str, Any]
    cached: dict[str, Any]
    precomputed: dict[str, tuple[tuple[str, ...], frozenset[str]]]
    order: list[str]


def _feed_pool(store: Store, info: RunInfo, pool: _CollapsePool | None,
               questions: dict[str, Question], done: Any, greedy: dict[str, Any],
               cached: dict[str, Any], keep: set[str] | None) -> dict[str, list[Any]]:
    """Read the run's samples question by question, handing the texts of each analysed
    question without fresh cached classes to ``pool`` as they arrive."""
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
    return samples


def read_run(store: Store, info: RunInfo, *, collapse: str, fn_opts: dict[str, Any], ckey: str,
             cache: bool, only: Sequence[str] | None) -> RunSamples:
    """Read run ``info`` for the analysis with B ``collapse`` (``ckey``: its cache key), its
    texts labelled by worker processes meanwhile when the run is large. Only questions whose
    sampling is finished are analysed (and, with ``only``, only those ids)."""
    questions = {q.id: q for q in store.questions(info.id)}
    done = store.done_ids(info.id)
    greedy = store.greedy(info.id)
    cached = store.classes(info.id, ckey) if cache or store.readonly else {}
    keep = None if only is None else set(only)
    pool = _CollapsePool.open(collapse, fn_opts, store.progress(info.id)[2])
    samples = _feed_pool(store, info, pool, questions, done, greedy, cached, keep)
    precomputed = pool.results() if pool is not None else {}
    order = [qid for qid in questions
             if qid in done and samples.get(qid) and (keep is None or qid in keep)]
    return RunSamples(questions, samples, greedy, cached, precomputed, order)


# ----------------------------------------------------------------------------- labelling


@dataclass
class Labelled:
    """One question's samples with their classes: ``labels`` of the samples, ``gold`` (B's
    classes of the gold answers), the greedy completion ``g`` and its class ``g_label``."""

    comps: list[Completion]
    texts: tuple[str, ...]
    labels: tuple[str, ...]
    gold: frozenset[str]
    g: Any
    g_label: str | None


@dataclass
class Labeller:
    """Gives each question of ``run`` its classes under B ``collapse``; B itself is made on
    the first question that needs it. Classes computed here are collected in
    ``new_classes`` for :func:`save_classes`."""

    collapse: str
    fn_opts: dict[str, Any]
    run: RunSamples
    fn: Any = None
    new_classes: list[tuple[str, int, tuple[str, ...], frozenset[str], str | None]] = field(
        default_factory=list)

    def label(self, qid: str) -> Labelled:
        run = self.run
        comps: list[Completion] = [s.completion for s in run.samples[qid]]
        texts = tuple(c.text for c in comps)
        g = run.greedy.get(qid)
        hit = run.cached.get(qid)
        if _cached_classes_fresh(hit, len(texts), g):
            _, labels, gold, g_label = hit
        else:
            labels, gold, g_label = self._new_labels(qid, texts, g)
        # an empty answer is no answer in every B, a user's own included
        labels = tuple(NO_ANSWER if is_empty_answer(t) else lab for t, lab in zip(texts, labels))
        if g is not None and is_empty_answer(g.text):
            g_label = NO_ANSWER
        return Labelled(comps, texts, labels, gold, g, g_label)

    def _new_labels(self, qid: str, texts: tuple[str, ...],
                    g: Any) -> tuple[tuple[str, ...], frozenset[str], str | None]:
        """The classes of a question without fresh cached ones: from the workers, else from B."""
        all_texts = list(texts) + ([g.text] if g is not None else [])
        if qid in self.run.precomputed:
            labs, col_gold = self.run.precomputed[qid]
        else:
            col = self._collapse()(self.run.questions[qid], all_texts)
            labs, col_gold = tuple(col.labels), frozenset(col.gold)
        if len(labs) != len(all_texts):
            raise SemcalError(
                f"collapse {self.collapse!r} returned {len(labs)} labels for {len(all_texts)} texts"
            )
        labels = labs[: len(texts)]
        g_label = labs[-1] if g is not None else None
        self.new_classes.append((qid, len(texts), labels, col_gold, g_label))
        return labels, col_gold, g_label

    def _collapse(self) -> Any:
        """B, made once; a B with ``prepare`` (the judge) first reads every question's
        uncached responses, to ask about them in batches."""
        if self.fn is None:
            run = self.run
            self.fn = _make_collapse(self.collapse, self.fn_opts)
            if hasattr(self.fn, "prepare"):
                self.fn.prepare(_uncached_texts(run.order, run.questions, run.samples,
                                                run.greedy, run.cached))
        return self.fn


def save_classes(store: Store, info: RunInfo, ckey: str, new_classes: list[Any]) -> None:
    """Cache the classes computed in this analysis; a store that cannot take them is logged."""
    try:
        store.save_classes(info.id, ckey, new_classes)
    except StoreError as exc:
        # harmless (a read-only or full store): the classes are computed again next time;
        # not a warning, so that an error stays the one line it promises to be
        log.info("could not cache collapse results: %s", exc)

