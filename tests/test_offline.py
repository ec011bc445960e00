"""Nothing leaves the machine: `mine`, `train`, `eval` and `serve` run as the real command line with no network
and never even try to reach one; `serve --tcp` opens one socket, the one it listens on, where it was told.

Two proofs, one run. Every command runs under the socket guard (tests/socket_guard/sitecustomize.py, first on
PYTHONPATH): each attempt at the network from Python is recorded and refused, so the log must hold nothing but
the guard's own hello from each process. Where the machine allows a network namespace of one's own
(`unshare -rn`: no interfaces, not even loopback up), the commands also run inside one, which stops what a C
library might try behind Python's back; elsewhere the guard alone runs (a note says so). The Hugging Face
variables that keep those libraries offline are taken out of the commands' environment: the tool sets them.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import pytest
from test_server import build_history, server_env

from codedouble.trainer import cli
from conftest import GitRepo, isolate_git

GUARD = Path(__file__).parent / "socket_guard"
COMMAND_SECONDS = 180


def network_namespace_works() -> bool:
    """Whether this machine lets an unprivileged process start in a network namespace without interfaces."""
    if shutil.which("unshare") is None:
        return False
    try:
        done = subprocess.run(["unshare", "-rn", sys.executable, "-c", "pass"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def guarded_env(root: Path, log: Path) -> dict[str, str]:
    env = server_env(root)
    for name in cli.OFFLINE_ENVIRONMENT:  # the tool must set these itself
        env.pop(name, None)
    env["PYTHONPATH"] = os.pathsep.join([str(GUARD), *filter(None, [env.get("PYTHONPATH")])])
    env["CODEDOUBLE_SOCKET_LOG"] = str(log)
    return env


def command(args: list[str], no_network: bool) -> list[str]:
    return [*(["unshare", "-rn"] if no_network else []), sys.executable, "-m", "codedouble.trainer.cli", *args]


def run(args: list[str], env: dict[str, str], cwd: Path, no_network: bool) -> str:
    done = subprocess.run(
        command(args, no_network), env=env, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_SECONDS
    )
    assert done.returncode == 0, f"codedouble {args[0]} failed:\n{done.stderr[-3000:]}"
    return done.stderr


def events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []


class Rpc:
    """JSON-RPC over LSP's framing, on any pair of byte streams (a process's pipes, a TCP socket's files)."""

    def __init__(self, reader: IO[bytes], writer: IO[bytes]) -> None:
        self.writer, self.ids = writer, iter(range(1, 1_000_000))
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, args=(reader,), daemon=True).start()

    def _read(self, reader: IO[bytes]) -> None:
        while True:
            headers: dict[str, str] = {}
            while (line := reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            if not headers:
                self.inbox.put(None)
                return
            self.inbox.put(json.loads(reader.read(int(headers["content-length"]))))

    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: Any, seconds: float = 60) -> Any:
        number = next(self.ids)
        self._send({"jsonrpc": "2.0", "id": number, "method": method, "params": params})
        deadline = time.monotonic() + seconds
        while True:
            message = self.inbox.get(timeout=max(0.1, deadline - time.monotonic()))
            assert message is not None, f"the server closed the connection before answering {method}"
            if message.get("id") == number and "method" not in message:
                assert "error" not in message, message
                return message["result"]
            if "method" in message and "id" in message:  # a request of the server's (progress): say yes
                self._send({"jsonrpc": "2.0", "id": message["id"], "result": None})

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        self.writer.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        self.writer.flush()


def initialize(rpc: Rpc, workspace: Path) -> None:
    rpc.request(
        "initialize",
        {
            "processId": None,
            "rootUri": workspace.as_uri(),
            "capabilities": {},
            "initializationOptions": {"minConfidence": 0},
        },
    )
    rpc.notify("initialized", {})


def goodbye(rpc: Rpc) -> None:
    rpc.request("shutdown", None)
    rpc.notify("exit", None)


def serve_one_completion(rpc: Rpc, workspace: Path) -> str:
    """initialize, wait for the double, ask for the ghost text at a new installer's register line."""
    initialize(rpc, workspace)
    deadline = time.monotonic() + COMMAND_SECONDS
    while (state := rpc.request("codedouble/status", {})["state"]) not in {"ready", "missing", "broken"}:
        assert time.monotonic() < deadline, f"the double is still {state}"
        time.sleep(0.2)
    assert state == "ready", rpc.request("codedouble/status", {})
    path = workspace / "app" / "plugins.py"
    text = path.read_text(encoding="utf-8") + "\n\ndef install_webhooks(handler, url):\n    handler.url = url\n    "
    uri = path.as_uri()
    rpc.notify(
        "textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}
    )
    lines = text.split("\n")
    at = {"line": len(lines) - 1, "character": len(lines[-1])}
    got = rpc.request(
        "textDocument/inlineCompletion",
        {"textDocument": {"uri": uri}, "position": at, "context": {"triggerKind": 1}},
    )
    goodbye(rpc)
    return got["items"][0]["insertText"] if got and got.get("items") else ""


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    isolate_git(monkeypatch)
    repo = GitRepo(tmp_path / "work")
    try:
        build_history(repo)
    finally:
        repo.close()
    return tmp_path, repo.path


