"""codedouble's own version, as artifacts, datasets and the language server report it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def tool_version() -> str:
    try:
        return version("codedouble")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
