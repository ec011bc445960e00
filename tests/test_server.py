"""`codedouble serve` end to end: the real server as a subprocess, driven over stdio by pytest-lsp's client.

A history is built in tmp_path (as in test_eval.py) so that answers are known: every plugin installer the
engineer wrote registers its handler with the same distinctive line, and the double completes that line
exactly. Three servers are started per test worker: one serving that double (most tests), one in a folder
with no double, and one pointed at a broken double.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient, client_capabilities
from pytest_lsp.client import make_test_lsp_client

from codedouble.trainer.mining.miner import MineOptions, mine
from codedouble.trainer.training.model import ModelSize
from codedouble.trainer.training.train import TrainOptions, train
from conftest import ALICE, GitRepo, isolate_git

pytestmark = pytest.mark.asyncio(loop_scope="module")

ANSWER_SECONDS = 30  # no single answer may take longer (a hung request fails, it does not hang the run)
READY_SECONDS = 90  # a fresh server imports torch and loads the double: slow on a busy 2-core machine
REQUEST_CANCELLED = -32800
INVALID_PARAMS = -32602

# --- the engineer's history and the double trained on it -----------------------------------------------------

TINY = TrainOptions(
    from_scratch=True,
    steps=4,
    batch_size=2,
    block_size=64,
    eval_every=2,
    eval_batches=1,
    vocab_size=300,
    heldout_fraction=0.2,
    size=ModelSize(layers=1, hidden=64, context=256),
    tune_lines=0,  # abstention tuning has tests of its own; here it would only slow every training down
)

REGISTER = "registry.register(handler, priority=HIGH_PRIORITY)"
HEADER = "import logging\n\nfrom app.core import HIGH_PRIORITY, registry\n"


def installer(name: str, params: str, before: list[str], after: list[str]) -> str:
    body = [*before, REGISTER, *after]
    return f"def {name}(handler{params}):\n" + "".join(f"    {x}\n" for x in body)


INSTALLERS = [
    ("install_logging", "", ["handler.level = logging.INFO"], ["return handler"]),
    ("install_metrics", ", sink", ["handler.sink = sink", "sink.open()"], ["return sink"]),
    ("install_tracing", ", tracer", ["tracer.attach(handler)"], ["tracer.start()", "return tracer"]),
    ("install_cache", ", size=128", ["handler.cache = {}", "handler.cache_size = size"], ["return handler.cache"]),
    ("install_retry", ", attempts=3", ["handler.attempts = attempts"], ["return handler"]),
    ("install_auth", ", users", ["handler.users = set(users)", 'handler.realm = "app"'], ["return handler.users"]),
]
TEXT_V1 = 'import re\n\n\ndef slugify(title):\n    words = re.findall(r"[a-z0-9]+", title.lower())\n    return "-".join(words)\n'
# Held out (the newest commits): never in the double's corpus.
TEXT_V2 = TEXT_V1 + '\n\ndef truncate(text, width=80):\n    return text[: width - 3].rstrip() + "..."\n'
TEXT_V3 = TEXT_V2 + "\n\ndef shout(text):\n    return text.upper()\n"


def build_history(repo: GitRepo) -> None:
    blocks: list[str] = []
    for i, spec in enumerate(INSTALLERS):
        blocks.append(installer(*spec))
        repo.write("app/plugins.py", HEADER + "\n\n" + "\n\n".join(blocks))
        if i == 1:
            repo.write("app/text.py", TEXT_V1)
        repo.commit(f"Install {spec[0]}", author=ALICE)
    for text in (TEXT_V2, TEXT_V3):
        repo.write("app/text.py", text)
        repo.commit("More text helpers", author=ALICE)


@dataclass(frozen=True)
class Double:
    root: Path  # a scratch folder for this module
    repo: Path
    artifact: Path

    @property
    def plugins(self) -> str:
        """app/plugins.py at HEAD: every installer."""
        return (self.repo / "app" / "plugins.py").read_text(encoding="utf-8")


def make_double(root: Path) -> Double:
    """The history above built in `root / "work"`, mined into `root / "dataset"` and the tiny double trained on it
    into `root / "double"` (also what test_archive.py and the fuzzer serve)."""
    with pytest.MonkeyPatch.context() as mp:
        isolate_git(mp)
        mp.setenv("XDG_DATA_HOME", str(root / "xdg-data"))
        repo = GitRepo(root / "work")
        try:
            build_history(repo)
        finally:
            repo.close()
        mine(repo.path, root / "dataset", MineOptions(all_authors=True), progress=False)
        train(root / "dataset", replace(TINY, out=root / "double"), progress=False)
    return Double(root, repo.path, root / "double")


@pytest.fixture(scope="module")
def double(tmp_path_factory: pytest.TempPathFactory) -> Double:
    return make_double(tmp_path_factory.mktemp("serve"))


# --- starting servers ---------------------------------------------------------------------------------------


def server_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "EMAIL"):
        env.pop(var, None)
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        XDG_DATA_HOME=str(root / "xdg-data"),
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CEILING_DIRECTORIES=str(root.parent),
    )
    return env


async def start_server(root: Path, workspace: Path, *args: str, init: Any = None) -> LanguageClient:
    client = make_test_lsp_client()
    await client.start_io(
        sys.executable, "-m", "codedouble.trainer.cli", "serve", *args, env=server_env(root), cwd=str(workspace)
    )
    result = await asyncio.wait_for(
        client.initialize_session(
            types.InitializeParams(
                capabilities=client_capabilities("visual-studio-code"),  # with window.workDoneProgress
                root_uri=workspace.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=workspace.as_uri(), name=workspace.name)],
                initialization_options=init,
            )
        ),
        READY_SECONDS,
    )
    client.initialize_result = result  # type: ignore[attr-defined]
    return client


async def stop_server(client: LanguageClient) -> None:
    try:
        await asyncio.wait_for(client.shutdown_session(), 10)
    finally:
        await client.stop()


async def status(client: LanguageClient) -> dict[str, Any]:
    got = await asyncio.wait_for(client.protocol.send_request_async("codedouble/status", {}), ANSWER_SECONDS)
    return _plain(got)


def _plain(value: Any) -> Any:
    """A JSON result as dicts and lists, however the client handed it over."""
    if hasattr(value, "_asdict"):  # pygls hands over an object of unknown type as a namedtuple
        value = value._asdict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return {k: _plain(v) for k, v in vars(value).items()}
    return value


async def wait_for_state(
    client: LanguageClient, states: set[str], artifact: Path | None = None, seconds: float = READY_SECONDS
) -> dict[str, Any]:
    """Poll codedouble/status until its state is one of `states` (for `artifact`, if given); the last status."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        got = await status(client)
        if got["state"] in states and (artifact is None or got["artifact"] == str(artifact)):
            return got
        if loop.time() > deadline:
            return got
        await asyncio.sleep(0.1)


