"""Mining speed: codedouble against PyDriller's `changed_methods` on the same commits of a real repository.

    python benchmarks/mine_bench.py REPO [--max-commits N] [--repeat K] [--jobs J] [--full]

Both tools walk the same commits: the oldest N non-merge, non-bot commits of HEAD's history (PyDriller is
slow, so N bounds its side). codedouble is timed K times (median); PyDriller once. With --full codedouble
is also timed on the whole history. Prints commits/s for each and the ratio (goal: codedouble >= 20x).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from codedouble.grammars.languages import language_for_path
from codedouble.trainer.mining.identity import is_bot
from codedouble.trainer.mining.miner import MineOptions, mine


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def pick_commits(repo: Path, limit: int) -> tuple[str, list[str]]:
    """A revision whose ancestry is about `limit` minable commits, and those commits (non-merge, non-bot)."""
    order = git(repo, "rev-list", "--reverse", "--topo-order", "HEAD").split()
    rev = order[min(limit, len(order)) - 1]
    minable = []
    for line in git(repo, "log", "--no-merges", "--use-mailmap", "--format=%H%x00%aN%x00%aE", rev).splitlines():
        sha, name, email = line.split("\0")
        if not is_bot(name, email):
            minable.append(sha)
    return rev, minable


def time_codedouble(repo: Path, rev: str, jobs: int | None, repeat: int) -> tuple[float, int]:
    seconds, records = [], 0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            result = mine(repo, Path(out), MineOptions(all_authors=True, revision=rev, jobs=jobs), progress=False)
            seconds.append(time.perf_counter() - start)
            records = result.new_records
    return statistics.median(seconds), records


def time_pydriller(repo: Path, shas: list[str]) -> tuple[float, int, int]:
    """Seconds, changed methods, and commits PyDriller could not diff (objects missing from a partial mirror)."""
    from git.exc import GitCommandError
    from pydriller import Repository

    with tempfile.TemporaryDirectory() as clone:
        # PyDriller wants a working tree; cloning is set-up, not timed.
        subprocess.run(["git", "clone", "-q", "--no-checkout", str(repo), clone], check=True)
        wanted = set(shas)
        methods = failed = 0
        start = time.perf_counter()
        for commit in Repository(clone, only_no_merge=True, order="reverse").traverse_commits():
            if commit.hash not in wanted:
                continue
            try:
                for modified in commit.modified_files:
                    if language_for_path(modified.new_path or modified.old_path or ""):
                        methods += len(modified.changed_methods)
            except GitCommandError:
                failed += 1
        return time.perf_counter() - start, methods, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo", type=Path)
    parser.add_argument("--max-commits", type=int, default=300, help="oldest N commits of HEAD (default 300)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=None, help="codedouble worker processes (default: auto)")
    parser.add_argument("--full", action="store_true", help="also time codedouble on the whole history")
    args = parser.parse_args()
    repo = args.repo.resolve()

    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; repository: {repo}")
    rev, shas = pick_commits(repo, args.max_commits)
    print(f"commits: {len(shas)} non-merge, non-bot commits reachable from {rev[:12]}")

    cd_seconds, cd_records = time_codedouble(repo, rev, args.jobs, args.repeat)
    cd_rate = len(shas) / cd_seconds
    print(f"codedouble: {cd_seconds:8.2f} s (median of {args.repeat})  {cd_rate:9.1f} commits/s  {cd_records:7d} changed definitions")
    pd_seconds, pd_methods, pd_failed = time_pydriller(repo, shas)
    pd_rate = len(shas) / pd_seconds
    print(f"PyDriller:  {pd_seconds:8.2f} s                {pd_rate:9.1f} commits/s  {pd_methods:7d} changed methods")
    if pd_failed:
        print(f"  ({pd_failed} commits PyDriller could not diff: git objects missing from this copy)")
    print(f"ratio: codedouble is {cd_rate / pd_rate:.1f}x PyDriller (goal >= 20x)")

    if args.full:
        total = len(git(repo, "rev-list", "--no-merges", "HEAD").split())
        full_seconds, full_records = time_codedouble(repo, "HEAD", args.jobs, 1)
        print(f"codedouble, whole history: {total} non-merge commits in {full_seconds:.2f} s = "
              f"{total / full_seconds:.1f} commits/s, {full_records} changed definitions")  # fmt: skip

    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: {peak_self:.0f} MiB this process, {peak_children:.0f} MiB largest child (workers, git)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
