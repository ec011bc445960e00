"""`codedouble forget` and `codedouble audit` on a history with a private function planted in one commit.

The history is built here; a tiny double is trained before the forget (it holds the private function) and
another after (it must not). Every check reads the files on disk: the private function's name must not occur
in any file of the dataset or of the new double, and audit must prove it from fingerprints.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from lsprotocol import types
from test_server import READY_SECONDS, TINY, start_server, status, stop_server, wait_for_state

from codedouble.server.contract import artifact, tombstones
from codedouble.server.contract.tombstones import Rule
from codedouble.trainer import cli
from codedouble.trainer.mining import dataset
from codedouble.trainer.mining.miner import FORGOTTEN, MineOptions, mine
from codedouble.trainer.owning import audit as audit_mod
from codedouble.trainer.owning.forget import ForgetError, _check_prefixes, forget
from codedouble.trainer.training import loop
from codedouble.trainer.training.train import TrainError, _check_data_seen, _note_data_seen, train
from conftest import ALICE, BOB, GitRepo, isolate_git

PRIVATE = "acme_private_pricing"
PRIVATE_TEXT = f"def {PRIVATE}(order):\n    return order.total * 0.8125 + SECRET_MARGIN\n"


def _helpers(n: int, stem: str) -> str:
    return "\n\n".join(
        f"def {stem}_{i}(items, key=None):\n    result = [x for x in items if x]\n    return sorted(result, key=key)\n"
        for i in range(n)
    )


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Four commits by Alice (the third adds the private function in its own file and touches a public one)
    and one by Bob; mined with --all-authors."""
    root = tmp_path_factory.mktemp("forget")
    with pytest.MonkeyPatch.context() as mp:
        isolate_git(mp)
        repo = GitRepo(root / "repo")
        try:
            repo.write("app/util.py", _helpers(6, "collect"))
            repo.commit("Collect helpers")
            repo.write("app/text.py", _helpers(6, "render"))
            repo.commit("Render helpers")
            repo.write("app/pricing.py", PRIVATE_TEXT)
            repo.write("app/util.py", _helpers(7, "collect"))
            private = repo.commit("Pricing")
            repo.write("app/more.py", _helpers(6, "gather"))
            repo.commit("Gather helpers", author=BOB)
            repo.write("app/last.py", _helpers(6, "order"))
            repo.commit("Order helpers")
        finally:
            repo.close()
    return {"root": root, "repo": root / "repo", "private": private}


def _mined(history: dict[str, object], tmp_path: Path) -> Path:
    out = tmp_path / "dataset"
    mine(history["repo"], out, MineOptions(all_authors=True), progress=False)  # type: ignore[arg-type]
    return out


def _files_text(folder: Path) -> str:
    return "".join(p.read_text(encoding="utf-8", errors="replace") for p in folder.rglob("*") if p.is_file())


def test_rule_matches_commit_prefix_glob_author_any_case_and_whole_days() -> None:
    rule = Rule(commits=("abc123",), paths=("secret/*",), authors=("Bob@Example.com",))
    when = "2024-03-31T23:30:00-02:00"  # 2024-04-01 01:30 UTC
    assert rule.matches("abc123ff", "x.py", None, "a@b", when)
    assert rule.matches("f" * 40, "secret/deep/x.py", None, "a@b", when)  # `*` crosses folders, as --exclude
    assert rule.matches("f" * 40, "new.py", "secret/old.py", "a@b", when)  # the old path of a rename
    assert rule.matches("f" * 40, "x.py", None, "bob@example.com", when)
    assert not rule.matches("f" * 40, "x.py", None, "a@b", when)
    days = Rule(since="2024-04-01", until="2024-04-01")
    assert days.matches("f" * 40, "x.py", None, "a@b", when)  # UTC day, inclusive at both ends
    assert not days.matches("f" * 40, "x.py", None, "a@b", "2024-04-02T00:00:01+00:00")
    assert Rule(since="2024-04-02").matches("f" * 40, "x.py", None, "a@b", "2025-01-01T00:00:00+00:00")


def test_a_rule_of_one_repository_looks_at_no_other() -> None:
    rule = Rule(paths=("secret/*",), repositories=("/src/work",))
    assert rule.matches("f" * 40, "secret/x.py", None, "a@b", "2024-01-01T00:00:00+00:00", "/src/work")
    assert not rule.matches("f" * 40, "secret/x.py", None, "a@b", "2024-01-01T00:00:00+00:00", "/src/home")
    assert rule.describe() == "path secret/* in /src/work"
    assert Rule.from_dict(rule.to_dict()) == rule
    old = {k: v for k, v in rule.to_dict().items() if k != "repositories"}  # a tombstone from before scoping
    assert Rule.from_dict(old).matches("f" * 40, "secret/x.py", None, "a@b", "2024-01-01T00:00:00+00:00", "/src/home")