def test_mine_train_eval_and_serve_never_reach_for_the_network(world: tuple[Path, Path]) -> None:
    root, repo = world
    log = root / "sockets.jsonl"
    env = guarded_env(root, log)
    no_network = network_namespace_works()
    if not no_network:
        print("no network namespace on this machine (unshare -rn): the socket guard alone proves it", file=sys.stderr)
    dataset = root / "dataset"

    run(["mine", str(repo), "--out", str(dataset), "--all-authors", "--quiet"], env, repo, no_network)
    # The shipped base, fine-tuned: transformers loads a model and a tokenizer from a folder, as users run it.
    trained = run(
        ["train", str(dataset), "--steps", "4", "--batch-size", "2", "--block-size", "64", "--tune-lines", "0"]
        + ["--heldout", "0.2", "--quiet"],
        env,
        repo,
        no_network,
    )
    assert "→" in trained
    run(
        ["eval", "--line-samples", "3", "--block-samples", "1", "--replay-lines", "1", "--no-base", "--quiet"],
        env,
        repo,
        no_network,
    )
    # A commit message drafted by the model (transformers loading it from the double's folder).
    run(["commit-message", "HEAD", "--source", "model"], env, repo, no_network)
    server = subprocess.Popen(
        command(["serve"], no_network), env=env, cwd=repo, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert server.stdin is not None and server.stdout is not None
        completion = serve_one_completion(Rpc(server.stdout, server.stdin), repo)
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
        server.wait()
    assert completion, "the double answered"

    seen = events(log)
    assert {e["argv"][1] for e in seen if e["event"] == "guarded"} >= {
        "mine",
        "train",
        "eval",
        "commit-message",
        "serve",
    }
    assert outbound(seen) == [], "something reached for the network"
    assert [e for e in seen if e["event"] == "listen"] == [], "something listened"
    assert all(e["address"][0] in LOOPBACK and e["address"][1] == 0 for e in binds(seen)), binds(seen)


# A bind that is no connection: urllib3 (imported by the Hugging Face libraries and detect-secrets) binds ::1,
# port 0, when imported, to learn whether the machine has IPv6, and closes the socket; nothing is sent.
LOOPBACK = {"127.0.0.1", "::1"}
OUTBOUND = {"connect", "connect_ex", "sendto", "sendmsg", "create_connection", "getaddrinfo"}


def outbound(seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in seen if e["event"] in OUTBOUND]


def binds(seen: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in seen if e["event"] == "bind"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_over_tcp_opens_only_the_socket_it_listens_on_on_loopback(world: tuple[Path, Path]) -> None:
    root, repo = world
    log = root / "sockets.jsonl"
    port = free_port()
    server = subprocess.Popen(
        command(["serve", "--tcp", str(port)], no_network=False),  # the client connects from outside it
        env=guarded_env(root, log),
        cwd=repo,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + COMMAND_SECONDS
        while True:
            try:
                client = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
                assert time.monotonic() < deadline, "the server never listened"
                time.sleep(0.2)
        with client, client.makefile("rb") as reader, client.makefile("wb") as writer:
            rpc = Rpc(reader, writer)
            initialize(rpc, repo)
            assert rpc.request("codedouble/status", {})["state"] in {"starting", "missing"}  # no double here
            goodbye(rpc)
        assert server.wait(timeout=30) == 0
    finally:
        server.kill()
        server.wait()
    seen = events(log)
    assert outbound(seen) == []
    assert [(e["event"], e["address"]) for e in seen if e["event"] == "listen"] == [("listen", ["127.0.0.1", port])]
    probes = [e for e in binds(seen) if e["address"][0] in LOOPBACK and e["address"][1] == 0]
    assert [e["address"] for e in binds(seen) if e not in probes] == [["127.0.0.1", port]]


@pytest.mark.parametrize(
    ("value", "address"), [("2087", ("127.0.0.1", 2087)), ("0.0.0.0:2087", ("0.0.0.0", 2087)), ("[::1]:9", ("::1", 9))]
)
def test_tcp_address_defaults_to_loopback(value: str, address: tuple[str, int]) -> None:
    assert cli.build_parser().parse_args(["serve", "--tcp", value]).tcp == address


def test_the_command_line_itself_keeps_the_hugging_face_libraries_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in cli.OFFLINE_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert {name: os.environ.get(name) for name in cli.OFFLINE_ENVIRONMENT} == cli.OFFLINE_ENVIRONMENT


def test_the_guard_sees_and_stops_a_connection(tmp_path: Path) -> None:
    """The guard itself: without this, an empty log could mean a guard that never ran."""
    log = tmp_path / "sockets.jsonl"
    env = {**guarded_env(tmp_path, log), "HF_HUB_OFFLINE": "0"}
    reach = "import urllib.request\ntry:\n    urllib.request.urlopen('http://example.com', timeout=5)\nexcept OSError as e:\n    print(e)"
    done = subprocess.run([sys.executable, "-c", reach], env=env, capture_output=True, text=True, timeout=60)
    assert "codedouble's offline test: no network" in done.stdout
    assert [e["address"] for e in outbound(events(log))] == [["example.com", 80]]
