"""The bounds of every count and size a user can give semcal.

A count passed on the command line or in a spec file (samples per question, bootstrap
resamples, tokens per answer...) sets how much work semcal does and how much memory it takes.
Each has an upper bound here, with the reason for it; the command-line parsers
(:mod:`semcal.cli`) and the spec parsers (:mod:`semcal.spec`, :mod:`semcal.reproduce.spec`)
check every value against this one table, so neither a flag nor a spec file can start work
that does not end (``analyze --n-boot 100000000`` once ran past 300 s and 6.7 GB).

The bounds are far above what a real study uses; they only keep the work finite. The sizes
of input files (a dataset, a spec) are bounded here too, counted after decompression.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semcal.errors import InputError


@dataclass(frozen=True)
class Bound:
    """The allowed range of one integer and why its upper end is where it is."""

    low: int
    high: int
    why: str


#: one question set's most questions; also the most --limit/--questions may ask for
MAX_QUESTIONS = 1_000_000

#: name (a spec key; flags use the same names) -> its range
BOUNDS: dict[str, Bound] = {
    # sampling: the work of a run is questions x samples x max_tokens model steps
    "samples": Bound(1, 10_000, "samples per question; studies use 10-100, and 10000 already "
                     "means hours per question on a CPU and a million stored rows per 100 questions"),
    "max_tokens": Bound(1, 131_072, "tokens per answer; 128 Ki tokens is the longest context of "
                        "current open models, so no engine can write a longer answer"),
    "k_shot": Bound(0, 100, "few-shot examples per prompt; the bundled pools hold a few dozen"),
    "seed": Bound(0, 2**31 - 1, "the 31-bit range every engine takes (llama.cpp reads "
                  "2**32 - 1 as 'a random seed')"),
    "batch_questions": Bound(1, 10_000, "questions per backend call; every prompt of a call and "
                             "all its samples are held in memory at once"),
    "limit": Bound(1, MAX_QUESTIONS, "questions read; a larger set is weeks of sampling and is "
                   "refused whole anyway"),
    "questions": Bound(1, MAX_QUESTIONS, "questions per dataset; as limit"),
    "threads": Bound(1, 4096, "CPU threads of llama.cpp; more than any machine has cores"),
    # adaptive sampling: a round or a minimum beyond the most samples is meaningless
    "adaptive.round": Bound(1, 10_000, "samples per round; at most the most samples per question"),
    "adaptive.min_samples": Bound(1, 10_000, "least samples per question; at most the most "
                                  "samples per question"),
    # where the sampling runs
    "workers": Bound(1, 1024, "Ray actors, each loading its own model; more than any cluster "
                     "a single study uses"),
    "shard_questions": Bound(1, 10_000, "questions handed to one actor at a time"),
    # analysis: every resample costs one pass over the questions, for each metric
    "n_boot": Bound(0, 100_000, "bootstrap resamples; 1000 is the default and 10000 pins a 95% "
                    "interval's ends to about 1%; time and memory grow with it"),
    # semcal label: questions shown for hand labelling, the page's port
    "label_questions": Bound(1, 10_000, "questions in one labelling sample; a person labels "
                             "about 30 in ten minutes, and the page holds every sampled text"),
    "port": Bound(0, 65_535, "TCP port; 0 picks a free one"),
    # the reproduction's theory diagnostics
    "trajectories.questions": Bound(1, MAX_QUESTIONS, "as questions"),
    "trajectories.samples": Bound(1, 10_000, "as samples"),
    "trajectories.continuations": Bound(1, 10_000, "continuations per prefix; as samples"),
    "trajectories.trajectories": Bound(1, 10_000, "prefixes per question; as samples"),
    "selfpredict.questions": Bound(1, MAX_QUESTIONS, "as questions"),
    "selfpredict.samples": Bound(1, 10_000, "as samples"),
    "selfpredict.top_k": Bound(1, 1_000, "next-token candidates asked of the engine; engines "
                               "return at most a few hundred"),
}

#: entries of a list in an experiment spec (models, datasets, temperatures, prefix
#: positions): each one is a run or a pass over the questions
MAX_LIST_ITEMS = 100

#: decompressed bytes of a text dataset (JSONL, CSV, TSV): a gzip bomb stops here
MAX_DATASET_BYTES = 1 << 30
#: lines of a text dataset, blank ones included (a file of newlines costs time, not memory)
MAX_DATASET_LINES = 10_000_000
#: decompressed bytes of a Parquet file (from its metadata, before any page is read)
MAX_PARQUET_BYTES = 1 << 30
#: bytes of a spec or experiment file (TOML); real ones are a few dozen lines
MAX_SPEC_BYTES = 1 << 20


def check_int(name: str, value: Any, low: int | None = None, label: str | None = None) -> int:
    """``value`` if it is an integer within the bounds of ``name``, else an InputError
    naming it (as ``label``, default ``name``) and the bound. ``low`` overrides the table's
    lower end (n_boot: 0 for the analysis, 1 for a reproduction)."""
    bound = BOUNDS[name]
    lo = bound.low if low is None else low
    shown = label or name
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{shown} must be an integer, got {value!r}")
    if value < lo:
        raise InputError(f"{shown} must be >= {lo}, got {value}")
    if value > bound.high:
        raise InputError(f"{shown} must be <= {bound.high} ({bound.why}), got {value}")
    return value


def regular_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` if it names a regular file (following links). A FIFO, socket, device or
    folder is refused at once, before anything opens it: opening a FIFO waits for a writer
    forever and a device such as /dev/zero never ends."""
    p = Path(path)
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        raise InputError(f"{what} not found", where=str(p)) from None
    except OSError as exc:
        raise InputError(f"cannot read the {what}: {exc.strerror}", where=str(p)) from None
    if not stat.S_ISREG(mode):
        raise InputError(f"{what} is {_kind(mode)}, not a regular file", where=str(p))
    return p


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "a special file"


__all__ = ["BOUNDS", "MAX_LIST_ITEMS", "MAX_QUESTIONS", "Bound", "check_int", "regular_file"]