def test_audit_checks_a_rule_of_one_repository_by_fingerprints_only(tmp_path: Path) -> None:
    """The corpus does not say which repository an entry came from: a path forgotten in one repository may be
    the same path of another, kept, so only the removed texts' fingerprints are checked."""
    from codedouble.server.contract import corpus, tombstones
    from codedouble.trainer.owning import audit as audits

    kept = corpus.Snippet("secret/x.py", "python", "def kept():\n    return 1\n")
    for scope, expected in (((), "failed"), (("/src/work",), "ok")):
        rule = Rule(paths=("secret/*",), repositories=scope)
        grave = tombstones.Tombstone(1, "2026-01-02T03:04:05+00:00", rule, records=1)
        report = audits.Audit(tmp_path)
        audits._forgotten(report, [grave], [kept])
        assert [c.status for c in report.checks] == [expected]


def test_forget_removes_the_records_everywhere_and_keeps_the_rest(history, tmp_path: Path, capsys) -> None:
    out = _mined(history, tmp_path)
    before = list(dataset.load_records(out))
    assert PRIVATE in _files_text(out)
    private = str(history["private"])

    assert cli.main(["forget", str(out), "--commit", private[:10]]) == 0
    printed = capsys.readouterr().out
    assert f"commit {private[:12]}" in printed and "app/pricing.py" in printed and "tombstone 1" in printed

    after = list(dataset.load_records(out))
    assert [r for r in before if r.commit != private] == after  # the rest, whole and in order
    assert PRIVATE not in _files_text(out)  # not in a shard, the manifest or the report
    manifest = dataset.read_manifest(out)
    assert manifest is not None
    [tomb] = tombstones.from_manifest(manifest)
    assert tomb.commits == (private,) and tomb.records == len(before) - len(after) == 2
    planted = next(r.after for r in before if r.path == "app/pricing.py")
    assert planted is not None and PRIVATE in planted and tombstones.text_hash(planted) in tomb.text_hashes
    assert sorted(p.name for p in (out / "records").iterdir()) == sorted(manifest["shards"])  # old shard gone
    assert manifest["counts"]["records"][FORGOTTEN] == 2
    assert manifest["counts"]["records"]["kept"] == len(after)
    assert "forgotten (codedouble forget)" in (out / "report.txt").read_text()


def test_later_mines_incremental_and_fresh_never_bring_it_back(history, tmp_path: Path) -> None:
    source = GitRepo(history["repo"])  # type: ignore[arg-type]
    repo = GitRepo(source.clone(tmp_path / "clone"))  # its own copy: the history is shared by the module
    source.close()
    out = tmp_path / "dataset"
    mine(repo.path, out, MineOptions(all_authors=True), progress=False)
    forget(out, Rule(paths=("app/pricing.py",), authors=(BOB.email,)))
    kept = list(dataset.load_records(out))
    assert kept and not any(r.path == "app/pricing.py" or r.author_email == BOB.email for r in kept)
    try:
        repo.write("app/pricing.py", PRIVATE_TEXT + "\n\ndef discount(order):\n    return 0\n")
        repo.write("app/fresh.py", _helpers(2, "fresh"))
        repo.commit("Touch pricing again", author=ALICE)
        incremental = mine(repo.path, out, MineOptions(all_authors=True), progress=False)
        assert incremental.incremental
        records = list(dataset.load_records(out))
        assert any(r.path == "app/fresh.py" for r in records)  # new work comes in
        assert not any(r.path == "app/pricing.py" for r in records)  # the forgotten path never again
        assert incremental.counts.records[FORGOTTEN] >= 1

        mine(repo.path, out, MineOptions(all_authors=True, fresh=True), progress=False)
        fresh = list(dataset.load_records(out))
        assert not any(r.path == "app/pricing.py" or r.author_email == BOB.email for r in fresh)
        assert PRIVATE not in _files_text(out)
        manifest = dataset.read_manifest(out)
        assert manifest is not None and len(tombstones.from_manifest(manifest)) == 1
    finally:
        repo.close()


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (Rule(), "say what to forget"),
        (Rule(commits=("zz",)), "hexadecimal"),
        (Rule(since="last tuesday"), "not an ISO date"),
    ],
)
def test_a_bad_request_is_refused_and_changes_nothing(history, tmp_path: Path, rule: Rule, message: str) -> None:
    out = _mined(history, tmp_path)
    snapshot = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(ForgetError, match=message):
        forget(out, rule)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot


