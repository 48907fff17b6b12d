"""semcal.report.reliability: curve computation and real rendered PNG/SVG/PDF files."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semcal.errors import InputError
from semcal.metrics import bootstrap_ci, ece, smece, smooth_reliability
from semcal.report import reliability as rel
from semcal.report.reliability import (
    binned_curve,
    plot_reliability,
    plot_reliability_binned,
    plot_reliability_grid,
    reliability_curve,
)


def _base(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    conf = np.round(rng.beta(2, 1, size=n) * 10) / 10
    return conf, (rng.uniform(size=n) < conf).astype(float)


def _instruct(n: int = 600, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    conf = np.minimum(1.0, np.round(rng.beta(6, 1, size=n) * 10) / 10 + 0.1)
    return conf, (rng.uniform(size=n) < 0.7 * conf).astype(float)


def _png(path: Path) -> Image.Image:
    assert path.exists() and path.stat().st_size > 10_000, path
    img = Image.open(path)
    img.load()
    assert img.format == "PNG"
    return img


# ----------------------------------------------------------------------------- curves


def test_reliability_curve_contents() -> None:
    conf, correct = _instruct()
    cv = reliability_curve(conf, correct, "instruct", n_boot=100, seed=0)
    res = smece(conf, correct)
    assert cv.smece == res.value and cv.sigma == res.sigma and cv.n == conf.size
    assert (cv.smece_lo, cv.smece_hi) == bootstrap_ci("smece", conf, correct, 100, seed=0)
    assert cv.mesh.shape == cv.mu.shape == cv.density.shape == cv.lower.shape == (200,)
    assert cv.share_at_one == pytest.approx(np.mean(conf == 1.0))
    assert cv.accuracy_at_one == pytest.approx(correct[conf == 1.0].mean())
    # the density is a probability density on [0, 1] (less the kernel's cut-off at +-1/2,
    # a few percent at this wide bandwidth)
    assert cv.sigma > 0.15
    assert np.trapezoid(cv.density, cv.mesh) == pytest.approx(1.0, abs=0.05)
    # where data are dense, the band brackets the curve and the curve is overconfident
    dense = cv.density > 0.5 * cv.density.max()
    assert dense.sum() > 10
    assert np.all(cv.lower[dense] <= cv.mu[dense] + 1e-9)
    assert np.all(cv.mu[dense] <= cv.upper[dense] + 1e-9)
    assert np.all(cv.mu[dense] < cv.mesh[dense])


def test_curve_weighs_exact_endpoints_fully() -> None:
    """Masses at exactly 0 and 1 are reflected like any other (relplot's smECE halves them)."""
    conf = np.r_[np.ones(400), np.full(400, 0.9), np.zeros(200), np.full(200, 0.2)]
    correct = np.r_[np.zeros(400), np.ones(400), np.ones(200), np.zeros(200)]
    sigma = 0.05
    curve = smooth_reliability(conf, correct, sigma=sigma, mesh_pts=201)
    t = curve.mesh[:, None]

    def k(d: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * (d / sigma) ** 2) * (np.abs(d) <= 0.5)

    w = k(t - conf) + k(t + conf) + k(2 - t - conf)
    dens = w.sum(1) / (conf.size * sigma * np.sqrt(2 * np.pi))
    np.testing.assert_allclose(curve.density, dens, rtol=5e-3, atol=1e-3)
    # NaN exactly where there is (numerically) no data: the gap between 0.2 and 0.9
    empty = np.isnan(curve.mu)
    assert empty.any() and dens[empty].max() < 1e-6 * dens.max()
    assert np.all((curve.mesh[empty] > 0.4) & (curve.mesh[empty] < 0.7))
    np.testing.assert_allclose(curve.mu[~empty], ((w * correct).sum(1) / w.sum(1))[~empty],
                               atol=1e-3)
    assert np.trapezoid(curve.density, curve.mesh) == pytest.approx(1.0, abs=0.01)


def test_smooth_curve_constant_accuracy() -> None:
    rng = np.random.default_rng(2)
    conf = rng.uniform(size=4000)
    correct = (rng.uniform(size=4000) < 0.3).astype(float)
    curve = smooth_reliability(conf, correct, sigma=0.1)
    assert np.nanmax(np.abs(curve.mu - 0.3)) < 0.06
    all_right = smooth_reliability(conf, np.ones_like(conf), sigma=0.1)
    np.testing.assert_allclose(all_right.mu, 1.0, atol=1e-9)


def test_binned_curve_contents() -> None:
    conf, correct = _base()
    cv = binned_curve(conf, correct, "base", n_bins=10, n_boot=50)
    assert cv.ece == pytest.approx(ece(conf, correct, n_bins=10))
    assert cv.stats.count.sum() == conf.size and len(cv.stats.edges) == 11
    assert cv.ece_lo <= cv.ece_hi


# ----------------------------------------------------------------------------- rendering


def test_single_curve_png(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "rel.png"  # parent folder gets created
    fig = plot_reliability(_base(), out, title="base", n_boot=50, figsize=(4, 4), dpi=100)
    img = _png(out)
    assert img.size == (400, 400)
    # the image is not blank: the curve colour (red) is present
    px = np.asarray(img.convert("RGB")).reshape(-1, 3).astype(int)
    red = (px[:, 0] > 180) & (px[:, 1] < 90) & (px[:, 2] < 90)
    assert red.sum() > 200
    ax = fig.axes[0]
    assert ax.get_title() == "base"
    (text,) = [t.get_text() for t in ax.get_legend().get_texts()]
    assert text.startswith("smECE ") and "95% CI" in text and "n=600" in text


def test_comparison_svg_and_legend(tmp_path: Path) -> None:
    out = tmp_path / "cmp.svg"
    fig = plot_reliability({"base": _base(), "instruct": _instruct()}, out, n_boot=50,
                           density="both")
    assert out.stat().st_size > 10_000
    root = ET.parse(out).getroot()
    assert root.tag.endswith("svg")
    svg = out.read_text()
    assert "smECE" in svg and "instruct" in svg  # text kept as text
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0].startswith("base: smECE") and labels[1].startswith("instruct: smECE")
    b, i = smece(*_base()).value, smece(*_instruct()).value
    assert f"{b:.3f}" in labels[0] and f"{i:.3f}" in labels[1]


@pytest.mark.parametrize("density", ["width", "strip", "none"])
def test_density_styles_and_precomputed_curves(tmp_path: Path, density: str) -> None:
    curves = [reliability_curve(*_base(), "a", n_boot=0), reliability_curve(*_instruct(), "b",
                                                                            n_boot=0)]
    out = tmp_path / f"{density}.png"
    plot_reliability(curves, out, density=density, band=False, dpi=80)
    _png(out)


def test_binned_png_and_pdf(tmp_path: Path) -> None:
    out = tmp_path / "binned.png"
    fig = plot_reliability_binned(_base(), out, n_bins=10, n_boot=30, dpi=100,
                                  figsize=(5, 4))
    assert _png(out).size == (500, 400)
    assert "ECE" in fig.axes[0].get_legend().get_texts()[0].get_text()
    out2 = tmp_path / "binned2.pdf"
    plot_reliability_binned({"base": _base(), "instruct": _instruct()}, out2,
                            strategy="mass", n_boot=0)
    assert out2.read_bytes()[:5] == b"%PDF-"


def test_grid(tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    panels = {
        "concise": {"base": _base(), "instruct": _instruct()},
        "sentence": {"base": _base(seed=3)},
        "cot": {"instruct": _instruct(seed=4), "base": _base(seed=5)},
    }
    fig = plot_reliability_grid(panels, out, ncols=2, panel_size=3.0, dpi=100, n_boot=20,
                                title="styles")
    img = _png(out)
    assert img.size == (600, 600)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["concise", "sentence", "cot"]
    # a label keeps its colour across panels
    def colour(ax, label):
        for h in ax.get_legend().legend_handles:
            if h.get_label().startswith(label):
                return h.get_color()
        raise AssertionError(label)

    assert colour(visible[0], "base") == colour(visible[2], "base")
    assert colour(visible[0], "instruct") == colour(visible[2], "instruct")
    out2 = tmp_path / "grid.svg"
    plot_reliability_grid(panels, out2, kind="binned", n_bins=5, n_boot=0)
    assert ET.parse(out2).getroot().tag.endswith("svg")


def test_draw_into_existing_axes(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4))
    ax1, ax2 = fig.subplots(1, 2)
    assert plot_reliability(_base(), ax=ax1, n_boot=0) is fig
    assert plot_reliability_binned(_base(), ax=ax2, n_boot=0) is fig
    path = rel.save_figure(fig, tmp_path / "two.png")
    _png(path)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda p: plot_reliability(_base(), p / "x.jpg"), "image format"),
        (lambda p: plot_reliability(_base(), p / "x"), "image format"),
        (lambda p: plot_reliability(_base(), p / "x.png", density="dots"), "density"),
        (lambda p: plot_reliability({}, p / "x.png"), "no curves"),
        (lambda p: plot_reliability({"a": [0.5]}, p / "x.png"), "pair"),
        (lambda p: plot_reliability(([0.5, 2.0], [1, 0]), p / "x.png"), "outside"),
        (lambda p: plot_reliability(42, p / "x.png"), "curves must be"),
        (lambda p: plot_reliability_grid({}, p / "x.png"), "non-empty"),
        (lambda p: plot_reliability_grid({"a": _base()}, p / "x.png", kind="hex"), "kind"),
        (lambda p: plot_reliability_grid({"a": _base()}, p / "x.png", n_bins=3), "unknown"),
        (lambda p: plot_reliability_binned([reliability_curve(*_base(), n_boot=0)],
                                           p / "x.png"), "BinnedCurve"),
    ],
)
def test_bad_arguments(tmp_path: Path, call, message) -> None:
    with pytest.raises(InputError, match=message):
        call(tmp_path)
    assert not list(tmp_path.iterdir())  # nothing written


