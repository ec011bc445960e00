"""Parse trees kept from one keystroke to the next. Between two completion requests a document changes by a
character or so, and tree-sitter reparses only what an edit touched when the old tree is told where the edit
was (`Tree.edit`), instead of the whole file: rich's `console.py` (100 KB) took 18 ms to parse from scratch.
The edit between two texts (`changed_span`) serves the miner too, between two versions of a file.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import AnyStr

import tree_sitter as ts

from codedouble.grammars.languages import parser

# Common heads and tails are compared in chunks of this many characters first, then the differing chunk halved.
CHUNK = 4096


def _common_head(a: AnyStr, b: AnyStr, limit: int) -> int:
    # Whole chunks compare in C; only the first differing one is halved: no loop over characters in Python, and
    # no slice longer than a chunk is copied (halving a 1 MB file's whole length copies two slices of up to 1 MB
    # at each of 20 steps).
    i = 0
    while i + CHUNK <= limit and a[i : i + CHUNK] == b[i : i + CHUNK]:
        i += CHUNK
    low, high = i, min(i + CHUNK, limit)  # the answer lies in [low, high]
    while low < high:
        middle = (low + high + 1) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _common_tail(a: AnyStr, b: AnyStr, limit: int) -> int:
    i = 0
    while i + CHUNK <= limit and a[len(a) - i - CHUNK : len(a) - i] == b[len(b) - i - CHUNK : len(b) - i]:
        i += CHUNK
    low, high = i, min(i + CHUNK, limit)
    while low < high:
        middle = (low + high + 1) // 2
        if a[len(a) - middle : len(a) - low] == b[len(b) - middle : len(b) - low]:
            low = middle
        else:
            high = middle - 1
    return low


def changed_span(old: AnyStr, new: AnyStr) -> tuple[int, int, int]:
    """The one edit that turns `old` into `new`, as small as their common head and tail make it: (start, end in
    `old`, end in `new`). For two versions of a file in mining, two document versions in the server."""
    limit = min(len(old), len(new))
    start = _common_head(old, new, limit)
    tail = _common_tail(old, new, limit - start)  # bounded so that it never overlaps the head
    return start, len(old) - tail, len(new) - tail


def point(source: bytes, byte: int) -> tuple[int, int]:
    """(row, column in bytes) of a byte offset, as tree-sitter counts them."""
    return source.count(b"\n", 0, byte), byte - (source.rfind(b"\n", 0, byte) + 1)


class Trees:
    """The last `size` documents' trees, each with the source it was parsed from. A tree is lent to one caller
    at a time (`tree`); a second asking for the same document meanwhile parses it from scratch."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._kept: OrderedDict[tuple[str, str], tuple[bytes, ts.Tree]] = OrderedDict()
        self._lock = threading.Lock()

    @contextmanager
    def tree(self, language: str, document: str, source: bytes) -> Iterator[ts.Tree]:
        """`source` (the text of `document`, in `language`) parsed, from the tree kept for it if there is one;
        kept for the next call once the caller is done with it."""
        key = (language, document)
        with self._lock:
            kept = self._kept.pop(key, None)
        if kept is not None and kept[0] == source:
            tree = kept[1]
        elif kept is not None:
            old_source, old_tree = kept
            start, old_end, new_end = changed_span(old_source, source)
            old_tree.edit(
                start_byte=start,
                old_end_byte=old_end,
                new_end_byte=new_end,
                start_point=point(old_source, start),
                old_end_point=point(old_source, old_end),
                new_end_point=point(source, new_end),
            )
            tree = parser(language).parse(source, old_tree)
        else:
            tree = parser(language).parse(source)
        try:
            yield tree
        finally:
            with self._lock:
                self._kept[key] = (source, tree)
                self._kept.move_to_end(key)
                while len(self._kept) > self.size:
                    self._kept.popitem(last=False)
