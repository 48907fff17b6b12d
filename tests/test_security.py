"""Security: model output, dataset files and stored strings are data, never code or markup.

Covered elsewhere (referenced, not repeated here):

- tests/test_mathequiv.py::test_parser_builds_sympy_without_eval — math equivalence never
  hands model text to ``eval``/``sympify``/``parse_expr``;
- tests/test_fuzz_collapse.py — extraction, normalisation and math equivalence are total and
  time-bounded on arbitrary (hypothesis-generated and adversarial) model text;
- tests/test_report_html.py::test_everything_is_escaped — markup in sample texts, questions,
  gold aliases and run names written by the runner is escaped (labels forced to raw text);
- tests/test_store.py::test_untrusted_text_is_stored_verbatim — SQL-looking run names, ids,
  questions and sample texts round-trip.

Added here: the HTML report end to end from a store filled through the store API (every
stored string, including model/dataset/backend names and ids, with the real collapse
function), a canary that no stage of the pipeline executes model text, SQL-injection strings
in every text column the store has (collapse/grader names, labels, tokens, spec), a static
check that no SQL in ``src/semcal`` is built by string interpolation, a static check that no
module calls ``eval``/``exec``/``pickle``, and that model chat templates (from untrusted GGUF
files) render in a sandbox.
"""

from __future__ import annotations

import ast
import json
import sqlite3
from pathlib import Path

import pytest

from fakes import replying
from htmltags import start_tags
from semcal.analysis import analyze_dir
from semcal.report.html import render_compare, write_report
from semcal.store import STORE_NAME, Store
from semcal.types import Completion, Question

SRC = Path(__file__).resolve().parents[1] / "src" / "semcal"

SCRIPT = "<script>alert('pwned')</script>"
IMG = '"><img src=x onerror=alert(1)>'
SQLI = "'); DROP TABLE samples;--"
PAYLOADS = (SCRIPT, IMG)


# ----------------------------------------------------------------------------- helpers



def _assert_inert(html: str) -> None:
    """No injected element or event-handler attribute, and no payload verbatim."""
    tags = start_tags(html)
    assert not [t for t, _ in tags if t in ("script", "iframe", "object", "embed")]
    assert not [(t, a) for t, attrs in tags for a, _ in attrs if a.lower().startswith("on")]
    for t, attrs in tags:
        if t == "img":
            for a, v in attrs:
                if a == "src":
                    assert v.startswith("data:image/png;base64,"), v[:80]
    for p in PAYLOADS:
        assert p not in html
    assert "<script" not in html.lower()


def _fill_store(directory: Path) -> None:
    """A run whose every string field carries markup, written through the store API only."""
    with Store(directory) as st:
        run = st.create_run(
            name=f"run {IMG}", key="k1", spec={"k_shot": 0, "note": SCRIPT},
            model=f"model{SCRIPT}", backend=f"backend{IMG}", style="concise",
            dataset=f"data{SCRIPT}.jsonl", temperature=1.0, top_p=1.0, max_tokens=8,
            samples=4, seed=0,
        )
        st.set_run_chat(run.id, True)
        qs = [
            Question(f"id{IMG}", f"Which tag is this {SCRIPT}?", (f"gold {IMG}", SCRIPT)),
            Question("plain", "Capital of France?", ("Paris",)),
            Question(f"id{SCRIPT}", f"What is {IMG}", ("Rome",)),
        ]
        st.add_questions(run.id, qs)
        texts = [SCRIPT, IMG, f"The answer is {SCRIPT}", "Paris"]
        for q in qs:
            comps = [Completion(t, "stop", 2, (-0.5, -0.25), (t[:3], t[3:])) for t in texts]
            greedy = Completion(f"greedy {IMG}", "stop", 1, (-0.1,), (IMG,))
            st.add_batch(run.id, q.id, 0, 0, comps, [1, 2, 3, 4], greedy=greedy)
        st.mark_run_finished(run.id)


