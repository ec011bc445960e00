"""The real `codedouble serve` fuzzed over raw stdio (tests/lsp_fuzz.py), bounded to about 45 s here, and the
bugs it found kept as regression tests: a bad frame made pygls's reader deaf for the rest of the session,
edits past a line's end or with a reversed range diverged from the editor's text, and a percent-encoded URI
was never found among the open documents."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from lsp_fuzz import (
    HEALTHY_TEXT,
    RawServer,
    Sizes,
    apply_edit,
    failure_report,
    frame,
    run_sequence,
    start,
)
from test_server import Double, double  # noqa: F401 - the double the served tests use, trained once a module

FUZZ_SECONDS = 45  # on this 2-core machine; sequences run in seed order until then
MIN_SEQUENCES = 10


@pytest.fixture(scope="module")
def raw(double: Double, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawServer]:  # noqa: F811
    server = start(double.artifact, double.repo, tmp_path_factory.mktemp("fuzz") / "stderr.log")
    yield server
    server.close()


def test_fuzzed_sequences(raw: RawServer, double: Double) -> None:  # noqa: F811
    deadline = time.monotonic() + FUZZ_SECONDS
    failures, count = [], 0
    # Long tokens (100 KB to 1 MB) more often than the benchmark's 1 %: a short run should still meet some.
    while time.monotonic() < deadline and raw.alive():
        outcome = run_sequence(raw, f"ci/{count}", double.repo, Sizes(huge=0.05, long=0.15))
        count += 1
        if not outcome.ok:
            failures.append(failure_report(outcome))
    assert not failures, "\n".join(failures[:5])
    assert count >= MIN_SEQUENCES


# --- the bugs it found ---------------------------------------------------------------------------------------


def _text(raw: RawServer, uri: str, key: str) -> str | None:
    got = raw.request("codedouble/documentText", {"uri": uri}, key)
    assert got is not None and "error" not in got, got
    return got["result"]["text"] if got["result"] is not None else None


def _open(raw: RawServer, uri: str, text: str) -> None:
    item = {"uri": uri, "languageId": "python", "version": 1, "text": text}
    raw.write(frame({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": item}}))


def _change(raw: RawServer, uri: str, start: tuple[int, int], end: tuple[int, int], new: str) -> None:
    change = {
        "range": {"start": {"line": start[0], "character": start[1]}, "end": {"line": end[0], "character": end[1]}},
        "text": new,
    }
    params = {"textDocument": {"uri": uri, "version": 2}, "contentChanges": [change]}
    raw.write(frame({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": params}))


@pytest.mark.parametrize(
    "header",
    [
        b"Content-Length: abc\r\n\r\n",  # not a number
        b"",  # no header at all
        b"Content-Length: 99999999999\r\n\r\n",  # pygls waited for 100 GB
        b"Content-Length: 20\r\n\r\n",  # too short: the rest of the body ran into the next header
    ],
)
def test_a_bad_frame_costs_only_itself(raw: RawServer, header: bytes) -> None:
    # pygls's reader missed every header after such a frame (JSON has no line feed, so the next header was read
    # as the end of the body's line): the server never answered again.
    lost = json.dumps({"jsonrpc": "2.0", "id": f"lost {header!r}", "method": "codedouble/status"}).encode()
    raw.write(header + lost)
    for n in range(3):
        got = raw.request("codedouble/status", {}, f"after {header!r} {n}", 30)
        assert got is not None and got["result"]["state"] == "ready"
    assert json.dumps(f"lost {header!r}") not in raw.responses


@pytest.mark.parametrize(
    "header",
    [b"content-length: %d\r\n\r\n", b"Content-Length: %d\n\n", b"Content-Length:%d\r\nContent-Type: x\r\n\r\n"],
)
def test_headers_as_lenient_clients_write_them(raw: RawServer, header: bytes) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": f"lenient {header!r}", "method": "codedouble/status"}).encode()
    raw.write(header % len(body) + body)
    assert raw.wait([f"lenient {header!r}"], 30)


def test_a_body_that_is_not_json_is_answered_parse_error(raw: RawServer) -> None:
    errors = raw.parse_errors
    raw.write(b"Content-Length: 5\r\n\r\n{oops")
    assert raw.request("codedouble/status", {}, "after oops", 30) is not None
    assert raw.parse_errors == errors + 1


_edits = itertools.count()
LAST = "x = 1\ny = 22"  # the last line has no line break
CRLF = "a = 1\r\nb = 2\r\n"


@pytest.mark.parametrize(
    ("text", "start", "end", "new"),
    [
        (LAST, (1, 99), (1, 99), "3"),  # pygls: before the line's last character ("y = 232")
        (LAST, (0, 6), (0, 6), "#"),  # one unit past a line's end: pygls wrote after the line break
        (CRLF, (0, 6), (0, 6), "#"),  # ... inside CR LF, splitting it into two line breaks
        (CRLF, (1, 3), (0, 2), "="),  # reversed across lines: pygls dropped the new text
        (CRLF, (0, 4), (0, 1), "_"),  # reversed on one line: pygls doubled the old text
        (CRLF, (7, 0), (9, 9), "tail"),  # past the end of the document: appended
        ("🎉x\n", (0, 1), (0, 1), "!"),  # inside an astral character's two units: after it
    ],
)
def test_edits_land_where_the_protocol_says(
    raw: RawServer,
    double: Double,  # noqa: F811
    text: str,
    start: tuple[int, int],
    end: tuple[int, int],
    new: str,
) -> None:
    uri = (double.repo / "app" / f"edit {next(_edits)}.py").as_uri()
    _open(raw, uri, text)
    _change(raw, uri, start, end, new)
    assert _text(raw, uri, f"edit {uri}") == apply_edit(text, start, end, new)


def test_a_client_preferring_utf8_positions_is_answered_in_utf16(
    double: Double,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Neovim 0.10 and later offer utf-8 first (pygls would have agreed to it), while the server counts
    UTF-16 code units: an edit after a non-ASCII character then landed in the wrong column. The server answers
    utf-16, which every client supports, and edits from a client holding to that land where they should."""
    neovim = {"general": {"positionEncodings": ["utf-8", "utf-16", "utf-32"]}}
    server = start(double.artifact, double.repo, tmp_path / "stderr.log", capabilities=neovim)
    try:
        assert server.initialized["capabilities"]["positionEncoding"] == "utf-16"
        uri = (double.repo / "app" / "accents.py").as_uri()
        text = 'label = "café 🎉"\nx = 1\n'
        _open(server, uri, text)
        _change(server, uri, (0, 17), (0, 17), "  # ok")  # after the closing quote: 17 UTF-16 units, 20 bytes
        assert _text(server, uri, "accents") == 'label = "café 🎉"  # ok\nx = 1\n'
    finally:
        server.close()


