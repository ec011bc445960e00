"""Time SecretScrubber on the Python standard library against detect-secrets' own per-line loop.

    .venv/bin/python benchmarks/secrets_bench.py [--root DIR] [--include-tests] [--baseline-lines N] [--examples N]

Prints lines/s for
- cold: a fresh scrubber, every file scrubbed once (few repeated lines, so mostly the per-line scan cost);
- miner-like: a fresh scrubber, every file scrubbed as a "before" and an "after" text that differs in one line in
  twenty, as the miner scrubs a definition on both sides of a commit;
- no cache/prefilter: the same rules with the cache and the prefilters off (on a subset, extrapolated);
- detect-secrets' loop: detect_secrets.core.scan's own per-line processing with its default plugins and filters,
  i.e. what running detect-secrets over every line costs (on a subset, extrapolated);
and what was scrubbed in the corpus (lines, kinds, examples), which on the standard library is false positives.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

from codedouble.trainer.mining.secrets import PLACEHOLDER, SecretScrubber

DEFAULT_ROOT = "/root/.pyenv/versions/3.11.7/lib/python3.11"
_TEST_DIRS = {"test", "tests", "idle_test"}


def load_corpus(root: Path, include_tests: bool) -> list[str]:
    texts = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d != "site-packages" and (include_tests or d not in _TEST_DIRS))
        for name in sorted(files):
            if name.endswith(".py"):
                try:
                    texts.append((Path(directory) / name).read_text(encoding="utf-8"))
                except (UnicodeDecodeError, OSError):
                    continue
    return texts


def edited(text: str) -> str:
    """An "after" version: one line in twenty changed, the rest as before."""
    lines = text.split("\n")
    return "\n".join(line + "  # edited" if i % 20 == 7 else line for i, line in enumerate(lines))


def line_count(texts: list[str]) -> int:
    return sum(t.count("\n") + 1 for t in texts)


def timed(scrubber: SecretScrubber, texts: list[str]) -> float:
    start = time.perf_counter()
    for text in texts:
        scrubber.scrub(text)
    return time.perf_counter() - start


def detect_secrets_loop(lines: list[str]) -> float:
    """detect-secrets' own line processing (plugins, filters, code snippets), every line, default settings."""
    from detect_secrets.core.scan import _process_line_based_plugins
    from detect_secrets.settings import default_settings

    with default_settings():
        start = time.perf_counter()
        for i in range(0, len(lines), 200):  # files of 200 lines, as scan_file would hand them over
            chunk = list(enumerate(lines[i : i + 200], start=1))
            for _ in _process_line_based_plugins(chunk, filename="bench.py"):
                pass
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=DEFAULT_ROOT)
    ap.add_argument("--include-tests", action="store_true", help="also the stdlib's test directories (~30 MB)")
    ap.add_argument("--baseline-lines", type=int, default=20_000, help="subset size for the slow baselines")
    ap.add_argument("--examples", type=int, default=15, help="scrubbed lines to print")
    args = ap.parse_args()

    texts = load_corpus(Path(args.root), args.include_tests)
    n_lines = line_count(texts)
    n_bytes = sum(len(t.encode()) for t in texts)
    all_lines = [line for t in texts for line in t.split("\n")]
    print(f"corpus: {len(texts)} files, {n_lines} lines ({len(set(all_lines))} distinct), {n_bytes / 1e6:.1f} MB")

    cold = n_lines / timed(SecretScrubber(), texts)
    pairs = [t for text in texts for t in (text, edited(text))]
    miner = line_count(pairs) / timed(SecretScrubber(), pairs)

    rng = random.Random(0)
    subset = rng.sample(all_lines, min(args.baseline_lines, len(all_lines)))
    bare = len(subset) / timed(SecretScrubber(cache_size=0, prefilter=False), ["\n".join(subset)])
    ds = len(subset) / detect_secrets_loop(subset)

    print(f"SecretScrubber, cold (each file once):        {cold:>10,.0f} lines/s")
    print(f"SecretScrubber, miner-like (before + after):  {miner:>10,.0f} lines/s")
    print(f"same rules, no cache/prefilter ({len(subset)} lines): {bare:>10,.0f} lines/s")
    print(f"detect-secrets' own line loop ({len(subset)} lines):  {ds:>10,.0f} lines/s")
    print(f"ratio vs detect-secrets' loop: cold {cold / ds:.1f}x, miner-like {miner / ds:.1f}x")
    print(f"ratio vs no cache/prefilter:   cold {cold / bare:.1f}x, miner-like {miner / bare:.1f}x")

    # What got scrubbed: on the standard library every hit is a false positive (or a test fixture).
    scrubber = SecretScrubber()
    kinds: Counter[str] = Counter()
    changed: list[tuple[str, str]] = []
    for text in texts:
        result = scrubber.scrub(text)
        kinds.update(result.kinds)
        if result.kinds:
            pairs_of_lines = zip(text.split("\n"), result.text.split("\n"), strict=False)
            changed.extend((b, a) for b, a in pairs_of_lines if b != a and PLACEHOLDER in a)
    print(f"scrubbed: {len(changed)} lines of {n_lines} ({100 * len(changed) / n_lines:.3f}%), by kind:")
    for kind, count in kinds.most_common():
        print(f"  {count:6d}  {kind}")
    for before, after in rng.sample(changed, min(args.examples, len(changed))):
        print(f"  - {before.strip()[:110]}\n    {after.strip()[:110]}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