# ----------------------------------------------------------------------------- HTML report


@pytest.mark.parametrize("collapse", ["exact", "auto"])
def test_report_from_store_api_escapes_every_stored_string(tmp_path: Path, collapse: str) -> None:
    exp = tmp_path / "exp"
    _fill_store(exp)
    analyses = analyze_dir(exp, collapse=collapse, n_boot=20)
    paths = write_report(analyses, tmp_path / "report.html")
    html = paths["html"].read_text(encoding="utf-8")
    _assert_inert(html)
    # the strings are shown, escaped (jinja2 escapes < > & " ')
    assert "&lt;script&gt;alert(" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "model&lt;script&gt;" in html  # the model name
    assert "backend&#34;&gt;&lt;img" in html  # the backend name
    assert "Which tag is this &lt;script&gt;" in html  # a question
    assert "greedy &#34;&gt;&lt;img" in html  # the greedy completion
    # the compare page too
    _assert_inert(render_compare(analyses))


def test_report_survives_matplotlib_mathtext_in_run_names(tmp_path: Path) -> None:
    """Run and model names end up as plot legend labels; a stray '$' must not break the
    figure (matplotlib would parse '$...$' as TeX math)."""
    exp = tmp_path / "exp"
    with Store(exp) as st:
        run = st.create_run(
            name="cost $\\frac{1 and $x^$", key="k", spec={}, model="m$", backend="b",
            style="concise", dataset="d", temperature=1.0, top_p=1.0, max_tokens=8,
            samples=2, seed=0,
        )
        qs = [Question(f"q{i}", f"Question {i}?", ("yes",)) for i in range(3)]
        st.add_questions(run.id, qs)
        for i, q in enumerate(qs):
            st.add_batch(run.id, q.id, 0, 0,
                         [Completion("yes" if i else "no", "stop", 1), Completion("no", "stop", 1)],
                         [1, 2])
    analyses = analyze_dir(exp, collapse="exact", n_boot=10)
    html = write_report(analyses, tmp_path / "r.html")["html"].read_text(encoding="utf-8")
    assert "cost $\\frac{1 and $x^$" in html
    assert "data:image/png;base64," in html


# ----------------------------------------------------------------------------- no code execution


def test_no_stage_executes_model_text(tmp_path: Path) -> None:
    """Canary: model outputs, gold answers and a metadata cell that would create a file if
    any stage ran them as Python; the whole pipeline (load -> store -> collapse -> grade ->
    confidence -> metrics -> report) runs and the file never appears."""
    canary = tmp_path / "CANARY"
    code = f"__import__('pathlib').Path({str(canary)!r}).write_text('x')"
    qfile = tmp_path / "q.csv"
    qfile.write_text(
        "problem,answer,metadata\n"
        f"\"What is 1+1?\",\"{code.replace(chr(34), chr(34) * 2)}\",\"{{'topic': {code.replace(chr(34), chr(34) * 2)}}}\"\n",
        encoding="utf-8",
    )
    from semcal.data import load_questions

    qs = load_questions(qfile)
    assert qs[0].answers == (code,)
    texts = [code, f"The answer is {code}", f"\\boxed{{{code}}}", f"$ {code} $", "2",
             "eval(compile('1','','eval'))", "{{ ''.__class__.__mro__ }}", "#### " + code]
    exp = tmp_path / "exp"
    with Store(exp) as st:
        run = st.create_run(name="canary", key="k", spec={}, model="m", backend="b",
                            style="cot", dataset="d", temperature=1.0, top_p=1.0, max_tokens=8,
                            samples=len(texts), seed=0)
        both = [qs[0], Question("m1", "What is 2*3?", (code, "6"), task="math")]
        st.add_questions(run.id, both)
        for q in both:
            st.add_batch(run.id, q.id, 0, 0, [Completion(t, "stop", 1, (-1.0,)) for t in texts],
                         list(range(len(texts))), greedy=Completion(code, "stop", 1, (-1.0,)))
    for collapse in ("exact", "math", "auto"):
        analyses = analyze_dir(exp, collapse=collapse, n_boot=10, estimators="all")
        write_report(analyses, tmp_path / f"{collapse}.html")
    from semcal.confidence import parse_verbalized

    for t in texts:
        parse_verbalized(t)
    assert not canary.exists()


