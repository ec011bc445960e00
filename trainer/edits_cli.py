"""`codedouble edits DATASET|ARTIFACT`: the engineer's recurring rewrites, as a double proposes them again."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from codedouble.server.contract import artifact, edits
from codedouble.server.contract.errors import CodedoubleError
from codedouble.server.edits.propose import MIN_PRECISION, Gate, confident


class EditsSourceError(CodedoubleError):
    """A path that is neither a double with edit patterns nor a dataset."""


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "edits",
        help="list the rewrites you made again and again, which the language server proposes as next edits",
        description="List the recurring rewrites of a double (as it ships them) or of a dataset (mined now from "
        "all its records): each with how often and in how many commits you made it, since when, and the "
        "share of the places you met the old form afterwards where you made it (precision). The language "
        "server proposes those at or above its minimum precision.",
    )
    p.add_argument("source", type=Path, metavar="DATASET|ARTIFACT")
    p.add_argument("--language", help="only rules of this language (python, go, ...)")
    p.add_argument("--limit", type=int, default=30, help="rules shown (default 30; 0 for all)")
    p.add_argument("--json", action="store_true", help="every rule with its evidence as JSON")
    p.set_defaults(run=run)


def patterns_of(source: Path) -> tuple[list[edits.EditPattern], str]:
    """The rules of a double, or mined from a dataset's records; with a phrase saying where they came from."""
    if not source.is_dir():
        raise EditsSourceError(f"{source} is not a directory: give a double (`codedouble train`) or a dataset")
    manifest = source / artifact.MANIFEST
    is_double = manifest.is_file() and "prompt_format" in _json_keys(manifest)
    if is_double:
        shipped = edits.load(source)
        if shipped is None:
            raise EditsSourceError(
                f"{source} was trained before doubles kept edit patterns: train it again, or list the dataset's "
                f"(`codedouble edits DATASET`)"
            )
        return shipped, f"the double {source}"
    from codedouble.trainer.mining import dataset
    from codedouble.trainer.training import edit_patterns

    if dataset.read_manifest(source) is None:
        raise EditsSourceError(f"{source} holds neither a double nor a dataset (no {artifact.MANIFEST})")
    records = list(dataset.load_records(source))
    print(f"mining rewrites from {len(records):,} records…", file=sys.stderr)
    return edit_patterns.mine(records), f"{len(records):,} records of {source}"


def _json_keys(path: Path) -> set[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return set(data) if isinstance(data, dict) else set()


def run(args: argparse.Namespace) -> int:
    found, where = patterns_of(args.source)
    if args.language:
        found = [p for p in found if p.language == args.language]
    if args.json:
        out = [
            {
                **edits.to_json(p),
                "precision": round(p.precision, 4),
                "precision_at_least": round(confident(p.count, p.count + p.left), 4),
                "proposed": Gate().trusts(p),
            }
            for p in found
        ]
        print(json.dumps(out, indent=1))
        return 0
    proposed = sum(Gate().trusts(p) for p in found)
    print(
        f"{len(found)} recurring rewrites from {where}; {proposed} proposed by default (made at least "
        f"{MIN_PRECISION:.0%} of the times you met the old form, with 95 % confidence)"
    )
    if not found:
        return 0
    shown = found if args.limit <= 0 else found[: args.limit]
    # precision: the share made; at least: its 95 % lower bound, what the server's gate reads; * proposed.
    print(
        f"  {'precision':>9}  {'at least':>8}  {'times':>5}  {'commits':>7}  {'since':<7}  {'last':<7}  "
        f"{'language':<10}  rule"
    )
    for p in shown:
        mark = "*" if Gate().trusts(p) else " "
        print(
            f"{mark} {p.precision:>9.0%}  {confident(p.count, p.count + p.left):>8.0%}  {p.count:>5}  "
            f"{p.distinct_commits:>7}  {p.first[:7]:<7}  {p.last[:7]:<7}  {p.language:<10}  {p.rewrite.describe()}"
        )
    if len(shown) < len(found):
        print(f"… {len(found) - len(shown)} more (--limit 0 shows all)")
    return 0
