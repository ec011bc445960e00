"""The language server's pure helpers, without a server: settings (options.py), LSP positions (positions.py),
and tidying and reusing completions (suggest.py). The server itself is driven end to end in test_server.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codedouble.server import options as opts
from codedouble.server import suggest
from codedouble.server.options import DEFAULT_EXCLUDE, Options
from codedouble.server.positions import PositionError, offset_at, position_at
from codedouble.server.suggest import Lru, Recent, cut_loop, tidy

# --- options.parse ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, {}, {"codedouble": {}}, {"codedouble": None}])
def test_no_settings_are_the_defaults(raw: object) -> None:
    options, problems = opts.parse(raw)
    assert options == Options()
    assert problems == []
    assert options.artifact is None
    assert options.languages == ()
    assert options.exclude == DEFAULT_EXCLUDE
    assert options.max_lines == 8
    assert options.debounce_ms == 0


SETTINGS = {
    "artifact": "~/doubles/mine",
    "languages": ["python", "go"],
    "exclude": ["**/generated/**"],
    "maxLines": 3,
    "debounceMs": 150,
}


def _expected() -> Options:
    return Options(
        Path("~/doubles/mine").expanduser(), ("python", "go"), (*opts.DEFAULT_EXCLUDE, "**/generated/**"), 3, 150
    )


def test_camel_case_keys_at_the_top() -> None:
    assert opts.parse(SETTINGS) == (_expected(), [])


def test_camel_case_keys_nested_under_codedouble() -> None:
    # An editor sends its whole settings tree: only the `codedouble` part counts.
    assert opts.parse({"codedouble": SETTINGS, "python": {"analysis": True}}) == (_expected(), [])


def test_an_empty_artifact_is_none() -> None:
    assert opts.parse({"artifact": ""}) == (Options(), [])
    assert opts.parse({"artifact": None}) == (Options(), [])


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("artifact", 42, "artifact"),
        ("artifact", ["a"], "artifact"),
        ("languages", "python", "languages"),
        ("languages", ["python", 3], "languages"),
        ("languages", ["python", "cobol"], "languages"),
        ("exclude", "**/*.pem", "exclude"),
        ("exclude", [1], "exclude"),
        ("maxLines", 0, "max_lines"),
        ("maxLines", 201, "max_lines"),
        ("maxLines", "8", "max_lines"),
        ("maxLines", 2.5, "max_lines"),
        ("maxLines", True, "max_lines"),
        ("maxLines", None, "max_lines"),
        ("debounceMs", -1, "debounce_ms"),
        ("debounceMs", 2001, "debounce_ms"),
        ("debounceMs", False, "debounce_ms"),
    ],
)
def test_every_bad_value_is_named_and_its_default_kept(key: str, value: object, field: str) -> None:
    options, problems = opts.parse({"codedouble": {key: value, "maxLines": 5} if key != "maxLines" else {key: value}})
    assert len(problems) == 1
    [problem] = problems
    assert f"'{key}'" in problem
    assert repr(value) in problem
    assert "default" in problem
    assert getattr(options, field) == getattr(Options(), field)
    if key != "maxLines":
        assert options.max_lines == 5  # the good setting beside it still counts


def test_a_bad_language_message_lists_the_known_ones() -> None:
    _, [problem] = opts.parse({"languages": ["python", "cobol"]})
    assert "cobol" in problem and "python" in problem and "rust" in problem


def test_an_unknown_key_is_named_and_ignored() -> None:
    options, problems = opts.parse({"maxLine": 3, "maxLines": 4})
    assert options == Options(max_lines=4)
    assert len(problems) == 1
    assert "'maxLine'" in problems[0] and "unknown" in problems[0] and "maxLines" in problems[0]


@pytest.mark.parametrize("raw", [[], "maxLines=3", 7, {"codedouble": "off"}, {"codedouble": [1]}])
def test_settings_that_are_not_an_object_keep_every_default(raw: object) -> None:
    options, problems = opts.parse(raw)
    assert options == Options()
    assert len(problems) == 1
    assert "object" in problems[0] and "default" in problems[0]


def test_several_problems_are_each_reported() -> None:
    options, problems = opts.parse({"maxLines": 0, "debounceMs": "x", "colour": "blue"})
    assert options == Options()
    assert sorted(p.split("'")[1] for p in problems) == ["colour", "debounceMs", "maxLines"]


# --- Options.enabled ----------------------------------------------------------------------------------------


def test_unknown_language_is_never_enabled() -> None:
    assert not Options().enabled(None, "/w/notes.txt")


def test_languages_filter() -> None:
    assert Options().enabled("python", "/w/app/main.py")
    assert Options().enabled("go", "/w/main.go")
    only = Options(languages=("python",))
    assert only.enabled("python", "/w/app/main.py")
    assert not only.enabled("go", "/w/main.go")


@pytest.mark.parametrize(
    "path",
    [
        "/w/.env",
        "/w/deploy/staging/.env",
        "/w/.env.local",
        "/w/.env.py",
        "/w/certs/server.pem",
        "/w/a/b/c/d/client.key",
        "/home/me/.ssh/id_rsa",
        "/home/me/.ssh/id_ed25519.pub",
        "/home/me/.netrc",
        "/w/.npmrc",
        "/w/.pypirc",
        "/w/config/secrets/prod.py",
        "/w/config/secrets/deep/er/prod.py",
        "/w/app/client_secret.py",
        "/w/app/secrets.py",
        "/w/store.p12",
    ],
)
def test_default_excludes_keys_and_environment_files_at_any_depth(path: str) -> None:
    assert not Options().enabled("python", path)


@pytest.mark.parametrize(
    "path",
    [
        "/w/app/main.py",
        "/w/app/environment.py",
        "/w/app/keyboard.py",
        "/w/app/pemmican.py",
        # A folder whose name merely contains "secret" or "id_rsa" is no reason to go silent on a whole project.
        "/home/me/src/secret-santa/app/main.py",
        "/home/me/src/id_rsa_tools/main.py",
    ],
)
def test_default_excludes_leave_ordinary_code_alone(path: str) -> None:
    assert Options().enabled("python", path)


@pytest.mark.parametrize(
    ("glob", "path", "matched"),
    [
        ("*.pem", "/w/a/b/c.pem", True),
        ("*.pem", "/w/a/b/c.py", False),
        ("**/generated/**", "/w/generated/x.py", True),
        ("**/generated/**", "/w/src/generated/deep/x.py", True),
        ("**/generated/**", "/w/src/generated.py", False),
        ("generated/**", "/w/src/generated/x.py", True),  # a relative glob matches wherever the folder sits
        ("generated/*.py", "/w/generated/x.py", True),
        ("generated/*.py", "/w/generated/deep/x.py", False),  # `*` stays within one folder
        ("/w/vendor/**", "/w/vendor/lib/x.py", True),
        ("/w/vendor/**", "/other/w/vendor/lib/x.py", False),  # an absolute glob is anchored
        ("app/?.py", "/w/app/a.py", True),
        ("app/?.py", "/w/app/ab.py", False),
        ("test_[a-c]*.py", "/w/tests/test_b.py", True),
        ("test_[!a-c]*.py", "/w/tests/test_b.py", False),
        ("**/*.min.js", "C:\\w\\static\\app.min.js", True),  # Windows separators
    ],
)
def test_user_exclude_globs(glob: str, path: str, matched: bool) -> None:
    assert Options(exclude=(glob,)).enabled("python", path) is not matched


def test_user_excludes_add_to_the_defaults() -> None:
    options, _ = opts.parse({"exclude": ["**/generated/**"]})
    assert not options.enabled("python", "/w/generated/x.py")
    assert options.enabled("python", "/w/app/main.py")
    assert not options.enabled("python", "/w/config/.env")  # keys stay protected
    assert options.exclude == (*opts.DEFAULT_EXCLUDE, "**/generated/**")


# --- positions ----------------------------------------------------------------------------------------------


def test_ascii_positions() -> None:
    text = "def f(x):\n    return x\n"
    assert offset_at(text, 0, 0) == 0
    assert offset_at(text, 0, 4) == 4
    assert offset_at(text, 1, 4) == text.index("return")
    assert offset_at(text, 2, 0) == len(text)  # the empty last line
    assert position_at(text, text.index("return")) == (1, 4)
    assert position_at(text, len(text)) == (2, 0)
    assert position_at(text, 0) == (0, 0)


def test_astral_characters_take_two_utf16_units() -> None:
    text = 'x = "🎉𝔘é" + y\nz'
    after = text.index("+")
    assert position_at(text, after) == (0, after + 2)  # two astral characters before it: two units more
    assert offset_at(text, 0, after + 2) == after
    assert offset_at(text, 0, text.index("𝔘") + 1) == text.index("𝔘")  # right after 🎉 (units 5-6)
    assert offset_at(text, 1, 1) == len(text)
    # A character in the middle of a surrogate pair lands after the whole character, never inside it.
    assert offset_at(text, 0, text.index("🎉") + 1) == text.index("🎉") + 1


def test_a_character_past_the_end_of_its_line_is_the_line_end() -> None:
    text = "ab\ncd\n"
    assert offset_at(text, 0, 99) == 2
    assert offset_at(text, 1, 3) == 5
    assert offset_at(text, 2, 7) == len(text)
    assert offset_at("", 0, 5) == 0


@pytest.mark.parametrize(("line", "character"), [(3, 0), (10, 0), (1_000_000, 5)])
def test_a_line_past_the_end_is_an_error(line: int, character: int) -> None:
    with pytest.raises(PositionError, match="past the end"):
        offset_at("ab\ncd\n", line, character)


@pytest.mark.parametrize(("line", "character"), [(-1, 0), (0, -1), (-3, -3)])
def test_a_negative_position_is_an_error(line: int, character: int) -> None:
    with pytest.raises(PositionError, match="negative"):
        offset_at("ab\ncd\n", line, character)


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_carriage_returns_end_lines_as_the_protocol_says(newline: str) -> None:
    text = newline.join(["def f(x):", "    return x", ""])
    assert offset_at(text, 1, 4) == text.index("return")
    assert offset_at(text, 0, 99) == text.index(newline)  # the line's end is before its terminator
    assert position_at(text, text.index("return")) == (1, 4)
    assert offset_at(text, 2, 0) == len(text)
    with pytest.raises(PositionError):
        offset_at(text, 3, 0)


@pytest.mark.parametrize("separator", ["\x0c", "\u2028", "\x85", "\x0b"])
def test_only_lf_and_cr_end_lines(separator: str) -> None:
    # What Python's str.splitlines() also splits on is one character of a line to an editor.
    text = f"a{separator}b\ncd"
    assert offset_at(text, 1, 1) == text.index("d")
    assert position_at(text, text.index("b")) == (0, 2)


_TEXT = st.text(alphabet=st.sampled_from(list("ab \t\n\r") + ["é", "中", "🎉", "𝔘", "\u2028", "\x0c", "\ud800"]))


@settings(max_examples=300, deadline=None)
@given(_TEXT, st.data())
def test_positions_round_trip(text: str, data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, len(text)))
    line, character = position_at(text, offset)
    if 0 < offset < len(text) and text[offset - 1] == "\r" and text[offset] == "\n":
        return  # the middle of a CR LF is no position at all
    assert offset_at(text, line, character) == offset
    # Each line's UTF-16 length is what an editor counts.
    start = offset - len(text[:offset].replace("\r\n", "\n").replace("\r", "\n").rsplit("\n", 1)[-1])
    assert character == len(text[start:offset].encode("utf-16-le", "surrogatepass")) // 2


# --- tidy ---------------------------------------------------------------------------------------------------


def test_tidy_keeps_at_most_max_lines() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(20))
    assert tidy(body, "def f():\n", "", "block", 3) == "    x0 = 0\n    x1 = 1\n    x2 = 2"
    assert tidy("a = 1\nb = 2", "", "", "line", 1) == "a = 1"


def test_tidy_cuts_a_model_stuck_repeating_a_line() -> None:
    looped = "    total = 0\n    total += 1\n    total += 1\n    total += 1\n    return total"
    assert tidy(looped, "def f():\n", "", "block", 8) == "    total = 0\n    total += 1"


def test_tidy_cuts_a_body_looping_over_a_group_of_lines() -> None:
    """The model's body for `__get__` on rich: a pair of lines four times (and a partial fifth copy)."""
    pair = "        if obj is not None:\n            obj = obj.rfind('.')\n"
    looped = "        obj = self.obj\n" + pair * 4 + "        if obj is not"
    assert tidy(looped, "    def f(self):\n", "", "block", 20) == "        obj = self.obj\n" + pair.rstrip()


