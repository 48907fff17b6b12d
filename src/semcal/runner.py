"""Run orchestration: sample M answers per question and store them as they arrive.

A run is model × question set × style × sampling parameters × M (a :class:`~semcal.spec.RunSpec`).
:func:`run` opens (or resumes) the run in an experiment directory's store, asks the backend
for ``M`` samples per question (``batch_questions`` questions per ``sample()`` call), and
commits each question's batch in one transaction. A run killed at any moment and started
again skips finished questions and redoes the interrupted batch identically, because the
seed of a batch depends only on (run seed, question id, round) — see :func:`batch_seed`.

Adaptive sampling (``spec.adaptive.enabled``) samples in rounds of ``round`` completions and
stops a question once its plurality share ``p = k/n`` is pinned down: the Wilson score
interval of ``k`` successes in ``n`` trials at level ``1 - delta/L`` (``L`` = number of
looks, a Bonferroni split that keeps the whole sequential procedure at level ``1 - delta``)
has half-width <= ``epsilon``. Every question gets at least ``min_samples`` samples and at
most ``samples`` (M). The run's collapse function classifies the samples between rounds.

Model-based confidence (``spec.model_estimators``): once a question's samples are committed,
the runner collapses them with the run's collapse function, takes the plurality class's first
sample, extracts its short answer, and asks the model for P(True) (one forward pass, needs
``next_token_logprobs``) and its verbalised confidence (one short greedy generation) in that
answer (:func:`semcal.confidence.p_true`, :func:`semcal.confidence.verbalized_confidence`).
The values go to the store's ``model_estimates`` table in one transaction per batch; a resumed
run computes those that are missing.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from semcal import data
from semcal.adaptive import (  # noqa: F401 - re-exported
    adaptive_z,
    n_looks,
    next_round_size,
    plurality_count,
    should_stop,
    wilson_halfwidth,
)
from semcal.backends import BACKENDS, engine_version, get_sampler
from semcal.backends.base import Sampler, check_context, prompt_seed, sample_seed
from semcal.backends.models import resolve_model
from semcal.collapse import collapse_for, extract_answer, get_collapse
from semcal.collapse.extract import DEFAULT_UNMARKED
from semcal.confidence import p_true, verbalized_confidence
from semcal.errors import BackendError, InputError, SemcalError, StoreError
from semcal.grade import is_empty_answer, plurality
from semcal.prompts import STYLES, build_prompt, stop_strings
from semcal.ray_executor import RayPool  # imports Ray only when a pool is opened
from semcal.spec import RunSpec
from semcal.store import STORE_NAME, RunInfo, Store, check_writable, spec_key
from semcal.types import NON_ANSWERS, Completion, Prompt, Question, SamplingParams

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- seeds


def batch_seed(run_seed: int, qid: str | None, round: int) -> int:
    """The ``SamplingParams.seed`` of one question's round (a 31-bit integer).

    Depends only on (run seed, question id, round). With several questions per ``sample()``
    call the engine takes one seed per call, so the question id is left out (``qid=None``)
    and the seed depends on (run seed, round) only; the run key records which mode was used.
    The engine mixes in the prompt (``prompt_seed``), so sample ``i`` of a question uses
    ``sample_seed(prompt_seed(batch_seed(...), prompt), i)`` — the value stored with it.
    """
    h = hashlib.sha256(f"{int(run_seed)}\x1f{qid if qid is not None else ''}\x1f{int(round)}".encode())
    return int.from_bytes(h.digest()[:4], "little") & 0x7FFFFFFF


# ----------------------------------------------------------------------------- adaptive rule
# (semcal.adaptive; imported here too, where the runner's users have always found it)

# ----------------------------------------------------------------------------- results


@dataclass
class RunResult:
    """What :func:`run` did."""

    run_id: int
    run_name: str
    directory: Path
    n_questions: int
    n_done: int
    samples_new: int
    samples_total: int
    seconds: float
    resumed: bool = False
    #: questions whose model-based estimates were computed by this call
    estimates_new: int = 0
    #: seconds spent on model-based estimates (included in ``seconds``)
    estimate_seconds: float = 0.0
    interrupted: bool = False
    #: adaptive runs: samples used / (questions × M)
    sample_fraction: float | None = None
    model: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.n_done == self.n_questions and not self.interrupted


# ----------------------------------------------------------------------------- helpers


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
    if spec.backend == "llamacpp":
        resolve_model(spec.model)
    # every spec names a B (analysis and adaptive stopping use it): a bad name fails here,
    # before any sampling, not after the whole run
    if spec.collapse == "judge":  # the judge model is opened only when the run needs it
        if spec.judge is not None and spec.judge.backend not in BACKENDS:
            raise InputError(f"unknown judge backend {spec.judge.backend!r} "
                             f"(known: {', '.join(sorted(BACKENDS))})")
    else:
        get_collapse(spec.collapse, style=spec.style)
    return questions


def prompt_to_json(p: Prompt) -> dict[str, Any]:
    """A JSON-able form of a prompt (stored with each question for reference)."""
    return {
        "text": p.text,
        "messages": [asdict(m) for m in p.messages],
        "assistant_prefix": p.assistant_prefix,
    }


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


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


def _open_sampler(spec: RunSpec) -> Sampler:
    if spec.executor.kind == "ray":  # actors, each with its own model (semcal.ray_executor)
        return RayPool(spec)  # type: ignore[return-value]

    log.info("opening model %s on %s", spec.model, spec.backend)
    # llama.cpp's prefix cache stays on (its default): for the one-question calls the runner
    # makes it changes no bit of the samples (tests/test_determinism.py), so a resumed run
    # repeats an uninterrupted one
    return get_sampler(spec.backend, spec.model, **dict(spec.backend_options))


def open_run(store: Store, spec: RunSpec) -> tuple[RunInfo, bool]:
    """Find the run of ``spec`` in ``store`` (same key) or create it. Returns (run, resumed).
    The lookup and the creation are one transaction, so two processes starting the same spec
    at once get the same run (and the run lock then lets one of them sample it)."""
    found = None
    if spec.model_id() != spec.model:  # a run keyed by the model as typed (before 0.1.1)
        found = store.find_run_by_key(spec_key(spec.key_fields(legacy_model=True)))
    if found is None:
        found, created = store.open_or_create_run(
            key=spec_key(spec.key_fields()),
            name=spec.name or spec.run_name,
            exact_name=bool(spec.name),
            # absolute paths: resumable from any directory
            spec={**spec.to_dict(), "dataset": spec.dataset_id(), "model": spec.model_id()},
            model=spec.model,
            backend=spec.backend,
            style=spec.style,
            dataset=spec.dataset,
            temperature=spec.temperature,
            top_p=spec.top_p,
            max_tokens=spec.resolved_max_tokens(),
            samples=spec.samples,
            seed=spec.seed,
            adaptive=spec.adaptive.enabled,
        )
        if created:
            return found, False
    if spec.name and found.name != spec.name:
        log.info("resuming run %r (same settings as requested name %r)", found.name, spec.name)
    return found, True


class _Progress:
    """A tqdm bar over questions (disabled when quiet or stderr is not a terminal)."""

    def __init__(self, total: int, initial: int, desc: str, enabled: bool):
        self.bar = None
        self.t0 = time.monotonic()
        self.samples = 0
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit="q", dynamic_ncols=True)

    def update(self, questions: int, samples: int) -> None:
        self.samples += samples
        if self.bar is not None:
            rate = self.samples / max(time.monotonic() - self.t0, 1e-9)
            self.bar.set_postfix_str(f"{rate:.1f} samples/s", refresh=False)
            self.bar.update(questions)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ----------------------------------------------------------------------------- the run


def run(
    spec: RunSpec,
    out: str | Path,
    *,
    sampler: Sampler | None = None,
    quiet: bool = False,
    progress: bool | None = None,
    collapse_fn: Callable[[Question, Sequence[str]], Any] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    resume: bool = False,
) -> RunResult:
    """Sample (or resume sampling) ``spec`` into the store of directory ``out``.

    ``sampler`` overrides the backend named in the spec (tests, notebooks that already hold
    a model); it is not closed here. ``progress`` forces the progress bar on or off (default:
    on when stderr is a terminal and not ``quiet``). ``collapse_fn`` overrides the spec's
    collapse function for adaptive stopping. ``on_batch(done, total)`` is called after every
    committed batch. Ctrl-C stops cleanly: the batch in flight is discarded (it was never
    committed), the store is closed and the result has ``interrupted=True``.

    The questions of a run are stored with it before its sampling starts, and those stored
    copies are the run's questions: ``resume=True`` (``semcal resume``) samples exactly the
    stored set, whatever became of the data file since; otherwise the data file picks the
    questions and a stored copy stands in for each question the run already holds
    (:func:`_run_questions`).
    """
    t0 = time.monotonic()
    out = Path(out)
    questions = _run_questions(spec, out, resume)
    own_sampler = sampler is None
    if sampler is None and not _run_exists(out, spec):
        check_writable(out)  # fail on an unwritable --out before minutes of model loading
        # a new run: the model is opened (its file read, the backend options checked) before a
        # store or a run row exists, so a spec that cannot run leaves nothing behind that
        # `analyze` would show with n = 0 or `resume` would repeat
        sampler = _open_sampler(spec)
        try:
            _check_fit(sampler, questions, spec)
            check_server = getattr(sampler, "check_server", None)  # an HTTP backend's server
            if check_server is not None:
                check_server()
        except BackendError as exc:
            sampler.close()
            exc.before_run = True  # type: ignore[attr-defined]  # nothing of it stored: no resume
            raise
        except BaseException:
            sampler.close()
            raise
        fit_checked = True
    else:
        fit_checked = False
    try:
        store = Store(out)
    except BaseException:
        if own_sampler and sampler is not None:
            sampler.close()
        raise
    interrupted = False
    samples_new = 0
    lock = None
    try:
        run_info, resumed = open_run(store, spec)
        # one writer per run: a second process sampling the same run fails here, naming the
        # holder (other runs of the store go on concurrently)
        lock = store.lock_run(run_info)
        log.info(
            "%s run %r in %s (%d questions, M=%d%s)",
            "resuming" if resumed else "starting",
            run_info.name,
            store.path,
            len(questions),
            spec.samples,
            ", adaptive" if spec.adaptive.enabled else "",
        )
        done = store.done_ids(run_info.id)
        stored_ids = {q.id for q in store.questions(run_info.id)}
        pending = [q for q in questions if q.id not in done]
        est = _Estimates(store, run_info, spec) if spec.model_estimators else None
        if not pending and all(q.id in stored_ids for q in questions) and (
            est is None or not est.missing([q for q in questions if q.id in done])
        ):
            log.info("run %r is already complete", run_info.name)
        else:
            if sampler is None:
                sampler = _open_sampler(spec)
            # which build draws these samples (a sampler passed in by the caller is named by
            # its class: semcal cannot tell its engine)
            store.add_session(run_info.id, engine_version(spec.backend) if own_sampler
                              else f"{type(sampler).__name__} (passed in)")
            is_chat = bool(sampler.is_chat)
            if run_info.is_chat is None:
                store.set_run_chat(run_info.id, is_chat)
            elif run_info.is_chat != is_chat:
                raise StoreError(
                    f"{store.directory}: run {run_info.name!r} was sampled with a "
                    f"{'chat' if run_info.is_chat else 'base'} model; the model now opened is not"
                )
            prompts = _build_prompts(questions, spec, is_chat)
            if not fit_checked:
                _check_fit(sampler, questions, spec, prompts)
            store.add_questions(
                run_info.id, questions, [prompt_to_json(prompts[q.id]) for q in questions]
            )
            done = store.done_ids(run_info.id)
            pending = [q for q in questions if q.id not in done]
            show = (not quiet and sys.stderr.isatty()) if progress is None else progress
            bar = _Progress(len(questions), len(questions) - len(pending), run_info.name, show)
            on_finished = None
            if est is not None:
                est.bind(sampler, collapse_fn)
                on_finished = est.finished
            try:
                if est is not None:  # questions sampled before without their estimates
                    est.compute([q for q in questions if q.id in done])
                if spec.adaptive.enabled:
                    samples_new = _run_adaptive(
                        store, run_info, spec, sampler, pending, prompts, is_chat, bar,
                        collapse_fn, on_batch, len(questions), on_finished,
                    )
                else:
                    samples_new = _run_fixed(
                        store, run_info, spec, sampler, pending, prompts, is_chat, bar,
                        on_batch, len(questions), on_finished,
                    )
                if est is not None:  # questions marked done without a batch callback
                    est.compute(questions)
            except KeyboardInterrupt:
                interrupted = True
                log.warning("interrupted: the batch in progress was discarded")
            finally:
                bar.close()
            if samples_new:
                _warn_empty(store, run_info)
        n_done, n_total, n_stored = store.progress(run_info.id)
        if not interrupted and n_done == n_total and run_info.finished is None:
            store.mark_run_finished(run_info.id)
        fraction = None
        if spec.adaptive.enabled and n_total:
            fraction = n_stored / (n_total * spec.samples)
        return RunResult(
            run_id=run_info.id,
            run_name=run_info.name,
            directory=out,
            n_questions=n_total,
            n_done=n_done,
            samples_new=samples_new,
            samples_total=n_stored,
            seconds=time.monotonic() - t0,
            resumed=resumed,
            interrupted=interrupted,
            sample_fraction=fraction,
            model=spec.model,
            estimates_new=0 if est is None else est.n_new,
            estimate_seconds=0.0 if est is None else est.seconds,
        )
    finally:
        if lock is not None:
            lock.release()
        store.close()
        if own_sampler and sampler is not None:
            try:
                sampler.close()
            except Exception as exc:  # pragma: no cover - closing is best effort
                log.debug("closing the sampler failed: %s", exc)


class _Estimates:
    """Model-based confidence estimates (P(True), verbalised) of a run's questions.

    :meth:`compute` fills in the estimates of the given questions that are done and not yet
    stored under the run's collapse name; :meth:`finished` is the runner's hook after each
    batch, given the questions that batch finished (work per batch grows with the batch, not
    with the run).
    """

    NAMES = ("p_true", "verbalized")

    def __init__(self, store: Store, run_info: RunInfo, spec: RunSpec):
        self.store = store
        self.run_info = run_info
        self.spec = spec
        self.sampler: Any = None
        self.collapse_fn: Callable[[Question, Sequence[str]], Any] | None = None
        self.n_new = 0
        self.seconds = 0.0
        self._complete: set[str] | None = None

    def bind(self, sampler: Any, collapse_fn: Callable[[Question, Sequence[str]], Any] | None) -> None:
        self.sampler = sampler
        self.collapse_fn = collapse_fn

    def _complete_ids(self) -> set[str]:
        """Ids of questions with a stored value for every estimator: read from the store once,
        then kept up to date by :meth:`compute` (re-reading it after every batch made a run
        quadratic in its number of questions)."""
        if self._complete is None:
            have = self.store.model_estimates(self.run_info.id, self.spec.collapse)
            self._complete = {qid for qid, got in have.items() if all(n in got for n in self.NAMES)}
        return self._complete

    def missing(self, questions: Sequence[Question], *, done: bool = False) -> list[Question]:
        """The questions (done ones only) without a stored value for every estimator.
        ``done``: the caller knows the questions are done (no read of the done ids)."""
        complete = self._complete_ids()
        done_ids = None if done else self.store.done_ids(self.run_info.id)
        return [
            q for q in questions
            if (done_ids is None or q.id in done_ids) and q.id not in complete
        ]

    def finished(self, questions: Sequence[Question]) -> None:
        """The runner's hook after a batch: estimates of the questions it just finished."""
        self.compute(questions, done=True)

    def compute(self, questions: Sequence[Question], *, done: bool = False) -> None:
        todo = self.missing(questions, done=done)
        if not todo:
            return

        t0 = time.monotonic()
        if self.collapse_fn is None:
            self.collapse_fn = collapse_for(self.spec.collapse, style=self.spec.style,
                                            judge=self.spec.judge)
        rated: list[tuple[Question, str, str, int]] = []  # (question, label, answer, n)
        empty: list[tuple[Question, str, int]] = []
        for q in todo:
            texts = [s.completion.text for s in self.store.samples(self.run_info.id, q.id)]
            if not texts:
                continue
            labels = [str(x) for x in self.collapse_fn(q, texts).labels]
            label, _ = plurality(labels)
            label = str(label)
            first = texts[labels.index(label)]
            answer = (extract_answer(first, q.task, question=q.question, style=self.spec.style,
                                     unmarked=DEFAULT_UNMARKED)
                      if label not in NON_ANSWERS else None)
            if label in NON_ANSWERS or answer is None or not answer.strip():
                empty.append((q, label, len(texts)))  # nothing to rate: values stay None
            else:
                rated.append((q, label, answer.strip(), len(texts)))
        names = self.NAMES
        values: dict[str, list[float | None]] = {}
        if rated:
            qs = [r[0] for r in rated]
            ans = [r[2] for r in rated]
            values["p_true"] = p_true(self.sampler, qs, ans)
            values["verbalized"] = verbalized_confidence(self.sampler, qs, ans, seed=self.spec.seed)
        rows: list[tuple[str, str, int, str, str, float | None]] = []
        for i, (q, label, answer, n) in enumerate(rated):
            rows += [(q.id, name, n, label, answer, values[name][i]) for name in names]
        for q, label, n in empty:
            rows += [(q.id, name, n, label, "", None) for name in names]
        self.store.save_model_estimates(self.run_info.id, self.spec.collapse, rows)
        self._complete_ids().update(q.id for q in todo)
        self.n_new += len(rated) + len(empty)
        self.seconds += time.monotonic() - t0
        log.debug("model estimates of %d questions in %.2fs", len(todo), time.monotonic() - t0)


