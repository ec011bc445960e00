"""Several repositories, one double: an engineer's histories mined into one dataset, trained into one double that
every one of the repositories finds, and evaluated per repository.

The same person commits as alice@work.example in `alpha` (Python) and as alice@home.example in `beta`
(JavaScript); two --author flags name her in both. Their commits interleave in time, so the held-out commits
(the newest, across both) hold code of each.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_server import TINY

from codedouble.server.contract import artifact, corpus
from codedouble.server.contract.errors import CodedoubleError
from codedouble.server.contract.tombstones import Rule
from codedouble.server.server import provenance_of
from codedouble.trainer import cli
from codedouble.trainer.evaluation import replay
from codedouble.trainer.evaluation import report as reports
from codedouble.trainer.evaluation.run import EvalOptions, evaluate
from codedouble.trainer.evaluation.summary import ALL
from codedouble.trainer.mining import dataset, repositories
from codedouble.trainer.mining.identity import UnknownAuthorError
from codedouble.trainer.mining.miner import MineOptions, mine
from codedouble.trainer.mining.records import ChangeRecord, FileContext
from codedouble.trainer.owning.audit import audit
from codedouble.trainer.owning.forget import forget
from codedouble.trainer.training import split
from codedouble.trainer.training.train import commit_sources, train
from conftest import BOB, START, GitRepo, Person, isolate_git

WORK = Person("Alice Example", "alice@work.example")
HOME = Person("Alice Example", "alice@home.example")
AUTHORS = (WORK.email, HOME.email)
COMMITS = 8  # per repository


def python_commit(repo: GitRepo, i: int) -> str:
    repo.write(
        f"alpha/step{i}.py",
        f"import os\nALPHA_LIMIT_{i} = {i * 7}\n\n\n"
        f"def alpha_step_{i}(path, count):\n    total = count + ALPHA_LIMIT_{i}\n"
        f"    return os.path.join(path, str(total))\n",
    )
    return repo.commit(f"alpha step {i}", author=WORK, date=START + timedelta(days=i))


def javascript_commit(repo: GitRepo, i: int) -> str:
    repo.write(
        f"beta/step{i}.js",
        f"const BETA_LIMIT_{i} = {i * 11};\n\nfunction betaStep{i}(items, count) {{\n"
        f"  const total = count + BETA_LIMIT_{i};\n  return items.slice(0, total);\n}}\n",
    )
    # Half a day after alpha's: the two histories interleave, so the newest commits are of both.
    return repo.commit(f"beta step {i}", author=HOME, date=START + timedelta(days=i, hours=12))


def build(root: Path) -> tuple[GitRepo, GitRepo]:
    alpha, beta = GitRepo(root / "alpha", WORK.email), GitRepo(root / "beta", HOME.email)
    for i in range(COMMITS):
        python_commit(alpha, i)
        javascript_commit(beta, i)
    beta.write("beta/theirs.js", "function bobsCode(x) {\n  return x * 2;\n}\n")
    beta.commit("someone else's", author=BOB, date=START + timedelta(days=COMMITS))
    return alpha, beta


def run_mine(repos: list[Path], out: Path, **options: Any):  # type: ignore[no-untyped-def]
    return mine(repos, out, MineOptions(authors=AUTHORS, **options), progress=False)


def manifest_of(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text(encoding="utf-8"))


# --- mining ----------------------------------------------------------------------------------------------------


@pytest.fixture
def two(tmp_path: Path):  # type: ignore[no-untyped-def]
    alpha, beta = build(tmp_path)
    yield alpha, beta
    alpha.close()
    beta.close()


def test_two_repositories_of_one_person_mine_into_one_dataset(
    two: tuple[GitRepo, GitRepo], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alpha, beta = two
    out = tmp_path / "dataset"
    argv = ["mine", str(alpha.path), str(beta.path), "--out", str(out), "--author", WORK.email, "--author", HOME.email]
    assert cli.main(argv) == 0
    printed = capsys.readouterr()
    assert f"{2 * COMMITS} new records from {2 * COMMITS + 1} commits" in printed.err

    records = list(dataset.load_records(out))
    roots = {"alpha": str(alpha.path.resolve()), "beta": str(beta.path.resolve())}
    assert {r.repository for r in records} == set(roots.values())
    assert {r.qualified_name for r in records if r.repository == roots["beta"]} == {
        f"betaStep{i}" for i in range(COMMITS)
    }  # Bob's function is not hers
    manifest = manifest_of(out)
    entries = {e["name"]: e for e in manifest["repositories"]}
    assert [e["name"] for e in manifest["repositories"]] == ["alpha", "beta"]
    assert {name: e["path"] for name, e in entries.items()} == roots
    assert entries["alpha"]["identities"] == entries["beta"]["identities"] == sorted(AUTHORS)
    assert entries["alpha"]["counts"]["records"] == {"kept": COMMITS}
    assert entries["beta"]["counts"]["commits"] == {"kept": COMMITS, "another author": 1}
    assert entries["beta"]["counts"]["languages"] == {"javascript": COMMITS}
    assert entries["alpha"]["head"] == alpha.head() and entries["beta"]["head"] == beta.head()
    assert all(e["options_fingerprint"] and len(e["runs"]) == 1 and len(e["shards"]) == 1 for e in entries.values())
    # The top-level keys readers of one repository's dataset know: the primary's, and the totals.
    assert (manifest["repository"], manifest["head"]) == (roots["alpha"], alpha.head())
    assert manifest["identities"] == sorted(AUTHORS)
    assert manifest["counts"]["records"] == {"kept": 2 * COMMITS}
    assert manifest["counts"]["languages"] == {"javascript": COMMITS, "python": COMMITS}
    assert manifest["shards"] == sorted(entries["alpha"]["shards"] + entries["beta"]["shards"])
    assert manifest["time_span"] == {
        "first": entries["alpha"]["time_span"]["first"],
        "last": entries["beta"]["time_span"]["last"],
    }
    # The data report: the totals, then a row per repository; what mine prints is report.txt.
    text = (out / "report.txt").read_text(encoding="utf-8")
    assert printed.out.strip() == text.strip()
    assert "codedouble data report — 2 repositories" in text
    rows = text.split("Kept per repository (2)")[1].splitlines()
    assert rows[1].split() == ["repository", "commits", "definitions", "languages"]
    assert rows[2].split() == ["alpha", str(COMMITS), str(COMMITS), "python", str(COMMITS)]
    assert rows[3].split() == ["beta", str(COMMITS), str(COMMITS), "javascript", str(COMMITS)]


def test_an_incremental_run_mines_the_new_commit_of_one_and_leaves_the_other(
    two: tuple[GitRepo, GitRepo], tmp_path: Path
) -> None:
    alpha, beta = two
    out = tmp_path / "dataset"
    run_mine([alpha.path, beta.path], out)
    before = manifest_of(out)
    new = javascript_commit(beta, COMMITS + 1)
    result = run_mine([alpha.path, beta.path], out)
    assert (result.new_commits, result.new_records, result.incremental) == (1, 1, True)
    assert any(n.startswith("alpha: up to date") for n in result.notes)
    assert any(n.startswith("beta: incremental: mined 1 new commits") for n in result.notes)
    after = manifest_of(out)
    assert after["repositories"][0] == before["repositories"][0]  # alpha untouched
    beta_entry = after["repositories"][1]
    assert beta_entry["head"] == new and [run["commits"] for run in beta_entry["runs"]] == [COMMITS + 1, 1]
    assert beta_entry["counts"]["records"] == {"kept": COMMITS + 1}
    assert after["counts"]["records"] == {"kept": 2 * COMMITS + 1}
    assert [r.qualified_name for r in dataset.load_records(out)][-1] == f"betaStep{COMMITS + 1}"
    # Nothing new anywhere: nothing is rewritten.
    stamp = (out / "manifest.json").read_bytes()
    assert run_mine([alpha.path, beta.path], out).new_commits == 0
    assert (out / "manifest.json").read_bytes() == stamp


def test_a_third_repository_joins_an_existing_dataset(two: tuple[GitRepo, GitRepo], tmp_path: Path) -> None:
    alpha, beta = two
    out = tmp_path / "dataset"
    run_mine([alpha.path, beta.path], out)
    before = manifest_of(out)
    gamma = GitRepo(tmp_path / "nested" / "alpha", WORK.email)  # the same folder name as the first
    try:
        gamma.write("g.py", "def gamma(x):\n    return x - 1\n")
        gamma.commit("gamma", author=WORK)
        result = run_mine([gamma.path], out)
    finally:
        gamma.close()
    assert (result.new_commits, result.new_records, result.incremental) == (1, 1, False)
    assert result.notes == [f"added {gamma.path.resolve()} to the dataset as 'alpha-2': mined 1 commits"]
    after = manifest_of(out)
    assert after["repositories"][:2] == before["repositories"]  # the others untouched, the primary first
    assert after["repositories"][2]["name"] == "alpha-2"
    assert after["repository"] == before["repository"]
    assert after["shards"] == sorted(before["shards"] + after["repositories"][2]["shards"])
    assert len(list(dataset.load_records(out))) == 2 * COMMITS + 1
    assert "alpha-2" in (out / "report.txt").read_text(encoding="utf-8")


def test_an_identity_missing_from_one_repository_names_it(two: tuple[GitRepo, GitRepo], tmp_path: Path) -> None:
    alpha, beta = two
    with pytest.raises(UnknownAuthorError, match=str(beta.path.resolve())):
        mine([alpha.path, beta.path], tmp_path / "out", MineOptions(authors=(WORK.email,)), progress=False)


def test_forget_in_a_dataset_of_two_repositories(two: tuple[GitRepo, GitRepo], tmp_path: Path) -> None:
    alpha, beta = two
    out = tmp_path / "dataset"
    run_mine([alpha.path, beta.path], out)
    gone = next(r for r in dataset.load_records(out) if r.qualified_name == "betaStep3")
    forget(out, Rule(commits=(gone.commit,)))
    manifest = manifest_of(out)
    alpha_entry, beta_entry = manifest["repositories"]
    assert alpha_entry["counts"]["records"] == {"kept": COMMITS}
    assert beta_entry["counts"]["records"] == {"kept": COMMITS - 1, "forgotten (codedouble forget)": 1}
    assert manifest["counts"]["records"]["kept"] == 2 * COMMITS - 1
    assert set(beta_entry["shards"]) <= set(manifest["shards"]) and "-forget1" in beta_entry["shards"][0]
    assert "betaStep3" not in {r.qualified_name for r in dataset.load_records(out)}
    # A fresh mine of both does not bring it back.
    run_mine([alpha.path, beta.path], out, fresh=True)
    assert "betaStep3" not in {r.qualified_name for r in dataset.load_records(out)}


def test_forget_of_one_repository_keeps_the_same_paths_of_another(
    two: tuple[GitRepo, GitRepo], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--path` alone reaches every repository of the dataset; `--repo` (spelled as the engineer likes) keeps it
    to one, now and in every later mine, training path filter and audit."""
    alpha, beta = two
    out = tmp_path / "dataset"
    run_mine([alpha.path, beta.path], out)
    both = forget(out, Rule(paths=("*/step1.*",)), dry_run=True)
    assert both.tombstone.paths == ("alpha/step1.py", "beta/step1.js")
    spelled = str(alpha.path / ".." / alpha.path.name) + "/"
    assert cli.main(["forget", str(out), "--path", "*/step1.*", "--repo", spelled]) == 0
    assert f"in {alpha.path.resolve()}" in capsys.readouterr().out
    names = {r.qualified_name for r in dataset.load_records(out)}
    assert "alpha_step_1" not in names and "betaStep1" in names
    manifest = manifest_of(out)
    [grave] = manifest["tombstones"]
    assert grave["rule"]["repositories"] == [str(alpha.path.resolve())]
    assert dataset.path_filter(manifest, str(alpha.path.resolve())).reject("alpha/step1.py") is not None
    assert dataset.path_filter(manifest, str(beta.path.resolve())).reject("beta/step1.js") is None
    # A fresh mine of both brings back neither the forgotten change nor loses the other repository's.
    run_mine([alpha.path, beta.path], out, fresh=True)
    names = {r.qualified_name for r in dataset.load_records(out)}
    assert "alpha_step_1" not in names and "betaStep1" in names
    # A repository the dataset was not mined from is named, with those it was; nothing changes.
    with pytest.raises(CodedoubleError, match=r"--repo .*elsewhere: this dataset was not mined from it \(it holds "):
        forget(out, Rule(paths=("*",), repositories=(str(tmp_path / "elsewhere"),)))
    assert len(manifest_of(out)["tombstones"]) == 1


