"""The :class:`Executor` protocol: what the runner asks of whatever draws a run's samples.

The runner owns the store and commits what comes back; an executor only decides where the
groups of questions are sampled (this process, Ray actors, ...). Every executor runs the same
unit of work (:mod:`semcal.executors.groups`) and hands each finished piece to the runner's
``commit`` callback in this process, so a run's stored samples do not depend on the executor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from semcal.backends.base import Sampler
from semcal.executors.groups import GroupRow, RoundResult
from semcal.spec import RunSpec
from semcal.types import Prompt, Question

#: the runner's hook for a fixed-M piece: (its questions, a :data:`GroupRow` per question)
FixedCommit = Callable[[list[Question], list[GroupRow]], None]
#: the runner's hook for one call of adaptive rounds, committed in the order they were drawn
AdaptiveCommit = Callable[[list[RoundResult]], None]
#: the stored state of a group of an adaptive run: (sample texts by id, next round by id)
AdaptiveState = Callable[[list[Question]], "tuple[dict[str, list[str]], dict[str, int]]"]
#: a collapse function, ``(question, texts) -> Collapsed``
CollapseFn = Callable[[Question, Sequence[str]], Any]


@runtime_checkable
class Executor(Protocol):
    """Where a run's groups of questions are sampled.

    ``sampler``: the model for the runner's single calls (``is_chat``, ``context_length``,
    the model-based estimates); an executor that is itself a stand-in sampler returns itself.
    """

    @property
    def sampler(self) -> Sampler: ...

    def count_tokens_many(self, prompts: Sequence[Prompt]) -> list[int | None]:
        """The token count of each prompt (the context check before any sampling)."""
        ...

    def run_fixed(
        self, spec: RunSpec, groups: list[list[Question]], prompts: dict[str, Prompt],
        is_chat: bool, commit: FixedCommit,
    ) -> None:
        """Sample every group once (:func:`~semcal.executors.groups.sample_group`) and call
        ``commit(questions, rows)`` in this process as each piece comes back whole."""
        ...

    def run_adaptive(
        self, spec: RunSpec, groups: list[list[Question]], prompts: dict[str, Prompt],
        is_chat: bool, collapse_fn: CollapseFn, state: AdaptiveState, has_greedy: set[str],
        commit: AdaptiveCommit,
    ) -> None:
        """Sample every group in adaptive rounds
        (:func:`~semcal.executors.groups.adaptive_group`), starting from ``state(group)``;
        call ``commit(rounds of one call)`` for each call, in the order they were drawn."""
        ...

    def close(self) -> None:
        """Free the model(s)."""
        ...
