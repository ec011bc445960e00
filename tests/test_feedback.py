"""The feedback helper (server/feedback.py): counts for `codedouble/status`, the log beside the double (no code
in it), the opt-out, and reports a client got wrong, ignored."""

from __future__ import annotations

import json
from collections import namedtuple
from pathlib import Path
from typing import Any

import pytest

from codedouble.server.engine.abstention import Abstention
from codedouble.server.engine.document import NOTHING, Proposal, Request
from codedouble.server.engine.engine import Combined
from codedouble.server.feedback import Feedback, Shown, log_path, parse
from codedouble.server.options import parse as parse_options

SECRET = "registry.register(handler, priority=HIGH_PRIORITY)"  # the code: it must never reach the log


def show(feedback: Feedback, text: str = SECRET, uri: str = "file:///w/app/hooks.py", **kw: Any) -> Shown | None:
    args: dict[str, Any] = dict(system="ngram", confidence=0.8, line=47, character=4, language="python", mode="line")
    return feedback.answer(uri, text, **{**args, **kw})


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_counts_shown_rate_and_precision(tmp_path: Path) -> None:
    feedback = Feedback(clock=lambda: 1000.0)
    feedback.use(tmp_path / "feedback.jsonl", "20250101T000000Z")
    first = show(feedback)
    assert first is not None
    assert show(feedback, "") is None  # an empty answer: a request, nothing shown
    second = show(feedback, "return handler", uri="file:///w/app/b.py")
    assert second is not None and second.id != first.id
    got = feedback.status()
    assert (got["requests"], got["answered"], got["shown"]) == (3, 2, 2)
    assert got["shown_rate"] == pytest.approx(2 / 3)
    assert got["precision"] is None  # no client report yet: silence is not rejection

    assert feedback.report([{"id": first.id}], default_kind="all") is None  # the item's command
    assert feedback.report({"id": second.id, "event": "rejected", "reason": "typed_over"}) is None
    got = feedback.status()
    assert (got["accepted"], got["rejected"], got["accepted_chars"]) == (1, 1, len(SECRET))
    assert got["precision"] == 0.5


def test_word_by_word_is_one_accepted_suggestion_and_its_characters_add_up(tmp_path: Path) -> None:
    feedback = Feedback()
    shown = show(feedback)
    assert shown is not None
    feedback.report({"id": shown.id, "event": "accepted", "kind": "word", "acceptedChars": 8})
    # The user typed one more of its characters: the rest comes from the same suggestion, with the same id.
    rest = show(feedback, SECRET[9:], typed_ahead=True)
    assert rest is not None and rest.id == shown.id
    feedback.report([{"id": shown.id}], default_kind="all")  # then the rest, whole: as many as are left
    got = feedback.status()
    assert (got["shown"], got["accepted"]) == (1, 1)
    assert got["accepted_chars"] == len(SECRET)  # never more than the suggestion had
    assert got["precision"] == 1.0
    # A new suggestion in the same document is a new one, even if typed ahead of something else.
    other = show(feedback, "other()", typed_ahead=True)
    assert other is not None and other.id != shown.id


def test_the_log_holds_lengths_and_positions_never_code(tmp_path: Path) -> None:
    feedback = Feedback(clock=lambda: 1234.5)
    path = tmp_path / "feedback.jsonl"
    feedback.use(path, "20250101T000000Z")
    shown = show(feedback, SECRET + "\n    return handler")
    assert shown is not None
    feedback.report({"id": shown.id, "event": "accepted", "kind": "line", "acceptedChars": len(SECRET)})
    feedback.report({"id": shown.id, "event": "rejected", "reason": "dismissed"})
    text = path.read_text(encoding="utf-8")
    for piece in ("registry", "handler", "HIGH_PRIORITY", "hooks.py", "file://"):
        assert piece not in text
    got = lines(path)
    assert [g["event"] for g in got] == ["shown", "accepted", "rejected"]
    assert got[0] == {
        "time": 1234.5,
        "session": feedback.session,
        "double": "20250101T000000Z",
        "event": "shown",
        "id": shown.id,
        "system": "ngram",
        "confidence": 0.8,
        "chars": len(SECRET) + 19,
        "lines": 2,
        "line": 47,
        "character": 4,
        "language": "python",
        "mode": "line",
    }
    assert got[1]["kind"] == "line" and got[1]["accepted_chars"] == len(SECRET)
    assert got[2]["reason"] == "dismissed"


