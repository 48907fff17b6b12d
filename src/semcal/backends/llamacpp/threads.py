"""Threads and cores: how many CPU threads llama.cpp gets by default.

``_default_threads`` counts the cores this process may use that other work leaves idle
(measured from /proc/stat). It reads ``_cores`` and ``_busy_cores`` from the package
``semcal.backends.llamacpp``, where callers and tests replace them.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger(__package__)  # the logger the single-module backend used


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine from /proc/stat; None where it is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
        values = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError, IndexError):
        return None
    if len(values) < 5:
        return None
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def _busy_cores(window: float = 0.25) -> float | None:
    """How many of the machine's cores other work keeps busy, measured over ``window``
    seconds (None where /proc/stat cannot be read)."""
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(window)
    second = _cpu_times()
    if second is None or second[1] <= first[1]:
        return None
    share = (second[0] - first[0]) / (second[1] - first[1])
    return share * (os.cpu_count() or 1)


def _default_threads() -> int:
    """The cores this process may use that nothing else keeps busy right now (at least 1).

    llama.cpp's threads wait for each other by spinning at every step, so a thread that
    shares its core with other busy work stalls all the others: beside two busy threads on
    two cores, two llama.cpp threads kept 28 % of their idle speed. Counting only free cores
    keeps sampling near a fair share on a busy machine; on an idle one it is every core.
    The choice is made once, when the model loads (pass ``n_threads`` to fix it)."""
    from semcal.backends import llamacpp as pkg  # the names as patched on the package

    cores = pkg._cores()
    busy = pkg._busy_cores() if cores > 1 else None
    if busy is None:
        return cores
    free = max(1, min(cores, int(cores - busy + 0.5)))
    if free < cores:
        log.info("llama.cpp: %d of %d cores (%.1f busy with other work)", free, cores, busy)
    return free