def test_chat_templates_render_in_a_sandbox(tmp_path: Path) -> None:
    """A GGUF file's chat template is untrusted (CVE-2024-34359 was code execution through it).
    The renderer semcal's llama.cpp backend uses must refuse to reach Python internals."""
    pytest.importorskip("jinja2")
    from semcal.backends.chat_template import ChatTemplate

    canary = tmp_path / "CANARY"
    evil = (
        "{% for c in ''.__class__.__mro__[1].__subclasses__() %}"
        "{% if c.__name__ == 'Popen' %}{{ c(['touch', '" + str(canary) + "']) }}{% endif %}"
        "{% endfor %}{{ messages[0]['content'] }}"
    )
    with pytest.raises(Exception) as info:  # the sandbox's SecurityError
        ChatTemplate(evil, eos_token="</s>", bos_token="<s>").render(
            [{"role": "user", "content": "hi"}])
    assert "unsafe" in str(info.value).lower() or "security" in type(info.value).__name__.lower()
    assert not canary.exists()
    src = (SRC / "backends" / "llamacpp" / "sampler.py").read_text(encoding="utf-8")
    assert "ChatTemplate(" in src  # the bounded sandbox is the one semcal uses


#: chat templates that exhaust memory or time in jinja2's plain sandbox (the first one grew
#: to 7 GB before the process aborted)
TEMPLATE_BOMBS = {
    "str-mul": "{% set x = 'A' * 1000000000 %}{{ x }}",
    "list-mul": "{% set x = [1] * 1000000000 %}{{ x|length }}",
    "pow": "{{ 10 ** 10000000 }}",
    "center": "{{ 'x'.center(1000000000) }}",
    "center-filter": "{{ 'x'|center(1000000000) }}",
    "indent": "{{ 'x\\ny'|indent(1000000000) }}",
    "replace": "{% set x = 'A' * 4000 %}{{ x.replace('A', x) }}",
    "replace-filter": "{% set x = 'A' * 4000 %}{{ x|replace('A', x) }}",
    "ns-double": "{% set ns = namespace(x='A') %}{% for i in range(60) %}"
                 "{% set ns.x = ns.x ~ ns.x %}{% endfor %}{{ ns.x|length }}",
    "ns-plus": "{% set ns = namespace(x='AAAA') %}{% for i in range(60) %}"
               "{% set ns.x = ns.x + ns.x %}{% endfor %}{{ ns.x|length }}",
    "output": "{% for i in range(100000) %}{{ 'A' * 1000 }}{% endfor %}",
    "loop-time": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "range-big": "{% for i in range(10**9) %}{% endfor %}",
    "join": "{% set x = 'A' * 3000000 %}{{ [x, x]|join }}",
    "join-method": "{% set x = 'A' * 3000000 %}{{ ''.join([x, x]) }}",
    "format-filter": "{{ '%1000000000s'|format('x') }}",
    "format-method": "{{ '{:>1000000000}'.format('x') }}",
    "format-nested": "{{ '{:>{w}}'.format('x', w=1000000000) }}",
    "percent": "{{ '%1000000000s' % 'x' }}",
    "percent-star": "{{ '%*s' % (1000000000, 'x') }}",
    "concat": "{% set x = 'A' * 4000000 %}{{ x ~ x ~ x ~ x ~ x ~ x ~ x ~ x }}",
    "zfill": "{{ 'x'.zfill(1000000000) }}",
    "wordwrap": "{{ ('a ' * 1000)|wordwrap(1000000000) }}",
    # serialising a container of 4M references to one 4M-character string (5.75 GB and
    # 36 s under `semcal run` before its size was estimated first)
    "tojson-refs": "{% set s = 'A' * 4000000 %}{% set l = [s] * 4000000 %}{{ l|tojson }}",
    "list-repr": "{% set s = 'A' * 4000000 %}{% set l = [s] * 4000000 %}{{ l }}",
    "string-filter": "{% set s = 'A' * 4000000 %}{% set l = [s] * 4000000 %}{{ l|string }}",
    "pprint": "{% set s = 'A' * 4000000 %}{% set l = [s] * 4000000 %}{{ l|pprint }}",
    "pprint-slow": "{% set l = [1] * 1000000 %}{{ l|pprint }}",
    "urlencode": "{% set s = 'A' * 4000000 %}{% set l = [(s, s)] * 4000000 %}{{ l|urlencode }}",
    "concat-list": "{% set s = 'A' * 4000000 %}{% set l = [s] * 4000000 %}{{ 'x' ~ l }}",
    "percent-list": "{% set s = 'A' * 4000000 %}{% set l = [s] * 4000000 %}{{ '%s' % (l,) }}",
    "format-list": "{% set s = 'A' * 4000000 %}{% set l = [s] * 4000000 %}{{ '{}'.format(l) }}",
    "format-fields": "{% set s = 'A' * 1000000 %}{{ ('{0}' * 1000).format(s) }}",
    "join-lists": "{% set s = 'A' * 4000000 %}{% set l = [s] * 4000000 %}{{ [l]|join }}",
    "join-generator": "{% set s = 'A' * 4000000 %}{{ [[s] * 4000000]|select|join }}",
    "batch-fill": "{% set s = 'A' * 4000000 %}{{ [1]|batch(4000000, s)|join }}",
    "slice-many": "{{ [1]|slice(4000000)|list|length }}",
    "sum-lists": "{{ ([[1]] * 100000)|sum(start=[])|length }}",
    "indent-lines": "{% set s = 'x\n' * 2000000 %}{{ s|indent(1000) }}",
    "indent-4m": "{{ ('A' * 4000000)|indent(4000000, true) }}",
    "lipsum": "{{ lipsum(n=4000000) }}",
    "wordwrap-4m": "{{ ('a ' * 2000000)|wordwrap(5) }}",
    "wordwrap-wrapstring": "{% set w = 'B' * 4000 %}{{ ('a ' * 2000)|wordwrap(1, wrapstring=w) }}",
    "center-filter-100m": "{{ 'x'|center(100000000) }}",
    "format-widths": "{{ '{:>4000000}{:>4000000}{:>4000000}'.format('a', 'b', 'c') }}",
    "percent-widths": "{{ '%4000000s%4000000s' % ('a', 'b') }}",
    "percent-star-widths": "{{ '%*s%*s' % (4000000, 'a', 4000000, 'b') }}",
    "mul-in-steps": "{% set x = 'A' * 1000000 %}{% set y = x * 3 %}{% set z = y * 3 %}{{ z }}",
    "nested-output": "{% for i in range(1000) %}{% for j in range(1000) %}{{ 'AAAAAAAAAA' }}"
                     "{% endfor %}{% endfor %}",
    "captured-output": "{% set s = 'A' * 4000000 %}{% set x %}{% for i in range(100000) %}"
                       "{{ s }}{% endfor %}{% endset %}{{ x|length }}",
    "captured-literal": "{% set x %}{% for i in range(100000) %}" + "L" * 1000
                        + "{% endfor %}{% endset %}{{ x|length }}",
    "macro-output": "{% macro m(s) %}{% for i in range(100000) %}{{ s }}{% endfor %}{% endmacro %}"
                    "{{ m('A' * 4000000)|length }}",
    "new-string-per-turn": "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}"
                           "{% set ns.l = ns.l + [('A' * 4000000) ~ i] %}{% endfor %}{{ ns.l|length }}",
    "map-center": "{{ (['x'] * 100000)|map('center', 4000000)|list|length }}",
    "sort-big": "{{ ([1] * 4000000)|sort|length }}",
    "title-big": "{{ ('a ' * 2000000)|title }}",
    "expandtabs": "{{ ('\t' * 4000000).expandtabs(4000000) }}",
    "translate": "{% set s = 'A' * 4000000 %}{{ s.translate({65: s}) }}",
    "int-mul": "{% set ns = namespace(x=3) %}{% for i in range(40) %}"
               "{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x > 0 }}",
    "int-pow": "{{ ((10 ** 64) ** 64) ** 64 }}",
    "strftime": "{{ strftime_now('%c' * 2000000) }}",
    "split-big": "{{ ('a b ' * 1000000).split()|length }}",
}