def _check_fit(
    sampler: Sampler, questions: Sequence[Question], spec: RunSpec,
    prompts: dict[str, Prompt] | None = None,
) -> None:
    """Every prompt plus max_tokens fits the model's context, checked before any sampling
    (and, for a new run, before a store exists): a question too long for the model failed
    only when its turn came, after minutes of work, or ran for minutes at gigabytes."""
    if sampler.context_length is None:
        return  # the engine does not know its context (a server): it answers for itself
    if prompts is None:
        prompts = _build_prompts(questions, spec, sampler.is_chat)
    lengths = (sampler.count_tokens_many([prompts[q.id] for q in questions])  # one remote call
               if isinstance(sampler, RayPool)
               else [sampler.count_tokens(prompts[q.id]) for q in questions])
    if lengths is not None and all(n is not None for n in lengths):
        check_context(sampler, lengths, spec.resolved_max_tokens(),
                      names=[q.id for q in questions])


def _build_prompts(questions: Sequence[Question], spec: RunSpec, is_chat: bool) -> dict[str, Prompt]:
    return {q.id: build_prompt(q, spec.style, chat=is_chat, k_shot=spec.k_shot) for q in questions}


def _params(spec: RunSpec, is_chat: bool, seed: int, greedy: bool = False) -> SamplingParams:
    return SamplingParams(
        temperature=0.0 if greedy else float(spec.temperature),
        top_p=1.0 if greedy else float(spec.top_p),
        max_tokens=spec.resolved_max_tokens(),
        stop=tuple(stop_strings(spec.style, is_chat)),
        seed=seed,
        logprobs=True,
    )


