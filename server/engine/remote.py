"""The double's model on an engine elsewhere: an OpenAI-compatible `/v1/completions` (vLLM, SGLang, llama.cpp's
server, llama-cpp-python) or llama.cpp's own `/completion`, one base with one LoRA adapter per engineer. The
prompt is cut here, by the double's tokenizer, exactly as the local model cuts its own (fim.py).

Only the model moves: the n-gram, retrieval and abstention stay in this process, so a backend that is slow,
down or answers nonsense costs the model's suggestion and nothing else. Every failure is recorded for
`codedouble/status` and answered as "no suggestion from the model"; after one, the backend is left alone for
a while (doubling up to a minute) so that a dead engine does not add its timeout to every keystroke.

Standard library only (http.client): the request is sent, then the socket is watched in short slices so that
a superseded keystroke closes the connection at once (vLLM and llama.cpp abort a request whose client is gone).
"""

from __future__ import annotations

import http.client
import json
import math
import os
import select
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from transformers import PreTrainedTokenizerFast

from codedouble.server.contract import prompt
from codedouble.server.contract.errors import CodedoubleError
from codedouble.server.engine import blocks, fim
from codedouble.server.engine.document import Request, window
from codedouble.server.engine.neural import BLOCK_TOKENS, LINE_TOKENS, PROMPT_LIMIT, Generated, repetition_cut

Kind = Literal["openai", "llama.cpp"]
KINDS: tuple[str, ...] = ("openai", "llama.cpp")
# Without the double's tokenizer (a client made for a test; the server always has the artifact's) the window is
# cut by characters instead, which does not bound its tokens: with these caps 10 of 200 prompts cut from rich's
# files exceeded the shipped base's 1024-token context (1,738 tokens at most), hence fim.py's cut by tokens.
MAX_PREFIX_CHARS = 3000
MAX_SUFFIX_CHARS = 800
# Markers of the prompt format that end a completion (none of them is code). The OpenAI API takes at most
# four stop sequences; the model's own end-of-text stops every engine anyway.
STOPS = (prompt.EOS, prompt.FILE, prompt.FIM_PREFIX)
POLL_SECONDS = 0.02  # how often a waiting request looks whether it was superseded
BACKOFF_SECONDS = 2.0  # after a failure the backend rests this long, doubled at each failure in a row
BACKOFF_MAX_SECONDS = 60.0


class BackendError(CodedoubleError):
    """A backend setting that cannot work (the message says which and how to fix it)."""


@dataclass(frozen=True)
class Backend:
    """Where the model runs: the engine's kind, its base URL (`http://host:8000`, a trailing `/v1` allowed),
    the model name it serves the engineer's adapter under, and the environment variable holding an API key."""

    kind: Kind
    url: str
    model: str = ""
    api_key_env: str = ""
    timeout_ms: int = 1000

    def endpoint(self) -> tuple[str, str, int, str]:
        """(scheme, host, port, path) of the completion endpoint."""
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise BackendError(f"backend url {self.url!r} is not an http:// or https:// URL with a host")
        base = parts.path.rstrip("/")
        if self.kind == "openai":
            path = f"{base}/completions" if base.endswith("/v1") else f"{base}/v1/completions"
        else:
            path = f"{base}/completion"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return parts.scheme, parts.hostname, port, path

    def api_key(self) -> str | None:
        if not self.api_key_env:
            return None
        key = os.environ.get(self.api_key_env)
        if not key:
            raise BackendError(f"apiKeyEnv names {self.api_key_env}, but that environment variable is not set")
        return key


# --- what is sent and what comes back (pure) -----------------------------------------------------------------


def rendered(request: Request) -> tuple[prompt.Context, str, str]:
    """The window cut by characters, for a client without the double's tokenizer: the prefix from a line start."""
    ctx, before, after = window(request)
    if len(before) > MAX_PREFIX_CHARS:
        cut = before[-MAX_PREFIX_CHARS:]
        newline = cut.find("\n")
        before = cut[newline + 1 :] if 0 <= newline < len(cut) - 1 else cut
    return ctx, before, after[:MAX_SUFFIX_CHARS]


def max_tokens(request: Request) -> int:
    return LINE_TOKENS if request.mode == "line" else BLOCK_TOKENS


def stops(request: Request) -> list[str]:
    # A line ends at its newline; a body runs to the model's end of text and is cut where the block ends.
    return ["\n", *STOPS] if request.mode == "line" else [*STOPS, "\n\n\n"]


def openai_body(backend: Backend, request: Request, text: str) -> dict[str, Any]:
    """A `/v1/completions` request for the FIM prompt `text`, rendered here (vLLM refuses the `suffix` field),
    greedy."""
    body: dict[str, Any] = {
        "prompt": text,
        "max_tokens": max_tokens(request),
        "temperature": 0,
        "stop": stops(request),
        "logprobs": 1,  # the model's confidence, for abstention
        "stream": False,
    }
    if backend.model:
        body["model"] = backend.model  # vLLM picks the engineer's LoRA adapter by this name
    return body


