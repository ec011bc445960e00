"""What became of the suggestions the editor showed: accepted (whole, a word, a line) or typed over.

The protocol (README, "codedouble serve"):

- every inline completion item the server answers carries `command`: `codedouble.accepted` with one
  argument `{"id": ID}`. LSP clients run an item's command after inserting it (VS Code through
  vscode-languageclient, Neovim 0.12's `vim.lsp.inline_completion`, codedouble's own Neovim 0.11 ghost text),
  so a whole acceptance reaches the server as `workspace/executeCommand` with no client code at all;
- a client that knows more sends the notification `codedouble/feedback`:
  `{"id": ID, "event": "accepted", "kind": "word" | "line" | "all", "acceptedChars": N}` for a part taken
  (or all of it), `{"id": ID, "event": "rejected", "reason": "typed_over" | "dismissed"}` for one the user
  typed something else over, or sent away (dismiss key, cursor moved, insert mode left).

A suggestion keeps its id while the user types what it predicted (the server answers the rest from it), so
accepting its tail after typing its head is one accepted suggestion, not a new one.

The log: one JSON object a line, appended to `feedback.jsonl` beside the double's folder (`<doubles
folder>/feedback.jsonl` for the doubles `codedouble train` makes): a retrain replaces the double's folder
whole (`atomic.directory`) and a new double gets a folder of its own, while the log of what the engineer took
must outlive both; each line names the double that made the suggestion. It holds no code: lengths, positions,
the system that answered, its confidence, the language, times. Lines are appended with one `write` each
(O_APPEND), so two servers on one repository interleave whole lines; nothing is replaced, so
`atomic.py` has no part in it. `feedbackLog: false` turns it off; the counts for `codedouble/status` are kept
either way, in memory.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("codedouble.server")

NOTIFICATION = "codedouble/feedback"
ACCEPTED_COMMAND = "codedouble.accepted"
LOG_NAME = "feedback.jsonl"
KINDS = ("all", "word", "line")
REASONS = ("typed_over", "dismissed")
KEPT = 1000  # suggestions remembered for a late report; an older id is ignored


@dataclass(frozen=True)
class Shown:
    """One suggestion the server answered with. `text` stays in memory (to tell a continuation from a new
    suggestion) and is never written."""

    id: str
    uri: str
    text: str
    system: str
    confidence: float
    line: int
    character: int
    language: str | None
    mode: str

    def record(self) -> dict[str, Any]:
        """What the log says of it: no code, no path."""
        return {
            "id": self.id,
            "system": self.system,
            "confidence": round(self.confidence, 4),
            "chars": len(self.text),
            "lines": self.text.count("\n") + 1,
            "line": self.line,
            "character": self.character,
            "language": self.language,
            "mode": self.mode,
        }


@dataclass(frozen=True)
class Report:
    """A client's word on a shown suggestion, checked."""

    id: str
    event: str  # accepted, rejected
    kind: str | None = None  # accepted: all, word, line
    accepted_chars: int | None = None  # accepted: characters taken
    reason: str | None = None  # rejected: typed_over, dismissed


def plain(value: Any) -> Any:
    """Params as dicts and lists: pygls hands a custom method's params over as namedtuples."""
    if hasattr(value, "_asdict"):
        value = value._asdict()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def parse(raw: Any, default_kind: str | None = None) -> Report | str:
    """A report from the client's JSON, or what is wrong with it (the server logs that and goes on)."""
    raw = plain(raw)
    if isinstance(raw, list) and len(raw) == 1:  # a command's arguments: [ {...} ]
        raw = raw[0]
    if not isinstance(raw, dict):
        return f"feedback must be an object, not {type(raw).__name__}"
    ident = raw.get("id")
    if not isinstance(ident, str) or not ident:
        return "feedback needs the suggestion's `id` (a string)"
    event = raw.get("event", "accepted" if default_kind else None)
    if event == "accepted":
        kind = raw.get("kind", default_kind or "all")
        if kind not in KINDS:
            return f"feedback `kind` must be one of {', '.join(KINDS)}, not {kind!r}"
        chars = raw.get("acceptedChars")
        if chars is not None and (isinstance(chars, bool) or not isinstance(chars, int) or chars < 0):
            return f"feedback `acceptedChars` must be a count of characters, not {chars!r}"
        return Report(ident, "accepted", kind=kind, accepted_chars=chars)
    if event == "rejected":
        reason = raw.get("reason", "dismissed")
        if reason not in REASONS:
            return f"feedback `reason` must be one of {', '.join(REASONS)}, not {reason!r}"
        return Report(ident, "rejected", reason=reason)
    return f"feedback `event` must be 'accepted' or 'rejected', not {event!r}"