def _check_batch(out: list[list[Completion]], n_prompts: int, n: int) -> None:
    if len(out) != n_prompts or any(len(c) != n for c in out):
        raise SemcalError(
            f"the backend returned {[len(c) for c in out]} completions for {n_prompts} prompts × {n}"
        )


def _greedy(
    sampler: Sampler, prompts: Sequence[Prompt], spec: RunSpec, is_chat: bool
) -> list[Completion | None]:
    if not spec.greedy:
        return [None] * len(prompts)
    out = sampler.sample(list(prompts), 1, _params(spec, is_chat, spec.seed, greedy=True))
    _check_batch(out, len(prompts), 1)
    return [c[0] for c in out]


def sample_group(
    sampler: Sampler, spec: RunSpec, group: Sequence[Question], prompts: dict[str, Prompt],
    is_chat: bool,
) -> list[tuple[str, list[Completion], Completion | None, list[int]]]:
    """Draw the M samples (and the greedy completion) of one group of questions — the unit of
    a fixed-M run, the same in this process and on a Ray actor. Returns, per question,
    (id, completions, greedy completion, per-sample seeds)."""
    m = spec.samples
    qid_for_seed = group[0].id if len(group) == 1 and spec.batch_questions == 1 else None
    seed = batch_seed(spec.seed, qid_for_seed, 0)
    batch_prompts = [prompts[q.id] for q in group]
    out = sampler.sample(batch_prompts, m, _params(spec, is_chat, seed))
    _check_batch(out, len(group), m)
    greedy = _greedy(sampler, batch_prompts, spec, is_chat)
    return [
        (q.id, comps, g, [sample_seed(prompt_seed(seed, prompts[q.id]), i) for i in range(m)])
        for q, comps, g in zip(group, out, greedy)
    ]


