"""The connection to one store file: opening it (read-only or for writing), checking and
migrating its schema, transactions, reads, and the errors a user sees when SQLite fails.

:class:`StoreConnection` is the base of :class:`semcal.store.Store`; the tables' own methods
live in :mod:`~semcal.store.runs`, :mod:`~semcal.store.samples` and :mod:`~semcal.store.cache`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semcal.errors import StoreError
from semcal.files import STORE_NAME
from semcal.store.cells import _BadCell, _lenient_text
from semcal.store.rows import _row_name, _schema_version
from semcal.store.schema import SCHEMA_VERSION, create_tables, migrate_tables

if TYPE_CHECKING:
    from semcal.store.core import Store

#: the store's logger keeps the name it had when the store was one module
log = logging.getLogger("semcal.store")


def _store_message(exc: sqlite3.Error, path: Path, action: str) -> str:
    text = str(exc)
    low = text.lower()
    if "readonly" in low or "read-only" in low:
        why = "the store is read-only (check the file and directory permissions)"
    elif "disk is full" in low or "disk i/o" in low:
        why = f"no space left to write the store ({text})"
    elif "locked" in low or "busy" in low:
        why = "the store is locked by another process (is another semcal run writing to it?)"
    elif "not a database" in low or "malformed" in low:
        why = "the file is not a semcal store or is damaged"
    elif "unable to open" in low:
        why = "cannot open the store file (does the directory exist and is it writable?)"
    else:
        why = text
    return f"{path}: cannot {action}: {why}"



class StoreConnection:
    """The open SQLite connection of one store, without the tables' methods (see
    :class:`semcal.store.Store` for the arguments)."""

    def __init__(self, directory: str | os.PathLike[str], readonly: bool = False,
                 create: bool = True):
        directory = Path(directory)
        self.directory = directory
        self.path = directory / STORE_NAME if directory.suffix != ".sqlite" else directory
        if self.path.name != STORE_NAME:
            self.directory = self.path.parent
        self.readonly = readonly
        self.create = create and not readonly
        self._conn: sqlite3.Connection | None = None
        #: run id -> rowid of the sampling session this object opened (``add_session``)
        self._session_rows: dict[int, int] = {}
        self._open()

    # -- opening / closing

    def _open(self) -> None:
        if not self.create:
            self._check_present()
        self._conn = self._connect_readonly() if self.readonly else self._connect_writable()
        self._conn.row_factory = sqlite3.Row
        self._conn.text_factory = _lenient_text
        self._check_schema()

    def _connect_readonly(self) -> sqlite3.Connection:
        """A read-only connection; ``immutable`` when even the shared-memory file cannot be
        made (a directory or file system the user cannot write to)."""
        for flags in ("mode=ro", "mode=ro&immutable=1"):
            try:
                conn = sqlite3.connect(f"file:{self.path}?{flags}", uri=True, timeout=30)
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return conn
            except sqlite3.Error as exc:
                last = exc
        raise StoreError(_store_message(last, self.path, "open the store"))

    def _connect_writable(self) -> sqlite3.Connection:
        """A connection in WAL mode, creating the experiment directory when needed."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"{self.directory}: cannot create the experiment directory: {exc.strerror or exc}"
            ) from None
        # switching a new file to WAL takes an exclusive lock, and SQLite does not always
        # wait for it (processes creating one store at once see "database is locked"):
        # retry for up to 30 s, as the busy timeout does for everything else
        deadline = time.monotonic() + 30
        while True:
            conn = None
            try:
                conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
                return conn
            except sqlite3.OperationalError as exc:
                if conn is not None:
                    conn.close()
                busy = "locked" in str(exc) or "busy" in str(exc)
                if not busy or time.monotonic() > deadline:
                    raise StoreError(_store_message(exc, self.path, "open the store")) from None
                time.sleep(0.05)
            except sqlite3.Error as exc:
                if conn is not None:
                    conn.close()
                raise StoreError(_store_message(exc, self.path, "open the store")) from None

    def _check_schema(self) -> None:
        conn = self.conn
        try:
            # one statement, one snapshot: two reads let another process commit the schema
            # in between (no meta yet, then tables) and a fresh store looked foreign
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            if "meta" not in names:
                if names:
                    raise StoreError(f"{self.path}: not a semcal store (no meta table)")
                if not self.create:
                    raise StoreError(self._empty_message())
                with self.transaction() as c:
                    # another process may have created the store since the check above: the
                    # IMMEDIATE transaction serialises creators, so look again inside it
                    if c.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
                                 ).fetchone():
                        return
                    create_tables(c)
                return
            row = conn.execute("SELECT key, value FROM meta WHERE key=?",
                               ("schema_version",)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(_store_message(exc, self.path, "read the store")) from None
        version = 0 if row is None else self._decoded("meta", [row], _schema_version)[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: store schema version {version} is newer than this semcal "
                f"understands ({SCHEMA_VERSION}); upgrade semcal"
            )
        if version < SCHEMA_VERSION:
            self._migrate(version)

    def _check_present(self) -> None:
        """For a store that must exist already: refuse a missing file, and an empty one (0 bytes
        and no write-ahead log to recover from) before SQLite opens it, which would write a
        header into it."""
        if not self.path.is_file():
            raise StoreError(f"{self.directory}: no semcal store here ({STORE_NAME} not found)")
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            empty = self.path.stat().st_size == 0 and (not wal.exists() or wal.stat().st_size == 0)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open the store: {exc.strerror or exc}") from None
        if empty:
            raise StoreError(self._empty_message())

    def _empty_message(self) -> str:
        try:
            size = f"{self.path.stat().st_size} bytes, "
        except OSError:
            size = ""
        return (f"{self.path}: the store is empty ({size}no tables): it is damaged or was never "
                "written; semcal will not read or resume it (move it away to start afresh)")

    def _migrate(self, version: int) -> None:
        """Bring a store of an older schema ``version`` up to :data:`SCHEMA_VERSION`.

        Migrations add tables, add columns and rename columns; a read-only store of an older
        version is read as it is (missing tables read as empty, missing columns as absent, a
        renamed column under its old name) and is never written to.
        """
        if version < 1:
            raise StoreError(f"{self.path}: cannot migrate store schema version {version}")
        if self.readonly:
            return
        with self.transaction() as c:
            # another process may have migrated the store since ``version`` was read: the
            # IMMEDIATE transaction serialises migrators, so read the version again inside it
            # (adding a column twice is an error, unlike creating a table that exists)
            row = c.execute("SELECT key, value FROM meta WHERE key=?", ("schema_version",)).fetchone()
            version = self._decoded("meta", [row], _schema_version)[0] if row else version
            if version >= SCHEMA_VERSION:
                return
            migrate_tables(c, version)
        log.info("migrated %s from schema version %d to %d", self.path, version, SCHEMA_VERSION)

    def _has_table(self, name: str) -> bool:
        return bool(
            self._read("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,))
        )

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: the store is closed")
        return self._conn

    def close(self) -> None:
        """Checkpoint the write-ahead log into the main file and close."""
        if self._conn is None:
            return
        try:
            if not self.readonly:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:  # harmless: the log is checkpointed by the next writer
            log.debug("WAL checkpoint failed: %s", exc)
        finally:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside is committed together or not at all."""
        if self.readonly:
            raise StoreError(f"{self.path}: the store was opened read-only")
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(_store_message(exc, self.path, "write to the store")) from None
        try:
            yield conn
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(_store_message(exc, self.path, "write to the store")) from None
        except BaseException:
            self._rollback()
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreError(_store_message(exc, self.path, "write to the store")) from None

    def _rollback(self) -> None:
        # SQLite rolls back by itself after some errors (SQLITE_FULL): only roll back if needed
        conn = self.conn
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as exc:  # pragma: no cover - nothing more can be done
                log.warning("rollback failed: %s", exc)

    def _decoded(self, table: str, rows: Iterable[Any], decode: Any) -> list[Any]:
        """``decode(row)`` of every row; a damaged cell ends as one :class:`StoreError` naming
        the store, ``table``, the row and the column."""
        out = []
        for r in rows:
            try:
                out.append(decode(r))
            except _BadCell as exc:
                raise self._damaged(table, dict(zip(r.keys(), r)), exc) from None
        return out

    def _damaged(self, table: str, row: Mapping[str, Any], exc: _BadCell) -> StoreError:
        return StoreError(f"{self.path}: damaged store: table {table}, {_row_name(row)}, column "
                          f"{exc.column}: {exc.why}")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self.conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(_store_message(exc, self.path, "read the store")) from None

    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``: "ok" for a sound database."""
        return str(self._read("PRAGMA integrity_check")[0][0])
