"""Sample the responses of the labelled B benchmark (bench/data/collapse/).

    python tools/make_collapse_bench.py [--out bench/data/collapse] [--work /tmp/collapse-runs]

Runs both embedded models through semcal's own runner (llama.cpp, temperature 1, seed 0,
M = 6, no greedy sample) on four question sets and writes one JSONL file per model x set:
one line per question with its gold answers and the sampled responses (text and finish
reason). The labels are *not* written here: they are written by hand, by reading each
response, into ``labels/<file>.jsonl`` (see bench/data/collapse/README.md).

Sets:
- ``world-concise``, ``world-sentence``, ``world-cot``: 60 questions of the bundled ``world``
  set, every 7th one (so every category is represented);
- ``gsm8k-cot``: the first 60 questions of the GSM8K test set (shared/data/gsm8k, MIT);
- ``holdout-concise``, ``holdout-sentence``: 40 other ``world`` questions (every 7th from the
  4th), sampled later and kept out of the development of the default B (``--sets`` picks);
  ``holdout-cot``: the same 40 in cot style, added later still (COLLAPSE_VERSION 6).

This took about 35 minutes on the 2-core development machine; the files it wrote are
committed, so nobody needs to run it again to use the benchmark.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from semcal.data import bundled
from semcal.runner import run
from semcal.spec import RunSpec
from semcal.store import open_store

MODELS = ("gemma-3-270m", "smollm2-135m-instruct")
M = 6
N_QUESTIONS = 60
N_HOLDOUT = 40
ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"


def _world_subset(path: Path) -> None:
    qs = bundled("world")
    with path.open("w", encoding="utf-8") as f:
        for q in qs[::7][:N_QUESTIONS]:
            f.write(json.dumps({"id": q.id, "question": q.question, "answers": list(q.answers),
                                "task": q.task}, ensure_ascii=False) + "\n")


def _world_holdout(path: Path) -> None:
    """40 other `world` questions (every 7th from the 4th): never read while building a B."""
    qs = bundled("world")
    with path.open("w", encoding="utf-8") as f:
        for q in qs[3::7][:N_HOLDOUT]:
            f.write(json.dumps({"id": q.id, "question": q.question, "answers": list(q.answers),
                                "task": q.task}, ensure_ascii=False) + "\n")


def _gsm8k_subset(path: Path) -> None:
    lines = GSM8K.read_text(encoding="utf-8").splitlines()[:N_QUESTIONS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


SETS = {
    # name: (question file maker, format, style, max_tokens)
    "world-concise": (_world_subset, None, "concise", None),
    "world-sentence": (_world_subset, None, "sentence", None),
    "world-cot": (_world_subset, None, "cot", 160),
    "gsm8k-cot": (_gsm8k_subset, "gsm8k", "cot", 200),
    # held out: sampled and labelled after the default B's rules were fixed, to measure them
    # on responses their author never saw
    "holdout-concise": (_world_holdout, None, "concise", None),
    "holdout-sentence": (_world_holdout, None, "sentence", None),
    # added with COLLAPSE_VERSION 6: the chains of thought had no held-out set
    "holdout-cot": (_world_holdout, None, "cot", 160),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "data" / "collapse"))
    ap.add_argument("--work", default="/tmp/collapse-runs")
    ap.add_argument("--sets", default=",".join(s for s in SETS if not s.startswith("holdout")))
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args(argv)
    out, work = Path(args.out), Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    for set_name in args.sets.split(","):
        make, fmt, style, max_tokens = SETS[set_name]
        qfile = work / f"{set_name}.jsonl"
        make(qfile)
        for model in args.models.split(","):
            spec = RunSpec(model=model, name=f"{model}-{set_name}", dataset=str(qfile), format=fmt,
                           style=style, samples=M, max_tokens=max_tokens, greedy=False, seed=0)
            run(spec, work / "store", quiet=True)
            with open_store(work / "store", readonly=True) as store:
                info = next(r for r in store.runs() if r.name == spec.name)
                questions = store.questions(info.id)
                samples = store.all_samples(info.id)
            path = out / f"{model}--{set_name}.jsonl"
            with path.open("w", encoding="utf-8") as f:
                for q in questions:
                    rows = sorted(samples.get(q.id, []), key=lambda s: (s.round, s.index))
                    f.write(json.dumps({
                        "id": q.id, "question": q.question, "answers": list(q.answers),
                        "task": q.task, "model": model, "style": style,
                        "responses": [{"text": s.completion.text,
                                       "finish": s.completion.finish_reason} for s in rows],
                    }, ensure_ascii=False) + "\n")
            print(f"wrote {path} ({len(questions)} questions)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
