"""Parts registered from outside semcal work end to end (issue 25): a grader through
``semcal analyze --grader``, a B through ``--collapse``, a metric through ``summarize``, a
question format through ``semcal run --format`` and detection; and what
semcal needs to know about a part (a metric's range and batched form, a B's worker-process
safety) is metadata of its registration, not a side table."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from semcal import analysis
from semcal.cli import main
from semcal.collapse import COLLAPSES
from semcal.data import ADAPTERS, Adapter, detect_adapter, register_adapter
from semcal.data.adapters import Parsed, Row
from semcal.grade import GRADER_REGISTRY, Grade, plurality
from semcal.metrics import METRICS, bootstrap_ci, summarize
from semcal.registry import Registry
from semcal.types import NO_ANSWER, Collapsed, Question


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fakes import GOLD, FakeSampler, make_spec
    from semcal.runner import run

    tmp = tmp_path_factory.mktemp("plugins")
    qf = tmp / "qs.jsonl"
    qf.write_text("".join(json.dumps({"id": t.lower(), "question": f"{t} which one?",
                                      "answers": [g]}) + "\n" for t, g in GOLD.items()))
    run(make_spec(qf), tmp / "exp", sampler=FakeSampler(), quiet=True)
    return tmp / "exp"


def _analyze_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    capsys.readouterr()
    rc = main(["analyze", *argv, "--json", "--n-boot", "0"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    (row,) = json.loads(out)
    return row


class _EveryoneWins:
    """A grader that calls every answered plurality correct."""

    name = "everyone_wins"

    def __call__(self, question: Question, collapsed: Collapsed,
                 texts: Sequence[str] | None = None) -> Grade:
        label, count = plurality(collapsed.labels)
        return Grade(label, count, len(collapsed.labels), label != NO_ANSWER)


@pytest.fixture()
def mine_grader() -> Iterator[str]:
    GRADER_REGISTRY.register("mine", _EveryoneWins)
    yield "mine"
    GRADER_REGISTRY.unregister("mine")


def test_a_grader_registered_after_import_is_used_by_analyze(
    run_dir: Path, mine_grader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _analyze_json(capsys, str(run_dir))
    mine = _analyze_json(capsys, str(run_dir), "--grader", mine_grader)
    assert base["accuracy"] < 1.0
    assert mine["grader"] == "mine" and mine["accuracy"] == 1.0
    # and an unknown one is still one line naming the known graders, the new one among them
    rc = main(["analyze", str(run_dir), "--grader", "nope", "--n-boot", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "unknown grader 'nope'" in err and "mine" in err


def _first_letter(*, style: str | None = None) -> object:
    """A B: the first letter of the answer, lower-cased."""

    def collapse(question: Question, texts: Sequence[str]) -> Collapsed:
        labels = tuple(t.strip()[:1].lower() or NO_ANSWER for t in texts)
        return Collapsed(labels, frozenset(a.strip()[:1].lower() for a in question.answers))

    return collapse


def test_a_collapse_registered_from_outside_is_used_by_analyze(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    COLLAPSES.register("mine", _first_letter)
    try:
        row = _analyze_json(capsys, str(run_dir), "--collapse", "mine")
    finally:
        COLLAPSES.unregister("mine")
    assert row["collapse"] == "mine"
    # ZQE's blue/green are one class "b"/"g"... but ZQC's 4/5/6 stay apart: accuracy is defined
    assert 0.0 <= row["accuracy"] <= 1.0 and row["n"] == 6


def test_worker_process_safety_is_metadata_of_the_registered_collapse(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not hasattr(analysis, "PARALLEL_COLLAPSES")
    assert {n for n in COLLAPSES if COLLAPSES.meta(n).get("parallel")} == {"auto", "exact", "math"}
    seen: list[str] = []
    monkeypatch.setattr(analysis, "_fork_pool", lambda tasks, what: seen.append(what) or None)
    big = analysis.PARALLEL_MIN_TEXTS
    COLLAPSES.register("mine_par", _first_letter, parallel=True)
    COLLAPSES.register("mine_serial", _first_letter)
    try:
        analysis._CollapsePool.open("mine_serial", {}, big)
        assert seen == []
        analysis._CollapsePool.open("mine_par", {}, big)
        assert seen == ["collapsing"]
    finally:
        COLLAPSES.unregister("mine_par")
        COLLAPSES.unregister("mine_serial")


class _JudgeFirstWord:
    """A B that reads responses with a judge model: the judge's reply's first word."""

    judges: list[str] = []

    def __init__(self, sampler: object, style: str | None = None, tool: object = None) -> None:
        self.sampler, self.tool = sampler, tool
        self.judges.append(getattr(sampler, "model_name", repr(sampler)))

    def __call__(self, question: Question, texts: Sequence[str]) -> Collapsed:
        return Collapsed(tuple((t.split() or [NO_ANSWER])[0].lower() for t in texts),
                         frozenset(a.lower() for a in question.answers))


def test_a_judge_b_and_its_object_options_are_metadata_of_the_registration(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A B registered with judge=True needs a judge model wherever semcal checks (a run spec
    without a [judge] table is refused; analyze hands it the judge model) and its object
    options (objects=...) stay out of its cache key, as the built-in judge's sampler does."""
    from fakes import FakeSampler, make_spec
    from semcal.collapse import collapse_key, uses_judge
    from semcal.errors import InputError

    COLLAPSES.register("mine_judge", _JudgeFirstWord, judge=True, objects=("sampler", "tool"))
    try:
        assert uses_judge("mine_judge") and not uses_judge("auto") and not uses_judge("nope")
        key = collapse_key("mine_judge", {"sampler": FakeSampler(), "tool": object(), "k": 2})
        assert key.endswith(':{"k": 2}') and "object at" not in key
        with pytest.raises(InputError, match='collapse = "mine_judge" needs a \\[judge\\] table'):
            make_spec(run_dir / "qs.jsonl", collapse="mine_judge")
        row = _analyze_json(capsys, str(run_dir), "--collapse", "mine_judge",
                            "--judge-model", "smollm2-135m-instruct")
        assert row["collapse"] == "mine_judge"
        assert _JudgeFirstWord.judges == ["smollm2-135m-instruct"]  # analyze opened the judge
    finally:
        COLLAPSES.unregister("mine_judge")


