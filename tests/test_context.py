"""Context beyond the engineer's definitions (issue 14, item 3): module-level code in the corpus, each
language kept to itself, and the workspace's other files as context in the engine, the server's indexer and
`codedouble eval`."""

from __future__ import annotations

import time
from pathlib import Path

from codedouble.server import workspace_files
from codedouble.server.engine.document import Request
from codedouble.server.engine.ngram import CacheNgram
from codedouble.server.engine.retrieval import Bm25Lines
from codedouble.server.engine.workspace import WorkspaceContext
from codedouble.server.indexer import WorkspaceIndexer
from codedouble.server.options import DEFAULT_EXCLUDE
from codedouble.trainer.evaluation.context import ParentWorkspaces
from codedouble.trainer.training import module_level
from conftest import ALICE, GitRepo


def line(path: str, prefix: str, suffix: str = "", workspace: WorkspaceContext | None = None) -> Request:
    return Request(path, prefix, suffix, "line", workspace)


# --- each language keeps to itself ---------------------------------------------------------------------------

PYTHON = "def handle(request):\n    body = request.prefix + request.suffix\n    return body\n"
JAVASCRIPT = "const path = require('path');\nconst fs = require('fs');\n"


def test_the_ngram_completes_javascript_from_javascript_only() -> None:
    # The case: in a JavaScript file `const fs = requ` got Python from the engineer's corpus.
    ngram = CacheNgram([PYTHON] * 5 + [JAVASCRIPT], ["python"] * 5 + ["javascript"])
    assert ngram.complete(line("scratch.js", "const fs = requ")) == "ire('fs');"
    # No JavaScript at all: the corpus is silent, never Python.
    python_only = CacheNgram([PYTHON] * 5, ["python"] * 5)
    assert "request" not in python_only.complete(line("scratch.js", "const fs = requ"))
    assert python_only.complete(line("a.py", "def f(request):\n    body = requ")).startswith("est.prefix")


def test_tsx_and_typescript_are_kept_apart() -> None:
    tsx = "const view = <Panel title={title} />;\n"
    ngram = CacheNgram([tsx] * 3, ["tsx"] * 3)
    assert ngram.complete(line("a.tsx", "const view = <Pan")) == "el title={title} />;"
    assert ngram.complete(line("a.ts", "const view = <Pan")) == ""


def test_bm25_keeps_to_the_documents_language() -> None:
    bm25 = Bm25Lines([PYTHON, JAVASCRIPT], ["python", "javascript"])
    assert bm25.complete(line("a.js", "const fs = requ")) == "ire('fs');"
    assert bm25.complete(line("a.go", "body = request.pre")) == ""
    assert bm25.complete(line("a.py", "body = request.pre")) == "fix + request.suffix"


def test_bm25_takes_bodies_from_definitions_only() -> None:
    module = "import os\nDEBUG = os.environ.get('DEBUG')\n"
    bm25 = Bm25Lines([module], ["python"], ["module"])
    assert bm25.complete(Request("a.py", "def debug():\n", "", "block")) == ""
    assert bm25.complete(line("a.py", "DEBUG = os.env")) == "iron.get('DEBUG')"


# --- module-level code ---------------------------------------------------------------------------------------


def test_module_level_lines_are_those_outside_every_definition() -> None:
    text = 'import os\n\nLIMIT = 3\n\n@cache\ndef f():\n    return LIMIT\n\n\nif __name__ == "__main__":\n    f()\n'
    outside = module_level.outside_definitions("python", text)
    lines = text.split("\n")
    assert [x for x, out in zip(lines, outside, strict=True) if out and x.strip()] == [
        "import os",
        "LIMIT = 3",
        'if __name__ == "__main__":',
        "    f()",
    ]


def test_module_level_runs_break_at_gaps_and_data_lines() -> None:
    text = "a = 1\nb = 2\nc = 3\n" + "x = '" + "0" * 500 + "'\nd = 4\n\n"
    assert module_level.runs(text, [0, 1, 3, 4]) == ["a = 1\nb = 2", "d = 4"]
    assert module_level.runs(text, [5]) == []  # blank only


