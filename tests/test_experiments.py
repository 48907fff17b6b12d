"""Tests of semcal.reproduce: experiment specs, planning, metrics, figures, the reproduce driver."""

from __future__ import annotations

import dataclasses
import glob
import json
from pathlib import Path

import numpy as np
import pytest

from semcal.analysis import calibration_summary
from semcal.errors import InputError
from semcal.metrics import summarize
from semcal.reproduce import (
    ExperimentSpec,
    ModelEntry,
    PlannedRun,
    ReproduceResult,
    RunOutcome,
    experiment_from_dict,
    load_experiment,
    make_figures,
    parse_model_arg,
    plan,
    reproduce,
    summary_markdown,
)
from semcal.reproduce.summary import comparison_verdicts
from semcal.spec import RunSpec

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- specs


@pytest.mark.parametrize("path", sorted(glob.glob(str(ROOT / "experiments" / "*.toml"))))
def test_shipped_experiment_files_parse_and_plan(path: str) -> None:
    exp = load_experiment(path)
    runs = plan(exp)
    assert runs, path
    keys = [(r.spec.model, r.spec.dataset, r.spec.style, r.spec.temperature) for r in runs]
    assert len(keys) == len(set(keys))  # deduplicated
    for r in runs:
        assert isinstance(r.spec, RunSpec)
        assert r.spec.samples == exp.samples and r.spec.greedy is False


def test_plan_of_default_experiment() -> None:
    exp = ExperimentSpec(
        datasets=("world", "arithmetic"),
        comparisons=("styles", "tuning", "cot", "temperature"),
    )
    runs = plan(exp)
    by = {(r.model.model, r.dataset, r.style, r.temperature): r for r in runs}
    # base: concise+sentence+cot per dataset; instruct: concise+sentence per dataset;
    # temperature: 5 values on both datasets (concise), T=1 shared with the styles runs
    assert len(runs) == 6 + 4 + 2 * 4
    shared = by[("gemma-3-270m", "world", "concise", 1.0)]
    assert set(shared.comparisons) == {"styles", "tuning", "temperature"}
    assert shared.group == "base"
    assert by[("gemma-3-270m", "world", "cot", 1.0)].group == "cot"
    assert by[("smollm2-135m-instruct", "arithmetic", "sentence", 1.0)].group == "instruct"
    assert ("smollm2-135m-instruct", "world", "cot", 1.0) not in by  # cot compares base models
    assert by[("gemma-3-270m", "world", "concise", 0.3)].spec.temperature == 0.3


def test_cot_table_chooses_the_styles_and_roles_of_the_cot_comparison() -> None:
    """[cot]: an instruct model that solves the questions is compared concise vs CoT (the
    1.5B GSM8K spec); the default stays sentence vs CoT on base models."""
    exp = experiment_from_dict({
        "datasets": ["arithmetic"], "comparisons": ["cot"],
        "models": [{"model": "gemma-3-270m", "role": "base"},
                   {"model": "smollm2-135m-instruct", "role": "instruct"}],
        "cot": {"styles": ["concise", "cot"], "roles": ["instruct"]}})
    got = {(r.model.model, r.style) for r in plan(exp)}
    assert got == {("smollm2-135m-instruct", "concise"), ("smollm2-135m-instruct", "cot")}
    default = plan(dataclasses.replace(exp, cot=ExperimentSpec().cot))
    assert {(r.model.model, r.style) for r in default} == {
        ("gemma-3-270m", "sentence"), ("gemma-3-270m", "cot")}
    with pytest.raises(InputError, match="cot.roles"):
        experiment_from_dict({"cot": {"roles": ["teacher"]}})
    with pytest.raises(InputError, match="cot.styles"):
        experiment_from_dict({"cot": {"styles": ["cot"]}})
    with pytest.raises(InputError, match="unknown style"):
        experiment_from_dict({"cot": {"styles": ["cot", "poem"]}})
    with pytest.raises(InputError, match="cot"):
        experiment_from_dict({"cot": {"style": ["cot", "concise"]}})  # unknown key


def test_style_roles_choose_the_models_of_the_styles_comparison() -> None:
    """style_roles: the instruct model's concise and sentence answers are set side by side
    too (experiments/world-1.5b.toml); by default the styles comparison is base models only."""
    models = [{"model": "gemma-3-270m", "role": "base"},
              {"model": "smollm2-135m-instruct", "role": "instruct"}]
    exp = experiment_from_dict({"datasets": ["world"], "comparisons": ["styles"],
                                "models": models, "style_roles": ["instruct"]})
    runs = plan(exp)
    assert {(r.model.model, r.style) for r in runs} == {
        ("smollm2-135m-instruct", "concise"), ("smollm2-135m-instruct", "sentence")}
    assert all(r.comparisons == ("styles",) for r in runs)
    default = experiment_from_dict({"datasets": ["world"], "comparisons": ["styles"],
                                    "models": models})
    assert default.style_roles == ("base",)
    assert {r.model.model for r in plan(default)} == {"gemma-3-270m"}
    assert experiment_from_dict({"style_roles": "sft"}).style_roles == ("sft",)
    with pytest.raises(InputError, match="style_roles: unknown role 'teacher'"):
        experiment_from_dict({"style_roles": ["teacher"]})


