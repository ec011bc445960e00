"""LSP positions (line, UTF-16 code unit) to offsets in a Python string and back.

Lines end at LF, CR LF or a lone CR, as the protocol says; nothing else (a form feed, U+2028) ends a line."""

from __future__ import annotations

import re
from bisect import bisect_right

_BREAK = re.compile(r"\r\n|\r|\n")
# Characters that take two UTF-16 code units. Found by the regex engine so that a long line (a 4 MB minified
# one) is not walked character by character in Python (0.16 s a request); only these are.
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


class PositionError(ValueError):
    pass


def _units(text: str) -> int:
    """UTF-16 code units: a character beyond the Basic Multilingual Plane takes two."""
    return len(text) + sum(1 for _ in _ASTRAL.finditer(text))


def offset_at(text: str, line: int, character: int) -> int:
    """The string index of an LSP position. A character past the end of its line means the line's end, as
    the protocol says; a line past the end of the document is an error."""
    if line < 0 or character < 0:
        raise PositionError(f"position {line}:{character} is negative")
    start = 0
    if line:
        for number, match in enumerate(_BREAK.finditer(text), 1):
            if number == line:
                start = match.end()
                break
        else:
            lines = sum(1 for _ in _BREAK.finditer(text)) + 1
            raise PositionError(f"line {line} is past the end of the document ({lines} lines)")
    found = _BREAK.search(text, start)
    end = found.start() if found else len(text)
    # Walk the line astral character by astral character: the stretch before each one counts a unit a character.
    # A position inside an astral character's two units is the index after it.
    index, units = start, 0
    for astral in _ASTRAL.finditer(text, start, end):
        if units + astral.start() - index >= character:
            break
        units += astral.start() - index + 2
        index = astral.end()
    return min(index + max(character - units, 0), end)


def position_at(text: str, offset: int) -> tuple[int, int]:
    """The LSP (line, UTF-16 character) of a string index."""
    line, start = 0, 0
    for match in _BREAK.finditer(text):
        if match.end() > offset:
            break
        line, start = line + 1, match.end()
    return line, _units(text[start:offset])


def clamped_offset(text: str, line: int, character: int) -> int:
    """`offset_at`, with a line past the end of the document meaning its end: where an edit lands."""
    try:
        return offset_at(text, line, character)
    except PositionError:
        return len(text)


class Lines:
    """LSP positions of many offsets in one text (a code action per proposal, a hundred in a file): the line
    starts found once, each position then by bisection and its own line, not by a scan from the document's
    start as `position_at` does."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0, *(match.end() for match in _BREAK.finditer(text))]

    def position(self, offset: int) -> tuple[int, int]:
        """`position_at(text, offset)`."""
        line = bisect_right(self.starts, offset) - 1
        return line, _units(self.text[self.starts[line] : offset])