def test_tidy_keeps_blank_lines_that_repeat() -> None:
    body = "    a = 1\n\n\n    b = 2"
    assert tidy(body, "def f():\n", "", "block", 8) == body


@pytest.mark.parametrize(
    ("prefix", "text", "expected"),
    [
        ("    x = compute(a, ", "b)", "b)"),  # closes what the line opened
        ("    x = compute(a, ", "b))", "b)"),  # one too many: cut there
        ("    x = compute(a, ", "b), c]", "b), c"),
        ("    x = f(g(", "1)) + h(2)", "1)) + h(2)"),
        ("    x = ", "y)", "y"),
        ("    x = (1) + ", "2)", "2"),  # the line's own pairs are matched already
        ("    x = ", "[1, (2, 3)]", "[1, (2, 3)]"),
    ],
)
def test_tidy_cuts_an_unmatched_closing_bracket_on_a_line(prefix: str, text: str, expected: str) -> None:
    assert tidy(text, prefix, "\n", "line", 1) == expected


@pytest.mark.parametrize(
    ("text", "suffix", "expected"),
    [
        ("b)", ")\n", "b"),  # the editor closed the bracket already
        ("b):", "):\n", "b"),
        ("b]", "]", "b"),
        ("b", ")\n", "b"),
        ("b)", "\n)", "b)"),  # the bracket on the next line is no reason
    ],
)
def test_tidy_does_not_duplicate_an_auto_closed_bracket(text: str, suffix: str, expected: str) -> None:
    assert tidy(text, "    x = compute(a, ", suffix, "line", 1) == expected