def _half_wrong(conf: np.ndarray, correct: np.ndarray) -> float:
    return float(np.mean(np.asarray(conf) > 0.5) - 0.25)


def test_a_metric_registered_from_outside_is_summarized_with_an_interval() -> None:
    conf, correct = [0.2, 0.9, 0.6, 0.7, 0.1, 0.95], [0, 1, 1, 0, 0, 1]
    METRICS.register("above_half", _half_wrong)  # no metadata at all
    try:
        out = summarize(conf, correct, n_boot=50)  # raised KeyError before (no METRIC_RANGES)
        assert out["above_half"] == pytest.approx(_half_wrong(np.array(conf), np.array(correct)))
        assert out["above_half_lo"] <= out["above_half_hi"]
    finally:
        METRICS.unregister("above_half")
    # a range clips "basic" intervals; a batched form is used for the resamples
    calls: list[int] = []

    def batched(c: np.ndarray, y: np.ndarray, index: np.ndarray) -> np.ndarray:
        calls.append(index.shape[0])
        return np.mean(c[index] > 0.5, axis=1) - 0.25

    METRICS.register("above_half", _half_wrong, range=(0.0, 0.3), batched=batched)
    try:
        out = summarize(conf, correct, n_boot=50, method="basic")
        assert calls and sum(calls) == 50
        assert 0.0 <= out["above_half_lo"] <= out["above_half_hi"] <= 0.3
        assert bootstrap_ci("above_half", conf, correct, n_boot=50, method="basic")[1] <= 0.3
    finally:
        METRICS.unregister("above_half")


