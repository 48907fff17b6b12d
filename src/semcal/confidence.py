"""Confidence estimators computed from one question's stored samples.

Every estimator answers one question: *how sure is the model of its predicted answer?* The
inputs are what the store keeps for a question:

- ``labels``: the semantic class of each of the M samples (output of a collapsing function B;
  :data:`~semcal.types.NO_ANSWER` for samples with no extractable answer);
- ``prediction``: the predicted class (the plurality class, see :func:`semcal.grade.plurality`);
- ``completions``: the M :class:`~semcal.types.Completion` objects, in the same order as
  ``labels`` (used for token log-probabilities);
- ``greedy``: an optional temperature-0 completion, requested separately by the runner;
- ``extra``: values computed by estimators that need the model again (verbalised confidence,
  P(True)), stored by the runner and passed through here.

Two kinds of output exist. **Probabilities** (``Estimator.is_probability``) lie in [0, 1] and
are meant to be read as "the probability that the answer is correct"; calibration metrics
(smECE, ECE, Brier, log-loss) make sense for them. **Scores** (negative semantic entropy,
negative number of classes) only rank questions; use them for AUROC, never for smECE.

Estimators that need information that is missing (no log-probabilities, no greedy completion,
no extra model call) return ``None`` instead of raising.

Two estimators need one extra forward pass per question and are therefore functions of a
:class:`~semcal.backends.base.Sampler`: :func:`verbalized_confidence` and :func:`p_true`.

See docs/estimators.md for the definitions and references.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from semcal.errors import InputError
from semcal.grade import answer_confidence, plurality
from semcal.prompts import p_true_prompt, verbalized_confidence_prompt
from semcal.registry import Registry
from semcal.types import NON_ANSWERS, Completion, Question, SamplingParams

__all__ = [
    "ESTIMATORS",
    "Estimator",
    "EstimatorInput",
    "class_counts",
    "class_probabilities_weighted",
    "estimate_all",
    "greedy_mean_token_prob",
    "greedy_sequence_prob",
    "logprob_weighted_confidence",
    "max_sequence_prob",
    "num_classes",
    "p_true",
    "p_true_from_logprobs",
    "parse_verbalized",
    "semantic_confidence",
    "semantic_confidence_smoothed",
    "semantic_entropy",
    "semantic_entropy_weighted",
    "verbalized_confidence",
]


# ---------------------------------------------------------------------------------------------
# helpers


def _check_labels(labels: Sequence[str]) -> list[str]:
    if isinstance(labels, str):
        raise InputError("labels must be a sequence of class labels, not a single string")
    out = [str(x) for x in labels]
    if not out:
        raise InputError("labels is empty: a question needs at least one sample")
    return out


def _plurality(labels: Sequence[str]) -> str:
    """The plurality class, by the project-wide tie rule (:func:`semcal.grade.plurality`)."""

    return plurality(list(labels))[0]


def _resolve_prediction(labels: list[str], prediction: str | None) -> str:
    if prediction is None:
        return _plurality(labels)
    return str(prediction)


def class_counts(labels: Sequence[str]) -> dict[str, int]:
    """Number of samples per semantic class, in order of first appearance."""
    return dict(Counter(_check_labels(labels)))


def _check_completions(labels: list[str], completions: Sequence[Completion] | None) -> None:
    if completions is not None and len(completions) != len(labels):
        raise InputError(
            f"{len(completions)} completions for {len(labels)} labels: they must match one to one"
        )


def _seq_logprob(c: Completion, length_normalized: bool) -> float | None:
    """Total (or per-token mean) log-probability of one completion, or None if unknown."""
    lps = c.token_logprobs
    if lps is None or len(lps) == 0:
        return None
    try:
        total = math.fsum(lps)
    except ValueError:  # +inf and -inf together
        return None
    if math.isnan(total) or total == math.inf:
        return None  # NaN or +inf in the engine output: treat as unknown
    return total / len(lps) if length_normalized else total


# ---------------------------------------------------------------------------------------------
# sample-count estimators


def semantic_confidence(labels: Sequence[str], prediction: str | None = None) -> float:
    """The paper's semantic confidence: the share of samples in the predicted class, count / M
    (:func:`semcal.grade.answer_confidence`, 0 when the prediction is no answer).

    ``prediction`` defaults to the plurality class. Example: labels ``[a, a, b]`` -> 2/3.
    """
    labs = _check_labels(labels)
    pred = _resolve_prediction(labs, prediction)
    return answer_confidence(pred, labs.count(pred), len(labs))


def semantic_confidence_smoothed(
    labels: Sequence[str], prediction: str | None = None, alpha: float = 1.0
) -> float:
    """Add-``alpha`` (Laplace, alpha=1) smoothed semantic confidence.

    ``(count + alpha) / (M + alpha * (K + 1))`` where K is the number of distinct classes seen
    among the M samples and the extra 1 is a bucket for "some class not sampled". This is the
    posterior mean of the predicted class's probability under a symmetric Dirichlet(alpha)
    prior over the seen classes plus one unseen class. It never reaches 0 or 1 (unanimous
    samples give (M+alpha)/(M+2*alpha), e.g. 11/12 for M=10), which keeps log-loss finite, and it
    shrinks the small-M plurality share, which is biased upwards because it is a maximum.
    """
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise InputError(f"alpha must be a finite number > 0, got {alpha!r}")
    labs = _check_labels(labels)
    pred = _resolve_prediction(labs, prediction)
    k = len(set(labs))
    return (labs.count(pred) + alpha) / (len(labs) + alpha * (k + 1))


def num_classes(labels: Sequence[str]) -> int:
    """Number of distinct semantic classes among the samples (NO_ANSWER counts as one class)."""
    return len(set(_check_labels(labels)))


def semantic_entropy(labels: Sequence[str]) -> float:
    """Discrete semantic entropy in nats: -sum_c (n_c/M) log(n_c/M) over the sampled classes.

    This is the count-based estimator ("discrete semantic entropy", Farquhar et al. 2024), which
    needs no log-probabilities. Example: ``[a, a, b, b]`` -> ln 2. It is an uncertainty *score*:
    larger means less confident, and it is not a probability.
    """
    labs = _check_labels(labels)
    m = len(labs)
    h = -math.fsum((n / m) * math.log(n / m) for n in Counter(labs).values())
    return max(h, 0.0)  # clamp -0.0 and rounding below zero


# ---------------------------------------------------------------------------------------------
# log-probability estimators


def class_probabilities_weighted(
    labels: Sequence[str],
    completions: Sequence[Completion],
    *,
    length_normalized: bool = True,
    dedupe: bool = False,
) -> dict[str, float] | None:
    """Class distribution weighted by the samples' sequence probabilities.

    p(C) = sum_{i in C} w_i / sum_i w_i with w_i = exp(log p(y_i | x)). With
    ``length_normalized=True`` (the default, as in the reference implementation of Kuhn et al.
    2023 / Farquhar et al. 2024), log p is the *mean* token log-probability; otherwise the total.
    With ``dedupe=True`` identical texts are counted once, so that p(C) becomes the normalised
    probability mass of the distinct sequences seen in C (without it a sequence sampled twice
    is weighted twice). Returns None when any sample lacks log-probabilities.
    """
    labs = _check_labels(labels)
    _check_completions(labs, completions)
    seen: set[str] = set()
    logw: list[tuple[str, float]] = []
    for lab, c in zip(labs, completions):
        if dedupe:
            if c.text in seen:
                continue
            seen.add(c.text)
        lp = _seq_logprob(c, length_normalized)
        if lp is None:
            return None
        logw.append((lab, lp))
    top = max(lp for _, lp in logw)
    if top == -math.inf:
        return None  # every sample has probability zero: no information
    mass: dict[str, float] = {}
    for lab, lp in logw:
        mass[lab] = mass.get(lab, 0.0) + math.exp(lp - top)  # shift for numerical safety
    z = math.fsum(mass.values())
    return {lab: v / z for lab, v in mass.items()}


def logprob_weighted_confidence(
    labels: Sequence[str],
    prediction: str | None,
    completions: Sequence[Completion],
    *,
    length_normalized: bool = True,
    dedupe: bool = False,
) -> float | None:
    """Log-probability-weighted probability of the predicted class (see
    :func:`class_probabilities_weighted`), or None without log-probabilities."""
    labs = _check_labels(labels)
    probs = class_probabilities_weighted(
        labs, completions, length_normalized=length_normalized, dedupe=dedupe
    )
    if probs is None:
        return None
    return probs.get(_resolve_prediction(labs, prediction), 0.0)


def semantic_entropy_weighted(
    labels: Sequence[str],
    completions: Sequence[Completion],
    *,
    length_normalized: bool = True,
    dedupe: bool = False,
) -> float | None:
    """Semantic entropy of Kuhn et al. (2023) / Farquhar et al. (2024), in nats.

    -sum_C p(C) log p(C) with p(C) the log-probability-weighted class distribution of
    :func:`class_probabilities_weighted`. None without log-probabilities. A score, not a
    probability.
    """
    probs = class_probabilities_weighted(
        labels, completions, length_normalized=length_normalized, dedupe=dedupe
    )
    if probs is None:
        return None
    return max(-math.fsum(p * math.log(p) for p in probs.values() if p > 0), 0.0)


def max_sequence_prob(
    labels: Sequence[str],
    prediction: str | None,
    completions: Sequence[Completion],
    *,
    within: str = "prediction",
) -> float | None:
    """Largest sequence probability exp(sum of token log-probs) among the samples.

    ``within="prediction"`` (the default) looks only at the samples in the predicted class, so
    the value is a lower bound on the model's probability of that class (any one sequence of a
    class has at most the class's mass). ``within="all"`` looks at every sample (the
    probability of the single most likely sampled answer, whatever its class). None when the
    relevant samples lack log-probabilities.
    """
    if within not in ("prediction", "all"):
        raise InputError(f"within must be 'prediction' or 'all', got {within!r}")
    labs = _check_labels(labels)
    _check_completions(labs, completions)
    pred = _resolve_prediction(labs, prediction)
    best: float | None = None
    for lab, c in zip(labs, completions):
        if within == "prediction" and lab != pred:
            continue
        lp = _seq_logprob(c, length_normalized=False)
        if lp is None:
            return None
        best = lp if best is None else max(best, lp)
    return None if best is None else math.exp(best)


def greedy_mean_token_prob(greedy: Completion | None) -> float | None:
    """exp(mean token log-prob) of the greedy (temperature-0) completion, or None.

    The geometric mean of the per-token probabilities (length-normalised sequence likelihood,
    Malinin & Gales 2021). It is the confidence of the *greedy* answer, not of the plurality
    class; it is in [0, 1] but is not the probability of any event.
    """
    if greedy is None:
        return None
    lp = _seq_logprob(greedy, length_normalized=True)
    return None if lp is None else math.exp(lp)


def greedy_sequence_prob(greedy: Completion | None) -> float | None:
    """exp(total token log-prob) of the greedy completion: the probability of that exact string.

    None when there is no greedy completion or it has no log-probabilities.
    """
    if greedy is None:
        return None
    lp = _seq_logprob(greedy, length_normalized=False)
    return None if lp is None else math.exp(lp)


# ---------------------------------------------------------------------------------------------
# estimators that query the model again: verbalised confidence and P(True)

_NUM = r"(?<![\w.])(-?\d+(?:[.,]\d+)?|-?\.\d+)"
_RANGE_RE = re.compile(
    r"\d+(?:\.\d+)?\s*%?\s*(?:-|–|to|and)\s*\d+(?:\.\d+)?\s*%?", re.IGNORECASE
)
_PERCENT_RE = re.compile(_NUM + r"\s*(?:%|percent\b|per cent\b|pct\b)", re.IGNORECASE)
_FRACTION_RE = re.compile(_NUM + r"\s*(?:/|out of)\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_PLAIN_RE = re.compile(_NUM)


def _to_float(s: str) -> float | None:
    try:
        v = float(s.replace(",", "."))
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def parse_verbalized(text: str | None) -> float | None:
    """Parse a verbalised confidence ("85%", "I'm 90 percent sure", "0.7", "8/10") into [0, 1].

    Rules, first match wins:

    1. a number followed by ``%``/``percent`` -> number / 100;
    2. a fraction ``x/y`` or ``x out of y`` with 0 <= x <= y -> x / y;
    3. the first other number, after removing scale mentions such as "0-100" or "0 to 100":
       a number with a decimal point in [0, 1] is a probability ("0.7"); otherwise a number in
       [0, 100] is a percentage ("confidence: 100" -> 1.0, "85" -> 0.85);
    4. anything else (no number, a negative number, a number above 100, NaN) -> None.
    """
    if text is None:
        return None
    s = str(text)
    m = _PERCENT_RE.search(s)
    if m:
        v = _to_float(m.group(1))
        return v / 100 if v is not None and 0 <= v <= 100 else None
    m = _FRACTION_RE.search(s)
    if m:
        x, y = _to_float(m.group(1)), _to_float(m.group(2))
        if x is not None and y is not None and y > 0 and 0 <= x <= y:
            return x / y
        return None
    s = _RANGE_RE.sub(" ", s)  # "on a scale of 0-100" is not an answer
    m = _PLAIN_RE.search(s)
    if not m:
        return None
    raw = m.group(1)
    v = _to_float(raw)
    if v is None or v < 0:
        return None
    if ("." in raw or "," in raw) and v <= 1:
        return v
    return v / 100 if v <= 100 else None


def _check_pairs(questions: Sequence[Question], answers: Sequence[str]) -> None:
    if len(questions) != len(answers):
        raise InputError(f"{len(questions)} questions but {len(answers)} answers")


def verbalized_confidence(
    sampler: Any,
    questions: Sequence[Question],
    answers: Sequence[str],
    *,
    max_tokens: int = 16,
    seed: int = 0,
) -> list[float | None]:
    """Ask the model how confident it is (0-100%) in each proposed answer; parse the reply.

    One greedy generation per question (Tian et al. 2023; Lin et al. 2022). ``answers[i]`` is
    the text of the answer to rate (usually a sample of the predicted class). Returns one value
    in [0, 1] per question, None where the reply contains no usable number.
    The prompt is :func:`semcal.prompts.verbalized_confidence_prompt` (few-shot for base
    models, a user message for chat models).
    """
    _check_pairs(questions, answers)
    if not questions:
        return []
    chat = bool(sampler.is_chat)
    prompts = [verbalized_confidence_prompt(q, a, chat=chat) for q, a in zip(questions, answers)]
    params = SamplingParams(
        temperature=0.0, max_tokens=max_tokens, stop=("\n",), seed=seed, logprobs=False
    )
    outs = sampler.sample(prompts, 1, params)
    return [parse_verbalized(o[0].text) if o else None for o in outs]


_TRUE_WORDS = frozenset({"true", "yes"})
_FALSE_WORDS = frozenset({"false", "no"})


def p_true_from_logprobs(top: Mapping[str, float] | None) -> float | None:
    """P(True) from the top-k log-probabilities of the first answer token.

    Sums the probability of every token that reads "true" after stripping spaces, punctuation
    and case (" True", "True", "TRUE", " true.") and likewise for "false" ("yes"/"no" are
    accepted as synonyms), then normalises over the two: P(True) = p_T / (p_T + p_F).
    A side absent from the top-k counts as 0. None when neither appears.
    """
    if not top:
        return None
    p_t = p_f = 0.0
    for tok, lp in top.items():
        try:
            lpf = float(lp)
        except (TypeError, ValueError):
            continue
        if math.isnan(lpf):
            continue
        word = re.sub(r"[\W_]+", "", str(tok)).lower()
        if word in _TRUE_WORDS:
            p_t += math.exp(min(lpf, 0.0))
        elif word in _FALSE_WORDS:
            p_f += math.exp(min(lpf, 0.0))
    if p_t + p_f <= 0:
        return None
    return p_t / (p_t + p_f)


def p_true(
    sampler: Any,
    questions: Sequence[Question],
    answers: Sequence[str],
    *,
    k: int = 20,
) -> list[float | None]:
    """P(True) of Kadavath et al. (2022): the probability the model gives to "True" (vs "False")
    when asked whether the proposed answer is correct. One forward pass per question.

    Uses ``sampler.next_token_logprobs(prompts, k)`` (top-k log-probs of the first generated
    token; every backend gives them). The prompt is
    :func:`semcal.prompts.p_true_prompt` (few-shot for base models, a user message for chat
    models), which ends where the next token is "True" or "False".
    """
    _check_pairs(questions, answers)
    if not questions:
        return []
    chat = bool(sampler.is_chat)
    prompts = [p_true_prompt(q, a, chat=chat) for q, a in zip(questions, answers)]
    tops = sampler.next_token_logprobs(prompts, k)
    return [p_true_from_logprobs(t) for t in tops]


# ---------------------------------------------------------------------------------------------
# registry


@dataclass(frozen=True)
class EstimatorInput:
    """Everything a sample-based estimator may look at for one question."""

    labels: tuple[str, ...]
    prediction: str
    completions: tuple[Completion, ...] | None = None
    greedy: Completion | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Estimator:
    """A named confidence estimator.

    ``is_probability``: the value is in [0, 1] and meant as P(correct), so calibration metrics
    apply; otherwise it is a score (higher = more confident) for ranking metrics (AUROC) only.
    ``needs``: subset of {"samples", "logprobs", "greedy", "model"}; "model" means one extra
    forward pass per question, done by the runner (the value arrives via ``extra[name]``).
    ``target``: which answer the confidence is about: "prediction" (the plurality class) or
    "greedy" (the greedy completion's answer, which may differ).
    """

    name: str
    is_probability: bool
    needs: frozenset[str]
    description: str
    fn: Callable[[EstimatorInput], float | None]
    target: str = "prediction"


def _extra_value(name: str) -> Callable[[EstimatorInput], float | None]:
    def get(inp: EstimatorInput) -> float | None:
        v = inp.extra.get(name)
        if v is None:
            return None
        try:
            f = float(v)
        except (TypeError, ValueError):
            return None
        return f if math.isfinite(f) and 0.0 <= f <= 1.0 else None

    return get


def _neg(v: float | None) -> float | None:
    return None if v is None else -v


#: the confidence estimators by name (semcal.registry): register one here to add it
ESTIMATORS: Registry[Estimator] = Registry("estimator")
for _e in (
        Estimator(
            "semantic",
            True,
            frozenset({"samples"}),
            "plurality share count/M of the predicted class (Nakkiran et al. 2025)",
            lambda i: semantic_confidence(i.labels, i.prediction),
        ),
        Estimator(
            "semantic_laplace",
            True,
            frozenset({"samples"}),
            "add-one smoothed plurality share (count+1)/(M+K+1), K = distinct classes seen",
            lambda i: semantic_confidence_smoothed(i.labels, i.prediction),
        ),
        Estimator(
            "logprob_weighted",
            True,
            frozenset({"samples", "logprobs"}),
            "predicted class's share of the normalised (length-normalised) sample probabilities",
            lambda i: None
            if i.completions is None
            else logprob_weighted_confidence(i.labels, i.prediction, i.completions),
        ),
        Estimator(
            "max_seq_prob",
            True,
            frozenset({"samples", "logprobs"}),
            "largest sequence probability among the samples of the predicted class",
            lambda i: None
            if i.completions is None
            else max_sequence_prob(i.labels, i.prediction, i.completions),
        ),
        Estimator(
            "greedy_mean_prob",
            True,
            frozenset({"greedy", "logprobs"}),
            "exp(mean token log-prob) of the greedy answer (about the greedy answer)",
            lambda i: greedy_mean_token_prob(i.greedy),
            target="greedy",
        ),
        Estimator(
            "greedy_seq_prob",
            True,
            frozenset({"greedy", "logprobs"}),
            "exp(total token log-prob) of the greedy answer (about the greedy answer)",
            lambda i: greedy_sequence_prob(i.greedy),
            target="greedy",
        ),
        Estimator(
            "neg_semantic_entropy",
            False,
            frozenset({"samples"}),
            "minus the discrete (count-based) semantic entropy in nats; a score",
            lambda i: _neg(semantic_entropy(i.labels)),
        ),
        Estimator(
            "neg_semantic_entropy_weighted",
            False,
            frozenset({"samples", "logprobs"}),
            "minus the log-prob-weighted semantic entropy (Kuhn et al. 2023) in nats; a score",
            lambda i: None
            if i.completions is None
            else _neg(semantic_entropy_weighted(i.labels, i.completions)),
        ),
        Estimator(
            "neg_num_classes",
            False,
            frozenset({"samples"}),
            "minus the number of distinct semantic classes; a score",
            lambda i: float(-num_classes(i.labels)),
        ),
        Estimator(
            "verbalized",
            True,
            frozenset({"model"}),
            "model's stated confidence 0-100% in its answer, parsed (one extra generation)",
            _extra_value("verbalized"),
        ),
        Estimator(
            "p_true",
            True,
            frozenset({"model"}),
            "probability of 'True' vs 'False' for 'is the answer correct?' (one forward pass)",
            _extra_value("p_true"),
        ),
):
    ESTIMATORS.register(_e.name, _e)


def estimate_all(
    labels: Sequence[str],
    prediction: str | None,
    completions: Sequence[Completion] | None,
    greedy: Completion | None = None,
    extra: Mapping[str, Any] | None = None,
    names: Sequence[str] | None = None,
) -> dict[str, float | None]:
    """Run every registered estimator (or those in ``names``) on one question.

    ``labels``/``completions`` are the M samples in matching order (``completions`` may be None
    when only labels are stored); ``prediction`` defaults to the plurality class. Model-based
    estimators ("verbalized", "p_true") read their value from ``extra[name]``. Returns
    name -> value, with None where the needed information is missing.

    When the prediction is not an answer (``NO_ANSWER``, ``REFUSAL``), the probabilities the
    samples give about it are 0, as the run's semantic confidence is
    (:func:`semcal.grade.answer_confidence`): there is no answer to be confident in.
    """
    labs = _check_labels(labels)
    _check_completions(labs, completions)
    pred = _resolve_prediction(labs, prediction)
    if names is None:
        chosen = list(ESTIMATORS.values())
    else:
        unknown = [n for n in names if n not in ESTIMATORS]
        if unknown:
            raise InputError(
                f"unknown estimator(s) {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(ESTIMATORS)})"
            )
        chosen = [ESTIMATORS[n] for n in names]
    inp = EstimatorInput(
        labels=tuple(labs),
        prediction=pred,
        completions=None if completions is None else tuple(completions),
        greedy=greedy,
        extra=dict(extra or {}),
    )
    out: dict[str, float | None] = {}
    no_answer = pred in NON_ANSWERS
    for est in chosen:
        if no_answer and est.is_probability and est.target == "prediction" and "samples" in est.needs:
            out[est.name] = 0.0
            continue
        v = est.fn(inp)
        out[est.name] = None if v is None or not math.isfinite(v) else float(v)
    return out
