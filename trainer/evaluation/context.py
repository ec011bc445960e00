"""Workspace context for `codedouble eval`: each sample's repository as it was at its held-out commit's
parent (what the engineer had open while writing it; never the commit's own code), chosen as the server
chooses (server/workspace_files.py: hand-written code, the exclude globs, nearest by path, the budget) and
scrubbed of secrets as the samples are."""

from __future__ import annotations

from pathlib import Path

from codedouble.server import handwritten, workspace_files
from codedouble.server.engine.workspace import WorkspaceContext
from codedouble.server.options import DEFAULT_EXCLUDE
from codedouble.trainer.mining.gitio import BlobReader, GitError, git
from codedouble.trainer.mining.secrets import SecretScrubber


class ParentWorkspaces:
    """`(commit, path)` → the WorkspaceContext the server would have had around `path` at `commit`'s first
    parent (None for a root commit). The newest is kept: ask in commit order and each is built once."""

    def __init__(
        self,
        repository: Path,
        max_files: int = workspace_files.MAX_FILES,
        max_bytes: int = workspace_files.MAX_BYTES,
    ) -> None:
        self.repository, self.max_files, self.max_bytes = repository, max_files, max_bytes
        self.reader = BlobReader(repository, workspace_files.MAX_FILE_BYTES)
        self.scrubber = SecretScrubber()
        self._trees: dict[str, tuple[str | None, dict[str, tuple[str, int]]]] = {}  # commit -> parent, its files
        self._last: tuple[tuple[str, ...], WorkspaceContext] | None = None
        self.builds = 0

    def _tree(self, commit: str) -> tuple[str | None, dict[str, tuple[str, int]]]:
        """The commit's first parent and its wanted files: path -> (blob, size)."""
        if commit not in self._trees:
            parent = git(self.repository, "rev-parse", "--verify", "-q", f"{commit}^1", check=False).strip() or None
            files: dict[str, tuple[str, int]] = {}
            if parent is not None:
                for entry in git(self.repository, "ls-tree", "-r", "-l", "-z", parent).split("\0"):
                    meta, _, path = entry.partition("\t")
                    parts = meta.split()
                    if len(parts) == 4 and parts[1] == "blob" and parts[3].isdigit() and parts[0] != "120000":
                        if (
                            workspace_files.wanted(path, DEFAULT_EXCLUDE)
                            and int(parts[3]) <= workspace_files.MAX_FILE_BYTES
                        ):
                            files[path] = (parts[2], int(parts[3]))
            self._trees = {commit: (parent, files)}  # one commit at a time: its tree is asked for in a row
        return self._trees[commit]

    def __call__(self, commit: str, path: str) -> WorkspaceContext | None:
        parent, files = self._tree(commit)
        if parent is None:
            return None
        found = [workspace_files.Candidate(p, size) for p, (_, size) in files.items()]
        chosen = tuple(c.path for c in workspace_files.nearest(found, path, self.max_files, self.max_bytes))
        key = (parent, *chosen)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        texts: dict[str, str] = {}
        try:
            blobs = self.reader.read_many([files[p][0] for p in chosen])
        except GitError:
            return None
        for p in chosen:
            data = blobs[files[p][0]].data
            if data is None or handwritten.content_reason(data) is not None:
                continue
            texts[p] = self.scrubber.scrub(data.decode("utf-8")).text
        context = WorkspaceContext(texts)
        self._last = (key, context)
        self.builds += 1
        return context

    def close(self) -> None:
        self.reader.close()

    def __enter__(self) -> ParentWorkspaces:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RepositoryWorkspaces:
    """`ParentWorkspaces` for a dataset of several repositories: each sample's own repository, opened when first
    asked. Ask in (repository, commit) order and each workspace is still built once."""

    def __init__(self) -> None:
        self._open: dict[str, ParentWorkspaces] = {}

    def __call__(self, repository: str, commit: str, path: str) -> WorkspaceContext | None:
        if repository not in self._open:
            self._open[repository] = ParentWorkspaces(Path(repository))
        return self._open[repository](commit, path)

    def close(self) -> None:
        for workspaces in self._open.values():
            workspaces.close()

    def __enter__(self) -> RepositoryWorkspaces:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
