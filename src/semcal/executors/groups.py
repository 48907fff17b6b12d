"""The unit of work of every executor: one group of questions, sampled.

A fixed-M run samples each group once (:func:`sample_group`); an adaptive run samples it in
rounds until the stopping rule holds (:func:`adaptive_group`). The same functions run in this
process (:class:`~semcal.executors.local.LocalExecutor`) and on a Ray actor
(:class:`~semcal.executors.ray_pool.RayPool`), so the seeds, and with a deterministic engine the
samples, do not depend on where a group was drawn.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from semcal.adaptive import next_round_size, should_stop
from semcal.backends.base import Sampler, prompt_seed, sample_seed
from semcal.errors import SemcalError
from semcal.prompts import stop_strings
from semcal.spec import RunSpec
from semcal.types import Completion, Prompt, Question, SamplingParams

log = logging.getLogger("semcal.runner")  # the logger these lines had when the runner held them

#: what :func:`sample_group` returns per question: (id, completions, greedy completion,
#: per-sample seeds)
GroupRow = tuple[str, list[Completion], Completion | None, list[int]]


def batch_seed(run_seed: int, qid: str | None, round: int) -> int:
    """The ``SamplingParams.seed`` of one question's round (a 31-bit integer).

    Depends only on (run seed, question id, round). With several questions per ``sample()``
    call the engine takes one seed per call, so the question id is left out (``qid=None``)
    and the seed depends on (run seed, round) only; the run key records which mode was used.
    The engine mixes in the prompt (``prompt_seed``), so sample ``i`` of a question uses
    ``sample_seed(prompt_seed(batch_seed(...), prompt), i)`` — the value stored with it.
    """
    h = hashlib.sha256(f"{int(run_seed)}\x1f{qid if qid is not None else ''}\x1f{int(round)}".encode())
    return int.from_bytes(h.digest()[:4], "little") & 0x7FFFFFFF


def sampling_params(spec: RunSpec, is_chat: bool, seed: int, greedy: bool = False) -> SamplingParams:
    """The sampling parameters of one call of a run (``greedy``: its greedy completion)."""
    return SamplingParams(
        temperature=0.0 if greedy else float(spec.temperature),
        top_p=1.0 if greedy else float(spec.top_p),
        max_tokens=spec.resolved_max_tokens(),
        stop=tuple(stop_strings(spec.style, is_chat)),
        seed=seed,
        logprobs=True,
    )


def _check_batch(out: list[list[Completion]], n_prompts: int, n: int) -> None:
    if len(out) != n_prompts or any(len(c) != n for c in out):
        raise SemcalError(
            f"the backend returned {[len(c) for c in out]} completions for {n_prompts} prompts × {n}"
        )


def _greedy(
    sampler: Sampler, prompts: Sequence[Prompt], spec: RunSpec, is_chat: bool
) -> list[Completion | None]:
    if not spec.greedy:
        return [None] * len(prompts)
    out = sampler.sample(list(prompts), 1, sampling_params(spec, is_chat, spec.seed, greedy=True))
    _check_batch(out, len(prompts), 1)
    return [c[0] for c in out]


def sample_group(
    sampler: Sampler, spec: RunSpec, group: Sequence[Question], prompts: dict[str, Prompt],
    is_chat: bool,
) -> list[GroupRow]:
    """Draw the M samples (and the greedy completion) of one group of questions — the unit of
    a fixed-M run, the same in this process and on a Ray actor. Returns, per question,
    (id, completions, greedy completion, per-sample seeds)."""
    m = spec.samples
    qid_for_seed = group[0].id if len(group) == 1 and spec.batch_questions == 1 else None
    seed = batch_seed(spec.seed, qid_for_seed, 0)
    batch_prompts = [prompts[q.id] for q in group]
    out = sampler.sample(batch_prompts, m, sampling_params(spec, is_chat, seed))
    _check_batch(out, len(group), m)
    greedy = _greedy(sampler, batch_prompts, spec, is_chat)
    return [
        (q.id, comps, g, [sample_seed(prompt_seed(seed, prompts[q.id]), i) for i in range(m)])
        for q, comps, g in zip(group, out, greedy)
    ]


@dataclass
class RoundResult:
    """One adaptive round of one question, as the runner commits it (``completions`` empty and
    ``done`` True: M was reached before a stop was stored, nothing to draw)."""

    qid: str
    round: int
    start_index: int
    completions: list[Completion]
    seeds: list[int]
    greedy: Completion | None
    done: bool


def adaptive_group(
    sampler: Sampler, spec: RunSpec, group: Sequence[Question], prompts: dict[str, Prompt],
    is_chat: bool, collapse_fn: Callable[[Question, Sequence[str]], Any],
    texts: dict[str, list[str]], rounds: dict[str, int], has_greedy: set[str],
) -> Iterator[list[RoundResult]]:
    """The adaptive rounds of one group of questions — the unit of an adaptive run, the same
    in this process and on a Ray actor. ``texts``/``rounds``: each question's stored samples
    and next round number (updated here); ``has_greedy``: questions whose greedy completion is
    stored (updated). Yields, call by call, the rounds to commit in order."""
    ad = spec.adaptive
    active = list(group)
    while active:
        # questions whose next round has the same (round number, size) share one call
        calls: dict[tuple[int, int], list[Question]] = {}
        for q in active:
            size = next_round_size(len(texts[q.id]), ad, spec.samples)
            calls.setdefault((rounds[q.id], size), []).append(q)
        still: list[Question] = []
        for (rnd, size), qs in sorted(calls.items()):
            if size == 0:  # nothing left to draw (M reached before a stop was stored)
                yield [RoundResult(q.id, rnd, len(texts[q.id]), [], [], None, True) for q in qs]
                continue
            batch = _one_round(sampler, spec, qs, rnd, size, prompts, is_chat, collapse_fn,
                               texts, rounds, has_greedy)
            still += [q for q, r in zip(qs, batch) if not r.done]
            yield batch
        active = still


def _one_round(
    sampler: Sampler, spec: RunSpec, qs: list[Question], rnd: int, size: int,
    prompts: dict[str, Prompt], is_chat: bool,
    collapse_fn: Callable[[Question, Sequence[str]], Any],
    texts: dict[str, list[str]], rounds: dict[str, int], has_greedy: set[str],
) -> list[RoundResult]:
    """One call of :func:`adaptive_group`: round ``rnd`` of ``size`` samples for the questions
    ``qs``, each judged by the stopping rule (``texts``, ``rounds``, ``has_greedy`` updated)."""
    qid_for_seed = qs[0].id if spec.batch_questions == 1 else None
    seed = batch_seed(spec.seed, qid_for_seed, rnd)
    out = sampler.sample([prompts[q.id] for q in qs], size, sampling_params(spec, is_chat, seed))
    _check_batch(out, len(qs), size)
    need_greedy = [q for q in qs if q.id not in has_greedy] if spec.greedy else []
    greedy_by_id: dict[str, Completion | None] = {}
    if need_greedy:
        gs = _greedy(sampler, [prompts[q.id] for q in need_greedy], spec, is_chat)
        greedy_by_id = {q.id: g for q, g in zip(need_greedy, gs)}
    batch: list[RoundResult] = []
    for q, comps in zip(qs, out):
        all_texts = texts[q.id] + [c.text for c in comps]
        stop = should_stop(list(collapse_fn(q, all_texts).labels), spec.adaptive, spec.samples)
        batch.append(RoundResult(
            q.id, rnd, len(texts[q.id]), list(comps),
            [sample_seed(prompt_seed(seed, prompts[q.id]), i) for i in range(size)],
            greedy_by_id.get(q.id), stop))
        if q.id in greedy_by_id:
            has_greedy.add(q.id)
        texts[q.id] = all_texts
        rounds[q.id] = rnd + 1
        if stop:
            log.debug("question %s stopped after %d samples", q.id, len(all_texts))
    return batch
