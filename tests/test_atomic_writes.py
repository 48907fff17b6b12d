"""Every file semcal writes replaces the old one only when the new one is complete.

The failure is real, not mocked: the child process runs with a file-size limit
(RLIMIT_FSIZE) below the size of the new file, so the operating system refuses the write
half-way (EFBIG), as a full disk would (ENOSPC).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from semcal.errors import InputError
from semcal.files import atomic_path, write_text

pytestmark = pytest.mark.skipif(not hasattr(os, "setrlimit") and sys.platform == "win32",
                                reason="needs POSIX resource limits")

_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # a refused write raises EFBIG instead
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from semcal.cli import main
sys.exit(main(sys.argv[2:]))
"""


def _semcal_limited(limit: int, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _LIMITED, str(limit), *argv],
                          capture_output=True, text=True, timeout=300)


def _leftovers(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture()
def store_dir(tmp_path: Path) -> Path:
    from fakes import GOLD, FakeSampler
    from fakes import make_spec as _spec
    from semcal.runner import run

    qf = tmp_path / "qs.jsonl"
    qf.write_text("".join(json.dumps({"id": t.lower(), "question": f"{t} which one?",
                                      "answers": [g]}) + "\n" for t, g in GOLD.items()))
    run(_spec(qf), tmp_path / "e1", sampler=FakeSampler(), quiet=True)
    return tmp_path / "e1"


def test_a_failed_report_keeps_the_previous_one(store_dir: Path) -> None:
    from semcal.cli import main

    assert main(["report", str(store_dir), "--n-boot", "20", "-q"]) == 0
    report = store_dir / "report.html"
    old = report.read_bytes()
    assert len(old) > 20_000
    # the same report again, but the OS refuses any file past half its size
    p = _semcal_limited(len(old) // 2, "report", str(store_dir), "--n-boot", "20", "-q")
    assert p.returncode == 2, p.stderr
    assert "report.html" in p.stderr and "Traceback" not in p.stderr
    assert report.read_bytes() == old  # before: cut in the middle of the image data
    assert _leftovers(store_dir) == []


def test_a_failed_csv_export_keeps_the_previous_file(store_dir: Path, tmp_path: Path) -> None:
    from semcal.cli import main

    csv = tmp_path / "q.csv"
    csv.write_text("previous export\n")
    p = _semcal_limited(8, "analyze", str(store_dir), "--n-boot", "0", "-q", "--csv", str(csv))
    assert p.returncode == 2, p.stderr
    assert "q.csv" in p.stderr
    assert csv.read_text() == "previous export\n"  # before: an empty file
    assert _leftovers(tmp_path) == []
    # a folder that does not exist is an error (nothing is created), not a FileNotFoundError
    assert main(["analyze", str(store_dir), "--n-boot", "0", "-q", "--csv",
                 str(tmp_path / "nope" / "d" / "q.csv")]) == 2
    assert not (tmp_path / "nope").exists()
    assert main(["compare", str(store_dir), "-o", str(tmp_path / "deep" / "er" / "c.html"),
                 "--n-boot", "0"]) == 2
    assert not (tmp_path / "deep").exists()


def test_atomic_path_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    write_text(target, "one")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "one" and _leftovers(tmp_path) == []
    target.chmod(0o640)
    write_text(target, "two")
    assert target.read_text() == "two" and (target.stat().st_mode & 0o777) == 0o640
    with pytest.raises(InputError, match="does not exist"):
        write_text(tmp_path / "missing" / "x.json", "three")
