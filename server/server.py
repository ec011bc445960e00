"""`codedouble serve`: the double in the editor over LSP (pygls). Handlers stay thin: positions, options,
tidying and caching are pure helpers (positions.py, options.py, suggest.py); completions come from the same
engine `codedouble eval` scores (codedouble.server.engine)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import git
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method
from pygls.workspace import TextDocument, Workspace

from codedouble.grammars.languages import language_for_path
from codedouble.server import feedback as fb
from codedouble.server import framing, suggest
from codedouble.server import next_edits as nx
from codedouble.server import options as opts
from codedouble.server import snippets as snippet_items
from codedouble.server.commits import editor as commit_editor
from codedouble.server.commits import gitdiff
from codedouble.server.commits.draft import Drafter
from codedouble.server.contract import edits as contract_edits
from codedouble.server.contract import snippets as snippet_file
from codedouble.server.contract import tombstones
from codedouble.server.contract.artifact import current_artifact, default_artifact, read_manifest
from codedouble.server.contract.version import tool_version
from codedouble.server.engine import lexer
from codedouble.server.engine.document import Proposal, Request, mode_at
from codedouble.server.engine.engine import Engine
from codedouble.server.engine.engine import load as load_engine
from codedouble.server.engine.remote import Backend, RemoteModel
from codedouble.server.indexer import WorkspaceIndexer
from codedouble.server.positions import PositionError, clamped_offset, offset_at
from codedouble.server.stats import percentile

log = logging.getLogger("codedouble.server")

STATUS = "codedouble/status"
DOCUMENT_TEXT = "codedouble/documentText"  # the server's copy of an open document: what the fuzzer checks
STATUS_COMMAND = "codedouble.status"
MAX_DOCUMENT_CHARS = 4_000_000  # a document this big is data, not code someone types
LATENCIES_KEPT = 500
WATCH_SECONDS = 2.0  # how often a request may look whether the artifact changed on disk


def provenance_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """Where a double came from, as the status tells the editor: its primary repository and every history it
    learned from (one double may follow several repositories; a dataset mined before it recorded them names
    its one repository)."""
    dataset = manifest["dataset"]
    histories = dataset.get("repositories") or [{"path": dataset["repository"], "head": dataset["head"]}]
    return {
        "repository": dataset["repository"],
        "head": dataset["head"],
        "repositories": [{"path": str(r["path"]), "head": str(r["head"])} for r in histories],
        "created": manifest.get("created"),
        "records": manifest["records"],
        "heldout_commits": len(manifest["split"]["heldout_commits"]),
        "validation_loss": manifest.get("validation_loss"),
        "parameters": manifest["training"].get("parameters"),
    }


class Protocol(LanguageServerProtocol):
    """pygls drops a request whose params do not fit the method's schema (or that its converter fails on);
    JSON-RPC wants an answer, so the client gets -32602 (or pygls's internal error) with the request's id and
    the server goes on."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if "id" in data and "method" in data:
                if isinstance(exc, JsonRpcInvalidParams):
                    exc = JsonRpcInvalidParams(f"invalid params for {data['method']}")
                self._send_response(data["id"], None, exc.to_response_error())
            raise

    @lsp_method(types.INITIALIZE)
    def lsp_initialize(self, params: types.InitializeParams) -> Any:
        """Positions are UTF-16 code units everywhere here (positions.py, the incremental edits below, every range
        the server sends). pygls would agree to the client's first preference instead: Neovim 0.10 and later
        offer utf-8 first, and a line with a non-ASCII character before the cursor then put completions and
        edits in the wrong column. Every client supports UTF-16 (LSP 3.17 makes it mandatory), so the client's
        preferences are not offered to pygls and it answers utf-16, the protocol's default."""
        general = params.capabilities.general
        if general is not None and general.position_encodings:
            general.position_encodings = None
        return (yield from super().lsp_initialize(params))

    def _execute_handler(
        self,
        msg_id: Any,
        handler: Callable[..., Any],
        callback: Callable[..., Any],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        """pygls keeps the future of every handler it runs under its message id, and only a request's answer
        removes it: a notification's (every didOpen, didChange and didClose, each with its document text, run by
        pygls's own generator handlers) stayed for the life of the server, 50 MB per 450 fuzzed sequences (found
        by benchmarks/fuzz_server.py). Each future now leaves once done."""
        super()._execute_handler(msg_id, handler, callback, args, kwargs)
        future = self._request_futures.get(msg_id)
        if future is not None:
            futures = self._request_futures

            def forget(done: Any) -> None:
                if futures.get(msg_id) is done:
                    del futures[msg_id]

            future.add_done_callback(forget)


_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")


class LspTextDocument(TextDocument):
    """pygls splits lines with str.splitlines(), which also breaks at form feed, U+2028 and others; LSP breaks
    only at LF, CRLF and CR, so an edit below such a character would land on the wrong line.

    An incremental edit is applied as the protocol says, with the positions completions use (positions.py): a
    character past its line's end is the line's end, a line past the document's end is the document's end.
    pygls's own clamping diverged from the editor's text (found by tests/test_fuzz_server.py): past the end of
    the last line it edited before the line's last character, one unit past a line's end it edited after the
    line break (inside a CR LF, splitting it), and a range whose end came before its start dropped the new text
    or doubled the old. A reversed range is taken in order, as VS Code's `Range` takes it."""

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(_LINE.findall(self.source))

    def _apply_incremental_change(self, change: types.TextDocumentContentChangePartial) -> None:
        source = self.source
        start = clamped_offset(source, change.range.start.line, change.range.start.character)
        end = clamped_offset(source, change.range.end.line, change.range.end.character)
        start, end = min(start, end), max(start, end)
        self._source = source[:start] + change.text + source[end:]


class LspWorkspace(Workspace):
    def _create_text_document(
        self, doc_uri: str, source: str | None = None, version: int | None = None, language_id: str | None = None
    ) -> TextDocument:
        return LspTextDocument(
            doc_uri,
            source=source,
            version=version,
            language_id=language_id,
            sync_kind=self._sync_kind,
            position_codec=self._position_codec,
        )


@dataclass(frozen=True)
class Answer:
    """What the server has to say at a cursor: the completion (empty for nothing), the word it extends, the
    system that proposed it and its confidence, and whether it is the rest of the suggestion being typed."""

    text: str = ""
    word: str = ""
    system: str = ""
    confidence: float = 0.0
    mode: str = "line"
    language: str | None = None
    typed_ahead: bool = False
    superseded: bool = False  # a newer request took over: nothing was shown, nothing to count


NO_ANSWER = Answer()
SUPERSEDED = Answer(superseded=True)


class DoubleServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("codedouble", tool_version(), protocol_cls=Protocol)
        self.options = opts.Options()
        self.engine: Engine | None = None
        self.state = "starting"  # starting, loading, ready, missing, broken, stale (refused: trained on forgotten data)
        self.source = ""  # why this double: the setting, the command line, the repository or the default
        self.stale: dict[str, Any] | None = None  # why the double in use was trained on data since forgotten
        self.problem = ""
        self.artifact: Path | None = None
        self.default_artifact: Path | None = None  # `codedouble serve --artifact`, when the editor names none
        self.flag_settings: dict[str, Any] = {}  # `codedouble serve --backend/--url/...`, when the editor sets none
        self.artifact_stamp: float | None = None
        self.workspace_root: Path | None = None
        self.recent = suggest.Recent()
        self.cache: suggest.Lru[Proposal] = suggest.Lru()
        self.feedback = fb.Feedback()
        self.typed_ahead = 0
        self.latencies: deque[float] = deque(maxlen=LATENCIES_KEPT)
        self.newest: dict[tuple[str, str], int] = {}  # (document, request kind) -> its newest ticket
        self.tickets = itertools.count(1)
        self.inference = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codedouble-model")
        self._told: set[str] = set()
        self._watched_at = 0.0
        self._loading = threading.Lock()
        # The repository around the open documents, as context for the n-gram and retrieval (indexer.py).
        self.indexer = WorkspaceIndexer(None, lambda: self.options.exclude)
        # Commit message buffers: the drafter of the double in use, and each open buffer's draft (the staged
        # change does not change while its message is written), with what its comment lines start with.
        self.drafter: tuple[Engine, Drafter] | None = None
        self.drafts: dict[str, tuple[str, str]] = {}
        # Next edits (next_edits.py): all their state is touched on this one thread, in the order the
        # notifications came, so that neither a model's forward pass nor the event loop waits on a parse.
        self.next_edits = nx.NextEdits()
        self.edits_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="codedouble-edits")
        # The double's snippets (snippets.jsonl); None when it ships none (trained before them) or none is loaded.
        self.snippets: list[snippet_file.Snippet] | None = None

    def _start_io_async(self, stdin: Any = None, stdout: Any = None) -> None:
        """pygls's stdio loop with a reader that survives a bad frame (framing.py)."""
        import sys

        from pygls.io_ import StdinAsyncReader, StdoutWriter

        self._stop_event = threading.Event()
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        reader = StdinAsyncReader(stdin or sys.stdin.buffer, self.thread_pool)
        try:
            asyncio.run(framing.run_async(self._stop_event, reader, self.protocol, log, self.report_server_error))
        except BrokenPipeError:
            log.error("the connection to the client is lost: shutting down")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            self.shutdown()

    def report_server_error(self, error: Exception, source: Any) -> None:
        # A bad message from the client is answered and logged, never a pop-up in the middle of typing.
        log.warning("%s: %s", getattr(source, "__name__", source), error)
        self.window_log_message(types.LogMessageParams(types.MessageType.Warning, f"codedouble: {error}"))

    # -- the double ---------------------------------------------------------------------------------------
    def tell_once(self, message: str, kind: types.MessageType = types.MessageType.Warning) -> None:
        if message not in self._told:
            self._told.add(message)
            self.window_show_message(types.ShowMessageParams(kind, message))

    def resolve_artifact(self) -> Path | None:
        return self.choose_artifact()[0]

    def choose_artifact(self) -> tuple[Path | None, str]:
        """The double to serve and why, in order: the editor's `artifact` setting, `serve --artifact`, the
        open repository's current double, the user's default double."""
        if self.options.artifact is not None:
            return self.options.artifact, "the editor's artifact setting"
        if self.default_artifact is not None:
            return self.default_artifact, "codedouble serve --artifact"
        root = _repository(self.workspace_root)
        current = current_artifact(str(root)) if root is not None else None
        if current is not None:
            return current, f"the current double of {root}"
        mine = default_artifact()
        if mine is not None:
            where = f"{root} has no double of its own" if root is not None else "the workspace is not a repository"
            return mine, f"your default double ({where})"
        return None, "no double: none for this repository and no default"

    def load(self) -> None:
        """Load (or reload) the double in the background, with progress shown in the editor."""
        threading.Thread(target=self._load, name="codedouble-load", daemon=True).start()

    def _load(self) -> None:
        with self._loading:
            artifact, self.source = self.choose_artifact()
            if artifact is None:
                self.engine, self.artifact = None, None
                self.use_patterns([])
                self.snippets = None
                where = self.workspace_root or "this workspace"
                self.problem = (
                    f"codedouble: no double for {where} yet; create one with `codedouble mine {where} --out DATASET` "
                    "then `codedouble train DATASET` (completions stay empty until then)"
                )
                # Told before the state changes: a client that sees the state has already been sent the message.
                self.tell_once(self.problem)
                self.state = "missing"
                return
            self.stale = _stale(artifact)
            if self.stale is not None:
                message = tombstones.stale_message(artifact.name, self.stale)
                if self.options.refuse_stale:
                    self.engine, self.artifact = None, artifact
                    self.use_patterns([])  # its habits were learnt from the forgotten data too
                    self.snippets = None
                    self.artifact_stamp = _stamp(artifact)
                    self.problem = f"{message} (not served: the refuseStale setting is on)"
                    self.tell_once(self.problem, types.MessageType.Error)
                    self.state = "stale"
                    return
                self.tell_once(message)
            self.state = "loading"
            token = f"codedouble-load-{time.monotonic_ns()}"
            progress = self._progress(token, f"codedouble: loading {artifact.name}")
            try:
                engine = load_engine(artifact, log=lambda message: progress(message), backend=self.backend())
            except Exception as exc:  # noqa: BLE001 - whatever breaks, the user hears of it and the server lives
                self.engine, self.artifact = None, artifact
                self.use_patterns([])
                self.snippets = None
                self.problem = f"codedouble: the double at {artifact} cannot be used: {exc}"
                self.tell_once(self.problem, types.MessageType.Error)
                self.state = "broken"
                return
            finally:
                progress(None)
            try:
                self.snippets = snippet_file.load(artifact)
            except snippet_file.SnippetsError as exc:  # the completions still serve, without snippet items
                self.snippets = None
                self.tell_once(f"codedouble: no snippets: {exc}")
            self.engine, self.artifact, self.state, self.problem = engine, artifact, "ready", ""
            self.artifact_stamp = _stamp(artifact)
            self.use_patterns(*self._edit_patterns(artifact))
            self.log_feedback()
            self.cache.clear()
            log.info("serving %s", artifact)
            quiet = suggest.quiet_double(engine.combined.abstention.validation)
            if quiet and self.options.min_confidence is None:
                self.tell_once(quiet, types.MessageType.Info)

    def _edit_patterns(self, artifact: Path) -> tuple[list[contract_edits.EditPattern], contract_edits.Evidence | None]:
        """The double's mined rewrites and its measured classes of edits just made; none when it has none (trained
        before edits.jsonl) or when they are damaged, which is said once and costs only the proposals from the
        history, never the completions."""
        try:
            found = contract_edits.load_all(artifact)
        except contract_edits.EditsError as exc:
            self.tell_once(f"codedouble: next edits from your history are off: {exc}")
            return [], None
        return found if found is not None else ([], None)

    # -- next edits ---------------------------------------------------------------------------------------
    def use_patterns(
        self, patterns: list[contract_edits.EditPattern], classes: contract_edits.Evidence | None = None
    ) -> None:
        """Propose the habits of the double in use (none while there is none), gated by its measured classes."""
        self.edits_thread.submit(self._on_edits_thread, self.next_edits.use, patterns, classes)

    def _on_edits_thread(self, work: Callable[..., Any], *args: Any) -> Any:
        """Run `work` for a notification; a bug in it is logged with its traceback and costs the next edits only."""
        try:
            return work(*args)
        except Exception:  # noqa: BLE001 - the notification has no answer to carry it; completions go on
            log.exception("next edits: %s failed", getattr(work, "__name__", work))
            return None

    def next_edits_for(self, uri: str) -> tuple[str, str, str | None] | None:
        """(the document's key, its text, its language) when next edits apply to the open document `uri`: on,
        not excluded, of a language served, not too big; else None."""
        document = self.document(uri)
        if document is None or not self.options.next_edits:
            return None
        text, path = document.source, document.path
        language = language_for_path(path)
        if len(text) > min(nx.MAX_CHARS, MAX_DOCUMENT_CHARS) or not self.options.enabled(language, path):
            return None
        return unquote(uri), text, language

    def track_edits(self, uri: str, opened: bool) -> None:
        """Tell the session of a document's new text (off the event loop); a document next edits do not apply
        to is forgotten, so that nothing of an excluded file is learnt or proposed."""
        found = self.next_edits_for(uri)
        if found is None:
            self.edits_thread.submit(self._on_edits_thread, self.next_edits.closed, unquote(uri))
            return
        work = self.next_edits.opened if opened else self.next_edits.changed
        self.edits_thread.submit(self._on_edits_thread, work, *found)

    async def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction]:
        """The next edits whose text meets the request's range, as code actions."""
        only = params.context.only if params.context is not None else None
        found = self.next_edits_for(params.text_document.uri)
        if found is None or not nx.wanted(only):
            return []
        key, text, language = found
        precision = self.options.next_edit_min_precision

        def compute() -> list[types.CodeAction]:
            proposals = self.next_edits.proposals(key, text, language, precision)
            return nx.actions(params.text_document.uri, text, proposals, params.range)

        return await asyncio.get_running_loop().run_in_executor(self.edits_thread, compute)

    def backend(self) -> Backend | None:
        """Where the model runs, from the settings (None: here)."""
        o = self.options
        if not o.remote():
            return None
        return Backend(o.backend, o.url, o.model, o.api_key_env, o.timeout_ms)  # type: ignore[arg-type]

    def backend_status(self) -> dict[str, Any]:
        model = self.engine.model if self.engine is not None else None
        if isinstance(model, RemoteModel):
            return model.status()
        return {"kind": self.options.backend, "url": self.options.url or None, "state": "local"}

    def log_feedback(self) -> None:
        """Point the feedback log at the double in use, or nowhere when the setting turned it off."""
        artifact = self.artifact if self.state == "ready" else None
        path = fb.log_path(artifact) if artifact is not None and self.options.feedback_log else None
        self.feedback.use(path, artifact.name if artifact is not None else "")

    def _progress(self, token: str, title: str) -> Callable[[str | None], None]:
        """A `$/progress` reporter: a message, or None to end. Silent if the client cannot show progress."""
        window = self.client_capabilities.window
        if not (window and window.work_done_progress):
            return lambda _message: None
        try:
            self.work_done_progress.create(token)
            self.work_done_progress.begin(token, types.WorkDoneProgressBegin(title=title))
        except Exception:  # noqa: BLE001 - progress is a nicety; loading goes on without it
            return lambda _message: None

        def report(message: str | None) -> None:
            if message is None:
                self.work_done_progress.end(token, types.WorkDoneProgressEnd())
            else:
                self.work_done_progress.report(token, types.WorkDoneProgressReport(message=message))

        return report

    def watch(self) -> None:
        """Reload when a new double replaced the one in use (a retrain, or a new `current` one)."""
        now = time.monotonic()
        if now - self._watched_at < WATCH_SECONDS or self._loading.locked():
            return
        self._watched_at = now
        artifact = self.resolve_artifact()
        if artifact != self.artifact or (artifact is not None and _stamp(artifact) != self.artifact_stamp):
            if artifact is not None or self.state != "missing":
                self.load()

    def document(self, uri: str) -> TextDocument | None:
        """The open document `uri`. pygls keeps documents by their percent-decoded URI (VS Code encodes a space
        or a drive's colon), so looking one up by the URI as sent missed every such document."""
        return self.workspace.text_documents.get(unquote(uri))

    # -- completions --------------------------------------------------------------------------------------
    async def suggestion(self, uri: str, position: types.Position, kind: str) -> Answer:
        """The answer at `position` of the open document `uri`; an empty one whenever
        there is nothing to say: unknown document, excluded file, no double yet, or a newer request of the
        same `kind` (an editor may ask for inline and list completions at each keystroke: neither cancels the
        other, and the second is served from the cache the first filled)."""
        started = time.perf_counter()
        document = self.document(uri)
        if document is None:
            return NO_ANSWER
        text = document.source
        if len(text) > MAX_DOCUMENT_CHARS:
            return NO_ANSWER
        try:
            offset = offset_at(text, position.line, position.character)
        except PositionError:
            return NO_ANSWER
        path = document.path
        language = language_for_path(path)
        if not self.options.enabled(language, path):
            return NO_ANSWER
        self.watch()
        prefix, suffix = text[:offset], text[offset:]
        word = _word_before(prefix)
        reused = self.recent.reuse(uri, prefix, suffix)
        if reused is not None:
            self.typed_ahead += 1
            self.latencies.append((time.perf_counter() - started) * 1000)
            return Answer(reused, word, mode=mode_at(prefix, language), language=language, typed_ahead=True)
        engine = self.engine
        if engine is None:
            return NO_ANSWER
        mode = mode_at(prefix, language)
        # The newest whole snapshot; the indexer never changes one it has handed over.
        workspace = self.indexer.snapshot if self.options.workspace_context else None
        settings = (str(self.options.min_confidence), workspace.version if workspace is not None else 0)
        key = (str(engine.artifact), path, mode, prefix[-4000:], suffix[:1000], *settings)
        cached = self.cache.get(key)
        if cached is None:
            ticket = next(self.tickets)
            self.newest[(uri, kind)] = ticket
            if self.options.debounce_ms:
                await asyncio.sleep(self.options.debounce_ms / 1000)
                started = time.perf_counter()  # the wait is the user's typing, not the double's latency
            stop = threading.Event()

            def superseded() -> bool:
                return stop.is_set() or self.newest.get((uri, kind)) != ticket

            def compute() -> Proposal | None:
                twin = self.cache.get(key)
                if twin is not None:
                    return twin
                request = Request(path, prefix, suffix, mode, workspace)
                self.indexer.idle.clear()  # the workspace build waits meanwhile
                try:
                    proposal = engine.propose(request, superseded, self.options.min_confidence)
                finally:
                    self.indexer.idle.set()
                if superseded():
                    return None
                lines = self.options.max_lines if mode == "block" else 1
                text = suggest.tidy(proposal.text, prefix, suffix, mode, lines)
                tidied = Proposal(text, proposal.score, system=proposal.system)
                self.cache.put(key, tidied)
                return tidied

            if superseded():
                return SUPERSEDED
            try:
                cached = await asyncio.get_running_loop().run_in_executor(self.inference, compute)
            except asyncio.CancelledError:
                stop.set()  # `$/cancelRequest`: the engine stops at its next token
                raise
            if cached is None or superseded():
                return SUPERSEDED
        self.recent.remember(uri, prefix, suffix, cached.text)
        self.latencies.append((time.perf_counter() - started) * 1000)
        return Answer(cached.text, word, cached.system, cached.score, mode, language)

    def snippet_items(self, uri: str, position: types.Position) -> tuple[list[types.CompletionItem], str]:
        """The double's snippets that fit the cursor, as Snippet items, and the statement typed before the cursor
        that they replace; none for a client that cannot expand snippets, an excluded or unknown document, or
        with the `snippets` setting off."""
        snippets = self.snippets
        if not snippets or not self.options.snippets or not _snippet_support(self.client_capabilities):
            return [], ""
        document = self.document(uri)
        if document is None or len(document.source) > MAX_DOCUMENT_CHARS:
            return [], ""
        text = document.source
        try:
            offset = offset_at(text, position.line, position.character)
        except PositionError:
            return [], ""
        path = document.path
        language = language_for_path(path)
        if language is None or not self.options.enabled(language, path):
            return [], ""
        found = snippet_items.items(snippets, language, path, text, offset, position.line, position.character)
        return found, snippet_items.typed_before(text, offset) if found else ""

    async def commit_draft(self, uri: str) -> tuple[str, str]:
        """The draft message for the commit buffer `uri` (the staged change of the workspace's repository,
        drafted once per buffer on the inference thread by the helper `codedouble commit-message` uses) and
        what git's comment lines there start with (`core.commentChar`)."""
        if uri in self.drafts:
            return self.drafts[uri]
        self.watch()
        engine, document = self.engine, self.workspace.text_documents.get(uri)
        if engine is None or document is None:
            return "", "#"
        root = _repository(self.workspace_root) or _repository(Path(document.path).parent)
        source = document.source

        def compute() -> tuple[str, str]:
            if self.drafter is None or self.drafter[0] is not engine:
                self.drafter = (engine, Drafter.load(engine.artifact, lambda: engine.model))
            change = gitdiff.staged(root) if root is not None else None
            if root is None or change is None or change.empty:
                return "", "#"
            return self.drafter[1].draft(change, gitdiff.identity(root)).text, gitdiff.comment_prefix(root, source)

        try:
            draft = await asyncio.get_running_loop().run_in_executor(self.inference, compute)
        except gitdiff.CommitMessageError as exc:
            log.warning("%s", exc)
            draft = "", "#"
        self.drafts[uri] = draft
        return draft

    def status(self) -> dict[str, Any]:
        provenance: dict[str, Any] = {}
        if self.artifact is not None and self.state == "ready":
            provenance = provenance_of(read_manifest(self.artifact))
        latencies = list(self.latencies)
        return {
            "state": self.state,
            "problem": self.problem,
            "artifact": str(self.artifact) if self.artifact else None,
            "source": self.source,
            "stale": self.stale,
            "provenance": provenance,
            "latency_ms": {
                "count": len(latencies),
                "p50": percentile(latencies, 50) if latencies else None,
                "p95": percentile(latencies, 95) if latencies else None,
            },
            "cache": {"hits": self.cache.hits, "misses": self.cache.misses, "typed_ahead": self.typed_ahead},
            "options": {
                "languages": list(self.options.languages),
                "exclude": list(self.options.exclude),
                "maxLines": self.options.max_lines,
                "debounceMs": self.options.debounce_ms,
                "minConfidence": self.options.min_confidence,
                "feedbackLog": self.options.feedback_log,
                "workspaceContext": self.options.workspace_context,
                "refuseStale": self.options.refuse_stale,
                "backend": self.options.backend,
                "url": self.options.url,
                "model": self.options.model,
                "apiKeyEnv": self.options.api_key_env,
                "timeoutMs": self.options.timeout_ms,
                "nextEdits": self.options.next_edits,
                "nextEditMinPrecision": self.options.next_edit_min_precision,
                "snippets": self.options.snippets,
            },
            "next_edits": {"patterns": len(self.next_edits.patterns)},
            "snippets": len(self.snippets) if self.snippets is not None else None,
            "backend": self.backend_status(),
            "abstention": _abstention_status(self.engine),
            "feedback": self.feedback.status(),
            "workspace": self.indexer.status(),
        }

    def configure(self, raw: Any) -> None:
        self.options, problems = opts.parse(raw, self.flag_settings)
        for problem in problems:
            self.window_show_message(types.ShowMessageParams(types.MessageType.Warning, problem))
        self.log_feedback()

    def take_feedback(self, raw: Any, default_kind: str | None = None) -> None:
        """A client's report on a shown suggestion; a bad one is logged and ignored, never an error."""
        problem = self.feedback.report(raw, default_kind)
        if problem is not None:
            log.warning("%s", problem)
            self.window_log_message(types.LogMessageParams(types.MessageType.Warning, f"codedouble: {problem}"))


