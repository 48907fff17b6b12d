"""Self-prediction test (cheap version): can the model read its class distribution off its
first-token distribution?

The paper's mechanism says semantic calibration emerges when the model can predict its own
distribution over answer classes, B_x#p_x, *before* it answers. A direct check that needs no
training: compare

* the **sampled** class distribution pi(z) (share of ``samples`` answers in class z), with
* the distribution **implied by the first generated token**: q(z) = sum_t p(t) 1[class(t) = z],
  where p(t) are the model's top-k first-token probabilities (``sampler.next_token_logprobs``)
  and class(t) is the plurality class of the sampled answers whose first token is t
  (``mode="hard"``). Tokens in the top-k that no sample started with, and the mass outside the
  top-k, are *unmapped*; q is renormalised over the mapped mass and the unmapped mass is reported.

If the first token decides the class (a direct answer "Paris"), q ≈ pi: small total-variation
distance. If the first token is a template word ("The", "Let's"), every first token maps to one
class and q collapses onto it: large distance — the model cannot read its class distribution
from its immediate next-token distribution.

``mode="soft"`` instead spreads p(t) over the empirical class mix of the samples starting with t;
it then differs from pi only through p(t) versus the sampled first-token frequencies (a sanity
baseline: it is near pi for every style up to sampling noise).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from semcal.collapse.base import CollapseFn
from semcal.errors import InputError
from semcal.files import save_figure
from semcal.grade import Grader, class_shares, plurality
from semcal.metrics import cluster_bootstrap, summarize
from semcal.theory._common import grader_or_auto, sample_answers
from semcal.types import Question, check_n


@dataclass(frozen=True)
class SelfPrediction:
    """Self-prediction measurements for one question under one style.

    ``sampled`` and ``implied`` map class label -> probability (each sums to 1, ``implied`` may
    be empty when no top-k token could be mapped); ``unmapped_mass`` is the first-token
    probability mass that no sample explains (in [0, 1]).
    """

    question_id: str
    style: str
    sampled: dict[str, float]
    implied: dict[str, float]
    unmapped_mass: float
    tv: float
    kl: float
    top_class: str
    confidence: float  # sampled share of the plurality class
    implied_confidence: float  # implied probability of the same class
    correct: bool


def tv_distance(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Total-variation distance 0.5 * sum_z |p(z) - q(z)| between two class distributions."""
    keys = set(p) | set(q)
    return 0.5 * float(sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys))


def kl_divergence(p: Mapping[str, float], q: Mapping[str, float], eps: float = 1e-3) -> float:
    """KL(p || q) in nats, with q smoothed by ``eps`` on the union support (so it stays finite).

    q_s = (q + eps) / (1 + eps * |support|). Classes with p(z) = 0 contribute nothing.
    """
    if eps <= 0:
        raise InputError(f"eps must be > 0, got {eps}")
    keys = set(p) | set(q)
    z = 1.0 + eps * len(keys)
    total = 0.0
    for k in keys:
        pk = p.get(k, 0.0)
        if pk > 0:
            total += pk * math.log(pk / ((q.get(k, 0.0) + eps) / z))
    return float(total)


def implied_class_distribution(
    first_token_logprobs: Mapping[str, float],
    first_tokens: Sequence[str | None],
    labels: Sequence[str],
    mode: str = "hard",
) -> tuple[dict[str, float], float]:
    """The class distribution implied by first-token probabilities.

    Args:
        first_token_logprobs: top-k first tokens -> natural log-probability (<= 0).
        first_tokens: first generated token of each sample (None for an empty answer).
        labels: class of each sample (same length as ``first_tokens``).
        mode: "hard" (each token -> plurality class of its samples) or "soft" (each token ->
            the class mix of its samples).

    Returns:
        (q, unmapped_mass): q maps class -> probability, renormalised over the mapped mass
        (empty when nothing maps); unmapped_mass = 1 - mapped probability mass.
    """

    if len(first_tokens) != len(labels):
        raise InputError(
            f"first_tokens has {len(first_tokens)} entries but labels has {len(labels)}"
        )
    if mode not in ("hard", "soft"):
        raise InputError(f"mode must be 'hard' or 'soft', got {mode!r}")
    by_token: dict[str, list[str]] = {}
    for t, lab in zip(first_tokens, labels):
        if t is not None:
            by_token.setdefault(t, []).append(lab)
    mass: dict[str, float] = {}
    mapped = 0.0
    for tok, lp in first_token_logprobs.items():
        p = math.exp(float(lp))
        if not math.isfinite(p):
            raise InputError(f"bad log-probability {lp!r} for token {tok!r}")
        labs = by_token.get(tok)
        if not labs:
            continue
        mapped += p
        if mode == "hard":
            cls, _ = plurality(labs)
            mass[cls] = mass.get(cls, 0.0) + p
        else:
            for cls, c in Counter(labs).items():
                mass[cls] = mass.get(cls, 0.0) + p * c / len(labs)
    if mapped <= 0:
        return {}, 1.0
    q = {k: v / mapped for k, v in mass.items()}
    return q, float(min(max(1.0 - mapped, 0.0), 1.0))