def llama_cpp_body(request: Request, text: str) -> dict[str, Any]:
    """A llama.cpp `/completion` request for the FIM prompt `text`. Not `/infill`: llama.cpp lays an infill out
    itself, as FIM_PRE prefix FIM_SUF suffix FIM_MID (prefix-suffix-middle; its --spm-infill only swaps the two
    parts, the prefix still before FIM_MID), while the double was trained with the text before the cursor after
    FIM_MID (prompt.py). Measured against a real llama-server (tests/test_llama_cpp.py's build) serving the
    shipped base, 200 mid-line cursors in rich's files: next-line EM 0.0 % through /infill against 5.5 % with
    the double's own prompt cut by characters here, and 18.0 % cut as fim.py cuts it."""
    return {
        "prompt": text,
        "n_predict": max_tokens(request),
        "temperature": 0,
        "stop": stops(request),
        "n_probs": 1,
        "cache_prompt": True,  # llama.cpp keeps the key-value cache of the common prompt head between keystrokes
    }


class BadResponse(Exception):
    """The engine answered something that is not a completion."""


def parse_openai(data: Any) -> tuple[str, float | None]:
    """(text, summed log-probability or None) of a `/v1/completions` answer."""
    try:
        choice = data["choices"][0]
        text = choice["text"]
    except (KeyError, IndexError, TypeError) as exc:
        raise BadResponse(f"no choices[0].text in the answer ({str(data)[:120]})") from exc
    if not isinstance(text, str):
        raise BadResponse("choices[0].text is not a string")
    logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
    if not isinstance(logprobs, dict):
        return text, None
    values = logprobs.get("token_logprobs")  # OpenAI's legacy completions layout, as vLLM and SGLang answer
    if values is None and isinstance(logprobs.get("content"), list):
        # llama.cpp's llama-server answers /v1/completions in the chat layout (measured against it, 0.3.36's tree)
        values = [step.get("logprob") if isinstance(step, dict) else None for step in logprobs["content"]]
    return text, _summed(values)


def parse_llama_cpp(data: Any) -> tuple[str, float | None]:
    """(text, summed log-probability or None) of a llama.cpp `/completion` answer (`logprob` in newer servers,
    `probs[0].prob` of the chosen token in older ones)."""
    if not isinstance(data, dict) or not isinstance(data.get("content"), str):
        raise BadResponse(f"no content in the answer ({str(data)[:120]})")
    values: list[Any] = []
    for step in data.get("completion_probabilities") or []:
        if isinstance(step, dict) and isinstance(step.get("logprob"), int | float):
            values.append(step["logprob"])
        elif isinstance(step, dict) and step.get("probs") and isinstance(step["probs"][0].get("prob"), int | float):
            probability = step["probs"][0]["prob"]
            values.append(math.log(probability) if probability > 0 else -math.inf)
        else:
            return data["content"], None
    return data["content"], _summed(values) if values else None


def _summed(values: Any) -> float | None:
    if not isinstance(values, list) or not values:
        return None
    kept = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return float(sum(kept)) if len(kept) == len(values) else None


def finished(request: Request, text: str) -> str:
    """The engine's text cut as the local model cuts its own: a line, a body at its end, no degenerate loop."""
    line_before = request.prefix[request.prefix.rfind("\n") + 1 :]
    cut = repetition_cut(line_before, text, (request.prefix, request.suffix))
    text = cut if cut is not None else text
    if request.mode == "line":
        return blocks.cut_line(text)
    lines_cut = blocks.line_loop_cut(text, (request.prefix, request.suffix))
    text = lines_cut if lines_cut is not None else text
    return blocks.body_end(request.prefix, text, request.language)


# --- health, for codedouble/status ------------------------------------------------------------------------------


@dataclass
class Health:
    requests: int = 0
    answered: int = 0
    failures: int = 0
    timeouts: int = 0
    cancelled: int = 0
    skipped: int = 0  # requests not sent while the backend rested after a failure
    last_error: str = ""
    last_error_at: float | None = None  # time.time()
    last_latency_ms: float | None = None
    failing_in_a_row: int = 0
    resting_until: float = 0.0  # time.monotonic()
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            rest = max(0.0, self.resting_until - time.monotonic())
            if self.requests == 0:
                state = "unused"
            else:
                state = "failing" if self.failing_in_a_row else "ok"
            return {
                "state": state,
                "requests": self.requests,
                "answered": self.answered,
                "failures": self.failures,
                "timeouts": self.timeouts,
                "cancelled": self.cancelled,
                "skipped": self.skipped,
                "last_error": self.last_error,
                "last_error_at": self.last_error_at,
                "last_latency_ms": self.last_latency_ms,
                "retry_in_s": round(rest, 2),
            }


class Timeout(Exception):
    pass


class Cancelled(Exception):
    pass


