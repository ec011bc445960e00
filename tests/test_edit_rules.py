"""The next-edit core (issue 16) as units: tokens (server/edits/tokens.py), rewrite rules (rules.py), where they
match (matching.py), the edit followed in the editor (live.py), what is proposed (propose.py), the artifact's
edits.jsonl (server/contract/edits.py), the trainer's miner (trainer/training/edit_patterns.py), `codedouble
edits`, and eval's next-edit helpers (trainer/evaluation/next_edit.py). tests/test_next_edits.py drives the
same code end to end through the real server."""

from __future__ import annotations

import json
import keyword
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codedouble.server.contract import edits as contract
from codedouble.server.contract.edits import EditPattern, EditsError
from codedouble.server.edits import live, matching, propose, rules, tokens
from codedouble.server.edits.rules import Lit, Rewrite, Var
from codedouble.trainer import cli
from codedouble.trainer.evaluation import next_edit
from codedouble.trainer.mining.miner import MineOptions, mine
from codedouble.trainer.mining.records import ChangeRecord, FileContext
from codedouble.trainer.training import edit_patterns
from conftest import ALICE

ROOT = Path(__file__).resolve().parent.parent
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def changes(old: str, new: str, language: str = "python") -> list[rules.Change]:
    return rules.changes(tokens.tokenize(old, language), tokens.tokenize(new, language))


def one_change(old: str, new: str, language: str = "python") -> rules.Change:
    found = changes(old, new, language)
    assert len(found) == 1, found
    return found[0]


def matches(rewrite: Rewrite, text: str, language: str = "python") -> list[tuple[str, str]]:
    """(the text a match replaces, its replacement) for each place `rewrite` applies in `text`."""
    found = matching.find(rewrite, matching.Index(tokens.tokenize(text, language)))
    return [(text[m.start : m.end], m.replacement) for m in found]


def apply(text: str, found: list[matching.Match]) -> str:
    for m in sorted(found, key=lambda m: m.start, reverse=True):
        text = text[: m.start] + m.replacement + text[m.end :]
    return text


# --- tokens --------------------------------------------------------------------------------------------------


def test_strings_and_comments_are_one_token_each() -> None:
    text = 's = "a b, c(d)"  # say (hi), x\nt = f"{a} b" + \'q\'\n'
    doc = tokens.tokenize(text, "python")
    assert doc.parsed
    assert doc.texts() == ["s", "=", '"a b, c(d)"', "# say (hi), x", "t", "=", 'f"{a} b"', "+", "'q'"]
    kinds = {t.text: t.kind for t in doc.tokens}
    assert kinds['"a b, c(d)"'] == kinds['f"{a} b"'] == kinds["'q'"] == "literal"
    assert kinds["# say (hi), x"] == "comment"
    assert (kinds["s"], kinds["="]) == ("word", "punct")
    # Comments are no node a variable may stand for; the string is.
    comment = doc.texts().index("# say (hi), x")
    assert comment not in doc.node_ends
    assert doc.node_ends[2] == [3]


def test_go_strings_comments_and_keywords() -> None:
    doc = tokens.tokenize('func f() error {\n\t// why (not)\n\treturn fmt.Errorf("x: %w", err)\n}\n', "go")
    kinds = {t.text: t.kind for t in doc.tokens}
    assert kinds["// why (not)"] == "comment"
    assert kinds['"x: %w"'] == "literal"
    assert kinds["return"] == kinds["func"] == "keyword"
    assert kinds["Errorf"] == "word"


def covers(doc: tokens.Tokens) -> None:
    """Tokens index the document: each is its own text, in order, and what lies between them is whitespace."""
    text, cursor, rebuilt = doc.text, 0, ""
    for t in doc.tokens:
        assert text[t.start : t.end] == t.text
        assert t.start >= cursor, (t, cursor)
        gap = text[cursor : t.start]
        assert gap.strip() == "", (gap, t)
        rebuilt += gap + t.text
        cursor = t.end
    assert text[cursor:].strip() == ""
    assert rebuilt + text[cursor:] == text


NON_ASCII = 'def é(x):\n    s = "😀 é"  # 😀😀\n    return ñ + s + "\U0001f600"\n'


@pytest.mark.parametrize("language", ["python", None, "cobol"])
def test_tokens_index_the_text_even_with_non_ascii(language: str | None) -> None:
    doc = tokens.tokenize(NON_ASCII, language)
    covers(doc)
    assert doc.parsed is (language == "python")
    by_text = {t.text: t for t in doc.tokens}
    # String (not byte) offsets: é is 2 bytes in UTF-8 and 😀 4, one character each.
    assert by_text["ñ"].start == NON_ASCII.index("ñ") and by_text["ñ"].end == NON_ASCII.index("ñ") + 1
    assert by_text['"😀 é"'].end - by_text['"😀 é"'].start == 5
    assert "é" in by_text


