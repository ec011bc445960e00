"""The workspace indexer: keeps an immutable WorkspaceContext of the files around the open documents, built
on its own thread so that no completion ever waits for it.

- At the first opened document it walks the workspace once (paths and sizes only) and reads the files
  nearest that document (workspace_files.nearest: a budget of files and bytes).
- Open documents' texts, as the editor has them, override the disk (didOpen/didChange/didSave); it rebuilds
  once they have been quiet for a moment, never at each keystroke.
- The inference thread reads `snapshot` (one reference, swapped whole): it never sees half a build.

Context only: nothing read here is written anywhere, trained on or sent anywhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from codedouble.server import handwritten, workspace_files
from codedouble.server.engine.workspace import WorkspaceContext

log = logging.getLogger("codedouble.server")

# Edits are folded into the next build once the documents have been quiet this long: a build of the full
# budget costs seconds of CPU on 2 cores, which must not compete with completions at every keystroke.
QUIET_SECONDS = 2.0
# The longest the build waits for one completion to finish before it takes its next file anyway.
PAUSE_SECONDS = 5.0


class WorkspaceIndexer:
    def __init__(
        self,
        root: Path | None,
        exclude: Callable[[], tuple[str, ...]],
        max_files: int = workspace_files.MAX_FILES,
        max_bytes: int = workspace_files.MAX_BYTES,
        quiet_seconds: float = QUIET_SECONDS,
    ) -> None:
        self.root = root
        self.exclude = exclude
        self.max_files, self.max_bytes, self.quiet_seconds = max_files, max_bytes, quiet_seconds
        self.snapshot: WorkspaceContext | None = None
        self.builds = 0
        self.last_build_seconds: float | None = None
        self._open: dict[str, str] = {}  # absolute path -> the editor's text
        self._focus: str | None = None  # the document the files are chosen around
        self._found: list[workspace_files.Candidate] | None = None  # the walk, done once
        self._read: dict[str, tuple[int, int, str]] = {}  # absolute path -> (mtime ns, size, text)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._dirty_at: float | None = None
        self._urgent = False
        self._thread: threading.Thread | None = None
        # Clear while a completion is computed: the build waits between files (see WorkspaceContext's pause).
        self.idle = threading.Event()
        self.idle.set()

    # -- what the handlers tell it (cheap: they run on the event loop) -------------------------------------
    def opened(self, path: str, text: str) -> None:
        with self._lock:
            self._open[path] = text
            moved = self._focus is None or _folder(self._focus) != _folder(path)
            if moved:
                self._focus = path
            self._urgent = self._urgent or moved  # a new neighbourhood is wanted now, not after a pause
        self._touch()

    def changed(self, path: str, text: str) -> None:
        with self._lock:
            self._open[path] = text
        self._touch()

    def closed(self, path: str) -> None:
        with self._lock:
            self._open.pop(path, None)
        self._touch()

    def reconfigured(self) -> None:
        """The exclude globs may have changed: walk again."""
        with self._lock:
            self._found = None
            self._urgent = True
        self._touch()

    def _touch(self) -> None:
        self._dirty_at = time.monotonic()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="codedouble-workspace", daemon=True)
            self._thread.start()
        self._wake.set()

    # -- the indexer's thread --------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            while not self._urgent and self._dirty_at is not None:
                left = self._dirty_at + self.quiet_seconds - time.monotonic()
                if left <= 0:
                    break
                time.sleep(left)
            self._urgent = False
            try:
                self.build()
            except Exception:  # noqa: BLE001 - context is a nicety: completions go on without it, the log says why
                log.exception("workspace context: the build failed")

    def build(self) -> WorkspaceContext | None:
        """One build from the current state (the thread calls it; tests may too)."""
        started = time.perf_counter()
        with self._lock:
            focus, open_documents = self._focus, dict(self._open)
            found = self._found
        if focus is None:
            return None
        exclude = self.exclude()
        files: dict[str, str] = {}
        if self.root is not None and self.root.is_dir():
            if found is None:
                found = list(workspace_files.candidates(self.root, exclude, pause=self._pause))
                with self._lock:
                    self._found = found
            near = _relative(focus, self.root) or focus
            for candidate in workspace_files.nearest(found, near, self.max_files, self.max_bytes):
                self._pause()
                path = str(self.root / candidate.path)
                text = open_documents.get(path) or self._text(path)
                if text is not None:
                    files[path] = text
        for path, text in open_documents.items():
            if workspace_files.wanted(_relative(path, self.root) or path, exclude):
                files[path] = text
        snapshot = WorkspaceContext(files, self.builds + 1, self._pause)
        self.snapshot = snapshot
        self._read = {path: read for path, read in self._read.items() if path in files}  # memory stays bounded
        self.builds += 1
        self.last_build_seconds = time.perf_counter() - started
        log.info("workspace context: %d files, %.1f s", len(files), self.last_build_seconds)
        return snapshot

    def _pause(self) -> None:
        self.idle.wait(timeout=PAUSE_SECONDS)

    def _text(self, path: str) -> str | None:
        """The file's text from disk (read again only when it changed), or None: unreadable, not hand-written."""
        try:
            info = Path(path).stat()
            cached = self._read.get(path)
            if cached is not None and cached[:2] == (info.st_mtime_ns, info.st_size):
                return cached[2]
            data = Path(path).read_bytes()
        except OSError:
            return None
        if handwritten.content_reason(data) is not None:
            return None
        text = data.decode("utf-8")
        self._read[path] = (info.st_mtime_ns, info.st_size, text)
        return text

    def status(self) -> dict[str, object]:
        snapshot = self.snapshot
        return {
            "files": len(snapshot.paths) if snapshot else 0,
            "chars": snapshot.chars if snapshot else 0,
            "builds": self.builds,
            "last_build_seconds": None if self.last_build_seconds is None else round(self.last_build_seconds, 3),
        }


def _folder(path: str) -> str:
    return path.rsplit("/", 1)[0]


def _relative(path: str, root: Path | None) -> str | None:
    """`path` relative to `root` with `/`, or None when it lies outside."""
    if root is None:
        return None
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return None
