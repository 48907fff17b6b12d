"""The collapsing-function protocol: B maps a question's sampled texts to semantic classes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from semcal.types import Collapsed, Question


@runtime_checkable
class CollapseFn(Protocol):
    """A collapsing function B.

    ``B(question, texts)`` returns a :class:`~semcal.types.Collapsed`: one class label per
    text (``NO_ANSWER`` when nothing could be extracted) and the set of labels of the gold
    aliases. Any plain function with this signature is a valid B.
    """

    def __call__(self, question: Question, texts: Sequence[str]) -> Collapsed: ...
