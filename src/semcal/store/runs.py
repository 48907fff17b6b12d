"""The store's runs: creating or finding a run, its writer lock, its sampling sessions."""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from semcal import __version__
from semcal.errors import StoreError
from semcal.files import LOCK_DIR
from semcal.store.cells import _BadCell, _int, _now, _text
from semcal.store.connection import StoreConnection
from semcal.store.lock import RunLock
from semcal.store.records import RunInfo
from semcal.store.rows import _run_from_row


class RunsMixin(StoreConnection):
    """The methods of :class:`semcal.store.Store` that read and write the ``runs`` and
    ``run_sessions`` tables."""

    def create_run(
        self,
        *,
        name: str,
        key: str,
        spec: Mapping[str, Any],
        model: str,
        backend: str,
        style: str,
        dataset: str,
        temperature: float,
        top_p: float,
        max_tokens: int,
        samples: int,
        seed: int,
        adaptive: bool = False,
        is_chat: bool | None = None,
    ) -> RunInfo:
        """Insert a new run. ``name`` must be unique within the store."""
        if self.find_run(name) is not None:
            raise StoreError(f"{self.path}: a run named {name!r} already exists")
        with self.transaction() as c:
            run_id = self._insert_run(
                c, name=name, key=key, spec=spec, model=model, backend=backend, style=style,
                dataset=dataset, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                samples=samples, seed=seed, adaptive=adaptive, is_chat=is_chat)
        run = self.get_run(run_id)
        assert run is not None
        return run

    @staticmethod
    def _insert_run(c: sqlite3.Connection, *, name: str, key: str, spec: Mapping[str, Any],
                    model: str, backend: str, style: str, dataset: str, temperature: float,
                    top_p: float, max_tokens: int, samples: int, seed: int,
                    adaptive: bool = False, is_chat: bool | None = None) -> int:
        cur = c.execute(
            "INSERT INTO runs(name, key, model, backend, style, dataset, temperature, top_p,"
            " max_tokens, samples, seed, adaptive, is_chat, semcal_version, created, spec)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                name,
                key,
                model,
                backend,
                style,
                dataset,
                float(temperature),
                float(top_p),
                int(max_tokens),
                int(samples),
                int(seed),
                int(bool(adaptive)),
                None if is_chat is None else int(bool(is_chat)),
                __version__,
                _now(),
                json.dumps(dict(spec), sort_keys=True, default=str),
            ),
        )
        return int(cur.lastrowid)

    def lock_run(self, run: RunInfo) -> RunLock:
        """Take the exclusive writer lock of ``run`` (:class:`RunLock`); :class:`StoreError`
        naming the holder when another process has it."""
        return RunLock(self.directory / LOCK_DIR / f"run-{run.id}.lock", run.name)

    def open_or_create_run(self, *, key: str, name: str, exact_name: bool,
                           **fields: Any) -> tuple[RunInfo, bool]:
        """The run with ``key``, or a new one, decided in one transaction so that processes
        starting the same run at once agree. Returns (run, created). A new run is called
        ``name``; when that name is taken, ``exact_name`` is an error, else ``name-2``,
        ``name-3``... is used."""
        with self.transaction() as c:
            row = c.execute("SELECT id FROM runs WHERE key=? ORDER BY id LIMIT 1", (key,)).fetchone()
            if row is not None:
                created, run_id = False, int(row[0])
            else:
                taken = {r[0] for r in c.execute(
                    "SELECT name FROM runs WHERE name=? OR name LIKE ?", (name, f"{name}-%"))}
                if name in taken and exact_name:
                    raise StoreError(
                        f"{self.directory}: a run named {name!r} with different settings already "
                        "exists; pick another name or another --out directory")
                final, i = name, 2
                while final in taken:
                    final, i = f"{name}-{i}", i + 1
                run_id = self._insert_run(c, name=final, key=key, **fields)
                created = True
        run = self.get_run(run_id)
        assert run is not None
        return run, created

    def runs(self) -> list[RunInfo]:
        """Every run, oldest first."""
        return self._decoded("runs", self._read("SELECT * FROM runs ORDER BY id"), _run_from_row)

    def get_run(self, run_id: int) -> RunInfo | None:
        rows = self._decoded("runs", self._read("SELECT * FROM runs WHERE id=?", (int(run_id),)), _run_from_row)
        return rows[0] if rows else None

    def find_run(self, name: str) -> RunInfo | None:
        rows = self._decoded("runs", self._read("SELECT * FROM runs WHERE name=?", (name,)), _run_from_row)
        return rows[0] if rows else None

    def find_run_by_key(self, key: str) -> RunInfo | None:
        rows = self._decoded("runs", self._read("SELECT * FROM runs WHERE key=? ORDER BY id LIMIT 1", (key,)), _run_from_row)
        return rows[0] if rows else None

    def set_run_chat(self, run_id: int, is_chat: bool) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET is_chat=? WHERE id=?", (int(bool(is_chat)), int(run_id)))

    def add_session(self, run_id: int, engine: str) -> None:
        """Record that sampling of a run started or resumed now, with this semcal and this
        engine ("llama-cpp-python 0.3.36"): samples of one run drawn by different engine
        builds need not be comparable, and :meth:`sessions` lets analysis say so. The batches
        this store object commits for the run from now on are counted in the session's row
        (``SamplesMixin._count_in_session``), which times the run across sessions."""
        with self.transaction() as c:
            cur = c.execute("INSERT INTO run_sessions(run_id, started, semcal_version, engine)"
                            " VALUES (?, ?, ?, ?)", (int(run_id), _now(), __version__, str(engine)))
            self._session_rows[int(run_id)] = int(cur.lastrowid or 0)

    def sessions(self, run_id: int) -> list[dict[str, Any]]:
        """The sampling sessions of a run, oldest first: ``started``, ``semcal_version``,
        ``engine``, and from schema 5 on ``updated`` (when it last stored a batch; None before
        its first), ``samples``, ``tokens`` and ``questions`` (what it stored). Sessions
        recorded before schema 5 have ``updated`` None and no counts; a run sampled before
        semcal recorded sessions (schema < 4) has none."""
        if not self._has_table("run_sessions"):
            return []
        rows = self._read("SELECT * FROM run_sessions WHERE run_id=? ORDER BY rowid", (int(run_id),))
        return self._decoded("run_sessions", rows, _session_from_row)

    def mark_run_finished(self, run_id: int) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET finished=? WHERE id=?", (_now(), int(run_id)))


def _session_from_row(r: sqlite3.Row) -> dict[str, Any]:
    """One ``run_sessions`` row as a dict; the timing columns (schema 5) may be absent from a
    read-only older store, and ``updated`` is None until the session stored a batch."""
    out: dict[str, Any] = {k: _text(r[k], k) for k in ("started", "semcal_version", "engine")}
    timed = "updated" in r.keys() and r["updated"] is not None
    out["updated"] = _time(r["updated"], "updated") if timed else None
    if timed:
        _time(out["started"], "started")
    for k in ("samples", "tokens", "questions"):
        out[k] = _count(r[k], k) if timed else None
    return out


def _time(v: Any, column: str) -> str:
    """A timestamp cell: ISO 8601 text (what ``_now`` writes)."""
    text = _text(v, column)
    try:
        _dt.datetime.fromisoformat(text)
    except ValueError:
        raise _BadCell(column, f"text {text[:40]!r} that is not an ISO 8601 time") from None
    return text


def _count(v: Any, column: str) -> int:
    n = _int(v, column)
    if n < 0:
        raise _BadCell(column, f"{n} (expected a count, 0 or more)")
    return n
