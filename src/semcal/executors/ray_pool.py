"""Data-parallel sampling on a Ray cluster: ``semcal run ... --executor ray``.

Each Ray actor owns one sampler (any backend: llama.cpp on CPU nodes, vLLM on GPU nodes, with
the actor's ``num_cpus``/``num_gpus`` from the spec's ``[executor]`` table). The driver — the
process that runs ``semcal run`` — hands out shards of questions, receives each shard's
completions as it finishes, and is the only writer of the SQLite store: it commits every
question exactly as the single-process runner does (:func:`semcal.executors.groups.sample_group`
is the unit of work on both sides, so the seeds, and with a deterministic engine the samples,
are the same).

Faults: actors are created with unlimited restarts and task retries, so an actor whose
process dies mid-shard (kill -9, a node lost) is started again and its shard re-issued;
nothing is written for a shard until it comes back whole, so no sample is stored twice or
lost. A driver that dies leaves every committed question in the store and ``semcal resume``
(or running the same spec again) continues from there.

Fixed-M and adaptive sampling are spread over the actors (an actor runs a shard's adaptive
rounds and returns them call by call; the driver commits them in order); the
P(True)/verbalised estimates go through one actor at a time (correct, not parallel).

:class:`RayPool` is an :class:`~semcal.executors.base.Executor` and stands in for the sampler
as well (``sampler`` is the pool itself). It is also importable as
``semcal.ray_executor.RayPool``, the module it lived in before.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from semcal.backends import BACKENDS
from semcal.collapse import collapse_for
from semcal.errors import BackendError, InputError, require
from semcal.executors.base import AdaptiveCommit, AdaptiveState, CollapseFn, FixedCommit
from semcal.executors.groups import GroupRow, RoundResult, adaptive_group, sample_group
from semcal.executors.local import open_sampler
from semcal.spec import RunSpec
from semcal.types import Completion, Prompt, Question, SamplingParams

log = logging.getLogger("semcal.ray_executor")  # the logger of the module it was first

#: seconds to wait for a TCP connection to a cluster address before calling it unreachable
CONNECT_TIMEOUT = 5.0


class SamplerActor:
    """The body of one Ray actor: a sampler opened from the run spec. A failure to open the
    model is kept and reported by :meth:`info` (an exception in an actor's constructor would
    surface as an opaque actor death)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = RunSpec.from_dict(spec)
        self.error: tuple[str, str] | None = None
        self.sampler: Any = None
        try:
            self.sampler = open_sampler(self.spec)
        except Exception as exc:  # reported by info()
            self.error = (type(exc).__name__, str(exc))

    def info(self) -> dict[str, Any]:
        s = self.sampler
        return {
            "error": self.error,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "is_chat": None if s is None else bool(s.is_chat),
            "model_name": None if s is None else s.model_name,
            "context_length": None if s is None else s.context_length,
        }

    def count_tokens_many(self, prompts: list[Prompt]) -> list[int | None]:
        return [self.sampler.count_tokens(p) for p in prompts]

    def sample_shard(
        self, groups: list[list[Question]], prompts: dict[str, Prompt], is_chat: bool,
        spec: dict[str, Any],
    ) -> list[GroupRow]:
        """The runner's groups of one shard, sampled with the run's spec (seeds, M, params)."""
        run_spec = RunSpec.from_dict(spec)
        out = []
        for group in groups:
            out += sample_group(self.sampler, run_spec, group, prompts, is_chat)
        return out

    def adaptive_shard(
        self, groups: list[list[Question]], prompts: dict[str, Prompt], is_chat: bool,
        spec: dict[str, Any], texts: dict[str, list[str]], rounds: dict[str, int],
        has_greedy: set[str],
    ) -> list[list[RoundResult]]:
        """The runner's adaptive rounds of one shard's groups
        (:func:`semcal.executors.groups.adaptive_group`), returned call by call for the driver
        to commit in order."""
        run_spec = RunSpec.from_dict(spec)
        collapse_fn = collapse_for(run_spec.collapse, style=run_spec.style, judge=run_spec.judge)
        out: list[list[RoundResult]] = []
        for group in groups:
            out += list(adaptive_group(self.sampler, run_spec, group, prompts, is_chat,
                                       collapse_fn, texts, rounds, set(has_greedy)))
        return out

    def sample(self, prompts: list[Prompt], n: int, params: SamplingParams) -> list[list[Completion]]:
        return self.sampler.sample(prompts, n, params)

    def next_token_logprobs(self, prompts: list[Prompt], k: int) -> list[dict[str, float]]:
        return self.sampler.next_token_logprobs(prompts, k)

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.close()