def send_raw(client: LanguageClient, method: str, params: Any, msg_id: str | None = None) -> Any:
    """Send `params` as they are, not as the method's type (which the client would refuse to serialise)."""
    protocol = client.protocol
    protocol.get_message_type = lambda _method: None  # type: ignore[method-assign]
    try:
        future = protocol.send_request(method, params, msg_id=msg_id)
    finally:
        del protocol.get_message_type
    return asyncio.wait_for(asyncio.wrap_future(future), ANSWER_SECONDS)


async def configure(client: LanguageClient, settings: Any) -> None:
    if isinstance(settings, dict) and isinstance(settings.get("codedouble"), dict):
        settings = {"codedouble": {**ALONE, **settings["codedouble"]}}
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=settings))
    await status(client)  # a round trip: the notification before it has been handled


# --- documents ----------------------------------------------------------------------------------------------

_names = itertools.count()


def position(text: str, offset: int) -> types.Position:
    """The LSP position of a string index, counted here independently of the server (UTF-16, LF lines)."""
    before = text[:offset]
    line_start = before.rfind("\n") + 1
    return types.Position(
        line=before.count("\n"), character=len(before[line_start:].encode("utf-16-le", "surrogatepass")) // 2
    )


def open_document(
    client: LanguageClient, folder: Path, text: str, name: str | None = None, language: str = "python"
) -> str:
    """Open `text` as a new document (a fresh name each time, so that no cached answer is reused)."""
    name = name or f"app/doc_{next(_names)}.py"
    uri = (folder / name).as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
        )
    )
    return uri


async def inline(client: LanguageClient, uri: str, where: types.Position) -> str:
    """The inline completion's text ("" when there is none)."""
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=where,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
    )
    got = await asyncio.wait_for(client.text_document_inline_completion_async(params), ANSWER_SECONDS)
    items = got.items if isinstance(got, types.InlineCompletionList) else got or []
    assert len(items) <= 1
    if not items:
        return ""
    [item] = items
    assert item.range == types.Range(start=where, end=where)
    assert isinstance(item.insert_text, str)
    return item.insert_text


async def complete(client: LanguageClient, uri: str, where: types.Position) -> types.CompletionList:
    params = types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=uri), position=where)
    got = await asyncio.wait_for(client.text_document_completion_async(params), ANSWER_SECONDS)
    assert isinstance(got, types.CompletionList)
    return got


# The engineer starts a new installer and types the first part of their registry line.
TYPED = "    registry.register(handler, pri"
REST = "ority=HIGH_PRIORITY)"


def registry_document(double: Double, typed: str = TYPED) -> tuple[str, int]:
    """plugins.py with a new installer under way; (text, the cursor's offset after `typed`)."""
    before = double.plugins + "\n\ndef install_webhooks(handler, url):\n    handler.url = url\n" + typed
    return before + "\n    return handler\n", len(before)


async def assert_serving(client: LanguageClient, double: Double) -> None:
    """A good request, in a document of its own, is answered with the engineer's line."""
    text, cursor = registry_document(double)
    uri = open_document(client, double.repo, text)
    assert await inline(client, uri, position(text, cursor)) == REST


# --- the server with the double -----------------------------------------------------------------------------

# The served tests measure the double alone: with workspace context, the many near-copies of plugins.py they
# open (each with its own half-typed line) would be context for one another.
ALONE = {"workspaceContext": False}
BAD_INIT = {"codedouble": {"maxLines": 0, "colour": "blue", **ALONE}}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(double: Double) -> AsyncIterator[LanguageClient]:
    client = await start_server(double.root, double.repo, "--artifact", str(double.artifact), init=BAD_INIT)
    got = await wait_for_state(client, {"ready", "broken", "missing"})
    assert got["state"] == "ready", got
    yield client
    await stop_server(client)


async def test_the_server_advertises_its_features(served: LanguageClient) -> None:
    capabilities = served.initialize_result.capabilities  # type: ignore[attr-defined]
    assert capabilities.inline_completion_provider is not None
    assert capabilities.completion_provider is not None
    assert "codedouble.status" in capabilities.execute_command_provider.commands
    assert capabilities.text_document_sync.change == types.TextDocumentSyncKind.Incremental


async def test_status_names_the_double_and_where_it_came_from(served: LanguageClient, double: Double) -> None:
    got = await status(served)
    assert got["state"] == "ready"
    assert got["problem"] == ""
    assert got["artifact"] == str(double.artifact)
    provenance = got["provenance"]
    assert Path(provenance["repository"]).resolve() == double.repo.resolve()
    assert len(provenance["head"]) == 40
    assert provenance["heldout_commits"] >= 1
    assert provenance["repositories"] == [{"path": provenance["repository"], "head": provenance["head"]}]
    assert set(got["cache"]) == {"hits", "misses", "typed_ahead"}


