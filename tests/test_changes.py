"""Unit tests of the miner's pure pieces: the changed region, definition changes, filters, bot detection."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from codedouble.grammars.definitions import parse
from codedouble.grammars.incremental import CHUNK as _CHUNK
from codedouble.trainer.mining import filters
from codedouble.trainer.mining.changes import DefinitionChange, Region, changed_region, definition_changes
from codedouble.trainer.mining.extract import Extractor, FileWork
from codedouble.trainer.mining.identity import is_bot

# --- changed_region ----------------------------------------------------------------------------------


def _check_region(before: bytes, after: bytes, region: Region) -> None:
    start, old_end, new_end = region.start, region.old_end, region.new_end
    assert 0 <= start <= old_end <= len(before)
    assert start <= new_end <= len(after)
    # Outside the region the two sides are byte for byte the same ...
    assert before[:start] == after[:start]
    assert before[old_end:] == after[new_end:]
    assert len(before) - old_end == len(after) - new_end
    # ... and splicing the after-side of the region into `before` gives `after`.
    assert before[:start] + after[start:new_end] + before[old_end:] == after
    # Minimal: the prefix stops at a difference or where a side runs out ...
    assert start == min(len(before), len(after)) or before[start] != after[start]
    # ... and so does the suffix (which never reaches into the prefix).
    assert old_end == start or new_end == start or before[old_end - 1] != after[new_end - 1]
    if before == after:
        assert (start, old_end, new_end) == (len(before), len(before), len(after))


@st.composite
def edited_pair(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """Two byte strings sharing a prefix and a suffix (sometimes longer than the comparison chunk), with a
    small alphabet so that the edges of the change are easy to get wrong."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    alphabet = draw(st.sampled_from([b"a", b"ab", b"ab\n", bytes(range(256))]))

    def text(n: int) -> bytes:
        return bytes(rng.choice(alphabet) for _ in range(n))

    length = st.one_of(st.integers(0, 12), st.integers(_CHUNK - 3, _CHUNK + 3), st.integers(0, 3 * _CHUNK))
    prefix, suffix = text(draw(length)), text(draw(length))
    old_mid, new_mid = text(draw(st.integers(0, 8))), text(draw(st.integers(0, 8)))
    return prefix + old_mid + suffix, prefix + new_mid + suffix


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited_pair())
@example((b"", b""))
@example((b"abc", b"abc"))
@example((b"aaaa", b"aa"))
@example((b"ab", b"aab"))
@example((b"x" * _CHUNK * 2, b"x" * _CHUNK * 2 + b"y"))
@example((b"x" * _CHUNK + b"A" + b"x" * _CHUNK, b"x" * _CHUNK + b"B" + b"x" * _CHUNK))
def test_changed_region_edited_pairs(pair: tuple[bytes, bytes]) -> None:
    before, after = pair
    _check_region(before, after, changed_region(before, after))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=40), st.binary(max_size=40))
def test_changed_region_arbitrary_bytes(before: bytes, after: bytes) -> None:
    _check_region(before, after, changed_region(before, after))


def test_changed_region_exact_values() -> None:
    assert changed_region(b"hello world", b"hello brave world") == Region(6, 6, 12)
    assert changed_region(b"abcdef", b"abXYef") == Region(2, 4, 4)
    assert changed_region(b"aaaa", b"aa") == Region(2, 4, 2)
    assert changed_region(b"same", b"same") == Region(4, 4, 4)
    assert changed_region(b"", b"new") == Region(0, 0, 3)


@settings(max_examples=200, deadline=None)
@given(edited_pair(), st.data())
def test_region_offset_maps(pair: tuple[bytes, bytes], data: st.DataObject) -> None:
    before, after = pair
    region = changed_region(before, after)
    offset = data.draw(st.integers(0, len(after)))
    mapped = region.to_before(offset)
    if offset <= region.start:
        assert mapped == offset and before[:mapped] == after[:offset]
    elif offset >= region.new_end:
        assert before[mapped:] == after[offset:]
    else:  # inside the change: clamped to its end
        assert mapped == region.old_end
    offset = data.draw(st.integers(0, len(before)))
    mapped = region.to_after(offset)
    if offset <= region.start:
        assert mapped == offset and after[:mapped] == before[:offset]
    elif offset >= region.old_end:
        assert after[mapped:] == before[offset:]
    else:
        assert mapped == region.new_end


# --- definition_changes ------------------------------------------------------------------------------


def changes(language: str, before: str | None, after: str | None) -> list[DefinitionChange]:
    b = before.encode() if before is not None else None
    a = after.encode() if after is not None else None
    return list(
        definition_changes(
            b, parse(language, b) if b is not None else None, a, parse(language, a) if a is not None else None
        )
    )


def short(found: list[DefinitionChange]) -> list[tuple[str, str]]:
    return [(c.qualified_name, c.change) for c in found]


TWO = "def first():\n    return 1\n\n\ndef second(x):\n    return x\n"


