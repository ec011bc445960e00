"""The `codedouble` command line."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from codedouble.server.contract.errors import CodedoubleError
from codedouble.trainer import edits_cli
from codedouble.trainer.base import cli as base_cli
from codedouble.trainer.mining import filters
from codedouble.trainer.owning import cli as owning_cli

# Nothing codedouble does needs the network (README, "Offline"). The Hugging Face libraries read these once, when
# first imported (inside the commands, never at this module's import): set, they never look a name up on the
# Hub nor send telemetry, whatever the user's environment says.
OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}
LOOPBACK = "127.0.0.1"  # where `serve --tcp PORT` listens: reachable from this machine only


def _mine_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "mine",
        help="mine git histories into function-level change records",
        description="Walk each REPO's history (read-only) and write the engineer's changed definitions to "
        "DATASET_DIR. A repository already in DATASET_DIR is mined from where its last run stopped; another one "
        "is added beside those in it.",
    )
    p.add_argument(
        "repo",
        type=Path,
        nargs="+",
        metavar="REPO",
        help="path to a git repository (working tree or bare); several make one dataset, the first its primary",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DATASET_DIR", help="where the dataset is written")
    who = p.add_mutually_exclusive_group()
    who.add_argument(
        "--author",
        action="append",
        default=[],
        metavar="EMAIL",
        help="an identity of yours (repeatable; aliases and .mailmap merge into one person across every REPO). "
        "Default: each repository's user.email",
    )
    who.add_argument("--all-authors", action="store_true", help="mine everyone's commits (bots still left out)")
    p.add_argument("--since", metavar="DATE", help="only commits after DATE (any date git understands)")
    p.add_argument("--until", metavar="DATE", help="only commits before DATE")
    p.add_argument("--include", action="append", default=[], metavar="GLOB", help="mine only paths matching GLOB")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip paths matching GLOB")
    p.add_argument(
        "--max-file-bytes",
        type=int,
        default=filters.DEFAULT_MAX_FILE_BYTES,
        metavar="N",
        help=f"skip files larger than N bytes (default {filters.DEFAULT_MAX_FILE_BYTES:,})",
    )
    p.add_argument("--rev", default="HEAD", metavar="REVISION", help="mine the history of REVISION (default HEAD)")
    p.add_argument("--jobs", type=int, metavar="N", help="worker processes (default: both cores on long histories)")
    p.add_argument(
        "--fresh",
        action="store_true",
        help="replace the dataset: mine the REPOs named from scratch (other repositories in it are dropped)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar and no report on the terminal")
    p.set_defaults(run=_run_mine)


def _run_mine(args: argparse.Namespace) -> int:
    from codedouble.trainer.mining.miner import MineOptions, mine

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
    result = mine(args.repo, args.out, options, progress=not args.quiet)
    if not args.quiet:
        print(result.report)
    for note in result.notes:
        print(note, file=sys.stderr)
    print(f"{result.new_records:,} new records from {result.new_commits:,} commits → {result.dataset}", file=sys.stderr)
    return 0


def _train_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "train",
        help="train your double from a mined dataset",
        description="Fine-tune the shipped base on DATASET_DIR's records (the newest commits held out) into an artifact.",
    )
    p.add_argument("dataset", type=Path, metavar="DATASET_DIR", help="a directory written by `codedouble mine`")
    p.add_argument(
        "--out",
        type=Path,
        metavar="ARTIFACT_DIR",
        help="where the double is written (default: your data directory, kept as the repository's current double)",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, metavar="N", help="train for N minutes of wall time (default 10)")
    budget.add_argument("--steps", type=int, metavar="N", help="train for N optimizer steps")
    p.add_argument("--batch-size", type=int, default=8, metavar="N")
    p.add_argument("--block-size", type=int, default=256, metavar="N", help="tokens per training sequence")
    p.add_argument(
        "--learning-rate",
        type=float,
        metavar="LR",
        help="peak learning rate (default 2e-3 from scratch, 2e-4 full fine-tune, 5e-4 LoRA)",
    )
    p.add_argument(
        "--heldout",
        type=float,
        default=0.1,
        metavar="FRACTION",
        help="newest share of commits held out for eval (default 0.1)",
    )
    start = p.add_mutually_exclusive_group()
    start.add_argument(
        "--base",
        type=Path,
        metavar="PATH",
        help="fine-tune this local Hugging Face checkpoint instead of the shipped base (LoRA by default)",
    )
    start.add_argument(
        "--from-scratch", action="store_true", help="no base: a fresh small model with a tokenizer of your own code"
    )
    p.add_argument(
        "--finetune",
        choices=["full", "lora"],
        help="how a base is adapted (default: full for the shipped base, lora for --base)",
    )
    p.add_argument("--lora-rank", type=int, default=8, metavar="R")
    p.add_argument(
        "--rehearsal",
        type=float,
        default=0.5,  # rehearsal.SHARE (not imported here: the CLI starts without torch)
        metavar="SHARE",
        help="share of general code (this Python's standard library, and the rehearsal pack's Go, Rust, "
        "JavaScript and TypeScript) mixed into a base's fine-tune so that it keeps what the base knows "
        "(default 0.5; 0: your history alone)",
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run for the same --out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--tune-lines",
        type=int,
        default=40,
        metavar="N",
        help="lines of your newest training commits typed key by key to tune when a suggestion is shown "
        "(default 40; 0 shows every suggestion)",
    )
    p.add_argument(
        "--tune-bodies",
        type=int,
        default=100,
        metavar="N",
        help="function bodies of your newest training commits on which retrieved bodies are tuned (default 100; "
        "0 keeps the defaults)",
    )
    p.add_argument(
        "--default",
        action="store_true",
        help="make it your default double: served in repositories that have none of their own",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from codedouble.trainer.training.train import TrainOptions, train

    options = TrainOptions(
        out=args.out,
        steps=args.steps,
        minutes=args.minutes,
        batch_size=args.batch_size,
        block_size=args.block_size,
        learning_rate=args.learning_rate,
        heldout_fraction=args.heldout,
        base=args.base,
        from_scratch=args.from_scratch,
        finetune=args.finetune,
        lora_rank=args.lora_rank,
        rehearsal=args.rehearsal,
        device=args.device,
        resume=args.resume,
        seed=args.seed,
        tune_lines=args.tune_lines,
        tune_bodies=args.tune_bodies,
    )
    result = train(args.dataset, options, progress=not args.quiet)
    print(
        f"trained {result.steps:,} steps on {result.train_tokens:,} tokens in {result.seconds:.0f} s; "
        f"validation loss {result.best_validation_loss:.3f} → {result.artifact}",
        file=sys.stderr,
    )
    if args.default:
        from codedouble.server.contract.artifact import mark_default

        mark_default(result.artifact)
        print(f"your default double is now {result.artifact}", file=sys.stderr)
    return 0


def _follow_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "update",
        help="bring your double up to date with your new commits in minutes, without a full retrain",
        description="Mine the new commits into the double's dataset, add their code to the current double's "
        "completion corpus at once, then fine-tune it on them for a bounded time. The double it replaces stays "
        "for `codedouble rollback`.",
    )
    p.add_argument(
        "dataset", type=Path, nargs="?", metavar="DATASET_DIR", help="default: the dataset of --repo's current double"
    )
    p.add_argument("--repo", type=Path, metavar="DIR", help="the repository whose double to update (default: here)")
    p.add_argument("--no-train", action="store_true", help="only mine and add the new code to the corpus (seconds)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=2.0, metavar="N", help="of fine-tuning (default 2)")
    budget.add_argument("--steps", type=int, metavar="N", help="fine-tune for N optimizer steps instead")
    p.add_argument("--resume", action="store_true", help="finish an interrupted update's fine-tuning")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_update)

    p = sub.add_parser(
        "rollback",
        help="serve the double the last update replaced again",
        description="Point every place the current double is served from (the repository, your default) back at "
        "the double the last `codedouble update` replaced.",
    )
    p.add_argument("dataset", type=Path, nargs="?", metavar="DATASET_DIR")
    p.add_argument("--repo", type=Path, metavar="DIR", help="the repository whose double to roll back (default: here)")
    p.set_defaults(run=_run_rollback)

    p = sub.add_parser(
        "default",
        help="show or set your default double (served where a repository has none)",
        description="With ARTIFACT_DIR, make it your default double; without, say which it is.",
    )
    p.add_argument("artifact", type=Path, nargs="?", metavar="ARTIFACT_DIR")
    p.set_defaults(run=_run_default)

    p = sub.add_parser(
        "hook",
        help="install or remove the git hooks that feed each commit to your double and draft its message",
        description="`post-commit` runs `codedouble update --no-train` in the background after each commit; "
        "`prepare-commit-msg` fills a draft message when git has none (`git commit` without -m/-F, not merges, "
        "squashes, templates or amends). Neither ever fails a commit, and the draft gives up after a few seconds. "
        "An existing hook of your own is never overwritten.",
    )
    p.add_argument("action", choices=["install", "uninstall"])
    p.add_argument("--post-commit", action="store_true", help="the post-commit hook (the default)")
    p.add_argument(
        "--prepare-commit-msg", action="store_true", help="the hook that drafts commit messages in your voice"
    )
    p.add_argument("--repo", type=Path, default=Path("."), metavar="DIR", help="the repository (default: here)")
    p.set_defaults(run=_run_hook)


def _run_update(args: argparse.Namespace) -> int:
    from codedouble.trainer.training.update import UpdateOptions, update

    options = UpdateOptions(
        train=not args.no_train,
        minutes=args.minutes,
        steps=args.steps,
        resume=args.resume,
        device=args.device,
    )
    result = update(args.dataset, options, repository=args.repo, progress=not args.quiet)
    for note in result.notes:
        print(note, file=sys.stderr)
    if result.previous is not None:
        trained = f"; fine-tuned {result.trained_steps} steps" if result.trained_steps else ""
        print(
            f"{result.new_records} new records from {result.new_commits} commits, {result.corpus_added} new corpus "
            f"entries{trained} → {result.artifact} (`codedouble rollback` returns to {result.previous.name})",
            file=sys.stderr,
        )
    return 0


def _run_rollback(args: argparse.Namespace) -> int:
    from codedouble.trainer.training.update import rollback

    left, now = rollback(args.repo, args.dataset)
    print(f"serving {now} again (instead of {left.name})", file=sys.stderr)
    return 0


def _run_default(args: argparse.Namespace) -> int:
    from codedouble.server.contract.artifact import default_artifact, mark_default, read_manifest

    if args.artifact is not None:
        read_manifest(args.artifact)  # a double, or a clear error
        mark_default(args.artifact)
    current = default_artifact()
    print(str(current) if current else "no default double: `codedouble train DATASET --default` sets one")
    return 0


def _run_hook(args: argparse.Namespace) -> int:
    from codedouble.trainer import hooks

    names = [n for n, wanted in (("post-commit", args.post_commit), (hooks.PREPARE, args.prepare_commit_msg)) if wanted]
    for name in names or ["post-commit"]:
        if args.action == "install":
            path = hooks.install(args.repo, name)
            does = (
                f"each commit's code reaches your double in the background (log: {hooks.log_path()})"
                if name == "post-commit"
                else "`git commit` opens with a draft message in your voice"
            )
            print(f"installed {path}: {does}")
        else:
            removed = hooks.uninstall(args.repo, name)
            print(f"removed {removed}" if removed else f"no codedouble {name} hook to remove")
    return 0


def _commit_message_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "commit-message",
        help="draft a commit message for the staged change (or a commit) in your own style",
        description="Print a draft message for what is staged (or for commit REV), drafted by your double from "
        "your past commits with the most similar changes or by its model, whichever measured better, and "
        "written as you write messages (summary length, case, prefixes, mood, trailers).",
    )
    what = p.add_mutually_exclusive_group()
    what.add_argument("--staged", action="store_true", help="draft for the staged change (the default)")
    what.add_argument("revision", nargs="?", metavar="REV", help="draft for this commit instead")
    p.add_argument("--repo", type=Path, default=Path("."), metavar="DIR", help="the repository (default: here)")
    p.add_argument(
        "--artifact",
        type=Path,
        metavar="ARTIFACT_DIR",
        help="the double to draft with (default: the repository's current double, else your default double)",
    )
    p.add_argument(
        "--source", choices=["retrieval", "model"], help="draft from this source (default: the one measured better)"
    )
    p.add_argument("--explain", action="store_true", help="also say which double and source drafted it (stderr)")
    # The prepare-commit-msg hook's way in: fill git's message file, give up silently after SECONDS.
    p.add_argument("--into", type=Path, metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--within", type=float, metavar="SECONDS", help=argparse.SUPPRESS)
    p.set_defaults(run=_run_commit_message)


def _run_commit_message(args: argparse.Namespace) -> int:
    from codedouble.trainer import commit_message

    if args.within:
        commit_message.watchdog(args.within)
    options = commit_message.Options(args.repo, args.revision, args.artifact, args.source)
    if args.into is not None:
        from codedouble.server.commits import gitdiff

        try:
            done, _ = commit_message.draft(options)
            commit_message.fill(args.into, done.text, gitdiff.root(args.repo))
        except CodedoubleError:
            pass  # the hook never stands between the engineer and their commit
        return 0
    done, double = commit_message.draft(options)
    print(done.text, end="")
    for note in done.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.explain:
        drawn = f" (from commit {done.neighbour[:12]} and its neighbours)" if done.neighbour else ""
        print(f"drafted by {done.source}{drawn} with {double}", file=sys.stderr)
    return 0


def _snippets_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "snippets",
        help="list the shapes you keep writing, as your double serves them as completion snippets",
        description="List the recurring shapes of your history (a test's skeleton, a guard, a command's frame): "
        "definitions and statement blocks of the same tree-sitter shape, names and literals aside, written in "
        "at least 3 distinct commits, each as the LSP snippet the server offers, with placeholders where the "
        "occurrences differ. A DATASET is mined now, from all its records; an ARTIFACT_DIR lists what the double "
        "ships (mined from its training commits).",
    )
    p.add_argument("path", type=Path, metavar="DATASET|ARTIFACT_DIR")
    p.add_argument("--json", action="store_true", help="print JSON (every field of every snippet)")
    p.add_argument("--language", metavar="LANGUAGE", help="only this language's (python, go, ...)")
    p.set_defaults(run=_run_snippets)


def _run_snippets(args: argparse.Namespace) -> int:
    from codedouble.trainer.snippets.listing import listing

    print(listing(args.path, args.json, args.language))
    return 0


def _eval_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "eval",
        help="score a double and the baselines on your held-out commits",
        description="Complete lines and bodies from ARTIFACT_DIR's held-out commits (never trained on) with the double, "
        "its parts and the baselines; print a table and write report.json, report.md and report.png.",
    )
    p.add_argument(
        "artifact",
        type=Path,
        nargs="?",
        metavar="ARTIFACT_DIR",
        help="a double written by `codedouble train` (default: the current double of --repo)",
    )
    p.add_argument(
        "--repo", type=Path, default=Path("."), metavar="REPO", help="whose current double to evaluate (default .)"
    )
    alone = p.add_mutually_exclusive_group()
    alone.add_argument(
        "--base", type=Path, metavar="BASE_DIR", help="score this base alone (default: the shipped base)"
    )
    alone.add_argument("--no-base", action="store_true", help="do not score a base alone")
    p.add_argument(
        "--compare",
        type=Path,
        action="append",
        default=[],
        metavar="ARTIFACT_DIR",
        help="also score this artifact's model on the same samples (repeatable), e.g. one trained on another history",
    )
    p.add_argument("--report", type=Path, metavar="DIR", help="where the report files go (default ARTIFACT_DIR/eval)")
    p.add_argument("--line-samples", type=int, default=200, metavar="N", help="next-line samples (default 200)")
    p.add_argument("--block-samples", type=int, default=30, metavar="N", help="function-body samples (default 30)")
    p.add_argument(
        "--replay-lines",
        type=int,
        default=20,
        metavar="N",
        help="held-out lines typed key by key against every system, as the server is asked (default 20; 0 skips)",
    )
    p.add_argument(
        "--commit-samples",
        type=int,
        default=100,
        metavar="N",
        help="held-out commits whose messages are drafted by the model, retrieval and a generic baseline "
        "(default 100; 0 skips)",
    )
    p.add_argument(
        "--edit-samples",
        type=int,
        default=100,
        metavar="N",
        help="held-out files changed in two hunks or more: the first made, each system proposes the rest as next "
        "edits (default 100; 0 skips)",
    )
    p.add_argument("--per-language", action="store_true", help="one table row per language as well")
    p.add_argument(
        "--no-workspace",
        action="store_true",
        help="no workspace context (by default every system sees the repository at the held-out commit's "
        "parent, and engine/ngram/bm25 are also scored without it)",
    )
    p.add_argument("--seed", type=int, default=0, help="which samples are drawn (default 0)")
    _runtime_argument(p, "the models' weights (double, base, --compare)", "fp32 shows what int8 costs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_eval)


def _runtime_argument(p: argparse.ArgumentParser, what: str, why: str) -> None:
    # The names of server/engine/neural.py's RUNTIMES, written out: importing it here would load torch for --help.
    p.add_argument("--runtime", choices=["int8", "fp32"], help=f"how {what} run (default int8; fp32: as saved): {why}")


def _use_runtime(runtime: str | None) -> None:
    """Every model this process loads from now on (eval's double, base and --compare; serve's reloads) runs so."""
    if runtime is not None:
        from codedouble.server.engine import neural

        neural.RUNTIME = runtime


def _run_eval(args: argparse.Namespace) -> int:
    from codedouble.server.contract.artifact import current_artifact
    from codedouble.trainer.base.shipped import shipped_base
    from codedouble.trainer.evaluation import report
    from codedouble.trainer.evaluation.run import EvalError, EvalOptions, default_report_dir, evaluate

    artifact = args.artifact
    if artifact is None:
        artifact = current_artifact(str(args.repo.resolve()))
        if artifact is None:
            raise EvalError(f"{args.repo} has no trained double yet; run `codedouble train` first")

    _use_runtime(args.runtime)
    base = None if args.no_base else args.base or shipped_base()
    options = EvalOptions(
        compare=tuple(args.compare),
        base=base,
        line_samples=args.line_samples,
        block_samples=args.block_samples,
        replay_lines=args.replay_lines,
        commit_samples=args.commit_samples,
        edit_samples=args.edit_samples,
        seed=args.seed,
        workspace=not args.no_workspace,
    )
    result = evaluate(artifact, options, progress=not args.quiet)
    try:
        written = report.write(result, args.report or default_report_dir(artifact))
    except OSError as exc:
        raise EvalError(f"cannot write the report: {exc}") from exc
    print(report.format_table(result, per_language=args.per_language))
    print(f"report → {written[0].parent}", file=sys.stderr)
    return 0


def _serve_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "serve",
        help="run the language server (LSP over stdio) that puts your double in the editor",
        description="Serve inline completions and completion items from your double over LSP, on stdio unless --tcp.",
    )
    p.add_argument(
        "--artifact",
        type=Path,
        metavar="ARTIFACT_DIR",
        help="the double to serve (default: the newest double of the workspace's repository)",
    )
    p.add_argument(
        "--tcp",
        type=_host_port,
        metavar="[HOST:]PORT",
        help=f"listen on this address instead of stdio (HOST defaults to {LOOPBACK}: this machine only)",
    )
    _runtime_argument(p, "the double's weights", "int8 answered 1.5x faster through the server on rich (README)")
    remote = p.add_argument_group(
        "a remote engine (docs/serving.md)",
        "The model part runs on an engine serving your double as a LoRA adapter; n-gram, retrieval and abstention "
        "stay here, and answer alone whenever the engine fails or is slow. Editor settings of the same names win.",
    )
    remote.add_argument(
        "--backend",
        choices=("local", "openai", "llama.cpp"),
        help="local (default), openai (an OpenAI-compatible /v1/completions: vLLM, SGLang, llama.cpp) or llama.cpp "
        "(its native /completion)",
    )
    remote.add_argument("--url", metavar="URL", help="the engine's base URL, e.g. http://gpu-box:8000")
    remote.add_argument("--model", metavar="NAME", help="the name your adapter is served under (vLLM --lora-modules)")
    remote.add_argument("--api-key-env", metavar="VAR", help="the environment variable holding the engine's API key")
    remote.add_argument("--timeout-ms", type=int, metavar="MS", help="give way to the local answer after this long")
    p.set_defaults(run=_run_serve)


def _host_port(value: str) -> tuple[str, int]:
    host, colon, port = value.rpartition(":")
    if (colon and not host) or not port.isdigit():
        raise argparse.ArgumentTypeError(f"wants [HOST:]PORT, not {value!r}")
    if host.startswith("[") and host.endswith("]"):  # an IPv6 address, bracketed as in a URL
        host = host[1:-1]
    return host or LOOPBACK, int(port)


def _run_serve(args: argparse.Namespace) -> int:
    from codedouble.server.server import main as serve

    flags = {"backend": args.backend, "url": args.url, "model": args.model, "apiKeyEnv": args.api_key_env}
    flags["timeoutMs"] = args.timeout_ms
    _use_runtime(args.runtime)
    serve(tcp=args.tcp, artifact=args.artifact, settings={k: v for k, v in flags.items() if v is not None})
    return 0


# --- owning your double: export and import (issue 18) ------------------------------------------------------


def _export_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "export",
        help="pack a double into one archive file, to move it to another machine",
        description="Write ARTIFACT_DIR's files (weights, tokenizer, corpus, manifest; not its eval report) and the "
        "SHA-256 of each into one tar archive (gzip when FILE ends in .gz or .tgz).",
    )
    p.add_argument(
        "artifact",
        type=Path,
        nargs="?",
        metavar="ARTIFACT_DIR",
        help="the double to export (default: the current double of --repo)",
    )
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE|DIR",
        help="the archive to write (e.g. double.tar); with --format peft, the adapter's folder",
    )
    p.add_argument(
        "--format",
        choices=("archive", "peft", "gguf"),
        default="archive",
        help="archive (default): the whole double, for `codedouble import`; peft: a LoRA adapter on the double's "
        "base, for vLLM, SGLang or llama.cpp (docs/serving.md); gguf: base.gguf and adapter.gguf for llama.cpp, "
        "made by llama.cpp's own converters (--llama-cpp)",
    )
    peft = p.add_argument_group("--format peft and gguf")
    peft.add_argument(
        "--rank",
        type=int,
        metavar="R",
        help="the LoRA rank (8, 16, 32 or 64); default: the smallest whose error is within --max-error",
    )
    peft.add_argument(
        "--max-error",
        type=float,
        default=0.05,
        metavar="E",
        help="the relative error of the approximated weight change the rank search accepts (default 0.05)",
    )
    peft.add_argument(
        "--base", type=Path, metavar="PATH", help="where the double's base is now (default: where it was trained)"
    )
    peft.add_argument(
        "--base-out",
        type=Path,
        metavar="DIR",
        help="also write the base there as a plain Hugging Face folder (once: a folder already holding it is kept)",
    )
    peft.add_argument(
        "--llama-cpp",
        type=Path,
        metavar="TREE",
        help="--format gguf: a llama.cpp source tree, whose converters make the GGUF files",
    )
    p.add_argument(
        "--repo", type=Path, default=Path("."), metavar="REPO", help="whose current double to export (default .)"
    )
    p.add_argument(
        "--redact-paths",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="cut this machine's absolute paths in the manifest to <redacted>/BASENAME (default on)",
    )
    p.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from codedouble.server.contract.artifact import current_artifact
    from codedouble.trainer.owning.archive import ArchiveError, export

    folder = args.artifact
    if folder is None:
        folder = current_artifact(str(args.repo.resolve()))
        if folder is None:
            raise ArchiveError(
                f"{args.repo} has no trained double yet; name one (ARTIFACT_DIR) or run `codedouble train`"
            )
    if args.format in {"peft", "gguf"}:
        return _export_adapter(folder, args)
    done = export(folder, args.out, redact=args.redact_paths)
    redacted = f"; paths redacted: {', '.join(done.redacted)}" if done.redacted else ""
    print(f"exported {folder} ({done.members} files, {done.bytes:,} bytes) → {done.archive}{redacted}", file=sys.stderr)
    return 0


def _export_adapter(folder: Path, args: argparse.Namespace) -> int:
    from codedouble.trainer.owning.adapter import AdapterError, export_adapter
    from codedouble.trainer.owning.gguf import export_gguf

    if args.format == "gguf":
        if args.llama_cpp is None:
            raise AdapterError("--format gguf needs --llama-cpp TREE: llama.cpp's converters are in its source tree")
        done = export_gguf(folder, args.out, args.llama_cpp, rank=args.rank, max_error=args.max_error, base=args.base)
    else:
        done = export_adapter(
            folder, args.out, rank=args.rank, max_error=args.max_error, base=args.base, base_out=args.base_out
        )
    errors = ", ".join(f"rank {r}: {e:.2%}" for r, e in done.errors.items())
    print(f"exported {folder} as a LoRA adapter of rank {done.rank} → {done.adapter}", file=sys.stderr)
    print(f"  relative error of the projections' change ({done.finetune or '?'} fine-tune): {errors}", file=sys.stderr)
    for dropped in done.dropped:
        print(
            f"  not carried by a LoRA: {dropped.name} ({dropped.rows_changed} rows changed, "
            f"{dropped.relative_change:.2%} of its norm)",
            file=sys.stderr,
        )
    if done.base is not None:
        print(f"  base → {done.base}", file=sys.stderr)
    return 0


def _import_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "import",
        help="install a double from an archive made by `codedouble export`",
        description="Check every member of FILE against its SHA-256 manifest, then install the double whole: by "
        "default among the doubles of the repository you are in (made its current double), or at --out DIR.",
    )
    p.add_argument("archive", type=Path, metavar="FILE", help="an archive written by `codedouble export`")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--repo",
        type=Path,
        default=Path("."),
        metavar="REPO",
        help="install as the current double of the repository around REPO (default .)",
    )
    where.add_argument("--out", type=Path, metavar="DIR", help="install at DIR instead (not made anyone's current)")
    p.add_argument("--force", action="store_true", help="replace a different double already at the target")
    p.set_defaults(run=_run_import)


def _run_import(args: argparse.Namespace) -> int:
    from codedouble.server.contract.artifact import mark_current
    from codedouble.trainer.owning.archive import default_target, install, read_header

    target = args.out or default_target(args.repo, str(read_header(args.archive).get("name", "")))
    done = install(args.archive, target, force=args.force)
    if args.out is None:
        mark_current(done.artifact)
    state = "already installed" if done.already_there else "installed"
    current = "" if args.out else " (now the repository's current double)"
    print(f"{state}: {done.artifact}{current}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="codedouble", description="Your code-style double, trained on your own git history."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _mine_parser(sub)
    _train_parser(sub)
    _eval_parser(sub)
    _serve_parser(sub)
    _follow_parsers(sub)
    _commit_message_parser(sub)
    _snippets_parser(sub)
    owning_cli.add_parsers(sub)
    edits_cli.add_parser(sub)
    _export_parser(sub)
    _import_parser(sub)
    base_cli.add_parser(sub)
    return parser


def _version() -> str:
    from codedouble.server.contract.version import tool_version

    return tool_version()


def main(argv: list[str] | None = None) -> int:
    """Run one command. A user's problem (any `CodedoubleError`) is one line on stderr and exit status 2;
    anything else is a bug in codedouble and propagates with its traceback."""
    os.environ.update(OFFLINE_ENVIRONMENT)
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except CodedoubleError as exc:
        command = " ".join(filter(None, [args.command, getattr(args, "base_command", None)]))
        print(f"codedouble {command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
