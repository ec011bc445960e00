"""`codedouble mine` end to end: repositories built in tmp_path, mined through `mine()` and the CLI."""

from __future__ import annotations

import json
import os
import random
import string
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import git
import pytest

from codedouble.trainer import cli
from codedouble.trainer.mining import extract, filters
from codedouble.trainer.mining.dataset import DATASET_FORMAT, load_records
from codedouble.trainer.mining.miner import MineOptions, MineResult, mine
from codedouble.trainer.mining.records import RECORD_FORMAT, ChangeRecord
from conftest import ALICE, ALICE_OLD, BOB, GitRepo, Person

DEPENDABOT = Person("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com")
CAROL = Person("Carol Private", "12345+carol@users.noreply.github.com")


# --- helpers -----------------------------------------------------------------------------------------


def run_mine(repo: Path, out: Path, **options: Any) -> MineResult:
    return mine(repo, out, MineOptions(**options), progress=False)


def records_of(out: Path) -> list[ChangeRecord]:
    return list(load_records(out))


def manifest_of(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


def by_name(records: list[ChangeRecord]) -> dict[str, ChangeRecord]:
    names = [r.qualified_name for r in records]
    assert len(names) == len(set(names)), f"expected one record per name, got {names}"
    return {r.qualified_name: r for r in records}


def summary(records: list[ChangeRecord]) -> list[tuple[str, str, str]]:
    return [(r.path, r.qualified_name, r.change) for r in records]


def in_commit(records: list[ChangeRecord], sha: str) -> list[ChangeRecord]:
    return [r for r in records if r.commit == sha]


def snapshot(root: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every file and directory under root (.git included): path -> (bytes, mtime_ns)."""
    seen: dict[str, tuple[bytes | None, int]] = {}
    for path in sorted(root.rglob("*")):
        stat = path.lstat()
        data = path.read_bytes() if path.is_file() and not path.is_symlink() else None
        seen[str(path.relative_to(root))] = (data, stat.st_mtime_ns)
    return seen


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = cli.main(["mine", *(str(a) for a in args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


APP_V1 = """\
import os
from typing import Any


def greet(name):
    return "hi " + name


class Greeter:
    greeting = "hello"

    def __init__(self, who):
        self.who = who

    def say(self):
        return self.greeting + self.who


def doomed():
    return os.sep
"""

# greet and Greeter.say edited, doomed deleted; Greeter's own lines and __init__ untouched.
APP_V2 = """\
import os
from typing import Any


def greet(name):
    return "hello, " + name


class Greeter:
    greeting = "hello"

    def __init__(self, who):
        self.who = who

    def say(self):
        return f"{self.greeting} {self.who}"
"""


# --- records -----------------------------------------------------------------------------------------


def test_added_modified_deleted_records(repo: GitRepo, tmp_path: Path) -> None:
    date1 = datetime(2021, 3, 4, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    date2 = datetime(2021, 3, 5, 11, 15, tzinfo=timezone(timedelta(hours=-5)))
    repo.write("app.py", APP_V1)
    first = repo.commit("Add the greeter\n\nWith a body line.", date=date1)
    repo.write("app.py", APP_V2)
    second = repo.commit("Friendlier greetings", date=date2)

    result = run_mine(repo.path, tmp_path / "out")
    assert result.new_commits == 2 and result.new_records == 8 and not result.incremental
    records = records_of(tmp_path / "out")
    assert summary(records) == [
        ("app.py", "greet", "added"),
        ("app.py", "Greeter", "added"),
        ("app.py", "Greeter.__init__", "added"),
        ("app.py", "Greeter.say", "added"),
        ("app.py", "doomed", "added"),
        ("app.py", "greet", "modified"),
        ("app.py", "Greeter.say", "modified"),
        ("app.py", "doomed", "deleted"),
    ]

    added = by_name(in_commit(records, first))
    assert {r.qualified_name: (r.kind, r.line) for r in added.values()} == {
        "greet": ("function", 5),
        "Greeter": ("class", 9),
        "Greeter.__init__": ("method", 12),
        "Greeter.say": ("method", 15),
        "doomed": ("function", 19),
    }
    greet = added["greet"]
    assert greet.before is None
    assert greet.after == 'def greet(name):\n    return "hi " + name'
    assert greet.commit == first and greet.old_path is None and greet.language == "python"
    assert (greet.author_name, greet.author_email) == (ALICE.name, ALICE.email)
    assert greet.authored_at == "2021-03-04T10:00:00+02:00"
    assert greet.committed_at == "2021-03-04T10:00:00+02:00"
    assert greet.message == "Add the greeter\n\nWith a body line."
    assert greet.context.header == "import os\nfrom typing import Any"
    assert greet.context.enclosing == ()
    assert added["Greeter.say"].context.enclosing == ("class Greeter:",)
    assert added["Greeter.say"].after == "    def say(self):\n        return self.greeting + self.who"

    changed = by_name(in_commit(records, second))
    assert set(changed) == {"greet", "Greeter.say", "doomed"}
    greet2 = changed["greet"]
    assert greet2.change == "modified" and greet2.line == 5
    assert greet2.before == 'def greet(name):\n    return "hi " + name'
    assert greet2.after == 'def greet(name):\n    return "hello, " + name'
    assert greet2.authored_at == "2021-03-05T11:15:00-05:00" and greet2.message == "Friendlier greetings"
    say = changed["Greeter.say"]
    assert say.kind == "method" and say.line == 15
    assert say.context.enclosing == ("class Greeter:",)
    assert say.after == '    def say(self):\n        return f"{self.greeting} {self.who}"'
    doomed = changed["doomed"]
    assert doomed.change == "deleted" and doomed.after is None
    assert doomed.before == "def doomed():\n    return os.sep"
    assert doomed.line == 19  # in the before-version
    assert doomed.context.header == "import os\nfrom typing import Any"

    manifest = manifest_of(tmp_path / "out")
    assert manifest["counts"]["records"] == {"kept": 8}
    assert manifest["counts"]["commits"] == {"kept": 2}
    assert manifest["head"] == second
    assert manifest["identities"] == [ALICE.email]
    assert manifest["all_authors"] is False
    assert manifest["time_span"] == {"first": "2021-03-04T08:00:00+00:00", "last": "2021-03-05T16:15:00+00:00"}


def test_deleting_a_whole_file_deletes_its_definitions(repo: GitRepo, tmp_path: Path) -> None:
    repo.write("keep.py", "def keep():\n    return 1\n")
    repo.write(
        "gone.py", "import sys\n\n\ndef gone():\n    return sys.argv\n\n\nclass Old:\n    def m(self):\n        pass\n"
    )
    repo.commit("two files")
    repo.remove("gone.py")
    sha = repo.commit("remove gone.py")
    run_mine(repo.path, tmp_path / "out")
    deleted = in_commit(records_of(tmp_path / "out"), sha)
    assert sorted(summary(deleted)) == [
        ("gone.py", "Old", "deleted"),
        ("gone.py", "Old.m", "deleted"),
        ("gone.py", "gone", "deleted"),
    ]
    assert all(r.after is None and r.before for r in deleted)
    assert by_name(deleted)["Old.m"].context.enclosing == ("class Old:",)
    assert by_name(deleted)["gone"].context.header == "import sys"


def test_nested_function_and_class_attribute(repo: GitRepo, tmp_path: Path) -> None:
    source = """\
def outer(x):
    def inner(y):
        return y + 1

    return inner(x)


class Config:
    retries = 3

    def run(self):
        return self.retries
"""
    repo.write("nest.py", source)
    repo.commit("add")
    repo.write("nest.py", source.replace("y + 1", "y + 2"))
    inner_only = repo.commit("change inner only")
    repo.write("nest.py", source.replace("y + 1", "y + 2").replace("return inner(x)", "return inner(x) * 2"))
    outer_only = repo.commit("change outer's own line")
    repo.write(
        "nest.py",
        source.replace("y + 1", "y + 2")
        .replace("return inner(x)", "return inner(x) * 2")
        .replace("retries = 3", "retries = 5"),
    )
    attribute = repo.commit("change a class attribute")

    run_mine(repo.path, tmp_path / "out")
    records = records_of(tmp_path / "out")
    assert {r.qualified_name for r in records if r.change == "added"} == {
        "outer",
        "outer.inner",
        "Config",
        "Config.run",
    }

    (inner,) = in_commit(records, inner_only)
    assert (inner.qualified_name, inner.kind, inner.change, inner.line) == ("outer.inner", "function", "modified", 2)
    assert inner.context.enclosing == ("def outer(x):",)
    assert inner.after == "    def inner(y):\n        return y + 2"

    (outer,) = in_commit(records, outer_only)
    assert (outer.qualified_name, outer.change) == ("outer", "modified")
    assert outer.after is not None and "return inner(x) * 2" in outer.after

    (cls,) = in_commit(records, attribute)
    assert (cls.qualified_name, cls.kind, cls.change, cls.line) == ("Config", "class", "modified", 8)
    assert cls.before is not None and "retries = 3" in cls.before
    assert cls.after is not None and "retries = 5" in cls.after


def test_adding_a_method_yields_only_the_method(repo: GitRepo, tmp_path: Path) -> None:
    repo.write("m.py", "class A:\n    x = 1\n\n    def one(self):\n        return 1\n")
    repo.commit("add A")
    repo.write(
        "m.py", "class A:\n    x = 1\n\n    def one(self):\n        return 1\n\n    def two(self):\n        return 2\n"
    )
    sha = repo.commit("add A.two")
    run_mine(repo.path, tmp_path / "out")
    (two,) = in_commit(records_of(tmp_path / "out"), sha)
    assert (two.qualified_name, two.kind, two.change, two.line) == ("A.two", "method", "added", 7)
    assert two.context.enclosing == ("class A:",)


FUNCS = "".join(f"def f{i}(a, b):\n    total = a + b + {i}\n    return total * {i}\n\n\n" for i in range(8))


def test_rename_with_edit_follows_the_file(repo: GitRepo, tmp_path: Path) -> None:
    repo.write("old_name.py", FUNCS)
    repo.commit("add")
    repo.mv("old_name.py", "pkg/new_name.py")
    repo.write("pkg/new_name.py", FUNCS.replace("return total * 3", "return total * 33"))
    sha = repo.commit("move and tweak f3")
    run_mine(repo.path, tmp_path / "out")
    records = in_commit(records_of(tmp_path / "out"), sha)
    assert [(r.path, r.old_path, r.qualified_name, r.change) for r in records] == [
        ("pkg/new_name.py", "old_name.py", "f3", "modified")
    ]
    assert records[0].before == "def f3(a, b):\n    total = a + b + 3\n    return total * 3"
    assert records[0].after == "def f3(a, b):\n    total = a + b + 3\n    return total * 33"


def test_pure_rename_yields_no_records(repo: GitRepo, tmp_path: Path) -> None:
    repo.write("a.py", FUNCS)
    repo.commit("add")
    repo.mv("a.py", "b.py")
    sha = repo.commit("rename only")
    run_mine(repo.path, tmp_path / "out")
    records = records_of(tmp_path / "out")
    assert in_commit(records, sha) == []
    assert len(records) == 8
    manifest = manifest_of(tmp_path / "out")
    assert manifest["counts"]["files"] == {"kept": 1, extract.UNCHANGED: 1}
    assert manifest["counts"]["commits"] == {"kept": 2}


def test_merge_commit_left_out_and_branch_change_mined_once(repo: GitRepo, tmp_path: Path) -> None:
    repo.write("base.py", "def base():\n    return 0\n")
    repo.commit("base")
    repo.branch("feature")
    repo.checkout("feature")
    repo.write("feature.py", "def feature():\n    return 'f'\n")
    on_branch = repo.commit("feature work")
    repo.checkout("main")
    repo.write("base.py", "def base():\n    return 1\n")
    on_main = repo.commit("main work")
    merge = repo.merge("feature")
    assert len(repo.repo.commit(merge).parents) == 2

    run_mine(repo.path, tmp_path / "out")
    records = records_of(tmp_path / "out")
    assert in_commit(records, merge) == []
    feature = [r for r in records if r.qualified_name == "feature"]
    assert [(r.commit, r.change) for r in feature] == [(on_branch, "added")]
    assert [(r.qualified_name, r.change) for r in in_commit(records, on_main)] == [("base", "modified")]
    counts = manifest_of(tmp_path / "out")["counts"]
    assert counts["commits"] == {"kept": 3, "merge commit": 1}
    assert counts["records"] == {"kept": 3}


# --- whose commits -----------------------------------------------------------------------------------


MAILMAP = f"{ALICE.name} <{ALICE.email}> <{ALICE_OLD.email}>\n"


@pytest.fixture
def team_repo(repo: GitRepo) -> GitRepo:
    """Alice, Alice under an old address (mapped by .mailmap), and Bob, one file each."""
    repo.mailmap(MAILMAP)
    repo.write("alice.py", "def by_alice():\n    return 'a'\n")
    repo.commit("alice", author=ALICE)
    repo.write("alias.py", "def by_alias():\n    return 'old'\n")
    repo.commit("alice's old address", author=ALICE_OLD)
    repo.write("bob.py", "def by_bob():\n    return 'b'\n")
    repo.commit("bob", author=BOB)
    return repo


def test_default_identity_with_mailmap_alias(team_repo: GitRepo, tmp_path: Path) -> None:
    run_mine(team_repo.path, tmp_path / "out")
    records = by_name(records_of(tmp_path / "out"))
    assert set(records) == {"by_alice", "by_alias"}
    # The alias's commit is recorded under the canonical identity .mailmap gives it.
    assert (records["by_alias"].author_name, records["by_alias"].author_email) == (ALICE.name, ALICE.email)
    manifest = manifest_of(tmp_path / "out")
    assert manifest["counts"]["commits"] == {"kept": 2, "another author": 1}
    # Alice (and the aliases .mailmap gives her), nobody else.
    assert ALICE.email in manifest["identities"] and set(manifest["identities"]) <= {ALICE.email, ALICE_OLD.email}
    assert manifest["counts"]["identities"] == {ALICE.ident: 2}


def test_configured_alias_email_also_takes_the_canonical_identity(team_repo: GitRepo, tmp_path: Path) -> None:
    team_repo.set_user_email(ALICE_OLD.email.upper())
    run_mine(team_repo.path, tmp_path / "out")
    assert {r.qualified_name for r in records_of(tmp_path / "out")} == {"by_alice", "by_alias"}
    assert manifest_of(tmp_path / "out")["identities"] == sorted([ALICE.email, ALICE_OLD.email])


NAMED_MAILMAP = f"{ALICE.name} <{ALICE.email}> {ALICE_OLD.name} <{ALICE_OLD.email}>\n"


@pytest.fixture
def named_alias_repo(repo: GitRepo) -> GitRepo:
    """A .mailmap entry in its name-and-email form; the repository is configured with the old address."""
    repo.set_user_email(ALICE_OLD.email)
    repo.mailmap(NAMED_MAILMAP)
    repo.write("alice.py", "def by_alice():\n    return 'a'\n")
    repo.commit("alice", author=ALICE)
    repo.write("alias.py", "def by_alias():\n    return 'old'\n")
    repo.commit("alice's old address", author=ALICE_OLD)
    repo.write("bob.py", "def by_bob():\n    return 'b'\n")
    repo.commit("bob", author=BOB)
    return repo


def test_configured_alias_with_name_and_email_mailmap_entry(named_alias_repo: GitRepo, tmp_path: Path) -> None:
    # `Proper Name <proper@email> Commit Name <commit@email>` is the .mailmap form git documents for an alias:
    # Alice's old address has commits (recorded under her canonical identity), so it is not an unknown author,
    # and it and her canonical address are one person.
    run_mine(named_alias_repo.path, tmp_path / "out")
    assert {r.qualified_name for r in records_of(tmp_path / "out")} == {"by_alice", "by_alias"}


def test_author_alias_with_name_and_email_mailmap_entry(named_alias_repo: GitRepo, tmp_path: Path) -> None:
    run_mine(named_alias_repo.path, tmp_path / "out", authors=(ALICE_OLD.email,))
    assert {r.qualified_name for r in records_of(tmp_path / "out")} == {"by_alice", "by_alias"}


def test_canonical_author_with_name_and_email_mailmap_entry(named_alias_repo: GitRepo, tmp_path: Path) -> None:
    run_mine(named_alias_repo.path, tmp_path / "out", authors=(ALICE.email,))
    records = by_name(records_of(tmp_path / "out"))
    assert set(records) == {"by_alice", "by_alias"}
    assert records["by_alias"].author_email == ALICE.email


def test_named_authors_merge(team_repo: GitRepo, tmp_path: Path) -> None:
    run_mine(team_repo.path, tmp_path / "bob", authors=(BOB.email,))
    assert {r.qualified_name for r in records_of(tmp_path / "bob")} == {"by_bob"}
    assert manifest_of(tmp_path / "bob")["counts"]["commits"] == {"kept": 1, "another author": 2}

    run_mine(team_repo.path, tmp_path / "both", authors=(ALICE.email, BOB.email))
    assert {r.qualified_name for r in records_of(tmp_path / "both")} == {"by_alice", "by_alias", "by_bob"}
    manifest = manifest_of(tmp_path / "both")
    assert {ALICE.email, BOB.email} <= set(manifest["identities"]) <= {ALICE.email, ALICE_OLD.email, BOB.email}
    assert manifest["all_authors"] is False


def test_cli_author_is_repeatable(team_repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, team_repo.path, "--out", tmp_path / "out", "--quiet", "--author", BOB.email, "--author", ALICE_OLD.email
    )
    assert code == 0, err
    assert out == ""
    assert "3 new records from 3 commits" in err
    assert {r.qualified_name for r in records_of(tmp_path / "out")} == {"by_alice", "by_alias", "by_bob"}


def test_all_authors(team_repo: GitRepo, tmp_path: Path) -> None:
    run_mine(team_repo.path, tmp_path / "out", all_authors=True)
    records = by_name(records_of(tmp_path / "out"))
    assert set(records) == {"by_alice", "by_alias", "by_bob"}
    assert records["by_bob"].author_email == BOB.email
    manifest = manifest_of(tmp_path / "out")
    assert manifest["all_authors"] is True
    assert manifest["counts"]["commits"] == {"kept": 3}
    assert manifest["counts"]["identities"] == {ALICE.ident: 2, BOB.ident: 1}


def test_bots_left_out_even_with_all_authors(repo: GitRepo, tmp_path: Path) -> None:
    repo.write("a.py", "def by_alice():\n    return 1\n")
    repo.commit("alice")
    repo.write("deps.py", "def bumped():\n    return '1.2.3'\n")
    repo.commit("Bump foo from 1.2.2 to 1.2.3", author=DEPENDABOT)
    repo.write("c.py", "def by_carol():\n    return 3\n")
    repo.commit("carol hides her address", author=CAROL)
    run_mine(repo.path, tmp_path / "out", all_authors=True)
    records = by_name(records_of(tmp_path / "out"))
    assert set(records) == {"by_alice", "by_carol"}
    assert records["by_carol"].author_email == CAROL.email
    assert manifest_of(tmp_path / "out")["counts"]["commits"] == {"kept": 2, "bot": 1}


def test_bot_named_with_author_is_mined(repo: GitRepo, tmp_path: Path) -> None:
    repo.write("a.py", "def by_alice():\n    return 1\n")
    repo.commit("alice")
    repo.write("deps.py", "def bumped():\n    return '1.2.3'\n")
    repo.commit("bump", author=DEPENDABOT)
    run_mine(repo.path, tmp_path / "out", authors=(DEPENDABOT.email,))
    assert [r.qualified_name for r in records_of(tmp_path / "out")] == ["bumped"]


# --- filters -----------------------------------------------------------------------------------------


GOOD = "def good(x):\n    return x + 1\n"


def test_bad_files_are_skipped_with_reasons(repo: GitRepo, tmp_path: Path) -> None:
    repo.write("good.py", GOOD)
    repo.write("binary.py", b"\x00\x01\x02def f():\n    pass\n" + bytes(range(256)))
    repo.write("latin.py", "# caf\xe9\ndef latin():\n    return '\xe9t\xe9'\n".encode("latin-1"))
    repo.write("big.py", "".join(f"def big_{i}():\n    return {i:>20}\n\n\n" for i in range(200)))  # ~9 KB
    repo.write("static/app.min.js", "function a(){return 1}\n")
    repo.write("static/bundle.js", "var x=" + "[" + ",".join(str(i) for i in range(1200)) + "];function f(){return x}")
    repo.write(
        "api_gen.py",
        "# Code generated by protoc. DO NOT EDIT.\n# source: api.proto\n\ndef generated():\n    return 1\n",
    )
    repo.write("vendor/lib.py", "def vendored():\n    return 1\n")
    repo.write("web/node_modules/left-pad/index.js", "function leftPad(s) {\n  return s;\n}\n")
    repo.write("notes.txt", "def not_code():\n    pass\n")
    repo.symlink("link.py", "good.py")
    sha = repo.commit("everything at once")

    run_mine(repo.path, tmp_path / "out", max_file_bytes=5000)
    records = records_of(tmp_path / "out")
    assert [(r.path, r.qualified_name, r.commit) for r in records] == [("good.py", "good", sha)]
    assert manifest_of(tmp_path / "out")["counts"]["files"] == {
        "kept": 1,
        filters.BINARY: 1,
        filters.NOT_UTF8: 1,
        filters.TOO_LARGE: 1,
        filters.MINIFIED: 2,
        filters.GENERATED: 1,
        filters.VENDORED: 2,
        filters.UNSUPPORTED_LANGUAGE: 1,
        filters.NOT_A_FILE: 1,
    }


def test_submodule_with_a_source_like_name_is_skipped(make_repo, tmp_path: Path) -> None:
    # Submodules are often checked out under a library's name, and libraries are often named `something.js`.
    library = make_repo("reveal")
    library.write("README", "a library\n")
    library_commit = library.commit("library")
    repo = make_repo("repo")
    repo.write("a.py", "def a():\n    return 1\n")
    repo.commit("a")
    repo.gitlink("reveal.js", library_commit)
    repo.write("b.py", "def b():\n    return 2\n")
    sha = repo.commit("add the reveal.js submodule")
    assert "160000" in repo.repo.git.ls_tree(sha, "reveal.js")
    run_mine(repo.path, tmp_path / "out")
    assert [r.qualified_name for r in records_of(tmp_path / "out")] == ["a", "b"]
    assert manifest_of(tmp_path / "out")["counts"]["files"] == {"kept": 2, filters.NOT_A_FILE: 1}


def test_bad_file_in_a_later_commit_does_not_stop_the_run(repo: GitRepo, tmp_path: Path) -> None:
    repo.write("good.py", GOOD)
    repo.commit("good")
    repo.write("good.py", b"def good(x):\n    return 'caf\xe9'\n")  # the file turns latin-1
    repo.commit("latin-1 edit")
    repo.write("other.py", "def other():\n    return 2\n")
    sha = repo.commit("more")
    run_mine(repo.path, tmp_path / "out")
    assert [(r.qualified_name, r.change) for r in records_of(tmp_path / "out")] == [
        ("good", "added"),
        ("other", "added"),
    ]
    assert in_commit(records_of(tmp_path / "out"), sha)[0].qualified_name == "other"
    assert manifest_of(tmp_path / "out")["counts"]["files"] == {"kept": 2, filters.NOT_UTF8: 1}


def test_include_and_exclude_globs(repo: GitRepo, tmp_path: Path) -> None:
    repo.write("src/core.py", "def core():\n    return 1\n")
    repo.write("src/core_test.py", "def test_core():\n    assert True\n")
    repo.write("src/deep/util.py", "def util():\n    return 2\n")
    repo.write("tools/script.py", "def script():\n    return 3\n")
    repo.commit("files")
    run_mine(repo.path, tmp_path / "out", include=("src/*",), exclude=("*_test.py",))
    assert sorted(r.path for r in records_of(tmp_path / "out")) == ["src/core.py", "src/deep/util.py"]
    manifest = manifest_of(tmp_path / "out")
    assert manifest["counts"]["files"] == {"kept": 2, filters.EXCLUDED: 1, filters.NOT_INCLUDED: 1}
    assert manifest["filters"]["include"] == ["src/*"] and manifest["filters"]["exclude"] == ["*_test.py"]


def test_cli_include_exclude(repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("a/x.py", "def x():\n    return 1\n")
    repo.write("b/y.py", "def y():\n    return 2\n")
    repo.write("b/z.py", "def z():\n    return 3\n")
    repo.commit("files")
    code, _, err = run_cli(
        capsys, repo.path, "--out", tmp_path / "out", "--quiet", "--include", "b/*", "--exclude", "*/z.py"
    )
    assert code == 0, err
    assert [r.path for r in records_of(tmp_path / "out")] == ["b/y.py"]


def test_exact_duplicates_kept_once(repo: GitRepo, tmp_path: Path) -> None:
    helper = "def helper(x):\n    return x * 2\n"
    repo.write("a.py", helper)
    first = repo.commit("helper in a")
    repo.write("b.py", "import math\n\n\n" + helper)
    repo.commit("copy helper into b")
    repo.write("c.py", helper)
    repo.write("d.py", helper)
    repo.commit("and two more copies in one commit")
    run_mine(repo.path, tmp_path / "out")
    records = records_of(tmp_path / "out")
    assert [(r.path, r.commit) for r in records] == [("a.py", first)]
    assert manifest_of(tmp_path / "out")["counts"]["records"] == {"kept": 1, "exact duplicate": 3}


# --- secrets -----------------------------------------------------------------------------------------


def _random(alphabet: str, n: int, rng: random.Random) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def test_secrets_never_reach_the_dataset(repo: GitRepo, tmp_path: Path) -> None:
    rng = random.Random(20240611)
    aws = "AKIA" + _random(string.ascii_uppercase + string.digits, 16, rng)
    github = "ghp_" + _random(string.ascii_letters + string.digits, 36, rng)
    password = "Zq7#Lm2pVx9rTk"
    url_password = "P4ss!w0rd"
    url = f"postgres://user:{url_password}@db.local/app"
    b64 = string.ascii_letters + string.digits + "+/"
    key_lines = (
        ["MIIEpAIBAAKCAQEA" + _random(b64, 48, rng)]
        + [_random(b64, 64, rng) for _ in range(6)]
        + [_random(b64, 20, rng) + "=="]
    )
    key = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(key_lines) + "\n-----END RSA PRIVATE KEY-----"
    secrets = [aws, github, password, url_password, *key_lines]

    source = f'''\
import os


def connect():
    password = "{password}"
    return open_db("{url}", password)


class Client:
    token = "{github}"

    def aws(self):
        return {{"aws_access_key_id": "{aws}"}}


def load_key():
    return """{key}"""


def doomed():
    return "{github}"
'''
    repo.write("settings.py", source)
    repo.commit(f"Add settings\n\nuse {aws} and {github}\nconnect with {url}")
    # Edit every function with a secret and delete one, so secrets sit in `before` texts as well.
    edited = source.replace("open_db(", "open_database(").replace(f'"{aws}"', f'"{aws}", "region": "eu"')
    edited = edited.replace('return """', 'key = """').replace('-----"""\n', '-----"""\n    return key\n')
    edited = edited.split("\n\ndef doomed")[0] + "\n"
    repo.write("settings.py", edited)
    repo.commit(f'Rework settings\n\nThe old one was password = "{password}"')

    run_mine(repo.path, tmp_path / "out")
    records = records_of(tmp_path / "out")
    assert {(r.qualified_name, r.change) for r in records} >= {
        ("connect", "added"),
        ("Client", "added"),
        ("Client.aws", "added"),
        ("load_key", "added"),
        ("connect", "modified"),
        ("Client.aws", "modified"),
        ("load_key", "modified"),
        ("doomed", "deleted"),
    }
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"manifest.json", "report.txt"}
    for path in files:
        text = path.read_text(encoding="utf-8")
        for secret in secrets:
            assert secret not in text, f"{secret!r} leaked into {path}"
    # Scrubbed in place, not dropped: the texts are there with placeholders.
    assert any("<secret>" in (r.after or "") for r in records)
    assert any("<secret>" in (r.before or "") for r in records)
    assert any("<secret>" in r.message for r in records)
    assert manifest_of(tmp_path / "out")["counts"]["secrets"]


# --- errors ------------------------------------------------------------------------------------------


def test_error_not_a_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    code, _, err = run_cli(capsys, plain, "--out", tmp_path / "out")
    assert code == 2
    assert "error" in err and "is not a git repository" in err and str(plain) in err
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_error_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, tmp_path / "nowhere", "--out", tmp_path / "out")
    assert code == 2
    assert "does not exist" in err and "nowhere" in err


def test_error_empty_repository(make_repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = make_repo("empty")
    code, _, err = run_cli(capsys, empty.path, "--out", tmp_path / "out")
    assert code == 2
    assert "empty repository" in err and "no commits" in err


def test_error_repository_git_refuses(repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GitPython opens it; git refuses it (as it refuses one whose owner is not a safe.directory): git's reason shows.
    repo.write("a.py", "x = 1\n")
    repo.commit("one")
    with repo.repo.config_writer() as config:
        config.set_value("core", "repositoryformatversion", "99")
    code, _, err = run_cli(capsys, repo.path, "--out", tmp_path / "out")
    assert code == 2
    assert "cannot be read" in err and "repo version" in err and "empty" not in err


def test_error_unknown_author_lists_identities(
    team_repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, team_repo.path, "--out", tmp_path / "out", "--author", "nobody@example.com")
    assert code == 2
    assert "no commits by nobody@example.com" in err
    assert ALICE.ident in err and BOB.ident in err
    assert ALICE_OLD.email not in err  # listed after .mailmap
    assert not (tmp_path / "out").exists()


def test_error_no_user_email(make_repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = make_repo(user_email=None)
    repo.write("a.py", GOOD)
    repo.commit("a")
    code, _, err = run_cli(capsys, repo.path, "--out", tmp_path / "out")
    assert code == 2
    assert "no user.email is configured" in err and "--author" in err and "--all-authors" in err
    assert ALICE.ident in err
    # Naming the author instead works.
    code, _, err = run_cli(capsys, repo.path, "--out", tmp_path / "out", "--quiet", "--author", ALICE.email)
    assert code == 0, err


def test_error_output_not_writable(repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("a.py", GOOD)
    repo.commit("a")
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o500)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("running as root: a 0o500 directory is still writable")
        code, _, err = run_cli(capsys, repo.path, "--out", out)
        assert code == 2
        assert "not readable and writable" in err and str(out) in err
    finally:
        out.chmod(0o700)


def test_error_output_cannot_be_created(repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("a.py", GOOD)
    repo.commit("a")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, _, err = run_cli(capsys, repo.path, "--out", blocker)
    assert code == 2
    assert "cannot create the output directory" in err or "is not a directory" in err
    code, _, err = run_cli(capsys, repo.path, "--out", blocker / "sub")
    assert code == 2
    assert "cannot create the output directory" in err
    assert blocker.read_text() == "not a directory"


def test_error_foreign_manifest(repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("a.py", GOOD)
    repo.commit("a")
    out = tmp_path / "other"
    out.mkdir()
    foreign = json.dumps({"name": "some-other-tool", "version": 3})
    (out / "manifest.json").write_text(foreign)
    code, _, err = run_cli(capsys, repo.path, "--out", out)
    assert code == 2
    assert "did not write" in err and "--out" in err
    assert (out / "manifest.json").read_text() == foreign
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]


def test_fresh_does_not_clobber_a_foreign_dataset(
    repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --fresh replaces codedouble's own dataset; a directory another tool wrote stays an error, untouched.
    repo.write("a.py", GOOD)
    repo.commit("a")
    out = tmp_path / "other"
    (out / "records").mkdir(parents=True)
    foreign = json.dumps({"name": "some-other-tool", "version": 3})
    (out / "manifest.json").write_text(foreign)
    (out / "records" / "theirs.jsonl").write_text('{"their": "data"}\n')
    code, _, err = run_cli(capsys, repo.path, "--out", out, "--fresh", "--quiet")
    assert code == 2, err
    assert "did not write" in err
    assert (out / "manifest.json").read_text() == foreign
    assert (out / "records" / "theirs.jsonl").read_text() == '{"their": "data"}\n'


@pytest.mark.parametrize(
    "formats",
    [(DATASET_FORMAT - 1, RECORD_FORMAT), (DATASET_FORMAT, RECORD_FORMAT - 1)],
    ids=["old-dataset-format", "old-record-format"],
)
def test_fresh_replaces_a_dataset_of_an_older_format(
    repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str], formats: tuple[int, int]
) -> None:
    repo.write("a.py", GOOD)
    repo.commit("a")
    out = tmp_path / "out"
    out.mkdir()
    old = {"tool": "codedouble", "dataset_format": formats[0], "record_format": formats[1], "shards": []}
    (out / "manifest.json").write_text(json.dumps(old))
    code, _, err = run_cli(capsys, repo.path, "--out", out, "--quiet")
    assert code == 2
    assert "mine again with --fresh" in err
    # ... and doing what the message says works.
    code, _, err = run_cli(capsys, repo.path, "--out", out, "--quiet", "--fresh")
    assert code == 0, err
    manifest = manifest_of(out)
    assert (manifest["dataset_format"], manifest["record_format"]) == (DATASET_FORMAT, RECORD_FORMAT)
    assert [r.qualified_name for r in records_of(out)] == ["good"]


def test_another_repository_joins_the_dataset(make_repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Once refused as a foreign dataset; now one engineer's repositories make one dataset (tests/test_multirepo.py).
    first, second = make_repo("first"), make_repo("second")
    first.write("a.py", GOOD)
    first.commit("a")
    second.write("b.py", "def other(y):\n    return y * 2\n")
    second.commit("b")
    assert run_cli(capsys, first.path, "--out", tmp_path / "out", "--quiet")[0] == 0
    code, _, err = run_cli(capsys, second.path, "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    assert f"added {second.path.resolve()} to the dataset as 'second'" in err
    assert {(r.repository, r.qualified_name) for r in records_of(tmp_path / "out")} == {
        (str(first.path.resolve()), "good"),
        (str(second.path.resolve()), "other"),
    }
    # --fresh replaces the dataset with the repositories it names.
    assert run_cli(capsys, second.path, "--out", tmp_path / "out", "--quiet", "--fresh")[0] == 0
    assert [r.qualified_name for r in records_of(tmp_path / "out")] == ["other"]
    assert manifest_of(tmp_path / "out")["repository"] == str(second.path.resolve())


def test_error_unknown_revision(repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("a.py", GOOD)
    repo.commit("a")
    code, _, err = run_cli(capsys, repo.path, "--out", tmp_path / "out", "--rev", "no-such-branch")
    assert code == 2
    assert "'no-such-branch' does not name a commit" in err


def test_cli_success_prints_report(repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("a.py", GOOD)
    repo.commit("a")
    code, out, err = run_cli(capsys, repo.path, "--out", tmp_path / "out")
    assert code == 0, err
    assert out.strip() == (tmp_path / "out" / "report.txt").read_text().strip()
    assert "1 new records from 1 commits" in err


# --- read-only, bare, shallow ------------------------------------------------------------------------


def _small_history(repo: GitRepo, n: int = 4) -> list[str]:
    shas = []
    for i in range(n):
        repo.write(f"m{i % 2}.py", "".join(f"def f{j}():\n    return {i * 10 + j}\n\n\n" for j in range(i + 1)))
        shas.append(repo.commit(f"step {i}"))
    return shas


def test_mining_is_read_only(team_repo: GitRepo, tmp_path: Path) -> None:
    _small_history(team_repo)
    team_repo.close()
    before = snapshot(team_repo.path)
    assert any(name.startswith(".git/objects/") for name in before)
    run_mine(team_repo.path, tmp_path / "out")
    run_mine(team_repo.path, tmp_path / "out2", all_authors=True, jobs=2)
    assert snapshot(team_repo.path) == before


def test_bare_clone(team_repo: GitRepo, tmp_path: Path) -> None:
    _small_history(team_repo)
    bare = team_repo.clone(tmp_path / "bare.git", "--bare")
    with git.Repo(bare) as r, r.config_writer() as config:  # a bare repository: configure it directly
        config.set_value("user", "email", ALICE.email)
    before = snapshot(bare)
    run_mine(bare, tmp_path / "from-bare")
    assert snapshot(bare) == before
    run_mine(team_repo.path, tmp_path / "from-work")
    from_bare, from_work = records_of(tmp_path / "from-bare"), records_of(tmp_path / "from-work")
    # The same records, each naming the repository it was mined from.
    assert {r.repository for r in from_bare} == {str(bare.resolve())}
    assert [replace(r, repository="") for r in from_bare] == [replace(r, repository="") for r in from_work]
    assert {r.qualified_name for r in from_bare} >= {"by_alice", "by_alias"}
    assert "by_bob" not in {r.qualified_name for r in from_bare}


def test_shallow_clone_boundary(repo: GitRepo, tmp_path: Path) -> None:
    shas = []
    for i in range(5):
        repo.write(f"f{i}.py", f"def f{i}():\n    return {i}\n")
        if i >= 3:
            repo.write("f0.py", f"def f0():\n    return {i * 100}\n")
        shas.append(repo.commit(f"commit {i}"))
    shallow = repo.clone(tmp_path / "shallow", "--depth", "3")
    assert (shallow / ".git" / "shallow").read_text().split() == [shas[2]]
    result = run_mine(shallow, tmp_path / "out", all_authors=True)
    assert result.new_commits == 3
    records = records_of(tmp_path / "out")
    assert summary(records) == [
        ("f0.py", "f0", "modified"),
        ("f3.py", "f3", "added"),
        ("f0.py", "f0", "modified"),
        ("f4.py", "f4", "added"),
    ]
    assert {r.commit for r in records} == {shas[3], shas[4]}
    assert manifest_of(tmp_path / "out")["counts"]["commits"] == {"kept": 2, "shallow-clone boundary": 1}


# --- incremental -------------------------------------------------------------------------------------


def _grow(repo: GitRepo, start: int, n: int) -> list[str]:
    """n commits, each adding a function to its own file and editing the shared one."""
    shas = []
    for i in range(start, start + n):
        repo.write(f"part{i}.py", f"def part{i}(x):\n    return x + {i}\n")
        repo.write("shared.py", f"def shared():\n    return {i}\n\n\nclass Box:\n    size = {i}\n")
        shas.append(repo.commit(f"grow {i}"))
    return shas


def test_incremental_runs(repo: GitRepo, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _grow(repo, 0, 3)
    first = run_mine(repo.path, out)
    assert (first.new_commits, first.incremental) == (3, False)
    first_records = records_of(out)

    new_shas = _grow(repo, 3, 2)
    second = run_mine(repo.path, out)
    assert second.new_commits == 2 and second.incremental is True
    assert any("incremental" in note and "2 new commits" in note for note in second.notes)
    records = records_of(out)
    assert records[: len(first_records)] == first_records
    assert {r.commit for r in records[len(first_records) :]} == set(new_shas)
    assert second.new_records == len(records) - len(first_records) == 6
    keys = [(r.commit, r.path, r.qualified_name, r.change) for r in records]
    assert len(keys) == len(set(keys))

    # The same as mining everything at once: records, counts and time span.
    run_mine(repo.path, tmp_path / "full")
    assert records == records_of(tmp_path / "full")
    manifest, full = manifest_of(out), manifest_of(tmp_path / "full")
    assert manifest["counts"] == full["counts"]
    assert manifest["counts"]["commits"] == {"kept": 5}
    assert manifest["time_span"] == full["time_span"]
    assert [run["commits"] for run in manifest["runs"]] == [3, 2]
    assert len(manifest["shards"]) == 2
    assert sorted(p.name for p in (out / "records").iterdir()) == sorted(manifest["shards"])
    assert (out / "report.txt").read_text() == second.report

    manifest_bytes = (out / "manifest.json").read_bytes()
    third = run_mine(repo.path, out)
    assert (third.new_commits, third.new_records, third.incremental) == (0, 0, True)
    assert any("up to date" in note for note in third.notes)
    assert (out / "manifest.json").read_bytes() == manifest_bytes
    assert records_of(out) == records


def test_incremental_run_picks_up_a_merged_older_branch(repo: GitRepo, tmp_path: Path) -> None:
    repo.write("base.py", "def base():\n    return 0\n")
    repo.commit("base")
    repo.branch("topic")
    repo.checkout("topic")
    repo.write("topic.py", "def topic():\n    return 't'\n")
    topic = repo.commit("topic work, before the first run")
    repo.checkout("main")
    repo.write("base.py", "def base():\n    return 1\n")
    repo.commit("main work")
    run_mine(repo.path, tmp_path / "out")
    assert "topic" not in {r.qualified_name for r in records_of(tmp_path / "out")}
    merge = repo.merge("topic")
    result = run_mine(repo.path, tmp_path / "out")
    assert result.incremental and result.new_commits == 2  # the topic commit and the merge
    new = records_of(tmp_path / "out")[2:]
    assert [(r.qualified_name, r.change, r.commit) for r in new] == [("topic", "added", topic)]
    assert in_commit(records_of(tmp_path / "out"), merge) == []
    assert manifest_of(tmp_path / "out")["counts"]["commits"] == {"kept": 3, "merge commit": 1}


def test_cli_incremental_messages(repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _grow(repo, 0, 2)
    assert run_cli(capsys, repo.path, "--out", tmp_path / "out", "--quiet")[0] == 0
    _grow(repo, 2, 1)
    code, _, err = run_cli(capsys, repo.path, "--out", tmp_path / "out", "--quiet")
    assert code == 0 and "incremental: mined 1 new commits" in err
    code, _, err = run_cli(capsys, repo.path, "--out", tmp_path / "out", "--quiet")
    assert code == 0 and "up to date" in err
    code, _, err = run_cli(capsys, repo.path, "--out", tmp_path / "out", "--quiet", "--fresh")
    assert code == 0 and "3 commits" in err
    assert len(manifest_of(tmp_path / "out")["runs"]) == 1


def test_changed_options_mine_everything_again(repo: GitRepo, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _grow(repo, 0, 3)
    run_mine(repo.path, out)
    result = run_mine(repo.path, out, exclude=("shared.py",))
    assert result.incremental is False and result.new_commits == 3
    assert any("options changed" in note for note in result.notes)
    records = records_of(out)
    assert sorted(r.path for r in records) == ["part0.py", "part1.py", "part2.py"]
    manifest = manifest_of(out)
    assert len(manifest["runs"]) == 1 and manifest["counts"]["files"] == {"kept": 3, filters.EXCLUDED: 3}
    assert sorted(p.name for p in (out / "records").iterdir()) == manifest["shards"]


def test_rewritten_history_mines_everything_again(repo: GitRepo, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _grow(repo, 0, 3)
    run_mine(repo.path, out)
    repo.repo.git.reset("-q", "--hard", "HEAD~1")
    _grow(repo, 10, 1)
    result = run_mine(repo.path, out)
    assert result.incremental is False and result.new_commits == 3
    assert any("rewritten" in note for note in result.notes)
    assert {r.path for r in records_of(out)} == {"part0.py", "part1.py", "part10.py", "shared.py"}


def test_interrupted_run_leaves_previous_dataset(
    repo: GitRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "out"
    _grow(repo, 0, 2)
    run_mine(repo.path, out, jobs=1)
    before_records = records_of(out)
    before_files = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    new_shas = _grow(repo, 2, 4)

    real_process = extract.Extractor.process
    calls = []

    def failing(self: extract.Extractor, work: extract.CommitWork) -> extract.CommitResult:
        calls.append(work.commit.sha)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return real_process(self, work)

    with monkeypatch.context() as patch:
        patch.setattr(extract.Extractor, "process", failing)
        with pytest.raises(RuntimeError, match="simulated crash"):
            run_mine(repo.path, out, jobs=1)
    assert len(calls) == 3
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before_files
    assert records_of(out) == before_records

    # What a killed run (no chance to clean up) leaves behind.
    (out / "records" / f".part-0002-{new_shas[-1][:12]}.jsonl.tmp").write_text('{"half": ')
    (out / "records" / "part-0002-deadbeefcafe.jsonl").write_text("{}\n")

    result = run_mine(repo.path, out, jobs=1)
    assert result.incremental and result.new_commits == 4
    manifest = manifest_of(out)
    assert sorted(p.name for p in (out / "records").iterdir()) == sorted(manifest["shards"])
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    records = records_of(out)
    assert records[: len(before_records)] == before_records
    run_mine(repo.path, tmp_path / "full")
    assert records == records_of(tmp_path / "full")
    assert manifest["counts"] == manifest_of(tmp_path / "full")["counts"]


# --- parallel ----------------------------------------------------------------------------------------


def test_parallel_mining_matches_serial(repo: GitRepo, tmp_path: Path) -> None:
    # Enough commits for three chunks of work (the parallel path cuts chunks of at least 32 commits).
    for i in range(70):
        name = f"mod{i % 6}.py"
        body = "".join(f"def g{j}(x):\n    return x * {j} + {i if j == i % 4 else 0}\n\n\n" for j in range(4))
        repo.write(
            name,
            f"import os\n\n\nclass K{i % 6}:\n    n = {i // 6}\n\n    def m(self):\n        return self.n\n\n\n" + body,
        )
        if i % 10 == 9:
            repo.mv(name, f"moved{i}/{name}")
            repo.write(f"moved{i}/{name}", repo.read(f"moved{i}/{name}") + f"\ndef extra{i}():\n    return {i}\n")
        author = BOB if i % 7 == 0 else ALICE
        repo.commit(f"change {i}", author=author)
    serial = run_mine(repo.path, tmp_path / "serial", jobs=1)
    parallel = run_mine(repo.path, tmp_path / "parallel", jobs=2)
    assert serial.new_commits == parallel.new_commits == 70
    serial_records, parallel_records = records_of(tmp_path / "serial"), records_of(tmp_path / "parallel")
    assert len(serial_records) > 70
    assert parallel_records == serial_records
    assert manifest_of(tmp_path / "parallel")["counts"] == manifest_of(tmp_path / "serial")["counts"]
    assert manifest_of(tmp_path / "serial")["counts"]["commits"]["another author"] == 10


# --- report and languages ----------------------------------------------------------------------------


def test_report_sections(repo: GitRepo, tmp_path: Path) -> None:
    repo.write("a.py", GOOD)
    repo.commit("2020 work", date=datetime(2020, 6, 1, 12, 0, tzinfo=UTC))
    repo.write("b.js", "function b() {\n  return 2;\n}\n")
    repo.write("notes.txt", "hello\n")
    repo.commit("2022 work", date=datetime(2022, 6, 1, 12, 0, tzinfo=UTC))
    repo.write("c.py", "def c():\n    return 3\n")
    repo.commit("bob", author=BOB, date=datetime(2022, 7, 1, 12, 0, tzinfo=UTC))
    result = run_mine(repo.path, tmp_path / "out")
    report = (tmp_path / "out" / "report.txt").read_text(encoding="utf-8")
    assert report == result.report
    for section in (
        "Commits (3)",
        "File changes (3)",
        "Changed definitions (2)",
        "Kept definitions per language (2)",
        "Kept definitions per year (2)",
        "Kept definitions per identity (2)",
    ):
        assert section in report
    lines = [line.split() for line in report.splitlines()]
    assert ["another", "author", "1", "33.3%"] in lines
    assert ["unsupported", "language", "1", "33.3%"] in lines
    assert ["python", "1", "50.0%"] in lines and ["javascript", "1", "50.0%"] in lines
    assert ["2020", "1", "50.0%"] in lines and ["2022", "1", "50.0%"] in lines
    assert [*ALICE.ident.split(), "2", "100.0%"] in lines


MULTI = {
    "py/app.py": ("import os\n\n\ndef py_func():\n    return os.sep\n", "python", {"py_func"}),
    "js/app.js": ('import fs from "fs";\n\nfunction jsFunc() {\n  return fs;\n}\n', "javascript", {"jsFunc"}),
    "ts/app.ts": ("export function tsFunc(n: number): number {\n  return n + 1;\n}\n", "typescript", {"tsFunc"}),
    "ts/view.tsx": ("export function View(): JSX.Element {\n  return <div>hi</div>;\n}\n", "tsx", {"View"}),
    "go/main.go": (
        'package main\n\nimport "fmt"\n\ntype Server struct {\n\tname string\n}\n\nfunc (s *Server) Run() {\n\tfmt.Println(s.name)\n}\n',
        "go",
        {"Server", "Server.Run"},
    ),
    "rs/lib.rs": (
        "pub struct Stack {\n    items: Vec<i32>,\n}\n\nimpl Stack {\n    pub fn push(&mut self, x: i32) {\n        self.items.push(x);\n    }\n}\n",
        "rust",
        {"Stack", "Stack.push"},
    ),
    "java/Greeter.java": (
        'package demo;\n\nimport java.util.List;\n\npublic class Greeter {\n    public String greet(List<String> names) {\n        return "hi";\n    }\n}\n',
        "java",
        {"Greeter", "Greeter.greet"},
    ),
}


def test_multi_language_commit(repo: GitRepo, tmp_path: Path) -> None:
    for path, (source, _, _) in MULTI.items():
        repo.write(path, source)
    repo.commit("seven languages")
    run_mine(repo.path, tmp_path / "out")
    records = records_of(tmp_path / "out")
    got: dict[str, set[str]] = {}
    for r in records:
        assert r.language == MULTI[r.path][1], r
        got.setdefault(r.path, set()).add(r.qualified_name)
    assert got == {path: names for path, (_, _, names) in MULTI.items()}
    assert Counter(r.language for r in records) == Counter(
        {"python": 1, "javascript": 1, "typescript": 1, "tsx": 1, "go": 2, "rust": 2, "java": 2}
    )
    assert manifest_of(tmp_path / "out")["counts"]["languages"] == dict(
        sorted(Counter(r.language for r in records).items())
    )
    go = {r.qualified_name: r for r in records if r.language == "go"}
    assert go["Server.Run"].kind == "method"
    assert go["Server.Run"].context.header == 'package main\nimport "fmt"'
    java = {r.qualified_name: r for r in records if r.language == "java"}
    assert java["Greeter.greet"].context.enclosing == ("public class Greeter",)
    assert java["Greeter.greet"].context.header == "package demo;\nimport java.util.List;"


def test_since_until_and_rev(repo: GitRepo, tmp_path: Path) -> None:
    dates = [datetime(2020 + i, 1, 15, tzinfo=UTC) for i in range(4)]
    for i, date in enumerate(dates):
        repo.write(f"y{i}.py", f"def y{i}():\n    return {i}\n")
        repo.commit(f"year {2020 + i}", date=date)
    run_mine(repo.path, tmp_path / "window", since="2021-01-01", until="2022-12-31")
    assert [r.qualified_name for r in records_of(tmp_path / "window")] == ["y1", "y2"]
    run_mine(repo.path, tmp_path / "rev", revision="HEAD~2")
    assert [r.qualified_name for r in records_of(tmp_path / "rev")] == ["y0", "y1"]
