"""The command line's one rule for errors: a user's problem (any CodedoubleError) is one line on stderr and
exit status 2; a bug in codedouble is not dressed up as one, it surfaces with its traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from codedouble.server.contract.errors import CodedoubleError
from codedouble.trainer import cli
from codedouble.trainer.mining import miner


def test_a_user_error_is_one_line_and_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-repository"
    assert cli.main(["mine", str(missing), "--out", str(tmp_path / "ds"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == f"codedouble mine: error: {missing} does not exist\n"


def test_every_user_facing_error_shares_the_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from codedouble.server.contract.artifact import ArtifactError
    from codedouble.trainer.mining.gitio import GitError

    for error in (GitError("git log failed"), ArtifactError("not an artifact")):

        def fail(*args: object, _error: CodedoubleError = error, **kwargs: object) -> None:
            raise _error

        monkeypatch.setattr(miner, "mine", fail)
        assert cli.main(["mine", str(tmp_path), "--out", str(tmp_path / "ds")]) == 2
        assert capsys.readouterr().err == f"codedouble mine: error: {error}\n"


@pytest.mark.parametrize("bug", [ValueError("a bug"), KeyError("manifest"), TypeError("a bug")])
def test_a_programming_error_surfaces_with_its_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bug: Exception
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise bug

    monkeypatch.setattr(miner, "mine", broken)
    with pytest.raises(type(bug)):
        cli.main(["mine", str(tmp_path), "--out", str(tmp_path / "ds")])