def test_an_old_dataset_is_refused_with_the_fix(two: tuple[GitRepo, GitRepo], tmp_path: Path) -> None:
    alpha, _ = two
    out = tmp_path / "dataset"
    out.mkdir()
    old = {"tool": "codedouble", "dataset_format": dataset.DATASET_FORMAT, "record_format": 1, "shards": []}
    (out / "manifest.json").write_text(json.dumps(old))
    with pytest.raises(
        dataset.DatasetError, match="record format 1; this codedouble reads .*: mine again with --fresh"
    ):
        run_mine([alpha.path], out)


# --- the split and the readers of each record's repository ------------------------------------------------------


def record(repository: str, commit: str, committed_at: str) -> ChangeRecord:
    return ChangeRecord(
        repository=repository,
        commit=commit,
        author_email=WORK.email,
        author_name=WORK.name,
        authored_at=committed_at,
        committed_at=committed_at,
        path="a.py",
        old_path=None,
        language="python",
        qualified_name="f",
        kind="function",
        change="added",
        before=None,
        after="def f():\n    return 1\n",
        line=1,
        context=FileContext("", ()),
        message="m",
    )


def test_the_time_split_holds_out_the_newest_commits_across_repositories() -> None:
    records = [
        record("/r/alpha", "a1", "2024-01-01T10:00:00+00:00"),
        record("/r/beta", "b1", "2024-01-02T10:00:00+00:00"),
        record("/r/alpha", "a2", "2024-01-03T10:00:00+00:00"),
        record("/r/beta", "b2", "2024-01-04T12:00:00+02:00"),  # 10:00 UTC
        record("/r/alpha", "a3", "2024-01-04T11:00:00+00:00"),
    ]
    assert split.time_split(records, 0.4).heldout_commits == {"b2", "a3"}
    assert split.validation_commits(records[:4], 0.5, 0) == {"b2", "a2"}  # the newest, of either repository
    grouped = repositories.commits_by_repository(records, {"b2", "a3"})
    assert grouped == {"/r/alpha": {"a3"}, "/r/beta": {"b2"}}
    # A commit two repositories share (a fork beside its origin) is read from one of them.
    assert repositories.commits_by_repository([record("/r/fork", "a1", "2024-01-01"), *records[:1]]) == {
        "/r/alpha": {"a1"}
    }