_BOMB_RUNNER = """
import json, resource, sys, time
def _peak_mb():  # VmHWM: this program's peak (ru_maxrss would include the forking parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # a failing bound dies, not the box
import threading
from semcal.backends.chat_template import ChatTemplate, TemplateLimitError
def attempt(t):
    t0 = time.monotonic()
    try:
        ChatTemplate(t).render([{"role": "user", "content": "hi"}])
        res = "rendered"
    except TemplateLimitError as exc:
        res = "limit: " + str(exc)
    except BaseException as exc:
        res = "other: " + type(exc).__name__
    return [res, time.monotonic() - t0]
out = {}
for name, t in json.loads(sys.stdin.read()).items():
    out[name] = attempt(t)
    # off the main thread no SIGALRM backs the clock up: each bound must hold by itself
    worker = threading.Thread(target=lambda: out.__setitem__(name + "@thread", attempt(t)))
    worker.start()
    worker.join()
out["maxrss_mb"] = _peak_mb()
print(json.dumps(out))
"""


def test_resource_bombs_in_a_chat_template_end_in_one_clear_error() -> None:
    """Each bomb ends in a TemplateLimitError (one line naming the bound) within the time
    limit, and the process never holds more than a few hundred MB."""
    pytest.importorskip("jinja2")
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", _BOMB_RUNNER], input=json.dumps(TEMPLATE_BOMBS),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    for name in TEMPLATE_BOMBS:
        for where in (name, name + "@thread"):
            res, seconds = out[where]
            assert res.startswith("limit: chat template: "), (where, res)
            assert "\n" not in res and seconds < 4, (where, res, seconds)
    assert out["maxrss_mb"] < 400, out["maxrss_mb"]


