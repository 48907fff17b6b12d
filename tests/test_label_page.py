"""``semcal label`` (issue 24): labelling a sample of one's own run by hand in a local page,
and the B check ``semcal analyze`` prints from those labels.

* a real headless Chromium (playwright, Debian's /usr/bin/chromium) labels two questions by
  keyboard, reloads, finds the labels kept, and model text with markup is shown as text;
* the label file survives a kill during a save: it is the old or the new version, never part;
* the server's request checks: Host, Origin, body size and content (403 / 400 / 413), and a
  bad label file is one error line.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from semcal import cli
from semcal.errors import InputError
from semcal.label.labels import (
    MAX_LABEL_BYTES,
    HandLabels,
    label_path,
    read_labels,
    remove_stale_temps,
    write_labels,
)
from semcal.label.server import MAX_BODY, LabelServer, prepare

ROOT = Path(__file__).resolve().parents[1]
XSS_IMG = "<img src=x onerror=alert(1)>"
XSS_SCRIPT = "<script>alert(2)</script>"
QUESTIONS = [("q1", "What is the capital of France?", ["Paris"]),
             ("q2", "What is the capital of Italy?", ["Rome"]),
             ("q3", "What is 6 times 7?", ["42"]),
             ("q4", "Who wrote Hamlet? <b>bold</b>", ["Shakespeare", "William Shakespeare"])]
SPEC = """model = "mock"
backend = "mock"
dataset = "{data}"
samples = 6
style = "sentence"
[backend_options]
answers = ["Paris", "paris, France", "Rome", "42", "{img}", "{script}"]
concentration = 0.5
"""
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


def _make_experiment(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    data = d / "questions.jsonl"
    data.write_text("".join(json.dumps({"id": i, "question": q, "answers": a}) + "\n"
                            for i, q, a in QUESTIONS), encoding="utf-8")
    spec = d / "spec.toml"
    spec.write_text(SPEC.format(data=data, img=XSS_IMG, script=XSS_SCRIPT), encoding="utf-8")
    out = d / "exp"
    assert cli.main(["run", str(spec), "--out", str(out), "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_experiment(tmp_path_factory.mktemp("label"))


@pytest.fixture()
def exp(experiment: Path, tmp_path: Path) -> Path:
    """A fresh copy of the experiment (each test writes its own label file)."""
    out = tmp_path / "exp"
    shutil.copytree(experiment, out)
    return out


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def _start_label(d: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-m", "semcal.cli", "label", str(d), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    line = proc.stdout.readline() if proc.stdout else ""
    m = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if not m:
        proc.kill()
        raise AssertionError(f"no URL printed: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    return proc, m.group(0)


def _stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


# ----------------------------------------------------------------------------- the browser


def _chromium() -> str:
    pytest.importorskip("playwright.sync_api",
                        reason="playwright is not installed (pip install playwright; it is in "
                        "the test extra)")
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        pytest.skip("chromium is not installed (apt-get install -y chromium; .ci/run does it)")
    return path


def _badges(page) -> list[str]:
    return [b.inner_text() for b in page.locator(".resp .badge").all()]


def test_label_two_questions_by_keyboard_in_a_real_browser(exp: Path) -> None:
    """Chromium opens the printed URL, labels two questions by keyboard only, reloads and
    finds them kept; markup in model text is shown as text (no element, no alert); the label
    file holds the two questions; ``semcal analyze`` prints the B check."""
    from playwright.sync_api import expect, sync_playwright

    chromium = _chromium()
    proc, url = _start_label(exp, "--n", "3", "--seed", "1")
    dialogs: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url)
            # (the page's CSP forbids eval: wait through locators, not wait_for_function)
            expect(page.locator("#qtext")).not_to_be_empty()
            texts = []
            for keys, correct in ((["1", "1", "2", "2", "n", "r"], "1"),
                                  (["1", "2", "3", "1", "2", "1"], "0")):
                texts += [t.inner_text() for t in page.locator(".resp .text").all()]
                for k in keys:
                    page.keyboard.press(k)
                page.keyboard.press("c")
                page.keyboard.press(correct)
                expect(page.locator("#status")).to_have_text(re.compile(r"^saved"))
                page.keyboard.press("Enter")
            expect(page.locator("#status")).to_contain_text("2 of 3 labelled")
            texts += [t.inner_text() for t in page.locator(".resp .text").all()]
            # markup written by the model is text on the page, never an element
            assert any(XSS_IMG in t for t in texts) and any(XSS_SCRIPT in t for t in texts)
            assert page.locator("img").count() == 0
            assert page.locator("#qtext *, #gold span *, .text img, .text script, .text b").count() == 0
            assert page.locator("script").count() == 1

            page.reload()
            expect(page.locator("#qtext")).not_to_be_empty()
            assert "2 labelled" in page.locator("#progress").inner_text()
            assert "question 3 of 3" in page.locator("#progress").inner_text()  # first unlabelled
            page.keyboard.press("PageUp")
            page.keyboard.press("PageUp")
            assert _badges(page) == ["class 1", "class 1", "class 2", "class 2", "no answer",
                                     "refusal"]
            assert page.locator(".bchip").count() == 0  # B hidden until asked for
            page.keyboard.press("b")
            assert page.locator(".bchip").count() == 6
            page.keyboard.press("PageDown")
            assert _badges(page) == ["class 1", "class 2", "class 3", "class 1", "class 2",
                                     "class 1"]
            shot = os.environ.get("SEMCAL_LABEL_SCREENSHOT")
            if shot:  # docs/figures/label-page.png is made this way
                page.keyboard.press("PageUp")
                page.screenshot(path=shot, full_page=True)
            browser.close()
    finally:
        rc, err = _stop(proc)
    assert dialogs == []
    assert rc == 0 and err.strip().count("\n") == 0 and "label server stopped" in err, err

    rows = [json.loads(x) for x in label_path(exp, "mock-sentence").read_text().splitlines()]
    assert [r["gold"] for r in rows] == ["1", "<no-gold>"]
    assert rows[0]["labels"] == ["1", "1", "2", "2", "<none>", "<refusal>"]
    assert all(r["run"] == "mock-sentence" and r["samples"] == list(range(6)) for r in rows)

    r = subprocess.run([sys.executable, "-m", "semcal.cli", "analyze", str(exp), "--n-boot",
                        "200"], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0, r.stderr
    assert "B check, run mock-sentence" in r.stdout and "2 questions labelled" in r.stdout
    assert re.search(r"smECE\s+B [\d.]+\s+hand [\d.]+\s+B - hand", r.stdout)
    assert "B's error" in r.stdout
    r = subprocess.run([sys.executable, "-m", "semcal.cli", "analyze", str(exp), "--json",
                        "--n-boot", "100"], capture_output=True, text=True, env=_env(), timeout=120)
    bc = json.loads(r.stdout)[0]["b_check"]
    assert bc["questions"] == 2 and bc["deltas"]["n"] == 2 and 0 <= bc["f1"] <= 1


# ----------------------------------------------------------------------------- kills


def _entries(d: Path, version: int) -> list[HandLabels]:
    session = prepare(d, None, n=10)
    return [HandLabels(session.run, q["id"], tuple(q["samples"]),
                       tuple(str(1 + (version + i) % 9) for i in range(len(q["samples"]))),
                       str(1 + version % 9)) for q in session.questions]


def test_a_kill_between_write_and_rename_leaves_the_old_file(exp: Path) -> None:
    """A writer killed after writing its temporary file and before the rename: the label file
    is the old version, whole; the stale temporary file is removed on the next start."""
    path = label_path(exp, "mock-sentence")
    write_labels(path, _entries(exp, 0))
    old = path.read_bytes()
    code = (
        "import os, signal, sys\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from semcal.label import labels as L\n"
        "from semcal.label.server import prepare\n"
        "def killed(a, b): os.kill(os.getpid(), signal.SIGKILL)\n"
        "os.replace = killed\n"
        "s = prepare(sys.argv[1], None, n=10)\n"
        "L.write_labels(s.path, [L.HandLabels(s.run, q['id'], tuple(q['samples']),"
        " tuple('9' for _ in q['samples']), '9') for q in s.questions])\n")
    r = subprocess.run([sys.executable, "-c", code, str(exp), str(Path(__file__).parent)],
                       env=_env(), timeout=120)
    assert r.returncode == -signal.SIGKILL
    assert path.read_bytes() == old
    temps = list(exp.glob(f".{path.name}.*.tmp"))
    assert len(temps) == 1 and b'"9"' in temps[0].read_bytes()  # the new version, complete
    assert remove_stale_temps(path, older_than=0) == 1 and not list(exp.glob(".*.tmp"))


def test_sigkill_during_saves_never_leaves_a_partial_file(exp: Path) -> None:
    """The server saving as fast as it can, killed with SIGKILL at 8 random moments (more, up
    to 24, until one lands inside a save: on a loaded machine the server may not have begun
    saving yet): the file is always one whole version (every line parses, every question has
    its labels)."""
    import random

    versions = [[e.to_json() for e in _entries(exp, v)] for v in range(2)]
    path = label_path(exp, "mock-sentence")
    rng = random.Random(0)
    kills_mid_save = 0
    write_labels(path, _entries(exp, 0))
    for attempt in range(24):
        if attempt >= 8 and kills_mid_save:
            break
        proc, url = _start_label(exp, "--n", "10")
        port = int(url.rsplit(":", 1)[1].strip("/"))
        stop = threading.Event()

        def hammer(port: int = port, stop: threading.Event = stop) -> None:
            i = 0
            while not stop.is_set():
                try:
                    for row in versions[i % 2]:
                        _post(port, json.dumps(row).encode())
                except (OSError, http.client.HTTPException):
                    return
                i += 1

        t = threading.Thread(target=hammer)
        t.start()
        time.sleep(rng.uniform(0.05, 0.4))
        proc.kill()
        proc.wait(timeout=20)
        stop.set()
        t.join(timeout=20)
        kills_mid_save += bool(list(exp.glob(f".{path.name}.*.tmp")))
        rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
        hand = read_labels(path, "mock-sentence", {r["id"]: r["samples"] for r in rows})
        assert len(hand) == len(QUESTIONS)
        assert all(h.complete for h in hand.values())
    # the kills do land inside saves (a temporary file left behind) at least once
    assert kills_mid_save >= 1


# ----------------------------------------------------------------------------- requests


def _request(port: int, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        hdrs = {"Host": f"127.0.0.1:{port}", **(headers or {})}
        if body is not None and "Content-Length" not in hdrs:
            hdrs["Content-Length"] = str(len(body))
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        if body is not None and int(hdrs.get("Content-Length", 0)) <= MAX_BODY:
            conn.send(body)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {"html": raw.decode()}
        return resp.status, {**payload, "_headers": dict(resp.getheaders())}
    finally:
        conn.close()


def _post(port: int, body: bytes, origin: str | None = "same", **headers: str) -> tuple[int, dict]:
    h = {"Content-Type": "application/json", **headers}
    if origin == "same":
        h["Origin"] = f"http://127.0.0.1:{port}"
    elif origin is not None:
        h["Origin"] = origin
    return _request(port, "POST", "/api/label", body, h)


@pytest.fixture()
def server(exp: Path):
    srv = LabelServer(prepare(exp, None, n=10))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _row(srv: LabelServer, **change) -> dict:
    q = srv.session.questions[0]
    return {"run": srv.session.run, "id": q["id"], "samples": q["samples"],
            "labels": ["1"] * len(q["samples"]), "gold": "1", **change}


def test_host_and_origin_are_checked(server: LabelServer) -> None:
    port = server.port
    assert _request(port, "GET", "/")[0] == 200
    assert _request(port, "GET", "/", headers={"Host": f"localhost:{port}"})[0] == 200
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1:1", ""):
        assert _request(port, "GET", "/api/data", headers={"Host": host})[0] == 403
    body = json.dumps(_row(server)).encode()
    assert _post(port, body, origin=None)[0] == 403
    assert _post(port, body, origin="http://evil.example")[0] == 403
    assert _post(port, body, origin="null")[0] == 403
    assert _post(port, body, origin=f"http://127.0.0.1:{port}", Host="evil.example")[0] == 403
    assert not server.session.path.exists()  # nothing refused was written
    status, reply = _post(port, body)
    assert status == 200 and reply["complete"] is True
    assert server.session.path.exists()


def test_the_page_is_served_with_a_strict_content_security_policy(server: LabelServer) -> None:
    status, reply = _request(server.port, "GET", "/")
    csp = reply["_headers"]["Content-Security-Policy"]
    assert status == 200 and "default-src 'none'" in csp and "script-src 'nonce-" in csp
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert f'<script nonce="{nonce}">' in reply["html"]
    assert "innerHTML" not in reply["html"] and "http" not in reply["html"].split("<script")[0]
    assert not re.search(r"<(link|img|iframe)\b|src=", reply["html"])


@pytest.mark.parametrize(("change", "needle"), [
    ({"id": "nope"}, "is not a sampled question"),
    ({"run": "other"}, "labels of run 'other'"),
    ({"samples": [0, 1]}, "'samples' must be the run's sample indices"),
    ({"labels": ["1"]}, "'labels' must be a list of 6 labels"),
    ({"labels": ["x" * 1000] * 6}, "a label must be 1-9"),
    ({"labels": [1] * 6}, "a label must be 1-9"),
    ({"gold": "paris"}, "'gold' must be 1-9"),
    ({"extra": 1}, "unknown key"),
])
def test_a_bad_label_is_400_with_a_message(server: LabelServer, change: dict, needle: str) -> None:
    status, reply = _post(server.port, json.dumps(_row(server, **change)).encode())
    assert status == 400 and needle in reply["error"], reply
    assert not server.session.path.exists()


def test_bad_json_and_oversize_bodies(server: LabelServer) -> None:
    port = server.port
    assert _post(port, b"{not json")[0] == 400
    assert _post(port, b"[1, 2]")[1]["error"].endswith("must be a JSON object")
    assert _post(port, b"\xff\xfe")[0] == 400
    assert _post(port, b"[" * 100_000 + b"]" * 100_000)[0] == 400  # nested too deeply
    status, reply = _post(port, b"{}", **{"Content-Type": "text/plain"})
    assert status == 400 and "application/json" in reply["error"]
    status, reply = _post(port, b"x", **{"Content-Length": str(MAX_BODY + 1)})
    assert status == 413
    assert _request(port, "POST", "/api/label", b"{}", {"Origin": f"http://127.0.0.1:{port}",
                                                        "Content-Length": "-1"})[0] == 411
    assert not server.session.path.exists()
    assert _post(port, json.dumps(_row(server)).encode())[0] == 200  # still serving


@pytest.mark.parametrize(("content", "needle"), [
    ("{not json\n", "invalid JSON in the label file"),
    ('{"run": "another-run", "id": "q1", "samples": [], "labels": [], "gold": null}\n',
     "labels of run 'another-run', not of run 'mock-sentence'"),
    ('{"run": "mock-sentence", "id": "q99", "samples": [], "labels": [], "gold": null}\n',
     "is not a sampled question"),
    ("huge", "more than the 16 MiB"),
])
def test_a_bad_label_file_is_one_error_line(exp: Path, content: str, needle: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = label_path(exp, "mock-sentence")
    if content == "huge":
        with path.open("wb") as f:
            f.truncate(MAX_LABEL_BYTES + 1)
    else:
        path.write_text(content, encoding="utf-8")
    before = path.stat()
    for argv in (["label", str(exp)], ["analyze", str(exp), "--n-boot", "0"]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("semcal: error: ") and err.count("\n") == 1 and needle in err, err
        assert str(path) in err
    assert path.stat().st_size == before.st_size and path.stat().st_mtime == before.st_mtime


def test_the_label_file_name_is_protected_and_distinct_per_run(exp: Path) -> None:
    from semcal.files import check_output

    names = {label_path(exp, r) for r in ("a", "a/b", "a_b", "../x", "x" * 200)}
    assert len(names) == 5 and all(p.parent == exp for p in names)
    for p in names:
        with pytest.raises(InputError, match="label file"):
            check_output(p)


def test_the_sample_is_seeded_and_several_runs_need_a_name(exp: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    a, b, c = (prepare(exp, None, n=2, seed=s) for s in (0, 0, 5))
    assert [q["id"] for q in a.questions] == [q["id"] for q in b.questions]
    assert len(a.questions) == 2
    assert prepare(exp, "mock-sentence", n=99).questions  # every question when n is larger
    assert cli.main(["label", str(exp), "--run", "nope"]) == 2
    assert "no run 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["label", str(exp), "--n", "0"])
    assert exc.value.code == 2 and "argument --n" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the B check


def _label_as_b(exp: Path, perturb: bool = False) -> list[HandLabels]:
    """Hand labels that copy B's classes (each B class a digit), the correct class where B's
    grade says so; ``perturb`` moves the first response of every question to a class of its own."""
    session = prepare(exp, None, n=10)
    out = []
    for q in session.questions:
        digits: dict[str, str] = {}
        labels = []
        for lab in q["b_labels"]:
            if lab in ("<no answer>", "<refusal>"):
                labels.append("<none>" if lab == "<no answer>" else "<refusal>")
            else:
                labels.append(digits.setdefault(lab, str(len(digits) + 1)))
        if perturb:
            labels[0] = "9"
        gold = digits.get(q["b_prediction"], "<no-gold>") if q["b_correct"] else "<no-gold>"
        out.append(HandLabels(session.run, q["id"], tuple(q["samples"]), tuple(labels), gold))
    return out


def test_hand_labels_equal_to_b_give_a_perfect_check(exp: Path) -> None:
    from semcal.analysis import analyze_dir

    write_labels(label_path(exp, "mock-sentence"), _label_as_b(exp))
    bc = analyze_dir(exp, n_boot=200)[0].b_check
    assert bc["questions"] == len(QUESTIONS) and bc["incomplete"] == 0
    assert bc["precision"] == bc["recall"] == bc["f1"] == 1.0 and bc["grade_error"] == 0.0
    for m in ("accuracy", "mean_confidence", "smece"):
        assert abs(bc["deltas"][f"{m}_delta"]) < 1e-9
    assert bc["verdict"].startswith("B's error is smaller than the metrics' own intervals")


def test_the_b_check_is_metric_deltas_on_the_labelled_questions(exp: Path) -> None:
    """The check's deltas are exactly metric_deltas on (B's labels and verdicts, the hand
    labels): no second implementation of smECE or of the paired bootstrap."""
    from semcal.analysis import analyze_dir
    from semcal.collapse.labelled import MetricQuestion, hand_correct, metric_deltas

    hand = _label_as_b(exp, perturb=True)
    write_labels(label_path(exp, "mock-sentence"), hand)
    a = analyze_dir(exp, n_boot=300)[0]
    by_id = {q.qid: q for q in a.questions}
    expected = metric_deltas([MetricQuestion(tuple(by_id[h.qid].labels), by_id[h.qid].correct,
                                             h.labels, h.gold != "<no-gold>"
                                             and hand_correct(h.labels, h.gold))
                              for h in hand], n_boot=300, seed=0)
    assert a.b_check["deltas"] == expected
    assert a.b_check["recall"] == 1.0 and a.b_check["precision"] < 1.0


def test_the_report_has_a_b_check_section(exp: Path, tmp_path: Path) -> None:
    write_labels(label_path(exp, "mock-sentence"), _label_as_b(exp)[:2])
    out = tmp_path / "r.html"
    assert cli.main(["report", str(exp), "-o", str(out), "--no-tables", "-q", "--n-boot",
                     "50"]) == 0
    html = out.read_text(encoding="utf-8")
    assert "B checked by hand" in html and "against the hand labels of 2 questions" in html
    assert "B &minus; hand" in html