@st.composite
def python_texts(draw: st.DrawFn) -> str:
    names = st.sampled_from(["a", "b", "é", "日本", "x_1", "self"])
    lines = []
    for _ in range(draw(st.integers(1, 6))):
        shape = draw(
            st.sampled_from(
                [
                    "{0} = {1}({2})",
                    "{0}.{1} = '{2} 😀'",
                    "return {0} + {1}  # {2} é",
                    "{0}({1}, {2}=[1, 2.5])",
                    'if {0}:\n        {1} = "{2}\\n"',
                ]
            )
        )
        lines.append("    " + shape.format(draw(names), draw(names), draw(names)))
    return "def f():\n" + "\n".join(lines) + "\n"


@PROPERTY
@given(python_texts())
def test_tokens_of_generated_code_index_the_text(text: str) -> None:
    for language in ("python", None):
        doc = tokens.tokenize(text, language)
        covers(doc)
        for start, end in doc.node_spans():
            assert 0 <= start < end <= len(doc.tokens)


def test_the_fallback_lexer_for_a_language_without_a_grammar() -> None:
    text = 'x := "a // b" // note\ny = 3.5e2 /* c */ + z->w'
    doc = tokens.tokenize(text, "cobol")
    assert not doc.parsed
    assert doc.texts() == ["x", ":=", '"a // b"', "// note", "y", "=", "3.5e2", "/* c */", "+", "z", "->", "w"]
    assert [t.kind for t in doc.tokens] == [
        "word",
        "punct",
        "literal",
        "comment",
        "word",
        "punct",
        "literal",
        "comment",
        "punct",
        "word",
        "punct",
        "word",
    ]
    # Without a tree a variable stands for one word or literal.
    assert doc.node_spans() == [(i, i + 1) for i, t in enumerate(doc.tokens) if t.kind in ("word", "literal")]
    covers(doc)


def test_window_keeps_only_the_spans_inside() -> None:
    text = "a = foo(b, c)\nd = bar(e)\n"
    doc = tokens.tokenize(text, "python")
    first, last = 2, 8  # `foo ( b , c )`
    part = tokens.window(doc, first, last)
    assert part.texts() == ["foo", "(", "b", ",", "c", ")"]
    assert part.tokens[0].start == text.index("foo")  # offsets stay the document's
    spans = set(part.node_spans())
    assert spans == {(s - first, e - first) for s, e in doc.node_spans() if first <= s and e <= last}
    assert (0, 6) in spans  # the call
    assert all(0 <= s < e <= last - first for s, e in spans)
    # The assignment starting at 0 and the one after the window are gone.
    assert part.node_ends and max(e for _, e in spans) <= 6


def test_index_at() -> None:
    doc = tokens.tokenize("ab = cd\n", "python")
    assert [tokens.index_at(doc, k) for k in range(9)] == [0, 0, 1, 1, 2, 2, 2, 3, 3]


# --- rules ---------------------------------------------------------------------------------------------------

PRINT_OLD = "def f():\n    print(x)\n    y = 2\n"
PRINT_NEW = "def f():\n    log.debug(x)\n    y = 2\n"


def test_a_renamed_call_is_a_rule_for_any_arguments() -> None:
    change = one_change(PRINT_OLD, PRINT_NEW)
    assert PRINT_OLD[change.start : change.end] == "print(x)"
    rewrite = rules.generalise(change)
    assert rewrite.describe() == "print … → log.debug…"
    assert rewrite.before == (Lit("print", "word"), Var(1, "node"))
    # Not bare `print`, nor the next statement after it, nor a method of the same name.
    doc = "print(a, b)\nprint(z.q)\nprint\nx = print\nself.print(1)\n"
    assert matches(rewrite, doc) == [("print(a, b)", "log.debug(a, b)"), ("print(z.q)", "log.debug(z.q)")]
    # The same edit made only where the very same text is.
    assert matches(rules.literal(change), "print(x)\nprint(y)\n") == [("print(x)", "log.debug(x)")]


def test_an_inserted_argument_grows_to_the_call_and_keeps_its_name() -> None:
    change = one_change("def f(a):\n    return foo(a, b)\n", "def f(a):\n    return foo(ctx, a, b)\n")
    rewrite = rules.generalise(change)
    assert rewrite.before == (
        Lit("foo", "word"),
        Lit("(", "punct"),
        Var(1, "word"),
        Lit(",", "punct"),
        Var(2, "word"),
        Lit(")", "punct"),
    )
    assert rewrite.render({1: "c", 2: "d"}) == "foo(ctx, c, d)"
    assert matches(rewrite, "foo(c, d)\nfoo(c)\nbar(1, 2)\n") == [("foo(c, d)", "foo(ctx, c, d)")]
    assert rules.kind(rewrite) == "insert"


