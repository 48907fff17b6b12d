"""Low-level readers: turn a file (or a Hugging Face dataset) into a stream of records.

A :class:`Record` is one row as a plain ``dict`` plus ``where``, the place to name in an
error message (``"path:line"`` for text files, ``"path: row N"`` for columnar data). The
readers know nothing about question sets; :mod:`semcal.data.adapters` interprets the rows.

Text files are decoded as UTF-8 (a leading byte-order mark is accepted) one line at a time,
so a bad byte is reported with its line number and huge files stream without being loaded
whole. ``.gz`` files are decompressed on the fly.
"""

from __future__ import annotations

import csv
import gzip
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from semcal.errors import InputError, require
from semcal.limits import MAX_DATASET_BYTES, MAX_DATASET_LINES, MAX_PARQUET_BYTES, regular_file

#: file types the loader understands
FILE_TYPES = ("jsonl", "json", "csv", "parquet", "hf")

_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class Record:
    """One row of input and the place it came from (for error messages)."""

    where: str
    row: dict[str, Any]


def detect_file_type(path: Path) -> str:
    """Guess the file type from the extension (``.gz`` is looked through) or the folder layout."""
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return "hf"
        raise InputError(
            "is a folder but not a dataset saved with datasets' save_to_disk "
            "(no dataset_dict.json or state.json inside)",
            where=str(path),
        )
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _SUFFIXES:
        return _SUFFIXES[suffixes[-1]]
    known = ", ".join(sorted(_SUFFIXES))
    raise InputError(
        f"cannot tell the file type from the name (known extensions: {known}, optionally "
        "followed by .gz); pass file_type='jsonl'|'json'|'csv'|'parquet'",
        where=str(path),
    )


