"""`codedouble eval` end to end: a history built in tmp_path, mined, trained into a tiny double, and scored.

The history is built so that some answers are known: every training-era plugin installer registers its handler
with the same distinctive line, and a held-out commit adds a new installer that does too; the baselines must
complete that line exactly. The model is tiny (one layer, a few steps): its scores are not checked, only that
it takes part in the run and the report.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from codedouble.server.contract import corpus
from codedouble.server.engine import engine as engines
from codedouble.server.engine.document import Proposal, Request
from codedouble.server.engine.neural import Generated
from codedouble.server.engine.ngram import CacheNgram
from codedouble.server.engine.retrieval import Bm25Lines
from codedouble.trainer import cli
from codedouble.trainer.evaluation import report as reports
from codedouble.trainer.evaluation import run, tasks
from codedouble.trainer.evaluation.summary import EvalReport, row
from codedouble.trainer.mining.dataset import load_records
from codedouble.trainer.mining.miner import MineOptions, mine
from codedouble.trainer.mining.records import ChangeRecord, FileContext
from codedouble.trainer.training.model import ModelSize
from codedouble.trainer.training.train import TrainOptions, train
from conftest import ALICE, GitRepo, isolate_git

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SYSTEMS = ("engine", "model", "ngram", "bm25")
# Scored again without workspace context, last (`--no-workspace` leaves them out).
ABLATED = ("engine/no-workspace", "ngram/no-workspace", "bm25/no-workspace")
HELDOUT_FRACTION = 0.2  # of 16 commits: the newest 3
TINY = TrainOptions(
    from_scratch=True,
    steps=6,
    batch_size=2,
    block_size=64,
    eval_every=3,
    eval_batches=1,
    vocab_size=300,
    heldout_fraction=HELDOUT_FRACTION,
    # 256 positions: room for a block's 160 new tokens and a prompt (a 128-position model is tested on its own below).
    size=ModelSize(layers=1, hidden=64, context=256),
    tune_lines=0,  # abstention tuning has tests of its own; here it would only slow every training down
)

REGISTER = "    registry.register(handler, priority=HIGH_PRIORITY)"

HEADERS = {
    "app/plugins.py": "import logging\n\nfrom app.core import HIGH_PRIORITY, registry\n",
    "app/text.py": "import re\nimport unicodedata\n",
    "app/store.py": "import json\nfrom pathlib import Path\n",
}


def installer(name: str, params: str, before: list[str], after: list[str]) -> str:
    """A plugin installer that registers its handler with the engineer's distinctive line."""
    body = [*before, REGISTER.strip(), *after]
    return f"def {name}(handler{params}):\n" + "".join(f"    {x}\n" for x in body)


STORE_V1 = """\
class Store:
    def __init__(self, folder):
        self.folder = Path(folder)
        self.items = {}

    def put(self, key, value):
        self.items[key] = value
        return len(self.items)
"""

STORE_V2 = (
    STORE_V1
    + """
    def save(self):
        path = self.folder / "store.json"
        path.write_text(json.dumps(self.items, sort_keys=True))
        return path
"""
)

STORE_V3 = (
    STORE_V2
    + """
    def load(self):
        path = self.folder / "store.json"
        if path.exists():
            self.items = json.loads(path.read_text())
        return self.items
"""
)

SLUGIFY_V1 = """\
def slugify(title):
    words = re.findall(r"[a-z0-9]+", title.lower())
    return "-".join(words)
"""

# Held out: a new function with the registry line, an edit that adds lines, and a deletion only.
AUDIT = '''\
def install_audit_hooks(handler, journal, clock=None):
    """Record every event the handler sees in the journal."""
    journal.open_session(handler.name)
    handler.clock = clock or journal.clock
    handler.journal = journal
    handler.on_event = journal.record_event
    registry.register(handler, priority=HIGH_PRIORITY)
    journal.record_event("hooks-installed", handler.name)
    if journal.verbose:
        journal.flush(handler.name, level="debug")
    handler.audited = True
    return journal
'''

SLUGIFY_V2 = '''\
def slugify(title, separator="-", limit=None):
    """Lower-case ASCII words of the title, joined."""
    title = unicodedata.normalize("NFKD", title)
    title = title.encode("ascii", "ignore").decode("ascii")
    words = re.findall(r"[a-z0-9]+", title.lower())
    slug = separator.join(words)
    if limit is not None:
        slug = slug[:limit].rstrip(separator)
    return slug or "untitled"
'''
# Every added line worth completing: the new installer's twelve and slugify's eight (its `words` line is old).
LINE_POOL = 20

