"""Workspace context: the other files of the repository around the document (and the editor's other open
documents) as the count-based systems search them, and their definitions as whole-body proposals do. Built
whole from a path → text mapping and never changed afterwards, so the server's indexer builds one on its own
thread and hands it to the inference thread by swapping a reference; `codedouble eval` builds one from the
repository at a held-out commit's parent.

The document's own path is left out of every request (its live text is the n-gram's cache already)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping

from codedouble.grammars.languages import language_for_path
from codedouble.server.engine.bodies import Entry, definitions_of
from codedouble.server.engine.ngram import Source
from codedouble.server.engine.retrieval import Lines


def _paced(texts: Iterable[str], pause: Callable[[], None] | None) -> Iterator[str]:
    for text in texts:
        if pause is not None:
            pause()
        yield text


class _Language:
    def __init__(self, language: str, texts: Mapping[str, str], pause: Callable[[], None] | None) -> None:
        self.numbers = {path: i for i, path in enumerate(texts)}
        self.ngram = Source.of_texts(_paced(texts.values(), pause))
        self.lines = Lines(_paced(texts.values(), pause))
        # Each file's definitions with a body, for whole-body proposals (bodies.py): parsed here, on the
        # indexer's thread, not at the first block request (rich's 213 Python files, 1.7 MB: 0.2 s).
        self.bodies: dict[str, list[Entry]] = {}
        for path, text in texts.items():
            if pause is not None:
                pause()
            self.bodies[path] = definitions_of(path, text, language)


class WorkspaceContext:
    """One immutable snapshot: per language, an n-gram source, a line index and the definitions of the files."""

    def __init__(self, files: Mapping[str, str], version: int = 0, pause: Callable[[], None] | None = None) -> None:
        """`pause` is called before each file is taken in: the server's indexer waits there while a completion
        is being computed, so that a build never competes with one for the GIL."""
        grouped: dict[str, dict[str, str]] = defaultdict(dict)
        for path, text in files.items():
            language = language_for_path(path)
            if language is not None:
                grouped[language][path] = text
        self.version = version
        self.paths = tuple(sorted(files))
        self.chars = sum(len(text) for text in files.values())
        self._languages = {language: _Language(language, texts, pause) for language, texts in grouped.items()}

    def ngram(self, language: str | None, path: str) -> tuple[Source, tuple[int, int] | None] | None:
        """The n-gram source of `language`'s files, and the positions of `path`'s own text to leave out."""
        found = self._languages.get(language) if language is not None else None
        if found is None:
            return None
        number = found.numbers.get(path)
        return found.ngram, found.ngram.span(number) if number is not None else None

    def lines(self, language: str | None, path: str) -> tuple[Lines, int | None] | None:
        """The line index of `language`'s files, and `path`'s text number to leave out."""
        found = self._languages.get(language) if language is not None else None
        if found is None:
            return None
        return found.lines, found.numbers.get(path)

    def bodies(self, language: str | None, path: str) -> list[Entry]:
        """The definitions with a body of `language`'s files other than `path`, in the snapshot's order."""
        found = self._languages.get(language) if language is not None else None
        if found is None:
            return []
        return [entry for other, entries in found.bodies.items() if other != path for entry in entries]

    @property
    def tokens(self) -> int:
        return sum(found.ngram.tokens for found in self._languages.values())