def test_metric_metadata_replaces_the_side_tables() -> None:
    import semcal.metrics.bootstrap as B

    assert not hasattr(B, "METRIC_RANGES") and not hasattr(B, "_BATCHED")
    assert METRICS.meta("smece")["range"] == (0.0, 1.0)
    assert METRICS.meta("overconfidence")["range"] == (-1.0, 1.0)
    assert METRICS.meta("auroc")["needs"] == "score"
    assert all(METRICS.meta(n)["needs"] == "probability" for n in METRICS if n != "auroc")
    assert all(callable(METRICS.meta(n).get("batched")) for n in METRICS)
    # summarize still reports smECE's bandwidth and bins ECE as asked
    out = summarize([0.2, 0.9, 0.6], [0, 1, 1], n_boot=0, n_bins=2)
    assert out["smece_sigma"] > 0
    assert out["ece"] == pytest.approx(B.ece(np.array([0.2, 0.9, 0.6]), np.array([0, 1, 1]),
                                             n_bins=2))


def test_registry_metadata_round_trip() -> None:
    r: Registry = Registry("widget")
    r.register("a", len, colour="red")
    r.register("b", len)
    assert r.meta("a") == {"colour": "red"} and r.meta("b") == {}
    r.meta("a")["colour"] = "blue"  # a copy: the registration is unchanged
    assert r.meta("a") == {"colour": "red"}
    r.unregister("a")
    with pytest.raises(Exception, match="unknown widget 'a'"):
        r.meta("a")


# ----------------------------------------------------------------------------- a question format


def _parse_mine(row: Row, where: str) -> Parsed:
    """Layout of our own: ``key`` / ``ask`` / ``reply`` (gold answers split on '|')."""
    golds = [g.strip() for g in str(row.need("reply")).split("|") if g.strip()]
    return Parsed(str(row.need("ask")), golds, id=str(row.need("key")), task="qa")


@pytest.fixture()
def mine_format() -> Iterator[str]:
    register_adapter(Adapter("mine", "qa", _parse_mine, "key/ask/reply test layout"),
                     aliases=("my_layout",), detect=lambda row: row.has("ask") and row.has("reply"))
    yield "mine"
    ADAPTERS.unregister("mine")


def _run_and_table(tmp: Path, capsys: pytest.CaptureFixture[str], name: str,
                   *fmt: str) -> list[dict[str, str]]:
    """``semcal run`` (mock backend) on the file, then ``semcal analyze --csv``: its rows."""
    rc = main(["run", "--model", "mock", "--backend", "mock", "--dataset", str(tmp / "q.jsonl"),
               *fmt, "--out", str(tmp / name), "--samples", "4", "--style", "concise", "-q"])
    assert rc == 0, capsys.readouterr().err
    table = tmp / f"{name}.csv"
    rc = main(["analyze", str(tmp / name), "--csv", str(table), "--n-boot", "0", "-q"])
    assert rc == 0, capsys.readouterr().err
    with table.open(newline="") as fh:
        return sorted(csv.DictReader(fh), key=lambda r: r["qid"])


