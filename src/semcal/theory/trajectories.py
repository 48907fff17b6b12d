"""Intermediate B-confidence trajectories.

For a question x the model's *final plurality class* z* is the most frequent class among
``samples`` sampled answers (its prediction). Take one sampled answer y (a *trajectory*) of
``n`` tokens. The intermediate B-confidence after ``i`` generated tokens is

    g_i = P[ B(Y) = z*  |  Y starts with y_1..y_i ],

estimated by drawing ``n_continuations`` (K) continuations of the prompt followed by the
prefix y_1..y_i and collapsing ``prefix + continuation``. ``g_0`` (no prefix) is the semantic
confidence itself (estimated from K fresh samples); ``g_n = 1[B(y) = z*]`` is known without
sampling. Along a trajectory g_i is a martingale that moves from g_0 to 0 or 1.

The paper's mechanism needs the model to "know" these quantities while it generates. For a
direct answer the class is decided by the first answer tokens, so g_i resolves to 0/1 almost
at once and the next-token distribution at the start already carries the class distribution.
With chain-of-thought the class is decided late: g_i stays near g_0 for most of the answer.
:func:`summarize_trajectories` quantifies this per position (as a fraction of answer length):

* ``brier``: mean (g_i - g_n)^2, the uncertainty about the trajectory's final class left
  after i tokens (0 = resolved);
* ``resolved_share``: 1 - brier_i / brier_0, the share of the initial uncertainty resolved;
* ``auroc_final``: AUROC of g_i for predicting that the trajectory ends in z*;
* ``auroc_correct``: AUROC of g_i for predicting that the trajectory's final answer is correct.

All texts of one question (reference samples and every continuation) are collapsed in one call
of B, so class labels are comparable even for clustering-based collapsing functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from semcal.collapse.base import CollapseFn
from semcal.errors import InputError
from semcal.files import save_figure
from semcal.grade import Grader
from semcal.metrics import auroc, cluster_bootstrap
from semcal.theory._common import (
    derived_seed,
    grade_classes,
    grader_or_auto,
    sample_answers,
    sample_each,
    token_prefix,
    with_prefix,
)
from semcal.types import Collapsed, Question, check_n

#: default prefix positions as fractions of the reference answer's token length
DEFAULT_FRACTIONS: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
#: default absolute prefix positions (tokens), added to the fractional ones
DEFAULT_ABSOLUTE: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class QuestionTrajectory:
    """One trajectory: the reference answer ``trajectory`` of question ``question_id``.

    ``positions[j]`` is a prefix length in tokens (0..length); ``g[j]`` the share of the K
    continuations from that prefix whose class is the final plurality class; ``p_correct[j]``
    the share whose class is a gold class. The last position is always ``length`` with
    ``g = 1[final_class == top_class]`` (no sampling needed).
    """

    question_id: str
    style: str
    trajectory: int
    length: int
    positions: tuple[int, ...]
    g: tuple[float, ...]
    p_correct: tuple[float, ...]
    top_class: str
    confidence: float  # plurality share among the reference samples
    correct: bool  # top_class is gold
    final_class: str  # class of this trajectory's full answer
    final_correct: bool
    text: str = ""

    @property
    def fractions(self) -> tuple[float, ...]:
        """Positions as fractions of the answer length (0..1)."""
        n = max(self.length, 1)
        return tuple(p / n for p in self.positions)

    def g_at(self, fraction: float) -> float:
        """g at the largest measured position whose fraction is <= ``fraction`` (step interpolation)."""
        fr = np.asarray(self.fractions)
        j = int(np.searchsorted(fr, fraction + 1e-9, side="right") - 1)
        return float(self.g[max(j, 0)])


@dataclass
class TrajectoryResult:
    """Trajectories of one (model, style) condition."""

    model: str
    style: str
    samples: int
    n_continuations: int
    temperature: float
    trajectories: list[QuestionTrajectory] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "style": self.style,
            "samples": self.samples,
            "n_continuations": self.n_continuations,
            "temperature": self.temperature,
            "trajectories": [asdict(t) for t in self.trajectories],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrajectoryResult:
        trajs = []
        for t in d.get("trajectories", []):
            t = dict(t)
            for k in ("positions", "g", "p_correct"):
                t[k] = tuple(t[k])
            trajs.append(QuestionTrajectory(**t))
        return cls(
            model=d["model"],
            style=d["style"],
            samples=int(d.get("samples", d.get("n_samples", 0))),  # cached before the rename: "n_samples"
            n_continuations=int(d["n_continuations"]),
            temperature=float(d["temperature"]),
            trajectories=trajs,
        )


def prefix_positions(
    length: int,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    absolute: Sequence[int] = DEFAULT_ABSOLUTE,
) -> tuple[int, ...]:
    """Sorted distinct prefix lengths (tokens) for an answer of ``length`` tokens.

    Fractions are rounded to the nearest token; absolute positions beyond ``length`` are
    dropped. 0 and ``length`` are always included.
    """
    if length < 0:
        raise InputError(f"answer length must be >= 0, got {length}")
    pos = {0, length}
    for f in fractions:
        if not 0.0 <= float(f) <= 1.0:
            raise InputError(f"prefix fractions must lie in [0, 1], got {f}")
        pos.add(int(round(float(f) * length)))
    for a in absolute:
        if int(a) < 0:
            raise InputError(f"absolute prefix positions must be >= 0, got {a}")
        if int(a) <= length:
            pos.add(int(a))
    return tuple(sorted(pos))


def estimate_trajectories(
    sampler: Any,
    questions: Sequence[Question],
    style: str,
    collapse: CollapseFn,
    *,
    samples: int = 10,
    n_continuations: int = 8,
    n_trajectories: int = 1,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    absolute: Sequence[int] = DEFAULT_ABSOLUTE,
    temperature: float = 1.0,
    max_tokens: int | None = None,
    k_shot: int = 5,
    seed: int = 0,
    grader: Grader | None = None,
) -> TrajectoryResult:
    """Estimate intermediate B-confidence trajectories of ``sampler`` on ``questions``.

    Per question: ``samples`` reference answers (they fix the plurality class z*); the
    first ``n_trajectories`` of them (those with at least one token) are the trajectories;
    for each prefix position (see :func:`prefix_positions`) except the last, ``n_continuations``
    continuations are drawn. Cost: about ``len(questions) * (samples + n_trajectories *
    len(positions) * n_continuations)`` samples.

    ``sampler`` is a :class:`semcal.backends.Sampler` that reports token strings. ``collapse``
    is the run's B for ``style`` (:func:`semcal.collapse.collapse_for`); classes are graded by
    ``grader`` (default: the ``auto`` grader) and the plurality's confidence is
    :func:`semcal.grade.answer_confidence`, as in the analysis.
    """
    grade = grader_or_auto(grader)
    check_n(samples)
    check_n(n_continuations)
    check_n(n_trajectories)
    if n_trajectories > samples:
        raise InputError(
            f"n_trajectories ({n_trajectories}) cannot exceed samples ({samples})"
        )
    questions = list(questions)

    prompts, params, reference = sample_answers(
        sampler, questions, style, samples, temperature=temperature, seed=seed,
        max_tokens=max_tokens, k_shot=k_shot, tag="ref",
    )

    jobs, plans = _prefix_jobs(reference, n_trajectories, fractions, absolute)
    job_prompts = [with_prefix(prompts[qi], prefix) for qi, _, _, prefix in jobs]
    job_seeds = [derived_seed(seed, "cont", questions[qi].id, ti, p) for qi, ti, p, _ in jobs]
    conts = sample_each(sampler, job_prompts, n_continuations, params, job_seeds)

    # gather all texts of a question and collapse them together
    by_q: dict[int, list[tuple[int, int, str, list[str]]]] = {}
    for (qi, ti, p, prefix), cs in zip(jobs, conts):
        by_q.setdefault(qi, []).append((ti, p, prefix, [prefix + c.text for c in cs]))

    result = TrajectoryResult(
        model=str(sampler.model_name),
        style=style,
        samples=samples,
        n_continuations=n_continuations,
        temperature=float(temperature),
    )
    for qi, q in enumerate(questions):
        plans_q = [(ti, pos) for (qj, ti), pos in sorted(plans.items()) if qj == qi]
        result.trajectories.extend(_question_trajectories(
            q, style, collapse, grade, reference[qi], by_q.get(qi, []), plans_q,
        ))
    return result


def _prefix_jobs(
    reference: Sequence[Sequence[Any]],
    n_trajectories: int,
    fractions: Sequence[float],
    absolute: Sequence[int],
) -> tuple[list[tuple[int, int, int, str]], dict[tuple[int, int], tuple[int, ...]]]:
    """One prefix per (question, trajectory, position < length), and each trajectory's positions."""
    jobs: list[tuple[int, int, int, str]] = []  # (question idx, trajectory idx, position, prefix)
    plans: dict[tuple[int, int], tuple[int, ...]] = {}
    for qi, comps in enumerate(reference):
        chosen = [ti for ti, c in enumerate(comps) if c.n_tokens > 0][:n_trajectories]
        for ti in chosen:
            c = comps[ti]
            pos = prefix_positions(c.n_tokens, fractions, absolute)
            plans[(qi, ti)] = pos
            for p in pos[:-1]:
                jobs.append((qi, ti, p, token_prefix(c, p)))
    return jobs, plans