def _abstention_status(engine: Engine | None) -> dict[str, Any] | None:
    """The double's own threshold and what it measured on the engineer's validation commits."""
    if engine is None:
        return None
    abstention = engine.combined.abstention
    return {"threshold": abstention.threshold, "validation": abstention.validation}


def _where(o: opts.Options) -> tuple[Any, ...]:
    """The settings that decide where the model runs: a change reloads the engine."""
    return (o.backend, o.url, o.model, o.api_key_env, o.timeout_ms)


def _stale(artifact: Path) -> dict[str, Any] | None:
    """Why the double at `artifact` holds data the engineer has since forgotten, or None (also when its
    manifest cannot be read: loading it says why)."""
    try:
        return tombstones.stale(read_manifest(artifact))
    except Exception:  # noqa: BLE001 - a broken manifest is reported by the load itself
        return None


def _stamp(artifact: Path) -> float | None:
    try:
        return (artifact / "manifest.json").stat().st_mtime
    except OSError:
        return None


def _repository(root: Path | None) -> Path | None:
    """The git repository holding the workspace, resolved as `codedouble mine` records it."""
    if root is None:
        return None
    try:
        found = git.Repo(root, search_parent_directories=True).working_tree_dir
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, OSError):
        return None
    return Path(found).resolve() if found is not None else None  # a bare repository has no workspace


