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


_OPEN = re.compile(r"(?:\w+|\r?\n[^\S\n]*)$")


def open_token(prefix: str) -> str:
    """The token the cursor may still be inside: a word (`pri` in `x = pri`) or a line break whose
    indentation is not typed yet. "" when the cursor is after a token that cannot grow."""
    match = _OPEN.search(prefix)
    return match.group(0) if match else ""
