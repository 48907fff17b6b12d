"""The paper's experiments as run specs, and the ``reproduce`` driver that runs them and draws
the figures (``spec`` -> ``plan`` -> ``driver`` (runner, then the one analysis) -> ``figures``,
``summary``).

An *experiment spec* (TOML, see ``experiments/*.toml``) names a list of models (each with a
role: ``base``, ``instruct`` (RL/DPO-tuned) or ``sft``), datasets, and which comparisons to run:

* ``styles``       — base models, styles concise and sentence (finding 1: base models are calibrated);
* ``tuning``       — base vs instruct/RL-tuned models, same styles (finding 2: tuning → overconfident);
* ``cot``          — base models, sentence vs chain-of-thought (finding 3: CoT → underconfident);
* ``temperature``  — one base model at several sampling temperatures (theory: T = 1 is where a
  base model is calibrated; T < 1 sharpens it into overconfidence, as RL tuning does);
* ``trajectories`` — intermediate B-confidence g_i for sentence vs cot (:mod:`semcal.theory.trajectories`);
* ``selfpredict``  — first-token self-prediction per style (:mod:`semcal.theory.selfpredict`).

:func:`plan` expands a spec into :class:`semcal.spec.RunSpec` objects (deduplicated: a run shared by
two comparisons is sampled once). :func:`reproduce` samples them with :func:`semcal.runner.run`
into one store (so an interrupted reproduction resumes where it stopped), collapses and grades
them, computes smECE / accuracy / signed calibration error with bootstrap CIs, and writes
``results.json``, ``summary.md`` and the figures into the output directory.
"""

from __future__ import annotations

from semcal.reproduce.driver import reproduce
from semcal.reproduce.figures import (
    make_figures,
    plot_smece_accuracy,
    plot_temperature,
    reliability_figure,
)
from semcal.reproduce.plan import PlannedRun, ReproduceResult, RunOutcome, plan
from semcal.reproduce.spec import (
    COMPARISONS,
    DEFAULT_MODELS,
    GROUP_COLORS,
    GROUPS,
    ROLES,
    ExperimentSpec,
    ModelEntry,
    SelfPredictSpec,
    TemperatureSpec,
    TrajectorySpec,
    experiment_from_dict,
    load_experiment,
    parse_model_arg,
)
from semcal.reproduce.summary import summary_markdown

__all__ = [
    "COMPARISONS", "DEFAULT_MODELS", "GROUPS", "GROUP_COLORS", "ROLES", "ExperimentSpec",
    "ModelEntry", "PlannedRun", "ReproduceResult", "RunOutcome", "SelfPredictSpec",
    "TemperatureSpec", "TrajectorySpec", "experiment_from_dict", "load_experiment",
    "make_figures", "parse_model_arg", "plan", "reliability_figure", "plot_smece_accuracy",
    "plot_temperature", "reproduce", "summary_markdown",
]