class Feedback:
    """The counts since the server started and the log on disk. Safe to call from any thread."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.session = secrets.token_hex(4)  # ids stay unique across restarts that write to one log
        self.path: Path | None = None  # the log; None: nothing written
        self.double = ""  # the name of the double whose suggestions are being logged
        self.requests = 0  # inline completion requests answered
        self.answered = 0  # ... with a suggestion
        self.accepted_chars = 0
        self.reports = 0  # reports a client sent (accepted or rejected)
        self._shown: OrderedDict[str, Shown] = OrderedDict()
        self._count = 0
        self._by_uri: dict[str, Shown] = {}
        self._accepted: set[str] = set()
        self._rejected: set[str] = set()
        self._taken: dict[str, int] = {}  # id -> characters accepted so far
        self._lock = threading.Lock()
        self._warned = False

    def use(self, path: Path | None, double: str) -> None:
        """Log to `path` (None: keep counting, write nothing) the suggestions of the double named `double`."""
        with self._lock:
            self.path, self.double = path, double

    # -- what the server showed ---------------------------------------------------------------------------
    def answer(
        self,
        uri: str,
        text: str,
        *,
        system: str,
        confidence: float,
        line: int,
        character: int,
        language: str | None,
        mode: str,
        typed_ahead: bool = False,
    ) -> Shown | None:
        """Count an inline answer; the suggestion it shows (with its id), or None for an empty answer. A
        typed-ahead answer that is the tail of the document's last suggestion keeps that suggestion's id."""
        with self._lock:
            self.requests += 1
            if not text:
                return None
            self.answered += 1
            last = self._by_uri.get(uri)
            if typed_ahead and last is not None and last.text.endswith(text):
                return last
            self._count += 1
            shown = Shown(
                f"{self.session}-{self._count}", uri, text, system, confidence, line, character, language, mode
            )
            self._by_uri[uri] = shown
            self._shown[shown.id] = shown
            while len(self._shown) > KEPT:
                self._shown.popitem(last=False)
        self._write({"event": "shown", **shown.record()})
        return shown

    def forget(self, uri: str) -> None:
        with self._lock:
            self._by_uri.pop(uri, None)

    # -- what the client said -----------------------------------------------------------------------------
    def report(self, raw: Any, default_kind: str | None = None) -> str | None:
        """Record a client's report; None when it was taken, else why not (the caller logs it)."""
        got = parse(raw, default_kind)
        if isinstance(got, str):
            return got
        with self._lock:
            shown = self._shown.get(got.id)
            if shown is None:
                return f"feedback for an unknown suggestion {got.id!r} (from an earlier server, or too old)"
            self.reports += 1
            entry: dict[str, Any] = {"event": got.event, **shown.record()}
            if got.event == "accepted":
                taken = self._taken.get(got.id, 0)
                chars = got.accepted_chars if got.accepted_chars is not None else len(shown.text) - taken
                chars = max(0, min(chars, len(shown.text) - taken))
                self._taken[got.id] = taken + chars
                self._accepted.add(got.id)
                self.accepted_chars += chars
                entry.update(kind=got.kind, accepted_chars=chars)
            else:
                self._rejected.add(got.id)
                entry.update(reason=got.reason)
        self._write(entry)
        return None

    def status(self) -> dict[str, Any]:
        """For `codedouble/status`: the shown rate, and the precision once the client reports."""
        with self._lock:
            shown = self._count
            accepted = len(self._accepted)
            return {
                "requests": self.requests,
                "answered": self.answered,
                "shown": shown,
                "shown_rate": self.answered / self.requests if self.requests else None,
                "accepted": accepted,
                "accepted_chars": self.accepted_chars,
                "rejected": len(self._rejected),
                # Only a client that reports acceptance makes this a precision; silence is not rejection.
                "precision": accepted / shown if shown and self.reports else None,
                "log": str(self.path) if self.path is not None else None,
                "session": self.session,
            }

    # -- the log ------------------------------------------------------------------------------------------
    def _write(self, entry: dict[str, Any]) -> None:
        path = self.path
        if path is None:
            return
        line = {"time": round(self.clock(), 3), "session": self.session, "double": self.double, **entry}
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode("utf-8")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, data)  # one write: whole lines, even with another server appending
            finally:
                os.close(fd)
        except OSError as exc:
            if not self._warned:
                self._warned = True
                log.warning("cannot write the feedback log %s (%s); counting in memory only", path, exc)


def log_path(artifact: Path) -> Path:
    """The feedback log of the double at `artifact`: beside its folder, shared by the doubles there."""
    return artifact.parent / LOG_NAME
