"""The :class:`Store` assembled from its rooms, and the functions that open one."""

from __future__ import annotations

import os
from pathlib import Path

from semcal.files import STORE_NAME
from semcal.store.cache import CacheMixin
from semcal.store.runs import RunsMixin
from semcal.store.samples import SamplesMixin


class Store(RunsMixin, SamplesMixin, CacheMixin):
    """The SQLite results store of one experiment directory.

    ``Store(directory)`` opens (creating when needed) ``directory/semcal.sqlite``.
    ``readonly=True`` opens an existing store without ever writing to it (analysis of a
    directory you cannot write to). ``create=False`` opens an existing store for writing but
    never makes one: an empty ``semcal.sqlite`` (0 bytes, no tables) is then an error, as it
    is read-only, instead of being turned into a new store (analysis must not hide a damaged
    file). Use as a context manager or call :meth:`close`.

    Its methods come from :class:`~semcal.store.runs.RunsMixin` (runs and sessions),
    :class:`~semcal.store.samples.SamplesMixin` (questions, samples, greedy completions) and
    :class:`~semcal.store.cache.CacheMixin` (classes, grades, model estimates), all built on
    :class:`~semcal.store.connection.StoreConnection` (opening, schema, transactions).
    """


def open_store(directory: str | os.PathLike[str], readonly: bool = False) -> Store:
    """Open the store of an experiment directory (see :class:`Store`)."""
    return Store(directory, readonly=readonly)


def has_store(directory: str | os.PathLike[str]) -> bool:
    """Whether ``directory`` holds a semcal store."""
    return (Path(directory) / STORE_NAME).is_file()