def test_go_return_wrapped_keeps_the_closing_paren() -> None:
    old = "func f() error {\n\tif err != nil {\n\t\treturn err\n\t}\n\treturn nil\n}\n"
    new = old.replace("return err", 'return fmt.Errorf("f: %w", err)')
    change = one_change(old, new, "go")
    assert old[change.start : change.end] == "return err"
    rewrite = rules.generalise(change)
    assert rewrite.render({}) == 'return fmt.Errorf("f: %w", err)'
    other = "func g() error {\n\tif err != nil {\n\t\treturn err\n\t}\n\treturn nil\n}\n"
    found = matching.find(rewrite, matching.Index(tokens.tokenize(other, "go")))
    assert apply(other, found) == other.replace("return err", 'return fmt.Errorf("f: %w", err)')


@pytest.mark.parametrize("after", ["", "\n    y = 2\n"])
def test_text_appended_to_a_statement_is_a_change(after: str) -> None:
    """` + 1` appended to a line belongs to the statement before it, not to the next line's: the region grows
    until the new text's node reaches the inserted tokens (the call's own node ends before them)."""
    old = "def f(a):\n    x = compute(a)" + (after or "\n")
    new = old.replace("compute(a)", "compute(a) + 1")
    change = one_change(old, new)
    assert old[change.start : change.end] in ("compute(a)", "x = compute(a)")
    rewrite = rules.literal(change)
    assert matches(rewrite, "x = compute(a)\nx = compute(b)\n") == [("x = compute(a)", "x = compute(a) + 1")]


def test_a_changed_value_stays_literal() -> None:
    rewrite = rules.generalise(one_change("x = 1\n", "x = 2\n"))
    assert not any(isinstance(e, Var) for e in rewrite.before)
    assert matches(rewrite, "y = 1\nx = 1\nx = 3\n") == [("x = 1", "x = 2")]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("x = 1  # a\n", "x = 1  # b\n"),
        ("def f():\n    x = 1\n", "def f():\n    # hello\n    x = 1\n"),
        ("x = 1\n", "x  =  1\n"),
        ("def f(a, b):\n    return g(a,b)\n", "def f(a, b):\n    return g(\n        a, b\n    )\n"),
        ("x = 1\n", "x = 1\n"),
    ],
)
def test_comments_and_whitespace_are_no_change(old: str, new: str) -> None:
    assert changes(old, new) == []


def test_anti_unification_keeps_what_agrees_and_varies_the_rest() -> None:
    found = [
        one_change(f"def f():\n    foo({arg}, limit)\n", f"def f():\n    foo(ctx, {arg}, limit)\n")
        for arg in ("a", "b", "c")
    ]
    assert len({c.shape() for c in found}) == 1
    rewrite = rules.anti_unify(found)
    # `foo` and `limit` agree in all three: literal; the first argument varies: a variable.
    assert rewrite.before == (
        Lit("foo", "word"),
        Lit("(", "punct"),
        Var(1, "word"),
        Lit(",", "punct"),
        Lit("limit", "word"),
        Lit(")", "punct"),
    )
    assert rewrite.render({1: "q"}) == "foo(ctx, q, limit)"
    assert matches(rewrite, "foo(z, limit)\nfoo(z, other)\n") == [("foo(z, limit)", "foo(ctx, z, limit)")]
    # All agreeing: the rule is the literal edit.
    same = rules.anti_unify([found[0], found[0]])
    assert same == rules.literal(found[0])


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("self.assertEquals(a, b)\n", "self.assertEqual(a, b)\n", "rename/named/general"),
        ("a = 'localhost'\n", "a = '127.0.0.1'\n", "replace/named/literal"),
        # A changed number is not a rename: renames are identifiers (and the dots between their parts).
        ("x = 1\n", "x = 2\n", "replace/named/literal"),
        ("x = foo(a)\n", "x = bar.baz(a)\n", "rename/named/general"),
        ("def f(a):\n    return foo(a, b)\n", "def f(a):\n    return foo(ctx, a, b)\n", "insert/named/general"),
        ("z = [1, 2, 3]\n", "z = [1, 2]\n", "delete/named/general"),
    ],
)
def test_kind_and_class(old: str, new: str, expected: str) -> None:
    rewrite = rules.generalise(one_change(old, new))
    assert rules.edit_class(rewrite) == expected


