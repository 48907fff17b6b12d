"""The sampling time of a run across its sessions (pure logic of semcal.analysis.timing)."""

from __future__ import annotations

import math

from semcal.analysis import sampling_note, sampling_time


def _s(started: str, updated: str | None, samples: int = 0, tokens: int = 0,
       questions: int = 0) -> dict:
    timed = updated is not None
    return {"started": started, "updated": updated, "semcal_version": "0", "engine": "e",
            "samples": samples if timed else None, "tokens": tokens if timed else None,
            "questions": questions if timed else None}


def test_sums_the_timed_sessions_and_counts_the_others_apart() -> None:
    t = sampling_time([
        _s("2026-12-05T22:47:54+00:00", None),                                  # before timing
        _s("2026-12-06T20:00:00+00:00", "2026-12-06T21:00:00+00:00", 80, 72_000, 10),
        _s("2026-12-07T08:00:00+00:00", "2026-12-07T08:30:00+00:00", 40, 36_000, 5),
        _s("2026-12-07T09:00:00+00:00", "2026-12-07T09:00:00+00:00", 0, 0, 0),  # nothing new
    ])
    assert (t["sessions"], t["timed"]) == (4, 3)
    assert t["seconds"] == 5400 and (t["samples"], t["tokens"], t["questions"]) == (120, 108_000, 15)
    assert t["tokens_per_s"] == 20.0
    assert sampling_note(t) == ("1 h 30 min over 3 sessions, 120 samples, 108,000 tokens "
                                "(20.0 tokens/s), 15 questions finished; 1 session not timed (recorded before "
                                "semcal timed sampling, or nothing stored)")


def test_a_clock_set_back_counts_zero_and_no_time_gives_no_rate() -> None:
    t = sampling_time([_s("2026-12-06T20:00:05+00:00", "2026-12-06T20:00:00+00:00", 8, 100, 1)])
    assert t["seconds"] == 0 and math.isnan(t["tokens_per_s"])
    assert sampling_note(t) == "0 s over 1 session, 8 samples, 100 tokens, 1 question finished"


def test_no_sessions_or_none_timed() -> None:
    assert sampling_note(sampling_time([])) == ""
    assert sampling_note(sampling_time([_s("2026-12-05T22:47:54+00:00", None)] * 2)) == (
        "not timed (2 sessions: recorded before semcal timed sampling, or nothing stored)")
    t = sampling_time([_s("2026-12-06T20:00:00", "2026-12-06T20:01:05", 8, 130, 1)])  # naive = UTC
    assert t["seconds"] == 65 and sampling_note(t).startswith("1 min 5 s over 1 session")
