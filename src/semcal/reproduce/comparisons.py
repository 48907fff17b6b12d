"""The paper's comparisons as a registry: what runs each one needs and what it varies.

A comparison registers how it adds runs to the plan and, for the comparisons whose verdict
sets two runs side by side, the one thing it varies (``axis``: "model", "style" or
"temperature"; two runs of one dataset that differ in exactly that are compared):

``per_dataset(spec, model, dataset, add)``
    adds the runs this comparison needs for one model on one dataset (called for every
    model × dataset, in the order of the spec, each registered comparison in turn);
``whole(spec, add)``
    adds runs that do not follow the model × dataset grid (the temperature sweep).

``add(model, dataset, style, temperature)`` records a run; a run two comparisons need is
sampled once. A comparison registered without either (the theory diagnostics
``trajectories`` and ``selfpredict``) adds no sampled run: the driver runs it itself.
Registering a new one is one call::

    COMPARISON_REGISTRY.register("sentence_only", Comparison(
        per_dataset=lambda spec, m, ds, add: add(m, ds, "sentence", 1.0), axis="model"))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from semcal.registry import Registry

#: add(model, dataset, style, temperature)
Add = Callable[[Any, str, str, float], None]

#: the axes a comparison can vary, in the order of a run's (model, style, temperature)
AXES = ("model", "style", "temperature")


@dataclass(frozen=True)
class Comparison:
    """What one comparison needs (see the module docstring)."""

    per_dataset: Callable[[Any, Any, str, Add], None] | None = None
    whole: Callable[[Any, Add], None] | None = None
    axis: str | None = None


def _styles(spec: Any, m: Any, ds: str, add: Add) -> None:
    if m.role in spec.style_roles:  # a model's answer styles side by side (default: base)
        for st in spec.styles:
            add(m, ds, st, 1.0)


def _tuning(spec: Any, m: Any, ds: str, add: Add) -> None:
    for st in spec.styles:  # every model in every style: base against instruct
        add(m, ds, st, 1.0)


def _cot(spec: Any, m: Any, ds: str, add: Add) -> None:
    if m.role in spec.cot.roles:  # direct answers against chains of thought
        for st in spec.cot.styles:
            add(m, ds, st, 1.0)


def _temperature(spec: Any, add: Add) -> None:
    tm = spec.model_entry(spec.temperature.model)
    for ds in spec.temperature.datasets or spec.datasets:
        for t in spec.temperature.values:
            add(tm, ds, spec.temperature.style, float(t))


#: the comparisons by name, in the order their runs are planned and their verdicts listed
COMPARISON_REGISTRY: Registry[Comparison] = Registry("comparison")
COMPARISON_REGISTRY.register("styles", Comparison(per_dataset=_styles, axis="style"))
COMPARISON_REGISTRY.register("tuning", Comparison(per_dataset=_tuning, axis="model"))
COMPARISON_REGISTRY.register("cot", Comparison(per_dataset=_cot, axis="style"))
COMPARISON_REGISTRY.register("temperature", Comparison(whole=_temperature, axis="temperature"))
COMPARISON_REGISTRY.register("trajectories", Comparison())  # a theory diagnostic (driver)
COMPARISON_REGISTRY.register("selfpredict", Comparison())  # a theory diagnostic (driver)