def test_kind_of_hand_made_rewrites() -> None:
    w = Lit("foo", "word")
    assert rules.kind(Rewrite((w,), ("bar",))) == "rename"
    assert rules.kind(Rewrite((w, Lit("(", "punct"), Var(1), Lit(")", "punct")), ("foo(ctx, ", Var(1), ")"))) == (
        "insert"
    )
    assert rules.kind(Rewrite((w, Lit("(", "punct"), Var(1), Lit(")", "punct")), ("foo()",))) == "delete"
    assert rules.kind(Rewrite((w,), ("foo()",))) == "insert"
    assert rules.kind(Rewrite((w,), ("1 + 2",))) == "replace"
    assert rules.edit_class(Rewrite((Var(1), Lit("=", "punct"), Lit("'a'", "literal")), (Var(1), " = 'b c'"))) == (
        "replace/unnamed/general"
    )


# --- properties: a rename at one site ------------------------------------------------------------------------

NAMES = ["alpha", "beta", "gamma", "delta", "eps", "zeta"]
SHAPES = [
    "{0} = {1}({2})",
    "return {0}.{1} + {2}",
    "{0}({1}, {2})",
    "if {0}:\n        {1} = {2}",
    "{0}[{1}] = {2}",
    "{0} = {1}.{2}({0})",
]


@st.composite
def renamed_at_one_site(draw: st.DrawFn) -> tuple[str, str, int]:
    """(before, after, the site's string index in before): one identifier occurrence renamed."""
    statements = [
        (draw(st.sampled_from(SHAPES)), [draw(st.sampled_from(NAMES)) for _ in range(3)])
        for _ in range(draw(st.integers(1, 5)))
    ]
    sites = [(k, slot) for k, (shape, _) in enumerate(statements) for slot in range(3) if f"{{{slot}}}" in shape]
    k, slot = draw(st.sampled_from(sites))
    new_name = draw(st.sampled_from(["renamed", "other_name", "x9"]))

    def render(marked: str | None) -> tuple[str, int]:
        text, site = "def f(alpha):\n", -1
        for i, (shape, names) in enumerate(statements):
            parts = shape.split(f"{{{slot}}}", 1) if i == k else None
            if parts is None:
                text += "    " + shape.format(*names) + "\n"
                continue
            # Only the first occurrence of the slot is renamed (`{0} = {1}.{2}({0})` has two).
            head = "    " + parts[0].format(*names) if "{" in parts[0] else "    " + parts[0]
            site = len(text) + len(head)
            tail = parts[1].format(*names)
            text += head + (marked or names[slot]) + tail + "\n"
        return text, site

    before, site = render(None)
    after, _ = render(new_name)
    assert not keyword.iskeyword(new_name)
    return before, after, site


@PROPERTY
@given(renamed_at_one_site())
def test_a_rename_at_one_site_is_found_and_its_literal_rule_makes_it(case: tuple[str, str, int]) -> None:
    before, after, site = case
    found = changes(before, after)
    assert found, (before, after)
    [change] = found
    assert change.start <= site < change.end
    made = [m for m in matching.find(rules.literal(change), matching.Index(tokens.tokenize(before, "python")))]
    at_site = [m for m in made if m.start <= site < m.end]
    assert len(at_site) == 1, (made, site)
    assert apply(before, at_site) == after


@PROPERTY
@given(renamed_at_one_site(), python_texts())
def test_matches_are_sorted_apart_and_change_nothing_outside(case: tuple[str, str, int], doc: str) -> None:
    before, after, _ = case
    [change] = changes(before, after)
    for rewrite in (rules.generalise(change), rules.literal(change)):
        for text in (before, doc, before + doc):
            found = matching.find(rewrite, matching.Index(tokens.tokenize(text, "python")))
            assert all(a.end <= b.start for a, b in zip(found, found[1:], strict=False)), found
            assert all(m.start < m.end for m in found)
            result = apply(text, found)
            # Outside the matches the text is as it was.
            cursor, shift = 0, 0
            for m in found:
                assert result[cursor + shift : m.start + shift] == text[cursor : m.start]
                shift += len(m.replacement) - (m.end - m.start)
                cursor = m.end
            assert result[cursor + shift :] == text[cursor:]


@PROPERTY
@given(renamed_at_one_site())
def test_render_with_a_matches_bindings_writes_the_carried_text_back(case: tuple[str, str, int]) -> None:
    before, after, site = case
    [change] = changes(before, after)
    rewrite = rules.generalise(change)
    doc = tokens.tokenize(before, "python")
    found = matching.find(rewrite, matching.Index(doc))
    at_site = [m for m in found if m.start <= site < m.end]
    assert len(at_site) == 1
    # The generalised rule makes the same edit at the site it was learnt from.
    assert apply(before, at_site) == after


# --- live ----------------------------------------------------------------------------------------------------


def reference_span(old: str, new: str) -> tuple[int, int, int]:
    prefix = 0
    while prefix < min(len(old), len(new)) and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < min(len(old), len(new)) - prefix and old[-1 - suffix] == new[-1 - suffix]:
        suffix += 1
    return prefix, len(old) - suffix, len(new) - suffix