def test_current_artifact_follows_an_absolute_pointer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    double = tmp_path / "elsewhere" / "double"
    double.mkdir(parents=True)
    (double / artifact.MANIFEST).write_text("{}")
    artifact.mark_current_of("/some/repository", double)
    pointer = artifact.doubles_dir("/some/repository") / artifact.CURRENT
    assert pointer.read_text().strip() == str(double.resolve())
    assert artifact.current_artifact("/some/repository") == double.resolve()


# --- one double of both ----------------------------------------------------------------------------------------


class World:
    def __init__(self, alpha: Path, beta: Path, dataset: Path, double: Path, data_home: Path) -> None:
        self.alpha, self.beta, self.dataset, self.double, self.data_home = alpha, beta, dataset, double, data_home


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("multirepo")
    with pytest.MonkeyPatch.context() as mp:
        isolate_git(mp)
        mp.setenv("XDG_DATA_HOME", str(root / "xdg"))
        alpha, beta = build(root)
        alpha.close()
        beta.close()
        mine([alpha.path, beta.path], root / "dataset", MineOptions(authors=AUTHORS), progress=False)
        result = train(root / "dataset", TINY, progress=False)  # the default place: marked current
    return World(alpha.path.resolve(), beta.path.resolve(), root / "dataset", result.artifact, root / "xdg")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _own_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes a double in the real data directory."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