def _open_binary(path: Path) -> BinaryIO:
    regular_file(path, "dataset file")  # a FIFO or a device: refused before it is opened
    try:
        if path.suffix.lower() == ".gz":
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return open(path, "rb")
    except FileNotFoundError:
        raise InputError("file not found", where=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a folder, expected a file", where=str(path)) from None
    except PermissionError:
        raise InputError("permission denied", where=str(path)) from None


def _check_gzip_expansion(path: Path, max_line: int) -> None:
    """Decompress a .gz file once, counting bytes and lines, before any line is parsed: a few
    MB that expand to gigabytes of questions (a gzip bomb) are refused in a second or two at
    :data:`MAX_DATASET_BYTES` or :data:`MAX_DATASET_LINES`, instead of building questions
    until memory runs out. A line longer than ``max_line``, or a damaged file, is left to the
    reading pass, which names the line after reading at most ``max_line`` bytes of it."""
    size = lines = run = 0
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read(_SCAN_CHUNK):
                size += len(chunk)
                n = chunk.count(b"\n")
                lines += n
                run = len(chunk) - 1 - chunk.rfind(b"\n") + (0 if n else run)
                if run > max_line:
                    return
                _check_expansion(path, lines, size, where=str(path))
    except (OSError, EOFError, zlib.error):
        return


_SCAN_CHUNK = 1 << 20

#: longest line of a JSONL/CSV file (bytes): a file without newlines is not read whole
MAX_LINE_BYTES = 16 << 20
#: largest .json document (bytes, it is parsed whole); larger sets belong in JSONL
MAX_JSON_BYTES = 256 << 20


def _decoded_lines(
    path: Path, max_line: int | None = None, too_long: str | None = None
) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, decoded line with its line ending) from a text file.
    Lines are read with a bounded length (``max_line`` bytes, default :data:`MAX_LINE_BYTES`):
    a longer one is an error naming its line, found after reading at most that much. The
    whole file is bounded too, in bytes after decompression (:data:`MAX_DATASET_BYTES`) and
    in lines (:data:`MAX_DATASET_LINES`), so a small .gz that expands without end (a gzip
    bomb) stops there."""
    limit = MAX_LINE_BYTES if max_line is None else max_line
    if path.suffix.lower() == ".gz" and path.is_file():
        _check_gzip_expansion(path, limit)
    with _open_binary(path) as fh:
        lineno = 0
        total = 0
        try:
            while True:
                raw = fh.readline(limit + 1)
                if not raw:
                    break
                lineno += 1
                total += len(raw)
                if len(raw) > limit:
                    raise InputError(
                        too_long or f"line longer than {limit} bytes (is this a text file with "
                        "one record per line?)",
                        where=f"{path}:{lineno}",
                    )
                _check_expansion(path, lineno, total)
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                try:
                    yield lineno, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    bad = raw[exc.start : exc.start + 4]
                    raise InputError(
                        f"bytes {bad!r} at column {exc.start + 1} are not valid UTF-8 "
                        "(save the file as UTF-8)",
                        where=f"{path}:{lineno}",
                    ) from None
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            if isinstance(exc, InputError):  # pragma: no cover - InputError is not an OSError
                raise
            raise InputError(f"cannot read the file: {exc}", where=f"{path}:{lineno + 1}") from None


def _check_expansion(path: Path, lines: int, size: int, where: str | None = None) -> None:
    if size > MAX_DATASET_BYTES:
        raise InputError(
            f"the file holds more than {MAX_DATASET_BYTES >> 20} MiB (counted after "
            "decompression); a question set is smaller: split it, or cut it to the questions "
            "you need", where=where or f"{path}:{lines}")
    if lines > MAX_DATASET_LINES:
        raise InputError(
            f"the file holds more than {MAX_DATASET_LINES} lines (counted after "
            "decompression); a question set is smaller: split it, or cut it to the questions "
            "you need", where=where or f"{path}:{lines}")


def _json_problem(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc).split(";")[0]


def iter_jsonl(path: Path) -> Iterator[Record]:
    """One JSON object per line; blank lines are skipped."""
    seen_any = False
    for lineno, line in _decoded_lines(path):
        if not line.strip():
            continue
        seen_any = True
        where = f"{path}:{lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"invalid JSON ({exc.msg} at column {exc.colno})", where=where) from None
        except (ValueError, RecursionError) as exc:  # huge integers, absurd nesting
            raise InputError(f"unreadable JSON ({_json_problem(exc)})", where=where) from None
        if not isinstance(obj, dict):
            raise InputError(
                f"expected a JSON object per line, got {type(obj).__name__}", where=where
            )
        yield Record(where, obj)
    if not seen_any:
        raise InputError("file is empty (no JSON lines)", where=str(path))


def iter_json(path: Path) -> Iterator[Record]:
    """A JSON array of objects, or an object holding one under "data" / "Data" / "questions"."""
    text_parts = []
    size = 0
    too_big = (f"a .json file over {MAX_JSON_BYTES >> 20} MiB; write large question sets as "
               "JSONL (one object per line)")
    for _lineno, line in _decoded_lines(path, max_line=MAX_JSON_BYTES, too_long=too_big):
        size += len(line)
        if size > MAX_JSON_BYTES:
            raise InputError(too_big, where=str(path))
        text_parts.append(line)
    text = "".join(text_parts)
    if not text.strip():
        raise InputError("file is empty", where=str(path))
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"invalid JSON ({exc.msg} at column {exc.colno})", where=f"{path}:{exc.lineno}"
        ) from None
    except (ValueError, RecursionError) as exc:  # huge integers, absurd nesting
        raise InputError(f"unreadable JSON ({_json_problem(exc)})", where=str(path)) from None
    items = obj
    if isinstance(obj, dict):
        for key in ("data", "Data", "questions", "rows"):
            if isinstance(obj.get(key), list):
                items = obj[key]
                break
        else:
            raise InputError(
                "expected a JSON array of objects (or an object with a 'data' list); "
                "for one object per line use a .jsonl file",
                where=str(path),
            )
    if not isinstance(items, list):
        raise InputError(f"expected a JSON array, got {type(items).__name__}", where=str(path))
    if not items:
        raise InputError("the JSON array is empty", where=str(path))
    for i, item in enumerate(items, start=1):
        where = f"{path}: item {i}"
        if not isinstance(item, dict):
            raise InputError(f"expected a JSON object, got {type(item).__name__}", where=where)
        yield Record(where, item)


def iter_csv(path: Path, delimiter: str | None = None) -> Iterator[Record]:
    """A CSV file with a header row. ``.tsv`` files use tabs. Fields may span lines."""
    if delimiter is None:
        name = path.name.lower().removesuffix(".gz")
        delimiter = "\t" if name.endswith(".tsv") else ","
    # the csv module reads any iterable of strings; track where each record starts
    state = {"line": 0}

    def lines() -> Iterator[str]:
        for lineno, line in _decoded_lines(path):
            state["line"] = lineno
            yield line

    reader = csv.reader(lines(), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InputError(f"malformed CSV header: {exc}", where=f"{path}:{state['line']}") from None
    if header is None or not any(h.strip() for h in header):
        raise InputError("file is empty (no CSV header row)", where=str(path))
    header = [h.strip() for h in header]
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    if dupes:
        raise InputError(f"duplicate column names in the header: {dupes}", where=f"{path}:1")
    n_rows = 0
    while True:
        start = state["line"] + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InputError(f"malformed CSV: {exc}", where=f"{path}:{start}") from None
        if not values or all(not v.strip() for v in values):
            continue
        where = f"{path}:{start}"
        if len(values) != len(header):
            raise InputError(
                f"row has {len(values)} fields but the header has {len(header)} columns "
                "(an unquoted comma or a missing quote?)",
                where=where,
            )
        row = {h: v for h, v in zip(header, values) if h}  # unnamed columns are ignored
        n_rows += 1
        yield Record(where, row)
    if n_rows == 0:
        raise InputError("file has a header but no data rows", where=str(path))


def _to_python(value: Any) -> Any:
    """numpy / pyarrow scalars and arrays into plain Python values (lists, dicts, str, int...)."""
    if hasattr(value, "as_py"):
        return value.as_py()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _to_python(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_python(v) for v in value]
    return value


def iter_parquet(path: Path, batch_size: int = 4096) -> Iterator[Record]:
    """A Parquet file, read in batches (needs pyarrow: the ``parquet`` extra)."""
    pq = require("pyarrow.parquet", "reading Parquet files", "parquet")
    regular_file(path, "dataset file")
    try:
        pf = pq.ParquetFile(str(path))
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for non-Parquet bytes
        raise InputError(f"not a readable Parquet file ({exc})", where=str(path)) from None
    if pf.metadata.num_rows == 0:
        raise InputError("Parquet file has no rows", where=str(path))
    _check_parquet_size(pf.metadata, path)
    i = 0
    for batch in pf.iter_batches(batch_size=batch_size):
        for row in batch.to_pylist():
            i += 1
            yield Record(f"{path}: row {i}", row)


def _check_parquet_size(meta: Any, path: Path) -> None:
    """Refuse a Parquet file whose data, decompressed, exceed :data:`MAX_PARQUET_BYTES`, or
    whose rows exceed :data:`MAX_DATASET_LINES`, from its footer alone (before a page is
    decompressed)."""
    size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if size > MAX_PARQUET_BYTES:
        raise InputError(
            f"the Parquet data expand to {size >> 20} MiB, more than "
            f"{MAX_PARQUET_BYTES >> 20} MiB; a question set is smaller", where=str(path))
    if meta.num_rows > MAX_DATASET_LINES:
        raise InputError(f"the Parquet file holds {meta.num_rows} rows, more than "
                         f"{MAX_DATASET_LINES}; a question set is smaller", where=str(path))


def iter_hf(
    source: str,
    *,
    config: str | None = None,
    split: str | None = None,
    streaming: bool = False,
) -> Iterator[Record]:
    """Rows of a Hugging Face dataset: a folder saved with ``save_to_disk``, or a hub id.

    Hub ids are fetched with ``datasets.load_dataset`` (needs network or the local HF cache).
    ``split`` picks the split of a dataset dictionary; with one split it may be omitted.
    """
    datasets = require("datasets", "loading Hugging Face datasets", "datasets")
    path = Path(source)
    label = source
    if path.is_dir():
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as exc:
            raise InputError(f"cannot load the saved dataset ({exc})", where=str(path)) from None
        ds = _pick_split(ds, split, label)
    else:
        try:
            ds = datasets.load_dataset(source, config, split=split, streaming=streaming)
        except Exception as exc:  # network, unknown id, unknown config/split...
            what = f"{source}" + (f" (config {config!r})" if config else "")
            raise InputError(
                f"cannot load Hugging Face dataset {what}, split {split!r}: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                where=source,
            ) from None
        ds = _pick_split(ds, split, label)
    n = 0
    rows = iter(ds)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except Exception as exc:  # streaming datasets fetch while iterating
            raise InputError(
                f"reading failed after {n} rows: {type(exc).__name__}: {exc}", where=label
            ) from None
        n += 1
        yield Record(f"{label}: row {n}", {k: _to_python(v) for k, v in dict(row).items()})
    if n == 0:
        raise InputError("dataset has no rows", where=label)


def _pick_split(ds: Any, split: str | None, label: str) -> Any:
    if not isinstance(ds, dict):  # DatasetDict / IterableDatasetDict are dicts of splits
        return ds
    names = list(ds.keys())
    if split is not None:
        if split not in names:
            raise InputError(f"no split {split!r} (splits: {', '.join(names)})", where=label)
        return ds[split]
    for preferred in ("test", "validation", "train"):
        if preferred in names:
            return ds[preferred]
    if len(names) == 1:
        return ds[names[0]]
    raise InputError(f"several splits, pick one with split= ({', '.join(names)})", where=label)


def iter_records(
    source: str | Path,
    file_type: str,
    *,
    config: str | None = None,
    split: str | None = None,
    streaming: bool = False,
) -> Iterator[Record]:
    """Dispatch to the reader of ``file_type`` (one of :data:`FILE_TYPES`)."""
    if file_type == "hf":
        return iter_hf(str(source), config=config, split=split, streaming=streaming)
    path = Path(source)
    if file_type == "jsonl":
        return iter_jsonl(path)
    if file_type == "json":
        return iter_json(path)
    if file_type == "csv":
        return iter_csv(path)
    if file_type == "parquet":
        return iter_parquet(path)
    raise InputError(f"unknown file type {file_type!r} (known: {', '.join(FILE_TYPES)})")


__all__ = [
    "FILE_TYPES",
    "Record",
    "detect_file_type",
    "iter_csv",
    "iter_hf",
    "iter_json",
    "iter_jsonl",
    "iter_parquet",
    "iter_records",
]
