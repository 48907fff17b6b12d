"""Committing a run as its executor samples it: the pending questions cut into groups, each
group's samples stored in one transaction per question as they come back, the progress bar,
and the warning about empty answers afterwards."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from semcal.collapse import collapse_for
from semcal.executors import Executor, GroupRow, RoundResult
from semcal.grade import is_empty_answer
from semcal.spec import RunSpec
from semcal.store import RunInfo, Store
from semcal.types import Prompt, Question

log = logging.getLogger(__package__)  # one logger for the runner, whichever room logs


class _Progress:
    """A tqdm bar over questions (disabled when quiet or stderr is not a terminal)."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool):
        self.bar = None
        self.t0 = time.monotonic()
        self.samples = 0
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="q", dynamic_ncols=True)

    def update(self, questions: int, samples: int) -> None:
        self.samples += samples
        if self.bar is not None:
            rate = self.samples / max(time.monotonic() - self.t0, 1e-9)
            self.bar.set_postfix_str(f"{rate:.1f} samples/s", refresh=False)
            self.bar.update(questions)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _warn_empty(store: Store, run_info: RunInfo) -> None:
    """One warning line, after sampling, when some of the run's samples are empty answers."""
    total = 0
    why: Counter[str] = Counter()
    for _qid, rows in store.iter_samples(run_info.id, tokens=False):
        total += len(rows)
        why.update(r.completion.finish_reason for r in rows if is_empty_answer(r.completion.text))
    empty = sum(why.values())
    if empty:
        reasons = ", ".join(f"finish_reason {k!r} for {v}" for k, v in why.most_common())
        log.warning(
            "%d of %d samples of run %r are empty (%s): they count as <no answer>; if the "
            "model reasons before it answers, raise max_tokens", empty, total, run_info.name,
            reasons,
        )


def _store_group(store: Store, run_info: RunInfo, rows: list[GroupRow]) -> None:
    for qid, comps, g, seeds in rows:
        store.add_batch(run_info.id, qid, 0, 0, comps, seeds, greedy=g, done=True)


def _run_fixed(
    store: Store,
    run_info: RunInfo,
    spec: RunSpec,
    executor: Executor,
    pending: Sequence[Question],
    prompts: dict[str, Prompt],
    is_chat: bool,
    bar: _Progress,
    on_batch: Callable[[int, int], None] | None,
    total: int,
    on_finished: Callable[[Sequence[Question]], None] | None = None,
) -> int:
    """Fixed M: one round per question, group by group
    (:func:`~semcal.executors.groups.sample_group`), sampled by the executor (in this process,
    or the same groups and seeds in parallel on Ray actors) and committed here as they come
    back. Returns the number of samples stored. ``on_finished(questions)`` is called with the
    questions of each committed batch."""
    m = spec.samples
    state = {"new": 0, "done": total - len(pending)}

    def commit(questions: Sequence[Question], rows: list[GroupRow]) -> None:
        _store_group(store, run_info, rows)
        state["new"] += m * len(questions)
        state["done"] += len(questions)
        bar.update(len(questions), m * len(questions))
        if on_finished is not None:
            on_finished(questions)
        if on_batch is not None:
            on_batch(state["done"], total)

    groups = [list(g) for g in _chunks(pending, spec.batch_questions)]
    executor.run_fixed(spec, groups, prompts, is_chat, commit)
    return state["new"]


def _adaptive_state(store: Store, run_info: RunInfo, group: Sequence[Question]
                    ) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Each question's stored sample texts and next round number (a resumed question)."""
    texts: dict[str, list[str]] = {}
    rounds: dict[str, int] = {}
    for q in group:
        old = store.samples(run_info.id, q.id)
        texts[q.id] = [s.completion.text for s in old]
        rounds[q.id] = (max(s.round for s in old) + 1) if old else 0
    return texts, rounds


def _commit_rounds(store: Store, run_info: RunInfo, batch: list[RoundResult]) -> list[str]:
    """Store one call's rounds; returns the ids of the questions they finished."""
    finished = []
    for r in batch:
        if r.completions:
            store.add_batch(run_info.id, r.qid, r.round, r.start_index, r.completions, r.seeds,
                            greedy=r.greedy, done=r.done)
        elif r.done:
            store.mark_done(run_info.id, r.qid)
        if r.done:
            finished.append(r.qid)
    return finished


def _run_adaptive(
    store: Store,
    run_info: RunInfo,
    spec: RunSpec,
    executor: Executor,
    pending: Sequence[Question],
    prompts: dict[str, Prompt],
    is_chat: bool,
    bar: _Progress,
    collapse_fn: Callable[[Question, Sequence[str]], Any] | None,
    on_batch: Callable[[int, int], None] | None,
    total: int,
    on_finished: Callable[[Sequence[Question]], None] | None = None,
) -> int:
    """Adaptive: rounds until the stopping rule holds, each call's rounds committed as they
    come (:func:`~semcal.executors.groups.adaptive_group`, run by the executor). Returns the
    number of samples stored. ``on_finished(questions)`` is called with the questions each
    committed batch finished."""
    if collapse_fn is None:
        collapse_fn = collapse_for(spec.collapse, style=spec.style, judge=spec.judge)
    by_id = {q.id: q for q in pending}
    state = {"new": 0, "done": total - len(pending)}
    # read once for the whole run (once per group made the runner quadratic)
    has_greedy = store.greedy_ids(run_info.id) if spec.greedy else set()

    def commit(batch: list[RoundResult]) -> None:
        finished = [by_id[qid] for qid in _commit_rounds(store, run_info, batch)]
        drawn = sum(len(r.completions) for r in batch)
        state["new"] += drawn
        state["done"] += len(finished)
        bar.update(len(finished), drawn)
        if on_finished is not None and finished:
            on_finished(finished)
        if on_batch is not None and drawn:
            on_batch(state["done"], total)

    groups = [list(g) for g in _chunks(pending, spec.batch_questions)]
    executor.run_adaptive(spec, groups, prompts, is_chat, collapse_fn,
                          lambda group: _adaptive_state(store, run_info, group), has_greedy,
                          commit)
    return state["new"]