def test_ordinary_template_features_still_render() -> None:
    from semcal.backends.chat_template import ChatTemplate

    t = ChatTemplate(
        "{{ bos_token }}{% for m in messages %}{% if loop.first and m['role'] != 'system' %}"
        "{{ '<|system|>\\nbe brief' ~ eos_token }}{% endif %}"
        "{{ '<|' + m['role'] + '|>\\n' + m['content'] | trim }}{{ eos_token }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
        "{{ messages | tojson | length > 0 }}{{ '%d-%s' % (3, 'x') }}{{ 'ab' * 3 }}"
        "{{ range(3) | join(',') }}{{ 'a-b'.replace('-', '+') }}{{ '{}!'.format('hi') }}",
        bos_token="<s>", eos_token="</s>")
    out = t.render([{"role": "user", "content": "  Hello  "}])
    assert out == ("<s><|system|>\nbe brief</s><|user|>\nHello</s><|assistant|>\n"
                   "True3-xababab0,1,2a+bhi!")


#: ordinary template features, each rendered by the bounded sandbox to exactly jinja2's text
ORDINARY_TEMPLATES = [
    "{{ messages|tojson }}|{{ messages|tojson(indent=2) }}|{{ messages[0]|tojson(sort_keys=true) }}",
    "{{ messages }}|{{ messages|string }}|{{ messages|pprint }}|{{ [1, 'a', none, 2.5]|join(',') }}",
    "{{ [3, 1, 2]|sort|join }}{{ {'b': 1, 'a': 2}|dictsort }}{{ [1, 1, 2]|unique|list }}",
    "{{ 'a\nb'|indent(2, true) }}{{ 'x'|center(9) }}{{ ('word ' * 30)|wordwrap(20) }}",
    "{{ '%-5s|%05d' % ('ab', 42) }}{{ '%s-%s'|format('a', 'b') }}{{ '{:>6}{k}'.format('r', k='!') }}",
    "{{ {'a': 'b c'}|urlencode }}{{ 'a b'.split() }}{{ 'x\ty'.expandtabs(4) }}{{ [[1], [2]]|sum(start=[]) }}",
    "{% set ns = namespace(t='') %}{% for m in messages %}{% set ns.t = ns.t + m.content %}{% endfor %}"
    "{{ ns.t }}{% set b %}{% for i in range(3) %}<{{ i }}>{% endfor %}{% endset %}{{ b }}",
    "{% macro w(x) %}[{{ x }}]{% endmacro %}{{ w(1) ~ w('a') }}{% for x in [[1, [2]], 3] recursive %}"
    "{% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}{{ loop.depth }}{% endif %}{% endfor %}",
    "{{ range(4)|batch(3, 0)|list }}{{ range(5)|slice(2)|list }}{{ messages|map(attribute='role')|join }}"
    "{{ messages|selectattr('role', 'equalto', 'user')|list|length }}{{ 2 ** 10 }}{{ 7 * 6 }}",
]


