"""The local executor: every group sampled in this process, one after the other."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from semcal.backends import get_sampler
from semcal.backends.base import Sampler
from semcal.executors.base import AdaptiveCommit, AdaptiveState, CollapseFn, FixedCommit
from semcal.executors.groups import adaptive_group, sample_group
from semcal.spec import RunSpec
from semcal.types import Prompt, Question

log = logging.getLogger("semcal.runner")  # the logger these lines had when the runner held them


def open_sampler(spec: RunSpec) -> Sampler:
    """The model of ``spec`` in this process (its backend, model and backend options)."""
    log.info("opening model %s on %s", spec.model, spec.backend)
    # llama.cpp's prefix cache stays on (its default): for the one-question calls the runner
    # makes it changes no bit of the samples (tests/test_determinism.py), so a resumed run
    # repeats an uninterrupted one
    return get_sampler(spec.backend, spec.model, **dict(spec.backend_options))


class LocalExecutor:
    """Samples a run in this process with one :class:`~semcal.backends.base.Sampler`."""

    def __init__(self, sampler: Sampler) -> None:
        self._sampler = sampler

    @classmethod
    def open(cls, spec: RunSpec) -> LocalExecutor:
        return cls(open_sampler(spec))

    @property
    def sampler(self) -> Sampler:
        return self._sampler

    def count_tokens_many(self, prompts: Sequence[Prompt]) -> list[int | None]:
        return [self._sampler.count_tokens(p) for p in prompts]

    def run_fixed(
        self, spec: RunSpec, groups: list[list[Question]], prompts: dict[str, Prompt],
        is_chat: bool, commit: FixedCommit,
    ) -> None:
        for group in groups:
            t = time.monotonic()
            commit(group, sample_group(self._sampler, spec, group, prompts, is_chat))
            log.debug("stored %d questions × %d samples in %.2fs", len(group), spec.samples,
                      time.monotonic() - t)

    def run_adaptive(
        self, spec: RunSpec, groups: list[list[Question]], prompts: dict[str, Prompt],
        is_chat: bool, collapse_fn: CollapseFn, state: AdaptiveState, has_greedy: set[str],
        commit: AdaptiveCommit,
    ) -> None:
        for group in groups:  # each group's stored state read when its turn comes
            texts, rounds = state(group)
            for batch in adaptive_group(self._sampler, spec, group, prompts, is_chat,
                                        collapse_fn, texts, rounds, has_greedy):
                commit(batch)

    def close(self) -> None:
        self._sampler.close()
