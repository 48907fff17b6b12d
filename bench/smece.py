"""Time semcal's smECE against relplot's on 10^4, 10^5 and 10^6 points.

Run:  python bench/smece.py            (needs relplot, a test dependency)
      python bench/smece.py --sizes 10000 100000 --repeats 5

Two data sets per size:
  * "semantic": confidences k/10 with ~30% exactly 1.0 (what semantic confidence with 10
    samples looks like), overconfident outcomes; smECE ~0.1, so sigma >= 0.01 and one kernel grid.
  * "calibrated": continuous uniform confidences, outcomes ~ Bernoulli(conf); smECE shrinks with
    n, so the bandwidth search visits small sigmas and several kernel grids (the harder case).

Each cell is the best of ``--repeats`` wall-clock runs (relplot: fewer at large n, see the
table). The script also checks that both give the same value. Timings on a shared machine are
noisy; compare ratios rather than absolute numbers.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from semcal.metrics import smece

# relplot's smECE keeps about a dozen float64 arrays of length n alive (binning weights and
# indices): a rough peak-memory estimate used to decide whether a run is feasible.
_RELPLOT_BYTES_PER_POINT = 12 * 8
_MAX_SECONDS = 60.0
_MAX_BYTES = 8 * 2**30


def _data(kind: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "semantic":
        conf = np.round(rng.beta(3.0, 1.0, size=n) * 10) / 10
        conf[rng.uniform(size=n) < 0.3] = 1.0
        conf = np.maximum(conf, 0.1)
        correct = (rng.uniform(size=n) < 0.85 * conf).astype(np.float64)
    else:
        conf = rng.uniform(size=n)
        correct = (rng.uniform(size=n) < conf).astype(np.float64)
    return conf, correct


def _best(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10**4, 10**5, 10**6])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    try:
        import relplot
    except ImportError:  # pragma: no cover - depends on the environment
        relplot = None
        print("relplot is not installed (pip install 'relplot>=1.0.2'): timing semcal only")

    # warm up both (imports, FFT plans, caches)
    warm_c, warm_y = _data("semantic", 1000, 1)
    smece(warm_c, warm_y)
    if relplot is not None:
        relplot.smECE(warm_c, warm_y)

    header = (f"{'data':<11} {'n':>9} {'semcal s':>10} {'relplot s':>10} {'ratio':>7} "
              f"{'smECE':>10} {'|diff|':>9}  note")
    print(header)
    print("-" * len(header))
    for kind in ("semantic", "calibrated"):
        last_rel: tuple[int, float] | None = None
        for n in args.sizes:
            conf, correct = _data(kind, n, args.seed)
            t_ours, ours = _best(lambda c=conf, y=correct: smece(c, y), args.repeats)
            t_rel = float("nan")
            diff = float("nan")
            note = ""
            if relplot is not None:
                predicted = (last_rel[1] * n / last_rel[0]) if last_rel else 0.0
                mem = _RELPLOT_BYTES_PER_POINT * n
                if predicted > _MAX_SECONDS or mem > _MAX_BYTES:
                    note = (f"relplot skipped: predicted {predicted:.0f} s / "
                            f"{mem / 2**30:.1f} GiB")
                else:
                    reps = args.repeats if n <= 10**5 else max(1, args.repeats - 1)
                    t_rel, (value, sigma) = _best(
                        lambda c=conf, y=correct: relplot.smECE(c, y, return_width=True), reps
                    )
                    diff = abs(value - ours.value)
                    last_rel = (n, t_rel)
                    if sigma != ours.sigma:
                        note = f"sigma differs: relplot {sigma}, semcal {ours.sigma}"
                    if reps != args.repeats:
                        note = (note + "; " if note else "") + f"relplot best of {reps}"
            ratio = t_rel / t_ours if t_rel == t_rel else float("nan")
            print(f"{kind:<11} {n:>9} {t_ours:>10.4f} {t_rel:>10.4f} {ratio:>6.1f}x "
                  f"{ours.value:>10.6f} {diff:>9.1e}  {note}")
    print()
    print("ratio = relplot time / semcal time (higher: semcal faster); |diff| = |smECE gap|.")
    print("Times are best-of wall-clock seconds on a shared machine: expect noise.")


if __name__ == "__main__":
    main()
