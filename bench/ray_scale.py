"""The Ray executor against one process, and the Ray path's overhead per shard.

1. Throughput with a real model (default: the embedded SmolLM2 on llama.cpp, `world`
   questions, concise style): one process with ``--threads T`` against ``W`` Ray actors of
   ``T / W`` threads each on a local Ray cluster; samples/s of the sampling itself (the
   actors' model loading is reported apart: a cluster keeps its actors for a whole sweep).
2. Overhead per shard: the same runs with the ``mock`` backend (no model time), so the time
   per shard is what Ray, pickling and the driver's commits cost; compared with the time a
   shard of real sampling takes.

    python bench/ray_scale.py                      # 40 questions x M=8, 2 threads, 2 actors
    python bench/ray_scale.py -q 80 -n 10 --shard 8
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from semcal.runner import run
from semcal.spec import ExecutorSpec, RunSpec


def _spec(model: str, backend: str, data: str, n_q: int, m: int, threads: int,
          executor: ExecutorSpec | None = None) -> RunSpec:
    opts = {"n_threads": threads} if backend == "llamacpp" else {}
    return RunSpec(model=model, backend=backend, dataset=data, limit=n_q, samples=m,
                   style="concise", seed=1, greedy=False, backend_options=opts,
                   executor=executor or ExecutorSpec())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-q", "--questions", type=int, default=40)
    ap.add_argument("-n", "--samples", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2, help="CPU threads in all (default 2)")
    ap.add_argument("--workers", type=int, default=2, help="Ray actors (default 2)")
    ap.add_argument("--shard", type=int, default=8, help="questions per shard (default 8)")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    args = ap.parse_args(argv)
    import ray

    per_actor = max(1, args.threads // args.workers)
    ray.init(num_cpus=args.workers * per_actor, include_dashboard=False, log_to_driver=False)
    ex = ExecutorSpec(kind="ray", workers=args.workers, num_cpus=per_actor,
                      shard_questions=args.shard)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        mock_data = t / "mock.jsonl"
        mock_data.write_text("".join(json.dumps({"id": f"m{i}", "question": f"Q{i}?",
                                                 "answers": ["Paris"]}) + "\n"
                                     for i in range(args.questions)))
        for label, model, backend, data in (
            ("real", args.model, "llamacpp", "world"),
            ("mock", "mock", "mock", str(mock_data)),
        ):
            local = _spec(model, backend, data, args.questions, args.samples, args.threads)
            t0 = time.perf_counter()
            res = run(local, t / f"{label}-local", quiet=True)
            local_s = time.perf_counter() - t0
            # the pool is opened (actors load their models) before the clock starts
            from semcal.ray_executor import RayPool

            spec = _spec(model, backend, data, args.questions, args.samples, per_actor, ex)
            t0 = time.perf_counter()
            pool = RayPool(spec)
            load_s = time.perf_counter() - t0
            try:
                t0 = time.perf_counter()
                res_r = run(spec, t / f"{label}-ray", sampler=pool, quiet=True)
                ray_s = time.perf_counter() - t0
            finally:
                pool.close()
            n_shards = -(-args.questions // args.shard)
            rows.append((label, res.samples_total, local_s, res_r.samples_total, ray_s, load_s,
                         n_shards))
    ray.shutdown()
    print(f"{args.questions} questions x M={args.samples}; local: 1 process x "
          f"{args.threads} threads; ray: {args.workers} actors x {per_actor} thread(s), "
          f"shards of {args.shard} questions")
    print(f"{'backend':<8} {'local s':>8} {'local samples/s':>16} {'ray s':>7} "
          f"{'ray samples/s':>14} {'actor start s':>14} {'ray s/shard':>12}")
    for label, n_l, local_s, n_r, ray_s, load_s, n_shards in rows:
        print(f"{label:<8} {local_s:>8.2f} {n_l / local_s:>16.1f} {ray_s:>7.2f} "
              f"{n_r / ray_s:>14.1f} {load_s:>14.2f} {ray_s / n_shards:>12.3f}")
    real, mock = rows
    shard_real = real[2] / real[6]  # seconds of one-process sampling per shard's questions
    print(f"overhead per shard (mock ray s/shard x workers, no model time): "
          f"{mock[4] / mock[6] * args.workers:.3f} s = "
          f"{100 * mock[4] / mock[6] * args.workers / shard_real:.1f} % of a shard's "
          f"one-process sampling time ({shard_real:.2f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
