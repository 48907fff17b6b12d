"""The runner with a deterministic fake sampler: storage, resume, interruption, batching."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from fakes import DISTS, GOLD, EstSampler, FakeSampler, fake_collapse  # noqa: F401
from fakes import dump_store as _dump
from fakes import make_spec as _spec
from semcal.backends.base import prompt_seed, sample_seed
from semcal.collapse import collapse_key
from semcal.errors import SemcalError, StoreError
from semcal.runner import batch_seed, run
from semcal.spec import RunSpec
from semcal.store import Store
from semcal.types import NO_ANSWER, Prompt


def test_fixed_run_stores_everything(qfile: Path, tmp_path: Path) -> None:
    s = FakeSampler()
    res = run(_spec(qfile), tmp_path / "out", sampler=s, quiet=True)
    assert res.complete and res.n_questions == 6 and res.samples_total == 36 and res.samples_new == 36
    assert not s.closed  # a sampler passed in is the caller's to close
    d = _dump(tmp_path / "out")
    assert len(d["done"]) == 6
    for qid, rows in d["samples"].items():
        assert [r[1] for r in rows] == list(range(6))
        with Store(tmp_path / "out", readonly=True) as st:
            prompt = json.loads(st.conn.execute(
                "SELECT prompt FROM questions WHERE qid=?", (qid,)).fetchone()[0])

        base = prompt_seed(batch_seed(3, qid, 0), Prompt(text=prompt["text"]))
        assert [r[2] for r in rows] == [sample_seed(base, i) for i in range(6)]
    assert d["greedy"]["zqa"] == "The answer is Paris."
    with Store(tmp_path / "out", readonly=True) as st:
        assert st.runs()[0].finished is not None
        assert st.runs()[0].is_chat is False
        assert st.integrity_check() == "ok"


def test_rerun_is_a_noop(qfile: Path, tmp_path: Path) -> None:
    run(_spec(qfile), tmp_path / "out", sampler=FakeSampler(), quiet=True)
    before = _dump(tmp_path / "out")
    s = FakeSampler()
    res = run(_spec(qfile), tmp_path / "out", sampler=s, quiet=True)
    assert res.resumed and res.samples_new == 0 and s.calls == []
    assert _dump(tmp_path / "out") == before


def test_interrupt_then_resume_equals_uninterrupted(qfile: Path, tmp_path: Path) -> None:
    ref = run(_spec(qfile), tmp_path / "ref", sampler=FakeSampler(), quiet=True)
    assert ref.complete
    # 2 questions = 2 sample calls + 2 greedy calls; the 5th call is interrupted
    res = run(_spec(qfile), tmp_path / "cut", sampler=FakeSampler(interrupt_after=4), quiet=True)
    assert res.interrupted and res.n_done == 2 and res.samples_total == 12
    with Store(tmp_path / "cut", readonly=True) as st:
        assert st.runs()[0].finished is None
    res2 = run(_spec(qfile), tmp_path / "cut", sampler=FakeSampler(), quiet=True)
    assert res2.resumed and res2.complete and res2.samples_new == 24
    assert _dump(tmp_path / "cut") == _dump(tmp_path / "ref")


def test_batching_several_questions_per_call(qfile: Path, tmp_path: Path) -> None:
    s = FakeSampler()
    res = run(_spec(qfile, batch_questions=4), tmp_path / "b", sampler=s, quiet=True)
    assert res.complete and res.samples_total == 36
    assert [c[0] for c in s.calls] == [4, 4, 2, 2]  # samples, greedy, samples, greedy
    # interrupted and resumed with batching: still equal to the uninterrupted batched run
    run(_spec(qfile, batch_questions=4), tmp_path / "c", sampler=FakeSampler(interrupt_after=2),
        quiet=True)
    run(_spec(qfile, batch_questions=4), tmp_path / "c", sampler=FakeSampler(), quiet=True)
    assert _dump(tmp_path / "c") == _dump(tmp_path / "b")


def test_seed_changes_samples(qfile: Path, tmp_path: Path) -> None:
    run(_spec(qfile, seed=1), tmp_path / "a", sampler=FakeSampler(), quiet=True)
    run(_spec(qfile, seed=2), tmp_path / "b", sampler=FakeSampler(), quiet=True)
    a, b = _dump(tmp_path / "a"), _dump(tmp_path / "b")
    assert a["samples"]["zqe"] != b["samples"]["zqe"]


def test_same_dir_different_spec_makes_a_second_run(qfile: Path, tmp_path: Path) -> None:
    run(_spec(qfile), tmp_path / "o", sampler=FakeSampler(), quiet=True)
    res = run(_spec(qfile, temperature=0.7), tmp_path / "o", sampler=FakeSampler(), quiet=True)
    assert not res.resumed
    with Store(tmp_path / "o", readonly=True) as st:
        assert [r.name for r in st.runs()] == ["fake-concise", "fake-concise-2"]
    with pytest.raises(StoreError, match="different settings"):
        run(_spec(qfile, temperature=0.5, name="fake-concise"), tmp_path / "o",
            sampler=FakeSampler(), quiet=True)


def test_bad_backend_output_commits_nothing(qfile: Path, tmp_path: Path) -> None:
    with pytest.raises(SemcalError, match="completions"):
        run(_spec(qfile), tmp_path / "x", sampler=FakeSampler(bad_count=True), quiet=True)
    with Store(tmp_path / "x", readonly=True) as st:
        assert st.progress(st.runs()[0].id)[2] == 0


def test_batch_seed() -> None:
    assert batch_seed(0, "q1", 0) == batch_seed(0, "q1", 0)
    assert len({batch_seed(0, "q1", 0), batch_seed(1, "q1", 0), batch_seed(0, "q2", 0),
                batch_seed(0, "q1", 1), batch_seed(0, None, 0)}) == 5
    assert 0 <= batch_seed(123, "x", 7) < 2**31


def test_on_batch_callback(qfile: Path, tmp_path: Path) -> None:
    seen = []
    run(_spec(qfile), tmp_path / "cb", sampler=FakeSampler(), quiet=True,
        on_batch=lambda d, t: seen.append((d, t)))
    assert seen == [(i, 6) for i in range(1, 7)]


def test_analysis_after_run(qfile: Path, tmp_path: Path) -> None:
    from semcal.analysis import analyze_dir

    run(_spec(qfile, samples=10), tmp_path / "an", sampler=FakeSampler(), quiet=True)
    (a,) = analyze_dir(tmp_path / "an", collapse="exact", n_boot=50)
    byid = {q.qid: q for q in a.questions}
    assert byid["zqa"].confidence == 1.0 and byid["zqa"].correct
    assert not byid["zqe"].correct  # gold "red" is never sampled
    assert a.summary["n"] == 6
    assert 0 <= a.summary["smece"] <= 1
    assert a.summary["accuracy"] == pytest.approx(sum(q.correct for q in a.questions) / 6)
    assert byid["zqa"].greedy_correct is True
    est = {e["estimator"]: e for e in a.estimators}
    assert est["semantic"]["smece"] == pytest.approx(a.summary["smece"])
    assert est["neg_num_classes"]["kind"] == "score" and "smece" not in est["neg_num_classes"]
    assert 0 <= est["neg_num_classes"]["auroc"] <= 1  # scores are ranked, not range-checked
    # collapse results are cached in the store and reused
    with Store(tmp_path / "an", readonly=True) as st:
        assert len(st.classes(a.run.id, collapse_key("exact"))) == 6
        assert len(st.grades(a.run.id, collapse_key("exact"), "auto")) == 6
    (b,) = analyze_dir(tmp_path / "an", collapse="exact", n_boot=50)
    assert [q.labels for q in b.questions] == [q.labels for q in a.questions]


def test_a_run_that_mostly_answers_nothing_is_called_silent(qfile: Path, tmp_path: Path) -> None:
    """Four of six questions answered with nothing on every sample: their prediction is no
    answer, so the run is silent (no_prediction_rate 4/6 > 1/2) and the audit says its smECE
    means nothing; with one such question the run is not silent and the audit says nothing."""
    from semcal.analysis import analyze_dir
    from semcal.cli import main as cli_main
    from semcal.cli.format import format_audit

    def quiet_on(tags: set[str]):
        def respond(p, i, params):
            return "" if s.tag_of(p) in tags else None
        return respond

    for name, tags, rate in (("four", {"ZQA", "ZQB", "ZQC", "ZQD"}, 4 / 6), ("one", {"ZQA"}, 1 / 6)):
        s = FakeSampler(respond=quiet_on(tags))
        run(_spec(qfile), tmp_path / name, sampler=s, quiet=True)
        (a,) = analyze_dir(tmp_path / name, n_boot=0)
        assert a.summary["no_prediction_rate"] == pytest.approx(rate)
        assert sum(q.prediction == NO_ANSWER for q in a.questions) == len(tags)
        line = "  silent: the prediction is no answer on 66.7% of the questions (more than 50%)"
        assert (line in format_audit(a)) == (name == "four")
        assert cli_main(["report", str(tmp_path / name), "-q"]) == 0
        html = (tmp_path / name / "report.html").read_text()
        assert ("Silent run: the prediction is no answer on 66.7% of the" in html) == (name == "four")
        assert f"<td>questions whose prediction is no answer</td><td>{round(100 * rate)}%</td>" in html


def test_b_audit_and_agreement_with_a_second_b(qfile: Path, tmp_path: Path) -> None:
    """The B audit counts classes, singletons, no-answers, refusals and ties; --audit-against
    lists the samples two Bs group differently; the export carries each sample and label."""
    import json

    from semcal.analysis import analyze_dir

    run(_spec(qfile, samples=10), tmp_path / "au", sampler=FakeSampler(), quiet=True)
    (a,) = analyze_dir(tmp_path / "au", n_boot=0, audit_against="exact")
    au = a.audit
    n_classes = [len(set(q.labels)) for q in a.questions]
    assert au["classes_per_question"] == pytest.approx(sum(n_classes) / 6)
    assert au["no_answer_rate"] == 0 and au["refusal_rate"] == 0
    ties = sum(1 for q in a.questions if sorted(Counter(q.labels).values())[-2:].count(q.count) == 2)
    assert au["tie_rate"] == pytest.approx(ties / 6)
    assert 0 <= au["singleton_share"] <= 1
    # the answers are one word each: exact and auto group them the same way
    assert au["against"]["against"] == "exact" and au["against"]["agreement"] == 1.0
    assert au["against"]["disagreements"] == 0
    row = a.table()[0]
    samples = json.loads(row["samples"])
    assert len(samples) == 10 and {"text", "label"} <= set(samples[0])
    assert samples[0]["text"].startswith("The answer is")


# ----------------------------------------------------------------------------- model estimators


def _est_dump(out: Path) -> dict:
    with Store(out, readonly=True) as st:
        (info,) = st.runs()
        return st.model_estimates(info.id, collapse_key("auto"))


def test_model_estimators_stored_and_analyzed(qfile: Path, tmp_path: Path) -> None:
    from semcal.analysis import analyze_dir

    s = EstSampler()
    res = run(_spec(qfile, model_estimators=True), tmp_path / "me", sampler=s, quiet=True)
    assert res.complete and res.estimates_new == 6
    # one P(True) pass and one verbalised generation per question, about its plurality answer
    assert sorted(r.split(":")[0] for r in s.ratings) == ["p_true"] * 6 + ["verbal"] * 6
    est = _est_dump(tmp_path / "me")
    assert set(est) == {t.lower() for t in GOLD}
    assert est["zqa"]["p_true"][0] == pytest.approx(0.9)
    assert est["zqa"]["verbalized"][0] == pytest.approx(0.7)
    assert est["zqe"]["p_true"][0] == pytest.approx(0.3)  # blue/green rated; gold is red
    assert est["zqe"]["verbalized"][0] == pytest.approx(0.2)
    assert "p_true:Paris" in s.ratings  # the extracted short answer, not the whole sentence
    (a,) = analyze_dir(tmp_path / "me", n_boot=20)
    rows = {e["estimator"]: e for e in a.estimators}
    assert rows["p_true"]["n"] == 6 and rows["verbalized"]["n"] == 6
    for q in a.questions:
        assert q.estimates["p_true"] == pytest.approx(0.9 if q.correct else 0.3)
        assert q.estimates["verbalized"] == pytest.approx(0.7 if q.correct else 0.2)
    assert rows["p_true"]["auroc"] == pytest.approx(1.0)  # the fake rates perfectly
    # another collapse predicts other labels: the stored values are not reused for it
    (b,) = analyze_dir(tmp_path / "me", collapse="exact", estimators="all", n_boot=20)
    assert {e["estimator"]: e["n"] for e in b.estimators}["p_true"] == 0


def test_model_estimates_leave_b_classes_for_the_analysis(
    qfile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner's B classes (samples and greedy completion) are cached under the B's key as
    the analysis computes them, and the analysis reads them instead of running B again."""
    import semcal.analysis.label as label_mod
    from semcal.analysis import analyze_dir

    run(_spec(qfile, model_estimators=True), tmp_path / "me", sampler=EstSampler(), quiet=True)
    with Store(tmp_path / "me", readonly=True) as st:
        (info,) = st.runs()
        cached = st.classes(info.id, collapse_key("auto"))
        assert st.model_estimates(info.id, "auto") == {}  # no longer under the bare name
    assert len(cached) == 6 and all(c[0] == 6 and c[3] is not None for c in cached.values())
    # what the analysis computes itself, on a copy with no cache
    (fresh,) = analyze_dir(tmp_path / "me", n_boot=0, cache=False)
    # the labels the analysis reads are B's: with B made unusable it still analyses the run
    def no_b(*a, **k):
        raise AssertionError("B ran a second time")

    monkeypatch.setattr(label_mod, "_make_collapse", no_b)
    (a,) = analyze_dir(tmp_path / "me", n_boot=0)
    assert [q.labels for q in a.questions] == [q.labels for q in fresh.questions]
    assert [q.greedy_label for q in a.questions] == [q.greedy_label for q in fresh.questions]
    assert {e["estimator"]: e["n"] for e in a.estimators}["p_true"] == 6


