"""Pretraining texts from corpus files, in the same prompt format the doubles train and the server prompts in:
fill-in-the-middle inside each definition (the server's window) and plain next-token text of whole files."""

from __future__ import annotations

import random

from codedouble.grammars import definitions
from codedouble.server.contract import prompt
from codedouble.trainer.training.examples import MAX_TEXT_CHARS, fim_cut


def _chunks(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most about `limit` characters, cut at line ends."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for line in text.splitlines(keepends=True):
        if size + len(line) > limit and current:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        pieces.append("".join(current))
    return pieces


def plain_texts(path: str, text: str) -> list[str]:
    """The file as plain next-token text, in pieces: what bits per byte on held-out files is measured on."""
    return [f"{prompt.FILE}{path}\n{piece}{prompt.EOS}" for piece in _chunks(text, MAX_TEXT_CHARS)]


def plain_bytes(texts: list[str]) -> int:
    """UTF-8 bytes of `plain_texts`' texts without their two markers: the code (and its path) they carry."""
    markers = len(prompt.FILE.encode()) + len(prompt.EOS.encode())
    return sum(len(t.encode("utf-8", "surrogatepass")) - markers for t in texts)


def file_texts(path: str, language: str, text: str, rng: random.Random) -> list[str]:
    """Training texts of one corpus file: the file as plain text (in pieces) and one FIM cut per definition."""
    texts = plain_texts(path, text)
    if not language:
        return texts
    source = text.encode("utf-8", "surrogatepass")
    parsed = definitions.parse(language, source)
    for index, d in enumerate(parsed.definitions):
        start = source.rfind(b"\n", 0, d.start_byte) + 1  # from the line's start, as the miner cuts records
        body = source[start : d.end_byte].decode("utf-8", "replace")[:MAX_TEXT_CHARS]
        if body.strip():
            ctx = prompt.Context(path, parsed.header, parsed.enclosing_signatures(index))
            texts.append(prompt.fim_example(ctx, *fim_cut(body, rng)))
    return texts
