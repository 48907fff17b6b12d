"""Threads and cores: how many CPU threads llama.cpp gets by default.

``_default_threads`` counts the cores this process may use that other work leaves idle
(measured from /proc/stat). It reads ``_cores`` and ``_busy_cores`` from the package
``semcal.backends.llamacpp``, where callers and tests replace them.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

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
    if second is None:
        return None
    return _busy_between(first, second, os.cpu_count() or 1)


def _busy_between(first: tuple[int, int], second: tuple[int, int], ncpu: int) -> float | None:
    """Cores the whole machine kept busy between two /proc/stat readings (None: no time)."""
    if second[1] <= first[1]:
        return None
    return (second[0] - first[0]) / (second[1] - first[1]) * ncpu


def _free_cores(cores: int, busy: float) -> int:
    """The cores left when other work keeps ``busy`` of them busy (at least 1)."""
    return max(1, min(cores, int(cores - busy + 0.5)))


def _default_threads() -> int:
    """The cores this process may use that nothing else keeps busy right now (at least 1).

    llama.cpp's threads wait for each other by spinning at every step, so a thread that
    shares its core with other busy work stalls all the others: beside two busy threads on
    two cores, two llama.cpp threads kept 28 % of their idle speed. Counting only free cores
    keeps sampling near a fair share on a busy machine; on an idle one it is every core.
    The choice is made when the model loads and revised while it samples (see
    :class:`ThreadGovernor`); pass ``n_threads`` to fix it."""
    from semcal.backends import llamacpp as pkg  # the names as patched on the package

    cores = pkg._cores()
    busy = pkg._busy_cores() if cores > 1 else None
    if busy is None:
        return cores
    free = _free_cores(cores, busy)
    if free < cores:
        log.info("llama.cpp: %d of %d cores (%.1f busy with other work)", free, cores, busy)
    return free



def _own_cpu_seconds() -> float:
    """CPU seconds this process (all its threads) has used."""
    t = os.times()
    return t.user + t.system


class ThreadGovernor:
    """Re-counts the free cores while a sampler works, so that work that starts *after* the
    model loaded (another run, a test suite, a judge) does not leave llama.cpp with more
    spinning threads than it has cores: on 2 cores, 2 threads beside one busy process ran a
    concise GSM8K run 30-80 times slower than alone.

    ``check()`` is cheap (a clock read) and is called before every decode step; at most every
    ``interval`` seconds it compares the machine's busy time (/proc/stat) with this process's
    own CPU time over the same span: what other work keeps busy is the difference, and the
    answer is the cores it leaves free (at least 1, at most ``cores``). It returns the new
    thread count when that differs from the current one, else None. Our own spinning threads
    count as our own time, so they do not hide a free core.
    """

    def __init__(self, threads: int, cores: int, *, interval: float = 2.0,
                 clock: Any = time.monotonic, machine: Any = _cpu_times,
                 own: Any = _own_cpu_seconds, ncpu: int | None = None) -> None:
        self.threads = threads
        self.cores = cores
        self.interval = interval
        self._clock = clock
        self._machine = machine
        self._own = own
        self._ncpu = ncpu or os.cpu_count() or 1
        self._last: tuple[float, tuple[int, int], float] | None = None
        self._next = clock()

    def check(self) -> int | None:
        now = self._clock()
        if now < self._next:
            return None
        self._next = now + self.interval
        times = self._machine()
        if times is None:
            return None
        last, self._last = self._last, (now, times, self._own())
        if last is None:
            return None
        wall = now - last[0]
        machine_busy = _busy_between(last[1], times, self._ncpu)
        if wall <= 0 or machine_busy is None:
            return None
        own_busy = (self._last[2] - last[2]) / wall
        others = max(0.0, machine_busy - own_busy)
        free = _free_cores(self.cores, others)
        if free == self.threads:
            return None
        log.info("llama.cpp: %d -> %d threads (%.1f cores busy with other work)",
                 self.threads, free, others)
        self.threads = free
        return free