@settings(max_examples=300, deadline=None)
@given(st.text("ab\né", max_size=12), st.text("ab\né", max_size=12))
def test_changed_span_is_the_common_prefix_and_suffix(old: str, new: str) -> None:
    start, old_end, new_end = live.changed_span(old, new)
    assert (start, old_end, new_end) == reference_span(old, new)
    assert old[:start] + new[start:new_end] + old[old_end:] == new


LIVE = "def f():\n    print(a)\n    x = 1\n    y = 2\n    z = 3\n    print(b, c)\n\n\ndef g():\n    print(d)\n"


def typed(session: live.Session, uri: str, text: str, old: str, new: str) -> str:
    """Type `new` over `old` (its first occurrence) as an editor sends it: delete, then a keystroke each."""
    at = text.index(old)
    text = text[:at] + text[at + len(old) :]
    session.changed(uri, text)
    for k in range(1, len(new) + 1):
        session.changed(uri, text[:at] + new[:k] + text[at:])
    return text[:at] + new + text[at:]


def test_keystrokes_at_one_place_are_one_edit_and_a_change_elsewhere_ends_the_run() -> None:
    session = live.Session()
    session.opened("u", LIVE, "python")
    text = typed(session, "u", LIVE, "print", "log.debug")
    [made] = session.made()
    assert made.rewrite.describe() == "print … → log.debug…"
    assert (made.uri, made.line, made.language) == ("u", 1, "python")
    assert made.literal == rules.literal(one_change(LIVE, text))
    assert not session.recent  # the run is still going
    # An edit 4 lines away ends the run: its rewrite joins the recent ones.
    text = typed(session, "u", text, "print(b, c)", "log.debug(b, c)")
    assert [e.rewrite for e in session.recent] == [made.rewrite]
    assert [e.rewrite for e in session.made()] == [made.rewrite]  # the same rule is listed once
    # One line from the run is the same run (an edit of a call spread over its lines); three lines away is not.
    text = typed(session, "u", text, "x = 1", "x = 7")
    assert [e.rewrite.describe() for e in session.made()] == ["x = 1 → x = 7", "print … → log.debug…"]
    recent = list(session.recent)
    typed(session, "u", text, "y = 2", "y = 8")
    assert list(session.recent) == recent  # the run goes on


def test_a_closed_document_keeps_its_rewrite() -> None:
    session = live.Session()
    session.opened("u", LIVE, "python")
    typed(session, "u", LIVE, "print", "log.debug")
    session.closed("u")
    assert [e.rewrite.describe() for e in session.recent] == ["print … → log.debug…"]
    assert [e.rewrite.describe() for e in session.made()] == ["print … → log.debug…"]
    # Changing a document never opened opens it: nothing was made there.
    session.changed("v", "x = 1\n")
    session.changed("v", "x = 2\n")
    assert [e.uri for e in session.made()] == ["v", "u"]


def test_rewrites_between_texts_give_the_line() -> None:
    text = LIVE.replace("y = 2", "y = 5")
    [(general, literal, line)] = live.rewrites(LIVE, text, "python")
    assert line == 3
    assert general == literal and literal.describe() == "y = 2 → y = 5"
    assert live.rewrites(LIVE, LIVE, "python") == []


# --- propose -------------------------------------------------------------------------------------------------


def test_confident_is_a_lower_bound() -> None:
    assert propose.confident(0, 0) == 0.0
    assert propose.confident(0, 10) == pytest.approx(0.0)
    for total in (1, 2, 5, 17, 100):
        bounds = [propose.confident(right, total) for right in range(total + 1)]
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds)  # strictly monotone in right
        for right in range(1, total + 1):
            assert 0 < propose.confident(right, total) < right / total
    assert propose.confident(13, 15) >= propose.MIN_PRECISION  # the prior's renames pass the default bar
    assert propose.confident(10, 20) < propose.confident(100, 200) < 0.5  # more evidence: a tighter bound


def made(rewrite: Rewrite, literal: Rewrite | None = None) -> live.MadeEdit:
    return live.MadeEdit(rewrite, "u", 0, "python", literal)


def pattern(rewrite: Rewrite, count: int, left: int, language: str = "python") -> EditPattern:
    return EditPattern(language, rewrite, count, ("c" * 40,), count, "2024-01-01", "2024-02-01", left)


LITERAL_RENAME = rules.literal(one_change("def f():\n    old_name(x)\n", "def f():\n    new_name(x)\n"))
GENERAL_RENAME = rules.generalise(one_change("def f():\n    print(x)\n", "def f():\n    log.debug(x)\n"))


