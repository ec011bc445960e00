"""Snippets mined from the history (issue 15): shapes, anti-unification and escaping as units; a generated
history where one test function's shape is written in 5 commits with different names gives exactly one
snippet, with placeholders where the names differ, shipped in the double and served over LSP as an item of
kind Snippet by the real server; secrets never become snippets; a double without the file still serves.

`make_snippet_double` is also what tests/test_nvim.py and tests/test_vscode.py serve.
"""

from __future__ import annotations

import itertools
import json
import keyword
import re
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types
from test_server import (
    TINY,
    build_history,
    complete,
    configure,
    open_document,
    position,
    start_server,
    status,
    stop_server,
    wait_for_state,
)

from codedouble.server import snippets as served_snippets
from codedouble.server.contract import artifact
from codedouble.server.contract import snippets as snippet_file
from codedouble.server.contract.snippets import Snippet
from codedouble.trainer import cli
from codedouble.trainer.mining import dataset
from codedouble.trainer.mining.miner import MineOptions, mine
from codedouble.trainer.mining.records import ChangeRecord, FileContext
from codedouble.trainer.snippets import mine as mining
from codedouble.trainer.snippets.shapes import pieces
from codedouble.trainer.snippets.unify import anti_unify, escape, to_lsp
from codedouble.trainer.training.train import train
from conftest import ALICE, GitRepo, isolate_git

ASYNC = pytest.mark.asyncio(loop_scope="module")  # the LSP tests share the module's server and event loop

# --- reading an LSP snippet back, as an editor expands it (the subset codedouble writes) ---------------------


def expand(body: str, values: dict[int, str]) -> str:
    """`body` with `${k:default}` and `${k}` replaced by values[k] and `$0` by nothing; escapes undone."""
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\":
            assert body[i + 1] in "\\$}", f"a needless escape at {i}: {body!r}"
            out.append(body[i + 1])
            i += 2
        elif c == "$":
            m = re.compile(r"\$0|\$\{(\d+)\}|\$\{(\d+):((?:[^\\}]|\\.)*)\}").match(body, i)
            assert m is not None, f"not a tabstop at {i}: {body!r}"
            number = m.group(1) or m.group(2)
            out.append(values[int(number)] if number else "")
            i = m.end()
        else:
            assert c != "}", f"an unescaped }} at {i}: {body!r}"
            out.append(c)
            i += 1
    return "".join(out)


# --- units: shapes, anti-unification, escaping ---------------------------------------------------------------


def test_names_and_literals_are_abstracted_syntax_and_layout_are_not() -> None:
    a = pieces("python", 'def load_a(path):\n    return read(path, "a")\n')[0]
    b = pieces("python", 'def load_b(name):\n    return fetch(name, "bbb")\n')[0]
    spaced = pieces("python", 'def load_a(path):\n    return read(path,  "a")\n')[0]
    other = pieces("python", 'def load_a(path):\n    yield read(path, "a")\n')[0]
    assert a.key == b.key
    assert a.key != spaced.key and a.key != other.key


def test_blocks_inside_a_definition_are_pieces_of_their_own_indented_from_their_first_line() -> None:
    go = "func (s *Server) Load(path string) (*Config, error) {\n\tdata, err := os.ReadFile(path)\n"
    go += '\tif err != nil {\n\t\treturn nil, fmt.Errorf("read config: %w", err)\n\t}\n\treturn parse(data)\n}'
    found = pieces("go", go)
    assert [p.scope for p in found] == ["definition", "block"]
    assert found[1].node == "if_statement"
    assert found[1].text == 'if err != nil {\n\treturn nil, fmt.Errorf("read config: %w", err)\n}'


def test_a_method_indented_in_its_file_and_a_javascript_method_both_parse() -> None:
    [method] = pieces("python", "    def close(self):\n        self._file.close()")
    assert method.text == "def close(self):\n    self._file.close()"
    js = pieces("javascript", "  render() {\n    return this.props.children;\n  }")
    assert js and js[0].node == "method_definition"
    assert pieces("python", "def broken(:\n") == []


def test_anti_unification_numbers_a_shared_value_once_and_keeps_what_all_share() -> None:
    texts = [
        "def close_file(self):\n    self.file.close()\n    self.file = None",
        "def close_sock(self):\n    self.sock.close()\n    self.sock = None",
        "def close_db(self):\n    self.db.close()\n    self.db = None",
    ]
    template = anti_unify([pieces("python", t)[0] for t in texts])
    body = to_lsp(template)
    assert body == "def ${1:close_file}(self):\n    self.${2:file}.close()\n    self.${2} = None$0"
    for i, text in enumerate(texts):
        assert template.occurrence(i) == text
    assert template.constant_names == 4  # self, close, self, self


