"""`codedouble serve` fuzzed: seeded sequences of good and bad LSP messages over raw stdio (tests/lsp_fuzz.py).

    python benchmarks/fuzz_server.py [--sequences 10000] [--first 0] [--seed fuzz] [--artifact DIR]
                                     [--huge 0.01] [--long 0.08] [--log FILE] [--resume]

Sequence i is generated from the seed string `SEED/i` alone, so a run can be sharded (`--first`, `--sequences`)
or continued (`--resume` skips the sequences already in `--log`, one JSON line each). Without `--artifact`, the
tests' tiny double is trained in a temporary folder first (seconds). One server serves every sequence; when it
dies it is counted and started again. Prints sequences run, server deaths, requests unanswered (or answered
twice, or answered from a bad frame), document mismatches against the reference model, the server's peak RSS
and requests per second, with the cores and load average (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import lsp_fuzz  # noqa: E402 - the fuzzer is shared with tests/test_fuzz_server.py


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=10_000)
    parser.add_argument("--first", type=int, default=0, help="number of the first sequence (to shard a run)")
    parser.add_argument("--seed", default="fuzz")
    parser.add_argument("--artifact", type=Path, help="a double to serve (default: the tests' tiny double)")
    parser.add_argument("--workspace", type=Path, help="the folder the server runs in (default: the double's)")
    parser.add_argument("--huge", type=float, default=0.01, help="chance a text holds a 100 KB-1 MB token or line")
    parser.add_argument("--long", type=float, default=0.08, help="chance a text holds a 1-20 KB one")
    parser.add_argument("--log", type=Path, help="one JSON line per sequence (appended)")
    parser.add_argument("--resume", action="store_true", help="skip the sequences already in --log")
    parser.add_argument("--progress", type=int, default=100, help="print a line every N sequences (0: never)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="codedouble-fuzz-"))
    if args.artifact is None:
        repo, artifact = lsp_fuzz.build_double(scratch)
    else:
        artifact = args.artifact
        repo = args.workspace or scratch
    done: set[str] = set()
    if args.resume and args.log is not None and args.log.exists():
        done = {json.loads(line)["seed"] for line in args.log.read_text().splitlines() if line.strip()}
    log = args.log.open("a") if args.log is not None else None
    sizes = lsp_fuzz.Sizes(huge=args.huge, long=args.long)
    load = os.getloadavg()
    print(f"cores: {os.cpu_count()}, load average before: {load[0]:.1f}; server stderr: {scratch / 'stderr.log'}")

    started = time.monotonic()
    server = lsp_fuzz.start(artifact, repo, scratch / "stderr.log")
    outcomes: list[lsp_fuzz.Outcome] = []
    peak_kib = 0
    try:
        for i in range(args.first, args.first + args.sequences):
            seed = f"{args.seed}/{i}"
            if seed in done:
                continue
            outcome = lsp_fuzz.run_sequence(server, seed, repo, sizes)
            outcomes.append(outcome)
            if log is not None:
                record = {
                    "seed": seed,
                    "ok": outcome.ok,
                    "died": outcome.died,
                    "unanswered": len(outcome.unanswered),
                    "answered_twice": len(outcome.answered_twice),
                    "answered_lost": len(outcome.answered_lost),
                    "mismatches": len(outcome.mismatched),
                    "unhealthy": bool(outcome.unhealthy),
                    "requests": outcome.requests,
                    "seconds": round(outcome.seconds, 3),
                    "peak_rss_mib": round(server.peak_rss_kib / 1024, 1),
                }
                log.write(json.dumps(record) + "\n")
                log.flush()
            if not outcome.ok:
                print(lsp_fuzz.failure_report(outcome), flush=True)
            if not outcome.ok and (outcome.died or outcome.unanswered):
                # Dead, or stuck on something: a fresh server, so the rest of the run still measures.
                peak_kib = max(peak_kib, server.peak_rss_kib)
                server.close()
                server = lsp_fuzz.start(artifact, repo, scratch / "stderr.log")
            if args.progress and len(outcomes) % args.progress == 0:
                total = lsp_fuzz.counted(outcomes)
                print(
                    f"{len(outcomes)} sequences, {time.monotonic() - started:.0f} s, deaths {total['deaths']}, "
                    f"unanswered {total['unanswered']}, mismatches {total['mismatches']}",
                    flush=True,
                )
    except KeyboardInterrupt:
        print("interrupted: the figures below are for the sequences run")
    finally:
        server.close()
        peak_kib = max(peak_kib, server.peak_rss_kib)
        if log is not None:
            log.close()
    seconds = time.monotonic() - started
    total = lsp_fuzz.counted(outcomes)
    rows = [
        ("sequences run", f"{total['sequences']:,}"),
        ("server deaths", f"{total['deaths']}"),
        ("requests unanswered", f"{total['unanswered']}"),
        ("requests answered twice", f"{total['answered_twice']}"),
        ("answered from a bad frame", f"{total['answered_lost']}"),
        ("good completion failed", f"{total['unhealthy']}"),
        ("document mismatches", f"{total['mismatches']}"),
        ("requests sent", f"{total['requests']:,}"),
        ("server peak RSS", f"{peak_kib / 1024:.0f} MiB"),
        ("requests/s", f"{total['requests'] / seconds:.1f}" if seconds else "-"),
        ("wall time", f"{seconds:.0f} s"),
        ("load average after", f"{os.getloadavg()[0]:.1f}"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
