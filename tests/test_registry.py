"""One registry style: backends, collapsing functions, graders, estimators, metrics and
question formats are each a semcal.registry.Registry, and a part registered there is usable by name."""

from __future__ import annotations

import pytest

from semcal.backends import BACKENDS, get_sampler
from semcal.collapse import COLLAPSES
from semcal.confidence import ESTIMATORS
from semcal.data import ADAPTERS
from semcal.errors import InputError
from semcal.grade import GRADER_REGISTRY
from semcal.metrics import METRICS, summarize
from semcal.registry import Registry


def test_every_pluggable_part_is_one_registry() -> None:
    for table, kind in ((BACKENDS, "backend"), (COLLAPSES, "collapsing function"),
                        (GRADER_REGISTRY, "grader"), (ESTIMATORS, "estimator"), (METRICS, "metric"),
                        (ADAPTERS, "question format")):
        assert isinstance(table, Registry) and table.kind == kind and len(table) == len(table.names())
    assert {"llamacpp", "hf", "openai", "vllm", "mock"} <= set(BACKENDS)
    assert BACKENDS["llamacpp"].extra == "llama"


def test_register_lookup_create_and_unregister() -> None:
    r: Registry = Registry("widget")
    r.register("double", lambda x=1: 2 * x)
    assert r.names() == ("double",) and "double" in r and r.create("double", x=4) == 8
    with pytest.raises(InputError, match="unknown widget 'triple' \\(known: double\\)"):
        r.lookup("triple")
    with pytest.raises(InputError, match="bad option for widget 'double'"):
        r.create("double", y=1)
    with pytest.raises(InputError, match="non-empty name"):
        r.register(" ", len)
    r.unregister("double")
    r.unregister("double")  # twice is fine
    assert len(r) == 0


def test_a_registered_metric_and_backend_are_usable_by_name() -> None:
    METRICS.register("always_half", lambda conf, correct: 0.5)
    try:
        out = summarize([0.2, 0.9, 0.6], [0, 1, 1], n_boot=0)
        assert out["always_half"] == 0.5
    finally:
        METRICS.unregister("always_half")
    BACKENDS.register("mock2", BACKENDS["mock"])
    try:
        assert get_sampler("mock2", "m").model_name == "mock:m"
    finally:
        BACKENDS.unregister("mock2")
    with pytest.raises(InputError, match="unknown backend 'nope'"):
        get_sampler("nope", "m")