def test_gate_prior_and_measured_classes() -> None:
    assert rules.edit_class(LITERAL_RENAME) == "rename/named/literal"
    assert rules.edit_class(GENERAL_RENAME) == "rename/named/general"
    open_gate = propose.Gate(0.0, {"rename/named/literal": (100, 0)})
    assert open_gate.allows(LITERAL_RENAME) and open_gate.allows(GENERAL_RENAME)
    # The prior: literal renames yes, generalised renames no.
    assert propose.Gate().allows(LITERAL_RENAME) and not propose.Gate().allows(GENERAL_RENAME)
    assert propose.Gate().choose(made(GENERAL_RENAME, LITERAL_RENAME)) == LITERAL_RENAME
    assert propose.Gate().choose(made(GENERAL_RENAME)) is None
    # Measured enough: the double's own figure replaces the prior, either way.
    measured = propose.Gate(classes={"rename/named/literal": (20, 2), "rename/named/general": (20, 19)})
    assert not measured.allows(LITERAL_RENAME) and measured.allows(GENERAL_RENAME)
    assert measured.choose(made(GENERAL_RENAME, LITERAL_RENAME)) == GENERAL_RENAME
    # Too few measured: the prior stands.
    few = propose.Gate(classes={"rename/named/literal": (propose.MIN_EVIDENCE - 1, 0)})
    assert few.allows(LITERAL_RENAME)


def test_gate_trusts_habits_by_their_own_evidence() -> None:
    gate = propose.Gate()
    assert not gate.trusts(pattern(GENERAL_RENAME, count=1, left=9))
    assert not gate.trusts(pattern(GENERAL_RENAME, count=5, left=5))
    assert gate.trusts(pattern(GENERAL_RENAME, count=10, left=0))
    assert propose.Gate(0.0).trusts(pattern(GENERAL_RENAME, count=1, left=9))


def test_proposals_do_not_overlap_and_the_session_wins() -> None:
    text = "def g():\n    print(a)\n    print(b)\n    other(c)\n"
    habit = rules.literal(one_change("def f():\n    print(a)\n", "def f():\n    warn(a)\n"))
    other = rules.generalise(one_change("def f():\n    other(x)\n", "def f():\n    third(x)\n"))
    found = propose.propose(
        text, "python", [made(GENERAL_RENAME)], [pattern(habit, 10, 0), pattern(other, 10, 0)], min_precision=0.0
    )
    assert [(text[p.start : p.end], p.new_text, p.source) for p in found] == [
        ("print(a)", "log.debug(a)", "session"),
        ("print(b)", "log.debug(b)", "session"),
        ("other(c)", "third(c)", "history"),
    ]
    assert all(a.end <= b.start for a, b in zip(found, found[1:], strict=False))
    assert found[2].title.startswith("Your usual edit: other … → third… (10 times since 2024-01")
    # Without the session's rewrite the habit takes the first call; another language's habit never fires.
    alone = propose.propose(text, "python", [], [pattern(habit, 10, 0), pattern(other, 10, 0, "go")], 0.0)
    assert [(text[p.start : p.end], p.new_text) for p in alone] == [("print(a)", "warn(a)")]
    # The default gate: a generalised rename just made is not proposed, its literal form is.
    gated = propose.propose(text, "python", [made(GENERAL_RENAME, LITERAL_RENAME)])
    assert gated == []  # `old_name(x)` is nowhere here
    assert propose.propose(text, "go", [made(GENERAL_RENAME)], min_precision=0.0) == []


# --- edits.jsonl ---------------------------------------------------------------------------------------------


def test_edits_file_round_trips(tmp_path: Path) -> None:
    patterns = [pattern(GENERAL_RENAME, 3, 1), pattern(LITERAL_RENAME, 2, 0, "go")]
    classes = {"rename/named/literal": (17, 13), "insert/named/general": (40, 11)}
    contract.write(tmp_path, patterns, classes)
    assert contract.load_all(tmp_path) == (patterns, classes)
    assert contract.load(tmp_path) == patterns
    contract.write(tmp_path, patterns)
    assert contract.load_all(tmp_path) == (patterns, None)
    assert contract.load(tmp_path / "missing") is None
    assert contract.load_all(tmp_path / "missing") is None


def test_edits_file_of_another_format_or_damaged_is_named(tmp_path: Path) -> None:
    path = tmp_path / contract.EDITS
    good = json.dumps(contract.to_json(pattern(GENERAL_RENAME, 3, 1)))
    path.write_text(json.dumps({"edits_format": 99}) + "\n" + good + "\n", encoding="utf-8")
    with pytest.raises(EditsError, match=r"format 99.*train the double again"):
        contract.load(tmp_path)
    path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(EditsError, match="train the double again"):
        contract.load(tmp_path)
    header = json.dumps({"edits_format": contract.EDITS_FORMAT})
    path.write_text(f"{header}\n{good}\n{good[:-5]}\n", encoding="utf-8")
    with pytest.raises(EditsError, match=rf"{contract.EDITS}:3: not an edit pattern"):
        contract.load(tmp_path)
    unmatched = {**json.loads(good), "template": [{"var": 7}]}
    path.write_text(f"{header}\n{json.dumps(unmatched)}\n", encoding="utf-8")
    with pytest.raises(EditsError, match=r":2: .*variable 7 is written but never matched"):
        contract.load(tmp_path)
    path.write_text(json.dumps({"edits_format": 1, "classes": {"x": 3}}) + "\n", encoding="utf-8")
    with pytest.raises(EditsError, match=r":1: the measured classes are damaged"):
        contract.load_all(tmp_path)


