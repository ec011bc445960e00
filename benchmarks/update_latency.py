"""From a commit to a completion of its code: how long `codedouble update --no-train` (what the post-commit
hook runs) takes to put a new commit's code in front of the engineer, through a running server.

    python benchmarks/update_latency.py REPO [--behind 8] [--steps 20]

Clones REPO (a real history), rewinds it `--behind` first-parent commits, mines it (--all-authors) and trains
a short double (`--steps` of fine-tuning the shipped base, no abstention tuning) as the repository's current
double, and starts `codedouble serve` in the clone (workspace context off, so only the double can know the
new code; every suggestion shown). Then, commit by commit, it moves the clone forward to the next commit and
measures:

- **update**: the wall time of `codedouble update --no-train` as a subprocess (interpreter start included);
- **visible**: from the commit's arrival until the running server completes a line of a definition that
  commit changed (the half-typed line in a fresh document; the server notices the new double within
  WATCH_SECONDS and reloads it), or `-` if it never does within 120 s.

Commits that change no definition of a supported language are skipped. Cores and load average first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from lsp_latency import Client  # noqa: E402 - the benchmarks' own minimal LSP client

from codedouble.server.contract import artifact, corpus  # noqa: E402
from codedouble.trainer.mining import dataset  # noqa: E402

CLI = [sys.executable, "-m", "codedouble.trainer.cli"]


class Server(Client):
    """`codedouble serve` choosing its double itself, as an editor starts it (no --artifact)."""

    def __init__(self, cwd: Path) -> None:  # noqa: D107 - a Client with another command
        self.proc = subprocess.Popen(
            [*CLI, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=cwd
        )
        self.ids = 0


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def run(command: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def probe(current: Path, known: set[str]) -> tuple[str, str, str, str] | None:
    """A (path, prefix, rest, language) from the newest update's code: a line of a definition it added to the
    corpus that no older corpus entry holds, cut in the middle."""
    for snippet in corpus.load(current):
        if snippet.text in known or snippet.kind != "definition":
            continue
        lines = snippet.text.splitlines()
        for i in range(1, len(lines)):
            line = lines[i]
            stripped = line.strip()
            if len(stripped) < 16 or any(line in text for text in known):
                continue
            cut = len(line) - len(stripped) + len(stripped) // 2
            prefix = "\n".join(lines[:i]) + "\n" + line[:cut]
            return snippet.path, prefix, line[cut:], snippet.language
    return None


def visible(server: Server, path: str, prefix: str, rest: str, language: str, started: float, n: int) -> float | None:
    uri = f"file:///bench/probe_{n}/{path}"
    text = prefix + "\n"
    server.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": language, "version": 1, "text": text}},
    )
    lines = prefix.split("\n")
    position = {"line": len(lines) - 1, "character": len(lines[-1].encode("utf-16-le")) // 2}
    params = {"textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": 2}}
    while time.monotonic() - started < 120:
        got: Any = server.request("textDocument/inlineCompletion", params)
        items = got.get("items", []) if isinstance(got, dict) else got or []
        if items and items[0]["insertText"].split("\n")[0].rstrip() == rest.rstrip():
            return time.monotonic() - started
        time.sleep(0.25)
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo", type=Path)
    parser.add_argument("--behind", type=int, default=8, help="first-parent commits to replay (default 8)")
    parser.add_argument("--steps", type=int, default=20, help="fine-tuning steps of the first double (default 20)")
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")

    with tempfile.TemporaryDirectory(prefix="codedouble-update-") as tmp:
        work = Path(tmp)
        os.environ["XDG_DATA_HOME"] = str(work / "xdg")
        clone = work / "clone"
        subprocess.run(["git", "clone", "-q", str(args.repo), str(clone)], check=True)
        head = git(clone, "rev-parse", "HEAD").strip()
        upcoming = git(clone, "rev-list", "--reverse", "--first-parent", f"HEAD~{args.behind}..HEAD").split()
        git(clone, "reset", "-q", "--hard", f"HEAD~{args.behind}")
        data = work / "dataset"
        mined = run([*CLI, "mine", str(clone), "--out", str(data), "--all-authors"])
        trained = run([*CLI, "train", str(data), "--steps", str(args.steps), "--tune-lines", "0", "--quiet"])
        print(f"setup: mine {mined:.0f} s, train {trained:.0f} s ({args.steps} steps), replaying to {head[:12]}")

        server = Server(clone)
        settings = {"workspaceContext": False, "minConfidence": 0}
        server.request(
            "initialize",
            {"processId": None, "rootUri": clone.as_uri(), "capabilities": {}, "initializationOptions": settings},
        )
        server.notify("initialized", {})
        while server.request("codedouble/status", {})["state"] not in ("ready", "broken", "missing"):
            time.sleep(0.2)

        rows: list[tuple[str, float, float | None, int]] = []
        for n, sha in enumerate(upcoming):
            before = artifact.current_artifact(str(clone.resolve()))
            assert before is not None
            known = {s.text for s in corpus.load(before)}
            git(clone, "reset", "-q", "--hard", sha)
            started = time.monotonic()
            took = run([*CLI, "update", "--no-train", "--repo", str(clone), "--quiet"])
            current = artifact.current_artifact(str(clone.resolve()))
            assert current is not None
            if current == before:
                print(f"{sha[:12]}  no new definitions: skipped")
                continue
            records = artifact.read_manifest(current)["updates"][-1]["records"]
            found = probe(current, known)
            seen = visible(server, *found, started, n) if found else None
            rows.append((sha[:12], took, seen, records))
            print(
                f"{sha[:12]}  records {records:3d}  update {took:5.1f} s  visible {'-' if seen is None else f'{seen:5.1f} s'}"
            )
        server.close()
        total = sum(1 for _ in dataset.load_records(data))

    if rows:
        updates = [r[1] for r in rows]
        seen = [r[2] for r in rows if r[2] is not None]
        print(
            json.dumps(
                {
                    "commits": len(rows),
                    "update_median_s": round(statistics.median(updates), 1),
                    "visible_median_s": round(statistics.median(seen), 1) if seen else None,
                    "visible_max_s": round(max(seen), 1) if seen else None,
                    "completed": f"{len(seen)}/{len(rows)}",
                    "dataset_records": total,
                }
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
