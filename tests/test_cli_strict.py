"""Options that would be silently ignored are refused, and untrusted text never reaches the
terminal as control sequences. Every case runs the real CLI in a subprocess and asserts the
exit status, the one line, and that nothing was written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _cli(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "semcal.cli", *argv], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def exp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("strict")
    data = tmp / "q.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Capital number {i}?",
                                        "answer": "Paris"}) + "\n" for i in range(3)))
    r = _cli("run", "--model", "mock", "--backend", "mock", "--dataset", str(data), "--out",
             str(tmp / "exp"), "--samples", "4", "-q", "--name", "evil\x1b]0;pwned\x07name")
    assert r.returncode == 0, r.stderr
    return tmp


def _refused(r: subprocess.CompletedProcess, fragment: str) -> None:
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("semcal: error:") and fragment in r.stderr, r.stderr


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--round", "3"], "--round set adaptive sampling"),
    (["--epsilon", "0.2", "--min-samples", "4"], "--epsilon and --min-samples set adaptive"),
])
def test_adaptive_settings_without_adaptive_are_refused(exp: Path, flags: list[str],
                                                        fragment: str) -> None:
    out = exp / "never"
    r = _cli("run", "--model", "mock", "--backend", "mock", "--dataset", str(exp / "q.jsonl"),
             "--out", str(out), "--samples", "4", "-q", *flags)
    _refused(r, fragment)
    assert not out.exists()


def test_adaptive_settings_with_adaptive_still_run(exp: Path) -> None:
    r = _cli("run", "--model", "mock", "--backend", "mock", "--dataset", str(exp / "q.jsonl"),
             "--out", str(exp / "ad"), "--samples", "8", "-q", "--adaptive", "--round", "4")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(("flags", "fragment"), [
    (["--epsilon", "0.2"], "--epsilon set the adaptive replay: add --replay-adaptive"),
    (["--round", "4", "--delta", "0.1"], "--round and --delta set the adaptive replay"),
    (["--judge-model", "gemma-3-270m"], "a judge model was given but neither the B"),
])
def test_analyze_options_that_would_be_ignored_are_refused(exp: Path, flags: list[str],
                                                           fragment: str) -> None:
    before = (exp / "exp" / "semcal.sqlite").read_bytes()
    r = _cli("analyze", str(exp / "exp"), "--n-boot", "0", *flags)
    _refused(r, fragment)
    assert r.stdout == ""
    assert (exp / "exp" / "semcal.sqlite").read_bytes() == before


def test_a_grader_option_the_grader_does_not_take_is_refused(exp: Path) -> None:
    r = _cli("analyze", str(exp / "exp"), "--grader", "exact", "--grader-opt", "rel_tol=0.5")
    _refused(r, "bad option for grader 'exact'")


def test_k_shot_on_a_chat_model_is_refused(exp: Path) -> None:
    """A chat model's prompts hold no worked examples: --k-shot 3 would be stored, not used.
    (Refused before the model is loaded: the embedded model's kind says it is a chat model.)"""
    out = exp / "kshot"
    r = _cli("run", "--model", "smollm2-135m-instruct", "--dataset", str(exp / "q.jsonl"),
             "--out", str(out), "--samples", "2", "-q", "--k-shot", "3")
    _refused(r, "is a chat model")
    assert not out.exists()


def test_control_characters_in_stored_text_are_printed_visibly(exp: Path) -> None:
    """A run name holding an OSC title sequence is printed with its escapes visible, by
    analyze (table and audit) and in an error line."""
    r = _cli("analyze", str(exp / "exp"), "--n-boot", "0")
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "evil\\x1b]0;pwned\\x07name" in r.stdout
    for argv in (["--run", "no\x1bsuch"], ["--no-such-flag\x1b[2J"]):
        r = _cli("analyze", str(exp / "exp"), *argv)
        assert r.returncode == 2 and "\x1b" not in r.stderr and "\\x1b" in r.stderr, r.stderr
    r = _cli("analyze", str(exp / "exp"), "--json", "--n-boot", "0")
    assert json.loads(r.stdout)[0]["run"] == "evil\x1b]0;pwned\x07name"  # JSON keeps the text


def test_adaptive_settings_override_an_adaptive_spec(exp: Path) -> None:
    """A spec file that turns adaptive sampling on may have its settings changed by flags."""
    spec = exp / "ad.toml"
    spec.write_text('model = "mock"\nbackend = "mock"\ndataset = "q.jsonl"\nsamples = 8\n'
                    "[adaptive]\nenabled = true\nround = 2\n")
    r = _cli("run", str(spec), "--out", str(exp / "ad-spec"), "-q", "--round", "4")
    assert r.returncode == 0, r.stderr


def test_the_demo_says_which_style_its_b_reads_best() -> None:
    """Issue 23: the judge did not become the default B, so the demo says on which style the
    default B is measured best and how to check it on the run."""
    from semcal.cli import demo_b_note

    concise, sentence, cot = (demo_b_note(s) for s in ("concise", "sentence", "cot"))
    assert all("concise answers best" in n and "semcal label" in n for n in (concise, sentence, cot))
    assert "sentences" in sentence and "chains of thought" in cot
    assert "--collapse auto,judge" in sentence and "--collapse" not in concise
