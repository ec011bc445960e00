"""The typing-replay task: simulated users typing held-out lines against systems whose answers are known."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from codedouble.server.engine.document import Request
from codedouble.trainer.evaluation import replay
from codedouble.trainer.evaluation.replay import Line, ReplayRow, Typed, accepted_words, aggregate, type_line
from codedouble.trainer.evaluation.report import format_markdown, format_table, plot
from codedouble.trainer.evaluation.summary import EvalReport, Row
from conftest import ALICE, GitRepo, isolate_git

BEFORE = "import logging\n\n\ndef install(handler):\n    "
TYPED = "registry.register(handler, priority=HIGH)"
AFTER = "\n    return handler\n"
LINE = Line("abc:app.py:5", "python", "app.py", BEFORE, TYPED, AFTER)


def rest_of(request: Request) -> str:
    """What the user has yet to type on the line at the request's cursor."""
    return TYPED[len(request.prefix) - len(BEFORE) :]


def oracle(request: Request) -> str:
    return rest_of(request)


def silent(request: Request) -> str:
    return ""


def wrong(request: Request) -> str:
    return "print(nothing)"


def counted(answer: Callable[[Request], str]) -> tuple[Callable[[Request], str], list[Request]]:
    calls: list[Request] = []

    def complete(request: Request) -> str:
        calls.append(request)
        return answer(request)

    return complete, calls


@pytest.mark.parametrize(
    ("suggestion", "rest", "taken"),
    [
        ("foo(bar, baz)", "foo(bar, qux)", len("foo(bar,")),  # whole words while they match
        ("foo(bar, qux)", "foo(bar, qux)", len("foo(bar, qux)")),
        ("fob", "foo(bar)", 0),  # a word only part of which matches is not taken
        ("", "foo", 0),
        ("foo  # note", "foo", len("foo")),
        ("x = 1\ny = 2", "x = 1", len("x = 1")),  # only the first line is offered word by word
    ],
)
def test_the_word_user_takes_whole_matching_words(suggestion: str, rest: str, taken: int) -> None:
    assert accepted_words(suggestion, rest) == taken


def test_an_oracle_saves_the_whole_line_at_the_first_keystroke() -> None:
    for user in replay.USERS:
        result = type_line(oracle, "oracle", LINE, user)
        assert (result.chars, result.saved, result.requests, result.shown, result.right) == (
            len(TYPED),
            len(TYPED),
            1,
            1,
            1,
        )


def test_a_silent_system_saves_nothing_and_is_asked_at_every_keystroke() -> None:
    complete, calls = counted(silent)
    result = type_line(complete, "silent", LINE, "line")
    assert (result.saved, result.shown, result.right, result.requests) == (0, 0, 0, len(TYPED))
    assert [len(c.prefix) - len(BEFORE) for c in calls] == list(range(len(TYPED)))
    assert all(c.suffix == AFTER and c.path == "app.py" for c in calls)
    assert len(result.latencies_ms) == result.requests


def test_a_wrong_system_is_shown_at_every_keystroke_and_never_right() -> None:
    result = type_line(wrong, "wrong", LINE, "line")
    assert (result.saved, result.shown, result.right, result.requests) == (0, len(TYPED), 0, len(TYPED))


def test_a_system_right_after_some_typing_saves_the_rest() -> None:
    typed_first = len("registry.")

    def late(request: Request) -> str:
        return rest_of(request) if len(request.prefix) - len(BEFORE) >= typed_first else ""

    result = type_line(late, "late", LINE, "line")
    assert result.saved == len(TYPED) - typed_first
    assert (result.shown, result.right, result.requests) == (1, 1, typed_first + 1)


def test_the_typed_ahead_suggestion_is_reused_as_the_server_reuses_it() -> None:
    """A suggestion the user keeps typing is answered from what was shown, without asking the system again."""
    complete, calls = counted(lambda r: rest_of(r)[:12] + "XYZ" if not calls[1:] else "")
    result = type_line(complete, "ahead", LINE, "line")
    assert result.requests == len(TYPED)
    assert len(calls) == len(TYPED) - 12  # the 12 keystrokes that typed what it showed were answered from it
    assert result.shown == 1 + 12 and result.right == 0
    assert result.suggestions == 1  # on screen for 13 keystrokes, typed into for 12: one suggestion


def test_the_word_user_takes_the_matching_words_then_types_on() -> None:
    def half(request: Request) -> str:
        rest = rest_of(request)
        return rest[: rest.find("(") + 1] + "other)" if "(" in rest else ""

    result = type_line(half, "half", LINE, "word")
    assert result.saved == len("registry.register(")
    assert result.right == 1 and result.shown >= 1


def test_completions_are_tidied_as_the_server_tidies_them() -> None:
    """The server never shows a degenerate loop: the replay, scoring what the editor shows, must not either."""
    result = type_line(lambda r: "registry.registry.registry.registry", "loop", LINE, "line")
    assert (result.shown, result.saved) == (0, 0)