def post_json(
    backend: Backend, body: dict[str, Any], deadline: float, cancelled: Callable[[], bool] | None = None
) -> Any:
    """POST `body` to the backend's endpoint and return its JSON; Timeout past `deadline` (monotonic),
    Cancelled as soon as `cancelled()` says so (the connection is closed, which aborts the engine's work)."""
    scheme, host, port, path = backend.endpoint()
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise Timeout()
    connection_class = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    connection = connection_class(host, port, timeout=remaining)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    key = backend.api_key()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    try:
        try:
            connection.request("POST", path, body=json.dumps(body).encode("utf-8"), headers=headers)
        except TimeoutError as exc:
            raise Timeout() from exc
        sock = connection.sock
        while True:
            if cancelled is not None and cancelled():
                raise Cancelled()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout()
            readable, _, _ = select.select([sock], [], [], min(POLL_SECONDS, remaining))
            if readable:
                break
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            response = connection.getresponse()
            raw = response.read()
        except TimeoutError as exc:
            raise Timeout() from exc
        if response.status != 200:
            raise BadResponse(f"HTTP {response.status}: {raw[:200].decode('utf-8', 'replace')}")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise BadResponse(f"not JSON ({raw[:80]!r})") from exc
    finally:
        connection.close()


class RemoteModel:
    """The engine's model part, answered by a backend; the same `generate` as the local `Neural`."""

    name = "model"
    description = "the double's model on a remote engine"

    def __init__(self, backend: Backend, artifact: Path | None = None) -> None:
        """`artifact`: the double the engine serves; its tokenizer and context cut the prompt as the local model
        would (without one, as in some tests, the window is cut by characters)."""
        backend.endpoint()  # a bad URL is refused when the engine loads, not at each keystroke
        backend.api_key()
        self.backend = backend
        self.health = Health()
        self.tokenizer: PreTrainedTokenizerFast | None = None
        self.context = 0
        if artifact is not None:
            self.tokenizer = PreTrainedTokenizerFast.from_pretrained(artifact, local_files_only=True)
            config = json.loads((artifact / "config.json").read_text(encoding="utf-8"))
            self.context = fim.context_of(config)

    def prompt(self, request: Request) -> tuple[str, str]:
        """The FIM prompt as the local model would be given it (fim.py, the same budget), and the healed text
        its answer must start with ("" when none: a healed text holding a stop sequence, a line's newline,
        would end the answer at once, so it stays in the prompt)."""
        if self.tokenizer is None:
            return prompt.fim_prompt(*rendered(request)), ""
        new_tokens = min(max_tokens(request), self.context // 2)
        budget = min(self.context - new_tokens, PROMPT_LIMIT)  # Neural.budget's
        text, healed = fim.prompt_text(self.tokenizer, request, budget)
        return (text + healed, "") if any(stop in healed for stop in stops(request)) else (text, healed)

    def status(self) -> dict[str, Any]:
        return {
            "kind": self.backend.kind,
            "url": self.backend.url,
            "model": self.backend.model,
            "timeout_ms": self.backend.timeout_ms,
            **self.health.to_dict(),
        }

    def _failed(self, error: str, timeout: bool = False) -> None:
        health = self.health
        with health.lock:
            health.failures += 1
            health.timeouts += timeout
            health.last_error, health.last_error_at = error, time.time()
            health.failing_in_a_row += 1
            rest = min(BACKOFF_SECONDS * 2 ** (health.failing_in_a_row - 1), BACKOFF_MAX_SECONDS)
            health.resting_until = time.monotonic() + rest

    def generate(self, request: Request, cancelled: Callable[[], bool] | None = None) -> Generated:
        health = self.health
        with health.lock:
            if time.monotonic() < health.resting_until:
                health.skipped += 1
                return Generated("", 0.0, 0)
            health.requests += 1
        started = time.monotonic()
        sent, healed = self.prompt(request)
        body = (
            openai_body(self.backend, request, sent) if self.backend.kind == "openai" else llama_cpp_body(request, sent)
        )
        parse = parse_openai if self.backend.kind == "openai" else parse_llama_cpp
        try:
            text, logprob = parse(post_json(self.backend, body, started + self.backend.timeout_ms / 1000, cancelled))
        except Cancelled:
            with health.lock:
                health.cancelled += 1
            return Generated("", 0.0, 0)
        except Timeout:
            self._failed(f"no answer within {self.backend.timeout_ms} ms", timeout=True)
            return Generated("", 0.0, 0)
        except (BadResponse, OSError, http.client.HTTPException, BackendError) as exc:
            self._failed(f"{type(exc).__name__}: {exc}")
            return Generated("", 0.0, 0)
        with health.lock:
            health.answered += 1
            health.failing_in_a_row, health.resting_until = 0, 0.0
            health.last_latency_ms = round((time.monotonic() - started) * 1000, 1)
        if not text.startswith(healed):
            return Generated("", -math.inf, 0)  # the engine would not have typed what the engineer typed
        # Without log-probabilities the engine says nothing of its confidence: the score is 0, and the tuned
        # threshold decides (minConfidence 0 shows every answer).
        return Generated(finished(request, text[len(healed) :]), logprob if logprob is not None else -math.inf, 0)

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:
        return self.generate(request, cancelled).text
