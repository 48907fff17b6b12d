"""Worker processes of the analysis: when a run is large enough to use them, and how they are
started and stopped.

Two steps of the analysis may run in worker processes: labelling the samples with a
rule-based B (:mod:`semcal.analysis.label`) and the bootstrap of the summaries
(:mod:`semcal.analysis.summary`). The thresholds below and :func:`_fork_pool` are read from
the package ``semcal.analysis`` each time they are used (:func:`package_value`), so a value
set there (by a caller or a test) is the one every room sees.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any

log = logging.getLogger(__package__)  # one logger for the analysis, whichever room logs

#: texts to label below which the analysis collapses in its own process
PARALLEL_MIN_TEXTS = 20_000
#: bootstrap work (questions x resamples, summed over the summaries) below which the
#: summaries are computed in the analysis's own process
PARALLEL_MIN_BOOT_WORK = 2_000_000
#: bootstrap work (pairs x resamples) of one summary from which its smECE resamples, the
#: costly part, are split into one range per worker
SPLIT_MIN_BOOT_WORK = 1_000_000


def package_value(name: str) -> Any:
    """The current value of ``semcal.analysis.<name>``, looked up when it is needed (not
    bound at import), so that setting it on the package changes what the rooms use."""
    return getattr(sys.modules[__package__], name)


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