def _snippet_support(capabilities: types.ClientCapabilities | None) -> bool:
    """Whether the client expands `insertTextFormat: Snippet` items (it says so at initialization)."""
    document = capabilities.text_document if capabilities is not None else None
    completion = document.completion if document is not None else None
    item = completion.completion_item if completion is not None else None
    return bool(item is not None and item.snippet_support)


def _word_before(prefix: str) -> str:
    # `\w` is exactly `str.isalnum()` or "_"; the run is found by the regex engine, not a Python loop over a
    # token that may be a megabyte long.
    return prefix[lexer.run_start(prefix, len(prefix), lexer.WORD_RUN) :]


server = DoubleServer()


@server.feature(types.INITIALIZE)
def initialize(ls: DoubleServer, params: types.InitializeParams) -> None:
    # pygls builds its Workspace just before this handler; documents must split lines the LSP way.
    ls.workspace.__class__ = LspWorkspace
    folders = params.workspace_folders or []
    uri = folders[0].uri if folders else params.root_uri
    if uri:
        from pygls.uris import to_fs_path

        path = to_fs_path(uri)
        ls.workspace_root = Path(path) if path else None
    elif params.root_path:
        ls.workspace_root = Path(params.root_path)
    ls.configure(params.initialization_options)
    ls.indexer.root = _repository(ls.workspace_root) or ls.workspace_root


