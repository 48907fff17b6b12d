"""NLI bidirectional-entailment B (the semantic-entropy clustering of Kuhn et al., 2023).

Two answers are one class iff each entails the other given the question: with premise
"<question> <answer a>" and hypothesis "<question> <answer b>", an NLI classifier must predict
*entailment* in both directions (``strict=True``, the default). ``strict=False`` is the
looser variant used in later semantic-entropy work: the pair is joined unless either direction
is predicted *contradiction* or both are *neutral*.

Clustering is the usual greedy pass: distinct normalised answers, most frequent first (ties by
first appearance), each compared with the first member (leader) of every existing class in
creation order and added to the first class it is equivalent to; otherwise it founds a new
class. Identical normalised answers are always one class without asking the model. Labels are
the leaders' normalised text; a gold alias joins the first class equivalent to it, else it is
a class of its own.

This B is optional and heavy: it needs ``transformers`` + ``torch`` (``pip install
'semcal[hf]'``) and an NLI sequence-classification model (e.g. a DeBERTa / RoBERTa MNLI model)
from a local path, or a hub id when online. No PyPI package we know of ships such weights for
offline use, so semcal does not pick a default model: pass ``model=``. Any
``entail(premise, hypothesis) -> "entailment" | "neutral" | "contradiction"`` callable may be
injected instead (``relation=``), e.g. to use an LLM or a remote service.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from semcal.collapse.exact import MathCollapse, check_style, exact_gold, math_instead, short_answers
from semcal.collapse.extract import DEFAULT_UNMARKED
from semcal.errors import InputError, require
from semcal.types import Collapsed, Question

Relation = Callable[[str, str], str]
RELATIONS = ("entailment", "neutral", "contradiction")


class TransformersNLI:
    """An NLI classifier from transformers: ``nli(premise, hypothesis) -> relation``.

    ``model`` is a local directory or (when online) a hub id. The label names are read from the
    model config (``id2label``); a model whose labels do not name entailment and contradiction
    is refused.
    """

    def __init__(self, model: str, *, device: str = "cpu", max_length: int = 256):
        transformers = require("transformers", "NLI collapsing", "hf")
        torch = require("torch", "NLI collapsing", "hf")
        self.torch = torch
        local = os.path.isdir(model)
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(model, local_files_only=local)
            self.model = transformers.AutoModelForSequenceClassification.from_pretrained(
                model, local_files_only=local
            )
        except OSError as exc:
            raise InputError(f"cannot load NLI model {model!r}: {exc}") from None
        self.model.eval().to(device)
        self.device = device
        self.max_length = max_length
        names = {int(i): str(n).lower() for i, n in self.model.config.id2label.items()}
        self.index: dict[str, int] = {}
        for rel in RELATIONS:
            hits = [i for i, n in names.items() if n.startswith(rel[:6])]
            if hits:
                self.index[rel] = hits[0]
        if "entailment" not in self.index or "contradiction" not in self.index:
            raise InputError(f"model {model!r} is not an NLI classifier (labels: {names})")
        self._names = names

    def batch(self, pairs: Sequence[tuple[str, str]]) -> list[str]:
        """Relations for many (premise, hypothesis) pairs."""
        if not pairs:
            return []
        enc = self.tokenizer([p for p, _ in pairs], [h for _, h in pairs], padding=True,
                             truncation=True, max_length=self.max_length, return_tensors="pt")
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with self.torch.no_grad():
            logits = self.model(**enc).logits
        out = []
        inverse = {i: rel for rel, i in self.index.items()}
        for row in logits.argmax(dim=-1).tolist():
            out.append(inverse.get(int(row), "neutral"))
        return out

    def __call__(self, premise: str, hypothesis: str) -> str:
        return self.batch([(premise, hypothesis)])[0]


class NLICollapse:
    """Bidirectional-entailment clustering (see module doc).

    Give either ``model`` (a transformers NLI model path / hub id) or ``relation`` (a callable
    ``(premise, hypothesis) -> "entailment" | "neutral" | "contradiction"``).
    ``with_question`` (default True) prefixes both sides with the question, as Kuhn et al. do.
    """

    name = "nli"

    def __init__(self, *, model: str | None = None, relation: Relation | None = None,
                 strict: bool = True, with_question: bool = True, extract: bool = True,
                 device: str = "cpu", style: str | None = None, unmarked: str = DEFAULT_UNMARKED):
        check_style(style, unmarked)
        self.style, self.unmarked = style, unmarked
        self.math = MathCollapse(extract=extract, style=style, unmarked=unmarked)
        if relation is None and model is None:
            raise InputError("the NLI collapsing function needs model=<NLI model path or hub id> "
                             "(or relation=<callable>)")
        self.model = model
        self.strict = strict
        self.with_question = with_question
        self.extract = extract
        self.device = device
        self._relation = relation
        self._nli: TransformersNLI | None = None
        self._cache: dict[tuple[str, str], str] = {}

    def relation(self, premise: str, hypothesis: str) -> str:
        """The (cached) NLI relation of one ordered pair."""
        key = (premise, hypothesis)
        if key not in self._cache:
            if self._relation is not None:
                rel = self._relation(premise, hypothesis)
            else:
                if self._nli is None:
                    self._nli = TransformersNLI(self.model, device=self.device)  # type: ignore[arg-type]
                rel = self._nli(premise, hypothesis)
            if rel not in RELATIONS:
                raise InputError(f"NLI relation must be one of {RELATIONS}, got {rel!r}")
            if len(self._cache) > 200_000:
                self._cache.clear()
            self._cache[key] = rel
        return self._cache[key]

    def equivalent(self, question: Question, a: str, b: str) -> bool:
        """True when answers ``a`` and ``b`` (normalised) mean the same given the question."""
        if a == b:
            return True
        prefix = f"{question.question.strip()} " if self.with_question else ""
        pa, pb = prefix + a, prefix + b
        ab, ba = self.relation(pa, pb), self.relation(pb, pa)
        if self.strict:
            return ab == "entailment" and ba == "entailment"
        if "contradiction" in (ab, ba):
            return False
        return not (ab == "neutral" and ba == "neutral")

    def __call__(self, question: Question, texts: Sequence[str]) -> Collapsed:
        if question.task == "math":
            return math_instead(self, question, texts)
        answers, counts = short_answers(question, texts, self.extract, style=self.style,
                                        unmarked=self.unmarked)
        # most frequent first; ties by the text, so the result does not depend on sample order
        ordered = sorted(counts, key=lambda a: (-counts[a], a))
        leaders: list[str] = []
        leader_of: dict[str, str] = {}
        for a in ordered:
            for lead in leaders:
                if self.equivalent(question, lead, a):
                    leader_of[a] = lead
                    break
            else:
                leaders.append(a)
                leader_of[a] = a
        labels = tuple(leader_of.get(a, a) for a in answers)
        return Collapsed(labels=labels, gold=exact_gold(question))

    def __repr__(self) -> str:
        return f"NLICollapse(model={self.model!r}, strict={self.strict})"


def load_relation(model: str, device: str = "cpu") -> Any:
    """Shortcut: a :class:`TransformersNLI` usable as ``relation=``."""
    return TransformersNLI(model, device=device)
