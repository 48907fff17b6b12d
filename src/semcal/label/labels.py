"""The hand-label file of one run: reading, checking and writing it.

``semcal label DIR --run NAME`` writes ``DIR/labels-<run>.jsonl`` (:func:`label_path`), one
JSON object per labelled question::

    {"run": "<run name>", "id": "<question id>", "samples": [0, 1, 2, ...],
     "labels": ["1", "1", "2", "<none>", null, ...], "gold": "1"}

``samples`` are the stored sample indices of the question, in order, and ``labels[i]`` is
the hand class of sample ``samples[i]``: ``"1"`` ... ``"9"`` (responses that give the same
answer share a digit), ``"<none>"`` (no answer) or ``"<refusal>"`` — the tokens of the
benchmark's label files (:data:`semcal.collapse.labelled.NONE_LABEL`, ``REFUSAL_LABEL``) —
or ``null`` while not yet labelled. ``gold`` is the class whose answer is the gold answer,
``"<no-gold>"`` when no class is, or ``null`` while not yet marked. A question counts as
labelled (:attr:`HandLabels.complete`) when every response has a class and ``gold`` is set.

The file is untrusted input: it is read only when it is a regular file of at most
:data:`MAX_LABEL_BYTES`, every line is checked, and a line of another run, an unknown
question or samples that are not the run's is one :class:`~semcal.errors.InputError` naming
the file and line. It is written whole on every save (:func:`write_labels`): a temporary
file in the same folder, flushed to disk, renamed over the old one, so a kill at any moment
leaves the old file or the new one, never a part.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semcal.collapse.labelled import NONE_LABEL, REFUSAL_LABEL
from semcal.errors import InputError
from semcal.limits import regular_file

#: the class labels a person can give a response
CLASS_LABELS = tuple(str(k) for k in range(1, 10))
#: every allowed label of a response (None: not yet labelled)
RESPONSE_LABELS = frozenset((*CLASS_LABELS, NONE_LABEL, REFUSAL_LABEL))
#: ``gold`` when no class of the question gives the gold answer
NO_GOLD = "<no-gold>"
#: every allowed ``gold`` (None: not yet marked)
GOLD_LABELS = frozenset((*CLASS_LABELS, NO_GOLD))
#: the largest label file read (a real one is a few kB per question)
MAX_LABEL_BYTES = 16 << 20
#: the most responses of one labelled question (as the most samples per question)
MAX_RESPONSES = 10_000

_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,80}")


@dataclass(frozen=True)
class HandLabels:
    """One question's hand labels (see the module docstring)."""

    run: str
    qid: str
    samples: tuple[int, ...]
    labels: tuple[str | None, ...]
    gold: str | None

    @property
    def complete(self) -> bool:
        return self.gold is not None and all(lab is not None for lab in self.labels)

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run, "id": self.qid, "samples": list(self.samples),
                "labels": list(self.labels), "gold": self.gold}


def label_path(directory: str | os.PathLike[str], run: str) -> Path:
    """``DIR/labels-<run>.jsonl``; a run name that is not a plain file name (``/``, spaces,
    other characters, over 80 characters) is written with ``_`` for those characters and a
    short hash of the full name, so two runs never share a file. Next to a store,
    :func:`semcal.files.check_output` protects every such name from being overwritten by an
    output flag."""
    stem = run if _SAFE_NAME.fullmatch(run) and not run.startswith(".") else (
        re.sub(r"[^A-Za-z0-9._-]", "_", run)[:60].lstrip(".")
        + "-" + hashlib.sha256(run.encode("utf-8", "surrogatepass")).hexdigest()[:10])
    return Path(directory) / f"labels-{stem}.jsonl"