async def test_status_command_returns_the_status(served: LanguageClient, double: Double) -> None:
    got = await asyncio.wait_for(
        served.workspace_execute_command_async(types.ExecuteCommandParams(command="codedouble.status")), ANSWER_SECONDS
    )
    got = _plain(got)
    assert got["state"] == "ready"
    assert got["artifact"] == str(double.artifact)
    assert set(got) >= {"provenance", "latency_ms", "cache", "options"}


async def test_invalid_initialization_options_are_named_and_the_server_serves(
    served: LanguageClient, double: Double
) -> None:
    texts = [m.message for m in served.messages if m.type == types.MessageType.Warning]
    assert any("'maxLines'" in t and "default" in t for t in texts), texts
    assert any("'colour'" in t and "unknown" in t for t in texts), texts
    # Their defaults are kept, and the double serves.
    assert (await status(served))["options"]["maxLines"] == 8
    await assert_serving(served, double)


async def test_loading_reports_progress(served: LanguageClient) -> None:
    reports = [r for token, r in served.progress_reports.items() if str(token).startswith("codedouble-load")]
    assert len(reports) == 1, served.progress_reports
    [steps] = reports
    assert isinstance(steps[0], types.WorkDoneProgressBegin)
    assert "loading" in steps[0].title
    assert isinstance(steps[-1], types.WorkDoneProgressEnd)
    assert all(isinstance(s, types.WorkDoneProgressReport) for s in steps[1:-1])


async def test_inline_completion_is_the_engineers_line(served: LanguageClient, double: Double) -> None:
    text, cursor = registry_document(double)
    uri = open_document(served, double.repo, text)
    assert await inline(served, uri, position(text, cursor)) == REST
    # Earlier on the line, the rest of it.
    short, at = registry_document(double, "    registry.")
    uri = open_document(served, double.repo, short)
    assert await inline(served, uri, position(short, at)) == REGISTER[len("registry.") :]


async def test_completion_item_replaces_the_word_being_typed(served: LanguageClient, double: Double) -> None:
    text, cursor = registry_document(double)
    uri = open_document(served, double.repo, text)
    where = position(text, cursor)
    got = await complete(served, uri, where)
    assert got.is_incomplete
    [item] = got.items
    assert item.kind == types.CompletionItemKind.Text
    assert isinstance(item.text_edit, types.TextEdit)
    assert item.text_edit.new_text == "pri" + REST
    assert item.text_edit.range == types.Range(
        start=types.Position(line=where.line, character=where.character - 3), end=where
    )
    assert item.filter_text == "pri" + REST
    assert item.label == "pri" + REST


async def test_a_cursor_under_a_signature_gets_a_body_that_ends_with_the_block(
    served: LanguageClient, double: Double
) -> None:
    # A second copy of install_retry: the n-gram has the engineer's body in this very file.
    text = double.plugins + "\n\ndef install_retry(handler, attempts=3):\n"
    uri = open_document(served, double.repo, text + "\n\ndef install_more(handler):\n    return handler\n")
    where = position(text, len(text))
    body = await inline(served, uri, where)
    lines = body.split("\n")
    assert len(lines) > 1
    assert all(line.startswith("    ") for line in lines if line.strip()), body  # no dedented line in it
    assert body == "    handler.attempts = attempts\n    " + REGISTER + "\n    return handler"
    [item] = (await complete(served, uri, where)).items
    assert item.kind == types.CompletionItemKind.Snippet
    assert item.text_edit.new_text == body


async def test_a_body_in_a_file_of_its_own_ends_at_its_return(served: LanguageClient, double: Double) -> None:
    # No later definition in the file to copy a dedent from: the body still ends where the engineer's
    # definitions end (the n-gram predicts the end of a definition from its corpus).
    text = HEADER + "\n\ndef install_auth(handler, users):\n"
    uri = open_document(served, double.repo, text)
    body = await inline(served, uri, position(text, len(text)))
    assert (
        body
        == '    handler.users = set(users)\n    handler.realm = "app"\n    ' + REGISTER + "\n    return handler.users"
    )


async def test_typing_what_was_suggested_is_answered_from_the_suggestion(
    served: LanguageClient, double: Double
) -> None:
    text, cursor = registry_document(double)
    uri = open_document(served, double.repo, text)
    where = position(text, cursor)
    suggestion = await inline(served, uri, where)
    assert suggestion == REST
    before = (await status(served))["cache"]
    served.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(start=where, end=where), text=suggestion[:3])
            ],
        )
    )
    ahead = types.Position(line=where.line, character=where.character + 3)
    assert await inline(served, uri, ahead) == suggestion[3:]
    after = (await status(served))["cache"]
    assert after["typed_ahead"] == before["typed_ahead"] + 1
    assert (after["hits"], after["misses"]) == (before["hits"], before["misses"])  # the engine was not asked


async def inline_item(client: LanguageClient, uri: str, where: types.Position) -> types.InlineCompletionItem:
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=where,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
    )
    got = await asyncio.wait_for(client.text_document_inline_completion_async(params), ANSWER_SECONDS)
    assert isinstance(got, types.InlineCompletionList) and len(got.items) == 1, got
    return got.items[0]


async def feedback_status(client: LanguageClient) -> dict[str, Any]:
    return (await status(client))["feedback"]