def test_tidy_drops_trailing_lines_the_suffix_already_has() -> None:
    prefix = "def f(a, b):\n"
    suffix = "\n    return a + b\n"
    assert tidy("    a += 1\n    return a + b", prefix, suffix, "block", 8) == "    a += 1"


def test_tidy_drops_a_run_of_trailing_lines_the_suffix_already_has() -> None:
    prefix = "def f(a, b):\n"
    suffix = "\n    c = a * b\n\n    return c\n"
    got = tidy("    a += 1\n    c = a * b\n    return c", prefix, suffix, "block", 8)
    assert got == "    a += 1"


def test_tidy_keeps_the_first_line_even_if_the_suffix_has_it() -> None:
    assert tidy("    return a", "def f(a):\n", "\n    return a\n", "block", 8) == "    return a"


def test_tidy_keeps_lines_the_suffix_has_only_further_down() -> None:
    text = "    a += 1\n    return a"
    assert tidy(text, "def f(a):\n", "\n    print(a)\n    return a\n", "block", 8) == text


def test_tidy_of_nothing_is_nothing() -> None:
    assert tidy("", "x = ", "\n", "line", 1) == ""
    assert tidy("   \n  ", "def f():\n", "", "block", 8) == ""


# --- Recent -------------------------------------------------------------------------------------------------


