"""Errors semcal raises for bad input. The CLI prints their message as one line and exits non-zero."""

from __future__ import annotations


class SemcalError(Exception):
    """Base class for every error meant for the user (bad file, bad spec, bad parameter...)."""


class InputError(SemcalError, ValueError):
    """Bad user input: a malformed file, a wrong parameter, an array of the wrong shape.

    ``where`` names the place (file:line, row, argument) so the message can point at it.
    """

    def __init__(self, message: str, where: str | None = None):
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


class MissingExtraError(SemcalError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, what: str, extra: str):
        self.extra = extra
        super().__init__(f"{what} needs an optional dependency: pip install 'semcal[{extra}]'")


class BackendError(SemcalError, RuntimeError):
    """A sampling engine or server failed in a way retries could not fix."""


class StoreError(SemcalError, RuntimeError):
    """The results store cannot be read or written (read-only, disk full, corrupt, wrong schema)."""


def require(module: str, what: str, extra: str):
    """Import an optional module lazily, or raise a one-line :class:`MissingExtraError`."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(what, extra) from exc