def test_a_format_registered_from_outside_is_read_by_run_and_detected(
    tmp_path: Path, mine_format: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"key": "k1", "ask": "Capital of France?", "reply": "Paris"},
            {"key": "k2", "ask": "Capital of Italy?", "reply": "Rome|Roma"},
            {"key": "k3", "ask": "Capital of Spain?", "reply": "Madrid"}]
    (tmp_path / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert detect_adapter(rows[0]).name == "mine"
    assert detect_adapter({"question": "q", "answer": ["a"]}).name == "nq_open"  # unchanged
    for name, fmt in (("named", ("--format", mine_format)), ("alias", ("--format", "My-Layout")),
                      ("detected", ())):
        table = _run_and_table(tmp_path, capsys, name, *fmt)
        assert [r["qid"] for r in table] == ["k1", "k2", "k3"], name
        assert [r["question"] for r in table] == [r["ask"] for r in rows]
        assert [r["gold"] for r in table] == ["Paris", "Rome | Roma", "Madrid"]
        assert all(r["task"] == "qa" and int(r["n_samples"]) == 4 for r in table)


def test_an_unregistered_format_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "mine" not in ADAPTERS  # the fixture above cleaned up after itself
    (tmp_path / "q.jsonl").write_text(json.dumps({"key": "k", "ask": "a?", "reply": "b"}) + "\n")
    capsys.readouterr()
    rc = main(["run", "--model", "mock", "--backend", "mock", "--dataset",
               str(tmp_path / "q.jsonl"), "--format", "mine", "--out", str(tmp_path / "o"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown question format 'mine'" in err and "nq_open" in err


def test_what_semcal_needs_to_know_about_a_backend_is_metadata_of_its_registration(
    tmp_path: Path,
) -> None:
    """A backend registered from outside with ``server=True`` is read as a server (its model
    name is recorded as given, a judge may name a base URL for it), and one with
    ``local_models=True`` has its model name resolved before anything loads; no check in
    semcal names a built-in backend."""
    from semcal.backends import BACKENDS
    from semcal.errors import InputError
    from semcal.runner import preflight
    from semcal.spec import JudgeSpec, RunSpec

    engine = BACKENDS["mock"]
    BACKENDS.register("my_server", engine, server=True)
    BACKENDS.register("my_local", engine, local_models=True)
    try:
        given = "./no-such-dir/served-model.gguf"  # a local path for a local backend
        assert RunSpec(model=given, backend="my_server", dataset="world").model_id() == given
        assert RunSpec(model=given, backend="mock", dataset="world").model_id() != given
        JudgeSpec(model="m", backend="my_server", base_url="http://127.0.0.1:9")
        with pytest.raises(InputError, match="base_url needs a server backend"):
            JudgeSpec(model="m", backend="mock", base_url="http://127.0.0.1:9")
        with pytest.raises(InputError, match="no-such-model"):
            preflight(RunSpec(model="no-such-model", backend="my_local", dataset="world", limit=1))
        preflight(RunSpec(model="no-such-model", backend="mock", dataset="world", limit=1))
    finally:
        BACKENDS.unregister("my_server")
        BACKENDS.unregister("my_local")
    assert grep_free_of_backend_names()


def grep_free_of_backend_names() -> bool:
    """No module outside semcal/backends compares a backend with a built-in name."""
    import re

    import semcal

    root = Path(semcal.__file__).parent
    pattern = re.compile(r"""backend\s*[!=]=\s*["'](llamacpp|hf|openai|vllm|mock)["']""")
    hits = [f"{p.relative_to(root)}: {m.group(0)}" for p in root.rglob("*.py")
            if "backends" not in p.parts for m in pattern.finditer(p.read_text())]
    assert not hits, hits
    return True


def test_a_comparison_registered_from_outside_is_planned_and_judged_on_its_axis() -> None:
    """A reproduce comparison is a registry entry: one registered here adds its runs to the
    plan of an experiment that names it, and its verdicts pair the runs that differ on its
    axis only; an unregistered name is one error naming the known ones."""
    from semcal.errors import InputError
    from semcal.reproduce import ExperimentSpec, ReproduceResult, RunOutcome, plan
    from semcal.reproduce.comparisons import COMPARISON_REGISTRY, Comparison
    from semcal.reproduce.summary import comparison_verdicts

    def sentences_at_two_temperatures(spec, m, ds, add) -> None:
        if m.role == "instruct":
            for t in (0.5, 1.0):
                add(m, ds, "sentence", t)

    with pytest.raises(InputError, match="unknown comparison 'warmth'.*known: styles"):
        ExperimentSpec(comparisons=("warmth",))
    COMPARISON_REGISTRY.register("warmth", Comparison(per_dataset=sentences_at_two_temperatures,
                                                      axis="temperature"))
    try:
        exp = ExperimentSpec(datasets=("world",), comparisons=("warmth",))
        runs = plan(exp)
        assert [(r.model.name, r.style, r.temperature, r.comparisons) for r in runs] == [
            ("smollm2-135m-instruct", "sentence", 0.5, ("warmth",)),
            ("smollm2-135m-instruct", "sentence", 1.0, ("warmth",))]
        result = ReproduceResult(out_dir=Path("."), spec=exp)
        for i, r in enumerate(runs):
            o = RunOutcome(r, ["a", "b"], np.array([0.5, 0.9]), np.array([True, False]))
            o.metrics = {"n": 2, "smece": 0.1 + 0.5 * i, "smece_lo": 0.05 + 0.5 * i,
                         "smece_hi": 0.15 + 0.5 * i}
            result.runs.append(o)
        (v,) = comparison_verdicts(result)
        assert v["comparison"] == "warmth" and v["apart"] and v["lower"] == "a"
    finally:
        COMPARISON_REGISTRY.unregister("warmth")
