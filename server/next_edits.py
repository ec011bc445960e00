"""Next edits as LSP code actions: what the server knows of the engineer's editing (`edits.live.Session`) and
their mined habits (`edits.jsonl`), turned into `refactor.rewrite` code actions with a `WorkspaceEdit` that any
client applies. LSP has no next-edit method; a code action is the one surface every editor offers.

`NextEdits` is the state (the session, the double's patterns, caches); it is not thread-safe and the server
touches it from one thread only (its edits executor), in the order the notifications came. The rest are pure
helpers the code action handler is built from."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from lsprotocol import types

from codedouble.server.contract.edits import EditPattern, Evidence
from codedouble.server.edits import live, propose, tokens
from codedouble.server.edits.propose import EditProposal
from codedouble.server.positions import Lines, clamped_offset

KIND = types.CodeActionKind.RefactorRewrite.value  # "refactor.rewrite"
# Documents larger than this get no next edits: every edit tokenizes the whole document (about 50 ms per
# 100 kB here), and a half-megabyte file is generated or data, not code edited by hand.
MAX_CHARS = 500_000
# Tokenized texts kept: the baseline and the current text of the document being edited, and those of a few
# others the engineer moves between.
_TOKENS_KEPT = 8


def wanted(only: Sequence[Any] | None) -> bool:
    """Whether a request's `context.only` admits our kind. Kinds are hierarchical (`refactor` admits
    `refactor.rewrite`); `""` (CodeActionKind.Empty) admits every kind; none given, or an empty list, asks for
    no kind in particular."""
    if not only:
        return True
    for kind in only:
        kind = getattr(kind, "value", kind)  # a CodeActionKind, or a string lsprotocol left as it was
        if isinstance(kind, str) and (kind == "" or KIND == kind or KIND.startswith(kind + ".")):
            return True
    return False


def overlapping(proposals: Sequence[EditProposal], start: int, end: int) -> list[EditProposal]:
    """The proposals touching the string indices [start, end], both ends included: a cursor (an empty range)
    at either edge of the text a proposal replaces is on it, as a cursor after `print(x)` is."""
    return [p for p in proposals if p.start <= end and start <= p.end]


def request_span(text: str, where: types.Range) -> tuple[int, int]:
    """A request's range as string indices, in order; a position past the end means the end, so that a client
    asking for the whole document with `end: (line count, 0)` gets all of it."""
    a = clamped_offset(text, where.start.line, where.start.character)
    b = clamped_offset(text, where.end.line, where.end.character)
    return min(a, b), max(a, b)


def action(uri: str, lines: Lines, proposal: EditProposal) -> types.CodeAction:
    """One proposal as a code action on `uri` (the URI as the client sent it, so that it knows the document)."""
    start, end = lines.position(proposal.start), lines.position(proposal.end)
    edit = types.TextEdit(
        range=types.Range(types.Position(*start), types.Position(*end)),
        new_text=proposal.new_text,
    )
    return types.CodeAction(
        title=proposal.title,
        kind=types.CodeActionKind.RefactorRewrite,
        edit=types.WorkspaceEdit(changes={uri: [edit]}),
        # What the editors show beside the edit, and how sure the server is of it (1.0 for the edit just made).
        data={"source": proposal.source, "confidence": proposal.confidence, "rule": proposal.rule},
    )


def actions(uri: str, text: str, proposals: Sequence[EditProposal], where: types.Range) -> list[types.CodeAction]:
    """The code actions for a request over `where`, in document order."""
    start, end = request_span(text, where)
    lines = Lines(text)
    return [action(uri, lines, p) for p in overlapping(proposals, start, end)]


class NextEdits:
    """The session, the double's patterns and the caches that make a code action request per cursor move cheap:
    each text is tokenized once (shared by the session's diff and the proposals' search), and the proposals of a
    document are kept until its text, the edits made or the patterns change."""

    def __init__(self) -> None:
        self._tokens: OrderedDict[tuple[str | None, str], tokens.Tokens] = OrderedDict()
        self.session = live.Session(self.tokenize)
        self.patterns: tuple[EditPattern, ...] = ()
        self.classes: Evidence | None = None
        self._languages: dict[str, str | None] = {}
        self._proposals: dict[str, tuple[tuple[Any, ...], list[EditProposal]]] = {}

    def tokenize(self, text: str, language: str | None) -> tokens.Tokens:
        key = (language, text)  # a str caches its hash: a known text is found without reading it again
        found = self._tokens.get(key)
        if found is None:
            found = self._tokens[key] = tokens.tokenize(text, language)
            while len(self._tokens) > _TOKENS_KEPT:
                self._tokens.popitem(last=False)
        else:
            self._tokens.move_to_end(key)
        return found

    def use(self, patterns: Sequence[EditPattern], classes: Evidence | None = None) -> None:
        """The double's habits, and what its training commits measured of each class of edit just made."""
        self.patterns = tuple(patterns)
        self.classes = classes

    def opened(self, uri: str, text: str, language: str | None) -> None:
        self._languages[uri] = language
        self.session.opened(uri, text, language)

    def changed(self, uri: str, text: str, language: str | None) -> None:
        """A new text of `uri`; a document the session does not follow yet (it was excluded, too big, or
        next edits were off) starts from this text."""
        if uri not in self._languages or self._languages[uri] != language:
            self.opened(uri, text, language)
        else:
            self.session.changed(uri, text)

    def closed(self, uri: str) -> None:
        """Forget the document; its run of changes joins the recent rewrites (a rewrite made, then the file
        closed, is still one to make in the others)."""
        self._languages.pop(uri, None)
        self._proposals.pop(uri, None)
        self.session.closed(uri)

    def proposals(self, uri: str, text: str, language: str | None, min_precision: float) -> list[EditProposal]:
        """The proposals for the document `uri` whose text is `text`, in document order."""
        if uri not in self._languages:
            self.opened(uri, text, language)
        # An edit made in another document is the same rewrite, but its line is not this document's.
        made = tuple(e if e.uri == uri else dataclasses.replace(e, uri=None) for e in self.session.made())
        key = (text, made, self.patterns, self.classes, min_precision)
        cached = self._proposals.get(uri)
        if cached is not None and cached[0] == key:  # the same text object: compared by identity first
            return cached[1]
        found = propose.propose(
            text, language, made, self.patterns, min_precision, doc=self.tokenize(text, language), classes=self.classes
        )
        self._proposals[uri] = (key, found)
        return found