# (message, path, block name, block text or None to delete it): each commit replaces, appends or deletes one block.
HISTORY: list[tuple[str, str, str, str | None]] = [
    (
        "Install logging",
        "app/plugins.py",
        "install_logging",
        installer("install_logging", "", ["handler.level = logging.INFO"], ["return handler"]),
    ),
    ("Start the store", "app/store.py", "Store", STORE_V1),
    (
        "Install metrics",
        "app/plugins.py",
        "install_metrics",
        installer("install_metrics", ", sink", ["handler.sink = sink", "sink.open()"], ["return sink"]),
    ),
    ("Slugs", "app/text.py", "slugify", SLUGIFY_V1),
    (
        "Install tracing",
        "app/plugins.py",
        "install_tracing",
        installer("install_tracing", ", tracer", ["tracer.attach(handler)"], ["tracer.start()", "return tracer"]),
    ),
    ("Save the store", "app/store.py", "Store", STORE_V2),
    (
        "Install a cache",
        "app/plugins.py",
        "install_cache",
        installer(
            "install_cache", ", size=128", ["handler.cache = {}", "handler.cache_size = size"], ["return handler.cache"]
        ),
    ),
    (
        "Truncate text",
        "app/text.py",
        "truncate",
        """\
def truncate(text, width=80, ellipsis="..."):
    if len(text) <= width:
        return text
    return text[: width - len(ellipsis)].rstrip() + ellipsis
""",
    ),
    (
        "Install retries",
        "app/plugins.py",
        "install_retry",
        installer("install_retry", ", attempts=3", ["handler.attempts = attempts"], ["return handler"]),
    ),
    ("Load the store", "app/store.py", "Store", STORE_V3),
    (
        "Install auth",
        "app/plugins.py",
        "install_auth",
        installer(
            "install_auth", ", users", ["handler.users = set(users)", 'handler.realm = "app"'], ["return handler.users"]
        ),
    ),
    (
        "Dump legacy text",
        "app/text.py",
        "legacy_dump",
        """\
def legacy_dump(lines, out):
    for number, line in enumerate(lines, 1):
        out.write(f"{number:>5}  {line}\\n")
    return number
""",
    ),
    (
        "Count words",
        "app/text.py",
        "count_words",
        """\
def count_words(text):
    counts = {}
    for word in re.findall(r"\\w+", text.lower()):
        counts[word] = counts.get(word, 0) + 1
    return counts
""",
    ),
    # --- held out ---
    ("Audit hooks", "app/plugins.py", "install_audit_hooks", AUDIT),
    ("Unicode slugs", "app/text.py", "slugify", SLUGIFY_V2),
    ("Drop the legacy dump", "app/text.py", "legacy_dump", None),
]
HELDOUT = 3


def build_history(repo: GitRepo) -> list[str]:
    files: dict[str, dict[str, str]] = {}
    shas = []
    for message, path, name, text in HISTORY:
        blocks = files.setdefault(path, {})
        if text is None:
            del blocks[name]
        else:
            blocks[name] = text
        repo.write(path, HEADERS[path] + "\n\n" + "\n\n".join(blocks.values()))
        shas.append(repo.commit(message, author=ALICE))
    return shas


def git_show(repo: Path, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"{commit}:{path}"], check=True, capture_output=True
    ).stdout.decode("utf-8")


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


# --- one history, dataset and tiny double shared by the module -----------------------------------------