def test_moved_definition_is_not_a_change() -> None:
    swapped = "def second(x):\n    return x\n\n\ndef first():\n    return 1\n"
    assert changes("python", TWO, swapped) == []
    # Blank lines and trailing whitespace inside a definition are not a change either.
    assert changes("python", TWO, TWO.replace("return 1", "\n    return 1   ")) == []


def test_moved_and_edited_definition_is_modified() -> None:
    swapped = "def second(x):\n    return x + 1\n\n\ndef first():\n    return 1\n"
    (change,) = changes("python", TWO, swapped)
    assert (change.qualified_name, change.change, change.line) == ("second", "modified", 1)
    assert change.before == "def second(x):\n    return x"
    assert change.after == "def second(x):\n    return x + 1"


def test_added_method_yields_only_the_method() -> None:
    before = "class A:\n    x = 1\n\n    def one(self):\n        return 1\n"
    after = before + "\n    def two(self):\n        return 2\n"
    (change,) = changes("python", before, after)
    assert change == DefinitionChange(
        qualified_name="A.two",
        kind="method",
        change="added",
        before=None,
        after="    def two(self):\n        return 2",
        line=7,
        enclosing=("class A:",),
        has_error=False,
    )


def test_whole_file_added_and_deleted() -> None:
    assert short(changes("python", None, TWO)) == [("first", "added"), ("second", "added")]
    deleted = changes("python", TWO, None)
    assert short(deleted) == [("first", "deleted"), ("second", "deleted")]
    assert [(c.line, c.after) for c in deleted] == [(1, None), (5, None)]


def test_deleting_inner_function_leaves_outer_unchanged() -> None:
    before = "def outer():\n    def inner():\n        return 1\n\n    return inner()\n"
    after = "def outer():\n    return inner()\n"
    assert short(changes("python", before, after)) == [("outer.inner", "deleted")]


def test_renamed_function_is_deleted_and_added() -> None:
    after = TWO.replace("def first", "def primero")
    assert sorted(short(changes("python", TWO, after))) == [("first", "deleted"), ("primero", "added")]


def test_syntax_error_flagged() -> None:
    (change,) = changes("python", TWO, TWO.replace("return x", "return x +"))
    assert (change.qualified_name, change.change, change.has_error) == ("second", "modified", True)


def test_adding_an_overload_before_an_existing_one_is_an_addition() -> None:
    before = "class Foo {\n    void add(int x) {\n        print(x);\n    }\n}\n"
    after = (
        "class Foo {\n    void add(String s) {\n        print(s.length());\n    }\n\n"
        "    void add(int x) {\n        print(x);\n    }\n}\n"
    )
    found = changes("java", before, after)
    assert [(c.qualified_name, c.change, c.after) for c in found] == [
        ("Foo.add", "added", "    void add(String s) {\n        print(s.length());\n    }")
    ]


# --- range-limited extraction agrees with parsing the whole file -------------------------------------

SNIPPETS = [
    "def alpha(x):\n    return x + 1\n",
    "def beta():\n    def inner(y):\n        return y * 2\n\n    return inner(3)\n",
    "class Gamma:\n    size = 3\n\n    def grow(self):\n        self.size += 1\n\n    def shrink(self):\n        self.size -= 1\n",
    "@decorator\ndef delta(a, b):\n    return a - b\n",
    "class Eps(Base):\n    def __init__(self):\n        super().__init__()\n",
    "import os\n",
    "CONSTANT = 42\n",
    "def zeta():\n    return 'zeta'\n",
    "def alpha(x):\n    return x + 2\n",  # a redefinition / edited variant of alpha
    "class Gamma:\n    size = 4\n\n    def grow(self):\n        self.size += 2\n",  # an edited Gamma
]


def _name(snippet: str) -> str:
    return snippet.split("(")[0].split(":")[0].split()[-1]


@st.composite
def python_versions(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """Two versions of a module built from SNIPPETS, no name twice in one version (definitions that share
    a name pair up by occurrence, which a partial extraction cannot reproduce; see the overload test)."""
    before = draw(st.lists(st.sampled_from(SNIPPETS), max_size=6, unique_by=_name))
    after = list(before)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "swap", "edit"]))
        if op in ("insert", "replace") or not after:
            i = draw(st.integers(0, len(after) - (op == "replace" and bool(after))))
            taken = {_name(s) for k, s in enumerate(after) if not (op == "replace" and k == i)}
            fresh = [s for s in SNIPPETS if _name(s) not in taken]
            if not fresh:
                continue
            snippet = draw(st.sampled_from(fresh))
            if op == "replace" and after:
                after[i] = snippet
            else:
                after.insert(i, snippet)
        elif op == "delete":
            after.pop(draw(st.integers(0, len(after) - 1)))
        elif op == "swap":
            i, j = draw(st.integers(0, len(after) - 1)), draw(st.integers(0, len(after) - 1))
            after[i], after[j] = after[j], after[i]
        else:
            i = draw(st.integers(0, len(after) - 1))
            after[i] = after[i].replace("return", "return -", 1).replace("+= 1", "+= 5")
    sep = draw(st.sampled_from(["\n\n", "\n", "\n\n\n"]))
    return sep.join(before).encode(), sep.join(after).encode()