def test_escaping_follows_the_lsp_snippet_grammar() -> None:
    assert escape("a$b}c\\d{e") == "a\\$b\\}c\\\\d{e"
    texts = ['def a():\n    return "${x}\\\\"', 'def b():\n    return "${x}\\\\"', 'def c():\n    return "${x}\\\\"']
    body = to_lsp(anti_unify([pieces("python", t)[0] for t in texts]))
    assert body == 'def ${1:a}():\n    return "\\${x\\}\\\\\\\\"$0'
    assert expand(body, {1: "a"}) == texts[0]


# Identifiers only: a keyword (`in`, `is`, `not`…) makes a definition that does not parse, not an occurrence.
NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(lambda s: not keyword.iskeyword(s))
VALUES = st.text(alphabet=st.sampled_from(list("ab$}{\\ :%w")), max_size=8)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(NAMES, NAMES, VALUES), min_size=2, max_size=6))
def test_filling_the_placeholders_with_an_occurrences_values_gives_it_back(
    occurrences: list[tuple[str, str, str]],
) -> None:
    texts = [
        f"def {name}({arg}):\n    if {arg} is None:\n        raise ValueError({json.dumps(value)})\n    return {arg}"
        for name, arg, value in occurrences
    ]
    template = anti_unify([pieces("python", t)[0] for t in texts])
    body = to_lsp(template)
    assert body.endswith("$0")
    for i, text in enumerate(texts):
        values = {k + 1: v[i] for k, v in enumerate(template.values)}
        assert expand(body, values) == text
    assert expand(body, {k + 1: d for k, d in enumerate(template.defaults)}) == template.example


# --- mining records ------------------------------------------------------------------------------------------


def record(commit: str, text: str, day: int, path: str = "app/x.py", before: str | None = None) -> ChangeRecord:
    return ChangeRecord(
        repository="/repo",
        commit=commit,
        author_email=ALICE.email,
        author_name=ALICE.name,
        authored_at=f"2025-03-{day:02d}T10:00:00+02:00",
        committed_at=f"2025-03-{day:02d}T10:00:00+02:00",
        path=path,
        old_path=None,
        language="python",
        qualified_name="f",
        kind="function",
        change="added" if before is None else "modified",
        before=before,
        after=text,
        line=1,
        context=FileContext("", ()),
        message="m",
    )


def loader(name: str, secret: str = "") -> str:
    return f'def load_{name}(path):\n    config = read_config(path, "{secret or name}")\n    return config.values'


def test_a_shape_needs_three_distinct_commits() -> None:
    twice = [record("c1", loader("a"), 1), record("c2", loader("b"), 2), record("c2", loader("c"), 2)]
    assert mining.mine(twice) == []
    [found] = mining.mine([*twice, record("c3", loader("d"), 3)])
    assert (found.commits, found.occurrences, found.first, found.last) == (3, 4, "2025-03-01", "2025-03-03")


def test_a_definition_edited_in_many_commits_is_not_a_habit() -> None:
    # The same function touched in five commits: only its first writing counts, its shape was there after.
    edits = [record("c0", loader("a"), 1)]
    for day in range(2, 7):
        edits.append(record(f"c{day}", loader("a") + f"  # {day}", day, before=edits[-1].after))
    assert mining.mine(edits) == []


def test_secrets_never_become_snippets() -> None:
    key = "AKIAIOSFODNN7EXAMPLE"  # AWS's documented example key: the scrubber knows its shape
    planted = [record(f"c{i}", loader(n, secret=key), i) for i, n in enumerate("abcd", 1)]
    assert mining.mine(planted) == []
    # Records the miner scrubbed carry its mark: that is no snippet either.
    marked = [record(f"c{i}", loader(n, secret="<secret>"), i) for i, n in enumerate("abcd", 1)]
    assert mining.mine(marked) == []