def test_model_estimates_under_the_bare_b_name_are_still_read(qfile: Path, tmp_path: Path) -> None:
    """A store whose estimates were saved under the bare B name (before they were keyed)."""
    from semcal.analysis import analyze_dir

    run(_spec(qfile, model_estimators=True), tmp_path / "old", sampler=EstSampler(), quiet=True)
    with Store(tmp_path / "old") as st:
        with st.transaction() as c:
            c.execute("UPDATE model_estimates SET collapse='auto'")
    (a,) = analyze_dir(tmp_path / "old", n_boot=0)
    assert {e["estimator"]: e["n"] for e in a.estimators}["p_true"] == 6


def test_model_estimators_resume(qfile: Path, tmp_path: Path) -> None:
    ref = tmp_path / "ref"
    run(_spec(qfile, model_estimators=True), ref, sampler=EstSampler(), quiet=True)
    # samples first without estimates, then the same run with them: only estimates are added
    out = tmp_path / "later"
    run(_spec(qfile), out, sampler=FakeSampler(), quiet=True)
    assert _est_dump(out) == {}
    s = EstSampler()
    res = run(_spec(qfile, model_estimators=True), out, sampler=s, quiet=True)
    assert res.samples_new == 0 and res.estimates_new == 6 and s.calls == []
    assert _est_dump(out) == _est_dump(ref)
    # killed in the middle of rating: the resumed run computes the missing values only
    out2 = tmp_path / "killed"
    res = run(_spec(qfile, model_estimators=True), out2,
              sampler=EstSampler(interrupt_rating_after=5), quiet=True)
    assert res.interrupted
    partial = _est_dump(out2)
    assert 0 < len(partial) < 6
    s2 = EstSampler()
    res = run(_spec(qfile, model_estimators=True), out2, sampler=s2, quiet=True)
    assert res.complete and res.estimates_new == 6 - len(partial)
    assert len(s2.ratings) == 2 * (6 - len(partial))
    assert _est_dump(out2) == _est_dump(ref)
    assert _dump(out2) == _dump(ref)
    # complete: nothing more is asked of the model
    s3 = EstSampler()
    res = run(_spec(qfile, model_estimators=True), out2, sampler=s3, quiet=True)
    assert res.estimates_new == 0 and s3.ratings == [] and s3.calls == []


