"""`semcal reproduce` with several Bs and with hand labels (issue 24, the reproduce side):
the summary says whether a comparison's conclusion changes between the Bs (computed from the
same stored samples), and shows the B check of a run that has a label file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from semcal.errors import InputError
from semcal.label.labels import HandLabels, label_path, write_labels
from semcal.reproduce import ExperimentSpec, ModelEntry, experiment_from_dict, plan, reproduce
from semcal.reproduce.spec import MAX_BS
from semcal.store import Store

QUESTIONS = 30


def _dataset(tmp_path: Path) -> str:
    data = tmp_path / "cities.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Which city is number {i}?",
                                        "answer": "Paris"}) + "\n" for i in range(QUESTIONS)))
    return str(data)


def _model(name: str, role: str, weights: dict[str, float]) -> ModelEntry:
    # every prompt holds the tag "city": the mock answers each question from ``weights``
    return ModelEntry(name, role, backend_options={"template": "{answer}",
                                                    "script": {"city": weights}})


def _experiment(tmp_path: Path, instruct: dict[str, float], collapse) -> ExperimentSpec:
    return ExperimentSpec(
        name="bchk", backend="mock", datasets=(_dataset(tmp_path),), comparisons=("tuning",),
        styles=("concise",), questions=QUESTIONS, samples=8, k_shot=0, n_boot=200,
        collapse=collapse,
        models=(_model("b", "base", {"Paris.": 1.0}), _model("i", "instruct", instruct)))


def _sensitivity_section(md: str) -> str:
    start = md.index("## Do the conclusions depend on B?")
    return md[start:md.index("\n## ", start + 1)]


def test_one_b_keeps_the_summary_as_it_was(tmp_path: Path) -> None:
    res = reproduce(_experiment(tmp_path, {"Paris.": 1.0, "Rome.": 1.0}, "auto"),
                    tmp_path / "out", quiet=True)
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "depend on B" not in md and "B checked by hand" not in md
    assert "collapse `auto`, seed" in md
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert "b_sensitivity" not in data
    assert all("by_collapse" not in r and "b_check" not in r["metrics"] for r in data["runs"])
    assert all(not o.by_collapse for o in res.runs)


def test_bs_that_group_alike_agree(tmp_path: Path) -> None:
    """"Paris." and "Rome." are two answers under both Bs: the same conclusion under each."""
    res = reproduce(_experiment(tmp_path, {"Paris.": 1.0, "Rome.": 1.0}, ["auto", "exact"]),
                    tmp_path / "out", quiet=True)
    assert [set(o.by_collapse) for o in res.runs] == [{"exact"}, {"exact"}]
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "collapse `auto` (also compared: `exact`)" in md
    sec = _sensitivity_section(md)
    assert "The Bs agree: every comparison reaches the same conclusion" in sec
    assert "changes with B" not in sec
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    (row,) = data["b_sensitivity"]
    assert row["comparison"] == "tuning" and row["agree"] is True
    assert row["verdicts"]["auto"] == row["verdicts"]["exact"]
    for r in data["runs"]:
        assert r["by_collapse"]["exact"]["collapse"] == "exact"
        assert r["by_collapse"]["exact"]["n"] == r["metrics"]["n"] == QUESTIONS


def test_a_b_that_splits_an_answer_flips_the_conclusion(tmp_path: Path) -> None:
    """"Paris." and "The city of Paris." are one answer under auto (both models: confidence 1,
    always right: no conclusion) and two under exact (the instruct model's confidence falls
    towards a half: its smECE interval moves clear of the base model's)."""
    exp = _experiment(tmp_path, {"Paris.": 1.0, "The city of Paris.": 1.0}, ["auto", "exact"])
    res = reproduce(exp, tmp_path / "out", quiet=True)
    md = (tmp_path / "out" / "summary.md").read_text()
    sec = _sensitivity_section(md)
    assert "**The conclusion changes with B** for 1 of 1 comparisons" in sec
    line = next(ln for ln in sec.splitlines() if ln.startswith("- tuning"))
    assert "b concise vs i concise" in line
    assert "`auto`: no conclusion" in line
    assert "`exact`: smECE b concise < i concise" in line
    # the tables show the primary B's numbers: the samples were not drawn again
    inst = next(o for o in res.runs if o.run.model.name == "i")
    assert inst.metrics["collapse"] == "auto" and inst.metrics["mean_confidence"] == 1.0
    assert inst.by_collapse["exact"]["mean_confidence"] < 0.9
    with Store(tmp_path / "out") as store:
        assert len(store.runs()) == 2
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    (row,) = data["b_sensitivity"]
    assert row["agree"] is False
    assert row["verdicts"] == {"auto": "no conclusion", "exact": "smECE b concise < i concise"}


def test_a_run_with_hand_labels_shows_its_b_check(tmp_path: Path) -> None:
    out = tmp_path / "out"
    exp = _experiment(tmp_path, {"Paris.": 1.0, "The city of Paris.": 1.0}, ["auto", "exact"])
    reproduce(exp, out, quiet=True)
    run = next(p.spec.run_name for p in plan(exp) if p.model.name == "i")
    with Store(out) as store:
        info = next(r for r in store.runs() if r.name == run)
        samples = {qid: [s.index for s in rows] for qid, rows in store.iter_samples(info.id)}
    # by hand, every response of q0 and q1 says Paris: one class, the correct one
    write_labels(label_path(out, run), [
        HandLabels(run, qid, tuple(samples[qid]), tuple("1" for _ in samples[qid]), "1")
        for qid in ("q0", "q1")])
    res = reproduce(exp, out, quiet=True)  # everything is stored: only analysed again
    md = (out / "summary.md").read_text()
    assert "## B checked by hand" in md
    assert md.count(f"B check, run {run} (B ") == 2  # under auto and under exact
    assert "2 questions labelled" in md
    inst = next(o for o in res.runs if o.run.model.name == "i")
    assert inst.metrics["b_check"]["questions"] == 2
    data = json.loads((out / "results.json").read_text())
    row = next(r for r in data["runs"] if r["name"] == run)
    assert row["metrics"]["b_check"]["questions"] == 2
    assert row["metrics"]["b_check"]["file"] == str(label_path(out, run))
    # auto groups as the hand did; exact splits the one answer in two
    assert row["metrics"]["b_check"]["recall"] == 1.0
    assert row["by_collapse"]["exact"]["b_check"]["recall"] < 1.0
    other = next(r for r in data["runs"] if r["name"] != run)
    assert "b_check" not in other["metrics"]


@pytest.mark.parametrize(("collapse", "message"), [
    (["auto", "auto"], "lists a B twice"),
    (["auto", "fuzzy"], "unknown collapsing function 'fuzzy'"),
    ([], "give 1 to 8 Bs"),
    (["auto", "exact", "math", "embedding", "nli", "auto", "exact", "math", "nli"],
     "give 1 to 8 Bs"),
    (["auto", ""], "must be a B's name"),
    (["auto", 3], "must be a B's name"),
    (["auto", "judge"], "needs a [judge] table"),
])
def test_a_bad_list_of_bs_is_one_input_error(collapse, message: str) -> None:
    with pytest.raises(InputError) as exc:
        experiment_from_dict({"collapse": collapse}, where="exp.toml")
    assert message in str(exc.value) and "exp.toml" in str(exc.value)
    assert MAX_BS == 8


def test_the_primary_b_is_the_first() -> None:
    exp = experiment_from_dict({"collapse": ["exact", "auto"], "models": ["m:base"],
                                "comparisons": ["styles"]})
    assert exp.collapses == ("exact", "auto") and exp.primary_collapse == "exact"
    assert {p.spec.collapse for p in plan(exp)} == {"exact"}
    assert experiment_from_dict({"collapse": "math"}).collapses == ("math",)