def test_ranking_prefers_the_cursors_context_and_items_are_snippets() -> None:
    def snippet(label: str, commits: int, enclosing: str, test_share: float) -> Snippet:
        return Snippet("python", "function_definition", "definition", label + "\n    ${1:pass}$0", label, label,
                       commits, commits, "2025-01-01", "2025-03-01", enclosing, test_share)  # fmt: skip

    in_tests = snippet("def test_x():", 4, "", 1.0)
    method = snippet("def close(self):", 5, "class", 0.0)
    source = "class A:\n    def \n"
    cursor = served_snippets.Cursor("python", "tests/test_a.py", "def ", "")
    assert served_snippets.rank([method, in_tests], cursor) == [in_tests, method]
    at_method = len("class A:\n    def ")
    got = served_snippets.items([in_tests, method], "python", "app/a.py", source, at_method, 1, 8)
    assert [i.label for i in got] == ["def close(self):", "def test_x():"]
    first = got[0]
    assert first.kind == types.CompletionItemKind.Snippet
    assert first.insert_text_format == types.InsertTextFormat.Snippet
    assert first.text_edit is not None and first.text_edit.range.start == types.Position(1, 4)
    assert first.detail == "codedouble snippet: written 5 times in 5 commits, last 2025-03-01"
    # Nothing on a blank line, in another language, or for what no snippet starts with.
    assert served_snippets.items([method], "python", "a.py", "    ", 4, 0, 4) == []
    assert served_snippets.items([method], "go", "a.go", "def ", 4, 0, 4) == []
    assert served_snippets.items([method], "python", "a.py", "return ", 7, 0, 7) == []


def test_the_snippets_file_round_trips_and_another_format_is_named(tmp_path: Path) -> None:
    items = [Snippet("go", "if_statement", "block", "if err != nil {\n\treturn ${1:err}\n}$0", "x", "if err != nil {",
                     3, 3, "2025-01-01", "2025-02-01", "function", 0.0)]  # fmt: skip
    assert snippet_file.load(tmp_path) is None  # a double from before snippets
    snippet_file.write(tmp_path, items)
    assert snippet_file.load(tmp_path) == items
    (tmp_path / snippet_file.SNIPPETS).write_text('{"snippets_format": 99}\n', encoding="utf-8")
    with pytest.raises(snippet_file.SnippetsError, match="format 99.*train the double again"):
        snippet_file.load(tmp_path)


# --- the generated history: one shape, five commits, five names ---------------------------------------------

NAMES_WRITTEN = ["alpha", "beta", "gamma", "delta", "epsilon"]


def parser_test(name: str) -> str:
    return (
        f"def test_parses_{name}():\n"
        f'    parsed = parse_config("{name}.toml")\n'
        f'    assert parsed.name == "{name}"\n'
        "    assert parsed.errors == []\n"
    )


EXPECTED_BODY = (
    "def ${1:test_parses_epsilon}():\n"
    '    parsed = parse_config(${2:"epsilon.toml"})\n'
    '    assert parsed.name == ${3:"epsilon"}\n'
    "    assert parsed.errors == []$0"
)


@dataclass(frozen=True)
class SnippetDouble:
    root: Path
    repo: Path
    dataset: Path
    artifact: Path


def make_snippet_double(root: Path) -> SnippetDouble:
    """The engineer writes one test's shape in 5 commits (a test file each, its own names), then the history of
    test_server.py (newest, so its last commits are the held-out ones); mined and trained tiny."""
    with pytest.MonkeyPatch.context() as mp:
        isolate_git(mp)
        mp.setenv("XDG_DATA_HOME", str(root / "xdg-data"))
        repo = GitRepo(root / "work")
        try:
            for name in NAMES_WRITTEN:
                repo.write(f"tests/test_{name}.py", "from app.config import parse_config\n\n\n" + parser_test(name))
                repo.commit(f"Test parsing {name}", author=ALICE)
            build_history(repo)
        finally:
            repo.close()
        mine(repo.path, root / "dataset", MineOptions(all_authors=True), progress=False)
        train(root / "dataset", replace(TINY, out=root / "double"), progress=False)
    return SnippetDouble(root, repo.path, root / "dataset", root / "double")


@pytest.fixture(scope="module")
def snippet_double(tmp_path_factory: pytest.TempPathFactory) -> SnippetDouble:
    return make_snippet_double(tmp_path_factory.mktemp("snippets"))


def test_five_commits_of_one_shape_give_one_snippet_with_placeholders_where_names_differ(
    snippet_double: SnippetDouble,
) -> None:
    [found] = mining.mine(dataset.load_records(snippet_double.dataset))
    assert found.body == EXPECTED_BODY
    assert (found.commits, found.occurrences, found.language, found.enclosing) == (5, 5, "python", "")
    assert found.test_share == 1.0 and found.label == "def test_parses_epsilon():"
    # The double ships the same one (all five commits are training commits), listed in its manifest's files.
    shipped = snippet_file.load(snippet_double.artifact)
    assert shipped == [found]
    manifest = artifact.read_manifest(snippet_double.artifact)
    assert snippet_file.SNIPPETS in manifest[artifact.FILES]
    assert manifest["records"]["snippets"] == 1