def test_one_double_learns_from_both_and_both_find_it(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = artifact.read_manifest(world.double)
    assert manifest["dataset"]["repository"] == str(world.alpha)  # the primary
    assert manifest["dataset"]["repositories"] == [
        {"path": str(world.alpha), "head": manifest["dataset"]["head"]},
        {"path": str(world.beta), "head": manifest_of(world.dataset)["repositories"][1]["head"]},
    ]
    held = set(manifest["split"]["heldout_commits"])
    records = list(dataset.load_records(world.dataset))
    assert {r.repository for r in records if r.commit in held} == {str(world.alpha), str(world.beta)}
    # The corpus: definitions and module-level lines of both repositories' training commits.
    texts = [s.text for s in corpus.load(world.double)]
    assert any("def alpha_step_0" in t for t in texts) and any("function betaStep0" in t for t in texts)
    module = [s.text for s in corpus.load(world.double) if s.kind == "module"]
    assert any("ALPHA_LIMIT_0 = 0" in t for t in module) and any("const BETA_LIMIT_0 = 0;" in t for t in module)
    # The server finds the double from either repository.
    monkeypatch.setenv("XDG_DATA_HOME", str(world.data_home))
    assert artifact.current_artifact(str(world.alpha)) == world.double
    assert artifact.current_artifact(str(world.beta)) == world.double.resolve()
    assert world.double.parent == artifact.doubles_dir(str(world.alpha))
    # audit names both, and finds the double whole.
    report = audit(world.double)
    assert [value.split(" @ ")[0] for name, value in report.provenance if name == "repository"] == [
        str(world.alpha),
        str(world.beta),
    ]
    assert {c.name: c.status for c in report.checks}["files"] == "ok"
    # The server's status names both to the editor.
    assert [r["path"] for r in provenance_of(manifest)["repositories"]] == [str(world.alpha), str(world.beta)]


def test_tuning_lines_come_from_each_repository(world: World) -> None:
    manifest = manifest_of(world.dataset)
    records = list(dataset.load_records(world.dataset))
    commits = {r.commit for r in records}
    lines = replay.lines_of(commit_sources(manifest, records, commits), 200, seed=0)
    assert {line.repository for line in lines} == {str(world.alpha), str(world.beta)}
    assert any(line.typed.startswith("return items.slice") for line in lines if line.repository == str(world.beta))


def test_eval_reports_per_repository(world: World, tmp_path: Path) -> None:
    result = evaluate(
        world.double, EvalOptions(line_samples=20, block_samples=4, replay_lines=4, threads=1), progress=False
    )
    assert result.repositories == {"alpha": str(world.alpha), "beta": str(world.beta)}
    per_repository = [r for r in result.rows if r.repository != ALL]
    assert {(r.task, r.repository) for r in per_repository if r.system == result.default_system} == {
        ("line", "alpha"),
        ("line", "beta"),
        ("block", "alpha"),
        ("block", "beta"),
    }
    overall = {
        r.task: r.samples
        for r in result.rows
        if r.repository == ALL and r.language == ALL and r.system == result.default_system
    }
    for task, n in overall.items():
        assert sum(r.samples for r in per_repository if r.task == task and r.system == result.default_system) == n
    assert {r.repository for r in result.replay} >= {ALL}
    table = reports.format_table(result)
    assert "per repository:" in table and "alpha" in table and "beta" in table
    written = reports.write(result, tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "## Per repository" in markdown and f"`{world.beta}`" in markdown
    assert "held-out commits of 2 repositories" in markdown
    again = json.loads(written[0].read_text(encoding="utf-8"))
    assert {r["repository"] for r in again["rows"]} == {ALL, "alpha", "beta"}


def test_train_into_an_explicit_folder_leaves_the_current_doubles_alone(world: World, tmp_path: Path) -> None:
    # --out is not a current double of any repository (as for one repository): the pointers stay.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_DATA_HOME", str(world.data_home))
        pointer = artifact.doubles_dir(str(world.beta)) / artifact.CURRENT
        before = pointer.read_text()
        train(world.dataset, replace(TINY, out=tmp_path / "double"), progress=False)
        assert pointer.read_text() == before