@server.feature(types.INITIALIZED)
def initialized(ls: DoubleServer, params: types.InitializedParams) -> None:
    ls.load()


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
def did_change_configuration(ls: DoubleServer, params: types.DidChangeConfigurationParams) -> None:
    before = ls.options
    ls.configure(params.settings)
    ls.cache.clear()
    ls.indexer.reconfigured()
    refusal_changed = ls.stale is not None and ls.options.refuse_stale != before.refuse_stale
    if ls.options.artifact != before.artifact or refusal_changed or _where(ls.options) != _where(before):
        ls.load()


# pygls keeps the documents (its own handlers run first); these tell the workspace indexer.
def _tell_indexer(ls: DoubleServer, uri: str, opened: bool) -> None:
    document = ls.document(uri)
    if not ls.options.workspace_context or document is None or len(document.source) > MAX_DOCUMENT_CHARS:
        return
    if opened:
        ls.indexer.opened(document.path, document.source)
    else:
        ls.indexer.changed(document.path, document.source)


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: DoubleServer, params: types.DidOpenTextDocumentParams) -> None:
    _tell_indexer(ls, params.text_document.uri, opened=True)
    ls.track_edits(params.text_document.uri, opened=True)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: DoubleServer, params: types.DidChangeTextDocumentParams) -> None:
    _tell_indexer(ls, params.text_document.uri, opened=False)
    ls.track_edits(params.text_document.uri, opened=False)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: DoubleServer, params: types.DidSaveTextDocumentParams) -> None:
    _tell_indexer(ls, params.text_document.uri, opened=False)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: DoubleServer, params: types.DidCloseTextDocumentParams) -> None:
    from pygls.uris import to_fs_path

    path = to_fs_path(params.text_document.uri)
    if path:
        ls.indexer.closed(path)
    # pygls has dropped the document by now: its key is the decoded URI, as `ls.document` looks it up.
    ls.edits_thread.submit(ls._on_edits_thread, ls.next_edits.closed, unquote(params.text_document.uri))
    ls.recent.forget(params.text_document.uri)
    ls.drafts.pop(params.text_document.uri, None)
    ls.feedback.forget(params.text_document.uri)
    for kind in ("inline", "completion"):
        ls.newest.pop((params.text_document.uri, kind), None)


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def inline_completion(ls: DoubleServer, params: types.InlineCompletionParams) -> types.InlineCompletionList:
    uri, where = params.text_document.uri, params.position
    document = ls.workspace.text_documents.get(uri)
    if document is not None and commit_editor.is_commit_message(document.path, document.language_id):
        draft, comment = await ls.commit_draft(uri)
        rest = commit_editor.rest_of_draft(document.source, where.line, where.character, draft, comment)
        items = [types.InlineCompletionItem(insert_text=rest, range=types.Range(where, where))] if rest else []
        return types.InlineCompletionList(items=items)
    answer = await ls.suggestion(uri, where, "inline")
    if answer.superseded:
        return types.InlineCompletionList(items=[])
    shown = ls.feedback.answer(
        uri,
        answer.text,
        system=answer.system,
        confidence=answer.confidence,
        line=where.line,
        character=where.character,
        language=answer.language,
        mode=answer.mode,
        typed_ahead=answer.typed_ahead,
    )
    if shown is None:
        return types.InlineCompletionList(items=[])
    # The client runs the item's command once it has inserted it: that is how the server hears of acceptance.
    accepted = types.Command(title="codedouble: accepted", command=fb.ACCEPTED_COMMAND, arguments=[{"id": shown.id}])
    item = types.InlineCompletionItem(insert_text=answer.text, range=types.Range(where, where), command=accepted)
    return types.InlineCompletionList(items=[item])


