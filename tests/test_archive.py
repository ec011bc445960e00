"""`codedouble export` / `codedouble import`: a double moves as one archive, arrives whole and serves the same,
and an archive that is damaged, cut short, altered or not ours installs nothing."""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_server import make_double

from codedouble.server.contract.artifact import current_artifact, doubles_dir
from codedouble.server.engine import engine as engines
from codedouble.server.engine.document import Request
from codedouble.trainer import cli
from codedouble.trainer.owning import archive
from codedouble.trainer.owning.audit import audit
from conftest import GitRepo

Members = list[tuple[tarfile.TarInfo, bytes]]


@dataclass(frozen=True)
class Trained:
    root: Path
    repo: Path
    dataset: Path
    artifact: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    made = make_double(tmp_path_factory.mktemp("export"))
    return Trained(made.root, made.repo, made.root / "dataset", made.artifact)


@pytest.fixture
def exported(trained: Trained, tmp_path: Path) -> Path:
    out = tmp_path / "double.tar"
    assert cli.main(["export", str(trained.artifact), "--out", str(out)]) == 0
    return out


@pytest.fixture(autouse=True)
def _own_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


def other_repo(tmp_path: Path) -> Path:
    """The repository on the other machine, where the double is imported."""
    repo = GitRepo(tmp_path / "elsewhere")
    repo.write("README", "the same project, cloned elsewhere\n")
    repo.commit("Start")
    repo.close()
    return repo.path


def members(path: Path) -> Members:
    with tarfile.open(path) as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar.getmembers()]  # type: ignore[union-attr]


