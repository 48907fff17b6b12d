"""Export of the per-question table (:meth:`RunAnalysis.table`) as CSV or Parquet:
:func:`write_table`, with :func:`_csv_safe` defusing cells a spreadsheet would run."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from semcal.errors import InputError, require
from semcal.files import atomic_path

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_safe(v: Any) -> Any:
    """Defuse a text cell a spreadsheet would run as a formula (model output and dataset text
    are untrusted): prefix it with ``'``. Plain numbers such as ``-5`` are left alone."""
    if isinstance(v, str) and v.startswith(_FORMULA_START):
        try:
            float(v.replace(",", ""))
        except ValueError:
            return "'" + v
    return v


def write_table(rows: Sequence[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Write the per-question table as CSV (``.csv``) or Parquet (``.parquet``).

    CSV text cells that start like a spreadsheet formula get a leading ``'`` (see
    :func:`_csv_safe`); Parquet keeps every value as it is."""
    p = Path(path)
    if not rows:
        raise InputError("nothing to export (no analysed questions)")
    cols: list[str] = []
    for r in rows:
        for k in r:
            if k not in cols:
                cols.append(k)
    if p.suffix == ".csv":
        with atomic_path(p) as tmp:
            try:
                with tmp.open("w", newline="", encoding="utf-8") as f:
                    w = csv.DictWriter(f, fieldnames=cols)
                    w.writeheader()
                    for r in rows:
                        w.writerow({k: _csv_safe(r.get(k)) for k in cols})
            except OSError as exc:
                raise InputError(f"cannot write {p}: {exc.strerror or exc}") from None
    elif p.suffix == ".parquet":
        pa = require("pyarrow", "Parquet export", "parquet")
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist([{k: r.get(k) for k in cols} for r in rows])
        with atomic_path(p) as tmp:
            try:
                pq.write_table(table, str(tmp))
            except OSError as exc:
                raise InputError(f"cannot write {p}: {exc.strerror or exc}") from None
    else:
        raise InputError(f"unknown export format {p.suffix!r} (use .csv or .parquet)")
    return p