@server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=[".", "(", " "]))
async def completion(ls: DoubleServer, params: types.CompletionParams) -> types.CompletionList:
    answer = await ls.suggestion(params.text_document.uri, params.position, "completion")
    if answer.superseded:
        return types.CompletionList(is_incomplete=True, items=[])
    # The engineer's snippets that fit here, after the double's own completion (their sort texts say so).
    snippets, statement = ls.snippet_items(params.text_document.uri, params.position)
    text, word = answer.text, answer.word
    if not text:
        return types.CompletionList(is_incomplete=True, items=snippets)
    if snippets and statement.endswith(word):
        # The snippets replace the whole statement typed; this item then replaces it too, with itself in front
        # (the same edit): Neovim puts every item of a list where they all start, or else at the word.
        word = statement
    # The item replaces the word being typed, so that clients filtering by that word keep it.
    start = types.Position(params.position.line, params.position.character - len(word.encode("utf-16-le")) // 2)
    first = (word + text).split("\n", 1)[0]
    item = types.CompletionItem(
        label=first.strip() or (word + text).strip()[:60],
        kind=types.CompletionItemKind.Snippet if "\n" in text else types.CompletionItemKind.Text,
        detail="codedouble",
        filter_text=word + text,
        text_edit=types.TextEdit(types.Range(start, params.position), word + text),
        insert_text_format=types.InsertTextFormat.PlainText,
        sort_text="0",
    )
    return types.CompletionList(is_incomplete=True, items=[item, *snippets])


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION, types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.RefactorRewrite])
)
async def code_action(ls: DoubleServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    try:
        return await ls.code_actions(params)
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - a bug in next edits must cost this answer only, never the server
        log.exception("next edits for %s", params.text_document.uri)
        return []


@server.feature(STATUS)
def status(ls: DoubleServer, params: Any) -> dict[str, Any]:
    return ls.status()


@server.feature(DOCUMENT_TEXT)
def document_text(ls: DoubleServer, params: Any) -> dict[str, str] | None:
    """`{"uri": ...}` -> `{"text": ...}`, the open document as the server has it after every edit; null when the
    document is not open."""
    uri = params.get("uri") if isinstance(params, dict) else getattr(params, "uri", None)
    document = ls.document(uri) if isinstance(uri, str) else None
    return {"text": document.source} if document is not None else None


@server.command(STATUS_COMMAND)
def status_command(ls: DoubleServer, *args: Any) -> dict[str, Any]:
    return ls.status()


@server.command(fb.ACCEPTED_COMMAND)
def accepted_command(ls: DoubleServer, *args: Any) -> None:
    """An inline completion item's command: the client inserted the suggestion (server/feedback.py)."""
    ls.take_feedback(list(args), default_kind="all")


@server.feature(fb.NOTIFICATION)
def feedback_notification(ls: DoubleServer, params: Any) -> None:
    """A part of a suggestion accepted, or a suggestion typed over or dismissed (server/feedback.py)."""
    ls.take_feedback(params)


def main(
    tcp: tuple[str, int] | None = None, artifact: Path | None = None, settings: dict[str, Any] | None = None
) -> None:
    """`settings`: the editor settings `codedouble serve`'s flags give (camelCase keys); the editor's own win."""
    import sys

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="codedouble serve: %(levelname)s %(message)s")
    server.default_artifact = artifact
    server.flag_settings = dict(settings or {})
    if tcp is not None:
        server.start_tcp(*tcp)  # listens only where told
        return
    # stdout carries the protocol: anything else printed there (a library's notice) would corrupt it.
    stdout = sys.stdout.buffer
    sys.stdout = sys.stderr
    server.start_io(sys.stdin.buffer, stdout)
