"""The LSP base protocol over stdio (`Content-Length: N`, a blank line, N bytes of JSON), read so that one bad
frame costs only itself.

pygls's reader takes a header only when a line is exactly `Content-Length: N\\r\\n` at the start of a header
block: after a frame with a bad or missing header, it reads the body (JSON has no raw line feed) and the next
frame's header as one line, misses that header, and so on: one bad frame made the server deaf for the rest of
the session (found by tests/test_fuzz_server.py). Here a `Content-Length` anywhere in a line starts a new frame
(what precedes it on the line is the tail of a lost one), the name is matched case-insensitively as HTTP
headers are, and a length that is not a number, or is too large to be a message, drops only its own frame.
A body that is not JSON is answered with the JSON-RPC parse error (id null) and skipped, as pygls skips it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from pygls.exceptions import JsonRpcException, JsonRpcParseError
from pygls.protocol import JsonRPCProtocol

# A message larger than this is no editor's: a 4 MB document (server.MAX_DOCUMENT_CHARS) is at most 24 MB of
# JSON with every character escaped. A larger length is taken for a corrupt header, not waited for.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_LENGTH = re.compile(rb"content-length[ \t]*:[ \t]*(\S*)[ \t]*\r?\n?\Z", re.IGNORECASE)


class AsyncReader(Protocol):
    def readline(self) -> Awaitable[bytes]: ...

    def readexactly(self, n: int) -> Awaitable[bytes]: ...


def content_length(line: bytes) -> int | None | bool:
    """The length a header line announces: an int; None when the line announces a frame with an unusable length
    (drop it); False when the line holds no Content-Length header at all (any other header, or garbage)."""
    at = line.lower().rfind(b"content-length")
    if at < 0:
        return False
    found = _LENGTH.match(line, at)
    if found is None:
        return False  # the name inside some other text: not a header
    value = found.group(1)
    if not value.isdigit() or not 0 < int(value) <= MAX_MESSAGE_BYTES:
        return None
    return int(value)


async def run_async(
    stop_event: threading.Event,
    reader: AsyncReader,
    protocol: JsonRPCProtocol,
    logger: logging.Logger,
    error_handler: Callable[[Exception, type[JsonRpcException]], Any] | None = None,
) -> None:
    """pygls's `io_.run_async` with the framing above: read frames until end of input or `stop_event`."""
    length: int | None = None
    while not stop_event.is_set():
        line = await reader.readline()
        if not line:
            break
        announced = content_length(line)
        if announced is not False:
            length = announced  # a new frame starts here, whatever came before it
            if announced is None:
                logger.warning("dropped a frame with a bad header: %r", line[:200])
            continue
        if line.strip() or length is None:
            continue  # another header, or garbage between frames
        body = await reader.readexactly(length)
        length = None
        if not body:
            break
        try:
            message = json.loads(body, object_hook=protocol.structure_message)
        except ValueError as exc:  # JSONDecodeError and undecodable bytes alike
            logger.warning("a body that is not JSON: %s", exc)
            protocol._send_response(None, None, JsonRpcParseError(str(exc)).to_response_error())  # type: ignore[arg-type]
            continue
        except Exception as exc:  # noqa: BLE001 - as pygls: a message that cannot be structured is logged and skipped
            logger.exception("Unable to handle message")
            if error_handler:
                error_handler(exc, JsonRpcException)
            continue
        try:
            protocol.handle_message(message)
        except Exception as exc:  # noqa: BLE001 - as pygls: one bad message never ends the session
            logger.exception("Unable to handle message")
            if error_handler:
                error_handler(exc, JsonRpcException)
