"""`semcal analyze` at scale, as a user runs it: wall time and peak memory of the command.

    python bench/analyze_speed.py                       # 10^5 samples: cold and warm
    python bench/analyze_speed.py --texts singletons    # the worst case: every sample its own class
    python bench/analyze_speed.py --questions 20000 --samples 50   # 10^6 samples

A store of QUESTIONS x SAMPLES samples is filled once by the mock backend (no model) with
varied texts: real responses of both embedded models (bench/data/collapse), every sample's
string distinct, so B cannot save work by meeting a text twice. Two kinds of store:

- ``--texts meanings`` (default): each question draws its samples from a few of the real
  responses (the mock's per-question weights, sharpened by ``--concentration``), and each
  sample is made distinct by whitespace around it, which B strips: the few classes per
  question of a real run, so semantic confidence takes its usual spread of values;
- ``--texts singletons``: each sample gets a numbered tail, so every sample that answers is
  its own class; the no-answer class is then the plurality almost everywhere and nearly every
  confidence is 0. This is the worst case for the bootstrap (when all confidences are equal,
  smECE's bandwidth search goes down to its finest grid).

Then:

- cold: ``semcal analyze DIR`` in a fresh process on a fresh copy of the store (no class
  cache; the copy's pages are dropped from the OS cache with posix_fadvise where the kernel
  allows it, so the read comes from the disk);
- warm: the same command again (the class cache written by the cold call, pages in memory).

Each is timed with the command's imports and its worker processes included; peak memory is
the largest resident set of the command and its children together (sampled every 20 ms).
The figures depend on the machine and on what else runs: measure on an idle machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from runner_scale import real_texts  # noqa: E402
from semcal.backends.mock import MockSampler  # noqa: E402
from semcal.runner import run  # noqa: E402
from semcal.spec import RunSpec  # noqa: E402

ANSWERS = ("Paris", "London", "Rome", "Berlin", "Madrid", "Oslo", "Vienna", "Lisbon")
_TAILS = ("", " Yes.", " I think.", " That is all.", " Hope it helps!", " (final)")


class VariedSampler(MockSampler):
    """The mock, with a tail that makes every sample its own class (``singletons``) or with
    whitespace that makes every sample's string distinct and leaves its meaning (``meanings``)."""

    def __init__(self, texts: str, **kw) -> None:
        super().__init__(**kw)
        self.texts = texts

    def sample(self, prompts, n, params):  # type: ignore[override]
        out = super().sample(prompts, n, params)
        for pi, completions in enumerate(out):
            for i, c in enumerate(completions):
                if self.texts == "singletons":
                    text = c.text + _TAILS[(pi + i) % len(_TAILS)] + f" #{(pi * 7919 + i) % 9973}"
                else:  # i spaces before, i // 10 newlines after: distinct for every i
                    text = " " * (i % 10) + c.text.strip() + "\n" * (i // 10)
                completions[i] = dataclasses.replace(c, text=text)
        return out


def build(directory: Path, questions: int, samples: int, texts: str = "meanings",
          concentration: float = 80.0) -> None:
    data = directory.parent / f"q{questions}.jsonl"
    with data.open("w", encoding="utf-8") as f:
        for i in range(questions):
            f.write(json.dumps({"id": f"q{i}", "question": f"Question {i}: which city?",
                                "answers": [ANSWERS[i % len(ANSWERS)]]}) + "\n")
    spec = RunSpec(model="mock", backend="mock", dataset=str(data), format="jsonl",
                   samples=samples, seed=1, style="concise", k_shot=0, collapse="auto",
                   max_tokens=8)
    sampler = VariedSampler(texts, answers=real_texts(), template="{answer}",
                            concentration=1.0 if texts == "singletons" else concentration)
    run(spec, directory, sampler=sampler, quiet=True)


def _rss_tree(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
        todo += children.get(p, [])
    return total


def timed(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak resident bytes (process tree) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_tree(proc.pid))
            time.sleep(0.02)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    done.set()
    t.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {err.decode(errors='replace')}")
    return seconds, peak


def drop_pages(directory: Path) -> None:
    for f in directory.iterdir():
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass
            finally:
                os.close(fd)


def data_shape(directory: Path) -> str:
    """Classes per question and the spread of semantic confidence of the store's run."""
    from semcal.analysis import analyze_dir

    a = analyze_dir(directory, estimators=[], n_boot=0)[0]
    classes = [len(set(r.labels)) for r in a.questions]
    conf = [r.confidence for r in a.questions]
    return (f"{sum(classes) / len(classes):.1f} classes per question, semantic confidence "
            f"mean {sum(conf) / len(conf):.2f}, {len(set(conf))} distinct values")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3, help="cold/warm pairs (the median is shown)")
    ap.add_argument("--texts", choices=("meanings", "singletons"), default="meanings",
                    help="a few meanings per question (default) or every sample its own class")
    ap.add_argument("--concentration", type=float, default=80.0,
                    help="how strongly each question's samples favour its first answers "
                         "(meanings; default 80: about the demo's mean confidence)")
    ap.add_argument("--work", help="keep the store here (default: a temporary folder)")
    args = ap.parse_args(argv)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="semcal-analyze-"))
    work.mkdir(parents=True, exist_ok=True)
    tag = "singletons" if args.texts == "singletons" else f"meanings-c{args.concentration:g}"
    master = work / f"store-{args.questions}x{args.samples}-{tag}"
    if not master.exists():
        t = time.perf_counter()
        build(master, args.questions, args.samples, args.texts, args.concentration)
        print(f"# built {args.questions} x {args.samples} in {time.perf_counter() - t:.0f} s",
              file=sys.stderr)
    cmd = [sys.executable, "-m", "semcal.cli", "analyze"]
    cold, warm = [], []
    for _ in range(args.repeat):
        copy = work / "copy"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(master, copy)
        drop_pages(copy)
        cold.append(timed([*cmd, str(copy), "-q"]))
        warm.append(timed([*cmd, str(copy), "-q"]))
        shape = data_shape(copy)  # from the classes the cold call cached (not timed)
        shutil.rmtree(copy)

    def median(rows: list[tuple[float, int]]) -> tuple[float, int]:
        rows = sorted(rows)
        return rows[len(rows) // 2]

    n = args.questions * args.samples
    print(f"| samples | run | wall s (median of {args.repeat}) | all runs, s | peak RSS, MB |")
    print("|---:|---|---:|---|---:|")
    for name, rows in (("cold", cold), ("warm", warm)):
        s, peak = median(rows)
        runs = ", ".join(f"{r[0]:.2f}" for r in rows)
        print(f"| {n:,} | {name} | {s:.2f} | {runs} | {max(r[1] for r in rows) / 2**20:.0f} |")
    print(f"\ntexts: {tag}; {shape}")
    print(f"{os.cpu_count()} cores; {sys.platform}; python {sys.version.split()[0]}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
