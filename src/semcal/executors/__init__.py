"""Executors: where a run's samples are drawn.

The runner (:mod:`semcal.runner`) builds the prompts, cuts the pending questions into groups
and commits whatever comes back; an :class:`Executor` samples the groups. ``local``
(:class:`LocalExecutor`) samples them in this process; ``ray`` (:class:`RayPool`) spreads them
over Ray actors. Both run the same unit of work (:mod:`semcal.executors.groups`), so a run's
samples do not depend on the executor.

To add an executor: write a class that satisfies :class:`Executor` (``sampler``,
``count_tokens_many``, ``run_fixed``, ``run_adaptive``, ``close``) and can be opened from a
:class:`~semcal.spec.RunSpec`, add its opener to :data:`EXECUTORS` and its name to
``semcal.spec.EXECUTORS``.
"""

from __future__ import annotations

from collections.abc import Callable

from semcal.backends.base import Sampler
from semcal.executors.base import (
    AdaptiveCommit,
    AdaptiveState,
    CollapseFn,
    Executor,
    FixedCommit,
)
from semcal.executors.groups import (
    GroupRow,
    RoundResult,
    adaptive_group,
    batch_seed,
    sample_group,
    sampling_params,
)
from semcal.executors.local import LocalExecutor, open_sampler
from semcal.executors.ray_pool import RayPool, SamplerActor
from semcal.spec import RunSpec

#: how the executor of each ``[executor] kind`` (``semcal.spec.EXECUTORS``) is opened
EXECUTORS: dict[str, Callable[[RunSpec], Executor]] = {
    "local": LocalExecutor.open,
    "ray": RayPool,  # Ray itself is imported only when a pool is opened
}


def open_executor(spec: RunSpec) -> Executor:
    """The executor of ``spec`` (its ``[executor]`` table), with its model(s) opened."""
    return EXECUTORS[spec.executor.kind](spec)


def executor_for(sampler: Sampler | Executor) -> Executor:
    """The executor of a sampler the caller opened and passed to the runner: an executor
    (such as a :class:`RayPool`) is used as it is, any other sampler runs in this process."""
    return sampler if isinstance(sampler, Executor) else LocalExecutor(sampler)


__all__ = [
    "EXECUTORS",
    "AdaptiveCommit",
    "AdaptiveState",
    "CollapseFn",
    "Executor",
    "FixedCommit",
    "GroupRow",
    "LocalExecutor",
    "RayPool",
    "RoundResult",
    "SamplerActor",
    "adaptive_group",
    "batch_seed",
    "executor_for",
    "open_executor",
    "open_sampler",
    "sample_group",
    "sampling_params",
]