def test_model_estimators_spec_and_cli_flag(tmp_path: Path) -> None:
    from semcal.cli import _spec_from_args, build_parser
    from semcal.errors import InputError

    args = build_parser().parse_args(
        ["run", "--model", "gemma-3-270m", "--out", str(tmp_path), "--model-estimators"])
    assert _spec_from_args(args).model_estimators is True
    args = build_parser().parse_args(["run", "--model", "gemma-3-270m", "--out", str(tmp_path)])
    spec = _spec_from_args(args)
    assert spec.model_estimators is False
    # not part of the run key: turning it on resumes the same run
    assert spec.key_fields() == spec.replace(model_estimators=True).key_fields()
    with pytest.raises(InputError, match="model_estimators"):
        RunSpec(model="m", model_estimators="yes")  # type: ignore[arg-type]
    # a stored spec from before the field existed still loads
    d = spec.to_dict()
    d.pop("model_estimators")
    assert RunSpec.from_dict(d).model_estimators is False


def test_schema_v1_store_is_migrated(qfile: Path, tmp_path: Path) -> None:
    from semcal.store import SCHEMA_VERSION

    out = tmp_path / "old"
    run(_spec(qfile), out, sampler=FakeSampler(), quiet=True)
    with Store(out) as st:  # make it look like a version-1 store
        with st.transaction() as c:
            c.execute("DROP TABLE model_estimates")
            c.execute("DROP TABLE run_sessions")
            c.execute("ALTER TABLE runs RENAME COLUMN samples TO n_samples")
            c.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    with Store(out, readonly=True) as st:  # read-only: read as it is, never written
        (info,) = st.runs()
        assert st.model_estimates(info.id, collapse_key("auto")) == {}
        assert st.sessions(info.id) == []  # sampled before sessions were recorded
        assert len(st.done_ids(info.id)) == 6 and info.samples == 6
    with Store(out) as st:
        v = st.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        assert int(v) == SCHEMA_VERSION == 5
        assert st.sessions(info.id) == []
        assert st.get_run(info.id).samples == 6
        assert st.model_estimates(info.id, collapse_key("auto")) == {}
    res = run(_spec(qfile, model_estimators=True), out, sampler=EstSampler(), quiet=True)
    assert res.estimates_new == 6 and len(_est_dump(out)) == 6


