"""How long a run's sampling took, across the sessions that drew it (``run_sessions``).

A long run is sampled in several sessions (a resumed run opens a new one). Each session that
semcal timed (schema 5 on) knows when it started, when it last stored a batch, and the samples,
tokens and finished questions it stored; the run's sampling time is the sum over those
sessions of the span from start to last stored batch. Work a session lost (the batch in
progress when it was killed) is not in that span; model loading before the session started
is not either. Sessions recorded before semcal timed them, and sessions that stored nothing,
are counted apart, never guessed.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from typing import Any


def sampling_time(sessions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The sampling time of one run from its sessions (``Store.sessions``): ``sessions``
    (all), ``timed`` (those with counts), ``seconds``, ``samples``, ``tokens``, ``questions``
    (sums over the timed ones) and ``tokens_per_s`` (NaN when no time was measured)."""
    timed = [s for s in sessions if s.get("updated") is not None]
    seconds = 0.0
    for s in timed:
        span = (_parse(s["updated"]) - _parse(s["started"])).total_seconds()
        seconds += max(span, 0.0)  # a clock set back between two writes counts as 0
    tokens = sum(int(s["tokens"]) for s in timed)
    return {
        "sessions": len(sessions),
        "timed": len(timed),
        "seconds": seconds,
        "samples": sum(int(s["samples"]) for s in timed),
        "tokens": tokens,
        "questions": sum(int(s["questions"]) for s in timed),
        "tokens_per_s": tokens / seconds if seconds > 0 else math.nan,
    }


def sampling_note(t: Mapping[str, Any]) -> str:
    """One line for the CLI and the report: ``"1 h 52 min over 2 sessions, 8,016 samples,
    132,100 tokens (19.7 tokens/s), 53 questions finished; 4 sessions not timed (...)"``;
    "" for a run with no sessions."""
    if not t or not t.get("sessions"):
        return ""
    untimed = t["sessions"] - t["timed"]
    why = "recorded before semcal timed sampling, or nothing stored"
    if not t["timed"]:
        return f"not timed ({_plural(untimed, 'session')}: {why})"
    rate = t["tokens_per_s"]
    out = (f"{_duration(t['seconds'])} over {_plural(t['timed'], 'session')}, "
           f"{_plural(t['samples'], 'sample')}, {_plural(t['tokens'], 'token')}"
           + ("" if math.isnan(rate) else f" ({rate:.1f} tokens/s)")
           + f", {_plural(t['questions'], 'question')} finished")
    if untimed:
        out += f"; {_plural(untimed, 'session')} not timed ({why})"
    return out


def _parse(stamp: str) -> _dt.datetime:
    when = _dt.datetime.fromisoformat(stamp)
    return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h} h {m} min"
    return f"{m} min {sec} s" if m else f"{sec} s"


def _plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
