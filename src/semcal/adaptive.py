"""The adaptive stopping rule: when one question has been sampled enough.

Pure functions of the labels drawn so far and the :class:`~semcal.spec.AdaptiveSpec`; the
runner uses them while sampling and ``analyze --replay-adaptive`` replays them over the
samples of a fixed-M run, both from here.

Sample ``round`` completions at a time (``min_samples`` first); stop once the Wilson interval
of the plurality share has half-width <= ``epsilon`` at level ``1 - delta`` (``delta`` split
over the possible looks, Bonferroni), or when the run's M (``samples``, the most a question gets) is reached.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from statistics import NormalDist

from semcal.spec import AdaptiveSpec


def wilson_halfwidth(k: int, n: int, z: float) -> float:
    """Half-width of the Wilson score interval for ``k`` successes in ``n`` trials.

    ``z`` is the standard normal quantile of the two-sided level (1.96 for 95 %).
    """
    if n <= 0:
        return 0.5
    p = k / n
    z2 = z * z
    return (z / (1.0 + z2 / n)) * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))


def n_looks(ad: AdaptiveSpec, samples: int) -> int:
    """How many times the stopping rule can be checked for one question."""
    first = min(max(ad.min_samples, ad.round), samples)
    return 1 + max(0, math.ceil((samples - first) / ad.round))


def adaptive_z(ad: AdaptiveSpec, samples: int) -> float:
    """The normal quantile used at every look (Bonferroni over the looks)."""
    return NormalDist().inv_cdf(1.0 - ad.delta / (2.0 * n_looks(ad, samples)))


def plurality_count(labels: Sequence[str]) -> int:
    """Size of the largest class (the plurality share's numerator). Unanswered samples count
    as a class of their own, like any other label."""
    if not labels:
        return 0
    return max(Counter(labels).values())


def should_stop(labels: Sequence[str], ad: AdaptiveSpec, samples: int) -> bool:
    """The adaptive stopping rule for one question, given its labels so far."""
    n = len(labels)
    if n >= samples:
        return True
    if n < min(ad.min_samples, samples):
        return False
    k = plurality_count(labels)
    return wilson_halfwidth(k, n, adaptive_z(ad, samples)) <= ad.epsilon


def next_round_size(n_so_far: int, ad: AdaptiveSpec, samples: int) -> int:
    """Samples to draw in the next round: reach ``min_samples`` first, then ``round`` at a time."""
    if n_so_far < ad.min_samples:
        # reach min_samples in whole rounds
        need = ad.min_samples - n_so_far
        size = ad.round * math.ceil(need / ad.round)
    else:
        size = ad.round
    return max(0, min(size, samples - n_so_far))