# --- the trainer's miner -------------------------------------------------------------------------------------


def record(commit: str, day: int, before: str, after: str, name: str = "f") -> ChangeRecord:
    return ChangeRecord(
        repository="/repo",
        commit=commit,
        author_email=ALICE.email,
        author_name=ALICE.name,
        authored_at=f"2025-03-{day:02d}T10:00:00+02:00",
        committed_at=f"2025-03-{day:02d}T10:00:00+02:00",
        path="app/x.py",
        old_path=None,
        language="python",
        qualified_name=name,
        kind="function",
        change="modified",
        before=before,
        after=after,
        line=1,
        context=FileContext("", ()),
        message="m",
    )


def caller(name: str, argument: str, new: bool) -> str:
    call = f"fetch(ctx, {argument}, timeout)" if new else f"fetch({argument}, timeout)"
    return f"def {name}({argument}):\n    data = {call}\n    return data\n"


def test_a_rewrite_in_three_commits_is_one_pattern() -> None:
    records = [
        record(f"{k}" * 40, day, caller(f"f{k}", arg, False), caller(f"f{k}", arg, True), f"f{k}")
        for k, day, arg in [(1, 3, "a"), (2, 5, "b"), (3, 9, "c")]
    ]
    [found] = edit_patterns.mine(records)
    assert (found.count, found.distinct_commits, found.left) == (3, 3, 0)
    assert found.commits == ("3" * 40, "2" * 40, "1" * 40)
    assert (found.first, found.last) == (records[0].committed_at, records[2].committed_at)
    assert found.rewrite.before == (
        Lit("fetch", "word"),
        Lit("(", "punct"),
        Var(1, "word"),
        Lit(",", "punct"),
        Lit("timeout", "word"),
        Lit(")", "punct"),
    )
    assert found.rewrite.render({1: "z"}) == "fetch(ctx, z, timeout)"
    # In one commit only, however often: no habit.
    once = [
        record("9" * 40, 3, caller(f"f{k}", arg, False), caller(f"f{k}", arg, True), f"f{k}")
        for k, arg in enumerate("abc")
    ]
    assert edit_patterns.mine(once) == []


def test_left_counts_the_old_form_written_after_the_first_occurrence() -> None:
    made = [
        record(f"{k}" * 40, day, caller(f"f{k}", arg, False), caller(f"f{k}", arg, True), f"f{k}")
        for k, day, arg in [(1, 3, "a"), (2, 5, "b")]
    ]
    # Later definitions still calling the old way (a changed one, another with two calls) and an earlier
    # one, before the engineer first made the rewrite: that one does not count.
    later = record("7" * 40, 8, "def g(p):\n    return 1\n", "def g(p):\n    return fetch(p, timeout)\n", "g")
    twice = "def h(p, q):\n    fetch(p, timeout)\n    return fetch(q, timeout)\n"
    later2 = record("8" * 40, 9, "def h(p, q):\n    pass\n", twice, "h")
    earlier = record("6" * 40, 1, "def e(p):\n    return 1\n", "def e(p):\n    return fetch(p, timeout)\n", "e")
    [found] = edit_patterns.mine([earlier, *made, later, later2])
    assert (found.count, found.left) == (2, 3)
    assert found.precision == pytest.approx(2 / 5)


# --- codedouble edits ----------------------------------------------------------------------------------------