def _warn_empty(store: Store, run_info: RunInfo) -> None:
    """One warning line, after sampling, when some of the run's samples are empty answers."""
    total = 0
    why: Counter[str] = Counter()
    for _qid, rows in store.iter_samples(run_info.id, tokens=False):
        total += len(rows)
        why.update(r.completion.finish_reason for r in rows if is_empty_answer(r.completion.text))
    empty = sum(why.values())
    if empty:
        reasons = ", ".join(f"finish_reason {k!r} for {v}" for k, v in why.most_common())
        log.warning(
            "%d of %d samples of run %r are empty (%s): they count as <no answer>; if the "
            "model reasons before it answers, raise max_tokens", empty, total, run_info.name,
            reasons,
        )


def _store_group(store: Store, run_info: RunInfo,
                 rows: list[tuple[str, list[Completion], Completion | None, list[int]]]) -> None:
    for qid, comps, g, seeds in rows:
        store.add_batch(run_info.id, qid, 0, 0, comps, seeds, greedy=g, done=True)


def _run_fixed(
    store: Store,
    run_info: RunInfo,
    spec: RunSpec,
    sampler: Sampler,
    pending: Sequence[Question],
    prompts: dict[str, Prompt],
    is_chat: bool,
    bar: _Progress,
    on_batch: Callable[[int, int], None] | None,
    total: int,
    on_finished: Callable[[Sequence[Question]], None] | None = None,
) -> int:
    """Fixed M: one round per question, group by group (:func:`sample_group`) in this process
    or, on a :class:`~semcal.ray_executor.RayPool`, the same groups and seeds in parallel,
    committed here as they come back. Returns the number of samples stored.
    ``on_finished(questions)`` is called with the questions of each committed batch."""
    m = spec.samples
    state = {"new": 0, "done": total - len(pending)}

    def commit(questions: Sequence[Question], rows: list[Any]) -> None:
        _store_group(store, run_info, rows)
        state["new"] += m * len(questions)
        state["done"] += len(questions)
        bar.update(len(questions), m * len(questions))
        if on_finished is not None:
            on_finished(questions)
        if on_batch is not None:
            on_batch(state["done"], total)

    groups = [list(g) for g in _chunks(pending, spec.batch_questions)]
    if isinstance(sampler, RayPool):  # Ray actors: shards in parallel
        sampler.run_fixed(spec, groups, prompts, commit)
        return state["new"]
    for group in groups:
        t = time.monotonic()
        commit(group, sample_group(sampler, spec, group, prompts, is_chat))
        log.debug("stored %d questions × %d samples in %.2fs", len(group), m, time.monotonic() - t)
    return state["new"]


