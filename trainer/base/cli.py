"""`codedouble base corpus|train`: the tools that build the shipped base (users rarely run them)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "base",
        help="build the pretrained base (corpus, pretraining)",
        description="Build the base every double is fine-tuned from: a corpus of permissively "
        "licensed code on this machine, then pretraining on it.",
    )
    steps = p.add_subparsers(dest="base_command", required=True, metavar="STEP")

    c = steps.add_parser(
        "corpus",
        help="gather permissively licensed code into a corpus",
        description="Gather code whose own licence metadata is permissive (MIT, BSD, Apache-2.0, "
        "PSF, ISC, Zlib, ...) into CORPUS_DIR, with a manifest per source.",
    )
    c.add_argument("--out", type=Path, required=True, metavar="CORPUS_DIR")
    c.add_argument("--no-stdlib", action="store_true", help="leave out the Python standard library")
    c.add_argument("--no-site", action="store_true", help="leave out the installed Python distributions")
    c.add_argument(
        "--exclude",
        action="append",
        default=["codedouble"],
        metavar="NAME",
        help="leave out this distribution (repeatable; codedouble itself is always left out, and so "
        "should any project whose history you will evaluate on)",
    )
    c.add_argument(
        "--debian",
        action="append",
        default=[],
        metavar="PACKAGE",
        help="an installed Debian source package, e.g. golang-1.19-src or rust-src (repeatable)",
    )
    c.add_argument(
        "--node-modules",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="npm packages in this node_modules folder (repeatable)",
    )
    c.add_argument(
        "--max-source-mb", type=float, default=8.0, metavar="N", help="at most N MB from any one source (default 8)"
    )
    c.set_defaults(run=_run_corpus)

    t = steps.add_parser(
        "train",
        help="pretrain a base on a corpus",
        description="Pretrain a base model on CORPUS_DIR with the same loop as `codedouble train`; "
        "resumable, on CPU or CUDA, under torchrun too.",
    )
    t.add_argument("corpus", type=Path, metavar="CORPUS_DIR")
    t.add_argument("--out", type=Path, required=True, metavar="BASE_DIR")
    t.add_argument("--size", choices=["tiny", "small"], default="tiny")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, metavar="N", help="pretrain for N minutes of wall time (default 60)")
    budget.add_argument("--steps", type=int, metavar="N")
    t.add_argument("--batch-size", type=int, default=16, metavar="N")
    t.add_argument("--block-size", type=int, default=256, metavar="N")
    t.add_argument("--learning-rate", type=float, default=2e-3, metavar="LR")
    t.add_argument("--vocab-size", type=int, default=8192, metavar="N")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    t.add_argument("--resume", action="store_true", help="continue the interrupted pretraining for the same --out")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(run=_run_train)


def _run_corpus(args: argparse.Namespace) -> int:
    import re
    from collections.abc import Iterator

    from codedouble.trainer.base import sources
    from codedouble.trainer.base.corpus import CorpusOptions, build

    exclude = frozenset(re.sub(r"[-_.]+", "-", name).lower() for name in args.exclude)

    def gathered() -> Iterator[sources.Source]:
        if not args.no_stdlib:
            yield sources.python_stdlib()
        if not args.no_site:
            yield from sources.python_distributions(exclude)
        for package in args.debian:
            yield sources.debian_package(package)
        for folder in args.node_modules:
            yield from sources.npm_packages(folder)

    for folder in args.node_modules:
        if not folder.is_dir():
            raise sources.SourceError(f"--node-modules {folder}: no such folder")
    manifest = build(gathered(), args.out, CorpusOptions(max_source_bytes=int(args.max_source_mb * 1_000_000)))
    languages = ", ".join(f"{lang} {v['bytes'] / 1e6:.1f} MB" for lang, v in manifest["languages"].items())
    print(
        f"{len(manifest['sources'])} sources kept, {len(manifest['rejected_sources'])} rejected; "
        f"{manifest['files']:,} files, {manifest['bytes'] / 1e6:.1f} MB ({languages}) → {args.out}",
        file=sys.stderr,
    )
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from codedouble.trainer.base.pretrain import PretrainOptions, pretrain

    options = PretrainOptions(
        out=args.out,
        size=args.size,
        steps=args.steps,
        minutes=args.minutes,
        batch_size=args.batch_size,
        block_size=args.block_size,
        learning_rate=args.learning_rate,
        vocab_size=args.vocab_size,
        device=args.device,
        resume=args.resume,
        seed=args.seed,
    )
    command = "codedouble " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["base"] else ""
    result = pretrain(args.corpus, options, progress=not args.quiet, command=command)
    print(
        f"pretrained {result.steps:,} steps, {result.tokens_seen:,} tokens seen, in {result.seconds:.0f} s; "
        f"validation loss {result.validation_loss:.3f} → {result.base}",
        file=sys.stderr,
    )
    return 0