def test_spec_validation_errors_name_the_place(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown comparison"):
        ExperimentSpec(comparisons=("styles", "nope"))
    with pytest.raises(InputError, match="role"):
        ModelEntry("m", role="teacher")
    with pytest.raises(InputError, match="instruct"):
        ExperimentSpec(models=(ModelEntry("m", "base"),), comparisons=("tuning",))
    with pytest.raises(InputError, match="temperature"):
        ExperimentSpec(temperature=experiment_from_dict({"temperature": {"values": [0]}}).temperature)
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nsamplez = 3\n')
    with pytest.raises(InputError, match="samplez") as ei:
        load_experiment(bad)
    assert str(bad) in str(ei.value)
    bad.write_text("name = [\n")
    with pytest.raises(InputError, match="malformed TOML"):
        load_experiment(bad)
    bad.write_text('[trajectories]\ncontinuations = 0\n')
    with pytest.raises(InputError, match="continuations"):
        load_experiment(bad)
    bad.write_text('[selfpredict]\ntopk = 3\n')
    with pytest.raises(InputError, match="topk"):
        load_experiment(bad)
    with pytest.raises(InputError, match="not found"):
        load_experiment(tmp_path / "missing.toml")


def test_parse_model_arg() -> None:
    assert parse_model_arg("gemma-3-270m:base") == ModelEntry("gemma-3-270m", "base")
    assert parse_model_arg("Qwen/Qwen2.5-7B-Instruct").role == "instruct"
    assert parse_model_arg("x.gguf:sft").role == "sft"
    assert parse_model_arg("Qwen/Qwen2.5-7B").role == "base"


# ----------------------------------------------------------------------------- metrics + figures


def test_run_summary_is_metrics_summarize() -> None:
    """reproduce shows the one summary (metrics.summarize through analysis): the signed error
    is ``overconfidence`` with its interval, one key convention (``_lo``/``_hi``)."""
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.2, 1.0, 400)
    over = rng.uniform(size=400) < conf - 0.2  # accuracy 0.2 below confidence
    m = calibration_summary(conf, over, n_boot=200)
    assert m["n"] == 400
    assert m["overconfidence"] == pytest.approx(conf.mean() - over.mean())
    assert m["overconfidence_lo"] <= m["overconfidence"] <= m["overconfidence_hi"]
    assert m["overconfidence_lo"] > 0.1 - 0.05
    assert m["smece"] > 0.1
    assert m == summarize(conf, over.astype(float), n_boot=200, seed=0, tilt=True) | {}
    cal = rng.uniform(size=400) < conf
    assert calibration_summary(conf, cal, n_boot=100)["smece"] < m["smece"]


def _fake_outcome(model: ModelEntry, ds: str, style: str, t: float, comps, rng) -> RunOutcome:
    spec = RunSpec(model=model.model, dataset=ds, style=style, temperature=t, greedy=False)
    pr = PlannedRun(spec, model, ds, style, t, tuple(comps))
    conf = rng.uniform(0.1, 1, 60)
    corr = rng.uniform(size=60) < conf
    oc = RunOutcome(pr, [str(i) for i in range(60)], conf, corr)
    oc.metrics = calibration_summary(conf, corr, n_boot=50)
    return oc