def test_the_bounds_leave_ordinary_templates_unchanged() -> None:
    import json

    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from semcal.backends.chat_template import ChatTemplate

    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi <b> \"q\""}]
    plain = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                          extensions=[jinja2.ext.loopcontrols])
    plain.filters["tojson"] = lambda x, indent=None, sort_keys=False: json.dumps(
        x, ensure_ascii=False, indent=indent, sort_keys=sort_keys)  # transformers' tojson
    for t in ORDINARY_TEMPLATES:
        want = plain.from_string(t).render(messages=msgs, add_generation_prompt=True)
        assert ChatTemplate(t).render(msgs) == want, t
    # lipsum stays usable at a small size
    assert ChatTemplate("{{ lipsum(2, html=false) }}").render(msgs).count("\n\n") == 1


def _called_names(tree: ast.AST) -> list[tuple[str, int]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name):
                out.append((f.id, node.lineno))
            elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                out.append((f"{f.value.id}.{f.attr}", node.lineno))
    return out


def _sources() -> list[Path]:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20, "source tree not found"
    return files


def test_no_eval_exec_or_pickle_in_the_package() -> None:
    banned = {"eval", "exec", "compile", "__import__", "pickle.load", "pickle.loads",
              "marshal.loads", "yaml.load", "sympify", "parse_expr", "sympy.sympify",
              "os.system", "os.popen"}
    hits = []
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        hits += [f"{path.relative_to(SRC)}:{line} {name}()" for name, line in _called_names(tree)
                 if name in banned]
        for node in ast.walk(tree):  # subprocess with shell=True
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "shell" and isinstance(kw.value, ast.Constant) and kw.value.value:
                        hits.append(f"{path.relative_to(SRC)}:{node.lineno} shell=True")
    assert hits == []


# ----------------------------------------------------------------------------- SQL