@pytest.mark.slow
def test_model_estimators_real_model(tmp_path: Path, smollm2_sampler) -> None:
    """smollm2-135m-instruct on 2 questions × 3 samples: P(True) and verbalised confidence
    are stored for each question's plurality answer and reach the analysis table."""
    from semcal.analysis import analyze_dir

    spec = RunSpec(model="smollm2-135m-instruct", dataset="world", style="concise", samples=3,
                   limit=2, max_tokens=12, model_estimators=True)
    res = run(spec, tmp_path / "real", sampler=smollm2_sampler, quiet=True)
    assert res.complete and res.estimates_new == 2
    est = _est_dump(tmp_path / "real")
    assert len(est) == 2
    for per_q in est.values():
        assert set(per_q) == {"p_true", "verbalized"}
        for value, label, n in per_q.values():
            assert n == 3 and label
            assert value is None or 0.0 <= value <= 1.0
    answered = [v for v in est.values() if v["p_true"][1] != NO_ANSWER]
    # llama.cpp gives next-token log-probs, and the chat prompt makes True/False likely
    assert all(v["p_true"][0] is not None for v in answered)
    (a,) = analyze_dir(tmp_path / "real", n_boot=10)
    rows = {e["estimator"]: e for e in a.estimators}
    assert rows["p_true"]["n"] == sum(q.estimates.get("p_true") is not None for q in a.questions)
    assert rows["p_true"]["n"] == len(answered)


