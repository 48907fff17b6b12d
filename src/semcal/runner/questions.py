"""The questions of a run: loaded from the spec's data set, checked before anything is
written, and, for a run already stored, taken from the store (the run's own copies)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from semcal import data
from semcal.backends import BACKENDS
from semcal.backends.models import resolve_model
from semcal.collapse import get_collapse, uses_judge
from semcal.errors import InputError, SemcalError
from semcal.prompts import STYLES
from semcal.spec import RunSpec
from semcal.store import STORE_NAME, Store, spec_key
from semcal.types import Question

log = logging.getLogger(__package__)  # one logger for the runner, whichever room logs


def load_spec_questions(spec: RunSpec) -> list[Question]:
    """The question set of a spec (bundled name or file), first ``limit`` questions."""

    source = spec.dataset
    bundled_names: Sequence[str] = data.list_bundled()
    # a bare bundled name means the bundled set even when a file or folder of that name
    # happens to sit in the working directory (write ./demo for that one)
    if source in bundled_names:
        if spec.format:
            raise InputError(f"format = {spec.format!r} applies to dataset files; {source!r} is "
                             "a bundled set (give a file path, or leave the format out)")
        qs = list(data.bundled(source))
        if spec.task:
            # a bundled set keeps its own tasks: `task` picks the questions of that task
            tasks = sorted({q.task for q in qs})
            qs = [q for q in qs if q.task == spec.task]
            if not qs:
                raise InputError(f"the bundled set {source!r} has no {spec.task!r} questions "
                                 f"(its tasks: {', '.join(tasks)})")
        if spec.limit is not None:
            qs = qs[: spec.limit]
    else:
        qs = list(
            data.load_questions(source, format=spec.format, task=spec.task, limit=spec.limit)
        )
    if not qs:
        raise InputError(f"no questions in {source!r}")
    ids = [q.id for q in qs]
    if len(set(ids)) != len(ids):
        dup = next(i for i, c in Counter(ids).items() if c > 1)
        raise InputError(f"duplicate question id {dup!r}", where=source)
    return qs


def preflight(spec: RunSpec) -> list[Question]:
    """Check a spec before anything is written or loaded: the questions load, the style and
    collapse function exist, and (for llama.cpp) the model name resolves. Returns the questions."""
    questions = load_spec_questions(spec)
    if spec.style not in STYLES:
        raise InputError(f"unknown style {spec.style!r} (known: {', '.join(STYLES)})")
    BACKENDS.lookup(spec.backend)  # an unknown name is one InputError naming the known ones
    if BACKENDS.flag(spec.backend, "local_models"):
        resolve_model(spec.model)
    # every spec names a B (analysis and adaptive stopping use it): a bad name fails here,
    # before any sampling, not after the whole run
    if uses_judge(spec.collapse):  # the judge model is opened only when the run needs it
        if spec.judge is not None and spec.judge.backend not in BACKENDS:
            raise InputError(f"unknown judge backend {spec.judge.backend!r} "
                             f"(known: {', '.join(sorted(BACKENDS))})")
    else:
        get_collapse(spec.collapse, style=spec.style)
    return questions


def _stored_run(out: Path, spec: RunSpec) -> tuple[bool, list[Question]]:
    """Whether ``out`` already holds the run of ``spec``, and its stored questions (read only;
    creates nothing)."""
    if not (out / STORE_NAME).is_file():
        return False, []
    try:
        with Store(out, readonly=True) as store:
            found = store.find_run_by_key(spec_key(spec.key_fields()))
            if found is None and spec.model_id() != spec.model:
                found = store.find_run_by_key(spec_key(spec.key_fields(legacy_model=True)))
            return (True, store.questions(found.id)) if found is not None else (False, [])
    except SemcalError:
        return False, []  # an unreadable store fails with its own message when opened for writing


def _file_questions(spec: RunSpec) -> tuple[list[Question], InputError | None]:
    """The spec's questions from its data file, or the reason they cannot be read."""
    try:
        return load_spec_questions(spec), None
    except InputError as exc:
        return [], exc


def _edited(stored: Sequence[Question], from_file: Sequence[Question]) -> list[str]:
    """Ids of stored questions whose text or gold answers differ in the data file."""
    by_id = {q.id: q for q in from_file}
    return [q.id for q in stored if q.id in by_id and (
        by_id[q.id].question != q.question or tuple(by_id[q.id].answers) != tuple(q.answers))]


def _run_questions(spec: RunSpec, out: Path, resume: bool) -> list[Question]:
    """The questions to sample. A run's questions are stored with it before any sampling,
    so the stored copies are the run's own: a question edited in the data file since (sampled
    or not) keeps its stored text and answers, said in one warning line. ``resume``: exactly the
    stored set (a deleted or edited data file changes nothing); otherwise the data file's
    questions, each one the run already holds taken from the store (a larger ``limit`` or new
    questions in the file extend the run)."""
    from_file, error = _file_questions(spec)
    stored = _stored_run(out, spec)[1]
    if not stored:
        if error is not None:
            raise error
        return from_file
    if error is not None:
        log.info("%s; resuming from the %d questions stored with the run", error, len(stored))
        return stored
    edited = _edited(stored, from_file)
    if edited:
        log.warning("%d question(s) of %s differ from the copies stored with the run (first: "
                    "%r); the stored ones are used (a new --out samples the edited set)",
                    len(edited), spec.dataset, edited[0])
    if resume:
        return stored
    by_id = {q.id: q for q in stored}
    return [by_id.get(q.id, q) for q in from_file]


def _run_exists(out: Path, spec: RunSpec) -> bool:
    return _stored_run(out, spec)[0]
