"""The `codedouble` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from codedouble.trainer.mining import filters


def _mine_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "mine",
        help="mine a git history into function-level change records",
        description="Walk REPO's history (read-only) and write the engineer's changed definitions to DATASET_DIR.",
    )
    p.add_argument("repo", type=Path, metavar="REPO", help="path to the git repository (working tree or bare)")
    p.add_argument("--out", type=Path, required=True, metavar="DATASET_DIR", help="where the dataset is written")
    who = p.add_mutually_exclusive_group()
    who.add_argument(
        "--author", action="append", default=[], metavar="EMAIL",
        help="an identity of yours (repeatable; aliases and .mailmap merge into one person). "
        "Default: the repository's user.email",
    )  # fmt: skip
    who.add_argument("--all-authors", action="store_true", help="mine everyone's commits (bots still left out)")
    p.add_argument("--since", metavar="DATE", help="only commits after DATE (any date git understands)")
    p.add_argument("--until", metavar="DATE", help="only commits before DATE")
    p.add_argument("--include", action="append", default=[], metavar="GLOB", help="mine only paths matching GLOB")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip paths matching GLOB")
    p.add_argument(
        "--max-file-bytes", type=int, default=filters.DEFAULT_MAX_FILE_BYTES, metavar="N",
        help=f"skip files larger than N bytes (default {filters.DEFAULT_MAX_FILE_BYTES:,})",
    )  # fmt: skip
    p.add_argument("--rev", default="HEAD", metavar="REVISION", help="mine the history of REVISION (default HEAD)")
    p.add_argument("--jobs", type=int, metavar="N", help="worker processes (default: both cores on long histories)")
    p.add_argument("--fresh", action="store_true", help="mine everything again instead of only new commits")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no report on the terminal")
    p.set_defaults(run=_run_mine)


def _run_mine(args: argparse.Namespace) -> int:
    from codedouble.trainer.mining.dataset import DatasetError
    from codedouble.trainer.mining.gitio import GitError
    from codedouble.trainer.mining.identity import UnknownAuthorError
    from codedouble.trainer.mining.miner import MineError, MineOptions, mine

    options = MineOptions(
        authors=tuple(args.author),
        all_authors=args.all_authors,
        since=args.since,
        until=args.until,
        include=tuple(args.include),
        exclude=tuple(args.exclude),
        max_file_bytes=args.max_file_bytes,
        revision=args.rev,
        jobs=args.jobs,
        fresh=args.fresh,
    )
    try:
        result = mine(args.repo, args.out, options, progress=not args.quiet)
    except (MineError, UnknownAuthorError, DatasetError, GitError) as exc:
        print(f"codedouble mine: error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(result.report)
    for note in result.notes:
        print(note, file=sys.stderr)
    print(f"{result.new_records:,} new records from {result.new_commits:,} commits → {result.dataset}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codedouble", description="Your code-style double, trained on your own git history.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _mine_parser(sub)
    return parser


def _version() -> str:
    from codedouble.trainer.mining.miner import tool_version

    return tool_version()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