class World:
    def __init__(self, repo: Path, shas: list[str], dataset: Path, artifact: Path, data_home: Path) -> None:
        self.repo, self.shas, self.dataset, self.artifact, self.data_home = repo, shas, dataset, artifact, data_home
        self.records = list(load_records(dataset))

    @property
    def heldout(self) -> list[str]:
        return self.shas[-HELDOUT:]

    def heldout_records(self) -> list[ChangeRecord]:
        return [r for r in self.records if r.commit in self.heldout]

    def heldout_messages(self) -> list[str]:
        """Each held-out commit's message, once."""
        return list({r.commit: r.message for r in self.heldout_records()}.values())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("eval")
    with pytest.MonkeyPatch.context() as mp:
        isolate_git(mp)
        mp.setenv("XDG_DATA_HOME", str(root / "xdg-data"))
        repo = GitRepo(root / "app")
        try:
            shas = build_history(repo)
        finally:
            repo.close()
        dataset = root / "dataset"
        mine(repo.path, dataset, MineOptions(all_authors=True), progress=False)
        artifact = root / "double"
        train(dataset, replace(TINY, out=artifact), progress=False)
    return World(repo.path, shas, dataset, artifact, root / "xdg-data")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _own_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads or writes a double in the real data directory."""
    home = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def compared(world: World, tmp_path_factory: pytest.TempPathFactory) -> tuple[EvalReport, Path]:
    """One `evaluate` run with another artifact to compare (a copy of the double, in a folder of its own)."""
    other = tmp_path_factory.mktemp("compare") / "other-double"
    shutil.copytree(world.artifact, other)
    result = run.evaluate(
        world.artifact,
        run.EvalOptions(compare=(other,), line_samples=12, block_samples=3, replay_lines=4, threads=1),
        progress=False,
    )
    return result, other


# --- the split never leaks -------------------------------------------------------------------------------


def test_heldout_commits_are_the_newest_and_none_of_their_code_is_in_the_corpus(world: World) -> None:
    manifest = read_json(world.artifact / "manifest.json")
    assert set(manifest["split"]["heldout_commits"]) == set(world.heldout)
    assert {r.commit for r in world.heldout_records()} == set(world.heldout)
    snippets = corpus.load(world.artifact)
    assert snippets and manifest["records"]["corpus_snippets"] == len(snippets)
    texts = [s.text for s in snippets]
    everything = (world.artifact / corpus.CORPUS).read_text(encoding="utf-8")
    # The held-out code, by its distinctive lines: neither as a snippet nor anywhere in the file.
    for held in ("install_audit_hooks", "journal.record_event", "unicodedata.normalize", 'separator="-"'):
        assert held not in everything, held
        assert not any(held in t for t in texts), held
    # Every training-era definition is there, each once.
    assert sum(t.startswith("def install_") for t in texts) == 6
    assert len(texts) == len(set(texts))
    assert all(s.language == "python" and s.path.startswith("app/") for s in snippets)
    # The legacy dump was deleted in a held-out commit, but written in a training one: it is training code.
    assert any(t.startswith("def legacy_dump(") for t in texts)
    training_afters = {r.after for r in world.records if r.commit not in world.heldout and r.after}
    assert {s.text for s in snippets if s.kind == "definition"} <= training_afters
    # Module-level code (each file's imports here) joined the corpus, once per run of added lines.
    module = {(s.path, s.text.strip()) for s in snippets if s.kind == "module"}
    assert module == {
        ("app/plugins.py", "import logging"),
        ("app/plugins.py", "from app.core import HIGH_PRIORITY, registry"),
        ("app/text.py", "import re\nimport unicodedata"),
        ("app/store.py", "import json\nfrom pathlib import Path"),
    }


def test_eval_samples_only_heldout_records(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}
    real = tasks.sample

    def spy(heldout: list[ChangeRecord], line_samples: int, block_samples: int, seed: int) -> list[tasks.Sample]:
        seen["records"] = heldout
        seen["samples"] = real(heldout, line_samples, block_samples, seed)
        return seen["samples"]

    monkeypatch.setattr(tasks, "sample", spy)
    result = run.evaluate(
        world.artifact, run.EvalOptions(line_samples=200, block_samples=30, replay_lines=0, threads=1), progress=False
    )
    assert sorted(map(repr, seen["records"])) == sorted(map(repr, world.heldout_records()))
    assert {Path(r.repository) for r in seen["records"]} == {world.repo.resolve()}  # files read from there
    assert {s.repository for s in seen["samples"]} == {str(world.repo.resolve())}
    prefixes = {sha[:12] for sha in world.heldout}
    assert seen["samples"] and all(s.id.split(":", 1)[0] in prefixes for s in seen["samples"])
    assert result.heldout_commits == HELDOUT
    counts = {
        "line": sum(s.task == "line" for s in seen["samples"]),
        "block": sum(s.task == "block" for s in seen["samples"]),
    }
    assert result.samples == counts
    assert counts == {"line": LINE_POOL, "block": 2}  # install_audit_hooks and slugify; a deletion gives nothing


# --- tasks.sample --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def samples(world: World) -> list[tasks.Sample]:
    return tasks.sample(world.heldout_records(), 1000, 1000, seed=0)


def full_sha(world: World, sample: tasks.Sample) -> str:
    prefix = sample.id.split(":", 1)[0]
    [sha] = [s for s in world.heldout if s.startswith(prefix)]
    return sha


def test_line_samples_rebuild_the_file_and_target_the_rest_of_an_added_line(
    world: World, samples: list[tasks.Sample]
) -> None:
    lines = [s for s in samples if s.task == "line"]
    # Every added line worth completing, each once.
    audit_lines = [x for x in AUDIT.split("\n") if x]
    slug_added = [x for x in SLUGIFY_V2.split("\n") if x and x not in SLUGIFY_V1.split("\n")]
    assert len(audit_lines) + len(slug_added) == LINE_POOL
    for sample in lines:
        sha = full_sha(world, sample)
        text = git_show(world.repo, sha, sample.path)
        assert sample.prefix + sample.target + sample.suffix == text
        assert sample.language == "python"
        _, path, line_no, column = sample.id.split(":")
        assert path == sample.path
        current = sample.prefix.rsplit("\n", 1)[-1]
        assert int(line_no) == sample.prefix.count("\n") + 1
        assert int(column) == len(current) + 1
        full_line = current + sample.target
        assert sample.suffix.startswith("\n") or sample.suffix == ""
        assert full_line in (audit_lines if sample.path == "app/plugins.py" else slug_added), full_line
        assert sample.target.strip()
        assert len(current) >= len(full_line) - len(full_line.lstrip())  # the cursor is never inside the indentation
    targets = sorted(s.prefix.rsplit("\n", 1)[-1] + s.target for s in lines)
    assert targets == sorted(audit_lines + slug_added)


def test_block_samples_target_the_body_after_the_signature(world: World, samples: list[tasks.Sample]) -> None:
    blocks = sorted((s for s in samples if s.task == "block"), key=lambda s: s.path)
    assert [s.path for s in blocks] == ["app/plugins.py", "app/text.py"]
    assert blocks[0].suffix == "\n"  # the new installer is the last definition of its file
    assert blocks[1].suffix.startswith("\n\n\ndef truncate(")  # slugify is the first of its file
    for sample, text in zip(blocks, (AUDIT, SLUGIFY_V2), strict=True):
        signature, body = text.split("\n", 1)
        assert sample.target == body.removesuffix("\n")  # a definition ends where its last line does
        assert sample.prefix.endswith("\n\n" + signature + "\n")
        assert sample.prefix + sample.target + sample.suffix == git_show(
            world.repo, full_sha(world, sample), sample.path
        )
        assert sample.id.endswith(f":{sample.prefix.count(chr(10)) + 1}:1")


def test_samples_are_the_same_for_the_same_seed_and_differ_for_another(world: World) -> None:
    records = world.heldout_records()
    first = tasks.sample(records, 4, 1, seed=0)
    assert first == tasks.sample(list(reversed(records)), 4, 1, seed=0)
    assert [s.task for s in first] == ["line"] * 4 + ["block"]
    assert len({s.id for s in first}) == 5
    others = [tasks.sample(records, 4, 1, seed=seed) for seed in (1, 2, 3)]
    assert all(len(o) == 5 for o in others)
    assert any([s.id for s in o] != [s.id for s in first] for o in others)


def test_sample_sizes_are_capped_by_what_there_is(world: World, samples: list[tasks.Sample]) -> None:
    assert tasks.sample(world.heldout_records(), 0, 0, seed=0) == []
    assert tasks.sample([], 10, 10, seed=0) == []
    assert len(samples) == len({s.id for s in samples})


def hand_record(
    repository: Path, commit: str, path: str, after: str | None, change: str = "added", line: int = 1
) -> ChangeRecord:
    return ChangeRecord(
        repository=str(repository),
        commit=commit,
        author_email=ALICE.email,
        author_name=ALICE.name,
        authored_at="2021-03-01T09:30:00+02:00",
        committed_at="2021-03-01T09:30:00+02:00",
        path=path,
        old_path=None,
        language="python",
        qualified_name="f",
        kind="function",
        change=change,
        before=None,
        after=after,
        line=line,
        context=FileContext("", ()),
        message="m",
    )


def test_unreadable_files_and_deletions_are_skipped(repo: GitRepo) -> None:
    repo.write("good.py", "import os\n\n\ndef ok(x):\n    return os.path.join(x, 'y')\n")
    repo.write("bad.py", "def latin():\n    return 'caf\xe9'\n".encode("latin-1"))
    sha = repo.commit("files")
    records = [
        hand_record(repo.path, sha, "bad.py", "def latin():\n    return 'caf\ufffd'\n"),  # the file is not UTF-8
        hand_record(repo.path, sha, "missing.py", "def gone():\n    return 1\n"),  # no such file at that commit
        hand_record(repo.path, sha, "good.py", None, change="deleted"),
        hand_record(repo.path, sha, "good.py", "def stale():\n    return 2\n", line=4),  # not in the file any more
        hand_record(repo.path, sha, "good.py", "def ok(x):\n    return os.path.join(x, 'y')\n", line=4),
    ]
    got = tasks.sample(records, 10, 10, seed=0)
    assert sorted((s.task, s.id.split(":")[1], s.id.split(":")[2]) for s in got) == [
        ("block", "good.py", "5"),
        ("line", "good.py", "4"),
        ("line", "good.py", "5"),
    ]
    text = repo.read("good.py")
    for s in got:
        assert s.prefix + s.target + s.suffix == text
    # Only unreadable ones: no samples, no error.
    assert tasks.sample(records[:4], 10, 10, seed=0) == []


def test_a_body_the_commit_did_not_write_is_no_block_sample(repo: GitRepo) -> None:
    """A definition whose signature or indentation alone changed keeps its body: nobody writes it again, so
    it is never a block target (the older version would score it exact). Its changed signature line is still
    a line sample; a body changed by one character is a block sample."""
    typed = "def ok(x: int) -> str:\n    return str(x)\n"
    edited = "def edited(x):\n    return str(x + 1)\n"
    repo.write("app.py", typed + "\n\n" + edited)
    sha = repo.commit("types")
    records = [
        replace(
            hand_record(repo.path, sha, "app.py", typed),
            change="modified",
            before="def ok(x):\n      return str(x)  \n",  # another indentation, trailing blanks: the same body
        ),
        replace(
            hand_record(repo.path, sha, "app.py", edited, line=5),
            change="modified",
            before="def edited(x):\n    return str(x)\n",
        ),
    ]
    got = tasks.sample(records, 10, 10, seed=0)
    # ok's lines changed (its signature, its body's indentation); edited's return line changed.
    assert sorted((s.task, s.id.split(":")[2]) for s in got) == [
        ("block", "6"),
        ("line", "1"),
        ("line", "2"),
        ("line", "6"),
    ]
    [block] = [s for s in got if s.task == "block"]
    assert block.target.rstrip("\n") == "    return str(x + 1)"


# --- the baselines on a known answer -------------------------------------------------------------------


def audit_request(world: World, typed: str) -> Request:
    """The held-out plugins.py, the cursor after `typed` on the registry line of install_audit_hooks."""
    text = git_show(world.repo, world.heldout[0], "app/plugins.py")
    start = text.index("def install_audit_hooks")
    at = text.index(REGISTER, start)
    assert REGISTER.startswith(typed)
    cursor = at + len(typed)
    return Request("app/plugins.py", text[:cursor], text[cursor:], "line")


@pytest.mark.parametrize(
    "typed", ["    registry.register(handler, pri", "    registry.", "    registry.register(", "    regis"]
)
def test_ngram_and_bm25_complete_the_engineers_registry_line(world: World, typed: str) -> None:
    snippets = corpus.load(world.artifact)
    texts = [s.text for s in snippets]
    request = audit_request(world, typed)
    expected = REGISTER[len(typed) :]
    assert CacheNgram(texts).complete(request) == expected
    assert Bm25Lines(texts, [s.language for s in snippets]).complete(request) == expected


def test_the_engine_completes_the_known_line_from_the_engineers_code(world: World) -> None:
    engine = engines.load(world.artifact)
    assert [s.name for s in engine.systems] == list(SYSTEMS)
    request = audit_request(world, "    registry.register(handler, pri")
    assert engine.ngram.complete(request) == "ority=HIGH_PRIORITY)"
    assert engine.complete(request) == "ority=HIGH_PRIORITY)"
    assert isinstance(engine.model.complete(request), str)
    assert "\n" not in engine.model.complete(request)


class _Fixed:
    """Stands in for any of the engine's systems (the model's `generate` or a count-based `propose`)."""

    name = "fixed"

    def __init__(self, text: str) -> None:
        self.text = text
        self.calls = 0

    def propose(self, request: Request, cancelled: object = None) -> Proposal:
        self.calls += 1
        return Proposal(self.text, 1.0)

    def generate(self, request: Request, cancelled: object = None) -> Generated:
        self.calls += 1
        return Generated(self.text, 0.0, 1)


@pytest.mark.parametrize(
    ("ngram", "model", "bm25", "expected"),
    [
        ("from ngram", "from model", "from bm25", "from ngram"),
        ("", "from model", "from bm25", "from model"),
        ("  ", "", "from bm25", "from bm25"),
        ("", "", "", ""),
    ],
)
def test_the_engine_asks_the_model_only_where_the_ngram_is_silent(
    ngram: str, model: str, bm25: str, expected: str
) -> None:
    parts = [_Fixed(ngram), _Fixed(model), _Fixed(bm25)]
    combined = engines.Combined(model=parts[1], ngram=parts[0], bm25=parts[2])  # type: ignore[arg-type]
    assert combined.complete(Request("a.py", "x = ", "\n", "line")) == expected
    asked = [1, 1 if not ngram.strip() else 0, 1 if not (ngram.strip() or model.strip()) else 0]
    assert [p.calls for p in parts] == asked


def test_a_cancelled_engine_stops_asking() -> None:
    parts = [_Fixed(""), _Fixed("from model"), _Fixed("from bm25")]
    combined = engines.Combined(model=parts[1], ngram=parts[0], bm25=parts[2])  # type: ignore[arg-type]
    assert combined.complete(Request("a.py", "x = ", "\n", "line"), cancelled=lambda: True) == ""
    assert [p.calls for p in parts] == [1, 0, 0]


@pytest.mark.parametrize("mode", ["line", "block"])
def test_model_scores_each_candidate_as_the_whole_sequence_would(world: World, mode: str) -> None:
    """score() is the mean log-probability of each candidate's tokens after the prompt, whatever else it is
    scored with (candidates of different lengths, an empty one)."""
    import math

    import torch

    from codedouble.server.engine.neural import Neural

    # In fp32: int8 quantises activations per call, so a batch of candidates and one sequence differ slightly;
    # the arithmetic of scoring is what is checked here.
    neural = Neural(world.artifact, runtime="fp32")
    text = git_show(world.repo, world.heldout[0], "app/plugins.py")
    if mode == "line":
        cursor = text.index(REGISTER) + len("    registry.")
    else:
        cursor = text.index("\n", text.index("def install_audit_hooks")) + 1
    request = Request("app/plugins.py", text[:cursor], text[cursor:], mode)  # type: ignore[arg-type]
    candidates = [
        "register(handler, priority=HIGH_PRIORITY)",
        "",
        "x",
        "    journal.open_session(handler.name)\n    return journal",
    ]
    scores = neural.score(request, candidates)
    assert len(scores) == len(candidates)
    assert scores[1] == -math.inf
    limit = neural._new_tokens(request)
    prompt_ids, healed = neural.prompt_ids(request, limit)
    for candidate, score in zip(candidates, scores, strict=True):
        if not candidate:
            continue
        cand = neural._encode(healed + candidate)[:limit]  # scored from the healed token on
        with torch.no_grad():
            logits = neural.model(input_ids=torch.tensor([prompt_ids + cand])).logits[0].float()
        logp = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], -1)[torch.arange(len(cand)), torch.tensor(cand)]
        assert score == pytest.approx(float(logp.mean()), abs=1e-4), candidate
        assert neural.score(request, [candidate]) == [pytest.approx(score, abs=1e-4)]


def test_a_model_with_a_short_context_completes_a_block(world: World, tmp_path: Path) -> None:
    # A context shorter than a block's new tokens: half of it stays for the prompt, nothing overflows.
    from transformers import PreTrainedTokenizerFast

    from codedouble.server.contract import prompt
    from codedouble.server.engine.neural import Neural
    from codedouble.trainer.training.model import from_scratch

    tokenizer = PreTrainedTokenizerFast.from_pretrained(world.artifact)
    model = from_scratch(
        ModelSize(layers=1, hidden=64, context=128),
        len(tokenizer),
        tokenizer.convert_tokens_to_ids(prompt.EOS),
    )
    folder = tmp_path / "short"
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    neural = Neural(folder)
    text = git_show(world.repo, world.heldout[0], "app/plugins.py")
    cursor = text.index("\n", text.index("def install_audit_hooks")) + 1
    request = Request("app/plugins.py", text[:cursor], text[cursor:], "block")
    assert isinstance(neural.complete(request), str)  # IndexError: index out of range in self
    assert len(neural.score(request, ["    return journal"])) == 1
    line = Request("app/plugins.py", text[: cursor + 8], text[cursor + 8 :], "line")
    assert "\n" not in neural.complete(line)


# --- run.evaluate and the report ---------------------------------------------------------------------------


def test_evaluate_scores_every_system_and_the_compared_artifact(compared: tuple[EvalReport, Path]) -> None:
    result, _ = compared
    assert result.systems == (*SYSTEMS, "compare:other-double", *ABLATED)
    assert result.default_system == "engine"
    assert set(result.descriptions) == set(result.systems)
    assert result.samples == {"line": 12, "block": 2}
    assert result.seed == 0 and result.heldout_commits == HELDOUT
    for system in result.systems:
        for task, n in (("line", 12), ("block", 2)):
            r = row(result, system, task)
            assert r is not None, (system, task)
            assert r.samples == n
            assert 0 <= r.exact_match <= 1 and 0 <= r.edit_similarity <= 1
            assert r.p50_ms >= 0 and r.p95_ms >= r.p50_ms
    assert "other-double" in result.descriptions["compare:other-double"]
    assert {e["task"] for e in result.examples} == {"line", "block"}
    # The typing replay: every system typed the same held-out lines, for both simulated users.
    assert result.replay_lines == 4
    overall = {(r.system, r.user): r for r in result.replay if r.language == "all"}
    assert set(overall) == {(s, u) for s in result.systems for u in ("line", "word")}
    for r in overall.values():
        assert r.lines == 4 and r.chars > 0
        assert 0 <= r.saved <= 1 and 0 <= r.shown <= 1
        assert r.precision is None or 0 <= r.precision <= 1
    assert all(set(SYSTEMS) <= set(e) for e in result.examples)


def test_the_commit_message_task_drafts_every_heldout_commit_with_every_source(
    compared: tuple[EvalReport, Path], world: World
) -> None:
    result, _ = compared
    assert result.commit_samples == len(world.heldout)  # each held-out commit has a message and a change
    assert [r.system for r in result.commit_rows] == ["model", "retrieval", "generic"]
    assert result.commit_default in ("model", "retrieval")
    for r in result.commit_rows:
        assert r.samples == result.commit_samples
        for value in (r.b_norm, r.rouge_l, r.first_word, r.first_two_words, r.edit_similarity):
            assert 0 <= value <= 1
    # The generic baseline's words are always "Update ...": it gets the first word right only where they did.
    generic = next(r for r in result.commit_rows if r.system == "generic")
    assert generic.first_word == sum(m.lower().startswith("update") for m in world.heldout_messages()) / len(
        world.heldout
    )
    [example, *_] = result.commit_examples
    assert example["commit"] in world.heldout and example["generic"].startswith("Update ")
    table = reports.format_table(result)
    assert "commit message" in table and "B-Norm" in table and "ROUGE-L" in table


def test_the_engine_with_abstention_is_reported_beside_its_forced_answers(compared: tuple[EvalReport, Path]) -> None:
    result, _ = compared
    assert [(r.system, r.task) for r in result.abstention] == [("engine", "line"), ("engine", "block")]
    for r in result.abstention:
        assert r.samples == result.samples[r.task] and 0 <= r.declined <= r.samples
        shown = r.samples - r.declined
        # Nothing shown has no precision to report, rather than a 0 that would read as a score.
        assert (r.exact_match is None) == (shown == 0) and (r.edit_similarity is None) == (shown == 0)
        for value in (r.exact_match, r.edit_similarity):
            assert value is None or 0 <= value <= 1
    table = reports.format_table(result)
    assert "declined" in table and "EM % of shown" in table
    assert "## With abstention" in reports.format_markdown(result)


def test_the_report_files_are_written(compared: tuple[EvalReport, Path], tmp_path: Path) -> None:
    result, _ = compared
    written = reports.write(result, tmp_path / "report")
    assert [p.name for p in written] == ["report.json", "report.md", "report.png"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    assert EvalReport.from_dict(read_json(written[0])) == result
    assert written[2].read_bytes().startswith(PNG_SIGNATURE)
    assert "compare:other-double" in written[1].read_text(encoding="utf-8")
    assert "## Commit messages" in written[1].read_text(encoding="utf-8")


# --- the command line ---------------------------------------------------------------------------------


def test_cli_eval_prints_the_table_and_writes_the_report(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    code = cli.main(
        [
            "eval",
            str(world.artifact),
            "--report",
            str(out),
            "--line-samples",
            "20",
            "--block-samples",
            "5",
            "--replay-lines",
            "3",
            "--quiet",
            "--no-base",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "engine" in captured.out and "bm25" in captured.out and "ngram" in captured.out
    assert str(out) in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md", "report.png"]
    assert (out / "report.png").read_bytes().startswith(PNG_SIGNATURE)
    data = read_json(out / "report.json")
    assert data["systems"] == [*SYSTEMS, *ABLATED]
    assert data["samples"] == {"line": 20, "block": 2}
    assert data["replay_lines"] == 3 and {r["user"] for r in data["replay"]} == {"line", "word"}
    assert "typing replay" in captured.out
    assert not (world.artifact / "eval").exists()  # --report: nothing written into the artifact


@pytest.mark.parametrize("shipped", [True, False])
def test_cli_eval_scores_a_base_alone(
    shipped: bool, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The shipped base (here: a stand-in, any model folder the engine loads) is a row of its own; without one,
    and with --no-base, there is no such row; --base DIR scores another."""
    from codedouble.trainer.base import shipped as shipped_module

    stand_in = tmp_path / "weights"
    if shipped:
        shutil.copytree(world.artifact, stand_in)
    else:
        stand_in.mkdir()
    monkeypatch.setattr(shipped_module, "WEIGHTS", stand_in)
    args = [
        "eval",
        str(world.artifact),
        "--line-samples",
        "4",
        "--block-samples",
        "1",
        "--replay-lines",
        "0",
        "--quiet",
    ]
    assert cli.main([*args, "--report", str(tmp_path / "default")]) == 0, capsys.readouterr().err
    systems = read_json(tmp_path / "default" / "report.json")["systems"]
    assert systems == ([*SYSTEMS, "base", *ABLATED] if shipped else [*SYSTEMS, *ABLATED])
    if shipped:
        assert "no personal data" in read_json(tmp_path / "default" / "report.json")["descriptions"]["base"]
    assert cli.main([*args, "--report", str(tmp_path / "none"), "--no-base", "--no-workspace"]) == 0
    assert read_json(tmp_path / "none" / "report.json")["systems"] == list(SYSTEMS)
    assert cli.main([*args, "--report", str(tmp_path / "named"), "--base", str(world.artifact)]) == 0
    assert read_json(tmp_path / "named" / "report.json")["systems"] == [*SYSTEMS, "base", *ABLATED]


