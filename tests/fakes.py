"""Shared test fakes: a deterministic in-process sampler with known answer distributions,
a collapse function for its answers, a question file of its questions, and helpers to build
a spec and dump a store. Tests import these from here (not from each other); a model-free
sampler that runs through the registered backend path is ``backend = "mock"``
(semcal.backends.mock)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from semcal.backends.base import sample_seed
from semcal.spec import RunSpec
from semcal.store import Store
from semcal.types import Collapsed, Completion, Prompt, Question, SamplingParams

#: question tag -> answer distribution of the fake model
DISTS: dict[str, dict[str, float]] = {
    "ZQA": {"Paris": 1.0},
    "ZQB": {"Rome": 0.6, "Milan": 0.4},
    "ZQC": {"4": 0.34, "5": 0.33, "6": 0.33},
    "ZQD": {"Oslo": 0.9, "Bergen": 0.1},
    "ZQE": {"blue": 0.5, "green": 0.5},
    "ZQF": {"Tokyo": 0.8, "Kyoto": 0.2},
}
GOLD = {"ZQA": "Paris", "ZQB": "Rome", "ZQC": "4", "ZQD": "Oslo", "ZQE": "red", "ZQF": "Tokyo"}


class FakeSampler:
    """Answers from :data:`DISTS`; sample i of a prompt depends only on (prompt, seed, i)."""

    model_name = "fake"
    is_chat = False
    context_length = None  # no context to check prompts against

    def __init__(self, interrupt_after: int | None = None, bad_count: bool = False):
        self.calls: list[tuple[int, int, int]] = []  # (n prompts, n, seed)
        self.interrupt_after = interrupt_after
        self.bad_count = bad_count
        self.closed = False

    @staticmethod
    def _tag(p: Prompt) -> str:
        text = p.text or " ".join(m.content for m in p.messages)
        # the question under test is the last tagged one in the prompt
        found = [(text.rfind(t), t) for t in DISTS if t in text]
        return max(found)[1]

    def sample(self, prompts: Sequence[Prompt], n: int, params: SamplingParams) -> list[list[Completion]]:
        if self.interrupt_after is not None and len(self.calls) >= self.interrupt_after:
            raise KeyboardInterrupt
        self.calls.append((len(prompts), n, params.seed))
        out = []
        for p in prompts:
            tag = self._tag(p)
            dist = DISTS[tag]
            comps = []
            for i in range(n):
                if params.temperature == 0:
                    ans = max(dist, key=lambda a: dist[a])
                else:
                    rng = random.Random(f"{tag}|{sample_seed(params.seed, i)}")
                    ans = rng.choices(list(dist), weights=list(dist.values()))[0]
                comps.append(Completion(f"The answer is {ans}.", "stop", 5,
                                        (-0.1, -0.2, -0.3, -0.1, -0.05), None))
            out.append(comps)
        if self.bad_count:
            out[0] = out[0][:-1]
        return out

    def close(self) -> None:
        self.closed = True


def fake_collapse(question: Question, texts: Sequence[str]) -> Collapsed:
    labels = tuple(t.removeprefix("The answer is ").rstrip(".").lower() for t in texts)
    return Collapsed(labels, frozenset(a.lower() for a in question.answers))


def write_questions(path: Path) -> Path:
    """The fake model's questions as a JSONL file (one per tag of :data:`GOLD`)."""
    with path.open("w") as f:
        for tag, gold in GOLD.items():
            f.write(json.dumps({"id": tag.lower(), "question": f"{tag} which one?",
                                "answers": [gold]}) + "\n")
    return path


def make_spec(qfile: Path, **kw) -> RunSpec:
    base = dict(model="fake", dataset=str(qfile), format="jsonl", samples=6, seed=3,
                max_tokens=8, style="concise", k_shot=0)
    base.update(kw)
    return RunSpec(**base)


def dump_store(out: Path) -> dict:
    with Store(out, readonly=True) as st:
        (run_info,) = st.runs()
        res = {}
        for q in st.questions(run_info.id):
            res[q.id] = [(s.round, s.index, s.seed, s.completion.text) for s in st.samples(run_info.id, q.id)]
        return {"samples": res, "greedy": {k: v.text for k, v in st.greedy(run_info.id).items()},
                "done": sorted(st.done_ids(run_info.id))}