@dataclass
class RoundResult:
    """One adaptive round of one question, as the runner commits it (``completions`` empty and
    ``done`` True: M was reached before a stop was stored, nothing to draw)."""

    qid: str
    round: int
    start_index: int
    completions: list[Completion]
    seeds: list[int]
    greedy: Completion | None
    done: bool


def adaptive_group(
    sampler: Sampler, spec: RunSpec, group: Sequence[Question], prompts: dict[str, Prompt],
    is_chat: bool, collapse_fn: Callable[[Question, Sequence[str]], Any],
    texts: dict[str, list[str]], rounds: dict[str, int], has_greedy: set[str],
) -> Iterator[list[RoundResult]]:
    """The adaptive rounds of one group of questions — the unit of an adaptive run, the same
    in this process and on a Ray actor. ``texts``/``rounds``: each question's stored samples
    and next round number (updated here); ``has_greedy``: questions whose greedy completion is
    stored (updated). Yields, call by call, the rounds to commit in order."""
    ad = spec.adaptive
    active = list(group)
    while active:
        # questions whose next round has the same (round number, size) share one call
        calls: dict[tuple[int, int], list[Question]] = {}
        for q in active:
            size = next_round_size(len(texts[q.id]), ad, spec.samples)
            calls.setdefault((rounds[q.id], size), []).append(q)
        still: list[Question] = []
        for (rnd, size), qs in sorted(calls.items()):
            if size == 0:  # nothing left to draw (M reached before a stop was stored)
                yield [RoundResult(q.id, rnd, len(texts[q.id]), [], [], None, True) for q in qs]
                continue
            qid_for_seed = qs[0].id if spec.batch_questions == 1 else None
            seed = batch_seed(spec.seed, qid_for_seed, rnd)
            out = sampler.sample([prompts[q.id] for q in qs], size, _params(spec, is_chat, seed))
            _check_batch(out, len(qs), size)
            need_greedy = [q for q in qs if q.id not in has_greedy] if spec.greedy else []
            greedy_by_id: dict[str, Completion | None] = {}
            if need_greedy:
                gs = _greedy(sampler, [prompts[q.id] for q in need_greedy], spec, is_chat)
                greedy_by_id = {q.id: g for q, g in zip(need_greedy, gs)}
            batch: list[RoundResult] = []
            for q, comps in zip(qs, out):
                all_texts = texts[q.id] + [c.text for c in comps]
                stop = should_stop(list(collapse_fn(q, all_texts).labels), ad, spec.samples)
                batch.append(RoundResult(
                    q.id, rnd, len(texts[q.id]), list(comps),
                    [sample_seed(prompt_seed(seed, prompts[q.id]), i) for i in range(size)],
                    greedy_by_id.get(q.id), stop))
                if q.id in greedy_by_id:
                    has_greedy.add(q.id)
                texts[q.id] = all_texts
                rounds[q.id] = rnd + 1
                if stop:
                    log.debug("question %s stopped after %d samples", q.id, len(all_texts))
                else:
                    still.append(q)
            yield batch
        active = still


