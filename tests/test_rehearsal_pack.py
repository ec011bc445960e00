"""The rehearsal pack: a licence-carrying sample of the base's corpus in the languages a machine lacks, shipped
with the base and mixed into every fine-tune of it."""

from __future__ import annotations

import json
import lzma
import sys
import zlib
from pathlib import Path

import pytest

from codedouble.server.contract import prompt
from codedouble.trainer import cli
from codedouble.trainer.base import rehearsal_pack, sources
from codedouble.trainer.base.licenses import Licence, spdx_permissive
from codedouble.trainer.base.pretrain import held_out
from codedouble.trainer.base.sources import Source
from codedouble.trainer.training import rehearsal

MIT = Licence("MIT", "package.json", True)


def _go(i: int) -> str:
    return f"package p{i}\n\n// file {i}\nfunc F{i}(x int) int {{\n\treturn x + {i}\n}}\n"


def _js(i: int) -> str:
    return f"// file {i}\nfunction f{i}(x) {{\n  return x * {i};\n}}\nmodule.exports = f{i};\n"


def _paths_where(source: str, prefix: str, suffix: str, held: bool, count: int) -> list[str]:
    """`count` paths `prefix<n>suffix` of `source` that the base did (or did not) hold out."""
    found: list[str] = []
    n = 0
    while len(found) < count:
        path = f"{prefix}{n}{suffix}"
        if held_out(f"{source}/{path}") == held:
            found.append(path)
        n += 1
    return found


def _source(tmp_path: Path, name: str, paths: list[str], text, notice: str | None) -> Source:  # type: ignore[no-untyped-def]
    root = tmp_path / name
    files = []
    for i, path in enumerate(paths):
        where = root / "files" / path
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text(text(zlib.crc32(f"{name}/{i}".encode()) % 10**6), encoding="utf-8")
        files.append((f"{name}/{path}", where))
    notices: tuple[Path, ...] = ()
    if notice is not None:
        (root / "LICENSE").write_text(notice, encoding="utf-8")
        notices = (root / "LICENSE",)
    return Source(name, "1.0", "npm", MIT, tuple(files), notices=notices)


@pytest.fixture
def sources_here(tmp_path: Path) -> list[Source]:
    go_kept = _paths_where("gosrc", "src/a", ".go", held=False, count=30)
    go_held = _paths_where("gosrc", "src/a", ".go", held=True, count=2)
    return [
        _source(tmp_path, "gosrc", go_kept + go_held, _go, "Copyright GO-AUTHORS-MARKER\nBSD terms"),
        _source(tmp_path, "jslib", _paths_where("jslib", "lib/b", ".js", held=False, count=6), _js, "MIT JSLIB-MARKER"),
        _source(tmp_path, "nolicence", _paths_where("nolicence", "lib/c", ".js", held=False, count=5), _js, None),
        _source(tmp_path, "pysrc", ["mod.py"], lambda i: f"def f():\n    return {i}\n", "PSF"),
    ]


def test_a_pack_holds_a_budget_of_each_language_never_a_held_out_file_and_ships_each_sources_licence(
    sources_here: list[Source], tmp_path: Path
) -> None:
    one_go_file = len(_go(123456).encode())
    out = tmp_path / "pack"
    manifest = rehearsal_pack.build(sources_here, out, bytes_per_language=10 * one_go_file, seed=1, command="cmd")
    read, files = rehearsal_pack.read(out)
    assert read == manifest and manifest["command"] == "cmd"
    assert {f.language for f in files} == {"go", "javascript"}  # Python is the machine's own standard library
    assert not [f for f in files if held_out(f.path)]
    assert manifest["left_out"] == {
        "files the base held out": 2,
        "sources without a licence file to ship": ["nolicence"],
    }
    go = [f for f in files if f.language == "go"]
    assert 10 <= len(go) <= 11 and manifest["languages"]["go"]["files"] == len(go)  # cut at the file that reaches it
    assert manifest["languages"]["javascript"]["files"] == 6  # fewer than the budget: all of them
    assert [s["name"] for s in manifest["sources"]] == ["gosrc", "jslib"]
    assert sum(s["files"] for s in manifest["sources"]) == len(files) == manifest["files"]
    notice = (out / rehearsal_pack.NOTICE).read_text(encoding="utf-8")
    assert "GO-AUTHORS-MARKER" in notice and "JSLIB-MARKER" in notice and "PSF" not in notice
    # The same sources and seed give the same pack; another seed, another sample.
    again = rehearsal_pack.build(sources_here, tmp_path / "again", bytes_per_language=10 * one_go_file, seed=1)
    assert again["texts_sha256"] == manifest["texts_sha256"]
    other = rehearsal_pack.build(sources_here, tmp_path / "other", bytes_per_language=10 * one_go_file, seed=2)
    assert other["texts_sha256"] != manifest["texts_sha256"]


