"""The change record: one changed definition in one commit, as the miner writes it and the trainer reads it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from typing import Any

# Bump when a field changes meaning or disappears; readers refuse records of another version.
# 2: records name their repository (a dataset may hold several).
RECORD_FORMAT = 2


@dataclass(frozen=True)
class FileContext:
    """What an editor would show a completion besides the definition itself."""

    header: str  # imports / package lines of the file
    enclosing: tuple[str, ...]  # signatures of the definitions around this one, outermost first


@dataclass(frozen=True)
class ChangeRecord:
    repository: str  # the mined repository's resolved root, as the dataset manifest lists it
    commit: str  # a SHA of that repository
    author_email: str  # after .mailmap
    author_name: str
    authored_at: str  # ISO 8601
    committed_at: str  # ISO 8601; the trainer's time split uses it
    path: str
    old_path: str | None  # set when the file was renamed in this commit
    language: str
    qualified_name: str  # e.g. `Parser.parse_args`
    kind: str  # function, method, class, ...
    change: str  # added, modified, deleted
    before: str | None  # the definition's text before the commit, None when added
    after: str | None  # after the commit, None when deleted
    line: int  # 1-based first line of the definition in `after` (in `before` when deleted)
    context: FileContext
    message: str  # the commit message

    @property
    def content_hash(self) -> str:
        """Identity of the change itself, for dropping exact duplicates (cherry-picks, copied files)."""
        digest = hashlib.sha256()
        for part in (self.language, self.before or "", "\0\1", self.after or ""):
            digest.update(part.encode("utf-8", "surrogatepass"))
        return digest.hexdigest()[:32]

    def to_json(self) -> str:
        # Built by hand: dataclasses.asdict deep-copies every string, a tenth of a mining run's time.
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["context"] = {"header": self.context.header, "enclosing": list(self.context.enclosing)}
        data["content_hash"] = self.content_hash
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChangeRecord:
        fields = {k: v for k, v in data.items() if k != "content_hash"}
        ctx = fields.pop("context")
        return cls(context=FileContext(header=ctx["header"], enclosing=tuple(ctx["enclosing"])), **fields)
