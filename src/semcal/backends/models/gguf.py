"""A minimal, pure-Python reader of a GGUF file's key/value metadata."""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path
from typing import Any

from semcal.errors import InputError

# GGUF value type id -> struct format of a scalar (little endian)
_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
#: arrays longer than this (token lists, merges, scores) are skipped, not decoded
_MAX_ARRAY = 64


def read_gguf_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read the key/value metadata of a GGUF file (format versions 2 and 3).

    Returns scalars and strings as Python values and short arrays as lists; long arrays (the
    vocabulary, merges, scores) are skipped and reported as their length (an ``int`` under
    ``"<key>.length"``). The file is memory-mapped, never loaded. Raises :class:`InputError` for
    a file that is not GGUF or is truncated.
    """
    p = Path(path)
    try:
        with p.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return _parse_gguf(mm)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read GGUF metadata: {exc}", where=str(p)) from exc


def _parse_gguf(buf: mmap.mmap) -> dict[str, Any]:
    if len(buf) < 24 or buf[:4] != b"GGUF":
        raise InputError("not a GGUF file (bad magic)")
    (version,) = struct.unpack_from("<I", buf, 4)
    if version not in (2, 3):
        raise InputError(f"unsupported GGUF version {version}")
    _n_tensors, n_kv = struct.unpack_from("<QQ", buf, 8)
    off = 24
    size = len(buf)

    def need(n: int) -> None:
        if off + n > size:
            raise InputError("truncated GGUF header")

    def read_str() -> str:
        nonlocal off
        need(8)
        (n,) = struct.unpack_from("<Q", buf, off)
        off += 8
        need(n)
        s = bytes(buf[off : off + n]).decode("utf-8", errors="replace")
        off += n
        return s

    def skip_str() -> None:
        nonlocal off
        need(8)
        (n,) = struct.unpack_from("<Q", buf, off)
        off += 8 + n

    def read_scalar(t: int) -> Any:
        nonlocal off
        fmt = "<" + _SCALAR[t]
        width = struct.calcsize(fmt)
        need(width)
        (v,) = struct.unpack_from(fmt, buf, off)
        off += width
        return v

    meta: dict[str, Any] = {}
    if n_kv > 1_000_000:
        raise InputError(f"implausible GGUF metadata count {n_kv}")
    for _ in range(n_kv):
        key = read_str()
        t = read_scalar(4)
        if t == _STRING:
            meta[key] = read_str()
        elif t in _SCALAR:
            meta[key] = read_scalar(t)
        elif t == _ARRAY:
            elem = read_scalar(4)
            count = read_scalar(10)
            if elem == _STRING:
                if count <= _MAX_ARRAY:
                    meta[key] = [read_str() for _ in range(count)]
                else:
                    for _ in range(count):
                        skip_str()
                    meta[key + ".length"] = count
            elif elem in _SCALAR:
                width = struct.calcsize("<" + _SCALAR[elem])
                if count <= _MAX_ARRAY:
                    meta[key] = [read_scalar(elem) for _ in range(count)]
                else:
                    need(width * count)
                    off += width * count
                    meta[key + ".length"] = count
            else:
                raise InputError(f"unsupported GGUF array element type {elem} for {key!r}")
        else:
            raise InputError(f"unsupported GGUF value type {t} for {key!r}")
        if off > size:
            raise InputError("truncated GGUF header")
    return meta