async def test_acceptance_reaches_the_status_and_the_log_beside_the_double(
    served: LanguageClient, double: Double
) -> None:
    text, cursor = registry_document(double)
    uri = open_document(served, double.repo, text)
    where = position(text, cursor)
    item = await inline_item(served, uri, where)
    assert item.insert_text == REST
    # The item's command is what the editor runs once it has inserted the suggestion.
    assert item.command is not None and item.command.command == "codedouble.accepted"
    [argument] = _plain(item.command.arguments)
    ident = argument["id"]
    capabilities = served.initialize_result.capabilities  # type: ignore[attr-defined]
    assert "codedouble.accepted" in capabilities.execute_command_provider.commands  # clients run it as a server's
    before = await feedback_status(served)
    assert before["log"] == str(double.root / "feedback.jsonl")  # beside the double's folder, not inside it

    await asyncio.wait_for(
        served.workspace_execute_command_async(
            types.ExecuteCommandParams(command="codedouble.accepted", arguments=item.command.arguments)
        ),
        ANSWER_SECONDS,
    )
    after = await feedback_status(served)
    assert after["accepted"] == before["accepted"] + 1
    assert after["accepted_chars"] == before["accepted_chars"] + len(REST)
    assert after["precision"] is not None and 0 < after["precision"] <= 1

    # A second suggestion: one word taken, then the rest typed over, reported by notification. Bad reports
    # in between are logged and ignored; the server goes on.
    other = open_document(served, double.repo, text)
    second = await inline_item(served, other, where)
    [second_argument] = _plain(second.command.arguments)  # type: ignore[union-attr]
    assert second_argument["id"] != ident
    for bad in (None, [1, 2], {"id": 5}, {"id": second_argument["id"], "event": "liked"}, {"id": "nobody-1"}):
        served.protocol.notify("codedouble/feedback", bad)
    word = {"id": second_argument["id"], "event": "accepted", "kind": "word", "acceptedChars": 5}
    served.protocol.notify("codedouble/feedback", word)
    served.protocol.notify(
        "codedouble/feedback", {"id": second_argument["id"], "event": "rejected", "reason": "typed_over"}
    )
    got = await feedback_status(served)
    assert got["accepted"] == after["accepted"] + 1
    assert got["accepted_chars"] == after["accepted_chars"] + 5
    assert got["rejected"] == after["rejected"] + 1
    assert got["shown"] == after["shown"] + 1

    log = [json.loads(line) for line in (double.root / "feedback.jsonl").read_text(encoding="utf-8").splitlines()]
    mine = [entry for entry in log if entry["id"] in (ident, second_argument["id"])]
    assert [(e["event"], e.get("kind"), e.get("reason")) for e in mine] == [
        ("shown", None, None),
        ("accepted", "all", None),
        ("shown", None, None),
        ("accepted", "word", None),
        ("rejected", None, "typed_over"),
    ]
    assert all(e["double"] == double.artifact.name and e["language"] == "python" for e in mine)
    assert mine[1]["accepted_chars"] == len(REST) and mine[0]["chars"] == len(REST)
    assert "registry" not in (double.root / "feedback.jsonl").read_text(encoding="utf-8")  # no code

    # `feedbackLog: false`: still counted, nothing written.
    await configure(served, {"codedouble": {"feedbackLog": False}})
    try:
        size = (double.root / "feedback.jsonl").stat().st_size
        third = await inline_item(served, open_document(served, double.repo, text), where)
        await asyncio.wait_for(
            served.workspace_execute_command_async(
                types.ExecuteCommandParams(command="codedouble.accepted", arguments=third.command.arguments)  # type: ignore[union-attr]
            ),
            ANSWER_SECONDS,
        )
        off = await status(served)
        assert off["options"]["feedbackLog"] is False and off["feedback"]["log"] is None
        assert off["feedback"]["accepted"] == got["accepted"] + 1
        assert (double.root / "feedback.jsonl").stat().st_size == size
    finally:
        await configure(served, {"codedouble": {}})


async def test_a_repeated_request_comes_from_the_cache(served: LanguageClient, double: Double) -> None:
    text, cursor = registry_document(double)
    uri = open_document(served, double.repo, text)
    where = position(text, cursor)
    assert await inline(served, uri, where) == REST
    before = (await status(served))["cache"]
    assert await inline(served, uri, where) == REST
    after = (await status(served))["cache"]
    assert after["hits"] == before["hits"] + 1


def two_cursors(double: Double) -> tuple[str, int, int]:
    first = double.plugins + "\n\ndef install_a(handler):\n" + TYPED
    second = first + "\n\n\ndef install_b(handler, url):\n    handler.url = url\n    regis"
    return second + "\n", len(first), len(second)


async def test_newest_request_wins(served: LanguageClient, double: Double) -> None:
    text, first, second = two_cursors(double)
    # What each position gets on its own.
    uri = open_document(served, double.repo, text)
    alone = [await inline(served, uri, position(text, first)), await inline(served, uri, position(text, second))]
    assert alone[0] == REST
    assert alone[1] == REGISTER[len("regis") :]
    # Both at once, without waiting for the first: the newest gets its text, the older at most its own.
    uri = open_document(served, double.repo, text)
    older, newer = await asyncio.gather(
        inline(served, uri, position(text, first)), inline(served, uri, position(text, second))
    )
    assert newer == alone[1]
    assert older in ("", alone[0])


async def test_newest_request_wins_while_debouncing(served: LanguageClient, double: Double) -> None:
    text, first, second = two_cursors(double)
    await configure(served, {"codedouble": {"debounceMs": 300}})
    try:
        assert (await status(served))["options"]["debounceMs"] == 300
        uri = open_document(served, double.repo, text)
        older, newer = await asyncio.gather(
            inline(served, uri, position(text, first)), inline(served, uri, position(text, second))
        )
        assert older == ""  # superseded while it waited for more keystrokes
        assert newer == REGISTER[len("regis") :]
    finally:
        await configure(served, {"codedouble": {}})


async def cancel_soon(client: LanguageClient, uri: str, where: types.Position, delay: float) -> Any:
    """Send an inline completion request, `$/cancelRequest` it after `delay`, and return its outcome: the
    result, or the JsonRpcException the server answered with."""
    msg_id = f"cancel-{next(_names)}"
    params = types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=where,
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Automatic),
    )
    pending = asyncio.wrap_future(
        client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id)
    )
    await asyncio.sleep(delay)
    client.cancel_request(types.CancelParams(id=msg_id))
    try:
        return await asyncio.wait_for(pending, ANSWER_SECONDS)
    except JsonRpcException as exc:
        return exc


