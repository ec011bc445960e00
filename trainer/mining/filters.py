"""Which files are the engineer's own hand-written code. Every rejection carries a reason the report counts."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from codedouble.grammars.languages import language_for_path
from codedouble.server import handwritten

# Reasons, as the data report names them.
UNSUPPORTED_LANGUAGE = "unsupported language"
EXCLUDED = "excluded by --exclude"
NOT_INCLUDED = "not matched by --include"
VENDORED = handwritten.VENDORED
GENERATED = handwritten.GENERATED
MINIFIED = handwritten.MINIFIED
BINARY = handwritten.BINARY
NOT_UTF8 = handwritten.NOT_UTF8
TOO_LARGE = "over size limit"
NOT_A_FILE = "symlink or submodule"
TEST = "test code"

DEFAULT_MAX_FILE_BYTES = 1_000_000

# Vendored, minified and generated files are told apart in codedouble.server.handwritten: the server's
# workspace index skips the same files.


@dataclass(frozen=True)
class PathFilter:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def reject(self, path: str) -> str | None:
        """The reason `path` is not mined, judged from the path alone, or None to look at its content."""
        if language_for_path(path) is None:
            return UNSUPPORTED_LANGUAGE
        # Globs match the whole repository-relative path; `*` also crosses directories.
        if any(fnmatch.fnmatchcase(path, glob) for glob in self.exclude):
            return EXCLUDED
        if self.include and not any(fnmatch.fnmatchcase(path, glob) for glob in self.include):
            return NOT_INCLUDED
        return handwritten.path_reason(path)


# Test suites: the miner keeps an engineer's own tests (they are their style too), but the base's corpus
# leaves other projects' fixtures and test data out.
_TEST_DIRS = frozenset({"test", "tests", "testing", "testdata", "idle_test", "__tests__", "spec", "specs", "test_data"})
_TEST_NAMES = (
    "test_*.py",
    "*_test.py",
    "*_tests.py",
    "conftest.py",
    "*_test.go",
    "*.test.js",
    "*.test.ts",
    "*.spec.js",
    "*.spec.ts",
)


def is_test_path(path: str) -> bool:
    parts = path.split("/")
    return any(part in _TEST_DIRS for part in parts[:-1]) or any(fnmatch.fnmatchcase(parts[-1], p) for p in _TEST_NAMES)


def reject_content(data: bytes) -> str | None:
    """The reason a file's bytes are not hand-written source, or None."""
    return handwritten.content_reason(data)
