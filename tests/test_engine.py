"""The completion engine's count-based parts, one module at a time, on hand-made code whose answers are known.

No model is trained here: the lexer, the block cutting, the cache n-gram, BM25 retrieval, the document window
and the shipped corpus are checked on their own (the model and the combination are in test_eval.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codedouble.server.contract import corpus, prompt
from codedouble.server.contract.corpus import CorpusError, Snippet
from codedouble.server.engine import blocks, lexer
from codedouble.server.engine.document import LINES_AFTER, Request, mode_at, window
from codedouble.server.engine.ngram import CacheNgram
from codedouble.server.engine.retrieval import Bm25Lines
from codedouble.trainer.mining.records import ChangeRecord, FileContext
from codedouble.trainer.training.examples import corpus_snippets

# --- lexer --------------------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_tokens_join_back_to_any_text(text: str) -> None:
    assert "".join(lexer.tokens(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab_1 \t\r\n(){}.:=\"'#\u00e9\u2028"))))
def test_tokens_join_back_on_code_like_text(text: str) -> None:
    toks = lexer.tokens(text)
    assert "".join(toks) == text
    assert all(toks)  # no empty token


def test_tokens_keep_a_line_break_with_the_next_lines_indentation() -> None:
    assert lexer.tokens("def f(x):\n    return x.y") == [
        "def",
        " ",
        "f",
        "(",
        "x",
        ")",
        ":",
        "\n    ",
        "return",
        " ",
        "x",
        ".",
        "y",
    ]
    assert lexer.tokens("a\r\n\tb") == ["a", "\r\n\t", "b"]
    assert lexer.words("self.value = compute(1)  # ok") == ["self", "value", "compute", "1", "ok"]


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("x = pri", "pri"),  # a word at the end may still grow
        ("    self.val", "val"),
        ("def f():\n    ", "\n    "),  # a line break whose indentation may still grow
        ("def f():\n", "\n"),
        ("a\r\n\t", "\r\n\t"),
        ("foo(", ""),  # nothing can extend a bracket
        ("x = 1 ", ""),  # a space inside a line is done
        ("x.", ""),
        ("", ""),
    ],
)
def test_open_token(prefix: str, expected: str) -> None:
    assert lexer.open_token(prefix) == expected


# --- blocks ---------------------------------------------------------------------------------------------------


def test_cut_line() -> None:
    assert blocks.cut_line("rest of line\nnext line") == "rest of line"
    assert blocks.cut_line("rest\r\nnext") == "rest"
    assert blocks.cut_line("no newline") == "no newline"
    assert blocks.cut_line("\nnext") == ""
    assert blocks.cut_line("") == ""


def test_cut_block_python_stops_before_the_first_dedented_line_and_keeps_nested_blocks() -> None:
    body = "        for x in xs:\n            if x:\n                yield x\n\n        return None\n"
    after = "\n    def other(self):\n        pass\n"
    assert blocks.cut_block(body + after, "python", 4) == body.rstrip()
    # A blank line, or one indented deeper, does not end the body; the signature's own indentation does.
    assert blocks.cut_block("    a = 1\n\n    b = 2\nc = 3\n", "python", 0) == "    a = 1\n\n    b = 2"
    assert blocks.cut_block("    a = 1\n  b = 2\n", "python", 2) == "    a = 1"
    assert blocks.cut_block("    a = 1\n", "python", 0) == "    a = 1"
    assert blocks.cut_block("", "python", 0) == ""


def test_cut_block_brace_languages_stop_after_the_closing_brace_of_the_body() -> None:
    go = "func F() {\n\tif x {\n\t\ty()\n\t}\n\treturn\n}\n\nfunc G() {\n}\n"
    body = go.split("\n", 1)[1]
    assert blocks.cut_block(body, "go", 0) == "\tif x {\n\t\ty()\n\t}\n\treturn\n}"
    js = "    const m = {a: 1};\n    return m;\n  }\n\n  other() {\n    return 2;\n  }\n"
    assert blocks.cut_block(js, "javascript", 2) == "    const m = {a: 1};\n    return m;\n  }"
    # No closing brace yet: everything (trailing whitespace dropped).
    assert blocks.cut_block("\tx := 1\n\tif x {\n\t\ty()\n\t}\n", "go", 0) == "\tx := 1\n\tif x {\n\t\ty()\n\t}"


def test_cut_block_ignores_braces_in_strings() -> None:
    go = '\ts := "}"\n\tr := \'{\'\n\tt := `{{`\n\te := "\\"}"\n\treturn s + t\n}\nfunc G() {\n}\n'
    assert blocks.cut_block(go, "go", 0) == '\ts := "}"\n\tr := \'{\'\n\tt := `{{`\n\te := "\\"}"\n\treturn s + t\n}'
    js = "  const html = `<p>${name}</p>`;\n  return html + '}';\n}\nfunction g() {}\n"
    assert blocks.cut_block(js, "javascript", 0) == "  const html = `<p>${name}</p>`;\n  return html + '}';\n}"


def test_cut_block_a_string_that_ends_in_an_escaped_backslash_closes() -> None:
    # A quote after an escaped backslash closes the string: the braces after it count again.
    go = '\ts := "a\\\\"\n\tif s == "" {\n\t\treturn\n\t}\n}\nfunc G() {\n}\n'
    assert blocks.cut_block(go, "go", 0) == '\ts := "a\\\\"\n\tif s == "" {\n\t\treturn\n\t}\n}'


@pytest.mark.parametrize(
    ("language", "text", "signature"),
    [
        ("python", "def f(a, b):\n    return a + b\n", "def f(a, b):\n"),
        (
            "python",
            "def f(\n    a: int,\n    b: str = 'x',\n) -> int:  # why\n    return a\n",
            "def f(\n    a: int,\n    b: str = 'x',\n) -> int:  # why\n",
        ),
        ("python", "    async def m(self, d={'k': 1}):\n        return d\n", "    async def m(self, d={'k': 1}):\n"),
        ("python", "class A(Base):\n    x = 1\n", "class A(Base):\n"),
        ("go", "func F(a int) error {\n\treturn nil\n}\n", "func F(a int) error {\n"),
        (
            "go",
            "func (s *S) F(\n\ta int,\n\tb string,\n) (int, error) {\n\treturn 0, nil\n}\n",
            "func (s *S) F(\n\ta int,\n\tb string,\n) (int, error) {\n",
        ),
        ("javascript", "function f(a,\n  b) {  // two\n  return a;\n}\n", "function f(a,\n  b) {  // two\n"),
        ("javascript", "  render(item) {\n    return item;\n  }\n", "  render(item) {\n"),
    ],
)
def test_split_definition(language: str, text: str, signature: str) -> None:
    sig, body = blocks.split_definition(text, language)
    assert sig == signature
    assert sig + body == text
    assert body.strip()


def test_split_definition_without_a_block_has_no_body() -> None:
    assert blocks.split_definition("f = lambda x: x + 1\n", "python") == ("f = lambda x: x + 1\n", "")
    assert blocks.split_definition("type ID int\n", "go") == ("type ID int\n", "")
    assert blocks.split_definition("", "python") == ("", "")


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("func f() {\n\treturn 1\n}\n", "\t"),
        ("if a:\n  b = 1\n  if c:\n    d = 2\ne = 3\n", "  "),
        ("def f():\n    return 1\n", "    "),
        ("class A:\n        x = 1\n", "        "),
        ("x = 1\ny = 2\n", "    "),  # nothing indented: four spaces
        ("", "    "),
    ],
)
def test_indent_unit(text: str, unit: str) -> None:
    assert blocks.indent_unit(text) == unit


def test_reindent_moves_the_least_indented_line_and_keeps_the_shape() -> None:
    body = "        a = 1\n        if a:\n            b = 2\n   \n        return b"
    assert blocks.reindent(body, "    ") == "    a = 1\n    if a:\n        b = 2\n\n    return b"
    assert blocks.reindent(body, "") == "a = 1\nif a:\n    b = 2\n\nreturn b"
    assert blocks.reindent("x\n  y", "\t") == "\tx\n\t  y"
    assert blocks.reindent("", "    ") == ""


def test_signature_indent_is_that_of_the_last_non_blank_line() -> None:
    assert blocks.signature_indent("class A:\n    def f(self):\n") == 4
    assert blocks.signature_indent("def f():\n\n   \n") == 0
    assert blocks.signature_indent("") == 0


# --- the cache n-gram -------------------------------------------------------------------------------------


SETUP = "def setup(self):\n    self.value = compute(1)\n    return self.value\n"
OTHER = "def other(x):\n    return x + 1\n"


def line(path: str, prefix: str, suffix: str = "") -> Request:
    return Request(path, prefix, suffix, "line")


def block(path: str, prefix: str, suffix: str = "") -> Request:
    return Request(path, prefix, suffix, "block")


def test_ngram_completes_the_rest_of_the_line_its_corpus_always_continues_with() -> None:
    ngram = CacheNgram([SETUP] * 3 + [OTHER])
    assert ngram.complete(line("a.py", "def setup(self):\n    self.value = ")) == "compute(1)"
    assert ngram.complete(line("a.py", "def setup(self):\n    self.value = compute(")) == "1)"
    # Right after the indentation of a new line: the whole line, never past its end.
    assert ngram.complete(line("a.py", "def setup(self):\n    ")) == "self.value = compute(1)"


def test_ngram_completes_the_word_the_cursor_is_inside() -> None:
    ngram = CacheNgram([SETUP] * 3 + [OTHER])
    assert ngram.complete(line("a.py", "def setup(self):\n    self.val")) == "ue = compute(1)"
    assert ngram.complete(line("a.py", "def setup(self):\n    self.value = comp")) == "ute(1)"


def test_ngram_weights_the_current_file_above_the_corpus() -> None:
    ngram = CacheNgram(["def combine(a, b):\n    return add(a, b)\n"] * 3 + [OTHER])
    assert ngram.complete(line("a.py", "def total(a, b):\n    return ")) == "add(a, b)"
    # The file being edited says `mul` twice after the same context (before the cursor, or after it): the
    # cache wins over three `add`s elsewhere. (A longer exact match in the corpus would rightly win instead.)
    before = "def first(a, b):\n    return mul(a, b)\n\n\ndef second(a, b):\n    return mul(a, b)\n\n\n"
    assert ngram.complete(line("a.py", before + "def total(a, b):\n    return ")) == "mul(a, b)"
    after = "\n\n\ndef first(a, b):\n    return mul(a, b)\n\n\ndef second(a, b):\n    return mul(a, b)\n"
    assert ngram.complete(line("a.py", "def total(a, b):\n    return ", after)) == "mul(a, b)"


def test_ngram_learns_from_the_cache_alone() -> None:
    ngram = CacheNgram([OTHER])
    before = "def a():\n    return registry.lookup(key, default=None)\n\n\ndef b():\n    return registry.lookup("
    assert ngram.complete(line("a.py", before)) == "key, default=None)"


def test_ngram_block_mode_returns_a_body_cut_at_its_syntactic_end() -> None:
    text = (
        "class Thing:\n"
        "    def setup(self):\n"
        "        self.value = compute(1)\n"
        "        if self.value:\n"
        "            self.ready = True\n"
        "\n"
        "        return self.value\n"
        "\n"
        "    def teardown(self):\n"
        "        self.value = None\n"
    )
    ngram = CacheNgram([text] * 2)
    expected = "        self.value = compute(1)\n        if self.value:\n            self.ready = True\n\n        return self.value"
    assert ngram.complete(block("a.py", "class Other:\n    def setup(self):\n")) == expected
    assert (
        ngram.complete(
            block("a.py", "class Other:\n    def setup(self):\n", "\n    def teardown(self):\n        pass\n")
        )
        == expected
    )


def test_ngram_block_mode_starts_one_step_inside_the_signature_whatever_its_evidence_says() -> None:
    # After `-> None:` the engineer's code holds only method bodies, two steps deep. Under a module-level
    # function the body still starts one step in (its first line's indentation is set, the rest follows).
    methods = "class Store:\n    def save(self) -> None:\n        self.flush()\n        self.saved = True\n"
    ngram = CacheNgram([methods] * 3)
    got = ngram.complete(block("a.py", "import os\n\n\ndef reset() -> None:\n"))
    assert got.startswith("    ") and not got.startswith("     "), got
    # Under a method the evidence and the signature agree: the engineer's body, two steps in.
    assert ngram.complete(block("b.py", "class Cache:\n    def save(self) -> None:\n")) == (
        "        self.flush()\n        self.saved = True"
    )
    # With its indentation half typed, the rest of it (and a tab-indented file keeps its tabs).
    assert ngram.complete(block("a.py", "def reset() -> None:\n  ")).startswith("  ")
    go = "package main\n\nfunc Save() {\n\tflush()\n}\n"
    assert CacheNgram([go]).complete(block("b.go", "package main\n\nfunc Load() {\n")).startswith("\tflush()")


def test_ngram_block_mode_in_a_brace_language_ends_at_the_closing_brace() -> None:
    go = 'package main\n\nfunc Parse(line string) string {\n\tif line == "{" {\n\t\treturn "}"\n\t}\n\treturn line\n}\n\nfunc Other() int {\n\treturn 1\n}\n'
    ngram = CacheNgram([go])
    got = ngram.complete(block("b.go", "package main\n\nfunc Parse(line string) string {\n"))
    assert got == '\tif line == "{" {\n\t\treturn "}"\n\t}\n\treturn line\n}'


@pytest.mark.parametrize(
    "request_",
    [
        line("a.py", "def setup(self):\n    self.val"),
        line("a.py", ""),
        line("a.py", "x = (", ")"),
        block("a.py", "def f():\n"),
        block("a.go", "func F() {\n", "\n}"),
        line("notes.txt", "hello wor"),
    ],
)
def test_ngram_without_a_corpus_does_not_crash(request_: Request) -> None:
    ngram = CacheNgram([])
    assert isinstance(ngram.complete(request_), str)
    assert ngram.complete(line("a.py", "def setup(self):\n    self.val")) == ""
    assert ngram.complete(line("a.py", "")) == ""


def test_ngram_is_deterministic() -> None:
    texts = [SETUP, OTHER, "def setup(self):\n    self.value = compute(2)\n"]
    request = line("a.py", "def setup(self):\n    self.value = ")
    assert len({CacheNgram(texts).complete(request) for _ in range(3)}) == 1


# --- BM25 retrieval ---------------------------------------------------------------------------------------


LOAD_CONFIG = (
    "def load_config(path, strict=False):\n"
    "    with open(path) as f:\n"
    "        data = parse(f.read())\n"
    "    if strict:\n"
    "        validate(data)\n"
    "    return data\n"
)
SAVE_REPORT = (
    "    def save_report(self, report, folder):\n"
    "        target = folder / report.name\n"
    "        target.write_text(report.render())\n"
    "        return target\n"
)
PARSE_HEADER = (
    "func ParseHeader(line string) (string, error) {\n"
    '\tparts := strings.SplitN(line, ":", 2)\n'
    "\tif len(parts) != 2 {\n"
    '\t\treturn "", errBad\n'
    "\t}\n"
    "\treturn parts[0], nil\n"
    "}\n"
)
RENDER_ITEM = "function renderItem(item) {\n  const label = item.name.trim();\n  return `<li>${label}</li>`;\n}\n"
GO_BODY_TABS = '\tparts := strings.SplitN(line, ":", 2)\n\tif len(parts) != 2 {\n\t\treturn "", errBad\n\t}\n\treturn parts[0], nil\n}'


@pytest.fixture(scope="module")
def bm25() -> Bm25Lines:
    return Bm25Lines([LOAD_CONFIG, SAVE_REPORT, PARSE_HEADER, RENDER_ITEM], ["python", "python", "go", "javascript"])


def test_bm25_continues_the_typed_line_with_the_best_hit(bm25: Bm25Lines) -> None:
    assert bm25.complete(line("a.py", "def f(folder, report):\n    target = folder")) == " / report.name"
    assert bm25.complete(line("a.py", "def f(folder, report):\n    target.write_")) == "text(report.render())"
    assert bm25.complete(line("a.py", "def f(path):\n    with open(")) == "path) as f:"
    assert bm25.complete(line("a.py", "def f(path):\n    if stri")) == "ct:"


def test_bm25_continues_after_the_tail_of_the_typed_text_that_the_hit_holds(bm25: Bm25Lines) -> None:
    # No line starts with `cfg = parse(f.re`: the best hit, `data = parse(f.read())`, continues after `parse(f.re`.
    prefix = "def f(path):\n    with open(path) as f:\n        cfg = parse(f.re"
    assert bm25.complete(line("a.py", prefix)) == "ad())"
    assert bm25.complete(line("a.py", prefix + "ad")) == "())"
    # Only the best hit is continued: `return target` holds no tail of `x = target.write_`.
    assert bm25.complete(line("a.py", "def f(target, report):\n    x = target.write_")) == ""


def test_bm25_finds_nothing_without_shared_words(bm25: Bm25Lines) -> None:
    assert bm25.complete(line("a.py", "zzz = qqq")) == ""
    assert bm25.complete(block("a.rs", "fn zzz_qqq() {\n")) == ""
    # `def` alone is a shared word: some Python body is always found for a Python signature.
    assert bm25.complete(block("a.py", "def zzz_qqq():\n")) != ""
    empty = Bm25Lines([], [])
    assert empty.complete(line("a.py", "def setup(self):\n    self.val")) == ""
    assert empty.complete(block("a.py", "def setup(self):\n")) == ""


def test_bm25_block_moves_the_body_under_a_top_level_function(bm25: Bm25Lines) -> None:
    got = bm25.complete(block("a.py", "import os\n\n\ndef load_config(path, strict=False):\n"))
    assert (
        got
        == "    with open(path) as f:\n        data = parse(f.read())\n    if strict:\n        validate(data)\n    return data"
    )
    # The hit is a method (body at 8 spaces); the target is a top-level function.
    got = bm25.complete(block("a.py", "def save_report(report, folder):\n"))
    assert got == "    target = folder / report.name\n    target.write_text(report.render())\n    return target"


def test_bm25_block_moves_the_body_under_a_method(bm25: Bm25Lines) -> None:
    got = bm25.complete(block("a.py", "class Loader:\n    def load_config(self, path, strict=False):\n"))
    assert got == (
        "        with open(path) as f:\n            data = parse(f.read())\n        if strict:\n"
        "            validate(data)\n        return data"
    )
    # A file indented by two spaces gets the body one step (two spaces) inside the signature; the body's own
    # shape is kept as it was written.
    got = bm25.complete(block("a.py", "class Loader:\n  def load_config(self, path, strict=False):\n"))
    assert (
        got
        == "    with open(path) as f:\n        data = parse(f.read())\n    if strict:\n        validate(data)\n    return data"
    )


def test_bm25_block_in_a_brace_language_closes_at_the_signatures_indentation(bm25: Bm25Lines) -> None:
    go = "package main\n\nfunc Other() {\n\tprintln(1)\n}\n\nfunc ParseHeader(line string) (string, error) {\n"
    assert bm25.complete(block("a.go", go)) == GO_BODY_TABS
    js = "export class List {\n    renderItem(item) {\n"
    assert (
        bm25.complete(block("a.js", js))
        == "        const label = item.name.trim();\n        return `<li>${label}</li>`;\n    }"
    )
    # Nothing indented before the cursor: the hit's own step (two spaces) is the engineer's style.
    js = "function renderItem(item) {\n"
    assert bm25.complete(block("a.js", js)) == "  const label = item.name.trim();\n  return `<li>${label}</li>`;\n}"
    js = "const x = 1;\nfunction wrap() {\n  return 1;\n}\nfunction renderItem(item) {\n"
    assert bm25.complete(block("a.js", js)) == "  const label = item.name.trim();\n  return `<li>${label}</li>`;\n}"


def test_bm25_block_first_function_of_a_tab_indented_language_keeps_one_kind_of_indentation(bm25: Bm25Lines) -> None:
    # Nothing indented before the cursor: the hit's own tabs are kept, never mixed with spaces.
    got = bm25.complete(block("a.go", "package main\n\nfunc ParseHeader(line string) (string, error) {\n"))
    spaces = GO_BODY_TABS.replace("\t", "    ")
    assert got in (GO_BODY_TABS, spaces), got


# --- the document: mode and window ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "language", "mode"),
    [
        ("def f():\n", "python", "block"),
        ("def f():\n    ", "python", "block"),
        ("class A:\n    def f(self):  \n", "python", "block"),
        ("if x:\n", "python", "block"),
        ("d = {\n", "python", "line"),
        ("def f():\n    x", "python", "line"),
        ("def f():", "python", "line"),
        ("", "python", "line"),
        ("func F() {\n", "go", "block"),
        ("function f() {\n  ", "javascript", "block"),
        ("if x:\n", "javascript", "line"),
        ("const a = [\n", "javascript", "line"),
        ("f() {\n", None, "block"),
    ],
)
def test_mode_at(prefix: str, language: str | None, mode: str) -> None:
    assert mode_at(prefix, language) == mode


PY_FILE = """import os
from x import y


