"""LSP positions (line, UTF-16 code unit) to offsets in a Python string and back.

Lines end at LF, CR LF or a lone CR, as the protocol says; nothing else (a form feed, U+2028) ends a line."""

from __future__ import annotations

import re

_BREAK = re.compile(r"\r\n|\r|\n")


class PositionError(ValueError):
    pass


def _units(text: str) -> int:
    """UTF-16 code units: a character beyond the Basic Multilingual Plane takes two."""
    return len(text) + sum(ord(c) > 0xFFFF for c in text)


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
    units = 0
    for index in range(start, end):
        if units >= character:
            return index
        units += 2 if ord(text[index]) > 0xFFFF else 1
    return end


def position_at(text: str, offset: int) -> tuple[int, int]:
    """The LSP (line, UTF-16 character) of a string index."""
    line, start = 0, 0
    for match in _BREAK.finditer(text):
        if match.end() > offset:
            break
        line, start = line + 1, match.end()
    return line, _units(text[start:offset])
