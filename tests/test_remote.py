"""The model on a remote engine (server/engine/remote.py), checked against a small fake engine written here
with http.server: real HTTP on loopback, an OpenAI-compatible `/v1/completions` and llama.cpp's `/completion`.

First the client alone (prompt rendering, stop sequences, timeouts, cancellation, bad answers, health), then
the real `codedouble serve` subprocess pointed at the fake engine, and at no engine at all: completions
still come from the n-gram and retrieval, as fast as ever.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import select
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from test_server import (
    ALONE,
    REST,
    Double,
    double,  # noqa: F401 - the module's trained double, a fixture
    inline,
    open_document,
    position,
    registry_document,
    start_server,
    status,
    stop_server,
    wait_for_state,
)

from codedouble.server import options as opts
from codedouble.server.contract import prompt
from codedouble.server.engine import remote
from codedouble.server.engine.document import Request, window
from codedouble.server.engine.neural import Neural
from codedouble.server.engine.remote import Backend, BackendError, RemoteModel
from codedouble.trainer.base.shipped import shipped_base

LOOPBACK = "127.0.0.1"
BODY = "def unrelated(values):\n    "  # a body to write
SHIPPED = shipped_base()
# A language the engineer never wrote: the n-gram and retrieval are silent, only the model can answer.
GO = "package app\n\nfunc unrelated(values []int) int {\n\treturn "


@dataclass
class Engine:
    """What the fake engine does next and what it saw."""

    text: str = "return sorted(values)\n"
    logprobs: list[float] | None = field(default_factory=lambda: [-0.01, -0.02])
    delay: float = 0.0  # before answering
    status: int = 200
    raw: bytes | None = None  # an answer that is not the usual JSON
    requests: list[dict[str, Any]] = field(default_factory=list)
    disconnected: threading.Event = field(default_factory=threading.Event)


class FakeEngine(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__((LOOPBACK, 0), Handler)
        self.engine = Engine()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: FakeEngine

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        engine = self.server.engine
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        engine.requests.append({"path": self.path, "body": body, "headers": dict(self.headers)})
        # Wait as an engine computing would, noticing a client that closes the connection meanwhile.
        until = time.monotonic() + engine.delay
        while time.monotonic() < until:
            readable, _, _ = select.select([self.connection], [], [], 0.01)
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                engine.disconnected.set()
                return
        if engine.raw is not None:
            payload = engine.raw
        elif self.path.endswith("/completion"):
            steps = [{"logprob": v} for v in engine.logprobs or []]
            payload = json.dumps({"content": engine.text, "completion_probabilities": steps, "stop": True}).encode()
        else:
            logprobs = {"token_logprobs": engine.logprobs} if engine.logprobs is not None else None
            choice = {"text": engine.text, "index": 0, "logprobs": logprobs, "finish_reason": "stop"}
            payload = json.dumps({"id": "cmpl-1", "object": "text_completion", "choices": [choice]}).encode()
        try:
            self.send_response(engine.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            engine.disconnected.set()


@pytest.fixture
def fake() -> Iterator[FakeEngine]:
    server = FakeEngine()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


LINE = Request("app/util.py", "import os\n\n\ndef here():\n    path = os.", "\n    return path\n", "line")
BLOCK = Request("app/util.py", BODY, "", "block")


# --- the client alone --------------------------------------------------------------------------------------


def test_the_fim_prompt_is_rendered_here_with_stop_sequences_and_no_suffix_field(fake: FakeEngine) -> None:
    fake.engine.text = "path.join('a', 'b')\n    more"
    model = RemoteModel(Backend("openai", fake.url, "alice", timeout_ms=5000))
    got = model.generate(LINE)
    assert got.text == "path.join('a', 'b')"  # a line ends at its newline, whatever the engine sent after it
    assert math.isclose(got.logprob, -0.03)
    [seen] = fake.engine.requests
    assert seen["path"] == "/v1/completions"
    body = seen["body"]
    ctx, before, after = window(LINE)
    assert body["prompt"] == prompt.fim_prompt(ctx, before, after)
    assert body["prompt"].endswith(f"{prompt.FIM_MIDDLE}import os\n\n\ndef here():\n    path = os.")
    assert "suffix" not in body  # vLLM refuses it
    assert body["model"] == "alice" and body["temperature"] == 0 and body["max_tokens"] == 32
    assert body["stop"][0] == "\n" and prompt.EOS in body["stop"] and len(body["stop"]) <= 4  # OpenAI's limit
    assert "Authorization" not in seen["headers"]
    assert model.status()["state"] == "ok" and model.status()["last_latency_ms"] is not None


def test_a_body_runs_past_newlines_and_ends_with_its_block(fake: FakeEngine) -> None:
    fake.engine.text = "return sorted(values)\n\n\ndef other():\n    pass\n"
    model = RemoteModel(Backend("openai", fake.url + "/v1", timeout_ms=5000))
    assert model.generate(BLOCK).text == "return sorted(values)"
    body = fake.engine.requests[0]["body"]
    assert fake.engine.requests[0]["path"] == "/v1/completions"  # a URL given with /v1 is not doubled
    assert "\n" not in body["stop"] and body["max_tokens"] == 160 and "model" not in body


def test_the_api_key_comes_from_the_named_environment_variable(
    fake: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEAM_ENGINE_KEY", "sk-test-123")
    RemoteModel(Backend("openai", fake.url, "alice", "TEAM_ENGINE_KEY", 5000)).generate(LINE)
    assert fake.engine.requests[0]["headers"]["Authorization"] == "Bearer sk-test-123"
    monkeypatch.delenv("TEAM_ENGINE_KEY")
    with pytest.raises(BackendError, match="TEAM_ENGINE_KEY"):
        RemoteModel(Backend("openai", fake.url, "alice", "TEAM_ENGINE_KEY"))


def test_llama_cpp_gets_the_same_prompt_on_its_native_endpoint(fake: FakeEngine) -> None:
    fake.engine.text = "path.sep\n"
    got = RemoteModel(Backend("llama.cpp", fake.url, timeout_ms=5000)).generate(LINE)
    assert got.text == "path.sep" and math.isclose(got.logprob, -0.03)
    RemoteModel(Backend("openai", fake.url, timeout_ms=5000)).generate(LINE)
    [seen, openai] = fake.engine.requests
    assert seen["path"] == "/completion"  # not /infill, which lays the prompt out otherwise (remote.llama_cpp_body)
    body = seen["body"]
    assert body["prompt"] == openai["body"]["prompt"]
    assert body["n_predict"] == 32 and body["stop"][0] == "\n" and body["n_probs"] == 1 and body["cache_prompt"]


def test_with_the_doubles_tokenizer_the_engine_gets_the_local_models_prompt(fake: FakeEngine) -> None:
    """The prompt is cut by tokens as the local model cuts it (fim.py), so a long file stays inside the model's
    context and the engine sees what the double was tuned with, less the healed token."""
    assert SHIPPED is not None
    model = RemoteModel(Backend("openai", fake.url, timeout_ms=5000), SHIPPED)
    local = Neural(SHIPPED, runtime="fp32")
    long_file = "".join(f"def f{i}(values):\n    return [v * {i} for v in values if v]\n\n" for i in range(400))
    for request in (LINE, BLOCK, Request("app/long.py", long_file + "def g(x):\n    y = x.", "\n", "line")):
        ids, healed = local.prompt_ids(request, local._new_tokens(request))
        sent, left_off = model.prompt(request)
        assert left_off == healed and healed  # a body's "\n    " too: only a line stops at a newline
        assert sent == local.tokenizer.decode(ids, clean_up_tokenization_spaces=False)
        assert len(local._encode(sent)) <= local.budget(local._new_tokens(request))
        assert (sent + healed).endswith(request.prefix[-12:])
    model.generate(LINE)
    assert fake.engine.requests[0]["body"]["prompt"] == model.prompt(LINE)[0]


def test_the_engines_answer_must_extend_the_healed_token(fake: FakeEngine) -> None:
    """Left off the prompt, the prefix's last token must begin the engine's answer, which is shown without it;
    an answer that does not begin with it contradicts what the engineer typed and is none."""
    assert SHIPPED is not None
    model = RemoteModel(Backend("llama.cpp", fake.url, timeout_ms=5000), SHIPPED)
    healed = model.prompt(LINE)[1]
    assert LINE.prefix.endswith(healed) and healed
    fake.engine.text = f"{healed}path.sep\n"
    assert model.generate(LINE).text == "path.sep"
    fake.engine.text = "unrelated\n"
    got = model.generate(LINE)
    assert got.text == "" and got.logprob == -math.inf
    # At a line start the healed token holds the newline: it stays in the prompt, or the stop would end the line.
    fresh = Request("app/util.py", "import os\n\n\ndef here():\n", "", "line")
    sent, healed = model.prompt(fresh)
    assert healed == "" and sent.endswith("def here():\n")


def test_a_slow_engine_times_out_and_then_rests(fake: FakeEngine) -> None:
    fake.engine.delay = 5.0
    model = RemoteModel(Backend("openai", fake.url, timeout_ms=300))
    started = time.monotonic()
    assert model.generate(LINE).text == ""
    took = time.monotonic() - started
    assert 0.25 < took < 1.0, took
    health = model.status()
    assert health["state"] == "failing" and health["timeouts"] == 1 and "300 ms" in health["last_error"]
    assert health["retry_in_s"] > 0
    # Resting: the next keystroke does not pay the timeout again.
    started = time.monotonic()
    assert model.generate(LINE).text == ""
    assert time.monotonic() - started < 0.05
    assert model.status()["skipped"] == 1 and len(fake.engine.requests) == 1


def test_a_superseded_request_closes_its_connection(fake: FakeEngine) -> None:
    fake.engine.delay = 5.0
    model = RemoteModel(Backend("openai", fake.url, timeout_ms=5000))
    started = time.monotonic()
    got = model.generate(LINE, cancelled=lambda: time.monotonic() - started > 0.1)
    took = time.monotonic() - started
    assert got.text == "" and took < 0.5, took
    assert fake.engine.disconnected.wait(2), "the engine should see the client go"
    health = model.status()
    assert health["cancelled"] == 1 and health["failures"] == 0 and health["retry_in_s"] == 0


@pytest.mark.parametrize(
    ("status_code", "raw", "error"),
    [
        (500, b'{"error": "out of memory"}', "HTTP 500"),
        (200, b"<html>a proxy's page</html>", "not JSON"),
        (200, b'{"choices": []}', "no choices"),
        (200, b'{"choices": [{"text": 42}]}', "not a string"),
        (404, b'{"detail": "The model `bob` does not exist."}', "HTTP 404"),
    ],
)
def test_a_bad_answer_is_no_suggestion_and_named_in_the_health(
    fake: FakeEngine, status_code: int, raw: bytes, error: str
) -> None:
    fake.engine.status, fake.engine.raw = status_code, raw
    model = RemoteModel(Backend("openai", fake.url, timeout_ms=5000))
    assert model.generate(LINE).text == ""
    health = model.status()
    assert health["failures"] == 1 and error in health["last_error"], health


def test_an_answer_without_logprobs_scores_zero() -> None:
    assert remote.parse_openai({"choices": [{"text": "x", "logprobs": None}]}) == ("x", None)
    assert remote.parse_openai({"choices": [{"text": "x", "logprobs": {"content": [{"token": "x"}]}}]}) == ("x", None)


def test_both_logprob_layouts_of_completions_are_read() -> None:
    legacy = {"choices": [{"text": "ab", "logprobs": {"token_logprobs": [-0.5, -0.25]}}]}  # OpenAI, vLLM
    chat = {"choices": [{"text": "ab", "logprobs": {"content": [{"logprob": -0.5}, {"logprob": -0.25}]}}]}  # llama.cpp
    assert remote.parse_openai(legacy) == remote.parse_openai(chat) == ("ab", -0.75)
    assert remote.parse_llama_cpp({"content": "x", "completion_probabilities": [{"probs": [{"prob": 0.5}]}]}) == (
        "x",
        math.log(0.5),
    )


def test_an_unreachable_engine_fails_fast() -> None:
    model = RemoteModel(Backend("openai", f"http://{LOOPBACK}:{closed_port()}", timeout_ms=1000))
    started = time.monotonic()
    assert model.generate(LINE).text == ""
    assert time.monotonic() - started < 0.5
    assert "ConnectionRefusedError" in model.status()["last_error"]


@pytest.mark.parametrize("url", ["ftp://host/", "gpu-box:8000", "http://"])
def test_a_bad_url_is_refused_when_loading(url: str) -> None:
    with pytest.raises(BackendError, match="URL"):
        RemoteModel(Backend("openai", url))


def test_backend_settings_parse_and_are_checked() -> None:
    raw = {"backend": "openai", "url": "http://gpu-box:8000", "model": "alice", "apiKeyEnv": "KEY", "timeoutMs": 700}
    got, problems = opts.parse(raw)
    assert problems == []
    assert (got.backend, got.url, got.model, got.api_key_env, got.timeout_ms) == (
        "openai",
        "http://gpu-box:8000",
        "alice",
        "KEY",
        700,
    )
    got, problems = opts.parse({"backend": "tgi", "url": "gpu-box", "apiKeyEnv": "sk-123!", "timeoutMs": 10})
    assert [p.split("'")[1] for p in problems] == ["backend", "url", "apiKeyEnv", "timeoutMs"]
    assert got == opts.Options()
    # An engine without a URL is no engine: local, said so.
    got, problems = opts.parse({"backend": "openai"})
    assert got.backend == "local" and "no 'url'" in problems[0]
    # `codedouble serve`'s flags are defaults; the editor's settings win.
    got, _ = opts.parse({"codedouble": {"model": "bob"}}, {"backend": "openai", "url": "http://h:1", "model": "x"})
    assert (got.backend, got.url, got.model) == ("openai", "http://h:1", "bob")


def test_every_server_setting_is_offered_by_both_editors() -> None:
    root = Path(__file__).resolve().parents[1]
    package = json.loads((root / "editors/vscode/package.json").read_text(encoding="utf-8"))
    vscode = {k.removeprefix("codedouble.") for k in package["contributes"]["configuration"]["properties"]}
    nvim = (root / "editors/nvim/README.md").read_text(encoding="utf-8")
    for key in opts._PARSERS:
        assert key in vscode, key
        assert re.search(rf"^\| `{key}` +\|", nvim, re.MULTILINE), key
    assert package["contributes"]["configuration"]["properties"]["codedouble.backend"]["enum"] == list(opts.BACKENDS)


# --- the real server, pointed at the fake engine and at none -------------------------------------------------


@pytest_asyncio.fixture(loop_scope="module")
async def fake_async() -> AsyncIterator[FakeEngine]:
    server = FakeEngine()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def _serve(double: Double, *flags: str, init: dict[str, Any] | None = None) -> Any:  # noqa: F811
    client = await start_server(double.root, double.repo, "--artifact", str(double.artifact), *flags, init=init)
    got = await wait_for_state(client, {"ready", "broken", "missing"})
    assert got["state"] == "ready", got
    return client


@pytest.mark.asyncio(loop_scope="module")
async def test_serve_asks_the_engine_for_the_model_part(double: Double, fake_async: FakeEngine) -> None:  # noqa: F811
    flags = ("--backend", "openai", "--url", fake_async.url, "--model", "alice", "--timeout-ms", "3000")
    # Uncalibrated (this tiny double was not tuned), a system's score is its confidence: the fake engine's
    # log-probabilities make the model's 0.97, above the n-gram's guess from the document's own words.
    client = await _serve(double, *flags, init={"codedouble": {**ALONE, "minConfidence": 0.95}})
    try:
        # The server cuts the prompt with the double's tokenizer and leaves the last token off (healed): the
        # engine's answer starts with it.
        sent, healed = RemoteModel(Backend("openai", fake_async.url), double.artifact).prompt(
            Request("app/util.go", GO, "", "line")
        )
        fake_async.engine.text = f"{healed}len(values)\n}}\n"
        uri = open_document(client, double.repo, GO, "app/util.go", "go")
        started = time.monotonic()
        assert await inline(client, uri, position(GO, len(GO))) == "len(values)"
        through = (time.monotonic() - started) * 1000
        [seen] = fake_async.engine.requests
        assert seen["body"]["model"] == "alice" and seen["body"]["prompt"].endswith(sent[-8:])  # the server's path
        assert (sent + healed).endswith("\treturn ")
        got = await status(client)
        assert got["backend"]["kind"] == "openai" and got["backend"]["url"] == fake_async.url
        assert got["backend"]["state"] == "ok" and got["backend"]["answered"] == 1
        assert got["options"]["backend"] == "openai" and got["options"]["model"] == "alice"
        print(f"one completion through the fake engine: {through:.0f} ms end to end")
        # The engineer's own line still comes from the n-gram, without asking the engine.
        await _configure(client, {**ALONE, "backend": "openai", "url": fake_async.url, "model": "alice"})
        text, cursor = registry_document(double)
        uri = open_document(client, double.repo, text)
        assert await inline(client, uri, position(text, cursor)) == REST
        assert len(fake_async.engine.requests) == 1
        # The editor points the server elsewhere: the engine is reloaded with the new settings.
        await _configure(client, {**ALONE, "backend": "local"})
        for _ in range(100):  # the engine reloads in the background
            got = await status(client)
            if got["state"] == "ready" and got["backend"]["state"] == "local":
                break
            await asyncio.sleep(0.1)
        assert got["backend"]["state"] == "local", got["backend"]
    finally:
        await stop_server(client)


async def _configure(client: Any, settings: dict[str, Any]) -> None:
    from lsprotocol import types

    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={"codedouble": settings}))
    await status(client)  # a round trip: the notification before it has been handled


@pytest.mark.asyncio(loop_scope="module")
async def test_with_the_engine_unreachable_completions_come_from_here_as_fast(double: Double) -> None:  # noqa: F811
    url = f"http://{LOOPBACK}:{closed_port()}"
    client = await _serve(double, "--backend", "openai", "--url", url, "--model", "alice", init={"codedouble": ALONE})
    try:
        times = []
        for typed in ("    registry.register(handler, pri", "    registry.register(handler, prio"):
            text, cursor = registry_document(double, typed)
            uri = open_document(client, double.repo, text)
            started = time.monotonic()
            assert REST.endswith(await inline(client, uri, position(text, cursor)))
            times.append(time.monotonic() - started)
        # Where only the model would be confident enough: the engine refuses at once, the local answer is none.
        await _configure(client, {**ALONE, "minConfidence": 0.95})
        uri = open_document(client, double.repo, GO, "app/util.go", "go")
        started = time.monotonic()
        assert await inline(client, uri, position(GO, len(GO))) == ""
        times.append(time.monotonic() - started)
        got = await status(client)
        assert got["state"] == "ready"
        assert got["backend"]["state"] == "failing" and "Connection" in got["backend"]["last_error"], got["backend"]
        assert max(times) < 2.0, times  # the usual latency of this busy machine, far below the timeout's 1 s each
        assert got["latency_ms"]["p95"] < 2000
    finally:
        await stop_server(client)


@pytest.mark.asyncio(loop_scope="module")
async def test_with_a_hung_engine_the_timeout_bounds_the_wait(double: Double, fake_async: FakeEngine) -> None:  # noqa: F811
    fake_async.engine.delay, fake_async.engine.text = 30.0, "len(values)"  # accepts, never answers in time
    flags = ("--backend", "openai", "--url", fake_async.url, "--timeout-ms", "400")
    client = await _serve(double, *flags, init={"codedouble": {**ALONE, "minConfidence": 0.95}})
    try:
        uri = open_document(client, double.repo, GO, "app/util.go", "go")
        started = time.monotonic()
        assert await inline(client, uri, position(GO, len(GO))) == ""  # not the engine's: it never answered
        first = time.monotonic() - started
        await _configure(client, {**ALONE})
        # The engine rests after the timeout: the engineer's own line is answered locally without waiting.
        text, cursor = registry_document(double)
        uri = open_document(client, double.repo, text)
        started = time.monotonic()
        assert await inline(client, uri, position(text, cursor)) == REST
        second = time.monotonic() - started
        got = (await status(client))["backend"]
        assert got["timeouts"] == 1 and got["state"] == "failing", got
        assert first < 2.0 and second < 2.0, (first, second)
    finally:
        await stop_server(client)
