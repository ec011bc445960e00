"""What a completion is asked for, and the slice of the document the model sees: the definition around
the cursor with its file's header and enclosing signatures, as the trainer cut its examples."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from codedouble.grammars import definitions
from codedouble.grammars.languages import language_for_path
from codedouble.server.contract import prompt

if TYPE_CHECKING:
    from codedouble.server.engine.workspace import WorkspaceContext

Mode = Literal["line", "block"]
# Outside any definition the model sees this many lines around the cursor.
LINES_BEFORE = 40
LINES_AFTER = 10


@dataclass(frozen=True)
class Request:
    path: str
    prefix: str  # the document before the cursor
    suffix: str  # and after it
    mode: Mode  # the rest of the line, or a body after a signature
    # The other files of the workspace around the document (an immutable snapshot; None: none). Context
    # only: the n-gram and retrieval count in it, nothing is trained on it.
    workspace: WorkspaceContext | None = None

    @property
    def language(self) -> str | None:
        return language_for_path(self.path)


@dataclass(frozen=True)
class Proposal:
    """A system's completion with its own score of how likely it is right (higher is likelier; each system's
    scale is its own until calibrated, see abstention.py)."""

    text: str
    score: float = 0.0
    # Which system answered (the combined engine's proposals name it; the feedback log records it). Not part of
    # equality: the same text and score are the same proposal, whoever made it.
    system: str = field(default="", compare=False)


NOTHING = Proposal("", 0.0)


def mode_at(prefix: str, language: str | None) -> Mode:
    """A body is wanted on an empty line right under a line that opens a block; the rest of a line elsewhere."""
    lines = prefix.split("\n")
    if len(lines) < 2 or lines[-1].strip():
        return "line"
    opened = lines[-2].rstrip()
    return "block" if opened.endswith(":" if language == "python" else "{") else "line"


def window(request: Request) -> tuple[prompt.Context, str, str]:
    """(context, prefix, suffix) for the prompt: the innermost definition holding the cursor, else nearby lines."""
    language = request.language
    header = ""
    if language is not None:
        source = (request.prefix + request.suffix).encode("utf-8", "surrogatepass")
        cursor = len(request.prefix.encode("utf-8", "surrogatepass"))
        parsed = definitions.parse(language, source)
        header = parsed.header
        inside = [i for i, d in enumerate(parsed.definitions) if d.start_byte < cursor <= d.end_byte]
        if inside:
            index = inside[-1]  # definitions are listed outer before inner
            d = parsed.definitions[index]
            ctx = prompt.Context(request.path, header, parsed.enclosing_signatures(index))
            before = source[d.start_byte : cursor].decode("utf-8", "replace")
            after = source[cursor : d.end_byte].decode("utf-8", "replace")
            return ctx, before, after
    before = "\n".join(request.prefix.split("\n")[-LINES_BEFORE:])
    after = "\n".join(request.suffix.split("\n")[: LINES_AFTER + 1])
    return prompt.Context(request.path, header, ()), before, after
