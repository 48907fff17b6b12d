"""Summarise calibration: :func:`calibration_summary` of (confidence, correct) pairs, and
:func:`_summaries_in_parallel`, which computes a batch of summaries in worker processes when
their bootstrap is large (a large summary's smECE resamples split among the workers)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from semcal import metrics as M
from semcal.analysis.workers import _stop_pool, package_value

log = logging.getLogger(__package__)


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


def _summary_job(task: tuple[Any, ...]) -> Any:
    """One task of :func:`_summaries_in_parallel`: a whole summary, or the resample values of
    some metrics for a range of resamples (a part of a large summary). It runs in a worker
    process, so it stays a module-level function (picklable by name)."""
    if task[0] == "summary":
        _, c, y, n_boot, seed = task
        return calibration_summary(c, y, n_boot=n_boot, seed=seed)
    _, c, y, n_boot, seed, names, start, stop = task
    return M.bootstrap_draws(c, y, names, n_boot=n_boot, seed=seed, start=start, stop=stop)


def _summary_tasks(
    jobs: list[tuple[np.ndarray, np.ndarray, int]], seed: int, workers: int,
) -> list[tuple[int, tuple[Any, ...]]]:
    """(job number, task) pairs, the costliest first: a small summary is one task; a large one
    is its smECE resamples cut into ``workers`` ranges plus one task for its other metrics."""
    tasks: list[tuple[float, int, tuple[Any, ...]]] = []
    for j, (c, y, nb) in enumerate(jobs):
        work = float(len(c) * nb)
        if workers < 2 or work < package_value("SPLIT_MIN_BOOT_WORK") or len(c) == 0:
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


def _merge_summaries(
    jobs: list[tuple[np.ndarray, np.ndarray, int]], seed: int,
    tasks: list[tuple[int, tuple[Any, ...]]], done: list[Any],
) -> list[dict[str, Any]]:
    """The summaries of ``jobs`` from the results of their ``tasks``: a whole summary as it
    came back, a split one from its resample values put back in resample order."""
    whole: dict[int, dict[str, Any]] = {}
    parts: dict[int, dict[str, list[tuple[int, np.ndarray]]]] = {}
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
    if work >= package_value("PARALLEL_MIN_BOOT_WORK"):
        tasks = _summary_tasks(jobs, seed, workers)
        pool = package_value("_fork_pool")(min(len(tasks), workers), "summaries")
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
            return _merge_summaries(jobs, seed, tasks, done)
    return [calibration_summary(c, y, n_boot=nb, seed=seed) for c, y, nb in jobs]
