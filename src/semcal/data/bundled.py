"""Question sets shipped inside the package (written for semcal; MIT, see bundled/LICENSE).

* ``"world"``: short-answer general-knowledge questions (task ``"qa"``) with gold aliases;
  ``meta`` has ``category`` and ``difficulty`` (easy / medium / hard).
* ``"arithmetic"``: grade-school word problems with integer answers (task ``"math"``),
  generated from templates by ``tools/make_arithmetic.py``; ``meta`` has ``template``,
  ``steps`` and ``expression`` (the arithmetic that gives the answer).
* ``"demo"``: a fixed small mix for the quick offline demo: :data:`DEMO_WORLD` world questions
  and :data:`DEMO_ARITHMETIC` arithmetic problems drawn with a fixed seed, world first, each
  part in file order.
"""

from __future__ import annotations

import random
from functools import cache
from importlib import resources

from semcal.data.loader import load_questions
from semcal.errors import InputError
from semcal.types import Question

_FILES = {"world": "world.jsonl", "arithmetic": "arithmetic.jsonl"}
DEMO_WORLD = 40
DEMO_ARITHMETIC = 20
DEMO_SEED = 0


def list_bundled() -> list[str]:
    """Names accepted by :func:`bundled`."""
    return [*_FILES, "demo"]


@cache
def _load(name: str) -> tuple[Question, ...]:
    ref = resources.files("semcal.data").joinpath("bundled", _FILES[name])
    with resources.as_file(ref) as path:
        return tuple(load_questions(path, format="custom"))


@cache
def _demo() -> tuple[Question, ...]:
    rng = random.Random(DEMO_SEED)
    world, arith = _load("world"), _load("arithmetic")
    w_idx = sorted(rng.sample(range(len(world)), DEMO_WORLD))
    a_idx = sorted(rng.sample(range(len(arith)), DEMO_ARITHMETIC))
    # interleave (two world questions, then one arithmetic) so any prefix (--limit) is a mix
    w = [world[i] for i in w_idx]
    a = [arith[i] for i in a_idx]
    out: list[Question] = []
    while w or a:
        out.extend(w[:2])
        del w[:2]
        out.extend(a[:1])
        del a[:1]
    return tuple(out)


def bundled(name: str) -> list[Question]:
    """A question set shipped with semcal: ``"world"``, ``"arithmetic"`` or ``"demo"``."""
    if name == "demo":
        return list(_demo())
    if name not in _FILES:
        raise InputError(f"unknown bundled question set {name!r} (known: {', '.join(list_bundled())})")
    return list(_load(name))


__all__ = ["DEMO_ARITHMETIC", "DEMO_WORLD", "bundled", "list_bundled"]
