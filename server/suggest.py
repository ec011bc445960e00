"""Pure helpers between the engine and the editor: tidy a completion for where it lands, and serve
repeated or typed-ahead requests without running the engine again."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from codedouble.server.engine import blocks

_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {v: k for k, v in _OPEN.items()}
# A piece of 2 to 40 characters written three times in a row on one line: `.plugins.plugins.plugins`,
# `ark.mark.mark`, what a small model stuck in a loop writes (seen in the editor with the shipped base).
_LOOP = re.compile(r"([^\n]{2,40}?)\1{2,}")
# Only a piece that holds a name of two or more characters counts: data repeats legitimately (`0, 0, 0, `,
# `"-" * 3`, `a, a, a`), a model looping over an identifier is never what the engineer meant.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]")
# The longest overlap looked for between a completion's end and the text after the cursor: each size compares a
# copy of that much text, so every size of a long line cost quadratic time (a 100,000-character n-gram token
# against a 1 MB rest of line took seconds). An auto-closed bracket or a quote is a few characters.
OVERLAP_CHARS = 1000


def cut_loop(text: str) -> str:
    """`text` without the line where it starts looping over a piece of itself, nor anything after it;
    unchanged if it never does. The whole line goes, not only the loop: what a looping model wrote before
    the loop on that line (`zz` in `zz.plugins.plugins…`) came from the same confusion."""
    for match in _LOOP.finditer(text):
        if _NAME.search(match.group(1)):
            return text[: text.rfind("\n", 0, match.start()) + 1].rstrip()
    return text


def _open_brackets(line: str) -> int:
    depth = 0
    for char in line:
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE and depth:
            depth -= 1
    return depth


def match_indentation(text: str, document: str) -> str:
    """`text` indented with what the document uses: tabs for tabs, its own width of spaces for spaces."""
    unit = blocks.indent_unit(document)
    lines = text.split("\n")
    if unit == "\t":
        own = blocks.indent_unit(text) if any(line.startswith(" ") for line in lines) else ""
        if not own or own == "\t":
            return text
        return "\n".join(
            "\t" * (blocks.indent_of(line) // len(own)) + line.lstrip(" ") if line.startswith(" ") else line
            for line in lines
        )
    if any(line.startswith("\t") for line in lines):
        return "\n".join(line.replace("\t", unit, len(line) - len(line.lstrip("\t"))) for line in lines)
    return text


def tidy(text: str, prefix: str, suffix: str, mode: str, max_lines: int) -> str:
    """The completion as the editor should show it: indented as the document is, no more than `max_lines`,
    nothing from where it loops over a piece of a line (`cut_loop`) or over a group of lines
    (`blocks.line_loop_cut`), no line that only repeats the one before it, no closing bracket the line never
    opened, and nothing the text after the cursor already has."""
    if mode == "block":
        text = match_indentation(text, prefix + suffix)
    text = cut_loop(text.rstrip())
    if mode == "block":
        # A group of lines written three times over is cut to one copy (the engine's decoder cuts its own; a
        # remote engine's or a cached text may not have been).
        text = blocks.line_loop_cut(text + "\n", (prefix, suffix)) or text
    lines = text.split("\n")[:max_lines]
    kept = lines[:1]
    for line in lines[1:]:
        if line.strip() and line.strip() == kept[-1].strip():
            break  # a model stuck in a loop repeats itself: one copy is enough
        kept.append(line)
    text = "\n".join(kept).rstrip()
    if mode == "line":
        depth = _open_brackets(prefix.rsplit("\n", 1)[-1])
        for i, char in enumerate(text):
            if char in _OPEN:
                depth += 1
            elif char in _CLOSE:
                depth -= 1
                if depth < 0:
                    text = text[:i]
                    break
    # What already follows the cursor on its line (an auto-closed bracket) is not inserted twice.
    rest = suffix.split("\n", 1)[0].rstrip()
    for size in range(min(len(rest), len(text), OVERLAP_CHARS), 0, -1):
        if text.endswith(rest[:size]):
            text = text[:-size]
            break
    # Nor are whole lines the suffix already starts with: the longest run of them that ends the completion.
    following = [line.strip() for line in suffix.split("\n")[1:] if line.strip()][:3]
    out = text.split("\n")
    for size in range(min(len(following), len(out) - 1), 0, -1):
        if [line.strip() for line in out[-size:]] == following[:size]:
            del out[-size:]
            break
    return "\n".join(out).rstrip() if len(out) > 1 else out[0]


def quiet_double(validation: dict[str, Any]) -> str | None:
    """What to tell the user when their double's own tuning found it too rarely right to show much: why the
    ghost text stays quiet, and how to see everything anyway. None when it shows suggestions normally."""
    if validation.get("tuned", True) or validation.get("shown", 1.0) > 0.01:
        return None
    right = validation.get("precision_without_abstention")
    measured = f" (right {100 * right:.0f} % of the time on your newest training commits)" if right is not None else ""
    return (
        f"codedouble: your double is not yet sure enough to show suggestions{measured}; it stays quiet rather "
        "than guess. More history, or a longer `codedouble train`, makes it speak; the setting minConfidence 0 "
        "shows every suggestion."
    )


@dataclass
class _Shown:
    prefix: str
    suffix: str
    text: str


class Recent:
    """Per document, the last suggestion: typing what it predicted is answered with the rest of it."""

    def __init__(self) -> None:
        self._shown: dict[str, _Shown] = {}

    def remember(self, uri: str, prefix: str, suffix: str, text: str) -> None:
        if text:
            self._shown[uri] = _Shown(prefix, suffix, text)

    def reuse(self, uri: str, prefix: str, suffix: str) -> str | None:
        shown = self._shown.get(uri)
        if shown is None or suffix != shown.suffix or not prefix.startswith(shown.prefix):
            return None
        typed = prefix[len(shown.prefix) :]
        if typed and shown.text.startswith(typed) and len(typed) < len(shown.text):
            return shown.text[len(typed) :]
        return None

    def forget(self, uri: str) -> None:
        self._shown.pop(uri, None)


V = TypeVar("V")


class Lru(Generic[V]):
    """Completions by prompt, the most recent `size` kept; safe to share with the inference thread."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, ...], V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, ...]) -> V | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self.hits += 1
            self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, ...], value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
