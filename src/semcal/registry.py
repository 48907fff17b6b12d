"""One registry style for semcal's pluggable parts: a name -> part table.

Backends (:data:`semcal.backends.BACKENDS`), collapsing functions
(:data:`semcal.collapse.COLLAPSES`), graders (:data:`semcal.grade.GRADER_REGISTRY`),
confidence estimators (:data:`semcal.confidence.ESTIMATORS`), metrics
(:data:`semcal.metrics.METRICS`) and dataset formats (:data:`semcal.data.ADAPTERS`, with
aliases and row detection as metadata) are each one :class:`Registry`; adding a part is one
``register`` call, and every place that lists, validates or builds names reads the table::

    from semcal.collapse import COLLAPSES
    COLLAPSES.register("mine", MyCollapse)          # then --collapse mine works everywhere

For backends, collapsing functions and graders the registered part is a factory (its keyword
options come from ``--backend-opt``/``--collapse-opt``/``--grader-opt k=v``; :meth:`Registry.create`
builds one); for estimators and metrics it is the estimator or the metric function itself.

What the rest of semcal needs to know about a part travels with it as keyword metadata of its
registration, never in a side table keyed by name::

    METRICS.register("mine", my_metric, range=(0.0, 1.0), needs="probability")
    METRICS.meta("mine")["range"]                 # -> (0.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from semcal.errors import InputError

T = TypeVar("T")


class Registry(Mapping[str, T]):
    """Named parts of one kind ("backend", "collapsing function", "grader", ...), in the
    order they were registered. A read-only mapping for everything but :meth:`register`."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._parts: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}

    def register(self, name: str, part: T, **meta: Any) -> T:
        """Add (or replace) ``name``; ``meta`` is what callers may ask about the part
        (:meth:`meta`), e.g. a metric's ``range`` or a B's ``parallel``."""
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"a {self.kind} needs a non-empty name, got {name!r}")
        self._parts[name] = part
        self._meta[name] = dict(meta)
        return part

    def unregister(self, name: str) -> None:
        """Remove ``name`` and its metadata (no error when it is not registered)."""
        self._parts.pop(name, None)
        self._meta.pop(name, None)

    def meta(self, name: str) -> dict[str, Any]:
        """A copy of the metadata ``name`` was registered with ({} when none); an unknown name
        is one :class:`InputError` naming the known ones."""
        self.lookup(name)
        return dict(self._meta.get(name, {}))

    def flag(self, name: str, key: str) -> bool:
        """Whether ``name`` was registered with the metadata ``key`` true (False for an unknown
        name: the caller's own lookup reports it)."""
        return isinstance(name, str) and bool(self._meta.get(name, {}).get(key))

    def names(self) -> tuple[str, ...]:
        return tuple(self._parts)

    def __getitem__(self, name: str) -> T:
        return self._parts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._parts)

    def __len__(self) -> int:
        return len(self._parts)

    def lookup(self, name: str) -> T:
        """The part ``name``; an unknown name is one :class:`InputError` naming the known ones."""
        part = self._parts.get(name) if isinstance(name, str) else None
        if part is None:
            raise InputError(f"unknown {self.kind} {name!r} (known: {', '.join(self._parts)})")
        return part

    def create(self, name: str, **opts: Any) -> Any:
        """The part ``name`` built by its factory with ``opts`` (its keyword options); an
        unknown name or option is one :class:`InputError`."""
        factory: Any = self.lookup(name)
        try:
            return factory(**opts)
        except TypeError as exc:
            raise InputError(f"bad option for {self.kind} {name!r}: {exc}") from None


def needs_sampler(kind: str, build: Callable[..., T]) -> Callable[..., T]:
    """A factory for a part that needs a judge model: ``sampler=`` is required."""

    def factory(sampler: Any = None, **opts: Any) -> T:
        if sampler is None:
            raise InputError(f"the judge {kind} needs sampler=<a semcal Sampler>")
        return build(sampler, **opts)

    return factory
