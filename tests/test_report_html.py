"""The HTML report: self-contained, escapes every untrusted string, exports the table."""

from __future__ import annotations

import base64
import csv
import re
from pathlib import Path

import pytest

from fakes import cycling
from htmltags import start_tags
from semcal.analysis import analyze_dir, write_table
from semcal.report.html import render_compare, write_compare, write_report
from semcal.runner import run
from semcal.spec import RunSpec

XSS_TEXTS = [
    "<script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "Paris",
    "Paris",
]
XSS_QUESTION = 'What is <b>bold</b>? "><img src=y onerror=alert(2)>'


def _nasty_collapse(question, texts):
    from semcal.types import Collapsed

    return Collapsed(tuple(texts), frozenset({"Paris"}))


@pytest.fixture()
def analyses(tmp_path: Path):
    qf = tmp_path / "q.jsonl"
    import json

    rows = [
        {"id": "x1", "question": XSS_QUESTION, "answers": ["</td><script>alert(3)</script>"]},
        {"id": "x2", "question": "Capital of France?", "answers": ["Paris"]},
        {"id": "x3", "question": "Capital of Italy?", "answers": ["Rome"]},
    ]
    qf.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = RunSpec(model="nasty", name='run "><script>alert(4)</script>', dataset=str(qf),
                   format="jsonl", samples=8, style="concise", k_shot=0, max_tokens=8)
    run(spec, tmp_path / "exp", sampler=cycling(XSS_TEXTS, "<script>greedy()</script>"), quiet=True)
    import semcal.analysis as an

    orig = an._collapse_fn
    an._collapse_fn = lambda name, **kw: _nasty_collapse
    try:
        return analyze_dir(tmp_path / "exp", collapse="exact", n_boot=20)
    finally:
        an._collapse_fn = orig



def test_everything_is_escaped(analyses, tmp_path: Path) -> None:
    paths = write_report(analyses, tmp_path / "exp" / "report.html")
    html = paths["html"].read_text(encoding="utf-8")
    # no injected element or attribute survives anywhere in the page
    tags = start_tags(html)
    assert not [t for t, _ in tags if t in ("script", "b", "iframe")]
    assert not [a for _, attrs in tags for a, _v in attrs if a.startswith("on")]
    assert all(v.startswith("data:image/png;base64,") for t, attrs in tags if t == "img"
               for a, v in attrs if a == "src")
    assert "<script" not in html.lower() and "<b>bold</b>" not in html
    # ... but the text is there, escaped
    assert "&lt;script&gt;alert(" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;/td&gt;&lt;script&gt;" in html


def test_report_is_self_contained(analyses, tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()  # the folder must exist: a mistyped -o is an error, not new folders
    paths = write_report(analyses, tmp_path / "r" / "report.html")
    html = paths["html"].read_text(encoding="utf-8")
    assert "<link" not in html and "http://" not in html and "https://" not in html
    imgs = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(imgs) >= 2  # reliability diagram and histogram
    for b in imgs:
        assert base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n"
    for needle in ("smECE", "ECE", "Brier", "AUROC", "accuracy", "Settings", "temperature",
                   "Confidence estimators", "semantic"):
        assert needle in html
    a = analyses[0]
    assert f"{a.summary['smece']:.3f}" in html


def test_csv_and_parquet_export(analyses, tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    paths = write_report(analyses, tmp_path / "e" / "report.html")
    with open(paths["csv"], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    assert {r["qid"] for r in rows} == {"x1", "x2", "x3"}
    assert rows[0]["question"] == XSS_QUESTION  # exports keep the raw text
    r2 = next(r for r in rows if r["qid"] == "x2")
    assert r2["prediction"] == "Paris" and r2["correct"] == "True"
    assert float(r2["confidence"]) == pytest.approx(0.5)
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    df = pd.read_parquet(paths["parquet"])
    assert len(df) == 3 and "conf_semantic" in df.columns
    with pytest.raises(Exception, match="unknown export format"):
        write_table(analyses[0].table(), tmp_path / "t.xlsx")


def test_compare_page(analyses, tmp_path: Path) -> None:
    path = write_compare(analyses + analyses, tmp_path / "cmp.html")
    html = path.read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 2
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(4)" in render_compare(analyses)
