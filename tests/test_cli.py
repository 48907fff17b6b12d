"""The command line: help for every command, one-line errors for bad input, the demo (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from semcal import cli
from semcal.cli import build_parser, main

SRC = str(Path(__file__).resolve().parents[1] / "src")
COMMANDS = ("demo", "run", "resume", "analyze", "report", "compare", "reproduce", "models")


def _err(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse usage errors
        rc = int(exc.code or 0)
    err = capsys.readouterr().err
    return rc, err


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_for_every_command(cmd: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert f"semcal {cmd}" in out and "--debug" in out


def test_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    for cmd in COMMANDS:
        assert cmd in out


@pytest.fixture()
def qfile(tmp_path: Path) -> Path:
    p = tmp_path / "q.jsonl"
    p.write_text('{"id": "a", "question": "Capital of France?", "answers": ["Paris"]}\n')
    return p


BAD = [
    (["run", "--model", "no-such-model", "--dataset", "demo", "--out", "{tmp}/o"], "no-such-model"),
    (["run", "{tmp}/missing.toml", "--out", "{tmp}/o"], "not found"),
    (["run", "{tmp}/bad.toml", "--out", "{tmp}/o"], "malformed TOML"),
    (["run", "{tmp}/unknown_key.toml", "--out", "{tmp}/o"], "unknown key"),
    (["run", "--model", "gemma-3-270m", "--style", "poem", "--out", "{tmp}/o"], "unknown style"),
    (["run", "--model", "gemma-3-270m", "--temperature", "-1", "--out", "{tmp}/o"], "temperature"),
    (["run", "--model", "gemma-3-270m", "--samples", "0", "--out", "{tmp}/o"], "samples"),
    (["run", "--model", "gemma-3-270m", "--top-p", "1.5", "--out", "{tmp}/o"], "top_p"),
    (["run", "--model", "gemma-3-270m", "--samples", "x", "--out", "{tmp}/o"], "invalid int"),
    (["run", "--model", "gemma-3-270m", "--dataset", "{tmp}/nope.jsonl", "--out", "{tmp}/o"], "nope.jsonl"),
    (["run", "--model", "gemma-3-270m", "--backend", "warp", "--out", "{tmp}/o"], "backend"),
    (["run", "--model", "gemma-3-270m"], "--out"),
    (["run", "--out", "{tmp}/o"], "--model"),
    (["analyze", "{tmp}/empty"], "no semcal store|not found"),
    (["report", "{tmp}/nowhere"], "not found"),
    (["resume", "{tmp}/nowhere"], "no semcal store"),
    (["demo", "--limit", "huge", "--out", "{tmp}/d"], "--limit"),
    (["demo", "--samples", "0", "--out", "{tmp}/d"], ">= 1"),
    (["demo", "--models", "nonexistent-model", "--limit", "tiny", "--out", "{tmp}/d"], "nonexistent-model"),
    (["frobnicate"], "invalid choice"),
    (["reproduce", "--comparisons", "bogus", "--out", "{tmp}/o"], "unknown comparison 'bogus'"),
    (["reproduce", "{tmp}/missing.toml", "--out", "{tmp}/o"], "not found"),
    (["reproduce", "--models", "no-such-model:base", "--out", "{tmp}/o"], "no-such-model"),
    (["reproduce", "--questions", "0", "--out", "{tmp}/o"], ">= 1"),
]


@pytest.mark.parametrize(("argv", "needle"), BAD)
def test_bad_input_is_one_line(argv: list[str], needle: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.toml").write_text('model = "gemma-3-270m"\nsamples = [1,\n')
    (tmp_path / "unknown_key.toml").write_text('model = "gemma-3-270m"\nsampels = 3\n')
    (tmp_path / "empty").mkdir()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    rc, err = _err(capsys, argv)
    assert rc != 0
    line = _one_line(err)
    assert line.startswith("semcal")
    import re

    assert re.search(needle, line), line
    # nothing was sampled: no store was created for a spec that failed validation
    assert not (tmp_path / "o" / "semcal.sqlite").exists()


def test_unexpected_error_hint(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def boom(args):
        raise RuntimeError("kaput\nsecond line")

    monkeypatch.setitem(cli.COMMANDS, "models", boom)
    rc, err = _err(capsys, ["models"])
    assert rc == 1
    line = _one_line(err)
    assert "RuntimeError: kaput second line" in line and "--debug" in line
    with pytest.raises(RuntimeError):
        main(["models", "--debug"])


def test_models_lists_embedded(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "gemma-3-270m" in out and "smollm2-135m-instruct" in out
    assert "base" in out and "instruct" in out


def test_spec_file_and_flag_override(tmp_path: Path, qfile: Path) -> None:
    spec = tmp_path / "s.toml"
    spec.write_text(
        'model = "gemma-3-270m"\ndataset = "q.jsonl"\nsamples = 7\nstyle = "concise"\n'
        "[adaptive]\nround = 4\n[backend_options]\nn_ctx = 1024\n"
    )
    args = build_parser().parse_args(["run", str(spec), "--out", "x", "--samples", "9"])
    s = cli._spec_from_args(args)
    assert s.samples == 9 and s.style == "concise"
    assert s.dataset == str(qfile)  # relative to the spec file
    assert s.adaptive.enabled and s.adaptive.round == 4
    assert s.backend_options == {"n_ctx": 1024}


def test_summary_table_format() -> None:
    from types import SimpleNamespace

    run = SimpleNamespace(name="r", model="m", style="sentence")
    s = {"n": 3, "mean_samples": 10, "accuracy": 0.5, "mean_confidence": 0.6, "smece": 0.1,
         "smece_lo": 0.05, "smece_hi": float("nan"), "ece": 0.2, "brier": 0.3, "auroc": None}
    text = cli.format_summary_table([SimpleNamespace(
        run=run, summary=s, collapse="auto", grader="exact",
        collapse_label="auto(max_words=8)", grader_label="exact")])
    header, _, row = text.splitlines()
    assert "smECE [95% CI]" in header and "AUROC" in header
    assert "0.100 [0.050, -]" in row
    # every number names the B (with its options) and the grader that made it
    assert header.split()[3:5] == ["B", "grader"]
    assert row.split()[3:5] == ["auto(max_words=8)", "exact"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _semcal(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from semcal.cli import main; sys.exit(main())", *args],
        env=_env(), capture_output=True, text=True, timeout=timeout,
    )


@pytest.mark.slow
def test_demo_small_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    out = tmp_path / "demo"
    t0 = time.monotonic()
    p = _semcal("demo", "--limit", "small", "--out", str(out), "--quiet")
    elapsed = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].split()[:6] == ["run", "model", "style", "B", "grader", "n"]
    assert any("gemma-3-270m" in ln for ln in lines) and any("smollm2" in ln for ln in lines)
    assert lines[-1].startswith("report: ")
    html = Path(lines[-1].removeprefix("report: ").strip())
    assert html.is_file() and (out / "questions.csv").is_file()
    text = html.read_text()
    assert "smECE" in text and "data:image/png;base64," in text
    # analysis from the store alone, with another collapsing function: no model, no re-sampling
    p2 = _semcal("analyze", str(out), "--collapse", "exact", "--estimators", "all", "--json")
    assert p2.returncode == 0, p2.stderr
    import json

    data = json.loads(p2.stdout)
    assert len(data) == 2 and all(d["n"] == 8 for d in data)
    assert all(d["n_samples_total"] == 8 * 6 for d in data)
    print(f"demo --limit small took {elapsed:.1f}s")


def test_analyze_report_compare_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fakes import FakeSampler
    from fakes import make_spec as _spec
    from semcal.runner import run

    qf = tmp_path / "qs.jsonl"
    import json

    from fakes import GOLD

    qf.write_text("".join(json.dumps({"id": t.lower(), "question": f"{t} which one?",
                                      "answers": [g]}) + "\n" for t, g in GOLD.items()))
    run(_spec(qf), tmp_path / "e1", sampler=FakeSampler(), quiet=True)
    run(_spec(qf, seed=9), tmp_path / "e2", sampler=FakeSampler(), quiet=True)
    capsys.readouterr()
    assert main(["analyze", str(tmp_path / "e1"), "--collapse", "exact", "--n-boot", "20",
                 "--csv", str(tmp_path / "t.csv"), "--parquet", str(tmp_path / "t.parquet")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("run") and "fake-concise" in out
    assert "confidence estimators" in out
    assert (tmp_path / "t.csv").read_text().count("\n") == 7
    assert main(["report", str(tmp_path / "e1"), "--n-boot", "20", "-q"]) == 0
    assert (tmp_path / "e1" / "report.html").is_file()
    assert (tmp_path / "e1" / "questions.csv").is_file()
    # a report elsewhere names its tables after itself, and says so even with -q
    (tmp_path / "other").mkdir()
    capsys.readouterr()
    assert main(["report", str(tmp_path / "e1"), "-o", str(tmp_path / "other" / "x.html"),
                 "--n-boot", "20", "-q"]) == 0
    said = capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "other").iterdir()) == [
        "x.html", "x.questions.csv", "x.questions.parquet"]
    assert f"table: {tmp_path / 'other' / 'x.questions.csv'}" in said
    assert main(["report", str(tmp_path / "e1"), "-o", str(tmp_path / "other" / "y.html"),
                 "--no-tables", "--n-boot", "20", "-q"]) == 0
    assert not (tmp_path / "other" / "y.questions.csv").exists()
    assert (tmp_path / "other" / "y.html").is_file()
    assert main(["compare", str(tmp_path / "e1"), str(tmp_path / "e2"), "-o",
                 str(tmp_path / "c.html"), "--n-boot", "20"]) == 0
    assert "comparison:" in capsys.readouterr().out
    assert (tmp_path / "c.html").read_text().count("fake-concise") >= 2
    # another B on the same samples: no model, no re-sampling
    assert main(["analyze", str(tmp_path / "e1"), "--collapse", "bogus-b"]) == 2
    assert "bogus-b" in capsys.readouterr().err
    assert main(["resume", str(tmp_path / "e1")]) == 0  # complete: nothing to do


def test_ctrl_c_prints_how_to_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    import json

    import semcal.executors.local
    from fakes import GOLD, FakeSampler

    qf = tmp_path / "qs.jsonl"
    qf.write_text("".join(json.dumps({"id": t.lower(), "question": f"{t} which one?",
                                      "answers": [g]}) + "\n" for t, g in GOLD.items()))
    # the local executor opens the model through semcal.backends.get_sampler, imported by name
    monkeypatch.setattr(semcal.executors.local, "get_sampler",
                        lambda backend, model, **kw: FakeSampler(interrupt_after=4))
    argv = ["run", "--model", "fake", "--backend", "openai", "--dataset", str(qf),
            "--samples", "3", "--style", "concise", "--out", str(tmp_path / "o"), "-q"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "2/6 questions" in err and f"semcal resume {tmp_path / 'o'}" in err
    assert "Traceback" not in err
    monkeypatch.setattr(semcal.executors.local, "get_sampler",
                        lambda backend, model, **kw: FakeSampler())
    assert main(["resume", str(tmp_path / "o"), "-q"]) == 0
    from semcal.store import Store

    with Store(tmp_path / "o", readonly=True) as st:
        assert st.progress(st.runs()[0].id) == (6, 6, 18)


def test_a_backend_error_names_the_resume_command_only_when_something_is_stored(tmp_path) -> None:
    """`_run_or_hint`: a BackendError from the runner gets "resume with: ..." once the store
    exists; before it exists (the model failed to open) there is nothing to resume."""
    from semcal import cli
    from semcal.errors import BackendError
    from semcal.store import Store

    class Failing:  # the runner's interface, failing as a dead server does
        @staticmethod
        def run(spec, out, quiet=False):
            raise BackendError("server gone")

    out = tmp_path / "exp"
    with pytest.raises(BackendError) as e:
        cli._run_or_hint(Failing, None, out, True, f"semcal resume {out}")
    assert str(e.value) == "server gone"
    Store(out).close()
    with pytest.raises(BackendError, match=r"server gone \(every finished question is stored; "
                                           r"resume with: semcal resume .*exp\)"):
        cli._run_or_hint(Failing, None, out, True, f"semcal resume {out}")


def semcal_cli(*argv: str) -> subprocess.CompletedProcess:
    """``semcal ARGV`` in a fresh interpreter, its output captured."""
    return subprocess.run([sys.executable, "-m", "semcal.cli", *argv], capture_output=True,
                          text=True, timeout=120)


def test_component_options_from_the_command_line(tmp_path: Path) -> None:
    """--backend-opt, --collapse-opt and --grader-opt reach the component (values read as
    TOML scalars); a bad one is one line and exit 2."""
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Which city {i}?",
                                        "answers": ["Paris"]}) + "\n" for i in range(4)))

    r = semcal_cli("run", "--model", "mock", "--backend", "mock", "--dataset", str(data), "--out",
            str(tmp_path / "o"), "--samples", "6", "--style", "concise", "-q",
            "--backend-opt", "template={answer}", "--backend-opt", "concentration=1",
            "--backend-opt", 'answers=["New York City", "Paris"]')
    assert r.returncode == 2 and "give a number, true/false or a string" in r.stderr  # a list
    r = semcal_cli("run", "--model", "mock", "--backend", "mock", "--dataset", str(data), "--out",
            str(tmp_path / "o"), "--samples", "6", "--style", "concise", "-q",
            "--backend-opt", "template=New York City or {answer}", "--backend-opt", "chat=false")
    assert r.returncode == 0, r.stderr

    def no_answer(*extra: str) -> float:
        r = semcal_cli("analyze", str(tmp_path / "o"), "--collapse", "auto", "--json", "--n-boot", "0",
                *extra)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)[0]["no_answer_rate"]

    assert no_answer() == 0.0
    assert no_answer("--collapse-opt", "max_words=2") == 1.0  # every answer is 5+ words
    # the numbers name the B and grader that made them, options included
    r = semcal_cli("analyze", str(tmp_path / "o"), "--collapse-opt", "max_words=2", "--grader",
            "numeric", "--grader-opt", "rel_tol=0.01", "--n-boot", "0", "-q")
    assert r.returncode == 0, r.stderr
    row = r.stdout.splitlines()[2].split()
    assert "auto(max_words=2)" in row and "numeric(rel_tol=0.01)" in row
    assert "B audit, run" in r.stdout and "(B auto(max_words=2), grader numeric(rel_tol=0.01))" in r.stdout
    r = semcal_cli("analyze", str(tmp_path / "o"), "--grader", "numeric", "--grader-opt", "rel_tol=-1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "tolerances must be >= 0" in r.stderr
    r = semcal_cli("analyze", str(tmp_path / "o"), "--collapse-opt", "no-equals-sign")
    assert r.returncode == 2 and "wants KEY=VALUE" in r.stderr


def test_analyze_says_when_a_sentence_run_has_no_b_check(tmp_path: Path) -> None:
    """A sentence or chain-of-thought run without hand labels gets one line saying its B is
    unchecked and the command that checks it; a concise run does not."""
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Which city {i}?",
                                        "answers": ["Paris"]}) + "\n" for i in range(3)))

    for style in ("concise", "sentence"):
        out = tmp_path / style
        r = semcal_cli("run", "--model", "mock", "--backend", "mock", "--dataset", str(data), "--out",
                str(out), "--samples", "4", "--style", style, "-q")
        assert r.returncode == 0, r.stderr
        r = semcal_cli("analyze", str(out), "--n-boot", "0")
        assert r.returncode == 0, r.stderr
        lines = [x for x in r.stdout.splitlines() if "none (no hand labels)" in x]
        r = semcal_cli("report", str(out), "--n-boot", "0", "-q")
        assert r.returncode == 0, r.stderr
        page = (out / "report.html").read_text()
        if style == "concise":
            assert lines == [] and "b-unchecked" not in page
        else:
            assert len(lines) == 1 and f"semcal label {out} --run " in lines[0]
            assert "On sentence answers B's error" in lines[0]
            assert 'class="muted b-unchecked"' in page and f"semcal label {out} --run" in page