def test_the_command_lists_a_dataset_and_a_double(
    snippet_double: SnippetDouble, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli.main(["snippets", str(snippet_double.dataset)]) == 0
    text = capsys.readouterr().out
    assert "1 snippets, mined from the records of the dataset" in text
    assert "written 5 times in 5 commits" in text and "${1:test_parses_epsilon}" in text
    assert cli.main(["snippets", str(snippet_double.artifact), "--json", "--language", "python"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [s["body"] for s in listed["snippets"]] == [EXPECTED_BODY]
    assert cli.main(["snippets", str(snippet_double.artifact), "--language", "go"]) == 0
    assert capsys.readouterr().out.startswith("no snippets")
    # Bad input: each named.
    assert cli.main(["snippets", str(tmp_path / "nowhere")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert cli.main(["snippets", str(tmp_path)]) == 2
    assert "neither a dataset nor a double" in capsys.readouterr().err
    assert cli.main(["snippets", str(snippet_double.dataset), "--language", "cobol"]) == 2
    assert "'cobol' is not a language" in capsys.readouterr().err
    older = tmp_path / "older"
    shutil.copytree(snippet_double.artifact, older)
    (older / snippet_file.SNIPPETS).unlink()
    assert cli.main(["snippets", str(older)]) == 2
    assert "trained before snippets" in capsys.readouterr().err


# --- served over LSP by the real server ----------------------------------------------------------------------

TYPED_TEST = "def "


_fresh = itertools.count()


def new_test_file(double: SnippetDouble) -> tuple[str, str]:
    """A new test file (a fresh name each time) with `def ` typed at the top level."""
    return f"tests/test_zeta_{next(_fresh)}.py", "from app.config import parse_config\n\n\n" + TYPED_TEST


async def snippet_answer(client: Any, double: SnippetDouble) -> tuple[types.CompletionList, types.Position]:
    path, text = new_test_file(double)
    uri = open_document(client, double.repo, text, name=path)
    where = position(text, len(text))
    return await complete(client, uri, where), where


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def snippet_served(snippet_double: SnippetDouble) -> Any:
    client = await start_server(
        snippet_double.root, snippet_double.repo, "--artifact", str(snippet_double.artifact),
        init={"workspaceContext": False},
    )  # fmt: skip
    got = await wait_for_state(client, {"ready", "broken", "missing"})
    assert got["state"] == "ready", got
    yield client
    await stop_server(client)


@ASYNC
async def test_the_server_offers_the_snippet_as_a_snippet_item(
    snippet_served: Any, snippet_double: SnippetDouble
) -> None:
    answer, where = await snippet_answer(snippet_served, snippet_double)
    snippets = [i for i in answer.items if i.insert_text_format == types.InsertTextFormat.Snippet]
    assert len(snippets) == 1, answer.items
    [item] = snippets
    assert item.kind == types.CompletionItemKind.Snippet
    assert item.label == "def test_parses_epsilon():"
    assert item.detail is not None and item.detail.startswith("codedouble snippet: written 5 times in 5 commits")
    assert item.text_edit is not None and item.text_edit.new_text == EXPECTED_BODY
    assert item.text_edit.range == types.Range(types.Position(where.line, 0), where)  # replaces "def "
    assert (await status(snippet_served))["snippets"] == 1


@ASYNC
async def test_the_snippets_setting_turns_them_off(snippet_served: Any, snippet_double: SnippetDouble) -> None:
    await configure(snippet_served, {"codedouble": {"snippets": False}})
    try:
        answer, _ = await snippet_answer(snippet_served, snippet_double)
        assert not [i for i in answer.items if i.insert_text_format == types.InsertTextFormat.Snippet]
    finally:
        await configure(snippet_served, {"codedouble": {}})
    answer, _ = await snippet_answer(snippet_served, snippet_double)
    assert [i for i in answer.items if i.insert_text_format == types.InsertTextFormat.Snippet]


@pytest.mark.parametrize("damage", ["missing", "other format"])
@ASYNC
async def test_a_double_without_a_readable_snippets_file_still_serves(
    snippet_double: SnippetDouble, tmp_path: Path, damage: str
) -> None:
    older = tmp_path / "double"
    shutil.copytree(snippet_double.artifact, older)
    if damage == "missing":
        (older / snippet_file.SNIPPETS).unlink()
    else:
        (older / snippet_file.SNIPPETS).write_text('{"snippets_format": 99}\n', encoding="utf-8")
    client = await start_server(snippet_double.root, snippet_double.repo, "--artifact", str(older))
    try:
        got = await wait_for_state(client, {"ready", "broken", "missing"})
        assert got["state"] == "ready", got
        assert got["snippets"] is None
        answer, _ = await snippet_answer(client, snippet_double)
        assert not [i for i in answer.items if i.insert_text_format == types.InsertTextFormat.Snippet]
    finally:
        await stop_server(client)