def _key(c: DefinitionChange) -> tuple[object, ...]:
    return (c.qualified_name, c.kind, c.change, c.before, c.after, c.line, c.enclosing, c.has_error)


@settings(max_examples=150, deadline=None)
@given(python_versions())
def test_range_extraction_matches_full_parse(pair: tuple[bytes, bytes]) -> None:
    before, after = pair
    assume(before != after)
    full = definition_changes(before, parse("python", before), after, parse("python", after))
    b, a = Extractor()._parse_pair(FileWork(path="x.py", old_path=None, language="python", before=before, after=after))
    ranged = definition_changes(before, b, after, a)
    assert sorted(map(_key, ranged)) == sorted(map(_key, full))


# --- filters -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "include", "exclude", "reason"),
    [
        ("src/app.py", (), (), None),
        ("src/app.tsx", (), (), None),
        ("README.md", (), (), filters.UNSUPPORTED_LANGUAGE),
        ("types/index.d.ts", (), (), filters.UNSUPPORTED_LANGUAGE),
        ("Makefile", (), (), filters.UNSUPPORTED_LANGUAGE),
        ("vendor/lib.py", (), (), filters.VENDORED),
        ("web/node_modules/x/index.js", (), (), filters.VENDORED),
        ("a/third_party/b/c.go", (), (), filters.VENDORED),
        ("vendor.py", (), (), None),  # only directories named vendor are vendored
        ("static/app.min.js", (), (), filters.MINIFIED),
        ("static/app.bundle.js", (), (), filters.MINIFIED),
        ("api/service_pb2.py", (), (), filters.GENERATED),
        ("api/service.pb.go", (), (), filters.GENERATED),
        ("tests/test_app.py", (), ("tests/*",), filters.EXCLUDED),
        ("src/deep/app.py", (), ("*.py",), filters.EXCLUDED),  # `*` crosses directories
        ("tools/run.py", ("src/*",), (), filters.NOT_INCLUDED),
        ("src/run.py", ("src/*",), ("*run*",), filters.EXCLUDED),  # exclude wins over include
        ("src/run.py", ("src/*", "lib/*"), (), None),
        ("notes.txt", ("*.txt",), (), filters.UNSUPPORTED_LANGUAGE),  # include cannot add a language
    ],
)
def test_path_filter(path: str, include: tuple[str, ...], exclude: tuple[str, ...], reason: str | None) -> None:
    assert filters.PathFilter(include, exclude).reject(path) == reason


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"def f():\n    return 1\n", None),
        (b"", None),
        (b"def f():\n    return '\xc3\xa9'\n", None),  # UTF-8
        (b"def f():\n    return '\xe9'\n", filters.NOT_UTF8),  # latin-1
        (b"\x89PNG\r\n\x1a\n\x00\x00", filters.BINARY),
        (b"# Code generated by protoc. DO NOT EDIT.\ndef f():\n    pass\n", filters.GENERATED),
        (b"// Code generated by stringer; DO NOT EDIT.\npackage x\n", filters.GENERATED),
        (b'"""x"""\n# @generated\n', filters.GENERATED),
        (b'MARKER = "do not edit"\ndef f():\n    pass\n', None),  # mentioned in code, not a comment
        (b"def f():\n    pass\n" * 20 + b"# DO NOT EDIT\n", None),  # past the head lines
        (b"var a=" + b"1," * 1500 + b"2;", filters.MINIFIED),
        (b"x = 1\n" * 2000, None),  # long but short lines
        (b"data = '" + b"a" * 1500 + b"'\n" + b"x = 1\n" * 1000, None),  # one long line among many short
    ],
)
def test_reject_content(data: bytes, reason: str | None) -> None:
    assert filters.reject_content(data) == reason


# --- bots --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "email", "bot"),
    [
        ("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com", True),
        ("renovate[bot]", "29139614+renovate[bot]@users.noreply.github.com", True),
        ("github-actions[bot]", "41898282+github-actions[bot]@users.noreply.github.com", True),
        ("pre-commit-ci[bot]", "66853113+pre-commit-ci[bot]@users.noreply.github.com", True),
        ("dependabot", "support@github.com", True),
        ("GitHub", "noreply@github.com", True),
        ("Jenkins", "jenkins@ci.example.com", True),
        ("Build", "buildbot@example.com", True),
        ("Alice", "12345+alice@users.noreply.github.com", False),
        ("Alice", "alice@example.com", False),
        ("Robert Abbot", "robert.abbot@example.com", False),
        ("Noreply Fan", "noreply.fan@example.com", False),
    ],
)
def test_is_bot(name: str, email: str, bot: bool) -> None:
    assert is_bot(name, email) is bot
