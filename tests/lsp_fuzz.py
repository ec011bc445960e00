"""A fuzzer for `codedouble serve`, shared by tests/test_fuzz_server.py and benchmarks/fuzz_server.py.

It speaks the base protocol itself (so that it can send what no client library would: bad headers, bodies that
are not JSON) to the real server over stdio, and keeps a reference model of every open document: LSP
incremental edits with UTF-16 positions, a character past its line's end meaning the line's end, a line past
the document's end meaning the document's end, a reversed range taken in order (server.LspTextDocument). The
model is written here from the protocol, not from the server's code, so that the two check each other.

A sequence is a few dozen messages from one seeded generator: documents opened, edited (in range, out of
range, reversed, astral characters, CR/LF/CR LF mixes, long lines and tokens), replaced, closed and opened
again; completion requests at good and bad positions; `$/cancelRequest`; unknown methods; bad params;
settings with bad values; frames with bad headers and bodies that are not JSON. After it, `check` asks for the
server's text of every document and a good completion: the server must be alive, have answered every request
sent in a good frame exactly once (and none in a bad one), and hold the reference's text.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

ANSWER_SECONDS = 60.0  # for every answer of a sequence: a 1 MB document is slow on a busy machine, not hung
DOCUMENT_TEXT = "codedouble/documentText"

# --- the reference model --------------------------------------------------------------------------------------

_BREAK = re.compile(r"\r\n|\r|\n")


def units(text: str) -> int:
    """UTF-16 code units."""
    return len(text) + sum(1 for c in text if ord(c) > 0xFFFF)


def line_spans(text: str) -> list[tuple[int, int]]:
    """(start, end before its break) of every LSP line."""
    spans, start = [], 0
    for found in _BREAK.finditer(text):
        spans.append((start, found.start()))
        start = found.end()
    spans.append((start, len(text)))
    return spans


def offset(text: str, line: int, character: int, spans: list[tuple[int, int]] | None = None) -> int:
    """Where an edit at (line, UTF-16 character) lands: a character past the line's end is the line's end, a
    line past the last is the document's end, a character inside an astral one is after it."""
    spans = spans if spans is not None else line_spans(text)
    if line >= len(spans):
        return len(text)
    index, end = spans[line]
    counted = 0
    while index < end and counted < character:
        counted += 2 if ord(text[index]) > 0xFFFF else 1
        index += 1
    return index


def apply_edit(text: str, start: tuple[int, int], end: tuple[int, int], new: str) -> str:
    spans = line_spans(text)
    a, b = offset(text, *start, spans), offset(text, *end, spans)
    a, b = min(a, b), max(a, b)
    return text[:a] + new + text[b:]


# --- the server, in raw bytes ---------------------------------------------------------------------------------


def frame(message: Any) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class RawServer:
    """`codedouble serve` as a subprocess; a thread reads its frames (the server's output is trusted to be
    well formed: that is checked too) and counts the responses by id."""

    def __init__(self, command: list[str], cwd: Path, env: dict[str, str], stderr: Path) -> None:
        self._stderr = stderr.open("ab")
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, cwd=cwd, env=env
        )
        self.responses: dict[Any, list[dict[str, Any]]] = {}
        self.arrived = threading.Condition()
        self.malformed_output = 0
        self.parse_errors = 0
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.peak_rss_kib = 0
        self.initialized: dict[str, Any] = {}  # the initialize result (start() sets it)

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length is None:
                self.malformed_output += 1
                continue
            message = json.loads(out.read(length))
            if "method" in message:
                if "id" in message:  # a request from the server (none expected without progress support)
                    self.write(frame({"jsonrpc": "2.0", "id": message["id"], "result": None}))
                continue
            key = message.get("id")
            if key is None:
                self.parse_errors += 1  # the answer to a body that was not JSON
                continue
            with self.arrived:
                self.responses.setdefault(_key(key), []).append(message)
                self.arrived.notify_all()

    def write(self, data: bytes) -> None:
        with self._lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

    def wait(self, ids: list[Any], seconds: float = ANSWER_SECONDS) -> bool:
        """Whether every one of `ids` was answered within `seconds`."""
        deadline = time.monotonic() + seconds
        with self.arrived:
            while not all(_key(i) in self.responses for i in ids):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return False
                self.arrived.wait(min(left, 0.5))
        return True

    def request(self, method: str, params: Any, key: Any, seconds: float = ANSWER_SECONDS) -> dict[str, Any] | None:
        self.write(frame({"jsonrpc": "2.0", "id": key, "method": method, "params": params}))
        if not self.wait([key], seconds):
            return None
        return self.responses[_key(key)][0]

    def sample_rss(self) -> None:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))
        except OSError:
            pass

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        self.sample_rss()
        if self.alive():
            try:
                self.request("shutdown", None, "shutdown", 10)
                self.write(frame({"jsonrpc": "2.0", "method": "exit"}))
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.alive():
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


