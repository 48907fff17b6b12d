"""semcal as a library: sample, store, collapse, grade and measure, without the CLI.

    python examples/library.py [OUT_DIR]

Runs the embedded base model on 6 bundled questions x 6 samples (about a minute on 2 CPU
cores), then re-analyses the stored samples with another collapsing function B — no
re-sampling — and writes a reliability diagram.
"""

from __future__ import annotations

import sys

from semcal.analysis import analyze_dir
from semcal.report.reliability import plot_reliability
from semcal.runner import run
from semcal.spec import RunSpec

out = sys.argv[1] if len(sys.argv) > 1 else "semcal-example"

spec = RunSpec(model="gemma-3-270m", dataset="demo", limit=6, style="concise", samples=6)
run(spec, out, quiet=True)  # every question's samples are committed to OUT/semcal.sqlite

for collapse in ("auto", "embedding"):  # another B over the same stored samples
    (res,) = analyze_dir(out, collapse=collapse, n_boot=200)
    s = res.summary  # every number of a run comes from its analysis, with the B and grader named
    print(f"B {res.collapse_label:10s} grader {res.grader_label}: accuracy={s['accuracy']:.3f} "
          f"smECE={s['smece']:.3f} [{s['smece_lo']:.3f}, {s['smece_hi']:.3f}] "
          f"AUROC={s['auroc']:.3f}")
    conf, correct = res.confidences, res.correct

plot_reliability({"gemma-3-270m concise": (conf, correct)}, f"{out}/reliability.png")
print(f"wrote {out}/reliability.png")