async def test_cancel_request_while_debouncing_is_answered_cancelled(served: LanguageClient, double: Double) -> None:
    await configure(served, {"codedouble": {"debounceMs": 2000}})
    try:
        text, cursor = registry_document(double)
        uri = open_document(served, double.repo, text)
        outcome = await cancel_soon(served, uri, position(text, cursor), 0.3)
        assert isinstance(outcome, JsonRpcException), outcome
        assert outcome.code == REQUEST_CANCELLED
    finally:
        await configure(served, {"codedouble": {}})
    await assert_serving(served, double)


async def test_cancel_request_while_generating(served: LanguageClient, double: Double) -> None:
    # Under a signature in a file with nothing like it, the n-gram is silent and the model writes a body.
    text = "def unrelated(values):\n    "
    uri = open_document(served, double.repo, text)
    outcome = await cancel_soon(served, uri, position(text, len(text)), 0.02)
    if isinstance(outcome, JsonRpcException):
        assert outcome.code == REQUEST_CANCELLED
    else:
        assert isinstance(outcome, types.InlineCompletionList)  # it was done before the cancel came
    await assert_serving(served, double)


async def test_excluded_files_get_nothing(served: LanguageClient, double: Double) -> None:
    text, cursor = registry_document(double)
    where = position(text, cursor)
    for name in ("config/secrets/prod.py", "app/client_secret.py", ".env.py", "deploy/.env"):
        uri = open_document(served, double.repo, text, name=name)
        assert await inline(served, uri, where) == "", name
        assert not (await complete(served, uri, where)).items, name
    # The same text elsewhere is completed.
    uri = open_document(served, double.repo, text, name="app/hooks.py")
    assert await inline(served, uri, where) == REST


async def test_settings_from_did_change_configuration(served: LanguageClient, double: Double) -> None:
    text, cursor = registry_document(double)
    where = position(text, cursor)
    generated = open_document(served, double.repo, text, name="app/generated/hooks.py")
    plain = open_document(served, double.repo, text)
    try:
        await configure(served, {"codedouble": {"exclude": ["generated/**"]}})
        assert await inline(served, generated, where) == ""
        assert await inline(served, plain, where) == REST
        await configure(served, {"codedouble": {"languages": ["go", "rust"]}})
        assert await inline(served, plain, where) == ""
        await configure(served, {"codedouble": {"languages": "python"}})  # bad: named, default kept
        assert any("'languages'" in m.message for m in served.messages)
        assert await inline(served, plain, where) == REST
    finally:
        await configure(served, {"codedouble": {}})
    assert await inline(served, generated, where) == REST


async def test_max_lines_cuts_a_body(served: LanguageClient, double: Double) -> None:
    text = double.plugins + "\n\ndef install_auth(handler, users):\n"
    await configure(served, {"codedouble": {"maxLines": 2}})
    try:
        uri = open_document(served, double.repo, text)
        body = await inline(served, uri, position(text, len(text)))
        assert body == '    handler.users = set(users)\n    handler.realm = "app"'
    finally:
        await configure(served, {"codedouble": {}})


# --- bad input, each followed by a good request ---------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"textDocument": {"uri": "file:///x.py"}},
        {
            "textDocument": {"uri": "file:///x.py"},
            "position": {"line": "one", "character": 0},
            "context": {"triggerKind": 1},
        },
        {"textDocument": 5, "position": {"line": 0, "character": 0}, "context": {"triggerKind": 1}},
    ],
)
async def test_malformed_params_are_answered_invalid_params(
    served: LanguageClient, double: Double, params: dict[str, Any]
) -> None:
    with pytest.raises(JsonRpcException) as caught:
        await send_raw(served, types.TEXT_DOCUMENT_INLINE_COMPLETION, params)
    assert caught.value.code == INVALID_PARAMS
    with pytest.raises(JsonRpcException) as caught:
        await send_raw(served, types.TEXT_DOCUMENT_COMPLETION, params)
    assert caught.value.code == INVALID_PARAMS
    await assert_serving(served, double)


async def test_an_unknown_method_is_answered_method_not_found(served: LanguageClient, double: Double) -> None:
    with pytest.raises(JsonRpcException) as caught:
        await asyncio.wait_for(served.protocol.send_request_async("codedouble/nothing", {}), ANSWER_SECONDS)
    assert caught.value.code == -32601
    await assert_serving(served, double)


async def test_positions_out_of_range(served: LanguageClient, double: Double) -> None:
    text, cursor = registry_document(double)
    uri = open_document(served, double.repo, text)
    where = position(text, cursor)
    assert await inline(served, uri, types.Position(line=10_000, character=0)) == ""  # past the last line
    assert not (await complete(served, uri, types.Position(line=10_000, character=0))).items
    # Past the end of the line is the line's end: here, the cursor.
    assert await inline(served, uri, types.Position(line=where.line, character=999)) == REST
    # A negative position is refused (invalid params) or answered with nothing.
    raw = {"textDocument": {"uri": uri}, "position": {"line": -1, "character": -4}, "context": {"triggerKind": 2}}
    try:
        got = await send_raw(served, types.TEXT_DOCUMENT_INLINE_COMPLETION, raw)
    except JsonRpcException as exc:
        assert exc.code == INVALID_PARAMS
    else:
        assert not got.items
    await assert_serving(served, double)


async def test_a_document_never_opened_gets_nothing(served: LanguageClient, double: Double) -> None:
    uri = (double.repo / "app" / "never_opened.py").as_uri()
    assert await inline(served, uri, types.Position(line=0, character=0)) == ""
    assert not (await complete(served, uri, types.Position(line=0, character=0))).items
    await assert_serving(served, double)


