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

Rooms: ``orchestrate.py`` (:func:`run`, :func:`open_run`, :class:`RunResult`),
``questions.py`` (the run's questions: :func:`load_spec_questions`, :func:`preflight`, the
stored copies on resume), ``prompts.py`` (prompts built, stored, checked against the
context), ``commit.py`` (groups handed to the executor, their samples committed, the
progress bar), ``estimates.py`` (the model-estimates step ``_Estimates``). Where the groups
are sampled is the executor's job (:mod:`semcal.executors`: in this process or on Ray
actors); the unit of work, :func:`sample_group` and :func:`adaptive_group`, lives there and is
importable from here too, as is the stopping rule of :mod:`semcal.adaptive`.
"""

from semcal.adaptive import (  # noqa: F401 - re-exported
    adaptive_z,
    n_looks,
    next_round_size,
    plurality_count,
    should_stop,
    wilson_halfwidth,
)
from semcal.executors.groups import (  # noqa: F401 - re-exported
    GroupRow,
    RoundResult,
    adaptive_group,
    batch_seed,
    sample_group,
)
from semcal.runner.commit import _adaptive_state, _commit_rounds, _store_group  # noqa: F401
from semcal.runner.estimates import _Estimates  # noqa: F401 - re-exported
from semcal.runner.orchestrate import RunResult, open_run, run  # noqa: F401 - re-exported
from semcal.runner.prompts import prompt_to_json  # noqa: F401 - re-exported
from semcal.runner.questions import load_spec_questions, preflight  # noqa: F401 - re-exported

__all__ = [
    "RoundResult",
    "RunResult",
    "adaptive_group",
    "batch_seed",
    "load_spec_questions",
    "open_run",
    "preflight",
    "prompt_to_json",
    "run",
    "sample_group",
]