def test_typing_what_was_suggested_returns_the_rest() -> None:
    recent = Recent()
    recent.remember("file:///a.py", "x = pri", "\n", "nt(value)")
    assert recent.reuse("file:///a.py", "x = prin", "\n") == "t(value)"
    assert recent.reuse("file:///a.py", "x = print(val", "\n") == "ue)"
    assert recent.reuse("file:///a.py", "x = print(value", "\n") == ")"


def test_typing_something_else_is_no_reuse() -> None:
    recent = Recent()
    recent.remember("file:///a.py", "x = pri", "\n", "nt(value)")
    assert recent.reuse("file:///a.py", "x = prim", "\n") is None
    assert recent.reuse("file:///a.py", "x = pr", "\n") is None  # deleted back
    assert recent.reuse("file:///a.py", "x = pri", "\n") is None  # nothing typed: ask the cache


def test_a_changed_suffix_is_no_reuse() -> None:
    recent = Recent()
    recent.remember("file:///a.py", "x = pri", "\n", "nt(value)")
    assert recent.reuse("file:///a.py", "x = prin", "\nmore\n") is None


def test_a_fully_typed_suggestion_is_no_reuse() -> None:
    recent = Recent()
    recent.remember("file:///a.py", "x = pri", "\n", "nt(value)")
    assert recent.reuse("file:///a.py", "x = print(value)", "\n") is None


def test_reuse_is_per_document_and_forget_forgets() -> None:
    recent = Recent()
    recent.remember("file:///a.py", "x = pri", "\n", "nt(value)")
    assert recent.reuse("file:///b.py", "x = prin", "\n") is None
    recent.forget("file:///a.py")
    assert recent.reuse("file:///a.py", "x = prin", "\n") is None
    recent.forget("file:///never.py")  # no error


