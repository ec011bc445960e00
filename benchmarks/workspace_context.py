"""Workspace context on a large repository: does indexing it stall the first completion, and what does it
cost in memory?

    python benchmarks/workspace_context.py ARTIFACT_DIR [--files 10000] [--repeat 3]

Writes a synthetic repository of `--files` Python files (nested packages, ~3 KB each, one distinctive line
in the opened file's neighbour), then per repeat starts a fresh `codedouble serve --artifact ARTIFACT_DIR`
subprocess in it, waits until the double is loaded, and measures:

- **first completion**: from sending `didOpen` of a file deep in the tree to the answer of the inline
  completion asked right after it (the indexer starts its walk at that `didOpen`, on its own thread);
- **snapshot ready**: from the same `didOpen` until `codedouble/status` reports the first workspace build;
- **uses the neighbour**: whether a completion after the build continues the line that only the neighbour holds;
- **peak RSS** of the server (VmHWM) after the build and a few more completions.

Medians over the repeats; cores and load average first (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from lsp_latency import Client  # noqa: E402 - the benchmarks' own minimal LSP client

NEIGHBOUR_LINE = '    digest = compute_checksum(payload, algorithm="blake2b", rounds=17)'
TYPED = "    digest = compute_checksum(payload, algo"
WORDS = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "lambda_", "theta", "zeta"]


def _module(rng: random.Random, number: int) -> str:
    lines = ["import os", "import sys", f"from pkg import util_{number % 97}", "", f"LIMIT_{number} = {number}", ""]
    for f in range(8):
        a, b = rng.sample(WORDS, 2)
        lines += [
            "",
            f"def {a}_{b}_{number}_{f}(value, other=None):",
            f"    result = {a}(value) + {b}(other or LIMIT_{number})",
            f"    if result > {rng.randrange(1000)}:",
            f"        return {b}_helper(result, {f})",
            f"    for item in range({rng.randrange(2, 9)}):",
            f"        result = result * item + {a}_offset",
            "    return result",
        ]
    return "\n".join(lines) + "\n"


def make_repository(root: Path, files: int, seed: int = 0) -> tuple[Path, Path]:
    """`files` modules in pkg_XX/sub_Y/mod_Z.py; (the file to open, its neighbour with the distinctive line)."""
    rng = random.Random(seed)
    per_folder = 50
    made: list[Path] = []
    for i in range(files):
        folder = root / f"pkg_{i // (per_folder * 10):02d}" / f"sub_{(i // per_folder) % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"mod_{i % per_folder:02d}.py"
        path.write_text(_module(rng, i), encoding="utf-8")
        made.append(path)
    target = made[len(made) // 2]
    neighbour = target.with_name("checksums.py")
    neighbour.write_text(f"def checksum(payload):\n{NEIGHBOUR_LINE}\n    return digest\n", encoding="utf-8")
    (root / ".env").write_text("API_TOKEN=not-for-the-index\n", encoding="utf-8")
    return target, neighbour


def one_run(artifact: Path, root: Path, target: Path, workspace: bool) -> dict[str, float | bool | str]:
    client = Client(artifact, cwd=root)
    client.request(
        "initialize",
        {
            "processId": None,
            "rootUri": root.as_uri(),
            "capabilities": {},
            # Every suggestion shown: the question is whether the neighbour's line is found, not whether this
            # double's abstention would show it.
            "initializationOptions": {"debounceMs": 0, "minConfidence": 0, "workspaceContext": workspace},
        },
    )
    client.notify("initialized", {})
    started = time.monotonic()
    while client.request("codedouble/status", {})["state"] not in ("ready", "broken", "missing"):
        time.sleep(0.05)
    load_seconds = time.monotonic() - started
    text = target.read_text(encoding="utf-8") + "\n\ndef verify(payload):\n" + TYPED + "\n"
    line = text[: text.index(TYPED)].count("\n")
    where = {"line": line, "character": len(TYPED)}
    uri = target.as_uri()
    opened = time.perf_counter()
    client.notify(
        "textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}}
    )
    params = {"textDocument": {"uri": uri}, "position": where, "context": {"triggerKind": 2}}
    client.request("textDocument/inlineCompletion", params)
    first = time.perf_counter() - opened
    while workspace and client.request("codedouble/status", {})["workspace"]["builds"] < 1:
        if time.perf_counter() - opened > 300:
            break
        time.sleep(0.02)
    built = time.perf_counter() - opened
    status = client.request("codedouble/status", {})
    # The same request again once the snapshot is in place (the cache key holds the snapshot's version).
    began = time.perf_counter()
    got = client.request("textDocument/inlineCompletion", params)
    after_ms = (time.perf_counter() - began) * 1000
    items = (got or {}).get("items", []) if isinstance(got, dict) else got or []
    suggestion = items[0]["insertText"] if items else ""
    rss = client.peak_rss_mib()
    client.close()
    return {
        "load_s": load_seconds,
        "first_s": first,
        "built_s": built,
        "after_ms": after_ms,
        "files": status["workspace"]["files"],
        "chars": status["workspace"]["chars"],
        "build_s": status["workspace"]["last_build_seconds"] or float("nan"),
        "uses_neighbour": NEIGHBOUR_LINE.endswith(suggestion) and bool(suggestion),
        "suggestion": suggestion,
        "rss_mib": rss,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="codedouble-workspace-") as folder:
        root = Path(folder) / "repo"
        began = time.monotonic()
        target, _ = make_repository(root, args.files)
        size = sum(p.stat().st_size for p in root.rglob("*.py"))
        print(f"repository: {args.files:,} files, {size / 1e6:.1f} MB, written in {time.monotonic() - began:.1f} s")
        # Alternated, so that the machine's load drifts over both alike.
        pairs = [(one_run(args.artifact, root, target, True), one_run(args.artifact, root, target, False))]
        for _ in range(args.repeat - 1):
            pairs.append((one_run(args.artifact, root, target, True), one_run(args.artifact, root, target, False)))
    runs, baseline = [p[0] for p in pairs], [p[1] for p in pairs]
    for label, group in (("with workspace context", runs), ("without (workspaceContext: false)", baseline)):
        print(label)
        for run in group:
            print("  " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v!r}" for k, v in run.items()))

    def median(key: str, group: list[dict[str, float | bool | str]] | None = None) -> float:
        return statistics.median(float(r[key]) for r in (group or runs))

    print(
        f"without workspace context, median: first completion {median('first_s', baseline) * 1000:.0f} ms after "
        f"didOpen, peak RSS {median('rss_mib', baseline):.0f} MiB"
    )
    print(
        f"median of {len(runs)}: double loaded in {median('load_s'):.1f} s; first completion {median('first_s') * 1000:.0f} ms "
        f"after didOpen; snapshot ready {median('built_s'):.1f} s after didOpen ({median('files'):.0f} files, "
        f"{median('chars') / 1e6:.1f} M chars, build {median('build_s'):.1f} s); completion after it "
        f"{median('after_ms'):.0f} ms; neighbour's line used in {sum(bool(r['uses_neighbour']) for r in runs)}/{len(runs)}; "
        f"peak RSS {median('rss_mib'):.0f} MiB"
    )
    ok = median("first_s") <= 2 and median("rss_mib") <= 1024
    print(f"goal: first completion ≤ 2 s after didOpen, RSS ≤ 1 GiB → {'met' if ok else 'NOT met'}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