def _sql_is_interpolated(node: ast.AST) -> bool:
    """An SQL argument built from runtime values: f-string with fields, % or + with a
    non-constant, or str.format()."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mod, ast.Add)):
        return not (isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr == "format"
    return False


def test_no_sql_is_built_by_string_interpolation() -> None:
    """Every ``.execute``/``.executemany``/``.executescript`` and the store's ``_read`` helper
    gets a constant SQL text (values go in as ``?`` parameters). Names passed on to a helper
    are followed one level: a variable used as SQL must be assigned only from constants."""
    checked = 0
    bad = []
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for fn in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
            assigned: dict[str, list[ast.AST]] = {}
            for n in ast.walk(fn):
                if isinstance(n, ast.Assign):
                    for t in n.targets:
                        if isinstance(t, ast.Name):
                            assigned.setdefault(t.id, []).append(n.value)
            for n in ast.walk(fn):
                if not (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                        and n.func.attr in ("execute", "executemany", "executescript", "_read")
                        and n.args):
                    continue
                checked += 1
                sql = n.args[0]
                where = f"{path.relative_to(SRC)}:{n.lineno}"
                if _sql_is_interpolated(sql):
                    bad.append(where)
                elif isinstance(sql, ast.Name):
                    for v in assigned.get(sql.id, []):
                        if _sql_is_interpolated(v):
                            bad.append(f"{where} (via {sql.id})")
    assert checked >= 20, f"only {checked} SQL calls found: is the store still in src/semcal?"
    assert bad == []


def test_schema_statements_come_from_a_constant() -> None:
    """The non-literal ``execute(stmt)`` calls of the store (``store/schema.py``: creating the
    tables, adding those of a migration) run pieces of the one constant schema."""
    src = (SRC / "store" / "schema.py").read_text(encoding="utf-8")
    assert 'for stmt in _SCHEMA.split(";")' in src
    assert 'for st in _SCHEMA.split(";")' in src
    tree = ast.parse(src)
    consts = [n for n in tree.body if isinstance(n, ast.Assign)
              and any(isinstance(t, ast.Name) and t.id == "_SCHEMA" for t in n.targets)]
    assert len(consts) == 1 and isinstance(consts[0].value, ast.Constant)
    others = [p.name for p in sorted((SRC / "store").glob("*.py"))
              if p.name != "schema.py" and "_SCHEMA" in p.read_text(encoding="utf-8")]
    assert others == []  # no second schema elsewhere in the package


def test_sql_injection_strings_round_trip_in_every_text_column(tmp_path: Path) -> None:
    nasty = [SQLI, "' OR '1'='1", 'x"; DELETE FROM runs; --', "\x00nul", "a?b:c@d$e", "é🙂"]
    with Store(tmp_path) as st:
        run = st.create_run(name=SQLI, key=SQLI, spec={"s": SQLI}, model=SQLI, backend=SQLI,
                            style=SQLI, dataset=SQLI, temperature=1.0, top_p=1.0, max_tokens=4,
                            samples=len(nasty), seed=0)
        qs = [Question(f"{s}#{i}", s + "?", (s, SQLI), task="qa", meta={SQLI: s})
              for i, s in enumerate(nasty)]
        st.add_questions(run.id, qs, [{"text": SQLI, "messages": [], "assistant_prefix": SQLI}] * len(qs))
        for q in qs:
            comps = [Completion(s, "stop", 1, (-1.0,), (s,)) for s in nasty]
            st.add_batch(run.id, q.id, 0, 0, comps, list(range(len(nasty))),
                         greedy=Completion(SQLI, "stop", 1, (-1.0,), (SQLI,)))
        st.save_classes(run.id, SQLI, [(q.id, len(nasty), nasty, {SQLI}, SQLI) for q in qs])
        st.save_grades(run.id, SQLI, SQLI, [(q.id, len(nasty), SQLI, 3, True) for q in qs])
    with Store(tmp_path) as st:
        (r,) = st.runs()
        assert (r.name, r.key, r.model, r.backend, r.style, r.dataset) == (SQLI,) * 6
        assert r.spec == {"s": SQLI}
        assert st.find_run(SQLI) == r and st.find_run_by_key(SQLI) == r
        assert [q.id for q in st.questions(r.id)] == [q.id for q in qs]
        assert st.questions(r.id)[0].meta == {SQLI: nasty[0]}
        for q in qs:
            got = st.samples(r.id, q.id)
            assert [s.completion.text for s in got] == nasty
            assert [s.completion.tokens for s in got] == [(s,) for s in nasty]
        assert {g.text for g in st.greedy(r.id).values()} == {SQLI}
        cls = st.classes(r.id, SQLI)
        assert cls[qs[0].id] == (len(nasty), tuple(nasty), frozenset({SQLI}), SQLI)
        assert st.grades(r.id, SQLI, SQLI)[qs[1].id] == (len(nasty), SQLI, 3, True)
        assert st.integrity_check() == "ok"
    con = sqlite3.connect(tmp_path / STORE_NAME)
    tables = {t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    n = con.execute("SELECT count(*) FROM samples").fetchone()[0]
    con.close()
    assert {"runs", "questions", "samples", "greedy", "classes", "grades", "meta"} <= tables
    assert n == len(nasty) ** 2


def test_injection_strings_in_a_dataset_round_trip_through_the_runner(tmp_path: Path) -> None:
    """A dataset whose ids and texts are SQL and markup goes through load -> run -> store
    unchanged (a fake sampler that echoes the question: pure plumbing, no model)."""
    from semcal.runner import run
    from semcal.spec import RunSpec

    rows = [{"id": SQLI, "question": f"{SQLI} {SCRIPT}?", "answers": [SQLI]},
            {"id": IMG, "question": f"{IMG}?", "answers": [IMG]}]
    qf = tmp_path / "q.jsonl"
    qf.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    spec = RunSpec(model="echo", dataset=str(qf), samples=3, style="concise", name=SQLI)
    res = run(spec, tmp_path / "exp", sampler=replying(lambda p: p.messages[-1].content, model="echo"), quiet=True, progress=False)
    assert res.complete and res.samples_total == 6
    with Store(tmp_path / "exp", readonly=True) as st:
        (r,) = st.runs()
        assert r.name == SQLI
        stored = {q.id: q for q in st.questions(r.id)}
        assert set(stored) == {SQLI, IMG}
        assert stored[SQLI].question == f"{SQLI} {SCRIPT}?" and stored[IMG].answers == (IMG,)
        for qid in (SQLI, IMG):
            texts = [s.completion.text for s in st.samples(r.id, qid)]
            assert len(texts) == 3 and all(stored[qid].question in t for t in texts)


def test_csv_export_defuses_spreadsheet_formulas(tmp_path: Path) -> None:
    """A model answer such as ``=HYPERLINK(...)`` must not become a live formula when the
    exported CSV is opened in a spreadsheet; Parquet keeps the raw text; numbers stay numbers."""
    import csv

    from semcal.analysis import write_table

    rows = [
        {"qid": "a", "prediction": '=HYPERLINK("http://x","y")', "gold": "-5", "n": -3},
        {"qid": "b", "prediction": "+cmd|' /C calc'!A0", "gold": "@SUM(A1)", "n": 2},
        {"qid": "c", "prediction": "Paris", "gold": "-1,000", "n": 0},
    ]
    p = write_table(rows, tmp_path / "t.csv")
    with open(p, newline="", encoding="utf-8") as f:
        got = list(csv.DictReader(f))
    assert got[0]["prediction"] == "'=HYPERLINK(\"http://x\",\"y\")"
    assert got[1]["prediction"].startswith("'+") and got[1]["gold"] == "'@SUM(A1)"
    assert got[0]["gold"] == "-5" and got[2]["gold"] == "-1,000" and got[0]["n"] == "-3"
    assert got[2]["prediction"] == "Paris"
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    t = pq.read_table(write_table(rows, tmp_path / "t.parquet")).to_pylist()
    assert t[0]["prediction"] == rows[0]["prediction"]