def test_figures_and_summary_from_outcomes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    base, inst = ModelEntry("b", "base"), ModelEntry("i", "instruct")
    exp = ExperimentSpec(models=(base, inst), comparisons=("styles", "tuning", "cot", "temperature"))
    res = ReproduceResult(out_dir=tmp_path, spec=exp)
    for ds in ("world", "arithmetic"):
        res.runs.append(_fake_outcome(base, ds, "concise", 1.0, ["styles", "tuning", "temperature"], rng))
        res.runs.append(_fake_outcome(base, ds, "cot", 1.0, ["cot"], rng))
        res.runs.append(_fake_outcome(inst, ds, "concise", 1.0, ["tuning"], rng))
        res.runs.append(_fake_outcome(base, ds, "concise", 0.5, ["temperature"], rng))
    figs = make_figures(res, tmp_path / "figures")
    assert {"reliability_styles", "reliability_tuning", "reliability_cot", "scatter",
            "temperature"} <= set(figs)
    for p in figs.values():
        assert p.exists() and 2_000 < p.stat().st_size < 400_000
    md = summary_markdown(res)
    assert md.count("\n| b |") == 6 and "| i | instruct |" in md
    assert f"{res.runs[0].metrics['smece']:.3f}" in md
    json.dumps(res.to_dict(), default=str)


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_reproduce_smoke_end_to_end(tmp_path: Path) -> None:
    # its own models: reproduce opens each run's model itself, as `semcal reproduce` does
    pytest.importorskip("llama_cpp")
    out = tmp_path / "rep"
    exp = load_experiment(ROOT / "experiments" / "smoke.toml")
    exp = dataclasses.replace(
        exp, comparisons=("tuning", "temperature"), questions=2, samples=2, n_boot=50,
        max_tokens={"concise": 8},
    )
    res = reproduce(exp, out, quiet=True)
    assert len(res.runs) == 3  # gemma T=1 (shared), gemma T=0.5, smollm2 T=1
    assert {o.run.model.role for o in res.runs} == {"base", "instruct"}
    for o in res.runs:
        assert o.metrics["n"] == 2
        assert 0 <= o.metrics["smece"] <= 1
        assert ((o.confidence >= 0.5 - 1e-9) & (o.confidence <= 1)).all()
    data = json.loads((out / "results.json").read_text())
    assert len(data["runs"]) == 3
    assert (out / "figures" / "smece_vs_accuracy.png").exists()
    assert (out / "figures" / "temperature.png").exists()
    md = (out / "summary.md").read_text()
    assert "Calibration per run" in md
    # each run's sampling time (its real model's one session): 2 questions x 2 samples stored
    timed = [ln for ln in md.splitlines() if "over 1 session, 4 samples, " in ln]
    assert len(timed) == 3 and all("tokens/s" in ln or " 0 s " in ln for ln in timed)
    # resume: a second call samples nothing new (no model is opened) and gives the same numbers
    again = reproduce(exp, out, quiet=True)
    assert not (out / "theory").exists()
    assert [o.metrics["smece"] for o in again.runs] == [o.metrics["smece"] for o in res.runs]
    # one road: `semcal analyze` and `semcal report` show the very numbers reproduce shows
    import contextlib
    import io

    from semcal.cli import main as cli_main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli_main(["analyze", str(out), "--json", "--n-boot", "50", "-q"]) == 0
    shown = {r["run"]: r for r in json.loads(buf.getvalue())}
    assert len(shown) == 3
    for o in res.runs:
        a = shown[o.run.spec.name]
        for key in ("n", "accuracy", "mean_confidence", "smece", "smece_lo", "smece_hi",
                    "overconfidence", "brier"):
            assert a[key] == o.metrics[key], (o.run.spec.name, key)
        assert (a["collapse"], a["grader"]) == (o.metrics["collapse"], o.metrics["grader"])
    assert cli_main(["report", str(out), "-q"]) == 0
    html = (out / "report.html").read_text()
    for o in res.runs:
        assert f"{o.metrics['smece']:.3f}" in html


def test_run_summary_reports_the_tilt_gain() -> None:
    """The local-loss-optimality diagnostic beside smECE: a clearly underconfident model gains
    from the tilt on held-out questions; a calibrated one does not (gain within 3 SE of 0)."""
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.05, 0.95, 400)
    calibrated = rng.random(400) < conf
    under = rng.random(400) < np.clip(conf + 0.35, 0, 0.98)  # right far more often than it says
    good = calibration_summary(conf, calibrated, n_boot=50)
    bad = calibration_summary(conf, under, n_boot=50)
    assert abs(good["tilt_gain"]) < 3 * good["tilt_gain_se"] + 1e-3
    assert bad["tilt_gain"] > 3 * bad["tilt_gain_se"] > 0
    assert np.isnan(calibration_summary(conf[:5], calibrated[:5], n_boot=10)["tilt_gain"])  # too few


def test_summary_says_when_a_comparison_cannot_tell_its_conditions_apart(tmp_path: Path) -> None:
    """Overlapping smECE intervals (or fewer than 30 questions) give a plain 'no conclusion'."""
    rng = np.random.default_rng(3)
    base, inst = ModelEntry("b", "base"), ModelEntry("i", "instruct")
    exp = ExperimentSpec(models=(base, inst), comparisons=("tuning",))
    res = ReproduceResult(out_dir=tmp_path, spec=exp)
    res.runs.append(_fake_outcome(base, "world", "concise", 1.0, ["tuning"], rng))
    res.runs.append(_fake_outcome(inst, "world", "concise", 1.0, ["tuning"], rng))
    md = summary_markdown(res)
    assert "## Can the comparisons tell their conditions apart?" in md
    row = next(line for line in md.splitlines() if line.startswith("| tuning | world |"))
    assert "**no conclusion**: intervals overlap" in row  # two calibrated samples of 60
    # a clearly separated pair: perfectly calibrated vs badly overconfident, 400 questions
    spec = RunSpec(model="i", dataset="world", style="sentence", greedy=False)
    conf = rng.uniform(0.1, 1, 400)
    for model, corr in ((base, rng.uniform(size=400) < conf), (inst, rng.uniform(size=400) < 0.1)):
        oc = RunOutcome(PlannedRun(spec, model, "world", "sentence", 1.0, ("tuning",)),
                        [str(i) for i in range(400)], conf, corr)
        oc.metrics = calibration_summary(conf, corr, n_boot=100)
        res.runs.append(oc)
    md = summary_markdown(res)
    row = next(line for line in md.splitlines()
               if line.startswith("| tuning | world |") and "sentence" in line)
    assert row.endswith("| 400 | intervals apart |")