class Foo:
    def bar(self, a):
        x = 1
        return x

    def baz(self):
        pass


TOP = 3
"""


def test_window_is_the_file_before_the_cursor_and_the_rest_of_the_innermost_definition() -> None:
    cursor = PY_FILE.index("x = 1") + 4
    ctx, before, after = window(line("pkg/m.py", PY_FILE[:cursor], PY_FILE[cursor:]))
    # No context block: the imports and `class Foo:` are in the text before the cursor itself.
    assert ctx == prompt.Context("pkg/m.py")
    assert before == PY_FILE[:cursor]
    assert after == "1\n        return x"  # the method's rest, not `baz` nor `TOP` below it


def test_window_in_a_class_body_outside_its_methods_runs_to_the_end_of_the_class() -> None:
    text = "import os\n\n\nclass Foo:\n    LIMIT = 3\n\n    def bar(self):\n        pass\n\n\nTOP = 1\n"
    cursor = text.index("3")
    ctx, before, after = window(line("m.py", text[:cursor], text[cursor:]))
    assert (ctx, before) == (prompt.Context("m.py"), text[:cursor])
    assert after == "3\n\n    def bar(self):\n        pass"


def test_window_in_brace_languages() -> None:
    js = 'import { join } from "path";\n\nexport class Store {\n  path(name) {\n    const full = join(this.root, name);\n    return full;\n  }\n  other() {}\n}\n'
    cursor = js.index("this.root")
    ctx, before, after = window(line("s.js", js[:cursor], js[cursor:]))
    assert (ctx, before) == (prompt.Context("s.js"), js[:cursor])
    assert after == "this.root, name);\n    return full;\n  }"
    go = 'package store\n\nimport "strings"\n\nfunc Clean(s string) string {\n\treturn strings.TrimSpace(s)\n}\n\nvar X = 1\n'
    cursor = go.index("TrimSpace")
    ctx, before, after = window(line("s.go", go[:cursor], go[cursor:]))
    assert (ctx, before, after) == (prompt.Context("s.go"), go[:cursor], "TrimSpace(s)\n}")


def test_window_outside_any_definition_is_the_file_before_and_nearby_lines_after() -> None:
    cursor = PY_FILE.index("TOP") + 3
    ctx, before, after = window(line("m.py", PY_FILE[:cursor], PY_FILE[cursor:]))
    assert (ctx, before, after) == (prompt.Context("m.py"), PY_FILE[:cursor], PY_FILE[cursor:])
    # A long file: all of it before the cursor (fim.py cuts it to the budget), the rest of the line and
    # LINES_AFTER more after it.
    prefix = "".join(f"v{i} = {i}\n" for i in range(100)) + "w = "
    suffix = "1\n" + "".join(f"u{i} = {i}\n" for i in range(100))
    ctx, before, after = window(line("m.py", prefix, suffix))
    assert (ctx, before) == (prompt.Context("m.py"), prefix)
    assert after == "1\n" + "\n".join(f"u{i} = {i}" for i in range(LINES_AFTER))


def test_window_for_an_unknown_language_is_the_file_before_and_nearby_lines_after() -> None:
    prefix = "".join(f"line {i}\n" for i in range(60)) + "def f():\n    x = "
    suffix = "1\n" + "".join(f"after {i}\n" for i in range(30))
    ctx, before, after = window(line("notes.txt", prefix, suffix))
    assert (ctx, before) == (prompt.Context("notes.txt"), prefix)
    assert after == "\n".join(suffix.split("\n")[: LINES_AFTER + 1])


def test_window_handles_text_that_is_not_utf8_clean() -> None:
    text = "def f():\n    s = '\udcff'\n    return s\n"  # a lone surrogate, as a surrogateescape decode leaves
    cursor = text.index("return")
    ctx, before, after = window(line("m.py", text[:cursor], text[cursor:]))
    assert ctx.path == "m.py"
    assert before.startswith("def f():") and after.startswith("return s")


# --- the corpus ---------------------------------------------------------------------------------------------


def record(after: str | None, path: str = "a.py", commit: str = "c" * 40) -> ChangeRecord:
    return ChangeRecord(
        repository="/work/repo",
        commit=commit,
        author_email="a@example.com",
        author_name="A",
        authored_at="2022-01-01T00:00:00+00:00",
        committed_at="2022-01-01T00:00:00+00:00",
        path=path,
        old_path=None,
        language="python",
        qualified_name="f",
        kind="function",
        change="added" if after else "deleted",
        before=None,
        after=after,
        line=1,
        context=FileContext("", ()),
        message="m",
    )


def test_corpus_round_trip(tmp_path: Path) -> None:
    items = [
        Snippet("a.py", "python", "def f():\n    return 'é ✓ \"q\"'\n"),
        Snippet("b/c.go", "go", "func G() {\n\treturn\n}\n"),
        Snippet("d.js", "javascript", "function h() {}\r\n// \u2028 \\ end"),
        Snippet("e.py", "python", "import os\nDEBUG = False", "module"),
    ]
    corpus.write(tmp_path, items)
    assert corpus.load(tmp_path) == items
    assert [p.name for p in tmp_path.iterdir()] == [corpus.CORPUS]  # no temporary file left
    lines = (tmp_path / corpus.CORPUS).read_text(encoding="utf-8").split("\n")
    assert len(lines) == 6 and lines[-1] == ""  # the format, then one JSON object a line
    assert json.loads(lines[0]) == {"corpus_format": corpus.CORPUS_FORMAT}
    assert json.loads(lines[2]) == {
        "path": "b/c.go",
        "language": "go",
        "kind": "definition",
        "text": "func G() {\n\treturn\n}\n",
    }
    corpus.write(tmp_path, [])
    assert corpus.load(tmp_path) == []


@pytest.mark.parametrize(
    "bad",
    [
        "{not json",
        '{"path": "a.py", "text": "x"}',
        '{"path": "a.py", "language": "python", "text": "x"}',
        '{"path": "a.py", "language": "python", "kind": "other", "text": "x"}',
        "[1, 2]",
        "",
    ],
)
def test_corpus_corrupt_line_names_the_file_and_line(tmp_path: Path, bad: str) -> None:
    corpus.write(tmp_path, [Snippet("a.py", "python", "x = 1\n")])
    path = tmp_path / corpus.CORPUS
    path.write_text(path.read_text(encoding="utf-8") + bad + "\n", encoding="utf-8")
    with pytest.raises(CorpusError) as info:
        corpus.load(tmp_path)
    assert f"{path}:3" in str(info.value)


def test_corpus_of_the_older_format_says_to_train_again(tmp_path: Path) -> None:
    # Format 1: no format line, no kinds (definitions only).
    (tmp_path / corpus.CORPUS).write_text('{"path": "a.py", "language": "python", "text": "x = 1"}\n', encoding="utf-8")
    with pytest.raises(CorpusError) as info:
        corpus.load(tmp_path)
    assert "corpus format 1" in str(info.value) and "train it again" in str(info.value)


def test_corpus_missing_says_to_train_again(tmp_path: Path) -> None:
    with pytest.raises(CorpusError) as info:
        corpus.load(tmp_path)
    assert str(tmp_path) in str(info.value)
    assert corpus.CORPUS in str(info.value)
    assert "train it again" in str(info.value)


def test_snippets_dedupe_and_skip_empty_texts() -> None:
    records = [
        record("def f():\n    return 1\n", "a.py"),
        record(None, "a.py"),
        record("   \n", "a.py"),
        record("def f():\n    return 1\n", "copy.py", commit="d" * 40),
        record("def g():\n    return 2\n", "b.py"),
    ]
    assert corpus_snippets(records) == [
        Snippet("a.py", "python", "def f():\n    return 1\n"),
        Snippet("b.py", "python", "def g():\n    return 2\n"),
    ]
    assert corpus_snippets([]) == []


def test_body_end_follows_tree_sitter_past_a_string_at_column_0() -> None:
    prefix = "class A:\n    def f(self):\n"
    body = '        x = """\ndoc at col 0\n"""\n        return x'
    # The indentation rule alone would stop at the docstring's unindented line; the parse knows better.
    assert blocks.cut_block(body, "python", 4) == '        x = """'
    assert blocks.body_end(prefix, body + "\n\n    def g(self):\n        pass", "python") == body


def test_body_end_stops_at_the_brace_that_closes_the_definition() -> None:
    body = '\tif a { return }\n\ts := "}"\n}'
    assert blocks.body_end("func F() {\n", body + "\nfunc G() {}", "go") == body


def test_body_end_falls_back_to_the_rule_when_the_body_does_not_parse() -> None:
    assert blocks.body_end("def f():\n", "    return 1 +\nx = 2", "python") == "    return 1 +"
    assert blocks.body_end("f() {\n", "  a\n}\nb", None) == "  a\n}"
