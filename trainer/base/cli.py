"""`codedouble base corpus|train|score|rehearsal-pack`: the tools that build the shipped base and what ships with
it (users rarely run them)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from codedouble.trainer.base.sizes import CPU_BATCH, DEFAULT_SIZE, MAX_TOKENS_PER_STEP, SIZES

if TYPE_CHECKING:
    from codedouble.trainer.base.sources import Source


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
        "--site",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="read the installed distributions from this folder instead of this interpreter's path (repeatable)",
    )
    c.add_argument(
        "--include-corpus",
        action="append",
        default=[],
        type=Path,
        metavar="CORPUS_DIR",
        help="merge in a corpus built elsewhere (e.g. on another machine), its duplicates of earlier files "
        "dropped (repeatable)",
    )
    c.add_argument(
        "--max-source-mb", type=float, default=8.0, metavar="N", help="at most N MB from any one source (default 8)"
    )
    c.add_argument("--jobs", type=int, default=0, metavar="N", help="worker processes (default: one per core)")
    c.set_defaults(run=_run_corpus)

    t = steps.add_parser(
        "train",
        help="pretrain a base on a corpus",
        description="Pretrain a base model on CORPUS_DIR with the same loop as `codedouble train`; "
        "resumable, on CPU or CUDA, under torchrun too.",
    )
    t.add_argument("corpus", type=Path, metavar="CORPUS_DIR")
    t.add_argument("--out", type=Path, required=True, metavar="BASE_DIR")
    t.add_argument(
        "--size",
        choices=list(SIZES),
        default=DEFAULT_SIZE,
        help=f"the model's size, by name (trainer/base/pretrain.py's SIZES; default {DEFAULT_SIZE})",
    )
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, metavar="N", help="pretrain for N minutes of wall time (default 60)")
    budget.add_argument("--steps", type=int, metavar="N")
    t.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help=f"sequences per step (default: {CPU_BATCH} on a CPU; on CUDA the most that fit, up to "
        f"{MAX_TOKENS_PER_STEP:,} tokens)",
    )
    t.add_argument("--block-size", type=int, metavar="N", help="tokens per sequence (default: the size's context)")
    t.add_argument("--learning-rate", type=float, default=2e-3, metavar="LR")
    t.add_argument("--warmup-steps", type=int, default=200, metavar="N")
    t.add_argument("--eval-every", type=int, default=200, metavar="N", help="validate and checkpoint every N steps")
    t.add_argument("--eval-batches", type=int, default=16, metavar="N", help="batches per validation (default 16)")
    t.add_argument("--vocab-size", type=int, default=8192, metavar="N")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    t.add_argument("--compile", action="store_true", help="torch.compile the training step (worth it on CUDA)")
    t.add_argument(
        "--save-dtype",
        choices=["bfloat16", "float32"],
        default="bfloat16",
        help="the saved weights' format (default bfloat16: half the size; fine-tuning loads them as float32)",
    )
    t.add_argument("--jobs", type=int, default=0, metavar="N", help="processes preparing texts (default: one per core)")
    t.add_argument(
        "--tokenize-only",
        action="store_true",
        help="only train the tokenizer and turn the corpus into token ids (cached in CORPUS_DIR), then stop",
    )
    t.add_argument("--resume", action="store_true", help="continue the interrupted pretraining for the same --out")
    t.add_argument(
        "--init",
        type=Path,
        metavar="BASE_DIR",
        help="continue a finished base (its weights and tokenizer; --size and --vocab-size are its own) with a "
        "fresh optimizer: several short runs add up to one base",
    )
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(run=_run_train)

    s = steps.add_parser(
        "score",
        help="bits per byte of bases and doubles on a corpus's held-out files",
        description="Score each MODEL_DIR (a base or a double) on CORPUS_DIR's held-out files (one in 100 by "
        "path hash, never pretrained on), as the base's manifest measures it: a double should not score worse "
        "than its base on code in general.",
    )
    s.add_argument("corpus", type=Path, metavar="CORPUS_DIR")
    s.add_argument("models", type=Path, nargs="+", metavar="MODEL_DIR")
    s.add_argument("--max-mb", type=float, metavar="N", help="score on the first N MB of held-out code (default all)")
    s.add_argument(
        "--language",
        action="append",
        default=[],
        metavar="LANG",
        help="score on this language's held-out files only (repeatable; default every language)",
    )
    s.add_argument("--json", action="store_true", help="one JSON object per model instead of a table")
    s.set_defaults(run=_run_score)

    r = steps.add_parser(
        "rehearsal-pack",
        help="pack a sample of the corpus's other languages to ship for rehearsal",
        description="Write the rehearsal pack that ships with the base (trainer/base/rehearsal): a seeded "
        "sample of permissively licensed Go, Rust, JavaScript, ... files, never one the base held out, with each "
        "source's licence files, which a fine-tune mixes in so that a double keeps the languages its history "
        "lacks. Python comes from the engineer's own standard library instead.",
    )
    r.add_argument("--out", type=Path, required=True, metavar="PACK_DIR")
    r.add_argument("--debian", action="append", default=[], metavar="PACKAGE", help="as for `base corpus`")
    r.add_argument("--node-modules", action="append", default=[], type=Path, metavar="DIR", help="as for `base corpus`")
    r.add_argument(
        "--kb-per-language",
        type=int,
        default=500,
        metavar="N",
        help="about N kB of each language's files (default 500)",
    )
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--jobs", type=int, default=0, metavar="N", help="worker processes (default: one per core)")
    r.set_defaults(run=_run_rehearsal_pack)


def _run_corpus(args: argparse.Namespace) -> int:
    import re

    from codedouble.trainer.base import sources
    from codedouble.trainer.base.corpus import CorpusOptions, build

    exclude = frozenset(re.sub(r"[-_.]+", "-", name).lower() for name in args.exclude)

    def gathered() -> Iterator[sources.Source]:
        if not args.no_stdlib:
            yield sources.python_stdlib()
        if not args.no_site:
            yield from sources.python_distributions(exclude, [str(p) for p in args.site] if args.site else None)
        yield from _packages(args)

    _check_folders(args)
    manifest = build(
        gathered(),
        args.out,
        CorpusOptions(max_source_bytes=int(args.max_source_mb * 1_000_000)),
        jobs=args.jobs or os.cpu_count() or 1,
        include=args.include_corpus,
    )
    languages = ", ".join(f"{lang} {v['bytes'] / 1e6:.1f} MB" for lang, v in manifest["languages"].items())
    print(
        f"{len(manifest['sources'])} sources kept, {len(manifest['rejected_sources'])} rejected; "
        f"{manifest['files']:,} files, {manifest['bytes'] / 1e6:.1f} MB ({languages}) → {args.out}",
        file=sys.stderr,
    )
    return 0


def _packages(args: argparse.Namespace) -> Iterator[Source]:
    """The Debian and npm sources named by --debian and --node-modules."""
    from codedouble.trainer.base import sources

    for package in args.debian:
        yield sources.debian_package(package)
    for folder in args.node_modules:
        yield from sources.npm_packages(folder)


def _check_folders(args: argparse.Namespace) -> None:
    from codedouble.trainer.base.sources import SourceError

    for option, folders in (("--node-modules", args.node_modules), ("--site", getattr(args, "site", []))):
        for folder in folders:
            if not folder.is_dir():
                raise SourceError(f"{option} {folder}: no such folder")


def _run_rehearsal_pack(args: argparse.Namespace) -> int:
    from codedouble.trainer.base.rehearsal_pack import build

    _check_folders(args)
    command = "codedouble " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["base"] else ""
    manifest = build(
        list(_packages(args)),
        args.out,
        bytes_per_language=args.kb_per_language * 1000,
        seed=args.seed,
        jobs=args.jobs or os.cpu_count() or 1,
        command=command,
    )
    languages = ", ".join(
        f"{lang} {v['files']} files, {v['bytes'] / 1e3:.0f} kB" for lang, v in manifest["languages"].items()
    )
    size = (args.out / "texts.jsonl.xz").stat().st_size
    print(
        f"{len(manifest['sources'])} sources: {languages}; {size / 1e3:.0f} kB packed → {args.out}",
        file=sys.stderr,
    )
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from codedouble.trainer.base.pretrain import PretrainOptions, pretrain, tokenize

    options = PretrainOptions(
        out=args.out,
        size=args.size,
        steps=args.steps,
        minutes=args.minutes,
        batch_size=args.batch_size,
        block_size=args.block_size,
        learning_rate=args.learning_rate,
        warmup_steps=args.warmup_steps,
        eval_every=args.eval_every,
        eval_batches=args.eval_batches,
        vocab_size=args.vocab_size,
        device=args.device,
        compile=args.compile,
        save_dtype=args.save_dtype,
        jobs=args.jobs,
        resume=args.resume,
        seed=args.seed,
        init=args.init,
    )
    if args.tokenize_only:
        cache = tokenize(args.corpus, options, progress=not args.quiet)
        print(f"tokenizer and token ids → {cache}", file=sys.stderr)
        return 0
    command = "codedouble " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["base"] else ""
    result = pretrain(args.corpus, options, progress=not args.quiet, command=command)
    print(
        f"pretrained {result.steps:,} steps, {result.tokens_seen:,} tokens seen, in {result.seconds:.0f} s; "
        f"validation loss {result.validation_loss:.3f}, {result.bits_per_byte:.3f} bits per byte on held-out "
        f"files → {result.base}",
        file=sys.stderr,
    )
    return 0


def _run_score(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict

    from codedouble.trainer.base.score import held_out_texts, score

    texts = held_out_texts(
        args.corpus, None if args.max_mb is None else int(args.max_mb * 1_000_000), frozenset(args.language)
    )
    for model in args.models:
        result = score(model, texts)
        if args.json:
            print(json.dumps(asdict(result)))
        else:
            print(
                f"{result.bits_per_byte:.4f} bits per byte  {result.nats_per_token:.4f} nats per token  "
                f"{result.tokens:,} tokens  {result.bytes:,} bytes  {model}"
            )
    return 0