def test_bundled_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch) -> None:
    """`--dataset demo` run from a directory that holds a `demo/` folder (e.g. the demo's own
    output) still means the bundled set; `./demo` names the folder."""
    from semcal.errors import InputError
    from semcal.runner import load_spec_questions
    from semcal.spec import RunSpec

    (tmp_path / "demo").mkdir()
    monkeypatch.chdir(tmp_path)
    qs = load_spec_questions(RunSpec(model="gemma-3-270m", dataset="demo", limit=3))
    assert len(qs) == 3 and all(q.question for q in qs)
    with pytest.raises(InputError, match="folder"):
        load_spec_questions(RunSpec(model="gemma-3-270m", dataset="./demo"))


def test_resume_from_anywhere_without_the_data_file(tmp_path: Path, monkeypatch) -> None:
    """A run started with relative paths resumes from another directory after its data file
    was deleted (the paths are stored absolute, the questions come from the store), and
    ``m.gguf``, ``./m.gguf`` and the absolute path are one run. Real model (smollm2-135m)."""
    # its own engines: the runner and `semcal resume` open the model by its path, as a user's would
    from semcal.backends.models import resolve_model
    from semcal.cli import main as cli_main

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "m.gguf").symlink_to(resolve_model("smollm2-135m-instruct").path)
    (a / "q.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "question": q, "answer": g}) + "\n"
        for i, (q, g) in enumerate([("What is the capital of France?", "Paris"),
                                    ("What is the capital of Italy?", "Rome"),
                                    ("What is the capital of Spain?", "Madrid")])))
    monkeypatch.chdir(a)
    kw = dict(dataset="q.jsonl", samples=2, max_tokens=8, style="concise", seed=1)
    spec = RunSpec(model="m.gguf", **kw)
    assert spec.key_fields() == RunSpec(model="./m.gguf", **kw).key_fields()
    assert spec.key_fields() == RunSpec(model=str(a / "m.gguf"), **kw).key_fields()
    ref = run(spec, tmp_path / "ref", quiet=True)
    assert ref.complete

    def stop_after_one(done: int, total: int) -> None:
        if done >= 1:
            raise KeyboardInterrupt

    cut = run(spec, tmp_path / "exp", quiet=True, on_batch=stop_after_one)
    assert cut.interrupted and cut.n_done == 1
    (a / "q.jsonl").unlink()
    monkeypatch.chdir(b)
    assert cli_main(["resume", str(tmp_path / "exp"), "-q"]) == 0
    with Store(tmp_path / "exp", readonly=True) as st:
        (info,) = st.runs()
        assert st.progress(info.id)[:2] == (3, 3) and info.finished is not None
        assert info.spec["model"] == str((a / "m.gguf").resolve())
    got, want = _dump(tmp_path / "exp"), _dump(tmp_path / "ref")
    assert got["samples"] == want["samples"] and got["greedy"] == want["greedy"]