def test_an_ambiguous_commit_prefix_is_refused() -> None:
    commits: dict[str, set[str]] = {"abcd1111" + "0" * 32: set(), "abcd2222" + "0" * 32: set()}
    with pytest.raises(ForgetError, match="fits 2 commits"):
        _check_prefixes(commits, Rule(commits=("abcd",)))
    _check_prefixes(commits, Rule(commits=("abcd1",)))


def test_dry_run_changes_nothing(history, tmp_path: Path, capsys) -> None:
    out = _mined(history, tmp_path)
    snapshot = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert cli.main(["forget", str(out), "--path", "app/pricing.py", "--dry-run"]) == 0
    assert "would remove 1 change record" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot


def test_resume_refuses_a_checkpoint_that_saw_forgotten_data(tmp_path: Path) -> None:
    run = loop.Run(rank=0, world_size=1, device=None, distributed=False)  # type: ignore[arg-type]
    work = tmp_path / ".double.training"
    _note_data_seen(work, [], run)  # a fresh run notes it saw no tombstone
    grave = tombstones.Tombstone(1, "2026-01-02T03:04:05+00:00", Rule(commits=("abcd",)), records=3)
    with pytest.raises(TrainError, match="removed with `codedouble forget` on 2026-01-02"):
        _check_data_seen(work, [grave])
    _check_data_seen(work, [replace(grave, records=0)])  # it removed nothing: fine
    _note_data_seen(work, [grave], run)
    _check_data_seen(work, [grave])  # a run that started after the forget honoured it


@pytest.fixture(scope="module")
def doubles(history, tmp_path_factory: pytest.TempPathFactory, one_torch_thread) -> dict[str, Path]:
    """A double trained before the forget (now stale) and one trained after, in the data directory."""
    root = tmp_path_factory.mktemp("doubles")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_DATA_HOME", str(root / "xdg"))
        out = root / "dataset"
        mine(history["repo"], out, MineOptions(all_authors=True), progress=False)  # type: ignore[arg-type]
        old = train(out, replace(TINY, heldout_fraction=0.0), progress=False).artifact
        assert PRIVATE in (old / "corpus.jsonl").read_text()
        result = forget(out, Rule(commits=(str(history["private"]),)))
        assert result.stale == [old]
        new = train(out, replace(TINY, heldout_fraction=0.0), progress=False).artifact
    return {"root": root, "dataset": out, "old": old, "new": new}


def test_the_double_trained_before_is_marked_stale_and_fails_audit(doubles, capsys) -> None:
    manifest = artifact.read_manifest(doubles["old"])
    assert manifest[tombstones.STALE_KEY]["tombstone"] == 1
    assert cli.main(["audit", str(doubles["old"])]) == 1
    printed = capsys.readouterr().out
    assert "FAILED  forgotten: 2 forgotten definition(s) still in the corpus (app/pricing.py, app/util.py)" in printed
    assert "FAILED  trained after forget" in printed
    assert "ok      files:" in printed  # marking it stale did not touch a hashed file


def test_the_double_trained_after_holds_none_of_it_and_audit_proves_it(doubles, capsys) -> None:
    assert PRIVATE not in _files_text(doubles["new"])
    assert cli.main(["audit", str(doubles["new"])]) == 0
    printed = capsys.readouterr().out
    assert "all checks hold" in printed
    assert "forgotten #1" in printed and "ok      forgotten: none of the 2 forgotten definitions" in printed
    assert "ok      secrets: none found" in printed
    assert "ok      base: trained from scratch" in printed
    manifest = artifact.read_manifest(doubles["new"])
    assert [t["id"] for t in manifest[tombstones.ARTIFACT_KEY]] == [1]
    assert tombstones.stale(manifest) is None


def test_audit_without_its_dataset_still_proves_absence_from_the_double_alone(doubles, tmp_path: Path) -> None:
    report = audit_mod.audit(doubles["new"], dataset=tmp_path / "gone")
    checks = {c.name: c for c in report.checks}
    assert report.ok
    assert checks["forgotten"].status == "ok"  # from the fingerprints the double carries
    assert checks["forgotten habits"].status == "ok"  # its recurring rewrites were mined after the forget
    assert checks["trained after forget"].status == "not checked"