def test_a_pack_is_replaced_whole_and_a_damaged_or_missing_one_is_a_clear_error(
    sources_here: list[Source], tmp_path: Path
) -> None:
    out = tmp_path / "pack"
    rehearsal_pack.build(sources_here, out, bytes_per_language=1)
    first = sorted(f.path for f in rehearsal_pack.read(out)[1])
    rehearsal_pack.build(sources_here, out, bytes_per_language=10**9)
    assert len(rehearsal_pack.read(out)[1]) > len(first)
    assert sorted(p.name for p in out.iterdir()) == ["NOTICE", "manifest.json", "texts.jsonl.xz"]

    data = bytearray((out / rehearsal_pack.TEXTS).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / rehearsal_pack.TEXTS).write_bytes(bytes(data))
    with pytest.raises(rehearsal_pack.RehearsalPackError, match="damaged"):
        rehearsal_pack.read(out)
    (out / rehearsal_pack.TEXTS).unlink()
    with pytest.raises(rehearsal_pack.RehearsalPackError, match="texts.jsonl.xz is missing"):
        rehearsal_pack.read(out)
    with pytest.raises(rehearsal_pack.RehearsalPackError, match="no rehearsal pack"):
        rehearsal_pack.read(tmp_path / "nowhere")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / rehearsal_pack.MANIFEST).write_text('{"format": 0}', encoding="utf-8")
    with pytest.raises(rehearsal_pack.RehearsalPackError, match="format 1"):
        rehearsal_pack.read(tmp_path / "old")


def test_sources_with_nothing_to_pack_are_a_clear_error(sources_here: list[Source], tmp_path: Path) -> None:
    with pytest.raises(rehearsal_pack.RehearsalPackError, match="none of these sources"):
        rehearsal_pack.build([s for s in sources_here if s.name in {"nolicence", "pysrc"}], tmp_path / "p")
    assert not (tmp_path / "p").exists()


def test_npm_and_debian_sources_name_their_licence_files(tmp_path: Path) -> None:
    root = tmp_path / "node_modules" / "pkg"
    (root / "lib").mkdir(parents=True)
    (root / "package.json").write_text(json.dumps({"name": "pkg", "version": "1", "license": "MIT"}))
    for name in ("LICENSE.md", "NOTICE", "license-checker.js", "lib/LICENSE"):
        (root / name).write_text("x", encoding="utf-8")
    (found,) = sources.npm_packages(tmp_path / "node_modules")
    assert [p.name for p in found.notices] == ["LICENSE.md", "NOTICE"]
    assert sources.python_stdlib().notices[0].name == "LICENSE.txt"


# --- the shipped pack ------------------------------------------------------------------------------------------


def test_the_shipped_pack_holds_the_other_languages_under_permissive_licences_with_their_notices() -> None:
    manifest, files = rehearsal_pack.read()
    assert set(manifest["languages"]) == {"go", "javascript", "rust", "typescript"}
    assert all(300_000 <= v["bytes"] <= 700_000 for v in manifest["languages"].values())
    assert not [f.path for f in files if held_out(f.path)]
    notice = (rehearsal_pack.SHIPPED / rehearsal_pack.NOTICE).read_text(encoding="utf-8")
    for entry in manifest["sources"]:
        assert spdx_permissive(entry["licence"]), entry
        assert f"\n{entry['name']} {entry['version']} (" in notice
    assert {f.source for f in files} == {s["name"] for s in manifest["sources"]}
    size = (rehearsal_pack.SHIPPED / rehearsal_pack.TEXTS).stat().st_size
    assert size < 1_000_000  # it ships in every install
    assert len(lzma.decompress((rehearsal_pack.SHIPPED / rehearsal_pack.TEXTS).read_bytes())) > 2 * size


def test_a_fine_tunes_rehearsal_mixes_the_packs_languages_beside_the_standard_librarys_python() -> None:
    personal = 1_000_000
    got = rehearsal.texts(0.5, personal, seed=0)
    per = {lang: chars for lang, chars, _ in got.languages}
    assert set(per) == {"python", "go", "javascript", "rust", "typescript"}
    packed = personal * rehearsal.PACKED
    for lang in ("go", "javascript", "rust", "typescript"):
        assert packed / 4 <= per[lang] < packed / 4 + rehearsal.MAX_FILE_CHARS
    assert personal * (1 - rehearsal.PACKED) <= per["python"]
    assert got.chars == sum(per.values())
    assert got.pack == rehearsal_pack.read()[0]["texts_sha256"]
    record = got.to_dict()
    assert record["languages"]["go"]["chars"] == per["go"] and record["pack"] == got.pack
    paths = {t.removeprefix(prompt.FILE).split("\n", 1)[0] for t in got.texts}
    shipped = {f.path for f in rehearsal_pack.read()[1]}
    assert paths & shipped and not [p for p in paths if held_out(p)]


def test_the_rehearsal_pack_command_writes_a_pack_from_node_modules(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    nm = tmp_path / "node_modules"
    for i, name in enumerate(["one", "two"]):
        root = nm / name
        root.mkdir(parents=True)
        (root / "package.json").write_text(json.dumps({"name": name, "version": "2.0", "license": "ISC"}))
        (root / "LICENSE").write_text(f"ISC licence of {name}\n", encoding="utf-8")
        for j in range(3):
            (root / f"m{j}.js").write_text(_js(10 * i + j), encoding="utf-8")
    out = tmp_path / "pack"
    argv = ["base", "rehearsal-pack", "--out", str(out), "--node-modules", str(nm), "--kb-per-language", "1"]
    monkeypatch.setattr(sys, "argv", ["codedouble", *argv])
    assert cli.main([*argv, "--jobs", "1"]) == 0
    manifest, files = rehearsal_pack.read(out)
    assert "javascript" in capsys.readouterr().err
    assert manifest["command"].startswith("codedouble base rehearsal-pack --out ")
    assert {f.language for f in files} == {"javascript"} and files
    assert cli.main(["base", "rehearsal-pack", "--out", str(out), "--node-modules", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert rehearsal_pack.read(out)[0] == manifest  # nothing lost
