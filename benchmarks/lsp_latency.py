"""End-to-end latency of `codedouble serve`: typing replayed through the real LSP pipe.

    python benchmarks/lsp_latency.py ARTIFACT_DIR [--lines N] [--seed S] [--backend KIND --url URL]

Takes next-line samples from the artifact's held-out commits (the files as they were at that commit), opens
each file in a server subprocess over stdio with the line removed, then types the line character by
character: a `textDocument/didChange` and a `textDocument/inlineCompletion` per keystroke, each answered
before the next (debounce 0, so the figures are the server's own time). Prints latency p50/p95 per
request from send to answer, the share answered from the typed-ahead and prompt caches, and the server's
peak RSS. Baseline in the same run: the round trip of a `codedouble/status` request (the pipe and
pygls alone), so the ratio shows what completion adds. With `--backend`, the server's model part runs on
that engine (`codedouble serve --backend`), e.g. llama.cpp's `llama-server` serving the double's GGUF export.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from codedouble.server.contract.artifact import read_manifest
from codedouble.server.stats import percentile
from codedouble.trainer.evaluation import tasks
from codedouble.trainer.evaluation.run import _heldout


class Client:
    """A minimal LSP client over the server's stdio: requests are answered one at a time, in order."""

    def __init__(
        self, artifact: Path, cwd: Path | None = None, runtime: str | None = None, server_args: list[str] | None = None
    ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "codedouble.trainer.cli", "serve", "--artifact", str(artifact)]
            + (["--runtime", runtime] if runtime else [])
            + (server_args or []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=cwd,
        )
        self.ids = 0

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        length = 0
        while line := self.proc.stdout.readline().strip():
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return json.loads(self.proc.stdout.read(length))

    def request(self, method: str, params: Any) -> Any:
        self.ids += 1
        self.send({"id": self.ids, "method": method, "params": params})
        while True:
            message = self._read()
            if message.get("id") == self.ids and "method" not in message:
                return message.get("result")
            if "method" in message and "id" in message:  # a request from the server (progress): accept it
                self.send({"id": message["id"], "result": None})

    def notify(self, method: str, params: Any) -> None:
        self.send({"method": method, "params": params})

    def peak_rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        self.request("shutdown", None)
        self.notify("exit", None)
        self.proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--lines", type=int, default=30, help="held-out lines to type (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runtime", choices=["int8", "fp32"], help="the server's --runtime (default: its own)")
    parser.add_argument("--backend", choices=["openai", "llama.cpp"], help="the server's --backend (default: local)")
    parser.add_argument("--url", help="the engine's URL, with --backend")
    args = parser.parse_args()
    if bool(args.backend) != bool(args.url):
        parser.error("--backend and --url go together")
    server_args = ["--backend", args.backend, "--url", args.url] if args.backend else []

    manifest = read_manifest(args.artifact)
    records, _, _ = _heldout(args.artifact, manifest)
    samples = [s for s in tasks.sample(records, args.lines, 0, args.seed) if s.task == "line"]
    client = Client(args.artifact, runtime=args.runtime, server_args=server_args)
    client.request(
        "initialize",
        {"processId": None, "rootUri": None, "capabilities": {}, "initializationOptions": {"debounceMs": 0}},
    )
    client.notify("initialized", {})
    started = time.monotonic()
    while client.request("codedouble/status", {})["state"] not in ("ready", "broken", "missing"):
        time.sleep(0.05)
    load_seconds = time.monotonic() - started
    status_ms: list[float] = []
    latencies: list[float] = []
    computed: list[float] = []  # the keystrokes the engine ran for (neither cache had the answer)
    served = 0
    for number, sample in enumerate(samples):
        uri = f"file:///replay/{number}/{sample.path}"
        # The line as it was before the engineer typed it: the text up to the cursor's line start, then the suffix.
        line_start = sample.prefix.rfind("\n") + 1
        text = sample.prefix[:line_start] + sample.suffix
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": sample.language, "version": 0, "text": text}},
        )
        typed = sample.prefix[line_start:] + sample.target
        line = sample.prefix.count("\n")
        for column, char in enumerate(typed):
            client.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": uri, "version": column + 1},
                    "contentChanges": [
                        {
                            "range": {
                                "start": {"line": line, "character": column},
                                "end": {"line": line, "character": column},
                            },
                            "text": char,
                        }
                    ],
                },
            )
            began = time.perf_counter()
            client.request(
                "textDocument/inlineCompletion",
                {
                    "textDocument": {"uri": uri},
                    "position": {"line": line, "character": column + 1},
                    "context": {"triggerKind": 2},
                },
            )
            latencies.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            cache = client.request("codedouble/status", {})["cache"]
            status_ms.append((time.perf_counter() - began) * 1000)
            if cache["hits"] + cache["typed_ahead"] == served:
                computed.append(latencies[-1])
            served = cache["hits"] + cache["typed_ahead"]
        client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    status = client.request("codedouble/status", {})
    rss = client.peak_rss_mib()
    client.close()

    cache = status["cache"]
    served_from_cache = cache["hits"] + cache["typed_ahead"]
    print(f"artifact: {args.artifact}")
    print(f"double loaded in {load_seconds:.1f} s; {len(samples)} held-out lines, {len(latencies)} keystrokes")
    print(
        f"inline completion: p50 {percentile(latencies, 50):.1f} ms, p95 {percentile(latencies, 95):.1f} ms, "
        f"mean {statistics.fmean(latencies):.1f} ms"
    )
    if computed:
        print(
            f"  of which computed by the engine ({len(computed)}): p50 {percentile(computed, 50):.1f} ms, p95 {percentile(computed, 95):.1f} ms"
        )
    base = percentile(status_ms, 50)
    print(
        f"baseline (status round trip): p50 {base:.2f} ms; completion p50 is {percentile(latencies, 50) / base:.1f}× it"
    )
    print(
        f"answered from cache: {served_from_cache / max(len(latencies), 1):.0%} "
        f"(typed-ahead {cache['typed_ahead']}, prompt cache {cache['hits']}, computed {cache['misses']})"
    )
    print(f"server peak RSS: {rss:.0f} MiB")
    print(
        f"goal on 2 cores: p50 ≤ 40 ms, p95 ≤ 120 ms → {'met' if percentile(latencies, 50) <= 40 and percentile(latencies, 95) <= 120 else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