def test_the_edits_command_lists_a_datasets_rules(
    make_repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = make_repo()
    functions = [("load", "path"), ("save", "data"), ("sync", "remote"), ("prune", "days")]

    def module(rewritten: int) -> str:
        return "".join(
            "\n\n" + caller(name, argument, k < rewritten) for k, (name, argument) in enumerate(functions)
        ).lstrip()

    repo.write("app/jobs.py", module(0))
    repo.commit("Add jobs")
    for k in range(1, 4):
        repo.write("app/jobs.py", module(k))
        repo.commit(f"Pass the context to fetch in {functions[k - 1][0]}")
    # prune changed afterwards, its old call left standing: the rule's precision is 3 of 4.
    repo.write("app/jobs.py", module(3).replace("def prune(days):\n", "def prune(days):\n    days = days or 1\n"))
    repo.commit("Touch prune")
    mine(repo.path, tmp_path / "dataset", MineOptions(all_authors=True), progress=False)
    assert cli.main(["edits", str(tmp_path / "dataset")]) == 0
    out = capsys.readouterr().out
    assert "1 recurring rewrites from" in out
    assert "fetch(…, timeout) → fetch(ctx,…, timeout)" in out
    assert cli.main(["edits", str(tmp_path / "dataset"), "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["count"], listed["distinct_commits"], listed["left"], listed["language"]) == (3, 3, 1, "python")
    assert listed["precision"] == pytest.approx(0.75)
    assert cli.main(["edits", str(tmp_path / "dataset"), "--json", "--language", "go"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_the_edits_command_names_bad_sources(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["edits", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")
    assert cli.main(["edits", str(a_file)]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert cli.main(["edits", str(tmp_path)]) == 2
    assert "neither a double nor a dataset" in capsys.readouterr().err
    older = tmp_path / "older"
    older.mkdir()
    (older / "manifest.json").write_text(json.dumps({"prompt_format": 1}), encoding="utf-8")
    assert cli.main(["edits", str(older)]) == 2
    assert "trained before doubles kept edit patterns" in capsys.readouterr().err
    contract.write(older, [pattern(GENERAL_RENAME, 4, 0)])
    assert cli.main(["edits", str(older)]) == 0
    out = capsys.readouterr().out
    assert "1 recurring rewrites from the double" in out and "print … → log.debug…" in out


# --- eval's next-edit helpers --------------------------------------------------------------------------------

PARENT = "def f():\n    print(a)\n    x = 1\n    y = 2\n    z = 3\n    print(b)\n    w = 4\n    print(c)\n"
FINAL = PARENT.replace("print", "log.debug")


def test_hunks_and_the_first_applied() -> None:
    assert next_edit.hunks(PARENT, FINAL) == [(1, 2, 1, 2), (5, 6, 5, 6), (7, 8, 7, 8)]
    started = next_edit.first_applied(PARENT, FINAL)
    assert started == PARENT.replace("print(a)", "log.debug(a)")
    assert next_edit.hunks(started, FINAL) == [(5, 6, 5, 6), (7, 8, 7, 8)]
    # An inserted line is a hunk too.
    assert next_edit.hunks("a\nb\n", "a\nnew\nb\n") == [(1, 1, 1, 2)]
    assert next_edit.first_applied("a\nb\n", "a\nnew\nb\n") == "a\nnew\nb\n"


def sample() -> next_edit.EditSample:
    started = next_edit.first_applied(PARENT, FINAL)
    return next_edit.EditSample("s", "/r", "c" * 40, "a.py", "python", PARENT, started, FINAL)


def at(text: str, old: str, new: str) -> propose.EditProposal:
    start = text.index(old)
    return propose.EditProposal(start, start + len(old), new, "t", "session", 1.0, "r")


def test_score_places_and_exact_edits() -> None:
    s = sample()
    text = s.started
    exact = at(text, "print(b)", "log.debug(b)")
    located = at(text, "print(c)", "warn(c)")  # on the hunk's line, but not what the commit wrote
    near = at(text, "w = 4", "w = 5")  # a line above a hunk: placed right, not exact
    far = at(text, "x = 1", "x = 2")  # 3 lines above the nearest hunk still to make
    scored = next_edit.score(s, [exact, located, near, far])
    assert scored == next_edit.Scored(hunks=2, proposals=4, located=3, exact=1, hunks_found=2, hunks_exact=1)
    assert next_edit.score(s, []) == next_edit.Scored(2, 0, 0, 0, 0, 0)
    both = next_edit.score(s, [exact, at(text, "print(c)", "log.debug(c)")])
    assert (both.located, both.exact, both.hunks_exact) == (2, 2, 2)


def test_the_systems_on_one_sample() -> None:
    rows = {row.system: row for row in next_edit.evaluate([sample()], [], min_precision=0.0)}
    assert rows["none"].proposals == 0 and rows["none"].hunks == 2
    assert rows["double"].hunks_exact == 2 and rows["double"].precision == 1.0
    assert rows["literal"].proposals == 0  # `print(a)` is nowhere else
    evidence = next_edit.class_evidence([sample()])
    assert evidence == {"rename/named/general": (1, 1, 2, 2)}  # one edit: one trial, two proposals


# --- packaging -----------------------------------------------------------------------------------------------


def test_every_package_is_installed() -> None:
    """A wheel holds only the packages pyproject.toml lists: server/edits must be one of them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    roots = {folder: package for package, folder in config["package-dir"].items()}
    found = set()
    for folder, package in roots.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join([package, *parts]))
    assert found - set(config["packages"]) == set()
