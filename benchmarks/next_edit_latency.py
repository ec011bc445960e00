"""Latency of next edits (`textDocument/codeAction`) through the real LSP pipe, on a 2,000-line file.

    python benchmarks/next_edit_latency.py [--requests N] [--every K] [--artifact DIR] [--seed S]

Opens a generated Python file of 2,000 lines (400 functions, each with a `print(x)` call site) in a
`codedouble serve` subprocess over stdio, makes an edit at one call site (`print` → `log.debug`, as
`textDocument/didChange`s: the word deleted, the new one typed), then sends N `textDocument/codeAction` requests
at random cursors, one at a time; every K requests a further edit is made first (a proposal applied, which is an
edit elsewhere), so the figures include the requests that pay for tokenizing the new text. Prints the median and
p95 in ms of all requests, of those right after an edit, and of the whole-document requests the editor plugins
send. Without --artifact the server runs with no double (next edits need none; habits need one's edits.jsonl).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lsp_latency import Client  # noqa: E402 - the benchmarks folder is no package

from codedouble.server.stats import percentile  # noqa: E402

FUNCTIONS = 400  # 5 lines each: 2,000 lines


class Server(Client):
    def __init__(self, artifact: Path | None, cwd: Path) -> None:
        args = ["--artifact", str(artifact)] if artifact is not None else []
        env = {**os.environ, "XDG_DATA_HOME": str(cwd / "xdg")}  # no default double of the user's
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "codedouble.trainer.cli", "serve", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
        )
        self.ids = 0


def document() -> str:
    lines = []
    for i in range(FUNCTIONS):
        lines += [f"def step_{i}(a, b):", f"    x = compute(a, {i})", "    print(x)", "    return x + b", ""]
    return "\n".join(lines) + "\n"


def position(text: str, offset: int) -> dict[str, int]:
    before = text[:offset]
    return {"line": before.count("\n"), "character": offset - (before.rfind("\n") + 1)}  # ASCII: units = chars


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--every", type=int, default=10, help="a further edit every this many requests")
    parser.add_argument("--artifact", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        client = Server(args.artifact, root)
        client.request("initialize", {"processId": None, "rootUri": root.as_uri(), "capabilities": {}})
        client.notify("initialized", {})
        while client.request("codedouble/status", {})["state"] not in ("ready", "broken", "missing"):
            time.sleep(0.05)
        uri = (root / "steps.py").as_uri()
        text = document()
        assert text.count("\n") == FUNCTIONS * 5
        client.notify(
            "textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}
        )
        version = 1

        def change(start: int, end: int, new: str) -> None:
            nonlocal text, version
            version += 1
            span = {"start": position(text, start), "end": position(text, end)}
            client.notify(
                "textDocument/didChange",
                {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"range": span, "text": new}]},
            )
            text = text[:start] + new + text[end:]

        def actions(line: int | None) -> tuple[float, Any]:
            lines = text.count("\n")
            where = (
                {"start": {"line": 0, "character": 0}, "end": {"line": lines + 1, "character": 0}}
                if line is None
                else {"start": {"line": line, "character": 6}, "end": {"line": line, "character": 6}}
            )
            params = {"textDocument": {"uri": uri}, "range": where, "context": {"diagnostics": []}}
            started = time.perf_counter()
            got = client.request("textDocument/codeAction", params)
            return (time.perf_counter() - started) * 1000, got

        # The engineer's edit at the 10th call site: `print` deleted, `log.debug` typed.
        at = text.index("print(x)", text.index("def step_10("))
        change(at, at + len("print"), "")
        for i, char in enumerate("log.debug"):
            change(at + i, at + i, char)

        every, after_edit, whole = [], [], []
        fresh = True
        proposals = 0
        for number in range(args.requests):
            if number and number % args.every == 0:
                # A further edit: the whole-document answer's first proposal applied, as the editors do.
                _, found = actions(None)
                if found:
                    edit = found[0]["edit"]["changes"][uri][0]
                    lines = text.split("\n")
                    start = sum(len(x) + 1 for x in lines[: edit["range"]["start"]["line"]])
                    start += edit["range"]["start"]["character"]
                    end = start + (edit["range"]["end"]["character"] - edit["range"]["start"]["character"])
                    change(start, end, edit["newText"])
                    fresh = True
            is_whole = rng.random() < 0.25
            ms, found = actions(None if is_whole else rng.randrange(0, text.count("\n")))
            every.append(ms)
            if fresh:
                after_edit.append(ms)
                fresh = False
            if is_whole:
                whole.append(ms)
                proposals = len(found or [])
        client.close()

    def line(name: str, values: list[float]) -> str:
        return f"{name:<28} n={len(values):<4} median {statistics.median(values):6.1f} ms   p95 {percentile(values, 95):6.1f} ms"

    print(f"2,000-line file, {proposals} proposals in the last whole-document answer; load {os.getloadavg()[0]:.1f}")
    print(line("all requests", every))
    print(line("first after an edit", after_edit))
    print(line("whole document", whole))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