def check_entry(row: Any, run: str, samples: Mapping[str, Sequence[int]],
                where: str | None = None) -> HandLabels:
    """One question's labels from a decoded JSON object, checked against the run: its name,
    its question ids and each question's stored sample indices (``samples``)."""
    if not isinstance(row, dict):
        raise InputError("a label entry must be a JSON object", where=where)
    extra = set(row) - {"run", "id", "samples", "labels", "gold"}
    if extra:
        raise InputError(f"unknown key(s) {', '.join(sorted(map(repr, extra)))}", where=where)
    if row.get("run") != run:
        raise InputError(f"labels of run {_short(row.get('run'))}, not of run {run!r} (one "
                         "label file per run)", where=where)
    qid = row.get("id")
    if not isinstance(qid, str) or qid not in samples:
        raise InputError(f"question {_short(qid)} is not a sampled question of run {run!r}",
                         where=where)
    got = row.get("samples")
    stored = list(samples[qid])
    if not isinstance(got, list) or got != stored:
        raise InputError(f"question {qid!r}: 'samples' must be the run's sample indices "
                         f"({_short(stored)}), got {_short(got)}", where=where)
    labels = row.get("labels")
    if not isinstance(labels, list) or len(labels) != len(stored):
        raise InputError(f"question {qid!r}: 'labels' must be a list of {len(stored)} labels, "
                         "one per sample", where=where)
    for lab in labels:
        if lab is not None and lab not in RESPONSE_LABELS:
            raise InputError(f"question {qid!r}: a label must be 1-9, {NONE_LABEL}, "
                             f"{REFUSAL_LABEL} or null, got {_short(lab)}", where=where)
    gold = row.get("gold")
    if gold is not None and gold not in GOLD_LABELS:
        raise InputError(f"question {qid!r}: 'gold' must be 1-9, {NO_GOLD} or null, got "
                         f"{_short(gold)}", where=where)
    return HandLabels(run, qid, tuple(stored), tuple(labels), gold)


def _short(v: Any, limit: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_labels(path: str | os.PathLike[str], run: str,
                samples: Mapping[str, Sequence[int]]) -> dict[str, HandLabels]:
    """The labels of ``path`` by question id ({} when the file does not exist), each line
    checked by :func:`check_entry`. A file over :data:`MAX_LABEL_BYTES`, not UTF-8, with a
    line that is not JSON or with a question twice is an InputError naming it."""
    p = Path(path)
    if not os.path.lexists(p):
        return {}
    regular_file(p, "label file")
    size = p.stat().st_size
    if size > MAX_LABEL_BYTES:
        raise InputError(f"label file is {size} bytes, more than the {MAX_LABEL_BYTES >> 20} "
                         "MiB a label file may have", where=str(p))
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_LABEL_BYTES + 1)
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError("label file is not UTF-8 text", where=str(p)) from None
    except OSError as exc:
        raise InputError(f"cannot read the label file: {exc.strerror}", where=str(p)) from None
    if len(raw) > MAX_LABEL_BYTES:
        raise InputError(f"label file is larger than {MAX_LABEL_BYTES >> 20} MiB", where=str(p))
    out: dict[str, HandLabels] = {}
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{p}:{i}"
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            raise InputError(f"invalid JSON in the label file: {msg}", where=where) from None
        entry = check_entry(row, run, samples, where)
        if entry.qid in out:
            raise InputError(f"question {entry.qid!r} is labelled twice", where=where)
        out[entry.qid] = entry
    return out


def write_labels(path: str | os.PathLike[str], entries: Iterable[HandLabels]) -> None:
    """Write ``entries`` as the whole label file: a new temporary file in the same folder
    (``O_EXCL | O_NOFOLLOW``: never through a link), flushed with fsync, then renamed over
    ``path`` and the folder flushed too. A failure or a kill leaves the previous file."""
    p = Path(path)
    text = "".join(json.dumps(e.to_json(), ensure_ascii=False) + "\n" for e in entries)
    tmp = p.with_name(f".{p.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(tmp, flags, 0o644)
        try:
            data = text.encode("utf-8")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, p)
        _fsync_dir(p.parent)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise InputError(f"cannot save the labels: {exc.strerror or exc} (the previous file "
                         "is unchanged)", where=str(p)) from None


def remove_stale_temps(path: str | os.PathLike[str], older_than: float = 60.0) -> int:
    """Remove the temporary files a killed writer of ``path`` left behind (those not changed
    for ``older_than`` seconds: a save in progress takes milliseconds); their count."""
    p = Path(path)
    n = 0
    now = time.time()
    for tmp in p.parent.glob(f".{p.name}.*.tmp"):
        with contextlib.suppress(OSError):
            st = os.lstat(tmp)
            if stat.S_ISREG(st.st_mode) and now - st.st_mtime > older_than:
                tmp.unlink()
                n += 1
    return n


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


__all__ = ["CLASS_LABELS", "GOLD_LABELS", "MAX_LABEL_BYTES", "NO_GOLD", "RESPONSE_LABELS",
           "HandLabels", "check_entry", "label_path", "read_labels", "remove_stale_temps",
           "write_labels"]
