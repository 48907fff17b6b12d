"""Theory diagnostics: measurements of the mechanism the paper proposes for semantic calibration.

* :mod:`semcal.theory.trajectories` — intermediate B-confidence ``g_i``: the probability of the
  model's final plurality class given the first ``i`` generated tokens, estimated by sampling
  continuations from prefixes of a sampled answer.
* :mod:`semcal.theory.selfpredict` — a cheap self-prediction test: how well the class
  distribution implied by the first generated token's probabilities matches the sampled class
  distribution.

The recalibration gain under the tilt family (local loss optimality) lives in
:mod:`semcal.metrics.tilt`.
"""

from __future__ import annotations

from semcal.theory.selfpredict import (
    SelfPrediction,
    implied_class_distribution,
    kl_divergence,
    plot_self_prediction,
    self_prediction,
    summarize_self_prediction,
    tv_distance,
)
from semcal.theory.trajectories import (
    QuestionTrajectory,
    TrajectoryResult,
    estimate_trajectories,
    plot_trajectories,
    prefix_positions,
    summarize_trajectories,
)

__all__ = [
    "QuestionTrajectory",
    "SelfPrediction",
    "TrajectoryResult",
    "estimate_trajectories",
    "implied_class_distribution",
    "kl_divergence",
    "plot_self_prediction",
    "plot_trajectories",
    "prefix_positions",
    "self_prediction",
    "summarize_self_prediction",
    "summarize_trajectories",
    "tv_distance",
]
