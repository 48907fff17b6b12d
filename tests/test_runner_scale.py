"""The runner's work per question does not grow with the run, and the mock backend.

Timing is bench/runner_scale.py's job; here the store reads that read a whole run are
counted: a runner that repeats them per batch is quadratic in the number of questions (an
adaptive run re-read every greedy completion per question, and the P(True)/verbalised
estimates re-read all estimates and done ids after every batch).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from semcal.backends import get_sampler
from semcal.backends.mock import DEFAULT_ANSWERS, MockSampler
from semcal.collapse import collapse_key
from semcal.errors import InputError
from semcal.runner import run
from semcal.spec import AdaptiveSpec, RunSpec
from semcal.store import Store
from semcal.types import Prompt, SamplingParams

#: Store methods that read every row of a run
WHOLE_RUN_READS = ("greedy", "greedy_ids", "done_ids", "model_estimates", "all_samples",
                   "questions")


def _questions(path: Path, n: int) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"q{i}", "question": f"Question {i}: which city?",
                                "answers": ["Paris"]}) + "\n")
    return path


def _count_reads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, n: int, **kw) -> Counter:
    calls: Counter = Counter()
    for name in WHOLE_RUN_READS:
        orig = getattr(Store, name)

        def counted(self, *a, _orig=orig, _name=name, **k):
            calls[_name] += 1
            return _orig(self, *a, **k)

        monkeypatch.setattr(Store, name, counted)
    spec = RunSpec(model="mock", backend="mock", dataset=str(_questions(tmp_path / f"{n}.jsonl", n)),
                   format="jsonl", samples=6, seed=5, style="concise", k_shot=0, collapse="exact",
                   **kw)
    res = run(spec, tmp_path / f"out{n}", quiet=True)
    assert res.complete and res.n_questions == n
    monkeypatch.undo()
    return calls


@pytest.mark.parametrize("kw", [
    {},
    {"adaptive": AdaptiveSpec(enabled=True, round=2, min_samples=2, epsilon=0.2)},
    {"model_estimators": True},
    {"model_estimators": True, "adaptive": AdaptiveSpec(enabled=True, round=2, min_samples=2)},
], ids=["fixed", "adaptive", "estimators", "adaptive-estimators"])
def test_whole_run_reads_do_not_grow_with_the_number_of_questions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, kw: dict
) -> None:
    small = _count_reads(monkeypatch, tmp_path, 8, **kw)
    large = _count_reads(monkeypatch, tmp_path, 24, **kw)
    assert small == large, (small, large)
    assert sum(large.values()) <= 12


def test_estimates_are_complete_after_a_run_and_a_resume_adds_none(tmp_path: Path) -> None:
    spec = RunSpec(model="mock", backend="mock", dataset=str(_questions(tmp_path / "q.jsonl", 10)),
                   format="jsonl", samples=4, seed=2, style="concise", k_shot=0,
                   collapse="exact", model_estimators=True,
                   adaptive=AdaptiveSpec(enabled=True, round=2, min_samples=2))
    first = run(spec, tmp_path / "out", quiet=True)
    assert first.estimates_new == 10
    with Store(tmp_path / "out", readonly=True) as st:
        est = st.model_estimates(st.runs()[0].id, collapse_key("exact"))
    assert set(est) == {f"q{i}" for i in range(10)}
    assert all(set(v) == {"p_true", "verbalized"} for v in est.values())
    again = run(spec, tmp_path / "out", quiet=True)
    assert again.estimates_new == 0 and again.samples_new == 0


def test_mock_samples_depend_only_on_prompt_seed_and_index() -> None:
    s = get_sampler("mock", "mock")
    p1, p2 = Prompt(text="Q: capital of France?\nA:"), Prompt(text="Q: capital of Spain?\nA:")
    params = SamplingParams(temperature=1.0, max_tokens=8, seed=11)
    alone = s.sample([p1], 12, params)[0]
    together = s.sample([p2, p1], 12, params)[1]
    assert [c.text for c in alone] == [c.text for c in together]
    assert len({c.text for c in alone}) > 1  # it does sample
    other_seed = s.sample([p1], 12, SamplingParams(temperature=1.0, max_tokens=8, seed=12))[0]
    assert [c.text for c in other_seed] != [c.text for c in alone]
    greedy = s.sample([p1], 3, SamplingParams(temperature=0.0, max_tokens=8, seed=1))[0]
    assert len({c.text for c in greedy}) == 1
    cut = s.sample([p1], 1, SamplingParams(temperature=0.0, max_tokens=2, seed=1))[0][0]
    assert cut.finish_reason == "length" and cut.n_tokens == 2
    (top,) = s.next_token_logprobs([p1], 5)
    assert set(top) == {" True", " False"}


@pytest.mark.parametrize("opts", [
    {"answers": []}, {"answers": "Paris"}, {"answers": [""]}, {"concentration": 0},
    {"concentration": True}, {"chat": "yes"}, {"template": "no slot"},
    {"script": {"ZQ": {"Rome": 0}}}, {"script": {"ZQ": {}}}, {"script": ["ZQ"]},
    {"script": {"": {"Rome": 1}}}, {"respond": "text"}, {"rate": 3},
])
def test_mock_options_are_checked(opts: dict) -> None:
    with pytest.raises(InputError, match="mock backend"):
        MockSampler("mock", **opts)


def test_a_scripted_mock_answers_each_tagged_prompt_from_its_table() -> None:
    """``script``: the tag found last in a prompt picks its answers (the question under test
    follows the few-shot examples); untagged prompts keep the hashed distribution."""
    s = get_sampler("mock", "m", script={"ZQA": {"Rome": 1}, "ZQB": {"Oslo": 3, "Bergen": 1}})
    params = SamplingParams(seed=4, max_tokens=8)
    a, b, both, free = s.sample([Prompt(text="ZQA?"), Prompt(text="ZQB?"),
                                 Prompt(text="ZQB? ... ZQA?"), Prompt(text="Which city?")], 40, params)
    assert {c.text for c in a} == {"The answer is Rome."} == {c.text for c in both}
    assert {c.text for c in b} == {"The answer is Oslo.", "The answer is Bergen."}
    assert sum(c.text == "The answer is Oslo." for c in b) > 20  # weight 3 of 4
    assert {c.text for c in free} <= {f"The answer is {x}." for x in DEFAULT_ANSWERS}
    greedy = s.sample([Prompt(text="ZQB?")], 2, SamplingParams(temperature=0.0, max_tokens=8))
    assert [c.text for c in greedy[0]] == ["The answer is Oslo."] * 2


def test_a_prompt_longer_than_the_context_fails_before_anything_is_stored(tmp_path: Path) -> None:
    """Checked for every question before sampling: before, a too-long question failed (or
    ran for minutes at gigabytes) only when its turn came."""
    data = tmp_path / "q.jsonl"
    with data.open("w") as f:
        for i in range(5):
            f.write(json.dumps({"id": f"q{i}", "question": "Which city?", "answers": ["Paris"]})
                    + "\n")
        f.write(json.dumps({"id": "long", "question": "word " * 300, "answers": ["x"]}) + "\n")
    spec = RunSpec(model="mock", backend="mock", dataset=str(data), format="jsonl", samples=2,
                   k_shot=0, style="concise", backend_options={"context_length": 200})
    with pytest.raises(InputError, match=r"question 'long': its prompt of \d+ tokens plus "
                                         r"max_tokens = \d+ exceeds the model's context of 200"):
        run(spec, tmp_path / "out", quiet=True)
    assert not (tmp_path / "out" / "semcal.sqlite").exists()
    with pytest.raises(InputError, match="max_tokens = 500 does not fit"):
        run(spec.replace(max_tokens=500), tmp_path / "out", quiet=True)
    # a sampler passed in (no new-run pre-check) is checked before its first batch
    with pytest.raises(InputError, match="question 'long'"):
        run(spec, tmp_path / "out2", sampler=MockSampler(context_length=200), quiet=True)
    with Store(tmp_path / "out2", readonly=True) as st:
        assert st.progress(st.runs()[0].id)[2] == 0
    ok = run(spec.replace(backend_options={"context_length": 2000}), tmp_path / "out3", quiet=True)
    assert ok.complete and ok.n_questions == 6


def test_parallel_collapse_gives_the_serial_analysis(tmp_path: Path, monkeypatch) -> None:
    """A large analysis labels samples and bootstraps its summaries in worker processes;
    every label, grade, metric and interval is the one the in-process path gives."""
    import semcal.analysis as A

    answers = ["Paris.", "The capital of France is Paris.", "I think it is Lyon, France.",
               "Marseille", "I'm sorry, I don't know.", "Paris, the capital of France.",
               "It is Nice? Or maybe Paris.", "London"]
    spec = RunSpec(model="mock", backend="mock", dataset=str(_questions(tmp_path / "q.jsonl", 40)),
                   format="jsonl", samples=12, seed=4, style="sentence", k_shot=0,
                   backend_options={"answers": answers, "template": "{answer}",
                                    "concentration": 1.0})
    run(spec, tmp_path / "out", quiet=True)
    used = []
    orig = A._CollapsePool.results

    def recorded(self):
        out = orig(self)
        used.append(len(out))
        return out

    with Store(tmp_path / "out", readonly=True) as st:
        info = st.runs()[0]
        serial = A.analyze_run(st, info, cache=False, n_boot=50)
        monkeypatch.setattr(A, "PARALLEL_MIN_TEXTS", 0)
        monkeypatch.setattr(A, "PARALLEL_MIN_BOOT_WORK", 0)
        monkeypatch.setattr(A, "SPLIT_MIN_BOOT_WORK", 0)  # the run's smECE resamples split too
        monkeypatch.setattr(A.os, "cpu_count", lambda: 2)
        monkeypatch.setattr(A._CollapsePool, "results", recorded)
        monkeypatch.setattr(A._CollapsePool, "CHUNK_TEXTS", 50)  # several chunks
        parallel = A.analyze_run(st, info, cache=False, n_boot=50)
    assert used == [40]  # every question was labelled by the workers
    assert [r.labels for r in parallel.questions] == [r.labels for r in serial.questions]
    assert [(r.prediction, r.correct, r.estimates) for r in parallel.questions] == [
        (r.prediction, r.correct, r.estimates) for r in serial.questions]
    assert parallel.summary == serial.summary
    assert parallel.estimators == serial.estimators
    assert len({lab for r in serial.questions for lab in r.labels}) >= 4


def test_analyze_defaults_to_the_collapse_the_run_was_sampled_with(tmp_path: Path) -> None:
    """P(True) and verbalised estimates are stored under the run's B; analyze used "auto"
    whatever the run used, and they vanished without a word."""
    from semcal.analysis import analyze_dir

    spec = RunSpec(model="mock", backend="mock", dataset=str(_questions(tmp_path / "q.jsonl", 6)),
                   format="jsonl", samples=4, seed=2, style="concise", k_shot=0,
                   collapse="exact", model_estimators=True)
    run(spec, tmp_path / "out", quiet=True)
    (a,) = analyze_dir(tmp_path / "out", n_boot=0)
    assert a.collapse == "exact"
    assert {"p_true", "verbalized"} <= {row["estimator"] for row in a.estimators}
    (b,) = analyze_dir(tmp_path / "out", collapse="auto", n_boot=0)
    assert b.collapse == "auto" and "p_true" not in {row["estimator"] for row in b.estimators}
