"""`semcal analyze DIR --collapse auto,exact`: each B's numbers side by side, and a line that
says whether the choice of B changes a run's result (issue 24, B sensitivity without labels)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from semcal.cli import format_b_sensitivity


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "semcal.cli", *argv], capture_output=True,
                          text=True, timeout=120)


def test_several_bs_side_by_side_through_the_cli(tmp_path: Path) -> None:
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Which city {i}?",
                                        "answer": "Paris"}) + "\n" for i in range(6)))
    spec = tmp_path / "s.toml"
    # "Paris." and "The city of Paris." are one answer for auto, two for exact
    spec.write_text('model = "mock"\nbackend = "mock"\ndataset = "q.jsonl"\nsamples = 6\n'
                    'style = "concise"\n[backend_options]\ntemplate = "{answer}"\n'
                    'answers = ["Paris.", "The city of Paris.", "Rome."]\nconcentration = 0.5\n')
    r = _cli("run", str(spec), "--out", str(tmp_path / "exp"), "-q")
    assert r.returncode == 0, r.stderr
    r = _cli("analyze", str(tmp_path / "exp"), "--collapse", "auto,exact", "--json",
             "--n-boot", "0")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [row["collapse"] for row in rows] == ["auto", "exact"]
    assert rows[0]["run"] == rows[1]["run"]
    assert rows[0]["mean_confidence"] > rows[1]["mean_confidence"]  # exact splits the answer
    r = _cli("analyze", str(tmp_path / "exp"), "--collapse", "auto,exact", "--n-boot", "200")
    assert r.returncode == 0, r.stderr
    assert "B sensitivity, run" in r.stdout and "(auto, exact)" in r.stdout
    lines = r.stdout.splitlines()
    assert [ln.split()[3] for ln in lines[2:4]] == ["auto", "exact"]
    for cmd in (["report", str(tmp_path / "exp")], ["compare", str(tmp_path / "exp")]):
        r = _cli(*cmd, "--collapse", "auto,exact")
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "shows one B" in r.stderr
    r = _cli("analyze", str(tmp_path / "exp"), "--collapse", "auto,,exact")
    assert r.returncode == 2 and "empty name" in r.stderr


def _analysis(b: str, lo: float, hi: float) -> SimpleNamespace:
    return SimpleNamespace(
        run=SimpleNamespace(name="r", id=1), collapse_label=b,
        summary={"accuracy": 0.5, "mean_confidence": 0.6, "smece": (lo + hi) / 2,
                 "smece_lo": lo, "smece_hi": hi})


def test_the_sensitivity_line_says_when_b_changes_the_result() -> None:
    apart = format_b_sensitivity([_analysis("auto", 0.05, 0.10), _analysis("exact", 0.15, 0.2)])
    assert "do not all overlap" in apart and "smECE 0.075-0.175" in apart
    close = format_b_sensitivity([_analysis("auto", 0.05, 0.12), _analysis("exact", 0.1, 0.2)])
    assert "overlap: the Bs agree" in close
    assert format_b_sensitivity([_analysis("auto", 0.05, 0.1)]) == ""
