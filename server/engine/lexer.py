"""Code as a token stream for the count-based systems: every character kept, so tokens join back to the text."""

from __future__ import annotations

import re

# A newline carries the next line's indentation: the indent is what a block's shape is predicted from.
_TOKEN = re.compile(r"\r?\n[^\S\n]*|[^\S\n]+|\w+|[^\w\s]")
_WORD = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """All of `text` as tokens; `"".join(tokens(text)) == text`."""
    return _TOKEN.findall(text)


def words(text: str) -> list[str]:
    """The identifiers, keywords and numbers of `text`: the terms retrieval matches on."""
    return _WORD.findall(text)


# Runs matched on a reversed tail of the text: `re` only searches forwards, and a forward search for a run
# anchored at the end (`\w+$`) retries from every character of a long run that does not reach the end, which
# is quadratic in the run's length (a 20,000-character string literal above the cursor cost 1.2 s a request).
WORD_RUN = re.compile(r"\w*")
_BLANK_RUN = re.compile(r"[^\S\n]*")  # whitespace other than a line feed (a CR included, as in `_TOKEN`)
_TAIL = 64  # characters looked at first; doubled while the run fills the window, so the cost is linear in it


def run_start(text: str, end: int, run: re.Pattern[str]) -> int:
    """Where the longest run of characters matching `run` (a one-class pattern such as `\\w*`) that ends at
    `end` starts: `end` when the character before it does not match. Linear in the run's length."""
    size = _TAIL
    while True:
        low = max(0, end - size)
        length = run.match(text[low:end][::-1]).end()  # type: ignore[union-attr] - `X*` always matches
        if length < end - low or low == 0:
            return end - length
        size *= 2


def _open_at(prefix: str, end: int) -> int | None:
    """Where `(?:\\w+|\\r?\\n[^\\S\\n]*)` starts if it matches ending exactly at `end`, else None."""
    start = run_start(prefix, end, WORD_RUN)
    if start < end:
        return start
    start = run_start(prefix, end, _BLANK_RUN)
    if start == 0 or prefix[start - 1] != "\n":
        return None
    return start - 2 if start >= 2 and prefix[start - 2] == "\r" else start - 1


def open_token(prefix: str) -> str:
    """The token the cursor may still be inside: a word (`pri` in `x = pri`) or a line break whose
    indentation is not typed yet. "" when the cursor is after a token that cannot grow.

    Exactly what `re.search(r"(?:\\w+|\\r?\\n[^\\S\\n]*)$", prefix)` finds, in time linear in the token
    (that search is quadratic in a long word anywhere before the cursor). Its `$` also matches before a
    final line feed, so a match may end there; the leftmost match wins, as in the search."""
    found = [(start, len(prefix)) for start in [_open_at(prefix, len(prefix))] if start is not None]
    if prefix.endswith("\n"):
        before = _open_at(prefix, len(prefix) - 1)
        if before is not None:
            found.append((before, len(prefix) - 1))
    if not found:
        return ""
    start, end = min(found)
    return prefix[start:end]