def expect_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured
    assert captured.err.startswith("codedouble eval: error: ")
    assert "Traceback" not in captured.err
    return captured.err


def test_cli_eval_refuses_a_directory_that_is_not_an_artifact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "not-a-double"
    folder.mkdir()
    err = expect_exit_2(["eval", str(folder), "--quiet"], capsys)
    assert str(folder) in err and "not a codedouble artifact" in err
    assert not (folder / "eval").exists()


def test_cli_eval_without_a_current_double(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = expect_exit_2(["eval", "--repo", str(tmp_path), "--quiet"], capsys)
    assert "no trained double" in err and "codedouble train" in err


def copy_artifact(world: World, dest: Path, **dataset_changes: Any) -> Path:
    shutil.copytree(world.artifact, dest)
    if dataset_changes:
        manifest = read_json(dest / "manifest.json")
        manifest["dataset"].update(dataset_changes)
        (dest / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return dest


def test_cli_eval_when_the_dataset_is_gone(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = tmp_path / "dataset"
    shutil.copytree(world.dataset, dataset)
    artifact = copy_artifact(world, tmp_path / "double", path=str(dataset))
    shutil.rmtree(dataset)
    err = expect_exit_2(["eval", str(artifact), "--report", str(tmp_path / "r"), "--quiet"], capsys)
    assert "dataset" in err and str(dataset) in err
    assert not (tmp_path / "r").exists()


def test_cli_eval_when_the_repository_is_gone(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The dataset as if its repository had been mined at a path that is gone now: records name their repository.
    dataset = tmp_path / "dataset"
    shutil.copytree(world.dataset, dataset)
    for shard in (dataset / "records").iterdir():
        lines = [json.loads(line) for line in shard.read_text(encoding="utf-8").splitlines()]
        shard.write_text("".join(json.dumps({**r, "repository": str(tmp_path / "moved-away")}) + "\n" for r in lines))
    artifact = copy_artifact(world, tmp_path / "double", path=str(dataset))
    err = expect_exit_2(["eval", str(artifact), "--report", str(tmp_path / "r"), "--quiet"], capsys)
    assert "repository" in err and str(tmp_path / "moved-away") in err


def test_cli_eval_without_a_corpus_says_to_train_again(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = copy_artifact(world, tmp_path / "double")
    (artifact / corpus.CORPUS).unlink()
    err = expect_exit_2(["eval", str(artifact), "--report", str(tmp_path / "r"), "--quiet"], capsys)
    assert corpus.CORPUS in err and "train it again" in err
    assert not (tmp_path / "r").exists()


def test_cli_eval_with_nothing_held_out(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    artifact = copy_artifact(world, tmp_path / "double")
    manifest = read_json(artifact / "manifest.json")
    manifest["split"]["heldout_commits"] = []
    (artifact / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    err = expect_exit_2(["eval", str(artifact), "--report", str(tmp_path / "r"), "--quiet"], capsys)
    assert "nothing held out" in err


def test_cli_eval_refuses_a_double_of_another_prompt_format(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = copy_artifact(world, tmp_path / "double")
    manifest = read_json(artifact / "manifest.json")
    manifest["prompt_format"] = 1  # prefix-suffix-middle: this codedouble would prompt it wrongly
    (artifact / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    err = expect_exit_2(["eval", str(artifact), "--report", str(tmp_path / "r"), "--quiet"], capsys)
    assert "prompt format 1" in err and "train the double again" in err


def test_cli_eval_refuses_a_double_of_an_older_artifact_format(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = copy_artifact(world, tmp_path / "double")
    manifest = read_json(artifact / "manifest.json")
    manifest["artifact_format"] = 1  # the GPT-2 era's doubles
    (artifact / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    err = expect_exit_2(["eval", str(artifact), "--report", str(tmp_path / "r"), "--quiet"], capsys)
    assert "artifact format 1" in err and "older codedouble" in err and "train the double again" in err


def test_cli_eval_with_damaged_weights_names_the_problem(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artifact = copy_artifact(world, tmp_path / "double")
    (artifact / "model.safetensors").write_bytes(b"not safetensors")
    err = expect_exit_2(["eval", str(artifact), "--report", str(tmp_path / "r"), "--quiet"], capsys)
    assert "model cannot be loaded" in err and str(artifact) in err


# --- abstention tuned at training time ----------------------------------------------------------------------


def test_training_tunes_abstention_on_validation_lines_never_heldout_ones(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codedouble.server.engine.abstention import Abstention
    from codedouble.trainer.training import abstention

    typed: list[str] = []
    workspaces: list[object] = []
    real = abstention.observe

    def watched(proposers, lines, seconds, context=None):  # type: ignore[no-untyped-def]
        typed.extend(line.id.split(":")[0] for line in lines)
        workspaces.extend(context(line) for line in lines)  # what the server would have had around each line
        return real(proposers, lines, seconds, context)

    monkeypatch.setattr(abstention, "observe", watched)
    out = tmp_path / "tuned"
    train(world.dataset, replace(TINY, out=out, tune_lines=6), progress=False)
    manifest = read_json(out / "manifest.json")
    assert typed and not {sha for sha in typed} & {s[:12] for s in world.heldout}
    assert any(w is not None and w.paths for w in workspaces)  # tuned with the workspace context serving uses
    tuned = Abstention.from_manifest(manifest)
    assert tuned.validation["lines"] == len(typed) <= 6
    # agree: the model confirming the n-gram; agree-bm25: retrieval proposing the n-gram's line
    assert set(tuned.calibrations) == {"ngram", "agree", "agree-bm25", "model", "bm25"}
    assert tuned.threshold is not None and 0 < tuned.threshold < 1
    engine = engines.load(out, threads=1)
    assert engine.combined.abstention == tuned
    request = audit_request(world, "    registry.")
    shown = engine.propose(request)
    assert shown.text == "" or 0 <= shown.score <= 1  # what clears the threshold comes with its probability
    assert engine.propose(request, threshold=0.0).text == engine.complete(request)
