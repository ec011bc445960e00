"""Commit messages in the engineer's voice: the pure parts (style, retrieval, metrics, the editor's rest of the
draft), `codedouble commit-message` on a real history and double, and the `prepare-commit-msg` hook driven by
real `git commit` subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from test_server import TINY

from codedouble.server.commits import editor, gitdiff
from codedouble.server.commits import retrieval as retrieval_module
from codedouble.server.commits.change import Edit, edits_of_file, from_edits, generic_message, terms
from codedouble.server.commits.draft import Drafter
from codedouble.server.commits.retrieval import CommitRetrieval
from codedouble.server.commits.style import Style
from codedouble.server.contract import artifact, commits
from codedouble.server.engine.neural import Neural
from codedouble.trainer import cli, hooks
from codedouble.trainer.evaluation import commit_metrics, commit_task
from codedouble.trainer.mining import dataset
from codedouble.trainer.mining.miner import MineOptions, mine
from codedouble.trainer.training.train import train
from conftest import GitRepo

# --- pure parts ---------------------------------------------------------------------------------------------


def test_style_is_measured_from_the_engineers_messages_and_applied_to_a_draft() -> None:
    messages = [f"fix: handle {w} edge case\n\nSigned-off-by: A <a@x>\n" for w in ("empty", "long", "nested")]
    messages += ["fix: add retries", "feat: add the table renderer with borders"]
    style = Style.measure(messages)
    assert style.prefixes[0] == "fix:" and style.prefixed == 1.0 and style.capitalised == 0.0
    assert style.trailers == ("Signed-off-by",)
    # A draft from elsewhere: their prefix, their mood (`add`, not `Added`), their case, no final period, their
    # sign-off instead of someone else's trailer, and no longer than their summaries.
    draft = "Added caching of rendered cells for every table in the console output.\n\nCo-authored-by: B <b@x>\n"
    styled = style.apply(draft, identity="Ann <ann@x>")
    summary, rest = styled.split("\n", 1)
    assert summary.startswith("fix: add caching") and not summary.endswith(".")
    assert len(summary) <= style.max_summary
    assert "Co-authored-by" not in styled and rest.strip() == "Signed-off-by: Ann <ann@x>"


def test_a_body_is_wrapped_at_the_engineers_width() -> None:
    style = Style.measure(["Short\n\n" + "word " * 9 + "end"] * 3)  # their body lines are ~50 characters
    styled = style.apply("Summary\n\n" + "lorem ipsum " * 30)
    assert max(len(line) for line in styled.split("\n")[2:]) <= style.width == 50


def test_changed_definitions_are_the_innermost_ones() -> None:
    before = "class A:\n    def f(self):\n        return 1\n\n    def g(self):\n        return 2\n"
    after = before.replace("return 2", "return 3")
    [edit] = edits_of_file("m.py", before, after)
    assert edit.before.startswith("def g") and "return 3" in edit.after
    assert edits_of_file("README.md", "a", "b") == []


def test_retrieval_finds_the_commit_with_the_most_similar_change_but_never_itself() -> None:
    def indexed(sha: str, message: str, code: str) -> commits.IndexedCommit:
        change = from_edits([f"lib/{sha}.py"], [Edit(f"lib/{sha}.py", "", code)])
        return commits.IndexedCommit(sha, message, tuple(terms(change)))

    index = [
        indexed("a", "parse the config file", "def load_config(path):\n    return toml.parse(path)"),
        indexed("b", "draw table borders", "def draw_border(table):\n    table.box = HEAVY"),
    ]
    query = from_edits(["lib/table.py"], [Edit("lib/table.py", "", "def draw_border(t):\n    t.box = ROUNDED")])
    retrieval = CommitRetrieval(index)
    assert retrieval.nearest(terms(query)).message == "draw table borders"
    assert retrieval.nearest(terms(query), exclude={"b"}).message == "parse the config file"


def test_retrieval_reads_only_the_newest_commits_made_before_the_draft(monkeypatch: pytest.MonkeyPatch) -> None:
    def indexed(sha: str, message: str, day: int | None) -> commits.IndexedCommit:
        change = from_edits(
            ["lib/table.py"], [Edit("lib/table.py", "", "def draw_border(table):\n    table.box = HEAVY")]
        )
        return commits.IndexedCommit(
            sha, message, tuple(terms(change)), None if day is None else f"2024-01-{day:02d}T00:00:00+00:00"
        )

    query = terms(from_edits(["lib/table.py"], [Edit("lib/table.py", "", "def draw_border(t):\n    t.box = ROUNDED")]))
    index = [indexed("new", "newest voice", 9), indexed("old", "oldest voice", None), indexed("mid", "middle voice", 5)]
    retrieval = CommitRetrieval(index)
    assert [e.commit for e in retrieval.pool()[0]] == ["old", "mid", "new"]  # no time: from an older index, oldest
    # As of a past moment: nothing made then or later, whatever it matches.
    assert {n.commit for n in retrieval.neighbours(query, before="2024-01-09T00:00:00+00:00")} == {"old", "mid"}
    assert {n.commit for n in retrieval.neighbours(query, before="2024-01-05T00:00:00+00:00")} == {"old"}
    # Only the RECENT newest: an equally good match from before them is not read.
    monkeypatch.setattr(retrieval_module, "RECENT", 2)
    recent = CommitRetrieval(index)
    assert {n.commit for n in recent.neighbours(query)} == {"mid", "new"}
    assert {n.commit for n in recent.neighbours(query, before="2024-01-09T00:00:00+00:00")} == {"old", "mid"}


def test_the_commit_index_keeps_commit_times_in_utc_and_reads_older_entries(tmp_path: Path) -> None:
    assert commits.utc("2024-03-01T09:30:00+02:00") == "2024-03-01T07:30:00+00:00"
    entries = [commits.IndexedCommit("a", "fix it", ("fix",), "2024-03-01T07:30:00+00:00")]
    commits.write(tmp_path, entries)
    assert commits.load(tmp_path) == entries
    with (tmp_path / commits.COMMITS).open("a", encoding="utf-8") as f:
        f.write(json.dumps({"commit": "b", "message": "older", "terms": "x"}) + "\n")
    assert commits.load(tmp_path)[1] == commits.IndexedCommit("b", "older", ("x",), None)
    with (tmp_path / commits.COMMITS).open("a", encoding="utf-8") as f:
        f.write(json.dumps({"commit": "c", "message": "bad", "terms": "x", "time": 5}) + "\n")
    with pytest.raises(commits.CommitIndexError, match=":4: not a commit index entry"):
        commits.load(tmp_path)


def test_commit_message_metrics() -> None:
    assert commit_metrics.b_norm("Fix the table", "fix the table") == pytest.approx(1.0)
    assert commit_metrics.b_norm("add docs", "fix the table") < 0.05
    assert 0 < commit_metrics.b_norm("fix the box", "fix the table") < 1
    assert commit_metrics.rouge_l("fix the table", "fix table borders") == pytest.approx(
        2 * (2 / 3) * (2 / 3) / (4 / 3)
    )
    score = commit_metrics.score("Fix table\n\nbody", "fix the table")
    assert score.first_word and not score.first_two_words
    assert generic_message(from_edits(["a/b.py"], [])) == "Update b.py"
    assert generic_message(from_edits(["a.py", "b.py"], [])) == "Update 2 files"


def test_the_editor_proposes_the_rest_of_the_draft_on_the_summary_line() -> None:
    draft = "fix: handle empty tables\n\nSigned-off-by: A <a@x>\n"
    buffer = "\n# Please enter the commit message for your changes.\n"
    assert editor.rest_of_draft(buffer, 0, 0, draft) == draft.rstrip("\n")
    assert editor.rest_of_draft("fix: han" + buffer, 0, 8, draft) == "dle empty tables"
    assert editor.rest_of_draft("FIX: han" + buffer, 0, 8, draft) == "dle empty tables"  # case aside
    assert editor.rest_of_draft("docs: x" + buffer, 0, 7, draft) == ""  # typed something else
    assert editor.rest_of_draft(buffer, 1, 0, draft) == ""  # not the summary line
    verbose = buffer + f"# {editor.SCISSORS}\ndiff --git a/x b/x\n+y\n"  # `commit.verbose`: the diff below
    assert editor.rest_of_draft(verbose, 0, 0, draft) == draft.rstrip("\n")
    assert editor.is_commit_message("/r/.git/COMMIT_EDITMSG", None)
    assert editor.is_commit_message("/tmp/x", "gitcommit") and not editor.is_commit_message("/r/a.py", "python")


def test_a_message_file_with_only_comments_or_a_verbose_diff_has_no_message(tmp_path: Path) -> None:
    from codedouble.trainer import commit_message

    comments = "\n# Please enter the commit message for your changes.\n"
    verbose = comments + f"# {commit_message.SCISSORS}\n# Do not modify the line above.\ndiff --git a/x b/x\n+y\n"
    assert not commit_message.has_message(comments) and not commit_message.has_message(verbose)
    assert commit_message.has_message("my words\n" + comments)
    path = tmp_path / "COMMIT_EDITMSG"
    path.write_text(verbose)
    assert commit_message.fill(path, "fix: the draft\n")
    assert path.read_text().startswith("fix: the draft\n\n# Please enter") and path.read_text().endswith("+y\n")
    assert not commit_message.fill(path, "another draft\n")  # a message is there now: never replaced


@pytest.mark.parametrize("comment", ["#", ";"])
def test_the_editor_and_the_hook_read_comments_as_git_writes_them(tmp_path: Path, comment: str) -> None:
    from codedouble.trainer import commit_message

    comments = f"\n{comment} Please enter the commit message for your changes.\n{comment}\n{comment} On branch main\n"
    draft = "Fix the table\n\nIts width.\n"
    assert editor.rest_of_draft(comments, 0, 0, draft, comment) == draft.rstrip("\n")
    assert editor.rest_of_draft("\nmy words" + comments, 0, 0, draft, comment) == "Fix the table"  # a body below
    assert not commit_message.has_message(comments, comment)
    assert commit_message.has_message("my words\n" + comments, comment)


def test_the_comment_prefix_is_gits_core_comment_char(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    assert gitdiff.comment_prefix(repo.path) == "#"  # git's default
    subprocess.run(["git", "config", "core.commentChar", ";"], cwd=repo.path, check=True)
    assert gitdiff.comment_prefix(repo.path) == ";"
    # "auto": git picks the first of its candidates that starts no line of the message, per commit; read back.
    subprocess.run(["git", "config", "core.commentChar", "auto"], cwd=repo.path, check=True)
    assert gitdiff.comment_prefix(repo.path, "#1 is mine\n\n; Please enter the commit message\n;\n") == ";"
    verbose = f"\n# Please enter\n# {editor.SCISSORS}\n# Do not modify\ndiff --git a/x b/x\n@@ -1 +1 @@\n+y\n"
    assert gitdiff.comment_prefix(repo.path, verbose) == "#"  # the scissors line's, not a hunk header's @
    assert gitdiff.comment_prefix(repo.path, "") == "#"


# --- a real history, a double, the command and the hook -----------------------------------------------------

FEATURES = ["table", "panel", "tree", "columns", "progress", "syntax", "markdown", "layout"]


def _module(name: str, version: int) -> str:
    return (
        f"def render_{name}(console, {name}_options, width=80):\n"
        f"    {name}_lines = [line.rstrip() for line in {name}_options.lines]\n"
        f"    return console.measure_{name}({name}_lines, width - {version})\n"
    )


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("commitmsg")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_DATA_HOME", str(root / "xdg"))
        repo = GitRepo(root / "repo")
        for version in (1, 2):
            for name in FEATURES:
                repo.write(f"lib/{name}.py", _module(name, version))
                repo.commit(f"{name}: {'render' if version == 1 else 'measure'} the {name} width")
        mine(repo.path, root / "dataset", MineOptions(), progress=False)
        double = train(root / "dataset", replace(TINY, heldout_fraction=0.2), progress=False).artifact
    return {"root": root, "repo": repo, "double": double}


@pytest.fixture
def data(history, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.setenv("XDG_DATA_HOME", str(history["root"] / "xdg"))
    return history


def _stage_table_change(repo: GitRepo) -> None:
    repo.write("lib/table.py", _module("table", 3).replace("rstrip()", "strip()"))
    subprocess.run(["git", "add", "-A"], cwd=repo.path, check=True)


def _reset(repo: GitRepo) -> None:
    subprocess.run(["git", "reset", "-q", "--hard"], cwd=repo.path, check=True)


def test_train_ships_a_commit_index_of_every_commit_with_its_time_and_measures_the_sources(data) -> None:
    double = data["double"]
    index = commits.load(double)
    manifest = artifact.read_manifest(double)
    heldout = set(manifest["split"]["heldout_commits"])
    # The held-out commits too: the engineer's newest messages, never training text (eval reads each one's past).
    assert index and heldout <= {e.commit for e in index} and len(index) == 2 * len(FEATURES)
    assert all(e.message and e.terms and e.time and e.time.endswith("+00:00") for e in index)
    assert manifest["commit_messages"]["source"] in ("retrieval", "model")
    assert "commits.jsonl" in manifest["files"]


def test_a_past_commit_is_drafted_from_the_commits_before_it_only(data, capsys) -> None:
    repo, index = data["repo"], commits.load(data["double"])
    times = {e.commit: e.time for e in index}
    newest = max(index, key=lambda e: e.time or "")
    drafter = Drafter.load(data["double"], source="retrieval")
    sha, when = gitdiff.committed(repo.path, "HEAD")
    assert (sha, when) == (newest.commit, newest.time)
    done = drafter.draft(gitdiff.of_revision(repo.path, "HEAD"), exclude={sha}, before=when)
    assert done.source == "retrieval" and done.neighbour is not None and times[done.neighbour] < when
    # Each message of the fixture names its own commit: the CLI never drafts HEAD's message from itself.
    assert cli.main(["commit-message", "HEAD", "--repo", str(repo.path), "--source", "retrieval"]) == 0
    assert capsys.readouterr().out.split("\n")[0] != newest.message


def test_eval_drafts_each_heldout_commit_from_the_commits_made_before_it(data, monkeypatch: pytest.MonkeyPatch) -> None:
    double = data["double"]
    heldout = set(artifact.read_manifest(double)["split"]["heldout_commits"])
    records = [r for r in dataset.load_records(data["root"] / "dataset") if r.commit in heldout]
    samples = commit_task.sample(records, 10, seed=0)
    asked: list[tuple[str | None, list]] = []
    neighbours = CommitRetrieval.neighbours

    def spy(self, terms, exclude=(), top=retrieval_module.NEIGHBOURS, before=None):  # type: ignore[no-untyped-def]
        found = neighbours(self, terms, exclude, top, before)
        asked.append((before, found))
        return found

    monkeypatch.setattr(CommitRetrieval, "neighbours", spy)
    commit_task.evaluate(double, Neural(double), samples, progress=False)
    # The index holds every held-out commit, itself and later ones included: none of them may be read.
    times = {e.commit: e.time for e in commits.load(double)}
    assert len(samples) == len(heldout) and len(asked) == len(samples)
    for at, (before, found) in zip(samples, asked, strict=True):
        assert before == at.time and found and all(times[n.commit] < at.time for n in found)


def test_commit_message_drafts_the_staged_change_in_the_engineers_style(data, capsys) -> None:
    repo = data["repo"]
    _stage_table_change(repo)
    try:
        assert cli.main(["commit-message", "--repo", str(repo.path), "--source", "retrieval", "--explain"]) == 0
        out, err = capsys.readouterr()
        summary = out.split("\n")[0]
        # The nearest past changes are the table's own and the other renderers': a message of theirs, in their style.
        messages = {e.message for e in commits.load(data["double"])}
        assert summary in messages and summary.split(":")[0] in FEATURES, out
        assert "drafted by retrieval" in err
        assert cli.main(["commit-message", "--repo", str(repo.path), "--source", "model"]) == 0
        assert capsys.readouterr().out.strip()  # the model, or the generic draft when it writes nothing usable
    finally:
        _reset(repo)


def test_commit_message_of_a_revision_and_its_errors(data, capsys) -> None:
    repo = data["repo"]
    assert cli.main(["commit-message", "HEAD~1", "--repo", str(repo.path)]) == 0
    assert capsys.readouterr().out.strip()
    assert cli.main(["commit-message", "--repo", str(repo.path)]) == 2
    assert "nothing is staged" in capsys.readouterr().err
    assert cli.main(["commit-message", "nope", "--repo", str(repo.path)]) == 2
    assert "names no commit" in capsys.readouterr().err


def test_an_old_double_without_a_commit_index_drafts_with_its_model_alone(data, tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    for f in data["double"].iterdir():
        if f.is_file() and f.name != commits.COMMITS:
            (old / f.name).write_bytes(f.read_bytes())
    drafter = Drafter.load(old)
    repo = data["repo"]
    _stage_table_change(repo)
    try:
        done = drafter.draft(gitdiff.staged(repo.path))
    finally:
        _reset(repo)
    assert done.source in ("model", "generic") and "no commit index" in done.notes[0]


def _git_commit(repo: GitRepo, *args: str, editor: str = "true") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GIT_EDITOR": editor}
    return subprocess.run(["git", "commit", *args], cwd=repo.path, env=env, capture_output=True, text=True)


def _last_message(repo: GitRepo) -> str:
    return subprocess.run(
        ["git", "log", "-1", "--format=%B"], cwd=repo.path, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_the_prepare_commit_msg_hook_drafts_only_when_git_has_no_message(data, capsys) -> None:
    repo = data["repo"]
    path = hooks.install(repo.path, hooks.PREPARE)
    head = repo.head()
    try:
        _stage_table_change(repo)
        assert cli.main(["commit-message", "--repo", str(repo.path)]) == 0
        expected = capsys.readouterr().out.strip()
        done = _git_commit(repo)  # a plain `git commit`, the editor accepting what it is given
        assert done.returncode == 0, done.stderr
        assert _last_message(repo) == expected

        repo.write("lib/panel.py", _module("panel", 9))
        subprocess.run(["git", "add", "-A"], cwd=repo.path, check=True)
        done = _git_commit(repo, "-m", "my own words")
        assert done.returncode == 0 and _last_message(repo) == "my own words"

        done = _git_commit(repo, "--amend", editor="cat")  # an amend keeps its message
        assert done.returncode == 0 and _last_message(repo) == "my own words"
        assert hooks.uninstall(repo.path, hooks.PREPARE) == path and not path.exists()
    finally:
        hooks.uninstall(repo.path, hooks.PREPARE)
        subprocess.run(["git", "reset", "-q", "--hard", head], cwd=repo.path, check=True)


def test_the_hook_drafts_where_git_comments_with_another_character(data) -> None:
    """`core.commentChar=;`: git's comments start with ";", and the file is still a message file with no
    message in it (a `#` reading would take git's comments for the engineer's words and never draft)."""
    repo = data["repo"]
    hooks.install(repo.path, hooks.PREPARE)
    head = repo.head()
    subprocess.run(["git", "config", "core.commentChar", ";"], cwd=repo.path, check=True)
    try:
        _stage_table_change(repo)
        assert cli.main(["commit-message", "--repo", str(repo.path)]) == 0
        done = _git_commit(repo)
        assert done.returncode == 0, done.stderr
        message = _last_message(repo)
        assert message and not message.startswith(";")
    finally:
        subprocess.run(["git", "config", "--unset", "core.commentChar"], cwd=repo.path, check=True)
        hooks.uninstall(repo.path, hooks.PREPARE)
        subprocess.run(["git", "reset", "-q", "--hard", head], cwd=repo.path, check=True)


def test_the_hook_never_fails_a_commit(data, tmp_path: Path) -> None:
    """No double anywhere (the data directory moved away): the commit goes through, with git's empty message
    refused as git refuses it, and with -m as usual."""
    repo = data["repo"]
    hooks.install(repo.path, hooks.PREPARE)
    head = repo.head()
    try:
        repo.write("lib/tree.py", _module("tree", 7))
        subprocess.run(["git", "add", "-A"], cwd=repo.path, check=True)
        env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "empty"), "GIT_EDITOR": "true"}
        done = subprocess.run(["git", "commit", "-m", "x"], cwd=repo.path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    finally:
        hooks.uninstall(repo.path, hooks.PREPARE)
        subprocess.run(["git", "reset", "-q", "--hard", head], cwd=repo.path, check=True)


def test_an_engineers_own_prepare_commit_msg_hook_is_refused_and_keeps_working(data, tmp_path: Path) -> None:
    repo = data["repo"]
    own = hooks.hook_path(repo.path, hooks.PREPARE)
    own.parent.mkdir(parents=True, exist_ok=True)
    mark = tmp_path / "ran"
    text = f'#!/bin/sh\necho "$2" >> {mark}\n'
    own.write_text(text)
    own.chmod(0o755)
    head = repo.head()
    try:
        with pytest.raises(hooks.HookError, match="a hook of your own") as refused:
            hooks.install(repo.path, hooks.PREPARE)
        assert "commit-message" in str(refused.value) and sys.executable in str(refused.value)  # the line to add
        with pytest.raises(hooks.HookError, match="not installed by codedouble"):
            hooks.uninstall(repo.path, hooks.PREPARE)
        assert own.read_text() == text
        repo.write("lib/columns.py", _module("columns", 5))
        subprocess.run(["git", "add", "-A"], cwd=repo.path, check=True)
        done = _git_commit(repo, "-m", "mine")
        assert done.returncode == 0 and mark.read_text() == "message\n"
    finally:
        own.unlink()
        subprocess.run(["git", "reset", "-q", "--hard", head], cwd=repo.path, check=True)


def test_hook_cli_installs_both_hooks(data, capsys) -> None:
    repo = data["repo"]
    assert cli.main(["hook", "install", "--prepare-commit-msg", "--post-commit", "--repo", str(repo.path)]) == 0
    for name in hooks.HOOKS:
        assert hooks.MARKER + name in hooks.hook_path(repo.path, name).read_text()
    assert cli.main(["hook", "uninstall", "--prepare-commit-msg", "--repo", str(repo.path)]) == 0
    assert not hooks.hook_path(repo.path, hooks.PREPARE).exists()
    assert hooks.hook_path(repo.path, "post-commit").exists()
    assert cli.main(["hook", "uninstall", "--repo", str(repo.path)]) == 0
    assert "removed" in json.dumps(capsys.readouterr().out)