def test_every_sampling_session_records_its_engine(qfile: Path, tmp_path: Path) -> None:
    """A run records which engine build drew its samples, once per start or resume; analysis
    lists the builds and the CLI warns when a run mixes two."""
    import subprocess
    import sys

    from semcal.analysis import analyze_dir
    from semcal.backends import engine_version

    out = tmp_path / "eng"
    spec = RunSpec(model="mock", backend="mock", dataset=str(qfile), samples=4, seed=1,
                   style="concise", greedy=False)
    run(spec, out, quiet=True)
    with Store(out) as st:
        (info,) = st.runs()
        (s1,) = st.sessions(info.id)
    assert s1["engine"] == engine_version("mock") == "mock" and s1["semcal_version"]
    run(spec, out, quiet=True)  # complete: nothing is sampled, no session
    with Store(out) as st:
        assert len(st.sessions(info.id)) == 1
        st.add_session(info.id, "llama-cpp-python 0.0.1")  # as if resumed with another build
    (a,) = analyze_dir(out, n_boot=0)
    assert a.audit["engines"] == ["mock", "llama-cpp-python 0.0.1"]
    r = subprocess.run([sys.executable, "-m", "semcal.cli", "analyze", str(out), "--n-boot", "0",
                        "-q"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "sampled by more than one engine build (mock; llama-cpp-python 0.0.1)" in r.stdout
    # the first session stored every question; the second (added by hand) stored nothing
    assert (a.audit["sampling"]["timed"], a.audit["sampling"]["questions"]) == (1, 6)
    assert ", 6 questions finished; 1 session not timed (" in r.stdout
    # a sampler passed in by the caller is named by its class
    out2 = tmp_path / "passed"
    run(_spec(qfile), out2, sampler=FakeSampler(), quiet=True)
    with Store(out2) as st:
        (info2,) = st.runs()
        assert [x["engine"] for x in st.sessions(info2.id)] == ["FakeSampler (passed in)"]


def test_executors_are_one_protocol_and_do_not_import_the_runner() -> None:
    """Every executor kind a spec may name has an opener; a sampler passed to the runner runs
    in this process, an executor (the Ray pool) as it is; and the executors, the Ray one
    included, import nothing of the runner (no import cycle between them)."""
    import subprocess
    import sys

    from semcal import executors, spec

    assert set(executors.EXECUTORS) == set(spec.EXECUTORS)
    fake = FakeSampler()
    local = executors.executor_for(fake)
    assert isinstance(local, executors.LocalExecutor) and local.sampler is fake
    assert isinstance(local, executors.Executor) and not isinstance(fake, executors.Executor)
    assert executors.executor_for(local) is local
    for name in ("sampler", "count_tokens_many", "run_fixed", "run_adaptive", "close"):
        assert hasattr(executors.RayPool, name), name
    from semcal.ray_executor import RayPool

    assert RayPool is executors.RayPool
    code = ("import sys, semcal.executors, semcal.ray_executor; "
            "print(sorted(m for m in sys.modules if m.startswith('semcal.runner')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