def test_an_empty_suggestion_is_not_remembered() -> None:
    recent = Recent()
    recent.remember("file:///a.py", "x = pri", "\n", "nt(value)")
    recent.remember("file:///a.py", "y = ", "\n", "")
    assert recent.reuse("file:///a.py", "x = prin", "\n") == "t(value)"


# --- Lru ----------------------------------------------------------------------------------------------------


def test_lru_evicts_the_least_recently_used() -> None:
    cache = Lru(size=2)
    cache.put(("a",), "1")
    cache.put(("b",), "2")
    assert cache.get(("a",)) == "1"  # a is now the most recent
    cache.put(("c",), "3")  # b goes
    assert cache.get(("b",)) is None
    assert cache.get(("a",)) == "1"
    assert cache.get(("c",)) == "3"
    cache.put(("d",), "4")  # a was read before c: a goes
    assert cache.get(("a",)) is None
    assert cache.get(("c",)) == "3"
    assert cache.get(("d",)) == "4"


def test_lru_put_refreshes_an_existing_key() -> None:
    cache = Lru(size=2)
    cache.put(("a",), "1")
    cache.put(("b",), "2")
    cache.put(("a",), "1b")
    cache.put(("c",), "3")
    assert cache.get(("a",)) == "1b"
    assert cache.get(("b",)) is None


def test_lru_counts_hits_and_misses_and_an_empty_completion_is_a_hit() -> None:
    cache = Lru()
    assert cache.get(("x",)) is None
    cache.put(("x",), "")
    assert cache.get(("x",)) == ""
    cache.put(("y",), "text")
    assert cache.get(("y",)) == "text"
    assert (cache.hits, cache.misses) == (2, 1)
    cache.clear()
    assert cache.get(("y",)) is None
    assert (cache.hits, cache.misses) == (2, 2)


def test_a_body_takes_the_documents_tabs() -> None:
    assert suggest.match_indentation("    a\n        b\n    c", "func f() {\n\tx\n}\n") == "\ta\n\t\tb\n\tc"


def test_a_body_takes_the_documents_spaces() -> None:
    assert suggest.match_indentation("\ta\n\t\tb", "def f():\n  x\n") == "  a\n    b"


def test_a_body_already_indented_like_the_document_is_kept() -> None:
    assert suggest.match_indentation("    a\n\n    b", "def f():\n    x\n") == "    a\n\n    b"
    assert suggest.tidy("\treturn x", "def f():\n    y = 1\n", "\n", "block", 8) == "    return x"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("zz.plugins.plugins.plugins.plugins.plugins", ""),  # seen in Neovim after `from __fu`
        ("x = ark.mark.mark.mark.mark", ""),  # the whole line goes, not only the loop
        ("    return self.run(args)\n    self.item.item.item = 1\n    return 2", "    return self.run(args)"),
    ],
)
def test_cut_loop_drops_a_degenerate_repetition(text: str, expected: str) -> None:
    assert cut_loop(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "data = [0, 0, 0, 0, 0, 0]",  # data repeats legitimately
        'print("-" * 40 + "=====")',
        "f(a, a, a)",  # a one-letter name three times is code, not a loop
        "self.x = x\n        self.y = y\n        self.z = z",
        "assert tidy(body) == body",
        "",
    ],
)
def test_cut_loop_keeps_code_that_only_looks_repetitive(text: str) -> None:
    assert cut_loop(text) == text


def test_tidy_never_shows_a_degenerate_repetition() -> None:
    assert tidy("zz.plugins.plugins.plugins.plugins", "from __fu", "\n", "line", 1) == ""
    body = "    total = 0\n    total.total.total.total += 1\n    return total"
    assert tidy(body, "def f():\n", "", "block", 8) == "    total = 0"


def test_a_double_too_rarely_right_to_show_anything_says_so_once() -> None:
    from codedouble.server.suggest import quiet_double

    silent = {"tuned": False, "shown": 0.0, "precision_without_abstention": 0.0186}
    message = quiet_double(silent)
    assert message is not None and "2 %" in message and "minConfidence 0" in message
    assert quiet_double({"tuned": True, "shown": 0.2}) is None
    assert quiet_double({"tuned": False, "shown": 0.15}) is None  # it shows some: nothing to explain
    assert quiet_double({}) is None  # an artifact from before abstention shows everything