def _question_trajectories(
    q: Question,
    style: str,
    collapse: CollapseFn,
    grade: Grader,
    reference: Sequence[Any],
    groups: list[tuple[int, int, str, list[str]]],
    plans: list[tuple[int, tuple[int, ...]]],
) -> list[QuestionTrajectory]:
    """Collapse one question's texts together and build its trajectories from the labels."""
    ref_texts = [c.text for c in reference]
    texts = ref_texts + [t for _, _, _, ts in groups for t in ts]
    collapsed = collapse(q, texts)
    labels = list(collapsed.labels)
    if len(labels) != len(texts):
        raise InputError(
            f"collapsing function returned {len(labels)} labels for {len(texts)} texts",
            where=f"question {q.id!r}",
        )
    ref_labels = labels[: len(ref_texts)]
    graded = grade(q, Collapsed(tuple(ref_labels), collapsed.gold), ref_texts)
    top, confidence, correct = graded.prediction, graded.confidence, bool(graded.correct)
    right = grade_classes(grade, q, collapsed, texts)
    g_of = _continuation_shares(labels, len(ref_texts), groups, top, right)
    out = []
    for ti, pos in plans:
        final = ref_labels[ti]
        final_correct = right[final]
        gs, pcs = [], []
        for p in pos[:-1]:
            g, pc = g_of[(ti, p)]
            gs.append(g)
            pcs.append(pc)
        gs.append(float(final == top))
        pcs.append(float(final_correct))
        out.append(
            QuestionTrajectory(
                question_id=q.id,
                style=style,
                trajectory=ti,
                length=pos[-1],
                positions=pos,
                g=tuple(gs),
                p_correct=tuple(pcs),
                top_class=top,
                confidence=confidence,
                correct=correct,
                final_class=final,
                final_correct=final_correct,
                text=reference[ti].text,
            )
        )
    return out