async def test_a_closed_document_gets_nothing(served: LanguageClient, double: Double) -> None:
    text, cursor = registry_document(double)
    uri = open_document(served, double.repo, text)
    assert await inline(served, uri, position(text, cursor)) == REST
    served.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    assert await inline(served, uri, position(text, cursor)) == ""
    await assert_serving(served, double)


async def test_a_huge_document_gets_nothing(served: LanguageClient, double: Double) -> None:
    text, cursor = registry_document(double)
    huge = "x = 1\n" * 850_000 + text  # ~5 MB
    uri = open_document(served, double.repo, huge)
    try:
        assert await inline(served, uri, position(huge, len(huge) - len(text) + cursor)) == ""
    finally:
        served.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
    await assert_serving(served, double)


async def test_a_large_document_under_the_limit_is_completed(served: LanguageClient, double: Double) -> None:
    text, cursor = registry_document(double)
    large = (double.plugins + "\n\n") * 1200 + text  # ~1.9 MB of code
    uri = open_document(served, double.repo, large)
    try:
        assert await inline(served, uri, position(large, len(large) - len(text) + cursor)) == REST
    finally:
        served.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )


async def test_a_megabyte_word_above_the_cursor_is_answered_in_the_usual_time(
    served: LanguageClient, double: Double
) -> None:
    # A 1 MB string literal with no space in it, above the line being typed. The n-gram's search for the token
    # under the cursor (`(?:\w+|...)$`) retried from every character of that word: 1.2 s a request at 20,000
    # characters, about 45 minutes at 1 MB, with every later completion queued behind it (issue 18).
    text, cursor = registry_document(double)
    word = 'BLOB = "' + "x" * 1_000_000 + '"\n'
    big = word + text
    uri = open_document(served, double.repo, big)
    try:
        await status(served)  # the document is in before the clock starts
        started = time.perf_counter()
        got = await inline(served, uri, position(big, len(word) + cursor))
        assert time.perf_counter() - started < 2.0
        assert got in (REST, "")
    finally:
        served.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
    await assert_serving(served, double)


@pytest.mark.parametrize(
    ("name", "language"), [("notes.txt", "plaintext"), ("README.md", "markdown"), ("types.d.ts", "typescript")]
)
async def test_an_unsupported_language_gets_nothing(
    served: LanguageClient, double: Double, name: str, language: str
) -> None:
    text, cursor = registry_document(double)
    uri = open_document(served, double.repo, text, name=name, language=language)
    assert await inline(served, uri, position(text, cursor)) == ""
    assert not (await complete(served, uri, position(text, cursor))).items
    await assert_serving(served, double)


ODD = (
    "# 🎉 emoji, 𝔘 a math letter, e\u0301 a combining accent, \u200d a joiner, \ufeff a BOM, \u00a0 a no-break space\n"
    '_SEP = "\u2028\u2029"  # line and paragraph separators inside a string are not line breaks\n'
    "# a lone surrogate: \ud800, and a NUL: \x00\n"
)


async def test_odd_unicode_before_the_cursor(served: LanguageClient, double: Double) -> None:
    # Astral characters on the cursor's own line count two UTF-16 units: miscounted, the cursor would land two
    # characters to the right, inside the comment after it.
    text = (
        double.plugins
        + "\n\n"
        + ODD
        + '\ndef install_webhooks(handler, url="🎉𝔘"):\n    '
        + "label = '🎉𝔘'; registry.register(handler, pri"
    )
    cursor = len(text)
    text += "  # 🎉 done\n    return handler\n"
    uri = open_document(served, double.repo, text)
    assert await inline(served, uri, position(text, cursor)) == REST
    await assert_serving(served, double)


async def test_crlf_line_endings(served: LanguageClient, double: Double) -> None:
    text, cursor = registry_document(double)
    before, after = text[:cursor].replace("\n", "\r\n"), text[cursor:].replace("\n", "\r\n")
    uri = open_document(served, double.repo, before + after)
    assert await inline(served, uri, types.Position(line=before.count("\r\n"), character=len(TYPED))) == REST
    assert (
        await inline(served, uri, types.Position(line=before.count("\r\n"), character=999)) == REST
    )  # the line ends before CR LF


@pytest.mark.parametrize("separator", ["", "\x0c", "\u2028"])  # "": the same edit in a plain file works
async def test_an_edit_below_a_character_python_splits_lines_on(
    served: LanguageClient, double: Double, separator: str
) -> None:
    # pygls splits lines with str.splitlines(), which also breaks at a form feed (common between sections of
    # Python files), U+2028 and more; LSP breaks only at LF, CR LF and CR. An edit below one must still land
    # on its line, or the server's copy of the document drifts from the editor's.
    text = (
        double.plugins
        + f"\n\n# {separator}\n\ndef install_webhooks(handler, url):\n    handler.url = url\n    \n    return handler\n"
    )
    cursor = text.index("url = url\n") + len("url = url\n") + 4
    uri = open_document(served, double.repo, text)
    where = position(text, cursor)
    served.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(start=where, end=where), text=TYPED.strip())
            ],
        )
    )
    assert (
        await inline(served, uri, types.Position(line=where.line, character=where.character + len(TYPED.strip())))
        == REST
    )


async def test_latency_is_reported(served: LanguageClient, double: Double) -> None:
    for _ in range(3):
        await assert_serving(served, double)
    latency = (await status(served))["latency_ms"]
    assert latency["count"] >= 3
    assert 0 <= latency["p50"] <= latency["p95"]
    assert latency["p95"] < ANSWER_SECONDS * 1000


# --- no double yet ------------------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def missing(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[LanguageClient, Path]]:
    root = tmp_path_factory.mktemp("missing")
    workspace = root / "project"  # not a git repository, and no --artifact
    workspace.mkdir()
    client = await start_server(root, workspace)
    yield client, workspace
    await stop_server(client)