def _adaptive_state(store: Store, run_info: RunInfo, group: Sequence[Question]
                    ) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Each question's stored sample texts and next round number (a resumed question)."""
    texts: dict[str, list[str]] = {}
    rounds: dict[str, int] = {}
    for q in group:
        old = store.samples(run_info.id, q.id)
        texts[q.id] = [s.completion.text for s in old]
        rounds[q.id] = (max(s.round for s in old) + 1) if old else 0
    return texts, rounds


def _commit_rounds(store: Store, run_info: RunInfo, batch: list[RoundResult]) -> list[str]:
    """Store one call's rounds; returns the ids of the questions they finished."""
    finished = []
    for r in batch:
        if r.completions:
            store.add_batch(run_info.id, r.qid, r.round, r.start_index, r.completions, r.seeds,
                            greedy=r.greedy, done=r.done)
        elif r.done:
            store.mark_done(run_info.id, r.qid)
        if r.done:
            finished.append(r.qid)
    return finished


def _run_adaptive(
    store: Store,
    run_info: RunInfo,
    spec: RunSpec,
    sampler: Sampler,
    pending: Sequence[Question],
    prompts: dict[str, Prompt],
    is_chat: bool,
    bar: _Progress,
    collapse_fn: Callable[[Question, Sequence[str]], Any] | None,
    on_batch: Callable[[int, int], None] | None,
    total: int,
    on_finished: Callable[[Sequence[Question]], None] | None = None,
) -> int:
    """Adaptive: rounds until the stopping rule holds, each call's rounds committed as they
    come (:func:`adaptive_group`). Returns the number of samples stored.
    ``on_finished(questions)`` is called with the questions each committed batch finished."""
    if collapse_fn is None:
        collapse_fn = collapse_for(spec.collapse, style=spec.style, judge=spec.judge)
    by_id = {q.id: q for q in pending}
    state = {"new": 0, "done": total - len(pending)}
    # read once for the whole run (once per group made the runner quadratic)
    has_greedy = store.greedy_ids(run_info.id) if spec.greedy else set()

    def commit(batch: list[RoundResult]) -> None:
        finished = [by_id[qid] for qid in _commit_rounds(store, run_info, batch)]
        drawn = sum(len(r.completions) for r in batch)
        state["new"] += drawn
        state["done"] += len(finished)
        bar.update(len(finished), drawn)
        if on_finished is not None and finished:
            on_finished(finished)
        if on_batch is not None and drawn:
            on_batch(state["done"], total)

    groups = [list(g) for g in _chunks(pending, spec.batch_questions)]
    if isinstance(sampler, RayPool):  # Ray actors: groups in parallel
        texts: dict[str, list[str]] = {}
        rounds: dict[str, int] = {}
        for g in groups:
            t, r = _adaptive_state(store, run_info, g)
            texts.update(t)
            rounds.update(r)
        sampler.run_adaptive(spec, groups, prompts, texts, rounds, has_greedy, commit)
        return state["new"]
    for group in groups:
        texts, rounds = _adaptive_state(store, run_info, group)
        for batch in adaptive_group(sampler, spec, group, prompts, is_chat, collapse_fn,
                                    texts, rounds, has_greedy):
            commit(batch)
    return state["new"]
