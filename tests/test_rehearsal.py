"""Rehearsal: the standard library's code and the shipped pack's mixed into a base's fine-tune, never a file the
base held out."""

from __future__ import annotations

from pathlib import Path

import pytest

from codedouble.server.contract import prompt
from codedouble.trainer.base import rehearsal_pack, sources
from codedouble.trainer.base.licenses import Licence
from codedouble.trainer.base.pretrain import held_out
from codedouble.trainer.training import rehearsal


def _paths(texts: tuple[str, ...]) -> set[str]:
    return {t.removeprefix(prompt.FILE).split("\n", 1)[0] for t in texts}


def test_rehearsal_makes_up_its_share_of_the_mix_from_files_the_base_did_not_hold_out() -> None:
    personal = 400_000
    got = rehearsal.texts(0.25, personal, seed=3)
    wanted = personal * 0.25 / 0.75
    groups = len(got.languages)  # Python and the pack's four, each cut at the file that reaches its part
    assert groups == 5 and wanted - groups <= got.chars < wanted + groups * (rehearsal.MAX_FILE_CHARS + 1000)
    assert got.source.startswith("python-stdlib ") and got.files == len(_paths(got.texts))
    paths = _paths(got.texts)
    assert not [p for p in paths if held_out(p)]
    assert not [
        p for p in paths if set(p.split("/")[:-1]) & rehearsal.SKIPPED_PARTS or p.split("/")[-1].startswith("test_")
    ]
    assert all(t.startswith(prompt.FILE) and t.endswith(prompt.EOS) for t in got.texts)
    assert rehearsal.texts(0.25, personal, seed=3) == got  # the same mix for the same seed
    assert _paths(rehearsal.texts(0.25, personal, seed=4).texts) != paths


def test_more_rehearsal_than_the_library_holds_repeats_it() -> None:
    _, files = rehearsal._files()
    library = sum(len(text) for _, text in files)
    got = rehearsal.texts(0.5, 2 * library / (1 - rehearsal.PACKED), seed=0)
    python = next(found for found in got.languages if found[0] == "python")
    assert python[1] >= 2 * library - 1 and python[2] == len(files)


def test_no_share_or_an_unlicensed_library_gives_no_rehearsal(monkeypatch: pytest.MonkeyPatch) -> None:
    assert rehearsal.texts(0.0, 1_000_000, seed=0).texts == ()
    assert rehearsal.texts(0.25, 0, seed=0).texts == ()
    stdlib = sources.python_stdlib()
    unknown = sources.Source(stdlib.name, stdlib.version, stdlib.kind, Licence("", "unknown", False), stdlib.files)
    monkeypatch.setattr(sources, "python_stdlib", lambda: unknown)
    got = rehearsal.texts(0.25, 1_000_000, seed=0)  # then only the pack's languages: its licences are known
    assert [lang for lang, _, _ in got.languages] == ["go", "javascript", "rust", "typescript"]
    assert got.source == "rehearsal pack" and got.chars == sum(chars for _, chars, _ in got.languages)


def test_the_rehearsal_files_are_the_standard_library_s_own_or_the_pack_s(tmp_path: Path) -> None:
    stdlib = sources.python_stdlib()
    on_disk = {path for path, _ in stdlib.files}
    packed = {found.path for found in rehearsal_pack.read()[1]}
    paths = _paths(rehearsal.texts(0.25, 100_000, seed=1).texts)
    assert paths <= on_disk | packed and paths & on_disk and paths & packed
