"""One registry style for semcal's pluggable parts: a name -> factory table.

Collapsing functions (:data:`semcal.collapse.COLLAPSES`) and graders
(:data:`semcal.grade.GRADER_REGISTRY`) are created through it; adding one is one
``register`` call, and every place that lists or validates names reads the table::

    from semcal.collapse import COLLAPSES
    COLLAPSES.register("mine", MyCollapse)          # then --collapse mine works everywhere
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from semcal.errors import InputError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named factories of one kind of part ("collapsing function", "grader")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str, factory: Callable[..., T]) -> Callable[..., T]:
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"a {self.kind} needs a non-empty name, got {name!r}")
        self._factories[name] = factory
        return factory

    def names(self) -> tuple[str, ...]:
        return tuple(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def create(self, name: str, **opts: Any) -> T:
        """The part ``name`` built with ``opts`` (its constructor's keyword options); an
        unknown name or option is one :class:`InputError` naming the known ones."""
        factory = self._factories.get(name)
        if factory is None:
            raise InputError(f"unknown {self.kind} {name!r} (known: {', '.join(self._factories)})")
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