def _continuation_shares(
    labels: list[str],
    off: int,
    groups: list[tuple[int, int, str, list[str]]],
    top: Any,
    right: dict[str, bool],
) -> dict[tuple[int, int], tuple[float, float]]:
    """Per (trajectory, position): the share of continuations in z* and the share graded right."""
    g_of: dict[tuple[int, int], tuple[float, float]] = {}
    for ti, p, _prefix, ts in groups:
        lab = labels[off : off + len(ts)]
        off += len(ts)
        g = sum(lb == top for lb in lab) / len(lab)
        pc = sum(right[lb] for lb in lab) / len(lab)
        g_of[(ti, p)] = (g, pc)
    return g_of


def _matrix(result: TrajectoryResult, grid: Sequence[float]) -> np.ndarray:
    """g of every trajectory (rows) at every grid fraction (columns), step-interpolated."""
    return np.array([[t.g_at(f) for f in grid] for t in result.trajectories], dtype=float)


def summarize_trajectories(
    result: TrajectoryResult,
    grid: Sequence[float] = DEFAULT_FRACTIONS,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-position statistics of the trajectories, with bootstrap CIs over questions.

    Returns ``{"style", "n_trajectories", "n_questions", "mean_length", "grid": [...], "rows": [...],
    "half_resolution_fraction"}`` where each row holds, at one grid fraction: ``mean_g``,
    ``mean_g_final`` / ``mean_g_other`` (trajectories that end / do not end in z*),
    ``brier`` (+ ``brier_ci``), ``resolved_share``, ``auroc_final`` (+ CI) and
    ``auroc_correct`` (+ CI). ``half_resolution_fraction`` is the first grid fraction at which
    at least half of the initial uncertainty (brier at 0) is resolved.
    """
    trajs = result.trajectories
    grid = [float(f) for f in grid]
    out: dict[str, Any] = {
        "model": result.model,
        "style": result.style,
        "n_trajectories": len(trajs),
        "n_questions": len({t.question_id for t in trajs}),
        "mean_length": float(np.mean([t.length for t in trajs])) if trajs else float("nan"),
        "grid": grid,
        "rows": [],
        "half_resolution_fraction": None,
    }
    if not trajs:
        return out
    G = _matrix(result, grid)
    final = np.array([t.g[-1] for t in trajs], dtype=float)  # 1[final class == z*]
    fcorrect = np.array([t.final_correct for t in trajs], dtype=bool)
    n = len(trajs)
    brier0 = float(np.mean((G[:, 0] - final) ** 2))
    for j, f in enumerate(grid):
        col = G[:, j]
        brier = float(np.mean((col - final) ** 2))
        row = {
            "fraction": f,
            "mean_g": float(col.mean()),
            "mean_g_final": float(col[final == 1].mean()) if (final == 1).any() else float("nan"),
            "mean_g_other": float(col[final == 0].mean()) if (final == 0).any() else float("nan"),
            "brier": brier,
            "brier_ci": cluster_bootstrap(
                lambda idx, c=col: float(np.mean((c[idx] - final[idx]) ** 2)), n, n_boot, seed=seed
            ),
            "resolved_share": (1.0 - brier / brier0) if brier0 > 0 else float("nan"),
            "auroc_final": auroc(col, final == 1),
            "auroc_final_ci": cluster_bootstrap(
                lambda idx, c=col: auroc(c[idx], final[idx] == 1), n, n_boot, seed=seed
            ),
            "auroc_correct": auroc(col, fcorrect),
            "auroc_correct_ci": cluster_bootstrap(
                lambda idx, c=col: auroc(c[idx], fcorrect[idx]), n, n_boot, seed=seed
            ),
        }
        out["rows"].append(row)
    if brier0 > 0:
        for row in out["rows"]:
            if row["resolved_share"] >= 0.5:
                out["half_resolution_fraction"] = row["fraction"]
                break
    return out


def plot_trajectories(
    results: Sequence[TrajectoryResult],
    path: str | Path,
    *,
    max_tokens_axis: int | None = None,
    title: str | None = None,
) -> Path:
    """Plot g_i against tokens (left) and against the fraction of answer length (right).

    One thin line per trajectory (solid when it ends in z*, dotted otherwise) and a bold mean
    per condition, one colour per (model, style). Writes a small PNG at ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), dpi=80)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    grid = np.linspace(0, 1, 21)
    for k, res in enumerate(results):
        color = colors[k % len(colors)]
        label = f"{res.model} · {res.style}"
        for t in res.trajectories:
            ls = "-" if t.g[-1] == 1 else ":"
            axes[0].plot(t.positions, t.g, ls, color=color, alpha=0.3, lw=0.8)
        axes[0].plot([], [], color=color, lw=2, label=label)
        if not res.trajectories:
            continue
        G = _matrix(res, grid)
        final = np.array([t.g[-1] for t in res.trajectories])
        for mask, ls, tag in ((final == 1, "-", "ends in z*"), (final == 0, "--", "other")):
            if mask.any():
                axes[1].plot(grid, G[mask].mean(axis=0), ls, color=color, lw=2,
                             label=f"{res.style}: {tag} ({int(mask.sum())})")
        axes[2].plot(grid, ((G - final[:, None]) ** 2).mean(axis=0), color=color, lw=2,
                     label=label)
    axes[0].set_xlabel("prefix length i (tokens)")
    axes[0].set_ylabel("g_i = P(final class = z* | prefix)")
    axes[1].set_xlabel("i / answer length")
    axes[1].set_ylabel("mean g_i")
    axes[2].set_xlabel("i / answer length")
    axes[2].set_ylabel("unresolved: mean (g_i - g_n)^2")
    for ax in axes[:2]:
        ax.set_ylim(-0.03, 1.03)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    if max_tokens_axis:
        axes[0].set_xlim(0, max_tokens_axis)
    fig.suptitle(title or "Intermediate B-confidence (thin: one trajectory; dotted: does not end in z*)",
                 fontsize=9)
    fig.tight_layout()

    save_figure(fig, path)
    plt.close(fig)
    return path