def test_reference_model_examples() -> None:
    # The fuzzer's own model, by hand: the expectations above are not circular.
    assert apply_edit(LAST, (1, 99), (1, 99), "3") == "x = 1\ny = 223"
    assert apply_edit(CRLF, (0, 6), (0, 6), "#") == "a = 1#\r\nb = 2\r\n"
    assert apply_edit(CRLF, (1, 3), (0, 2), "=") == "a = 2\r\n"
    assert apply_edit(CRLF, (0, 4), (0, 1), "_") == "a_1\r\nb = 2\r\n"
    assert apply_edit("🎉x\n", (0, 1), (0, 1), "!") == "🎉!x\n"


def test_a_percent_encoded_uri_is_found(raw: RawServer, double: Double) -> None:  # noqa: F811
    # pygls keeps documents by their decoded URI; the server looked them up as sent, so a document whose path
    # VS Code encodes (a space, a drive's colon) was never completed.
    path = (double.repo / "app" / "with space.py").as_posix()
    encoded = "file://" + quote(path)
    _open(raw, encoded, HEALTHY_TEXT)
    assert _text(raw, encoded, "encoded") == HEALTHY_TEXT
    assert _text(raw, "file://" + path, "decoded") == HEALTHY_TEXT
    lines = HEALTHY_TEXT.split("\n")
    where = {"line": len(lines) - 1, "character": len(lines[-1])}
    params = {"textDocument": {"uri": encoded}, "position": where, "context": {"triggerKind": 2}}
    got = raw.request("textDocument/inlineCompletion", params, "encoded completion")
    assert got is not None and got["result"]["items"], got


def test_document_text_of_a_closed_document_is_null(raw: RawServer, double: Double) -> None:  # noqa: F811
    uri = (double.repo / "app" / "never.py").as_uri()
    assert _text(raw, uri, "never") is None
    got = raw.request("codedouble/documentText", {"uri": 5}, "bad uri")
    assert got is not None and got.get("result") is None


def test_raw_server_sees_no_malformed_output(raw: RawServer) -> None:
    assert raw.malformed_output == 0


def test_a_notifications_future_is_not_kept() -> None:
    # pygls stored the future of every handler under its message id and only a request's answer removed it: each
    # didOpen, didChange and didClose (pygls runs them as generators) kept its params, the document text, for the
    # life of the server (1.6 GB of RSS after 10,000 fuzzed sequences; about 420 MiB with this).
    from codedouble.server.server import server

    protocol = server.protocol

    def builtin_like(*_args: object) -> Iterator[None]:
        yield from ()

    protocol._execute_handler("notification-1", builtin_like, lambda _future: None, args=({"text": "x" * 10},))
    assert "notification-1" not in protocol._request_futures