def test_a_long_run_name_below_the_axes_is_wrapped_and_leaves_the_axes_their_size() -> None:
    """The report's diagram names each curve after its run (60 characters and more in a
    reproduction); a legend that wide once shrank the axes to nothing."""
    import io

    from semcal.report.reliability import LEGEND_WIDTH, plot_reliability

    rng = np.random.default_rng(0)
    conf = rng.uniform(0.1, 1.0, 150)
    correct = rng.uniform(size=150) < conf
    name = "gsm8k-1.5b-qwen2.5-coder-1.5b-instruct-test-concise-T1-9a4231"
    fig = plot_reliability({name: (conf, correct), name.replace("concise", "cot"): (conf, correct)},
                           density="both", figsize=(4.8, 4.8), dpi=100, legend="below", n_boot=20)
    fig.savefig(io.BytesIO(), format="png", bbox_inches="tight")  # runs the layout
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert all(max(map(len, lab.split("\n"))) <= LEGEND_WIDTH for lab in labels)
    assert "".join(labels[0].split("\n")).replace(" ", "").startswith(name.replace(" ", ""))
    box = ax.get_position()
    assert box.width > 0.5 and box.height > 0.4  # the axes keep most of the figure


def test_a_grid_with_many_curves_below_grows_so_the_axes_keep_their_height() -> None:
    """Six conditions of one comparison (world-1.5b.toml: three models × two styles) put 18
    lines of legend under one panel: the figure grows with the curves, the axes do not shrink."""
    import io

    from semcal.report.reliability import plot_reliability_grid

    rng = np.random.default_rng(1)
    conf = rng.uniform(0.1, 1.0, 120)
    correct = rng.uniform(size=120) < conf
    name = "world-1.5b-qwen2.5-coder-1.5b-instruct-world-sentence-T1-73a226 #{}"
    heights = {}
    for k in (2, 6):
        fig = plot_reliability_grid({"world": {name.format(i): (conf, correct) for i in range(k)}},
                                    panel_size=4.6, dpi=60, legend="below", n_boot=10)
        fig.savefig(io.BytesIO(), format="png")  # runs the constrained layout
        box = fig.axes[0].get_position()
        heights[k] = box.height * fig.get_figheight()  # inches
    assert fig.get_figheight() > 4.6 + 2
    assert heights[6] > 0.8 * heights[2]