async def test_without_a_double_the_server_says_how_to_make_one(missing: tuple[LanguageClient, Path]) -> None:
    client, workspace = missing
    got = await wait_for_state(client, {"missing", "ready", "broken"})
    assert got["state"] == "missing"
    assert got["artifact"] is None
    assert "codedouble mine" in got["problem"] and "codedouble train" in got["problem"]
    shown = [m for m in client.messages if "codedouble mine" in m.message]
    assert len(shown) == 1
    assert str(workspace) in shown[0].message


async def test_without_a_double_completions_are_empty(missing: tuple[LanguageClient, Path]) -> None:
    client, workspace = missing
    await wait_for_state(client, {"missing"})
    text = "def install(handler):\n    registry.register(handler, pri"
    uri = open_document(client, workspace, text)
    assert await inline(client, uri, position(text, len(text))) == ""
    assert not (await complete(client, uri, position(text, len(text)))).items
    got = _plain(await client.workspace_execute_command_async(types.ExecuteCommandParams(command="codedouble.status")))
    assert got["state"] == "missing"
    assert len([m for m in client.messages if "codedouble mine" in m.message]) == 1  # said once, not per request


# --- a broken double ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broken_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("broken")
    made = {}
    for name, content in {
        "garbage": b"{this is not json",
        "list": b"[1, 2, 3]",
        "binary": b"\xff\xfe\x00garbage\x80",
        "foreign": b'{"tool": "something-else"}',
    }.items():
        folder = root / name
        folder.mkdir()
        (folder / "manifest.json").write_bytes(content)
        made[name] = folder
    empty = root / "empty"
    empty.mkdir()
    made["empty"] = empty
    return made


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def broken(
    tmp_path_factory: pytest.TempPathFactory, broken_artifacts: dict[str, Path]
) -> AsyncIterator[LanguageClient]:
    root = tmp_path_factory.mktemp("broken-server")
    client = await start_server(root, root, "--artifact", str(broken_artifacts["garbage"]))
    yield client
    await stop_server(client)


async def test_a_broken_double_is_named_with_its_problem(
    broken: LanguageClient, broken_artifacts: dict[str, Path]
) -> None:
    garbage = broken_artifacts["garbage"]
    await configure(broken, {"artifact": str(garbage)})  # back to the start, whatever ran before
    got = await wait_for_state(broken, {"broken", "ready"}, garbage)
    assert got["state"] == "broken"
    assert got["artifact"] == str(garbage)
    assert "not valid JSON" in got["problem"] and str(garbage) in got["problem"]
    errors = [m.message for m in broken.messages if m.type == types.MessageType.Error]
    assert any("not valid JSON" in m and str(garbage) in m for m in errors), errors
    text = "def install(handler):\n    registry.register(handler, pri"
    uri = open_document(broken, garbage, text)
    assert await inline(broken, uri, position(text, len(text))) == ""
    assert not (await complete(broken, uri, position(text, len(text)))).items


@pytest.mark.parametrize(
    ("kind", "problem"),
    [("foreign", "not a codedouble artifact"), ("empty", "no manifest.json"), ("list", ""), ("binary", "")],
)
async def test_every_broken_double_is_reported_broken(
    broken: LanguageClient, broken_artifacts: dict[str, Path], kind: str, problem: str
) -> None:
    # Whatever is wrong with a double (a manifest that is a JSON list, or not UTF-8), the loader reports it
    # as broken with a message; it never dies leaving the status "loading" for good.
    folder = broken_artifacts[kind]
    await configure(broken, {"artifact": str(folder)})
    got = await wait_for_state(broken, {"broken", "ready"}, folder, seconds=6)  # it takes milliseconds
    assert got["state"] == "broken", got
    assert str(folder) in got["problem"] and problem in got["problem"]


async def test_a_broken_server_recovers_when_pointed_at_a_good_double(broken: LanguageClient, double: Double) -> None:
    await configure(broken, {"codedouble": {"artifact": str(double.artifact)}})
    got = await wait_for_state(broken, {"ready"}, double.artifact)
    assert got["state"] == "ready", got
    assert got["problem"] == ""
    await assert_serving(broken, double)


# --- a new double replaces the one in use; the workspace's own double by default; tcp ------------------------