def write_tar(path: Path, entries: Members) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in entries:
            info = tarfile.TarInfo(info.name) if info.isreg() else info
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def regular(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def import_fails(archive_path: Path, out: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run `codedouble import ARCHIVE --out OUT`; it must fail as a user error and install nothing."""
    capsys.readouterr()
    assert cli.main(["import", str(archive_path), "--out", str(out), *args]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("codedouble import: error: ") and "\n" not in message
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")] == []  # no staging left
    return message


def completions(artifact: Path, repo: Path) -> tuple[str, str]:
    """What the double's model alone and the whole engine complete at a new installer's register line."""
    prefix = (repo / "app" / "plugins.py").read_text(encoding="utf-8")
    prefix += "\n\ndef install_webhooks(handler, url):\n    handler.url = url\n    "
    request = Request("app/plugins.py", prefix, "\n", "line")
    engine = engines.load(artifact, threads=1)
    return engine.model.complete(request), engine.complete(request)


# --- the round trip ------------------------------------------------------------------------------------


def test_an_imported_double_is_current_where_imported_and_completes_as_the_original(
    trained: Trained, exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = other_repo(tmp_path)
    (elsewhere / "src").mkdir()
    monkeypatch.chdir(elsewhere / "src")  # anywhere inside the repository, as `serve` finds it
    assert cli.main(["import", str(exported)]) == 0
    imported = current_artifact(str(elsewhere.resolve()))
    assert imported == doubles_dir(str(elsewhere.resolve())) / trained.artifact.name
    for name in ("model.safetensors", "tokenizer.json", "corpus.jsonl", "config.json"):
        assert (imported / name).read_bytes() == (trained.artifact / name).read_bytes()
    original = completions(trained.artifact, trained.repo)
    assert original[1], "the engine completes something here (the n-gram over the double's corpus at least)"
    assert completions(imported, trained.repo) == original


def test_export_redacts_this_machines_paths_and_says_so(trained: Trained, exported: Path) -> None:
    raw = exported.read_bytes()
    assert str(trained.root).encode() not in raw  # nowhere in the archive: manifest, headers, corpus
    files = dict((m.name, data) for m, data in members(exported))
    manifest = json.loads(files["manifest.json"])
    assert manifest["dataset"]["path"] == "<redacted>/dataset"
    assert manifest["dataset"]["repository"] == "<redacted>/work"
    assert manifest["training"]["out"] == "<redacted>/double"
    assert {"dataset.path", "dataset.repository", "training.out"} <= set(manifest["exported"]["redacted_paths"])
    header = json.loads(files[archive.EXPORT_MANIFEST])
    assert header["redacted_paths"] == manifest["exported"]["redacted_paths"]
    assert (
        manifest["dataset"]["head"] == json.loads((trained.artifact / "manifest.json").read_text())["dataset"]["head"]
    )


def test_redaction_can_be_turned_off(trained: Trained, tmp_path: Path) -> None:
    out = tmp_path / "double.tar.gz"  # and gzip, by the name
    assert cli.main(["export", str(trained.artifact), "--out", str(out), "--no-redact-paths"]) == 0
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    files = dict((m.name, data) for m, data in members(out))
    assert files["manifest.json"] == (trained.artifact / "manifest.json").read_bytes()
    assert cli.main(["import", str(out), "--out", str(tmp_path / "imported")]) == 0
    assert (tmp_path / "imported" / "manifest.json").read_bytes() == files["manifest.json"]


def test_the_archive_holds_the_double_and_nothing_of_this_machine(trained: Trained, exported: Path) -> None:
    got = members(exported)
    assert got[0][0].name == archive.EXPORT_MANIFEST  # first, so import checks every member as it streams
    names = {m.name for m, _ in got}
    expected = {p.name for p in trained.artifact.iterdir() if p.is_file()} | {archive.EXPORT_MANIFEST}
    assert names == expected
    assert all(m.isreg() and m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == "" for m, _ in got)
    assert "feedback.jsonl" not in names


def test_the_eval_report_stays_home(trained: Trained, tmp_path: Path) -> None:
    copy = tmp_path / "double"
    shutil.copytree(trained.artifact, copy)
    (copy / "eval").mkdir()
    (copy / "eval" / "report.json").write_text(json.dumps({"artifact": str(copy)}))
    out = tmp_path / "double.tar"
    assert cli.main(["export", str(copy), "--out", str(out)]) == 0
    assert not [m.name for m, _ in members(out) if m.name.startswith("eval")]


# --- refused archives ----------------------------------------------------------------------------------


def flip_a_byte(name: str) -> Callable[[Members], Members]:
    def change(entries: Members) -> Members:
        return [(m, (d[:100] + bytes([d[100] ^ 1]) + d[101:]) if m.name == name else d) for m, d in entries]

    return change


CHANGES: dict[str, tuple[Callable[[Members], Members], str]] = {
    "flipped weights": (flip_a_byte("model.safetensors"), r"model\.safetensors does not match its SHA-256"),
    "flipped corpus": (flip_a_byte("corpus.jsonl"), r"corpus\.jsonl does not match its SHA-256"),
    "missing member": (
        lambda e: [(m, d) for m, d in e if m.name != "tokenizer.json"],
        r"is missing tokenizer\.json",
    ),
    "extra member": (lambda e: [*e, regular("notes.txt", b"hello")], r"holds notes\.txt, which .* does not list"),
    "repeated member": (lambda e: [*e, e[1]], r"twice"),
    "manifest not first": (lambda e: [*e[1:], e[0]], r"not a codedouble export \(its first member"),
    "traversal": (lambda e: [*e, regular("../evil.txt", b"x")], r"refuses to extract|not a plain relative path"),
    "absolute": (lambda e: [*e, regular("/tmp/evil.txt", b"x")], r"refuses to extract|not a plain relative path"),
}


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_an_altered_archive_installs_nothing_and_names_the_problem(
    change: str, exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    transform, expected = CHANGES[change]
    bad = write_tar(tmp_path / "bad.tar", transform(members(exported)))
    message = import_fails(bad, tmp_path / "imported", capsys)
    assert re.search(expected, message), message
    assert not (tmp_path / "evil.txt").exists()


def test_a_header_that_lists_a_traversing_member_is_refused(
    exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = members(exported)
    header = json.loads(entries[0][1])
    header["members"]["../evil.txt"] = {"sha256": "0" * 64, "size": 1}
    entries[0] = regular(archive.EXPORT_MANIFEST, json.dumps(header).encode())
    message = import_fails(write_tar(tmp_path / "bad.tar", entries), tmp_path / "imported", capsys)
    assert "'../evil.txt', which is not a plain relative path" in message


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.DIRTYPE])
def test_links_devices_and_directories_are_refused(
    kind: bytes, exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entries = members(exported)
    odd = tarfile.TarInfo("tokenizer.json" if kind != tarfile.DIRTYPE else "sub")
    odd.type, odd.linkname = kind, "config.json" if kind == tarfile.LNKTYPE else "/etc/passwd"
    entries = [(m, d) for m, d in entries if m.name != "tokenizer.json"] + [(odd, b"")]
    message = import_fails(write_tar(tmp_path / "bad.tar", entries), tmp_path / "imported", capsys)
    assert "refuses to extract" in message or "regular files only" in message, message


def last_data_byte(path: Path) -> int:
    """Where the last member's data ends in an uncompressed tar (after it come only the zero blocks that mark
    the end, which carry nothing: an archive cut among them is still whole)."""
    with tarfile.open(path) as tar:
        last = tar.getmembers()[-1]
    return last.offset_data + last.size


CUTS: dict[str, Callable[[Path], int]] = {
    "tar half": lambda p: p.stat().st_size // 2,
    "tar last byte": lambda p: last_data_byte(p) - 1,
    "gz half": lambda p: p.stat().st_size // 2,
    "gz 90%": lambda p: p.stat().st_size * 9 // 10,
}


@pytest.mark.parametrize("cut", CUTS, ids=list(CUTS))
def test_a_truncated_archive_installs_nothing(
    cut: str, trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = tmp_path / ("double.tar.gz" if cut.startswith("gz") else "double.tar")
    assert cli.main(["export", str(trained.artifact), "--out", str(whole)]) == 0
    short = tmp_path / f"cut-{whole.name}"
    short.write_bytes(whole.read_bytes()[: CUTS[cut](whole)])
    message = import_fails(short, tmp_path / "imported", capsys)
    assert "truncated" in message, message


@pytest.mark.parametrize("what", ["foreign tar", "not a tar", "empty"])
def test_what_is_not_an_export_is_refused(what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "thing.tar"
    if what == "foreign tar":
        write_tar(path, [regular("README.md", b"# hello\n"), regular("model.safetensors", b"weights")])
    else:
        path.write_bytes(b"PK\x03\x04 a zip, say" if what == "not a tar" else b"")
    message = import_fails(path, tmp_path / "imported", capsys)
    assert "is not a codedouble export" in message, message


# --- the target ----------------------------------------------------------------------------------------


def test_an_existing_target_is_refused_unless_forced_and_a_rerun_is_no_conflict(
    trained: Trained, exported: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "imported"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"another double")
    assert cli.main(["import", str(exported), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out} already holds a double; pass --force to replace it, or --out DIR" in err
    assert (out / "model.safetensors").read_bytes() == b"another double"
    assert cli.main(["import", str(exported), "--out", str(out), "--force"]) == 0
    assert (out / "model.safetensors").read_bytes() == (trained.artifact / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert cli.main(["import", str(exported), "--out", str(out)]) == 0  # the same double again: nothing to do
    assert "already installed" in capsys.readouterr().err


def test_import_outside_a_repository_asks_for_repo_or_out(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = tmp_path / "nowhere"
    nowhere.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.chdir(nowhere)
    assert cli.main(["import", str(exported)]) == 2
    assert "is not inside a git repository" in capsys.readouterr().err


def test_export_of_a_folder_that_is_no_double_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["export", str(tmp_path), "--out", str(tmp_path.parent / "x.tar")]) == 2
    assert "is not a codedouble artifact" in capsys.readouterr().err


def test_an_imported_double_passes_audit_on_the_other_machine(trained: Trained, exported: Path, tmp_path: Path) -> None:
    """What `audit` can check travels with the double: its files' hashes and the forgets it honoured; what
    stayed home (the dataset) is reported as not checked, not as a failure."""
    installed = tmp_path / "installed"
    assert cli.main(["import", str(exported), "--out", str(installed)]) == 0
    report = audit(installed)
    checks = {c.name: c.status for c in report.checks}
    assert report.ok, report.render()
    assert checks["files"] == "ok" and checks["secrets"] == "ok" and checks["forgotten"] == "ok"
    assert checks["trained after forget"] == "not checked"  # the dataset did not travel