def self_prediction(
    sampler: Any,
    questions: Sequence[Question],
    style: str,
    collapse: CollapseFn,
    *,
    samples: int = 20,
    top_k: int = 20,
    mode: str = "hard",
    temperature: float = 1.0,
    max_tokens: int | None = None,
    k_shot: int = 5,
    seed: int = 0,
    grader: Grader | None = None,
) -> list[SelfPrediction]:
    """Run the self-prediction test of ``sampler`` on ``questions`` under ``style``.

    ``collapse`` is the run's B for ``style`` (:func:`semcal.collapse.collapse_for`); the
    plurality class is graded by ``grader`` (default: the ``auto`` grader) and its confidence is
    :func:`semcal.grade.answer_confidence`, as in the analysis.

    Needs token strings in the completions (every backend gives next-token log-probs). Cost: ``len(questions) * samples`` samples plus one forward pass per question.
    """
    check_n(samples)
    check_n(top_k)
    questions = list(questions)
    grade = grader_or_auto(grader)

    prompts, _, sampled = sample_answers(
        sampler, questions, style, samples, temperature=temperature, seed=seed,
        max_tokens=max_tokens, k_shot=k_shot, tag="self",
    )
    first = sampler.next_token_logprobs(prompts, top_k)
    rows: list[SelfPrediction] = []
    for q, comps, lp in zip(questions, sampled, first):
        texts = [c.text for c in comps]
        collapsed = collapse(q, texts)
        labels = list(collapsed.labels)
        firsts = [c.tokens[0] if c.tokens else None for c in comps]
        graded = grade(q, collapsed, texts)
        top = graded.prediction
        sampled = class_shares(labels)
        implied, unmapped = implied_class_distribution(lp, firsts, labels, mode=mode)
        rows.append(
            SelfPrediction(
                question_id=q.id,
                style=style,
                sampled=sampled,
                implied=implied,
                unmapped_mass=unmapped,
                tv=tv_distance(sampled, implied) if implied else 1.0,
                kl=kl_divergence(sampled, implied),
                top_class=top,
                confidence=graded.confidence,
                implied_confidence=float(implied.get(top, 0.0)),
                correct=bool(graded.correct),
            )
        )
    return rows


def summarize_self_prediction(
    rows: Sequence[SelfPrediction], n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Aggregate self-prediction rows of one condition, with bootstrap CIs over questions.

    Keys: ``n``, ``mean_tv`` (+ ``mean_tv_ci``), ``mean_kl`` (+ CI), ``mean_unmapped``,
    ``corr_confidence`` (Pearson correlation of implied vs sampled confidence, + CI),
    ``smece_implied`` (smECE of the implied confidence of the plurality class as a predictor of
    its correctness) and ``smece_sampled`` (the same for the sampled confidence), each with its
    ``_ci`` from :func:`semcal.metrics.summarize`. Intervals of the other statistics resample
    questions (:func:`semcal.metrics.cluster_bootstrap`).
    """

    n = len(rows)
    out: dict[str, Any] = {"n": n}
    if n == 0:
        return out
    tv = np.array([r.tv for r in rows])
    kl = np.array([r.kl for r in rows])
    conf = np.array([r.confidence for r in rows])
    imp = np.array([r.implied_confidence for r in rows])
    corr = np.array([r.correct for r in rows], dtype=float)

    def pearson(idx: np.ndarray) -> float:
        a, b = conf[idx], imp[idx]
        if a.std() == 0 or b.std() == 0:
            return float("nan")
        return float(np.corrcoef(a, b)[0, 1])

    def sm(c: np.ndarray, y: np.ndarray) -> tuple[float, tuple[float, float]]:
        s = summarize(c, y, n_boot=n_boot, seed=seed, only="smece")
        return s["smece"], (s["smece_lo"], s["smece_hi"])

    smece_implied, smece_implied_ci = sm(imp, corr)
    smece_sampled, smece_sampled_ci = sm(conf, corr)

    out.update(
        {
            "mean_tv": float(tv.mean()),
            "mean_tv_ci": cluster_bootstrap(lambda i: float(tv[i].mean()), n, n_boot, seed=seed),
            "mean_kl": float(kl.mean()),
            "mean_kl_ci": cluster_bootstrap(lambda i: float(kl[i].mean()), n, n_boot, seed=seed),
            "mean_unmapped": float(np.mean([r.unmapped_mass for r in rows])),
            "corr_confidence": pearson(np.arange(n)),
            "corr_confidence_ci": cluster_bootstrap(pearson, n, n_boot, seed=seed),
            "smece_implied": smece_implied,
            "smece_implied_ci": smece_implied_ci,
            "smece_sampled": smece_sampled,
            "smece_sampled_ci": smece_sampled_ci,
        }
    )
    return out


def plot_self_prediction(
    by_style: Mapping[str, Sequence[SelfPrediction]], path: str | Path, title: str | None = None
) -> Path:
    """Scatter of first-token-implied confidence against sampled confidence, one colour per style,
    plus the distribution of TV distances. Writes a small PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), dpi=90)
    styles = list(by_style)
    for style in styles:
        rows = by_style[style]
        axes[0].scatter(
            [r.confidence for r in rows],
            [r.implied_confidence for r in rows],
            s=12,
            alpha=0.6,
            label=style,
        )
    axes[0].plot([0, 1], [0, 1], "k--", lw=0.8)
    axes[0].set_xlabel("sampled confidence (plurality share)")
    axes[0].set_ylabel("implied by first-token probs")
    axes[0].legend(fontsize=7)
    axes[1].boxplot([[r.tv for r in by_style[s]] for s in styles])
    axes[1].set_xticks(range(1, len(styles) + 1), styles)
    axes[1].set_ylabel("TV(sampled, implied)")
    axes[1].set_ylim(-0.02, 1.02)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle(title or "Self-prediction from the first-token distribution", fontsize=9)
    fig.tight_layout()

    save_figure(fig, path)
    plt.close(fig)
    return path


def rows_to_dicts(rows: Sequence[SelfPrediction]) -> list[dict[str, Any]]:
    """JSON-ready dicts of self-prediction rows."""
    return [asdict(r) for r in rows]
