"""`codedouble forget` and `codedouble audit`: the owner's commands over their data and doubles."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "forget",
        help="take changes back out of a dataset, for good, and mark the doubles trained on them stale",
        description="Remove every change record matching any of the rules from DATASET_DIR, record a tombstone so "
        "that no later `mine` (incremental or --fresh) brings them back, and mark the doubles trained on them stale.",
    )
    p.add_argument("dataset", type=Path, metavar="DATASET_DIR")
    p.add_argument("--commit", action="append", default=[], metavar="SHA", help="a commit (full SHA or a prefix)")
    p.add_argument(
        "--path", action="append", default=[], metavar="GLOB", help="paths, as `mine --exclude` matches them"
    )
    p.add_argument("--author", action="append", default=[], metavar="EMAIL", help="an author's e-mail (any case)")
    p.add_argument("--since", metavar="DATE", help="changes committed on or after DATE (ISO: 2024-03-01)")
    p.add_argument("--until", metavar="DATE", help="changes committed on or before DATE (a bare date: that whole day)")
    p.add_argument(
        "--repo",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="only changes mined from this repository (repeatable; by default every repository of the dataset)",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would be removed and change nothing")
    p.set_defaults(run=_run_forget)

    p = sub.add_parser(
        "audit",
        help="check a double's provenance: hashes, base, licences, secrets, forgotten data",
        description="Print where ARTIFACT_DIR came from and run every check that can be run here. Exit status 0 "
        "when no check fails, 1 when one does (each named).",
    )
    p.add_argument("artifact", type=Path, metavar="ARTIFACT_DIR")
    p.add_argument("--dataset", type=Path, metavar="DATASET_DIR", help="the dataset, if it moved since training")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=_run_audit)


def _run_forget(args: argparse.Namespace) -> int:
    from codedouble.server.contract.tombstones import Rule
    from codedouble.trainer.owning.forget import describe, forget

    rule = Rule(
        tuple(args.commit), tuple(args.path), tuple(args.author), args.since, args.until, tuple(map(str, args.repo))
    )
    result = forget(args.dataset, rule, dry_run=args.dry_run)
    print(describe(result, args.dataset))
    return 0


def _run_audit(args: argparse.Namespace) -> int:
    from codedouble.trainer.owning.audit import audit

    report = audit(args.artifact, args.dataset)
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render(), end="" if not args.json else "\n")
    return 0 if report.ok else 1