def test_aggregate_sums_characters_and_keeps_precision_empty_when_nothing_was_shown() -> None:
    results = [
        Typed("ngram", "line", "python", "a", 10, 10, 1, 1, 1, 1, (1.0,)),
        Typed("ngram", "line", "go", "b", 30, 0, 30, 3, 2, 0, tuple([2.0] * 30)),  # one of the 3 typed into
        Typed("model", "line", "python", "a", 10, 0, 10, 0, 0, 0, tuple([5.0] * 10)),
    ]
    rows = {(r.system, r.user, r.language): r for r in aggregate(results, ["ngram", "model"])}
    overall = rows[("ngram", "line", "all")]
    assert overall.lines == 2 and overall.chars == 40
    assert overall.saved == pytest.approx(10 / 40)
    assert overall.shown == pytest.approx(4 / 31)
    assert overall.precision == pytest.approx(1 / 3)  # per suggestion, not per keystroke it stayed on screen
    assert rows[("model", "line", "all")].precision is None
    assert ("ngram", "line", "go") in rows and ("ngram", "line", "python") in rows


# --- lines from a real history -------------------------------------------------------------------------------


def test_lines_are_the_added_lines_module_level_included(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch)
    repo = GitRepo(tmp_path / "repo")
    repo.write("app/main.py", "import os\n\n\ndef run():\n    return os.getcwd()\n")
    repo.commit("first", author=ALICE)
    repo.write(
        "app/main.py",
        'import os\nimport sys\n\n\ndef run():\n    return os.getcwd()\n\n\nif __name__ == "__main__":\n    sys.exit(run())\n',
    )
    repo.write("vendor/lib.py", "def vendored():\n    return 1\n")  # the miner skips vendored code: so does this
    repo.write("notes.txt", "not code\n")
    second = repo.commit("second", author=ALICE)
    found = replay.lines(repo.path, [second], 50, seed=0)
    assert sorted(line.typed for line in found) == ['if __name__ == "__main__":', "import sys", "sys.exit(run())"]
    exit_line = next(line for line in found if line.typed == "sys.exit(run())")
    assert exit_line.before.endswith('if __name__ == "__main__":\n    ') and exit_line.after == "\n"
    assert exit_line.language == "python" and exit_line.path == "app/main.py"
    assert replay.lines(repo.path, [second], 50, seed=0) == found  # the same lines for the same seed
    assert len(replay.lines(repo.path, [second], 2, seed=0)) == 2
    repo.close()


# --- the report --------------------------------------------------------------------------------------------------


def _report() -> EvalReport:
    return EvalReport(
        artifact="/a",
        repository="/r/app",
        created="2026-11-28T00:00:00+00:00",
        seed=0,
        heldout_commits=3,
        samples={"line": 2},
        systems=("engine", "ngram"),
        descriptions={"engine": "the default", "ngram": "n-gram"},
        default_system="engine",
        rows=(
            Row("engine", "line", "all", 2, 0.5, 0.7, 10.0, 20.0),
            Row("ngram", "line", "all", 2, 0.5, 0.6, 5.0, 9.0),
        ),
        machine="2 CPU cores",
        replay_lines=7,
        replay=(
            ReplayRow("engine", "line", "all", 7, 200, 0.31, 0.4, 0.62, 2.0, 80.0),
            ReplayRow("ngram", "line", "all", 7, 200, 0.25, 0.9, None, 1.0, 30.0),
            ReplayRow("engine", "word", "all", 7, 200, 0.45, 0.5, 0.7, 2.0, 81.0),
        ),
    )


def test_the_replay_rows_are_in_the_table_the_json_the_markdown_and_the_png(tmp_path: Path) -> None:
    report = _report()
    table = format_table(report)
    assert "saved %" in table and "precision %" in table and "typing replay" in table
    engine_row = next(
        line for line in table.splitlines() if line.startswith("line") and "engine *" in line and "31.0" in line
    )
    assert "62.0" in engine_row
    assert any(line.startswith("line") and "ngram" in line and " - " in line for line in table.splitlines())
    back = EvalReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert back == report and isinstance(back.replay[0], ReplayRow)
    markdown = format_markdown(report)
    assert (
        "## Typing replay (7 held-out lines)" in markdown and "| line | all | engine (default) | 7 | 31.0 |" in markdown
    )
    plot(report, tmp_path / "report.png")
    assert (tmp_path / "report.png").read_bytes()[:4] == b"\x89PNG"


def test_a_report_without_replay_reads_as_before() -> None:
    report = _report()
    data = report.to_dict()
    del data["replay"], data["replay_lines"]  # a report.json written before the replay task existed
    back = EvalReport.from_dict(data)
    assert back.replay == () and "typing replay" not in format_table(back)
    assert not math.isnan(back.rows[0].p50_ms)


def test_the_two_users_share_what_a_system_answered_at_the_same_prefix() -> None:
    complete, calls = counted(silent)
    memo: dict[int, tuple[str, float]] = {}
    first = type_line(complete, "silent", LINE, "line", memo=memo)
    second = type_line(complete, "silent", LINE, "word", memo=memo)
    assert len(calls) == len(TYPED)  # every prefix computed once, for both users
    assert first.requests == second.requests == len(TYPED)
    assert len(second.latencies_ms) == len(TYPED)


def test_the_word_user_taking_a_suggestion_in_steps_counts_it_right_once() -> None:
    result = type_line(oracle, "oracle", LINE, "word")
    assert result.saved == len(TYPED) and (result.suggestions, result.right) == (1, 1)