def _check_reachable(address: str) -> None:
    """A HOST:PORT that does not accept a TCP connection is one clear error at once (Ray
    itself retries for minutes, printing C++ warnings)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise InputError(f"--ray-address must be auto or HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        raise BackendError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start one "
            "with 'ray start --head' or check the address"
        ) from None


def _token_auth(address: str | None) -> None:
    """Present this machine's Ray token to a running cluster, as ``ray start`` does: Ray reads
    RAY_AUTH_MODE when it is imported, so this runs before the first ``import ray``."""
    if address and "RAY_AUTH_MODE" not in os.environ and (
        os.environ.get("RAY_AUTH_TOKEN")
        or Path(os.environ.get("RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token")).expanduser().is_file()
    ):
        os.environ["RAY_AUTH_MODE"] = "token"


def _connect(address: str | None, num_cpus: float) -> bool:
    """Initialise Ray in this process; returns True when it was started here."""
    _token_auth(address)
    ray = require("ray", "the Ray executor", "ray")
    if ray.is_initialized():
        return False
    kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                              logging_level=logging.ERROR, configure_logging=False)
    if address and address != "auto":
        _check_reachable(address)

    said = io.StringIO()  # Ray prints notices to stderr; they go to the log instead
    try:
        with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
            if address:
                ray.init(address=address, **kw)
            else:  # a new local cluster for this run (even if one runs here), sized for it
                ray.init(address="local", num_cpus=max(1, int(num_cpus)), **kw)
    except ConnectionError as exc:
        raise BackendError(f"cannot connect to a Ray cluster ({address}): "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    finally:
        for line in said.getvalue().splitlines():
            if line.strip():
                log.info("ray: %s", line.strip())
    return True


class RayPool:
    """Ray actors for one run: an :class:`~semcal.executors.base.Executor` that runs fixed-M
    and adaptive shards in parallel (:meth:`run_fixed`, :meth:`run_adaptive`), and the sampler
    of the runner's single calls (``is_chat``, ``sample``, ``next_token_logprobs``), one actor
    at a time."""

    def __init__(self, spec: RunSpec) -> None:
        ex = spec.executor
        self.spec = spec
        self._own = _connect(ex.address, ex.workers * max(ex.num_cpus, 1))
        self._ray = require("ray", "the Ray executor", "ray")
        ray = self._ray
        actor_cls = ray.remote(SamplerActor).options(
            num_cpus=ex.num_cpus, num_gpus=ex.num_gpus, max_restarts=-1, max_task_retries=-1,
        )
        body = self._body(spec)
        threads = BACKENDS.meta(spec.backend).get("threads_option")
        if threads and threads not in spec.backend_options:
            # one engine thread per CPU the actor holds (every core by default would
            # oversubscribe a node running several actors)
            body["backend_options"] = {**dict(spec.backend_options),
                                       threads: max(1, int(ex.num_cpus))}
        self.actors = [actor_cls.remote(body) for _ in range(ex.workers)]
        self._next = 0
        try:
            infos = ray.get([a.info.remote() for a in self.actors])
        except Exception as exc:
            self.close()
            raise BackendError(f"the Ray actors could not start: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
        errors = [i["error"] for i in infos if i["error"]]
        if errors:
            self.close()
            kind, msg = errors[0]
            raise (InputError if kind in ("InputError", "MissingExtraError") else BackendError)(
                f"on a Ray actor: {msg}")
        self.infos = infos
        self.is_chat = bool(infos[0]["is_chat"])
        self.model_name = str(infos[0]["model_name"])
        self.context_length = infos[0]["context_length"]
        log.info("Ray executor: %d actors (%s)", len(self.actors),
                 ", ".join(f"{i['host']}:{i['pid']}" for i in infos))

    # -- the Sampler surface the runner uses (one actor at a time)

    @property
    def sampler(self) -> RayPool:
        """The pool itself stands in for the sampler."""
        return self

    def _actor(self) -> Any:
        a = self.actors[self._next % len(self.actors)]
        self._next += 1
        return a

    def sample(self, prompts: Sequence[Prompt], n: int, params: SamplingParams) -> list[list[Completion]]:
        return self._ray.get(self._actor().sample.remote(list(prompts), n, params))

    def next_token_logprobs(self, prompts: Sequence[Prompt], k: int) -> list[dict[str, float]]:
        return self._ray.get(self._actor().next_token_logprobs.remote(list(prompts), k))

    def count_tokens_many(self, prompts: Sequence[Prompt]) -> list[int | None]:
        return self._ray.get(self.actors[0].count_tokens_many.remote(list(prompts)))

    def pids(self) -> list[int]:
        """Process ids of the actors now (tests kill them)."""
        return [i["pid"] for i in self._ray.get([a.info.remote() for a in self.actors])]

    # -- data-parallel fixed-M sampling

    def run_fixed(
        self, spec: RunSpec, groups: list[list[Question]], prompts: dict[str, Prompt],
        is_chat: bool, commit: FixedCommit,
    ) -> None:
        """Sample every group of run ``spec``, ``shard_questions`` questions to a shard and
        two shards in flight per actor; ``commit(questions, rows)`` is called in this process
        as each shard comes back whole (in completion order)."""
        body = self._body(spec)

        def submit(actor: Any, shard: list[list[Question]]) -> Any:
            sub = {q.id: prompts[q.id] for g in shard for q in g}
            return actor.sample_shard.remote(shard, sub, is_chat, body)

        self._shards(spec, groups, submit,
                     lambda shard, rows: commit([q for g in shard for q in g], rows))

    def run_adaptive(
        self, spec: RunSpec, groups: list[list[Question]], prompts: dict[str, Prompt],
        is_chat: bool, collapse_fn: CollapseFn, state: AdaptiveState, has_greedy: set[str],
        commit: AdaptiveCommit,
    ) -> None:
        """Adaptive sampling of every group, shards as in :meth:`run_fixed`; each shard's
        rounds come back whole and ``commit(rounds of one call)`` is called for each, in the
        order they were drawn. The stored state of every group is read first; each actor
        collapses with the B of the spec (``collapse_fn`` is this process's)."""
        texts: dict[str, list[str]] = {}
        rounds: dict[str, int] = {}
        for g in groups:
            t, r = state(g)
            texts.update(t)
            rounds.update(r)
        body = self._body(spec)

        def submit(actor: Any, shard: list[list[Question]]) -> Any:
            ids = [q.id for g in shard for q in g]
            return actor.adaptive_shard.remote(
                shard, {i: prompts[i] for i in ids}, is_chat, body,
                {i: texts[i] for i in ids}, {i: rounds[i] for i in ids},
                {i for i in ids if i in has_greedy})

        def done(shard: list[list[Question]], batches: list[list[RoundResult]]) -> None:
            for batch in batches:
                commit(batch)

        self._shards(spec, groups, submit, done)

    @staticmethod
    def _body(spec: RunSpec) -> dict[str, Any]:
        """A run spec as an actor receives it (absolute model path, sampled in the actor)."""
        return {**spec.to_dict(), "model": spec.model_id(), "executor": "local"}

    def _shards(
        self, spec: RunSpec, groups: list[list[Question]],
        submit: Callable[[Any, list[list[Question]]], Any],
        done: Callable[[list[list[Question]], Any], None],
    ) -> None:
        """Hand out shards of ``groups`` (two in flight per actor) and call ``done(shard,
        result)`` in this process as each comes back whole."""
        ray = self._ray
        per_shard = max(1, self.spec.executor.shard_questions // max(1, spec.batch_questions))
        shards = [groups[i:i + per_shard] for i in range(0, len(groups), per_shard)]
        queue = list(reversed(shards))
        in_flight: dict[Any, tuple[Any, list[list[Question]]]] = {}

        def give(actor: Any) -> None:
            if queue:
                shard = queue.pop()
                in_flight[submit(actor, shard)] = (actor, shard)

        for actor in self.actors:
            give(actor)
            give(actor)
        t0 = time.monotonic()
        try:
            while in_flight:
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                ref = ready[0]
                actor, shard = in_flight.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the task failed for good (not an actor restart)
                    raise BackendError(f"a Ray shard failed: {type(exc).__name__}: "
                                       f"{str(exc).splitlines()[-1] if str(exc) else ''}") from None
                done(shard, result)
                give(actor)
        finally:
            for ref in in_flight:
                ray.cancel(ref, force=True)
        log.debug("Ray: %d shards in %.1fs", len(shards), time.monotonic() - t0)

    def close(self) -> None:
        ray = self._ray
        for a in getattr(self, "actors", []):
            try:
                ray.kill(a)
            except Exception as exc:  # pragma: no cover - best effort
                log.debug("killing an actor failed: %s", exc)
        self.actors = []
        if self._own and ray.is_initialized():
            ray.shutdown()