async def test_a_retrained_double_is_picked_up_without_a_restart(double: Double, tmp_path: Path) -> None:
    import json
    import shutil

    artifact = tmp_path / "double"
    shutil.copytree(double.artifact, artifact)
    client = await start_server(double.root, double.repo, "--artifact", str(artifact))
    try:
        first = await wait_for_state(client, {"ready"}, artifact)
        assert first["state"] == "ready"
        # `codedouble train --out` swaps a whole new artifact into place: here, a newer manifest.
        manifest = json.loads((artifact / "manifest.json").read_text(encoding="utf-8"))
        manifest["created"] = "2099-01-01T00:00:00+00:00"
        (artifact / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        text, offset = registry_document(double)
        uri = open_document(client, double.repo, text)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_SECONDS
        while True:
            await inline(client, uri, position(text, offset))  # requests are when the server looks
            got = await status(client)
            if got["state"] == "ready" and got["provenance"].get("created") == manifest["created"]:
                break
            assert loop.time() < deadline, got
            await asyncio.sleep(0.5)
        assert await inline(client, uri, position(text, offset)) == REST
    finally:
        await stop_server(client)


async def test_without_settings_the_workspace_repositorys_current_double_is_served(double: Double) -> None:
    import shutil

    from codedouble.server.contract.artifact import doubles_dir, mark_current

    # What `codedouble train` without --out leaves: the double in the server's data directory, marked current.
    folder = doubles_dir(str(double.repo.resolve()))  # its name depends on the repository's path alone
    target = double.root / "xdg-data" / "codedouble" / "doubles" / folder.name / "20260101T000000Z"
    shutil.copytree(double.artifact, target)
    mark_current(target)
    client = await start_server(double.root, double.repo)
    try:
        got = await wait_for_state(client, {"ready", "missing", "broken"})
        assert got["state"] == "ready" and got["artifact"] == str(target), got
    finally:
        await stop_server(client)


async def test_a_completion_draws_on_another_file_of_the_workspace(double: Double, tmp_path: Path) -> None:
    """A line that exists only in another file of the workspace completes; one that exists only in an
    excluded file (secrets, .env) never does, nor is that file read."""
    workspace = tmp_path / "workspace"
    (workspace / "lib").mkdir(parents=True)
    (workspace / "lib" / "helpers.py").write_text(
        'def checksum(payload):\n    digest = compute_checksum(payload, algorithm="blake2b")\n    return digest\n'
    )
    (workspace / "secrets").mkdir()
    (workspace / "secrets" / "vault.py").write_text(
        "def token(vault):\n    key = load_api_token(vault, region='eu-west-9')\n"
    )
    (workspace / ".env").write_text("key = load_api_token(vault, region='eu-west-9')\n")
    client = await start_server(double.root, workspace, "--artifact", str(double.artifact))
    try:
        assert (await wait_for_state(client, {"ready", "broken", "missing"}))["state"] == "ready"
        text = "def verify(payload):\n    digest = compute_checksum(payload, algo\n"
        uri = open_document(client, workspace, text, name="app/main.py")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + READY_SECONDS
        while (got := await status(client))["workspace"]["builds"] < 1 and loop.time() < deadline:
            await asyncio.sleep(0.1)
        assert got["workspace"]["files"] == 2, got["workspace"]  # lib/helpers.py and the open document
        cursor = text.index("algo") + len("algo")
        assert await inline(client, uri, position(text, cursor)) == 'rithm="blake2b")'
        secret = "def verify(vault):\n    key = load_api_token(vault, regi\n"
        uri = open_document(client, workspace, secret, name="app/other.py")
        cursor = secret.index("regi") + len("regi")
        assert "eu-west-9" not in await inline(client, uri, position(secret, cursor))
    finally:
        await stop_server(client)


async def test_tcp_mode_listens_where_told_and_answers(double: Double) -> None:
    import json
    import socket
    import subprocess
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "codedouble.trainer.cli",
            "serve",
            "--artifact",
            str(double.artifact),
            "--tcp",
            f"127.0.0.1:{port}",
        ],
        env=server_env(double.root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError(f"the server exited with {proc.returncode}") from None
                time.sleep(0.1)
        else:
            raise AssertionError("the server never listened")
        with conn:
            body = json.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}
            ).encode()
            conn.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            conn.settimeout(ANSWER_SECONDS)
            reply = b""
            while b"inlineCompletionProvider" not in reply:
                chunk = conn.recv(65536)
                assert chunk, reply
                reply += chunk
    finally:
        proc.terminate()
        proc.wait(10)


async def test_a_malformed_tcp_address_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from codedouble.trainer.cli import main

    with pytest.raises(SystemExit) as exited:  # argparse's own usage error
        main(["serve", "--tcp", "localhost"])
    assert exited.value.code == 2
    assert "--tcp: wants [HOST:]PORT, not 'localhost'" in capsys.readouterr().err


async def test_inline_and_list_completion_at_one_keystroke_do_not_cancel_each_other(
    served: LanguageClient, double: Double
) -> None:
    text, offset = registry_document(double)
    uri = open_document(served, double.repo, text)
    where = position(text, offset)
    shown, listed = await asyncio.gather(inline(served, uri, where), complete(served, uri, where))
    assert shown == REST
    assert [item.text_edit.new_text for item in listed.items] == ["pri" + REST]  # type: ignore[union-attr]


# --- commit messages ----------------------------------------------------------------------------------------


async def test_a_commit_message_buffer_is_offered_the_draft_of_the_staged_change(
    served: LanguageClient, double: Double
) -> None:
    """Neovim's commit editor (filetype gitcommit, .git/COMMIT_EDITMSG): on the empty summary line the server
    proposes the draft `codedouble commit-message` prints for the staged change; typed to match its start, the
    rest of it; typed otherwise, nothing."""
    import subprocess

    from codedouble.server.commits import gitdiff
    from codedouble.server.commits.draft import Drafter

    quiet = double.repo / "app" / "quiet.py"
    quiet.write_text("def whisper(text):\n    return text.lower()\n", encoding="utf-8")
    subprocess.run(["git", "add", "app/quiet.py"], cwd=double.repo, check=True, env=server_env(double.root))
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in server_env(double.root).items():  # git as the server sees it
                mp.setenv(name, value)
            change = gitdiff.staged(double.repo)
            expected = Drafter.load(double.artifact).draft(change, gitdiff.identity(double.repo)).text.rstrip("\n")
        assert expected
        buffer = "\n# Please enter the commit message for your changes. Lines starting\n# with '#' will be ignored.\n"
        uri = open_document(served, double.repo, buffer, name=".git/COMMIT_EDITMSG", language="gitcommit")
        assert await inline(served, uri, types.Position(0, 0)) == expected
        summary = expected.split("\n")[0]
        typed = summary[: len(summary) // 2]
        served.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=typed + buffer)],
            )
        )
        assert await inline(served, uri, types.Position(0, len(typed))) == summary[len(typed) :]
        other = "zzz " + buffer
        served.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=3),
                content_changes=[types.TextDocumentContentChangeWholeDocument(text=other)],
            )
        )
        assert await inline(served, uri, types.Position(0, 4)) == ""
        assert await inline(served, uri, types.Position(1, 0)) == ""  # only the summary line is drafted
    finally:
        subprocess.run(["git", "rm", "-q", "--cached", "app/quiet.py"], cwd=double.repo, check=True)
        quiet.unlink()
