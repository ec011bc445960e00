"""The edit the engineer just made in the editor, followed from one document version to the next.

An edit is a run of changes in one place: typing `log.debug` over `print` is a dozen `didChange`s on one line.
The document's text before the run began is its baseline; a change somewhere else (more than a line away)
ends the run, and the rewrite it made joins the recent ones. Proposals come from the recent rewrites and from
the run still going, so the same rewrite elsewhere is offered as soon as the first one is typed."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from codedouble.grammars.incremental import changed_span
from codedouble.server.edits import rules, tokens

# Rewrites remembered after their run ended: applying a proposal is itself an edit elsewhere, and must not
# make the rule that proposed it forget the places still left.
RECENT = 4
# Tokens of context around a change diffed to find its rewrite: a region is at most MAX_REGION + MAX_CHANGED
# tokens, so this holds every region that can contain the change.
_MARGIN = rules.MAX_REGION + rules.MAX_CHANGED
# Lines apart two changes may be and still be one edit (an edit of a call spread over its lines).
_NEAR = 1


@dataclass(frozen=True)
class MadeEdit:
    rewrite: rules.Rewrite  # generalised (rules.generalise)
    uri: str | None
    line: int  # 0-based line where it was made, in the text after it
    language: str | None
    # The same edit only where the very same text is (rules.literal): proposed instead of the generalised one
    # when the engineer's history says only that is precise enough (propose.Gate). None: `rewrite` is literal.
    literal: rules.Rewrite | None = None


Tokenizer = Callable[[str, str | None], tokens.Tokens]


def rewrites(
    old: str, new: str, language: str | None, tokenize: Tokenizer = tokens.tokenize
) -> list[tuple[rules.Rewrite, rules.Rewrite, int]]:
    """The rewrites between two versions of a document, each generalised and literal (only for the very same
    text), with the 0-based line it sits on (the same in both: the lines above it did not change); only the
    tokens around the changed stretch are diffed. `tokenize` may be a cache shared with the proposals (the
    server's): the new text is the document they search, the baseline stays the same all run."""
    start, old_end, new_end = changed_span(old, new)
    if start == old_end == new_end:
        return []
    before, after = tokenize(old, language), tokenize(new, language)
    a0 = max(tokens.index_at(before, start) - _MARGIN, 0)
    a1 = min(tokens.index_at(before, old_end) + _MARGIN, len(before.tokens))
    b0 = max(tokens.index_at(after, start) - _MARGIN, 0)
    b1 = min(tokens.index_at(after, new_end) + _MARGIN, len(after.tokens))
    found = []
    for change in rules.changes(tokens.window(before, a0, a1), tokens.window(after, b0, b1)):
        line = old.count("\n", 0, change.start)
        found.append((rules.generalise(change), rules.literal(change), line))
    return found


class Session:
    """What the server knows of the engineer's editing: per document, the baseline of the run of changes in
    progress; for all documents, the rewrites of the runs that ended."""

    def __init__(self, tokenize: Tokenizer = tokens.tokenize) -> None:
        self.tokenize = tokenize
        self.recent: deque[MadeEdit] = deque(maxlen=RECENT)
        self._baseline: dict[str, str] = {}
        self._text: dict[str, str] = {}
        self._lines: dict[str, tuple[int, int]] = {}  # uri -> lines (first, last) of the run in progress
        self._language: dict[str, str | None] = {}
        # The run's rewrites, kept while neither text changes: a code action request per cursor move must not
        # parse the document twice each time.
        self._cache: dict[str, tuple[str, str, list[MadeEdit]]] = {}

    def opened(self, uri: str, text: str, language: str | None) -> None:
        self._baseline[uri] = self._text[uri] = text
        self._language[uri] = language
        self._lines.pop(uri, None)

    def closed(self, uri: str) -> None:
        self._end_run(uri)
        for table in (self._baseline, self._text, self._lines, self._language, self._cache):
            table.pop(uri, None)

    def changed(self, uri: str, text: str) -> None:
        if uri not in self._text:
            self.opened(uri, text, None)
            return
        current = self._text[uri]
        start, old_end, new_end = changed_span(current, text)
        if start == old_end == new_end:
            return
        first = current.count("\n", 0, start)
        last = first + text.count("\n", start, new_end)
        run = self._lines.get(uri)
        if run is not None and (first > run[1] + _NEAR or last < run[0] - _NEAR):
            self._end_run(uri)
            run = None
        if run is None:
            self._baseline[uri] = current
            self._lines[uri] = (first, last)
        else:
            shift = text.count("\n") - current.count("\n")
            self._lines[uri] = (min(run[0], first), max(run[1] + shift, last))
        self._text[uri] = text

    def made(self) -> list[MadeEdit]:
        """The recent rewrites, newest first, the run in progress in each document included."""
        ongoing = [edit for uri in self._lines for edit in self._run(uri)]
        seen: set[rules.Rewrite] = set()
        out = []
        for edit in [*ongoing, *reversed(self.recent)]:
            if edit.rewrite not in seen:
                seen.add(edit.rewrite)
                out.append(edit)
        return out

    def _run(self, uri: str) -> list[MadeEdit]:
        baseline, text = self._baseline[uri], self._text[uri]
        cached = self._cache.get(uri)
        if cached is not None and cached[0] is baseline and cached[1] is text:
            return cached[2]
        language = self._language.get(uri)
        made = [
            MadeEdit(general, uri, line, language, literal)
            for general, literal, line in rewrites(baseline, text, language, self.tokenize)
        ]
        self._cache[uri] = (baseline, text, made)
        return made

    def _end_run(self, uri: str) -> None:
        if uri in self._lines:
            for edit in self._run(uri):
                if edit.rewrite not in {e.rewrite for e in self.recent}:
                    self.recent.append(edit)
            del self._lines[uri]
            self._baseline[uri] = self._text[uri]