def _key(key: Any) -> str:
    return json.dumps(key)


def server_command(artifact: Path) -> list[str]:
    return [sys.executable, "-m", "codedouble.trainer.cli", "serve", "--artifact", str(artifact)]


def quiet_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        XDG_DATA_HOME=str(root / "xdg-data"),
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
    )
    return env


SETTINGS = {"feedbackLog": False}


def start(
    artifact: Path,
    workspace: Path,
    stderr: Path,
    ready_seconds: float = 180,
    capabilities: dict[str, Any] | None = None,
) -> RawServer:
    """A server initialized on `workspace` (by a client of `capabilities`, none by default) with the double
    loaded; the initialize result is kept as `initialized`."""
    server = RawServer(server_command(artifact), workspace, quiet_env(workspace.parent), stderr)
    got = server.request(
        "initialize",
        {
            "processId": None,
            "rootUri": workspace.as_uri(),
            "capabilities": capabilities or {},
            "initializationOptions": {"codedouble": SETTINGS},
        },
        "initialize",
        ready_seconds,
    )
    if got is None:
        server.close()
        raise RuntimeError(f"the server did not initialize; see {stderr}")
    server.initialized = got.get("result") or {}
    server.write(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
    deadline = time.monotonic() + ready_seconds
    for n in range(10**9):
        status = server.request("codedouble/status", {}, f"ready-{n}", ready_seconds)
        state = status and status.get("result", {}).get("state")
        if state == "ready":
            return server
        if state in ("broken", "missing") or time.monotonic() > deadline:
            server.close()
            raise RuntimeError(f"the double is not served ({state}); see {stderr}")
        time.sleep(0.1)
    raise AssertionError("unreachable")


# --- the generator --------------------------------------------------------------------------------------------

CODE = [
    "def install(handler, priority=HIGH):\n",
    "    registry.register(handler, priority=HIGH_PRIORITY)\n",
    "    return handler\n",
    "import logging\n",
    "x = [1, 2, 3]  # list\r\n",
    "class Plugin:\r\n    pass\r\n",
    "\tif x:\r",
    "        y = x.get('key', None)\n",
    "\n",
    "\r\n",
    "\r",
]
# Characters that move LSP positions around: astral ones (two UTF-16 units), a lone surrogate, breaks LSP does
# not count (form feed, U+2028, NEL), combining and zero-width ones, a BOM, a NUL.
ODD = [
    "😀",
    "𝔘",
    "\U0010ffff",
    "\ud800",
    "\udfff",
    "\x0c",
    "\u2028",
    "\x85",
    "e\u0301",
    "\u200d",
    "\ufeff",
    "\x00",
    "é",
]
PIECES = ["(", ")", "[", "]", "{", "}", ":", ".", ",", " ", "    ", "\t", "'", '"', "\\", "_", "a", "Z", "9"]


@dataclass
class Sizes:
    """How often a sequence holds long text: small probabilities keep a long run bounded."""

    huge: float = 0.01  # a token or line of 100 KB to 1 MB
    long: float = 0.08  # 1 to 20 KB


def text(rng: random.Random, sizes: Sizes, short: bool = False) -> str:
    out: list[str] = []
    for _ in range(rng.randrange(1, 4 if short else 12)):
        roll = rng.random()
        if roll < 0.45:
            out.append(rng.choice(CODE))
        elif roll < 0.65:
            out.append(rng.choice(ODD))
        elif roll < 0.9:
            out.append("".join(rng.choice(PIECES) for _ in range(rng.randrange(1, 8))))
        else:
            out.append(rng.choice(["\n", "\r\n", "\r"]) * rng.randrange(1, 6))
    if not short and rng.random() < sizes.long:
        out.insert(rng.randrange(len(out) + 1), _long(rng, rng.randrange(1_000, 20_000)))
    if rng.random() < sizes.huge:
        out.insert(rng.randrange(len(out) + 1), _long(rng, rng.randrange(100_000, 1_000_001)))
    return as_received("".join(out))


def as_received(text: str) -> str:
    """`text` as the server reads it from JSON: a lone high surrogate followed by a lone low one arrives as the
    astral character they spell (as in the editor's own UTF-16 string)."""
    return json.loads(json.dumps(text))


def same_text(a: str | None, b: str | None) -> bool:
    """Equal as UTF-16, the editor's encoding: two lone surrogates an edit put side by side in the server's copy
    are one astral character once sent as JSON, and the same code units."""
    if a is None or b is None:
        return a is b
    return a.encode("utf-16-le", "surrogatepass") == b.encode("utf-16-le", "surrogatepass")


def _long(rng: random.Random, size: int) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return "w" * size  # one token
    if kind == 1:
        return "x = '" + "ab, " * (size // 4) + "'"  # one line
    if kind == 2:
        return " " * size  # a run of whitespace
    return rng.choice(["\r", "\n", "\r\n"]) * (size // 4)  # many breaks


def position(rng: random.Random, model: str | None) -> tuple[int, int]:
    """A position: mostly inside the document (any UTF-16 unit of a line, the middle of an astral character
    included), sometimes past a line's end or the document's."""
    if model is None or rng.random() < 0.15:
        return rng.randrange(0, 1000), rng.randrange(0, 1000)
    spans = line_spans(model)
    line = rng.randrange(len(spans))
    start, end = spans[line]
    width = units(model[start : min(end, start + 2000)])
    character = rng.randrange(width + 1) if rng.random() < 0.9 else width + rng.randrange(1, 50)
    return line, character


def lsp_position(where: tuple[int, int]) -> dict[str, int]:
    return {"line": where[0], "character": where[1]}


@dataclass
class Sent:
    """What a sequence sent: the bytes, the ids that must be answered once, those sent in bad frames."""

    data: list[bytes] = field(default_factory=list)
    expected: list[Any] = field(default_factory=list)
    lost: list[Any] = field(default_factory=list)
    requests: int = 0


class Sequence:
    """One seeded sequence of messages, with the reference model it leaves the documents in."""

    def __init__(self, seed: str, folder: Path, sizes: Sizes | None = None, length: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.sizes = sizes or Sizes()
        self.folder = folder
        self.open: dict[str, str] = {}  # the reference: percent-decoded URI -> text
        self.closed: set[str] = set()
        self.uris: list[str] = []  # as sent, percent-encoded or not
        self.ids = 0
        self.length = length if length is not None else self.rng.randrange(5, 40)
        self.sent = Sent()

    # -- helpers -----------------------------------------------------------------------------------------------
    def _id(self) -> Any:
        self.ids += 1
        return f"{self.seed}/{self.ids}" if self.rng.random() < 0.7 else self.rng.randrange(1 << 40)

    def _send(self, message: dict[str, Any], expect: bool = True) -> None:
        self.sent.data.append(frame({"jsonrpc": "2.0", **message}))
        if "id" in message:
            self.sent.requests += 1
            if expect:
                self.sent.expected.append(message["id"])

    def _uri(self, fresh: bool = False) -> str:
        if self.uris and not fresh and self.rng.random() < 0.85:
            return self.rng.choice(self.uris)
        name = f"fuzz {self.seed.replace('/', '_')} {len(self.uris)}"
        suffix = self.rng.choice([".py", ".py", ".py", ".js", ".txt"])
        path = (self.folder / "app" / f"{name}{suffix}").as_posix()
        # Editors percent-encode (VS Code encodes a space); the server must find the document either way.
        uri = "file://" + (quote(path) if self.rng.random() < 0.5 else path)
        self.uris.append(uri)
        return uri

    # -- the actions -------------------------------------------------------------------------------------------
    def did_open(self) -> None:
        uri = self._uri(fresh=self.rng.random() < 0.5)
        body = text(self.rng, self.sizes)
        language = "python" if uri.endswith(".py") else "plaintext"
        self._send(
            {
                "method": "textDocument/didOpen",
                "params": {"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": body}},
            }
        )
        self.open[unquote(uri)] = body
        self.closed.discard(unquote(uri))

    def did_change(self) -> None:
        uri = self._uri()
        model = self.open.get(unquote(uri))
        changes, after, valid = [], model, True
        for _ in range(self.rng.randrange(1, 4)):
            if self.rng.random() < 0.1:
                new = text(self.rng, self.sizes)
                changes.append({"text": new})
                after = new
                continue
            start, end = position(self.rng, after), position(self.rng, after)
            if self.rng.random() < 0.5 and after is not None:
                start, end = sorted([start, end])  # an ordinary range; else possibly reversed
            if self.rng.random() < 0.3:
                end = start  # an insertion
            new = text(self.rng, self.sizes, short=self.rng.random() < 0.8) if self.rng.random() < 0.8 else ""
            change: dict[str, Any] = {"range": {"start": lsp_position(start), "end": lsp_position(end)}, "text": new}
            if self.rng.random() < 0.1:
                change["rangeLength"] = self.rng.randrange(100)  # deprecated; servers ignore it
            if self.rng.random() < 0.03:
                change["range"]["start"]["line"] = self.rng.choice([-1, "x", None, 2**31])  # the whole message fails
                valid = False
            changes.append(change)
            if after is not None:
                after = apply_edit(after, start, end, new)
        self._send(
            {
                "method": "textDocument/didChange",
                "params": {
                    "textDocument": {"uri": uri, "version": self.rng.randrange(2, 10**6)},
                    "contentChanges": changes,
                },
            }
        )
        if valid and model is not None:
            self.open[unquote(uri)] = after  # type: ignore[assignment]

    def did_close(self) -> None:
        uri = self._uri()
        self._send({"method": "textDocument/didClose", "params": {"textDocument": {"uri": uri}}})
        if self.open.pop(unquote(uri), None) is not None:
            self.closed.add(unquote(uri))

    def complete(self) -> None:
        uri = self._uri()
        where = lsp_position(position(self.rng, self.open.get(unquote(uri))))
        params: dict[str, Any] = {"textDocument": {"uri": uri}, "position": where}
        method = self.rng.choice(["textDocument/inlineCompletion", "textDocument/completion"])
        if method == "textDocument/inlineCompletion":
            params["context"] = {"triggerKind": self.rng.choice([1, 2])}
        roll = self.rng.random()
        if roll < 0.1:  # bad params: answered -32602, never dropped
            params = self.rng.choice(
                [
                    {},
                    {"textDocument": {"uri": uri}},
                    {"textDocument": 5, "position": where, "context": {"triggerKind": 1}},
                    {**params, "position": {"line": -1, "character": 0}},
                    {**params, "position": {"line": "x", "character": 0}},
                    {**params, "position": {"line": 0, "character": 2**31}},
                ]
            )
        elif roll < 0.15:
            params = self.rng.choice([None, [], "x", 5])
        key = self._id()
        self._send({"id": key, "method": method, "params": params})
        if self.rng.random() < 0.2:
            self._send({"method": "$/cancelRequest", "params": {"id": key}})

    def cancel(self) -> None:
        target = self.rng.choice([self.rng.randrange(1 << 40), "nothing", None])
        self._send({"method": "$/cancelRequest", "params": {"id": target}})

    def unknown(self) -> None:
        if self.rng.random() < 0.5:
            self._send({"id": self._id(), "method": f"codedouble/nothing{self.rng.randrange(3)}", "params": {}})
        else:
            self._send({"method": "$/unknownNotification", "params": {"x": 1}})  # `$/` ones may be ignored

    def configure(self) -> None:
        values = {
            "maxLines": [1, 8, 200, 0, -3, "x", None, True],
            "debounceMs": [0, 5, 50, -1, 5000, "x"],
            "minConfidence": [None, 0, 0.5, 1, 2, "x"],
            "languages": [[], ["python"], ["cobol"], 5, ["python", 3]],
            "exclude": [[], ["**/fuzz*"], ["[z-a].py"], ["**/*a*a*a*a*b"], "x", [5]],
            "workspaceContext": [True, False, "yes"],
            "colour": ["blue"],
        }
        chosen = {k: self.rng.choice(v) for k, v in values.items() if self.rng.random() < 0.4}
        settings: Any = {"codedouble": {**SETTINGS, **chosen}}
        if self.rng.random() < 0.1:
            settings = self.rng.choice([None, 5, "x", [], {"codedouble": "x"}])
        self._send({"method": "workspace/didChangeConfiguration", "params": {"settings": settings}})

    def status(self) -> None:
        self._send({"id": self._id(), "method": "codedouble/status", "params": {}})

    def bad_frame(self) -> None:
        """A frame no client should send; only it is lost (requests in it are never answered)."""
        key = f"lost/{self.seed}/{self.ids}"
        self.ids += 1
        body = json.dumps({"jsonrpc": "2.0", "id": key, "method": "codedouble/status", "params": {}}).encode()
        kind = self.rng.randrange(9)
        lost = True
        if kind == 0:
            data = b"Content-Length: abc\r\n\r\n" + body
        elif kind == 1:
            data = body  # no header at all
        elif kind == 2:
            data = b"garbage that is no header\r\n"
            lost = False
            key = None
        elif kind == 3:
            data = b"Content-Length: %d\r\n\r\n" % (len(body) - self.rng.randrange(1, 10)) + body  # too short
        elif kind == 4:
            filler = b"}}garbage"
            data = b"Content-Length: %d\r\n\r\n" % (len(body) + len(filler)) + body + filler  # too long
        elif kind == 5:
            data = b"Content-Length: 99999999999\r\n\r\n" + body  # beyond any message
        elif kind == 6:
            broken = self.rng.choice([b"{", b'{"jsonrpc": "2.0", "id": 1,', b"\xff\xfe", b"[1, 2", b"nul"])
            data = b"Content-Length: %d\r\n\r\n" % len(broken) + broken
            lost, key = False, None
        elif kind == 7:
            odd = self.rng.choice([b"[]", b"42", b'"x"', b"null", b'{"foo": 1}', b'{"jsonrpc": "2.0"}'])
            data = b"Content-Length: %d\r\n\r\n" % len(odd) + odd
            lost, key = False, None
        else:
            # Headers as some clients write them: lower case, LF alone, a content type. These are good frames.
            header = self.rng.choice(
                [
                    b"content-length: %d\r\n\r\n",
                    b"Content-Length: %d\n\n",
                    b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n",
                ]
            )
            data = header % len(body) + body
            lost = False
            self.sent.expected.append(key)
            self.sent.requests += 1
            key = None
        self.sent.data.append(data)
        if lost and key is not None:
            self.sent.lost.append(key)
            self.sent.requests += 1

    def generate(self) -> Sent:
        actions = [
            (self.did_open, 3),
            (self.did_change, 8),
            (self.did_close, 1),
            (self.complete, 5),
            (self.cancel, 0.5),
            (self.unknown, 0.5),
            (self.configure, 0.7),
            (self.status, 0.3),
            (self.bad_frame, 1),
        ]
        self.did_open()
        weights = [w for _, w in actions]
        for _ in range(self.length):
            self.rng.choices(actions, weights)[0][0]()
        # Settings back to the fuzzer's own, so that the check's completion is computed as usual.
        self._send({"method": "workspace/didChangeConfiguration", "params": {"settings": {"codedouble": SETTINGS}}})
        return self.sent


# --- running and checking ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    seed: str
    died: bool = False
    unanswered: list[Any] = field(default_factory=list)
    answered_twice: list[Any] = field(default_factory=list)
    answered_lost: list[Any] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    unhealthy: str = ""
    requests: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (
            self.died
            or self.unanswered
            or self.answered_twice
            or self.answered_lost
            or self.mismatched
            or self.unhealthy
        )


HEALTHY_TEXT = "def install_webhooks(handler, url):\n    handler.url = url\n    registry.register(handler, pri"


def run_sequence(server: RawServer, seed: str, folder: Path, sizes: Sizes | None = None) -> Outcome:
    """Send one sequence, then check the server against the reference."""
    started = time.monotonic()
    sequence = Sequence(seed, folder, sizes)
    sent = sequence.generate()
    outcome = Outcome(seed, requests=sent.requests)
    try:
        for data in sent.data:
            server.write(data)
        checks: list[tuple[str, str | None, Any]] = []
        for n, uri in enumerate([*sequence.open, *sorted(sequence.closed)[:3]]):
            key = f"{seed}/text/{n}"
            quoted = "file://" + quote(uri.removeprefix("file://")) if n % 2 else uri  # either spelling finds it
            server.write(frame({"jsonrpc": "2.0", "id": key, "method": DOCUMENT_TEXT, "params": {"uri": quoted}}))
            checks.append((key, sequence.open.get(uri), uri))
        health = f"{seed}/healthy"
        healthy_uri = (folder / "app" / f"healthy {seed.replace('/', '_')}.py").as_uri()
        server.write(
            frame(
                {
                    "jsonrpc": "2.0",
                    "method": "textDocument/didOpen",
                    "params": {
                        "textDocument": {"uri": healthy_uri, "languageId": "python", "version": 1, "text": HEALTHY_TEXT}
                    },
                }
            )
        )
        lines = HEALTHY_TEXT.split("\n")
        server.write(
            frame(
                {
                    "jsonrpc": "2.0",
                    "id": health,
                    "method": "textDocument/inlineCompletion",
                    "params": {
                        "textDocument": {"uri": healthy_uri},
                        "position": {"line": len(lines) - 1, "character": len(lines[-1])},
                        "context": {"triggerKind": 2},
                    },
                }
            )
        )
        # Every document closed again, so that the next sequence starts with none (and memory stays bounded).
        for uri in [*sequence.uris, healthy_uri]:
            server.write(
                frame({"jsonrpc": "2.0", "method": "textDocument/didClose", "params": {"textDocument": {"uri": uri}}})
            )
        closing = f"{seed}/closed"
        server.write(frame({"jsonrpc": "2.0", "id": closing, "method": "codedouble/status", "params": {}}))
        expected = [*sent.expected, *(key for key, _, _ in checks), health, closing]
        server.wait(expected)
    except (BrokenPipeError, OSError):
        expected = sent.expected
    outcome.died = not server.alive()
    with server.arrived:
        responses = dict(server.responses)
    outcome.unanswered = [key for key in expected if _key(key) not in responses]
    outcome.answered_twice = [key for key in expected if len(responses.get(_key(key), [])) > 1]
    outcome.answered_lost = [key for key in sent.lost if _key(key) in responses]
    for key, want, uri in checks if not outcome.died else []:
        got = responses.get(_key(key))
        if got is None:
            continue
        result = got[0].get("result")
        have = result.get("text") if isinstance(result, dict) else None
        if not same_text(have, want):
            outcome.mismatched.append(uri)
    answer = responses.get(_key(health), [{}])[0]
    if not outcome.died and _key(health) in responses and not isinstance(answer.get("result"), dict | list):
        outcome.unhealthy = f"the good completion was answered {answer}"
    # Forget this sequence's answers; anything left over afterwards answered a request of an earlier sequence
    # again, or one never sent.
    with server.arrived:
        for key in [*expected, *sent.lost]:
            server.responses.pop(_key(key), None)
        stray = [key for key in server.responses if not key.startswith(('"ready-', '"initialize'))]
        outcome.answered_twice += [f"stray {key}" for key in stray]
        for key in stray:
            del server.responses[key]
    outcome.seconds = time.monotonic() - started
    server.sample_rss()
    return outcome


def failure_report(outcome: Outcome, limit: int = 5) -> str:
    parts = [f"sequence {outcome.seed}:"]
    if outcome.died:
        parts.append("the server died")
    for name in ("unanswered", "answered_twice", "answered_lost", "mismatched"):
        values = getattr(outcome, name)
        if values:
            parts.append(f"{name} {values[:limit]}")
    if outcome.unhealthy:
        parts.append(outcome.unhealthy)
    return "; ".join(parts)


def counted(outcomes: list[Outcome]) -> Counter[str]:
    total: Counter[str] = Counter()
    for o in outcomes:
        total["sequences"] += 1
        total["deaths"] += o.died
        total["unanswered"] += len(o.unanswered)
        total["answered_twice"] += len(o.answered_twice)
        total["answered_lost"] += len(o.answered_lost)
        total["mismatches"] += len(o.mismatched)
        total["unhealthy"] += bool(o.unhealthy)
        total["requests"] += o.requests
    return total


def build_double(root: Path) -> tuple[Path, Path]:
    """The tests' tiny double (tests/test_server.py's history, trained for 4 steps): (repository, artifact)."""
    from test_server import make_double

    made = make_double(root)
    return made.repo, made.artifact