def test_opted_out_nothing_is_written_but_status_still_counts(tmp_path: Path) -> None:
    feedback = Feedback()
    feedback.use(None, "double")
    shown = show(feedback)
    assert shown is not None
    feedback.report([{"id": shown.id}], default_kind="all")
    assert list(tmp_path.iterdir()) == []
    assert feedback.status()["accepted"] == 1 and feedback.status()["log"] is None
    assert parse_options({"feedbackLog": False})[0].feedback_log is False
    assert parse_options({})[0].feedback_log is True
    options, problems = parse_options({"feedbackLog": "no"})
    assert options.feedback_log is True and "feedbackLog" in problems[0]


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "accepted",
        42,
        [],
        {},
        {"id": 7},
        {"id": ""},
        {"id": "X", "event": "liked"},
        {"id": "X", "event": "accepted", "kind": "paragraph"},
        {"id": "X", "event": "accepted", "acceptedChars": -1},
        {"id": "X", "event": "accepted", "acceptedChars": True},
        {"id": "X", "event": "rejected", "reason": "bored"},
        {"id": "nobody-1", "event": "accepted"},  # well formed, but no such suggestion
    ],
)
def test_a_bad_report_is_refused_with_a_reason_and_changes_nothing(tmp_path: Path, raw: Any) -> None:
    feedback = Feedback()
    feedback.use(tmp_path / "feedback.jsonl", "double")
    shown = show(feedback)
    assert shown is not None
    before = feedback.status()
    raw = {**raw, "id": shown.id} if isinstance(raw, dict) and raw.get("id") == "X" else raw
    problem = feedback.report(raw)
    assert isinstance(problem, str) and problem
    assert feedback.status() == before
    assert [g["event"] for g in lines(tmp_path / "feedback.jsonl")] == ["shown"]


def test_params_as_pygls_hands_them_over_namedtuples() -> None:
    Params = namedtuple("Params", ["id", "event", "kind", "acceptedChars"])
    got = parse(Params("s-1", "accepted", "word", 3))
    assert not isinstance(got, str) and (got.kind, got.accepted_chars) == ("word", 3)


def test_an_unwritable_log_does_not_stop_the_counting(tmp_path: Path) -> None:
    feedback = Feedback()
    feedback.use(tmp_path / "no" / "such" / "folder" / "feedback.jsonl", "double")
    shown = show(feedback)
    assert shown is not None
    assert feedback.report([{"id": shown.id}], default_kind="all") is None
    assert feedback.status()["accepted"] == 1


def test_the_log_sits_beside_the_double_so_a_retrain_keeps_it(tmp_path: Path) -> None:
    artifact = tmp_path / "doubles" / "shop-1234abcd" / "20250101T000000Z"
    assert log_path(artifact) == tmp_path / "doubles" / "shop-1234abcd" / "feedback.jsonl"


class Fixed:
    def __init__(self, name: str, text: str, score: float) -> None:
        self.name, self.text, self.score = name, text, score

    def propose(self, request: Request, cancelled: Any = None) -> Proposal:
        return Proposal(self.text, self.score) if self.text else NOTHING


def test_the_engine_names_the_system_that_answered() -> None:
    combined = Combined.__new__(Combined)
    combined.abstention = Abstention(0.5)
    combined.proposers = (Fixed("ngram", "unsure()", 0.2), Fixed("model", "sure()", 0.7))  # type: ignore[assignment]
    got = combined.propose(Request("a.py", "x = ", "\n", "line"))
    assert (got.text, got.score, got.system) == ("sure()", 0.7, "model")
    assert got == Proposal("sure()", 0.7)  # who answered is not part of what the proposal is