def test_module_level_snippets_are_what_the_given_commits_added(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.write("app/main.py", "import os\n\n\ndef run():\n    return os.getcwd()\n")
    first = repo.commit("start", author=ALICE)
    repo.write("app/main.py", "import os\nimport sys\n\n\ndef run():\n    return os.getcwd()\n\n\nMAIN = run()\n")
    second = repo.commit("more", author=ALICE)
    repo.write("vendor/lib.py", "import vendored\n")
    third = repo.commit("vendor", author=ALICE)
    found = module_level.snippets(repo.path, [first, second, third])
    texts = {(commit, s.text) for commit, s in found}
    assert texts == {(first, "import os"), (second, "import sys"), (second, "MAIN = run()")}
    assert all(s.kind == "module" and s.language == "python" for _, s in found)
    # Only the commits asked for: held-out ones are never passed in.
    assert {s.text for _, s in module_level.snippets(repo.path, [first])} == {"import os"}


# --- workspace context in the engine -------------------------------------------------------------------------

HELPER = 'def checksum(payload):\n    digest = compute_checksum(payload, algorithm="blake2b")\n    return digest\n'


def test_the_ngram_and_bm25_complete_from_the_workspaces_other_files() -> None:
    prefix = "def verify(payload):\n    digest = compute_checksum(payload, algo"
    workspace = WorkspaceContext({"lib/helpers.py": HELPER})
    ngram = CacheNgram(["def other():\n    return 1\n"], ["python"])
    bm25 = Bm25Lines(["def other():\n    return 1\n"], ["python"])
    assert ngram.complete(line("app/main.py", prefix)) != 'rithm="blake2b")'
    assert ngram.complete(line("app/main.py", prefix, workspace=workspace)) == 'rithm="blake2b")'
    assert bm25.complete(line("app/main.py", prefix, workspace=workspace)) == 'rithm="blake2b")'
    # The document's own saved copy is not context: its live text already is.
    own = WorkspaceContext({"app/main.py": HELPER})
    assert ngram.complete(line("app/main.py", prefix, workspace=own)) != 'rithm="blake2b")'
    assert bm25.complete(line("app/main.py", prefix, workspace=own)) != 'rithm="blake2b")'
    # Other languages' files are not context either.
    assert ngram.complete(line("app/main.go", prefix, workspace=workspace)) != 'rithm="blake2b")'


# --- which files the server reads ----------------------------------------------------------------------------


def test_path_distance_counts_folders_between() -> None:
    assert workspace_files.distance("a/b/c.py", "a/b/d.py") == 0
    assert workspace_files.distance("a/b/c.py", "a/e.py") == 1
    assert workspace_files.distance("a/b/c.py", "x/y.py") == 3
    assert workspace_files.distance("c.py", "x/y/z.py") == 2


def test_nearest_keeps_to_the_budget_closest_first() -> None:
    found = [
        workspace_files.Candidate("far/away/x.py", 10),
        workspace_files.Candidate("app/big.py", 1000),
        workspace_files.Candidate("app/sibling.py", 10),
        workspace_files.Candidate("app/sub/child.py", 10),
        workspace_files.Candidate("top.py", 10),
    ]
    chosen = [c.path for c in workspace_files.nearest(found, "app/main.py", max_files=3, max_bytes=500)]
    assert chosen == ["app/sibling.py", "app/sub/child.py", "top.py"]  # big.py would break the byte budget
    assert [c.path for c in workspace_files.nearest(found, "app/main.py", max_files=1)] == ["app/big.py"]


def test_excluded_vendored_and_generated_files_are_never_candidates(tmp_path: Path) -> None:
    for path in (
        "app/main.py",
        "app/util.py",
        ".env",
        "app/.env.local",
        "config/client_secret.py",
        "secrets/keys.py",
        "node_modules/pkg/index.js",
        "app/api_pb2.py",
        "dist/bundle.min.js",
        ".git/hooks/pre-commit.py",
        "notes.txt",
    ):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x = 1\n")
    found = sorted(c.path for c in workspace_files.candidates(tmp_path, DEFAULT_EXCLUDE))
    assert found == ["app/main.py", "app/util.py"]
    assert not workspace_files.wanted("app/tokens.py", (*DEFAULT_EXCLUDE, "**/tokens.py"))


def test_the_indexer_reads_the_neighbourhood_and_open_documents_never_secrets(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    (root / "app").mkdir(parents=True)
    (root / "app" / "helpers.py").write_text(HELPER)
    (root / "app" / "generated.py").write_text("# Code generated by hand-tool. DO NOT EDIT.\nx = 1\n")
    (root / ".env").write_text("API_TOKEN=abc123\n")
    (root / "secrets").mkdir()
    (root / "secrets" / "keys.py").write_text("API_TOKEN = 'abc123'\n")
    for i in range(5):
        (root / "far" / "away").mkdir(parents=True, exist_ok=True)
        (root / "far" / "away" / f"f{i}.py").write_text(f"y{i} = {i}\n")
    indexer = WorkspaceIndexer(root, lambda: DEFAULT_EXCLUDE, max_files=3, quiet_seconds=0.0)
    document = str(root / "app" / "main.py")
    indexer.opened(document, "import os\n")
    indexer.opened(str(tmp_path / "elsewhere" / "notes.py"), "z = 1\n")  # an open file outside the repository
    indexer.opened(str(root / "secrets" / "open_secret.py"), "API_TOKEN = 'abc123'\n")  # open, yet excluded
    snapshot = indexer.build()
    assert snapshot is not None
    paths = {Path(p).relative_to(root).as_posix() if p.startswith(str(root)) else p for p in snapshot.paths}
    assert "app/helpers.py" in paths and "app/main.py" in paths
    assert str(tmp_path / "elsewhere" / "notes.py") in paths
    assert not any("secret" in p or ".env" in p or "generated" in p for p in paths)
    assert len([p for p in paths if p.startswith("far/")]) <= 1  # the budget: 3 files of the repository
    # A build on the indexer's own thread swaps in a new snapshot; the old one is never changed.
    indexer.changed(document, "import os\nimport sys\n")
    deadline = time.monotonic() + 30
    while indexer.snapshot is snapshot and time.monotonic() < deadline:
        time.sleep(0.05)
    assert indexer.snapshot is not snapshot and indexer.builds >= 2
    assert "abc123" not in repr([indexer.snapshot.ngram("python", p) for p in indexer.snapshot.paths])


# --- eval: the repository at the held-out commit's parent ------------------------------------------------------


def test_eval_workspace_is_the_repository_at_the_commits_parent(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    repo.write("app/helpers.py", HELPER)
    repo.write("app/main.py", "import os\n")
    first = repo.commit("start", author=ALICE)
    later = 'def later():\n    token = compute_later_value(payload, mode="held-out")\n'
    repo.write("app/helpers.py", HELPER + later)
    repo.write("app/main.py", "import os\nimport sys\n")
    heldout = repo.commit("held out", author=ALICE)
    with ParentWorkspaces(repo.path) as workspaces:
        assert workspaces(first, "app/main.py") is None  # a root commit has no parent
        context = workspaces(heldout, "app/main.py")
        assert context is not None and set(context.paths) == {"app/helpers.py", "app/main.py"}
        assert workspaces(heldout, "app/main.py") is context  # built once per commit
    ngram = CacheNgram([], [])
    prefix = "def f(payload):\n    "
    got = ngram.complete(line("app/main.py", prefix + "digest = compute_checksum(", workspace=context))
    assert got == 'payload, algorithm="blake2b")'
    # The held-out commit's own code is not in its workspace.
    assert ngram.complete(line("app/main.py", prefix + "token = compute_la", workspace=context)) == ""
