"""The argument parser: one sub-parser per command, integer flags bounded by
:data:`semcal.limits.BOUNDS`, ``K=V`` component options, usage errors as one line."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from semcal import __version__
from semcal.cli.output import printable
from semcal.cli.signals import EXIT_ERROR
from semcal.errors import InputError
from semcal.limits import BOUNDS, check_int
from semcal.spec import tomllib

#: the demo: an embedded base model and an embedded instruct model on the bundled questions
DEMO_MODELS = ("gemma-3-270m", "smollm2-135m-instruct")
#: --limit presets of the demo: name -> (questions, samples per question)
DEMO_SIZES = {"tiny": (4, 4), "small": (8, 6), "full": (60, 8)}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {printable(message)} (see '{self.prog} --help')\n")
        raise SystemExit(EXIT_ERROR)


def _common() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("output")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bars, fewer messages")
    g.add_argument("-v", "--verbose", action="store_true", help="log what semcal does")
    g.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")
    return p


def _bounded(name: str, low: int | None = None) -> Callable[[str], int]:
    """An integer flag within the range of ``name`` in :data:`semcal.limits.BOUNDS` (one
    table for flags and spec files), checked while the arguments are parsed: a count that
    would make the work endless fails at once, naming the flag and the bound."""
    BOUNDS[name]  # a name missing from the table fails when the parser is built

    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {s!r}") from None
        try:
            return check_int(name, v, low)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _demo_limit(s: str) -> str:
    """``demo --limit``: a preset name, or a number of questions within its bound."""
    if s not in DEMO_SIZES:
        try:
            int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a number or one of {', '.join(DEMO_SIZES)}, got {s!r}") from None
        _bounded("limit")(s)
    return s


def _add_sampling_flags(p: argparse.ArgumentParser, with_model: bool = True) -> None:
    if with_model:
        p.add_argument("--model", help="embedded model name (see 'semcal models'), GGUF path or HF id")
        p.add_argument("--backend", help="sampling engine: llamacpp (default), hf, openai, vllm; mock (no model: tests, benchmarks)")
        p.add_argument("--dataset", help="bundled question set (demo, world, arithmetic) or a file")
        p.add_argument("--format", help="format/layout of a dataset file (e.g. jsonl, csv, "
                       "triviaqa, gsm8k); an error with a bundled set")
        p.add_argument("--task", help="task family of the questions, qa or math: forced on a "
                       "file's questions; picks that task's questions of a bundled set")
        p.add_argument("--style", help="response style: concise, sentence (default) or cot")
    p.add_argument("--samples", "-M", type=_bounded("samples"),
                   help="samples per question M (the most per question if adaptive)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default 1.0)")
    p.add_argument("--top-p", type=float, dest="top_p", help="nucleus sampling (default 1.0)")
    p.add_argument("--max-tokens", type=_bounded("max_tokens"), dest="max_tokens",
                   help="tokens per answer")
    p.add_argument("--seed", type=_bounded("seed"), help="run seed (default 0)")
    p.add_argument("--k-shot", type=_bounded("k_shot"), dest="k_shot",
                   help="few-shot examples for base models")
    p.add_argument(
        "--batch-questions", type=_bounded("batch_questions"), dest="batch_questions",
        help="questions per backend call (default 1; raise for engines that batch, e.g. vLLM)",
    )
    p.add_argument("--collapse", help="collapsing function B used by adaptive stopping and the "
                   "model estimators: auto (default), exact, math, embedding, or judge with a "
                   "[judge] table in the spec")
    ad = p.add_argument_group("adaptive sampling")
    ad.add_argument("--adaptive", action="store_true", default=None,
                    help="stop a question early once its plurality share is pinned down")
    ad.add_argument("--round", type=_bounded("adaptive.round"), dest="adaptive_round",
                    help="samples per round (5)")
    ad.add_argument("--epsilon", type=float, help="half-width of the share's interval (0.1)")
    ad.add_argument("--delta", type=float, help="error probability of the interval (0.05)")
    ad.add_argument("--min-samples", type=_bounded("adaptive.min_samples"), dest="min_samples",
                    help="least samples (10)")


_OPT_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _parse_opts(items: Sequence[str] | None, flag: str) -> dict[str, Any]:
    """``K=V`` options of a component (``--collapse-opt threshold=0.9``): V is read as a TOML
    value (number, true/false, "quoted string") and else taken as a plain string."""

    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not _OPT_KEY.fullmatch(key):
            raise InputError(f"{flag} wants KEY=VALUE with a name for KEY, got {item!r}")
        if len(raw) > 10_000:
            raise InputError(f"{flag} {key}: the value is longer than 10000 characters")
        try:
            value: Any = tomllib.loads(f"v = {raw.strip()}")["v"]
        except (tomllib.TOMLDecodeError, RecursionError):
            value = raw.strip()
        if isinstance(value, (dict, list)):
            raise InputError(f"{flag} {key}: give a number, true/false or a string")
        if key == "max_tokens" and isinstance(value, int):  # the judge's reply budget
            check_int("max_tokens", value, label=f"{flag} max_tokens")
        out[key] = value
    return out


def _add_opt_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--collapse-opt", action="append", dest="collapse_opt", metavar="K=V",
                   help="an option of the collapsing function, e.g. threshold=0.9 (embedding), "
                   "unmarked=last_number, max_words=8 (repeatable)")
    p.add_argument("--grader-opt", action="append", dest="grader_opt", metavar="K=V",
                   help="an option of the grader, e.g. rel_tol=0.01 (numeric) (repeatable)")


def _add_analysis_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--collapse", default=None,
                   help="collapsing function B: auto, exact, math, embedding, judge (needs a "
                   "judge model: --judge-model or the run's [judge] table); default: the B "
                   "each run was sampled with (auto unless its spec names another); analyze "
                   "takes a list (auto,exact) and shows each B's numbers side by side")
    p.add_argument("--grader", default="auto", help="grader: auto (default: numeric for math, "
                   "exact otherwise), exact, numeric, judge (needs a judge model)")
    _add_opt_flags(p)
    p.add_argument("--audit-against", dest="audit_against", metavar="B",
                   help="compare B's classes with those of a second B and list the samples they "
                   "disagree on (default for --collapse judge: auto)")
    j = p.add_argument_group("judge model (for --collapse judge and --grader judge)")
    j.add_argument("--judge-model", dest="judge_model",
                   help="embedded name, GGUF path, HF id, or a server's model name")
    j.add_argument("--judge-backend", dest="judge_backend", default=None,
                   help="llamacpp (default), hf, vllm, openai")
    j.add_argument("--judge-base-url", dest="judge_base_url",
                   help="server URL for --judge-backend openai, e.g. http://127.0.0.1:8080/v1")
    p.add_argument("--estimators", default=None,
                   help="confidence estimators to compare: 'all' or a comma list")
    p.add_argument("--run", action="append", dest="runs", help="only this run (repeatable)")
    p.add_argument("--n-boot", type=_bounded("n_boot"), default=1000, dest="n_boot",
                   help="bootstrap resamples for confidence intervals (1000)")


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    p = _Parser(prog="semcal", description="Measure semantic calibration of language models.")
    p.add_argument("--version", action="version", version=f"semcal {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_sampling_parsers(sub, common)
    _add_analysis_parsers(sub, common)
    _add_reproduce_parser(sub, common)
    sub.add_parser("models", parents=[common], help="list the embedded models",
                   description="List the models that ship with semcal (usable offline).")
    _add_label_parser(sub, common)
    return p


def _add_sampling_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """``demo``, ``run`` and ``resume``."""
    d = sub.add_parser(
        "demo", parents=[common], help="the offline demo: a base and an instruct model",
        description="Sample the embedded base model (gemma-3-270m) and instruct model "
        "(smollm2-135m-instruct) on the bundled demo questions in sentence style, print their "
        "calibration and write an HTML report. Takes a few minutes on a 2-core CPU.",
    )
    d.add_argument("--out", default="semcal-demo", help="experiment directory (semcal-demo)")
    d.add_argument("--limit", default="full", type=_demo_limit,
                   help="questions: a number or a preset (tiny, small, full)")
    d.add_argument("--samples", "-M", type=_bounded("samples"), help="samples per question")
    d.add_argument("--style", default="sentence", help="response style (sentence)")
    d.add_argument("--models", help="comma list of models (default: the two embedded ones)")
    d.add_argument("--adaptive", action="store_true", help="use adaptive sampling")
    d.add_argument("--seed", type=_bounded("seed"), default=0, help="run seed (0)")
    d.add_argument("--threads", type=_bounded("threads"), help="CPU threads for llama.cpp, 1-4096 (default: the cores that no other work keeps busy when the model loads)")
    d.add_argument("--no-model-estimators", action="store_false", dest="model_estimators",
                   help="skip P(True) and verbalised confidence (two extra model calls per "
                   "question; measured 2%% extra time for the instruct model, 20%% for the base "
                   "model, whose few-shot rating prompts are long)")

    r = sub.add_parser(
        "run", parents=[common], help="sample a run from a spec file and/or flags",
        description="Sample M answers per question and store them in OUT/semcal.sqlite. "
        "Running the same spec again into the same directory resumes it.",
    )
    r.add_argument("spec", nargs="?", help="run spec (TOML); flags override its values")
    r.add_argument("--out", required=True, help="experiment directory")
    r.add_argument("--name", help="run name in the store")
    r.add_argument("--limit", type=_bounded("limit"), help="first N questions only")
    r.add_argument("--no-greedy", action="store_false", dest="greedy", default=None,
                   help="skip the greedy completion per question (used by baselines)")
    r.add_argument("--threads", type=_bounded("threads"), help="CPU threads for llama.cpp, 1-4096 (default: the cores that no other work keeps busy when the model loads)")
    ex = r.add_argument_group("executor (where the sampling runs)")
    ex.add_argument("--executor", choices=("local", "ray"), default=None,
                    help="local (default): this process; ray: Ray actors, each with its own "
                    "model, this process the only writer of the store (pip install "
                    "'semcal[ray]')")
    ex.add_argument("--ray-address", dest="ray_address", metavar="auto|HOST:PORT",
                    help="a running Ray cluster (default: start a local one)")
    ex.add_argument("--workers", type=_bounded("workers"), help="Ray actors (default 2)")
    r.add_argument("--backend-opt", action="append", dest="backend_opt", metavar="K=V",
                   help="an option of the backend, as in the spec's [backend_options], e.g. "
                   "n_parallel=4 (llamacpp), timeout=120 (openai) (repeatable)")
    r.add_argument("--model-estimators", action="store_true", dest="model_estimators",
                   default=None,
                   help="also ask the model for P(True) and its verbalised confidence in each "
                   "question's plurality answer (two extra calls per question; shown by "
                   "'semcal analyze' and the report)")
    _add_sampling_flags(r)

    rs = sub.add_parser("resume", parents=[common], help="finish the unfinished runs of a directory",
                        description="Continue every unfinished run stored in DIR.")
    rs.add_argument("dir", help="experiment directory")
    rs.add_argument("--run", action="append", dest="runs", help="only this run (repeatable)")


def _add_analysis_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """``analyze``, ``report`` and ``compare``: read the store, no model."""
    a = sub.add_parser("analyze", parents=[common], help="metrics from the store (no model)",
                       description="Collapse, grade and score the stored samples; print metrics.")
    a.add_argument("dir", help="experiment directory")
    _add_analysis_flags(a)
    a.add_argument("--csv", help="write the per-question table as CSV")
    a.add_argument("--parquet", help="write the per-question table as Parquet")
    a.add_argument("--json", action="store_true", help="print the summaries as JSON")
    rg = a.add_argument_group("adaptive replay (what --adaptive would have saved on a fixed-M run)")
    rg.add_argument("--replay-adaptive", action="store_true", dest="replay",
                    help="apply the adaptive stopping rule to the stored samples")
    rg.add_argument("--round", type=_bounded("adaptive.round"), dest="adaptive_round",
                    help="samples per round (5)")
    rg.add_argument("--epsilon", type=float, help="half-width of the share's interval (0.1)")
    rg.add_argument("--delta", type=float, help="error probability of the interval (0.05)")
    rg.add_argument("--min-samples", type=_bounded("adaptive.min_samples"), dest="min_samples",
                    help="least samples (10)")

    rp = sub.add_parser("report", parents=[common], help="write the HTML report of a directory",
                        description="Write a self-contained HTML report (and CSV/Parquet tables).")
    rp.add_argument("dir", help="experiment directory")
    rp.add_argument("--output", "-o", help="HTML file (default DIR/report.html; the tables go "
                    "next to it, named after it: x.html -> x.questions.csv)")
    rp.add_argument("--no-tables", action="store_true", dest="no_tables",
                    help="write only the HTML file, no CSV/Parquet tables")
    _add_analysis_flags(rp)

    c = sub.add_parser("compare", parents=[common], help="several runs side by side",
                       description="Reliability curves of every run on one axes, and a table.")
    c.add_argument("dirs", nargs="+", help="experiment directories")
    c.add_argument("--output", "-o", default="compare.html", help="HTML file (compare.html)")
    c.add_argument("--collapse", default=None,
                   help="collapsing function B (default: the one each run was sampled with)")
    c.add_argument("--grader", default="auto", help="grader (auto)")
    _add_opt_flags(c)
    c.add_argument("--n-boot", type=_bounded("n_boot"), default=1000, dest="n_boot",
                   help="bootstrap resamples")


def _add_reproduce_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    x = sub.add_parser(
        "reproduce", parents=[common], help="run the paper's comparisons and draw the figures",
        description="Sample every run an experiment spec asks for (default: the embedded base and "
        "instruct models on the bundled world and arithmetic questions), compute smECE and "
        "accuracy with bootstrap CIs, run the theory diagnostics, and write results.json, "
        "summary.md and figures/*.png into OUT. Running it again resumes.",
    )
    x.add_argument("spec", nargs="?", help="experiment spec (TOML, see experiments/*.toml)")
    x.add_argument("--out", default="semcal-reproduce", help="output directory (semcal-reproduce)")
    x.add_argument("--models", nargs="+", metavar="M[:ROLE]",
                   help="models, each NAME or NAME:ROLE (role base, instruct or sft)")
    x.add_argument("--backend", help="sampling engine: llamacpp (default), hf, openai, vllm; mock (no model: tests, benchmarks)")
    x.add_argument("--datasets", nargs="+", metavar="D", help="bundled question sets or files")
    x.add_argument("--comparisons", nargs="+", metavar="C",
                   help="styles, tuning, cot, temperature, trajectories, selfpredict")
    x.add_argument("--questions", type=_bounded("questions"), help="questions per dataset")
    x.add_argument("--samples", "-M", type=_bounded("samples"), help="samples per question M")
    x.add_argument("--seed", type=_bounded("seed"), help="run seed")
    x.add_argument("--n-boot", type=_bounded("n_boot", low=1), dest="n_boot",
                   help="bootstrap resamples")


def _add_label_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    lb = sub.add_parser(
        "label", parents=[common], help="label a sample of a run by hand (a local web page)",
        description="Serve a local page (127.0.0.1 only) that shows a seeded random sample of "
        "a run's questions with their sampled responses, to group them into meanings by hand. "
        "Labels are saved as you go to DIR/labels-<run>.jsonl; 'semcal analyze DIR' then "
        "checks B against them. See docs/labelling.md.")
    lb.add_argument("dir", help="experiment directory")
    lb.add_argument("--run", help="the run to label (needed when DIR holds several)")
    lb.add_argument("--n", type=_bounded("label_questions"), default=30,
                    help="questions in the sample (30)")
    lb.add_argument("--seed", type=_bounded("seed"), default=0,
                    help="seed of the sample (0); the same seed shows the same questions")
    lb.add_argument("--port", type=_bounded("port", low=0), default=0,
                    help="port on 127.0.0.1 (default 0: a free one)")


def _flag_names(given: dict[str, Any]) -> str:
    """The command-line flags of the adaptive settings ``given`` ("--round and --delta")."""
    flags = ["--" + k.replace("_", "-") for k in given]
    return flags[0] if len(flags) == 1 else ", ".join(flags[:-1]) + " and " + flags[-1]
