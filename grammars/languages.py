"""Which languages codedouble understands and how to get a tree-sitter parser and query for each."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePosixPath

import tree_sitter as ts


def _python() -> object:
    import tree_sitter_python

    return tree_sitter_python.language()


def _javascript() -> object:
    import tree_sitter_javascript

    return tree_sitter_javascript.language()


def _typescript() -> object:
    import tree_sitter_typescript

    return tree_sitter_typescript.language_typescript()


def _tsx() -> object:
    import tree_sitter_typescript

    return tree_sitter_typescript.language_tsx()


def _go() -> object:
    import tree_sitter_go

    return tree_sitter_go.language()


def _rust() -> object:
    import tree_sitter_rust

    return tree_sitter_rust.language()


def _java() -> object:
    import tree_sitter_java

    return tree_sitter_java.language()


@dataclass(frozen=True)
class LanguageSpec:
    name: str
    extensions: tuple[str, ...]
    grammar: Callable[[], object]
    # Folder under grammars/ holding this language's queries (TSX shares TypeScript's).
    query_dir: str
    # The editors' names for documents of this language: VS Code's language ids, which are also Neovim's
    # filetypes for these files (`.jsx` is "javascriptreact" in both). The editors' lists come from these
    # (tests/test_editor_languages.py); the server itself goes by file extension.
    editor_ids: tuple[str, ...]


LANGUAGES: dict[str, LanguageSpec] = {
    spec.name: spec
    for spec in (
        LanguageSpec("python", (".py", ".pyi"), _python, "python", ("python",)),
        LanguageSpec(
            "javascript", (".js", ".mjs", ".cjs", ".jsx"), _javascript, "javascript", ("javascript", "javascriptreact")
        ),
        LanguageSpec("typescript", (".ts", ".mts", ".cts"), _typescript, "typescript", ("typescript",)),
        LanguageSpec("tsx", (".tsx",), _tsx, "typescript", ("typescriptreact",)),
        LanguageSpec("go", (".go",), _go, "go", ("go",)),
        LanguageSpec("rust", (".rs",), _rust, "rust", ("rust",)),
        LanguageSpec("java", (".java",), _java, "java", ("java",)),
    )
}

_BY_EXTENSION: dict[str, str] = {ext: spec.name for spec in LANGUAGES.values() for ext in spec.extensions}


def editor_ids() -> tuple[str, ...]:
    """Every editor language id (VS Code) and filetype (Neovim) codedouble serves, in `LANGUAGES` order."""
    return tuple(dict.fromkeys(i for spec in LANGUAGES.values() for i in spec.editor_ids))


# Neovim's filetype of git's commit message buffer: no grammar, but the server drafts the message there
# (server/commits/editor.py). Neovim only: VS Code's commit box is no document a language client is sent.
MESSAGE_EDITOR_IDS = ("gitcommit",)


def neovim_filetypes() -> tuple[str, ...]:
    """The filetypes Neovim attaches the server to: every language's, then the commit message buffer's."""
    return (*editor_ids(), *MESSAGE_EDITOR_IDS)


class UnknownLanguageError(ValueError):
    pass


def language_for_path(path: str) -> str | None:
    """The language name for a file path by its extension, or None if codedouble does not mine it."""
    name = PurePosixPath(path).name.lower()
    # Declaration files (`.d.ts`, and `.d.mts` / `.d.cts` for ES / CommonJS modules) hold no function
    # bodies worth learning from.
    if name.endswith((".d.ts", ".d.mts", ".d.cts")):
        return None
    return _BY_EXTENSION.get(PurePosixPath(name).suffix)


def spec(language: str) -> LanguageSpec:
    try:
        return LANGUAGES[language]
    except KeyError:
        known = ", ".join(sorted(LANGUAGES))
        raise UnknownLanguageError(f"unknown language {language!r}; codedouble knows: {known}") from None


@functools.cache
def ts_language(language: str) -> ts.Language:
    return ts.Language(spec(language).grammar())


@functools.cache
def query_source(language: str, name: str = "definitions") -> str:
    folder = spec(language).query_dir
    return resources.files(__package__).joinpath(folder, f"{name}.scm").read_text(encoding="utf-8")


@functools.cache
def query(language: str, name: str = "definitions") -> ts.Query:
    return ts.Query(ts_language(language), query_source(language, name))


def parser(language: str) -> ts.Parser:
    # Parsers hold per-parse state, so callers keep their own rather than sharing a cached one.
    return ts.Parser(ts_language(language))
