"""Mining speed: codedouble against PyDriller's `changed_methods` on the same commits of a real repository.

    .venv/bin/python benchmarks/mine_bench.py REPO [--max-commits N] [--repeat K] [--jobs J]
                                                   [--pydriller-repeat K] [--full] [--profile [TOP]] [--no-pydriller]

The commits. Both tools do the same work: the non-merge commits reachable from HEAD (all authors), bounded by
--max-commits N to the history of the Nth-oldest non-merge commit (topological order, so that is at most the
oldest N; 0 means the whole history). codedouble always leaves bot commits out (identity.is_bot on the
.mailmap'd author), so they are left out of PyDriller's list too and out of the commit count; the script checks
that codedouble kept exactly the commits of that list.

- codedouble: `mine(REPO, <fresh temporary --out>, MineOptions(all_authors=True, revision=<Nth-oldest>,
  fresh=True, jobs=J))` on REPO itself (bare or not), K times; the median is reported.
- PyDriller: a non-bare clone of REPO in a temporary directory (cloning is not timed), then
  `Repository(clone, to_commit=<Nth-oldest>, only_no_merge=True, only_commits=<the list>)`; for every commit, for
  every modified file in a language codedouble mines (.py .js .ts .tsx .go .rs .java and their variants; lizard
  parses those), `len(modified_file.changed_methods)`. One run unless --pydriller-repeat.

Prints commits/s for each and the ratio (goal: codedouble >= 20x PyDriller); the machine's cores and load average
first, since a shared machine makes the seconds noisy. --full also times codedouble once on the whole history.
--profile runs codedouble once more in this process (jobs=1, so that cProfile sees the work) and prints the top
entries by tottime.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from codedouble.grammars.languages import language_for_path
from codedouble.trainer.mining.identity import is_bot
from codedouble.trainer.mining.miner import MineOptions, MineResult, mine
from codedouble.trainer.mining.report import KEPT

DEFAULT_MAX_COMMITS = 2000  # PyDriller takes about 1-2 minutes on this many commits of Textualize/rich


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def pick_commits(repo: Path, limit: int) -> tuple[str, list[str], int]:
    """The revision to mine, the non-merge non-bot commits of its history (oldest first), and how many bot
    commits were left out."""
    order = git(repo, "rev-list", "--reverse", "--topo-order", "--no-merges", "HEAD").split()
    if not order:
        raise SystemExit(f"{repo}: no non-merge commits reachable from HEAD")
    # The whole history is HEAD's, which may be a merge (so not in `order`).
    rev = order[limit - 1] if 0 < limit < len(order) else git(repo, "rev-parse", "HEAD").strip()
    minable, bots = [], 0
    log = git(repo, "log", "--reverse", "--no-merges", "--use-mailmap", "--format=%H%x00%aN%x00%aE", rev)
    for line in log.splitlines():
        sha, name, email = line.split("\0")
        if is_bot(name, email.lower()):
            bots += 1
        else:
            minable.append(sha)
    return rev, minable, bots


class DescendantPeak:
    """Largest peak RSS (VmHWM) of any process descended from this one, sampled from /proc while running.

    The miner's workers are children of multiprocessing's forkserver, so getrusage(RUSAGE_CHILDREN) never sees
    them; sampling /proc does (VmHWM is a peak, so a sample any time before a process exits is enough)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak_kib = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DescendantPeak:
        if Path("/proc/self/status").exists():
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.wait(self.interval):
            parents: dict[int, int] = {}
            for entry in os.listdir("/proc"):
                if entry.isdigit():
                    try:
                        stat = Path(f"/proc/{entry}/stat").read_text()
                        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
                    except (OSError, IndexError, ValueError):
                        pass
            for pid in parents:
                ancestor, hops = parents.get(pid), 0
                while ancestor not in (None, me, 0, 1) and hops < 16:
                    ancestor, hops = parents.get(ancestor), hops + 1
                if ancestor == me:
                    try:
                        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                            if line.startswith("VmHWM:"):
                                self.peak_kib = max(self.peak_kib, int(line.split()[1]))
                    except (OSError, ValueError):
                        pass


def self_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_codedouble(repo: Path, rev: str, jobs: int | None) -> tuple[float, MineResult]:
    with tempfile.TemporaryDirectory() as out:
        options = MineOptions(all_authors=True, revision=rev, jobs=jobs, fresh=True)
        start = time.perf_counter()
        result = mine(repo, Path(out), options, progress=False)
        return time.perf_counter() - start, result


def time_codedouble(repo: Path, rev: str, jobs: int | None, repeat: int) -> tuple[list[float], MineResult]:
    seconds = []
    for _ in range(repeat):
        elapsed, result = run_codedouble(repo, rev, jobs)
        seconds.append(elapsed)
    return seconds, result


def time_pydriller(clone: Path, rev: str, shas: list[str]) -> tuple[float, int, int, int]:
    """Seconds, commits seen, changed methods, and commits PyDriller could not diff (objects missing)."""
    from git.exc import GitCommandError
    from pydriller import Repository

    seen = methods = failed = 0
    start = time.perf_counter()
    repository = Repository(str(clone), to_commit=rev, only_no_merge=True, only_commits=shas)
    for commit in repository.traverse_commits():
        seen += 1
        try:
            for modified in commit.modified_files:
                if language_for_path(modified.new_path or modified.old_path or ""):
                    methods += len(modified.changed_methods)
        except GitCommandError:
            failed += 1
    return time.perf_counter() - start, seen, methods, failed


