"""The judge B and judge grader end to end, against a REAL llama.cpp server on 127.0.0.1.

The embedded SmolLM2-135M-Instruct, served by ``python -m semcal.backends.llama_server``,
both answers the questions (backend ``openai``) and judges the answers, from the command line
(``--judge-model/--judge-backend/--judge-base-url``) and from a spec's ``[judge]`` table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")

QUESTIONS = [
    {"id": "q1", "question": "What is the capital of France?", "answers": ["Paris"]},
    {"id": "q2", "question": "What is the capital of Italy?", "answers": ["Rome"]},
]




def _semcal(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "semcal.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_judge_from_a_spec_and_from_the_command_line(llama_srv, tmp_path: Path) -> None:
    server = llama_srv
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS))
    spec = tmp_path / "spec.toml"
    spec.write_text(
        'model = "smollm2"\nbackend = "openai"\ndataset = "q.jsonl"\nstyle = "sentence"\n'
        'samples = 3\nmax_tokens = 24\ncollapse = "judge"\n'
        f'[backend_options]\nbase_url = "{server.base_url}"\nchat = true\n'
        f'[judge]\nmodel = "smollm2"\nbackend = "openai"\nbase_url = "{server.base_url}"\n'
    )
    out = tmp_path / "exp"
    r = _semcal("run", str(spec), "--out", str(out), "--no-greedy")
    assert r.returncode == 0, r.stderr

    # `run` printed its summary with the run's own B (the judge) and cached its classes; drop
    # them so that this analysis asks the judge again and its call counts can be checked
    import sqlite3

    with sqlite3.connect(out / "semcal.sqlite") as db:
        assert db.execute("SELECT count(*) FROM classes WHERE collapse LIKE 'judge%'").fetchone()[0]
        db.execute("DELETE FROM classes")

    # the judge of the run's own [judge] table
    r = _semcal("analyze", str(out), "--collapse", "judge", "--json", "--n-boot", "0")
    assert r.returncode == 0, r.stderr
    (a,) = json.loads(r.stdout)
    assert a["collapse"] == "judge" and a["n"] == 2
    assert a["collapse_label"].startswith("judge[") and a["grader_label"] == "auto"
    audit = a["audit"]
    assert audit["judged"] + 0 >= 1  # responses went to the judge ...
    assert 0 <= audit["judge_fallbacks"] <= audit["judged"]
    assert audit["against"]["against"] == "auto"  # ... and were compared with the rule-based B
    assert 0 <= audit["against"]["agreement"] <= 1

    # the same from flags, with the judge grader too; the summary names B and grader
    r = _semcal("analyze", str(out), "--collapse", "judge", "--grader", "judge", "--n-boot", "0",
                "--judge-model", "smollm2", "--judge-backend", "openai",
                "--judge-base-url", server.base_url)
    assert r.returncode == 0, r.stderr
    assert "judge[smollm2]" in r.stdout.splitlines()[2].split()  # B and grader name the judge
    assert "B audit" in r.stdout and "against B auto" in r.stdout

    # the report shows the B audit
    r = _semcal("report", str(out), "--collapse", "judge", "--n-boot", "0")
    assert r.returncode == 0, r.stderr
    html = (out / "report.html").read_text()
    # the classes come from the store's cache now (the judge is not asked again), so the report
    # shows the audit and the agreement with the rule-based B, not the judge's call counts
    assert "B audit" in html and "against B auto" in html


def test_judge_needs_a_judge_model(tmp_path: Path) -> None:
    """No [judge] table and no --judge-model: one clear line, exit 2 (nothing is run)."""
    spec = tmp_path / "spec.toml"
    spec.write_text('model = "gemma-3-270m"\ncollapse = "judge"\n')
    r = _semcal("run", str(spec), "--out", str(tmp_path / "x"))
    assert r.returncode == 2
    assert "[judge]" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()
    r = _semcal("analyze", str(tmp_path), "--judge-backend", "openai")
    assert r.returncode == 2 and "Traceback" not in r.stderr
