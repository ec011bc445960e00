"""A commit message drafted in the engineer's voice, the one helper behind `codedouble commit-message`, the
`prepare-commit-msg` hook and the language server's `gitcommit` completions.

Two sources: the message of the past commit whose change is most like this one (retrieval over the double's
commit index) and the double's own model (the commit-message objective it was trained on). Which one drafts
is measured, not assumed: `codedouble train` scores both on its validation commits and records the better
in the manifest (`commit_messages.source`); either falls back on the other when it has nothing, and on the
generic "Update FILE" when neither has. The draft is then brought to the engineer's style (style.py).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codedouble.server.commits.change import Change, generic_message, terms
from codedouble.server.commits.retrieval import CommitRetrieval
from codedouble.server.commits.style import Style
from codedouble.server.contract import commits
from codedouble.server.contract.artifact import read_manifest

if TYPE_CHECKING:  # torch loads only when the model drafts: the git hook has seconds, retrieval needs none
    from codedouble.server.engine.neural import Neural

ModelLoader = Callable[[], "Neural | None"]

MANIFEST_KEY = "commit_messages"  # the manifest's record of which source measured better, and how
SOURCES = ("retrieval", "model")


@dataclass(frozen=True)
class Draft:
    text: str  # the styled message, ending in a newline
    source: str  # retrieval, model or generic
    raw: str  # what the source wrote, before the style
    neighbour: str | None = None  # the past commit retrieval drew on
    notes: tuple[str, ...] = ()


class Drafter:
    def __init__(
        self,
        index: list[commits.IndexedCommit] | None,
        model: ModelLoader,
        preferred: str = "retrieval",
        style: Style | None = None,
    ) -> None:
        self._load_model = model
        self._model: Neural | None = None
        self._model_loaded = False
        self.retrieval = CommitRetrieval(index) if index else None
        self.index = index or []
        self.style = style or Style.measure([entry.message for entry in self.index])
        self.preferred = preferred if preferred in SOURCES else "retrieval"
        self.notes: tuple[str, ...] = ()
        if index is None:
            self.notes = (
                "this double has no commit index (trained by an older codedouble): drafts come from its model "
                "alone; `codedouble train` again to draft from your past commits too",
            )

    @classmethod
    def load(cls, artifact: Path, model: ModelLoader | None = None, source: str | None = None) -> Drafter:
        """The drafter of a double. `model` gives its model when first needed (the server's loaded one); by
        default it is loaded from the artifact then. `source` overrides the measured choice."""
        manifest = read_manifest(artifact)
        measured: dict[str, Any] = manifest.get(MANIFEST_KEY) or {}

        def from_artifact() -> Neural:
            from codedouble.server.engine.engine import load_model

            return load_model(artifact)

        return cls(commits.load(artifact), model or from_artifact, source or str(measured.get("source", "retrieval")))

    @property
    def model(self) -> Neural | None:
        if not self._model_loaded:
            self._model, self._model_loaded = self._load_model(), True
        return self._model

    def retrieved(
        self, change: Change, exclude: Collection[str] = (), before: str | None = None
    ) -> tuple[str, str | None]:
        if self.retrieval is None:
            return "", None
        found = self.retrieval.nearest(terms(change), exclude, before)
        return (found.message, found.commit) if found is not None else ("", None)

    def style_before(self, before: str | None) -> Style:
        """The engineer's style as the messages committed before `before` show it (None: all of them): a
        past commit's draft is styled by what was known then."""
        if before is None:
            return self.style
        return Style.measure([e.message for e in commits.made_before(self.index, before)])

    def generated(self, change: Change, cancelled: Callable[[], bool] | None = None) -> str:
        if not change.edits or self.model is None:  # the model reads changed definitions; without one it is idle
            return ""
        from codedouble.server.commits import model as model_source

        return model_source.generate(self.model, change, cancelled)

    def draft(
        self,
        change: Change,
        identity: str | None = None,
        cancelled: Callable[[], bool] | None = None,
        exclude: Collection[str] = (),
        before: str | None = None,
    ) -> Draft:
        """The draft for `change`: the preferred source, the other when it has nothing, else the generic one.
        `before` (UTC ISO 8601) drafts as of then: only commits made before it are retrieved or styled from."""
        order = [self.preferred, *(s for s in SOURCES if s != self.preferred)]
        style = self.style_before(before)
        for source in order:
            neighbour = None
            if source == "retrieval":
                raw, neighbour = self.retrieved(change, exclude, before)
            else:
                raw = self.generated(change, cancelled)
            text = style.apply(raw, identity) if raw.strip() else ""
            if text.strip():
                return Draft(text, source, raw, neighbour, self.notes)
        raw = generic_message(change) if not change.empty else ""
        return Draft(style.apply(raw, identity) if raw else "", "generic", raw, None, self.notes)
