"""The judge B asks its judge once per distinct (question, response), in batches that mix
questions (issue 23): a counting stand-in judge checks the number of prompts and of calls."""

from __future__ import annotations

import json
import math

from fakes import fake_judge
from semcal.collapse.judge import JudgeCollapse
from semcal.types import Question


class Counting:
    """Wraps a sampler and counts its ``sample`` calls and the prompts of each."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.is_chat = inner.is_chat
        self.sizes: list[int] = []

    def sample(self, prompts, n, params):
        self.sizes.append(len(prompts))
        return self.inner.sample(prompts, n, params)

    def close(self) -> None:
        pass


def _q(i: int) -> Question:
    return Question(id=f"q{i}", question=f"What is thing number {i}?", answers=("Paris",))


def test_identical_responses_are_judged_once() -> None:
    judge = Counting(fake_judge())
    b = JudgeCollapse(judge)
    texts = ["It is Paris.", "It is Paris.", "Rome, I think.", "It is Paris.", ""]
    b(_q(1), texts)
    b(_q(1), texts)  # the same question again: all cached
    b(_q(2), texts[:2])  # the same response to another question is another prompt
    assert sum(judge.sizes) == b.calls == 3  # (q1, Paris), (q1, Rome), (q2, Paris)
    assert len(judge.inner.prompts) == 3


def test_prepare_batches_many_questions_and_fills_the_cache() -> None:
    items = [(_q(i), [f"The answer is {w}." for w in ("Paris", "Rome", "Paris", "Oslo")])
             for i in range(10)]
    items.append((_q(10), ["I don't know.", "   "]))  # a refusal and an empty text: no prompt
    distinct = 10 * 3
    judge = Counting(fake_judge())
    b = JudgeCollapse(judge, batch_size=7)
    b.prepare(items)
    assert judge.sizes[:-1] == [7] * (len(judge.sizes) - 1)
    assert len(judge.sizes) == math.ceil(distinct / 7) and sum(judge.sizes) == distinct
    labels = [b(q, t).labels for q, t in items]
    assert sum(judge.sizes) == distinct  # the per-question calls asked nothing more
    # the same labels as without prepare
    plain = JudgeCollapse(fake_judge())
    assert labels == [plain(q, t).labels for q, t in items]


def test_analyze_run_prepares_the_judge_once(tmp_path) -> None:
    from semcal.analysis import analyze_run
    from semcal.runner import run
    from semcal.spec import RunSpec
    from semcal.store import Store

    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": f"Capital number {i}?",
                                        "answers": ["Paris"]}) + "\n" for i in range(5)))
    run(RunSpec(model="mock", backend="mock", dataset=str(data), samples=6, k_shot=0,
                backend_options={"answers": ["Paris", "Rome", "Oslo", "Bern"]}),
        tmp_path / "out", quiet=True)
    judge = Counting(fake_judge())
    with Store(tmp_path / "out", readonly=True) as st:
        info = st.runs()[0]
        a = analyze_run(st, info, collapse="judge", judge=judge, n_boot=0, cache=False)
        greedy = st.greedy(info.id)
    distinct = sum(len(set(r.texts) | ({greedy[r.qid].text} if r.qid in greedy else set()))
                   for r in a.questions)
    assert len(a.questions) == 5 and distinct >= 5
    assert len(judge.sizes) == math.ceil(distinct / 64) == 1  # one batched call for the run
    assert sum(judge.sizes) == distinct


def test_judging_many_responses_shows_progress_on_a_terminal(monkeypatch) -> None:
    """`analyze --collapse judge` takes minutes on a CPU: a bar counts the judged responses
    on a terminal, and nothing is drawn when stderr is not one (logs, pipes, tests)."""
    import semcal.collapse.judge as J

    bars = []

    class Bar:
        def __init__(self, total, **kw):
            self.total, self.done, self.closed = total, 0, False
            bars.append(self)

        def update(self, k):
            self.done += k

        def close(self):
            self.closed = True

    import tqdm.auto

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    items = [(_q(i), [f"The answer is {w}." for w in ("Paris", "Rome")]) for i in range(10)]
    monkeypatch.setattr(J.sys.stderr, "isatty", lambda: False, raising=False)
    JudgeCollapse(fake_judge(), batch_size=4).prepare(items)
    assert bars == []
    monkeypatch.setattr(J.sys.stderr, "isatty", lambda: True, raising=False)
    JudgeCollapse(fake_judge(), batch_size=4).prepare(items)
    assert len(bars) == 1 and bars[0].total == bars[0].done == 20 and bars[0].closed
