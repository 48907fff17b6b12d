"""Run orchestration: :func:`run` opens (or resumes) a run in an experiment directory's store,
has its executor sample the pending questions, and says what it did (:class:`RunResult`)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semcal.backends import engine_version
from semcal.backends.base import Sampler
from semcal.errors import BackendError, StoreError
from semcal.executors import Executor, executor_for, open_executor
from semcal.runner.commit import _Progress, _run_adaptive, _run_fixed, _warn_empty
from semcal.runner.estimates import _Estimates
from semcal.runner.prompts import _build_prompts, _check_fit, prompt_to_json
from semcal.runner.questions import _run_exists, _run_questions
from semcal.spec import RunSpec
from semcal.store import RunInfo, Store, check_writable, spec_key
from semcal.types import Prompt, Question

log = logging.getLogger(__package__)  # one logger for the runner, whichever room logs


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


def run(
    spec: RunSpec,
    out: str | Path,
    *,
    sampler: Sampler | Executor | None = None,
    quiet: bool = False,
    progress: bool | None = None,
    collapse_fn: Callable[[Question, Sequence[str]], Any] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    resume: bool = False,
) -> RunResult:
    """Sample (or resume sampling) ``spec`` into the store of directory ``out``.

    ``sampler`` overrides the backend named in the spec (tests, notebooks that already hold
    a model; an :class:`~semcal.executors.Executor` such as a Ray pool samples in its own
    way); it is not closed here. ``progress`` forces the progress bar on or off (default:
    on when stderr is a terminal and not ``quiet``). ``collapse_fn`` overrides the spec's
    collapse function for adaptive stopping. ``on_batch(done, total)`` is called after every
    committed batch. Ctrl-C stops cleanly: the batch in flight is discarded (it was never
    committed), the store is closed and the result has ``interrupted=True``.

    The questions of a run are stored with it before its sampling starts, and those stored
    copies are the run's questions: ``resume=True`` (``semcal resume``) samples exactly the
    stored set, whatever became of the data file since; otherwise the data file picks the
    questions and a stored copy stands in for each question the run already holds
    (:func:`~semcal.runner.questions._run_questions`).
    """
    t0 = time.monotonic()
    out = Path(out)
    questions = _run_questions(spec, out, resume)
    own = sampler is None
    executor = None if sampler is None else executor_for(sampler)
    fit_checked = own and not _run_exists(out, spec)
    if fit_checked:
        check_writable(out)  # fail on an unwritable --out before minutes of model loading
        executor = _open_for_new_run(spec, questions)
    try:
        store = Store(out)
    except BaseException:
        if own and executor is not None:
            executor.close()
        raise
    job = _Sampling(spec, store, questions, executor, own=own, fit_checked=fit_checked)
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
        samples_new, interrupted, est = job.sample(run_info, quiet, progress, collapse_fn,
                                                   on_batch)
        return _result(store, run_info, spec, out, t0, resumed, samples_new, interrupted, est)
    finally:
        if lock is not None:
            lock.release()
        store.close()
        job.close()


def _open_for_new_run(spec: RunSpec, questions: Sequence[Question]) -> Executor:
    """The executor of a new run, opened (the model file read, the backend options checked)
    before a store or a run row exists, so a spec that cannot run leaves nothing behind that
    `analyze` would show with n = 0 or `resume` would repeat; its prompts are checked against
    the model's context and an HTTP backend's server is reached first."""
    executor = open_executor(spec)
    try:
        _check_fit(executor, questions, spec)
        check_server = getattr(executor.sampler, "check_server", None)  # an HTTP backend's server
        if check_server is not None:
            check_server()
    except BackendError as exc:
        executor.close()
        exc.before_run = True  # type: ignore[attr-defined]  # nothing of it stored: no resume
        raise
    except BaseException:
        executor.close()
        raise
    return executor


class _Sampling:
    """The sampling of one run's pending questions into an open store, by an executor opened
    here when needed (``own``: closed here too)."""

    def __init__(self, spec: RunSpec, store: Store, questions: list[Question],
                 executor: Executor | None, *, own: bool, fit_checked: bool) -> None:
        self.spec = spec
        self.store = store
        self.questions = questions
        self.executor = executor
        self.own = own
        self.fit_checked = fit_checked

    def sample(
        self, run_info: RunInfo, quiet: bool, progress: bool | None,
        collapse_fn: Callable[[Question, Sequence[str]], Any] | None,
        on_batch: Callable[[int, int], None] | None,
    ) -> tuple[int, bool, _Estimates | None]:
        """Sample what the run lacks: (samples stored, interrupted, the estimates step)."""
        store, spec, questions = self.store, self.spec, self.questions
        done = store.done_ids(run_info.id)
        stored_ids = {q.id for q in store.questions(run_info.id)}
        pending = [q for q in questions if q.id not in done]
        est = _Estimates(store, run_info, spec) if spec.model_estimators else None
        if not pending and all(q.id in stored_ids for q in questions) and (
            est is None or not est.missing([q for q in questions if q.id in done])
        ):
            log.info("run %r is already complete", run_info.name)
            return 0, False, est
        executor, is_chat, prompts = self._prepare(run_info)
        done = store.done_ids(run_info.id)
        pending = [q for q in questions if q.id not in done]
        show = (not quiet and sys.stderr.isatty()) if progress is None else progress
        bar = _Progress(len(questions), len(questions) - len(pending), run_info.name, show)
        on_finished = None
        if est is not None:
            est.bind(executor.sampler, collapse_fn)
            on_finished = est.finished
        samples_new = 0
        interrupted = False
        try:
            if est is not None:  # questions sampled before without their estimates
                est.compute([q for q in questions if q.id in done])
            if spec.adaptive.enabled:
                samples_new = _run_adaptive(
                    store, run_info, spec, executor, pending, prompts, is_chat, bar,
                    collapse_fn, on_batch, len(questions), on_finished,
                )
            else:
                samples_new = _run_fixed(
                    store, run_info, spec, executor, pending, prompts, is_chat, bar,
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
        return samples_new, interrupted, est

    def _prepare(self, run_info: RunInfo) -> tuple[Executor, bool, dict[str, Prompt]]:
        """Open the executor if needed, record the session, and store the questions with
        their prompts for this model: (executor, is_chat, prompts by question id)."""
        store, spec, questions = self.store, self.spec, self.questions
        if self.executor is None:
            self.executor = open_executor(spec)
        executor = self.executor
        sampler = executor.sampler
        # which build draws these samples (a sampler passed in by the caller is named by
        # its class: semcal cannot tell its engine)
        store.add_session(run_info.id, engine_version(spec.backend) if self.own
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
        if not self.fit_checked:
            _check_fit(executor, questions, spec, prompts)
        store.add_questions(
            run_info.id, questions, [prompt_to_json(prompts[q.id]) for q in questions]
        )
        return executor, is_chat, prompts

    def close(self) -> None:
        """Close the executor if it was opened here."""
        if self.own and self.executor is not None:
            try:
                self.executor.close()
            except Exception as exc:  # pragma: no cover - closing is best effort
                log.debug("closing the sampler failed: %s", exc)


def _result(
    store: Store, run_info: RunInfo, spec: RunSpec, out: Path, t0: float, resumed: bool,
    samples_new: int, interrupted: bool, est: _Estimates | None,
) -> RunResult:
    """The run's :class:`RunResult`, marking it finished when every question is done."""
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
