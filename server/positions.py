"""LSP positions (line, UTF-16 code unit) to offsets in a Python string and back."""

from __future__ import annotations


class PositionError(ValueError):
    pass


def offset_at(text: str, line: int, character: int) -> int:
    """The string index of an LSP position. A character past the end of its line means the line's end, as
    the protocol says; a line past the end of the document is an error."""
    if line < 0 or character < 0:
        raise PositionError(f"position {line}:{character} is negative")
    start = 0
    for _ in range(line):
        start = text.find("\n", start) + 1
        if start == 0:
            raise PositionError(f"line {line} is past the end of the document ({text.count(chr(10)) + 1} lines)")
    end = text.find("\n", start)
    end = len(text) if end < 0 else end
    units = 0
    for index in range(start, end):
        if units >= character:
            return index
        units += 2 if ord(text[index]) > 0xFFFF else 1
    return end


def position_at(text: str, offset: int) -> tuple[int, int]:
    """The LSP (line, UTF-16 character) of a string index."""
    line = text.count("\n", 0, offset)
    start = text.rfind("\n", 0, offset) + 1
    return line, sum(2 if ord(c) > 0xFFFF else 1 for c in text[start:offset])