def test_audit_names_a_changed_file_and_a_secret(doubles, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(doubles["new"], copy)
    corpus = copy / "corpus.jsonl"
    key = "AKIA" + "Z7Q2XK4MN8PLR3VT"  # an AWS access key id shape, split so no scanner trips on this file
    lines = corpus.read_text().splitlines()
    entry = {"path": "app/leak.py", "language": "python", "kind": "definition", "text": f'KEY = "{key}"\n'}
    corpus.write_text("\n".join([*lines, json.dumps(entry)]) + "\n")
    report = audit_mod.audit(copy)
    checks = {c.name: c for c in report.checks}
    assert not report.ok
    assert checks["files"].status == "failed" and "corpus.jsonl changed" in checks["files"].detail
    assert checks["secrets"].status == "failed" and "app/leak.py" in checks["secrets"].detail
    assert key not in report.render()  # the report names where, never the value


def test_the_server_warns_once_about_a_stale_double_and_can_refuse_it(doubles) -> None:
    async def scenario() -> None:
        root, workspace = doubles["root"], doubles["root"] / "ws"
        workspace.mkdir(exist_ok=True)
        client = await start_server(root, workspace, "--artifact", str(doubles["old"]))
        try:
            got = await wait_for_state(client, {"ready"})
            assert got["state"] == "ready" and got["stale"]["tombstone"] == 1
            warnings = [m.message for m in client.messages if "trained on data you removed" in m.message]
            assert len(warnings) == 1 and "codedouble train" in warnings[0]
            client.workspace_did_change_configuration(
                types.DidChangeConfigurationParams(settings={"codedouble": {"refuseStale": True}})
            )
            refused = await wait_for_state(client, {"stale"})
            assert refused["state"] == "stale" and "refuseStale" in refused["problem"]
            assert refused["options"]["refuseStale"] is True
        finally:
            await stop_server(client)
        client = await start_server(root, workspace, "--artifact", str(doubles["new"]))
        try:
            got = await wait_for_state(client, {"ready"})
            assert got["stale"] is None
            assert not [m for m in client.messages if "trained on data you removed" in m.message]
            assert (await status(client))["state"] == "ready"
        finally:
            await stop_server(client)

    asyncio.run(asyncio.wait_for(scenario(), 4 * READY_SECONDS))


def _state(out: Path) -> list[str]:
    """The dataset as a reader sees it: every record's commit and path, in order (raises if half-written)."""
    return [f"{r.commit}:{r.path}" for r in dataset.load_records(out)]


def test_kill_9_during_forget_leaves_the_old_or_the_new_dataset_and_a_rerun_completes(history, tmp_path: Path) -> None:
    template = _mined(history, tmp_path)
    private = str(history["private"])
    old = _state(template)
    new = [entry for entry in old if not entry.startswith(private)]
    command = [sys.executable, "-m", "codedouble.trainer.cli", "forget"]

    def marker(kind: str, out: Path) -> bool:
        records = out / "records"
        if kind == "staging":  # the new shard being written under its temporary name
            return any(p.name.endswith(".tmp") for p in records.iterdir())
        if kind == "renamed":  # the new shard in place, the manifest maybe not yet
            return any("-forget" in p.name and p.suffix == ".jsonl" for p in records.iterdir())
        return False

    timing = tmp_path / "timing"
    shutil.copytree(template, timing)
    started = time.monotonic()
    subprocess.run([*command, str(timing), "--commit", private], check=True, stdout=subprocess.DEVNULL)
    took = time.monotonic() - started  # kills spread over a whole run's time, interpreter start included

    outcomes = []
    for point in ("staging", "renamed", *(took * f for f in (0.1, 0.3, 0.5, 0.7, 0.85, 0.95))):
        out = tmp_path / f"kill-{point}"
        shutil.copytree(template, out)
        proc = subprocess.Popen([*command, str(out), "--commit", private], stdout=subprocess.DEVNULL)
        started = time.monotonic()
        while proc.poll() is None and time.monotonic() - started < 30:
            if isinstance(point, float) and time.monotonic() - started >= point:
                break
            if isinstance(point, str) and marker(point, out):
                break
            time.sleep(0.001)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = _state(out)  # readable: every listed shard is there and whole
        assert state in (old, new), point
        outcomes.append("new" if state == new else "old")
        rerun = subprocess.run([*command, str(out), "--commit", private], capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr
        assert _state(out) == new
        manifest = dataset.read_manifest(out)
        assert manifest is not None
        assert sorted(p.name for p in (out / "records").iterdir()) == sorted(manifest["shards"])  # nothing stray
        assert sum(t.records for t in tombstones.from_manifest(manifest)) == len(old) - len(new)
        assert PRIVATE not in _files_text(out)
    assert "old" in outcomes  # the early kills did land before the commit point


def test_eval_reports_written_into_the_double_later_are_not_part_of_it(doubles, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(doubles["new"], copy)
    (copy / "eval").mkdir()
    (copy / "eval" / "report.md").write_text("| system | EM |\n")  # what `codedouble eval` writes by default
    assert {c.name: c.status for c in audit_mod.audit(copy).checks}["files"] == "ok"
    (copy / "notes.txt").write_text("added by hand")
    files = {c.name: c for c in audit_mod.audit(copy).checks}["files"]
    assert files.status == "failed" and files.detail == "notes.txt not recorded"