def describe(seconds: list[float]) -> str:
    if len(seconds) == 1:
        return f"{seconds[0]:.2f} s"
    return f"{statistics.median(seconds):.2f} s median of {len(seconds)} ({', '.join(f'{s:.2f}' for s in seconds)})"


def profile_codedouble(repo: Path, rev: str, top: int) -> None:
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory() as out:
        options = MineOptions(all_authors=True, revision=rev, jobs=1, fresh=True)
        start = time.perf_counter()
        profiler.enable()
        mine(repo, Path(out), options, progress=False)
        profiler.disable()
        elapsed = time.perf_counter() - start
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(top)
    print(f"\nprofile: codedouble, jobs=1, one run under cProfile: {elapsed:.2f} s (profiling overhead included)")
    print(text.getvalue().rstrip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("repo", type=Path)
    parser.add_argument(
        "--max-commits",
        type=int,
        default=DEFAULT_MAX_COMMITS,
        help=f"oldest N non-merge commits of HEAD (default {DEFAULT_MAX_COMMITS}; 0: all)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="codedouble runs; the median is reported (default 3)")
    parser.add_argument("--pydriller-repeat", type=int, default=1, help="PyDriller runs (default 1)")
    parser.add_argument("--jobs", type=int, default=None, help="codedouble worker processes (default: its own choice)")
    parser.add_argument("--full", action="store_true", help="also time codedouble once on the whole history")
    parser.add_argument(
        "--profile",
        type=int,
        nargs="?",
        const=30,
        default=0,
        metavar="TOP",
        help="profile codedouble (jobs=1) on the same commits; print the TOP entries (default 30)",
    )
    parser.add_argument("--no-pydriller", action="store_true", help="time codedouble only")
    args = parser.parse_args()
    repo = args.repo.resolve()

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load} (1, 5, 15 min); python {sys.version.split()[0]}")
    print(f"repository: {repo}")
    rev, shas, bots = pick_commits(repo, args.max_commits)
    bound = f"the oldest {args.max_commits} non-merge commits" if args.max_commits > 0 else "the whole history"
    print(
        f"commits: {len(shas)} non-merge commits reachable from {rev[:12]} ({bound}), "
        f"{bots} bot commits left out of both sides"
    )
    n = len(shas)

    with DescendantPeak() as children:
        cd_seconds, cd_result = time_codedouble(repo, rev, args.jobs, args.repeat)
    cd_median = statistics.median(cd_seconds)
    cd_rate = n / cd_median
    kept_commits = cd_result.counts.commits[KEPT]
    extracted = sum(cd_result.counts.records.values())
    print(
        f"codedouble: {n} commits in {describe(cd_seconds)} = {cd_rate:.1f} commits/s; "
        f"{cd_result.new_records} changed definitions kept ({extracted} before duplicate/syntax-error filtering)"
    )
    if kept_commits != n:
        print(f"  WARNING: codedouble kept {kept_commits} commits, the list has {n}: {dict(cd_result.counts.commits)}")
    print(
        f"  peak RSS: {self_peak_mib():.0f} MiB this process, {children.peak_kib / 1024:.0f} MiB largest "
        f"descendant (workers, git)"
    )

    if not args.no_pydriller:
        with tempfile.TemporaryDirectory() as tmp:
            clone = Path(tmp) / "clone"
            # PyDriller wants a non-bare repository; the clone is set-up, not timed.
            subprocess.run(["git", "clone", "-q", "--no-checkout", str(repo), str(clone)], check=True)
            pd_seconds: list[float] = []
            for _ in range(args.pydriller_repeat):
                seconds, seen, methods, failed = time_pydriller(clone, rev, shas)
                pd_seconds.append(seconds)
        pd_median = statistics.median(pd_seconds)
        pd_rate = n / pd_median
        print(f"PyDriller:  {n} commits in {describe(pd_seconds)} = {pd_rate:.1f} commits/s; {methods} changed methods")
        if seen != n:
            print(f"  WARNING: PyDriller visited {seen} commits, the list has {n}")
        if failed:
            print(f"  ({failed} commits PyDriller could not diff, because git objects are missing from this copy)")
        print(f"  peak RSS: {self_peak_mib():.0f} MiB this process after PyDriller (includes codedouble's peak)")
        print(f"ratio: codedouble is {cd_rate / pd_rate:.1f}x PyDriller (goal >= 20x)")

    if args.full:
        total_rev, total_shas, _ = pick_commits(repo, 0)
        seconds, result = run_codedouble(repo, total_rev, args.jobs)
        print(
            f"codedouble, whole history: {len(total_shas)} non-merge non-bot commits in {seconds:.2f} s = "
            f"{len(total_shas) / seconds:.1f} commits/s, {result.new_records} changed definitions kept"
        )

    if args.profile:
        profile_codedouble(repo, rev, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