def test_a_silent_condition_gives_no_conclusion_even_with_intervals_apart(tmp_path: Path) -> None:
    """A condition whose prediction is no answer on most questions has confidence 0 and is wrong
    there, so its smECE is near 0 whatever the model knows: seen on gemma-3-270m's chains of
    thought on GSM8K (no answer predicted on every question, smECE 0.000 [0.000, 0.000]), which
    the summary had called 'intervals apart' from its concise answers."""
    rng = np.random.default_rng(5)
    model = ModelEntry("g", "base")
    exp = ExperimentSpec(models=(model,), comparisons=("cot",))
    res = ReproduceResult(out_dir=tmp_path, spec=exp)
    spec = RunSpec(model="g", dataset="gsm8k", style="concise", greedy=False)
    for style, conf, corr, silent in (
            ("concise", rng.uniform(0.3, 1, 200), np.zeros(200, bool), 0.0),  # overconfident
            ("cot", np.zeros(200), np.zeros(200, bool), 0.9)):              # mostly no answer
        oc = RunOutcome(PlannedRun(spec, model, "gsm8k", style, 1.0, ("cot",)),
                        [str(i) for i in range(200)], conf, corr)
        oc.metrics = {**calibration_summary(conf, corr, n_boot=100), "no_prediction_rate": silent}
        res.runs.append(oc)
    (v,) = comparison_verdicts(res)
    assert v["silent"] == [("g cot", 0.9)] and not v["apart"] and v["known"]
    row = next(line for line in summary_markdown(res).splitlines() if line.startswith("| cot |"))
    assert row.endswith("| **no conclusion**: g cot predicts no answer on 90% of its questions |")
    # the same pair with the second condition answering: its intervals apart are a conclusion
    res.runs[1].metrics["no_prediction_rate"] = 0.5  # at the limit: not silent
    (v,) = comparison_verdicts(res)
    assert v["apart"] and v["silent"] == []


def test_gpu_specs_use_the_real_benchmarks_the_judge_and_one_engine_per_process() -> None:
    """The vLLM specs plan the paper's sweep on the real benchmarks (hf: adapters), with the
    judge B, an engine per Ray actor, and chat prompts from the role (not from the name)."""
    for name, datasets in (("qwen25-vllm", {"hf:triviaqa", "hf:simpleqa", "hf:gsm8k",
                                            "hf:openmathinstruct2"}),
                           ("zephyr-vllm", {"hf:triviaqa", "hf:simpleqa"})):
        exp = load_experiment(ROOT / "experiments" / f"{name}.toml")
        assert set(exp.datasets) == datasets and exp.questions >= 500 and exp.samples == 50
        assert exp.backend == "vllm" and exp.collapse == "judge" and exp.judge is not None
        assert exp.executor is not None and exp.executor.kind == "ray"
        assert exp.executor.num_gpus == 1
        runs = plan(exp)
        assert runs and all(r.spec.judge == exp.judge for r in runs)
        for r in runs:
            assert r.spec.backend_options["chat"] is (r.model.role != "base")
    # a chat field overrides the role; a model named like an instruct model stays base
    entry = ModelEntry("org/Some-7B-Instruct", "base")
    assert entry.is_chat is False and ModelEntry("x", "base", chat=True).is_chat is True
    with pytest.raises(InputError, match="chat must be true or false"):
        ModelEntry("x", "base", chat="yes")


def test_the_styles_figure_names_whose_styles_it_shows() -> None:
    """world-1.5b.toml compares an instruct model's styles: its figure was titled "Base
    models" whatever the roles."""
    from types import SimpleNamespace

    from semcal.reproduce.figures import _roles_title

    def o(role: str) -> SimpleNamespace:
        return SimpleNamespace(run=SimpleNamespace(model=ModelEntry("m", role)))

    assert _roles_title([o("base"), o("base")]) == "Base models"
    assert _roles_title([o("instruct"), o("sft")]) == "Instruct models"
    assert _roles_title([o("base"), o("instruct")]) == "Base and instruct models"
