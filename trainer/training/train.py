"""`codedouble train`: one readable training loop, from the dataset to the artifact, top to bottom.

Runs as it is under `torchrun --nproc_per_node=N` (DDP: gloo on CPU, nccl on CUDA); rank 0 alone writes.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedTokenizerFast

from codedouble.server.contract import artifact, atomic, commits, corpus, edits, prompt, tombstones
from codedouble.server.contract import snippets as snippet_file
from codedouble.server.contract.errors import CodedoubleError
from codedouble.server.engine.abstention import Abstention
from codedouble.server.engine.bodies import KEY as BODIES_KEY
from codedouble.trainer.base.shipped import identity as base_identity
from codedouble.trainer.base.shipped import require_shipped_base
from codedouble.trainer.evaluation import replay
from codedouble.trainer.mining import dataset, repositories
from codedouble.trainer.mining.records import ChangeRecord
from codedouble.trainer.snippets import mine as snippet_mining
from codedouble.trainer.training import (
    abstention,
    bodies,
    checkpoint,
    commit_index,
    edit_patterns,
    languages,
    loop,
    module_level,
    rehearsal,
)
from codedouble.trainer.training.examples import ExampleMix, corpus_snippets, examples
from codedouble.trainer.training.model import ModelSize, from_scratch, load_base, parameter_count, with_lora
from codedouble.trainer.training.split import (
    DEFAULT_HELDOUT_FRACTION,
    drop_near_duplicates,
    time_split,
    validation_commits,
)
from codedouble.trainer.training.tokenizer import DEFAULT_VOCAB_SIZE, train_tokenizer

# Part of the training commits (the newest) that only measures validation loss for picking the best checkpoint.
VALIDATION_FRACTION = 0.05


class TrainError(CodedoubleError):
    """A problem the user must fix; the message says what and how."""


@dataclass(frozen=True)
class TrainOptions:
    out: Path | None = None  # default: the user's data directory, one folder of doubles per repository
    steps: int | None = None
    minutes: float | None = None  # wall-clock budget; with neither set, 10 minutes
    batch_size: int = 8
    block_size: int = 256
    learning_rate: float | None = None  # default: 2e-3 from scratch, 2e-4 full fine-tune, 5e-4 LoRA
    warmup_steps: int = 20
    eval_every: int = 50
    eval_batches: int = 8
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION
    vocab_size: int = DEFAULT_VOCAB_SIZE
    size: ModelSize = field(default_factory=ModelSize)
    mix: ExampleMix = field(default_factory=ExampleMix)
    base: Path | None = None  # default: the shipped base (codedouble.trainer.base)
    from_scratch: bool = False  # no base: a fresh model and the engineer's own tokenizer
    finetune: str | None = None  # full or lora; default full for the shipped base, lora for --base
    lora_rank: int = 8
    rehearsal: float = rehearsal.SHARE  # share of general code in a base's fine-tune (0: the history alone)
    device: str = "auto"
    resume: bool = False
    seed: int = 0
    # Abstention is tuned on this many lines of the validation commits, typed key by key (0: not tuned, every
    # suggestion shown), for at most this long. Every keystroke asks all three systems: on rich's 8,000
    # definitions that was about 0.5 s a keystroke on this machine while shared (a 40-character line, 20 s),
    # and a minute gave only 2 lines to tune on.
    tune_lines: int = 40
    tune_seconds: float = 180.0
    # Retrieved bodies are tuned on this many block samples of the validation commits (0: the defaults of
    # server/engine/bodies.py), for at most this long: each is one forced answer and the workspace at its
    # commit's parent, about 0.6 s on rich's Llama double (100 samples in commit order: 57 s). At 60 s, in the
    # order sampled, only 80 were seen, and the cut they chose (0.97) was not the one all 100 chose (0.41).
    tune_bodies: int = bodies.SAMPLES
    tune_bodies_seconds: float = 150.0


@dataclass
class TrainResult:
    artifact: Path
    steps: int
    best_validation_loss: float
    train_tokens: int
    seconds: float


def data_hash(manifest: dict[str, Any]) -> str:
    """What a double records of the dataset manifest it was trained on (and `update` of the one it extends)."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()


def _default_out(manifest: dict[str, Any], resume: bool) -> Path:
    """A new timestamped folder among the repository's doubles; to resume, the newest interrupted one."""
    folder = artifact.doubles_dir(manifest["repository"])
    if resume:
        interrupted = sorted(p for p in folder.glob(".*.training") if checkpoint.exists(p / "last"))
        if interrupted:
            return folder / interrupted[-1].name.removeprefix(".").removesuffix(".training")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out, n = folder / stamp, 1
    while out.exists() or out.with_name(f".{out.name}.training").exists():  # two doubles in one second
        out, n = folder / f"{stamp}-{n}", n + 1
    return out


def commit_sources(
    manifest: dict[str, Any], records: list[ChangeRecord], commits: Iterable[str]
) -> list[replay.Source]:
    """`commits` of `records`, each read from its own repository with the paths that repository was mined from
    (a repository that is gone gives nothing)."""
    by_repository = repositories.commits_by_repository(records, commits)
    return [(Path(path), shas, dataset.path_filter(manifest, path)) for path, shas in by_repository.items()]


def _tune_abstention(
    folder: Path,
    manifest: dict[str, Any],
    fit: list[ChangeRecord],
    module: list[tuple[str, corpus.Snippet]],
    validation: frozenset[str],
    training: list[ChangeRecord],
    opts: TrainOptions,
) -> Abstention | None:
    """When the double in `folder` shows a suggestion, tuned on the validation commits' lines (their code kept
    out of the completion corpus meanwhile); None when there is nothing to tune on."""
    if not opts.tune_lines or not validation:
        return None
    lines = replay.lines_of(commit_sources(manifest, training, validation), opts.tune_lines, opts.seed)
    if not lines:
        return None
    return abstention.tune_artifact(folder, corpus_snippets(fit, module), lines, opts.tune_seconds)


SEEN = "dataset.json"  # in the work folder: the tombstones the interrupted run's data already honoured


def _check_data_seen(work: Path, forgotten: list[tombstones.Tombstone]) -> None:
    """`--resume` continues weights that saw the dataset as it was; if `forget` has removed anything since,
    those weights hold it: refuse, and say how to start clean."""
    try:
        seen = json.loads((work / SEEN).read_text(encoding="utf-8")).get("tombstones", [])
    except (OSError, ValueError, AttributeError):
        seen = None  # an interrupted run of an older codedouble: it cannot say, so it is not trusted
    newer = [t for t in forgotten if (seen is None or t.id not in seen) and t.records]
    if newer:
        raise TrainError(
            f"--resume: the interrupted run in {work} trained on data you removed with `codedouble forget` on "
            f"{newer[0].day} ({newer[0].rule.describe()}); start again without --resume"
        )


def _note_data_seen(work: Path, forgotten: list[tombstones.Tombstone], run: loop.Run) -> None:
    """What `_check_data_seen` reads on a later --resume; written as the loop starts (not before the model is
    ready, so that a run that fails early leaves no work folder behind)."""
    if run.rank == 0:
        work.mkdir(parents=True, exist_ok=True)
        atomic.write_text(work / SEEN, json.dumps({"tombstones": sorted(t.id for t in forgotten)}) + "\n")


def train(dataset_dir: Path, opts: TrainOptions, progress: bool = True) -> TrainResult:
    if not 0 <= opts.heldout_fraction < 1:
        raise TrainError(f"--heldout {opts.heldout_fraction}: the held-out fraction must be at least 0 and below 1")
    if not 0 <= opts.rehearsal < 1:
        raise TrainError(f"--rehearsal {opts.rehearsal}: the share of general code must be at least 0 and below 1")
    loop.quiet_transformers()
    started = time.monotonic()
    with loop.started(opts.device) as run:
        return _train(dataset_dir, opts, run, progress, started)


def _train(dataset_dir: Path, opts: TrainOptions, run: loop.Run, progress: bool, started: float) -> TrainResult:
    # 1. The engineer's records, split by time: the newest commits are held out and never seen.
    manifest = dataset.read_manifest(dataset_dir)
    if manifest is None:
        raise TrainError(f"{dataset_dir} holds no codedouble dataset (no manifest.json); run `codedouble mine` first")
    records = list(dataset.load_records(dataset_dir))
    if not records:
        raise TrainError(f"{dataset_dir} holds no change records: mine a history with your commits in it first")
    split = time_split(records, opts.heldout_fraction)
    heldout = [r for r in records if split.is_heldout(r)]
    training, near_duplicates = drop_near_duplicates([r for r in records if not split.is_heldout(r)], heldout)
    # Validation (for picking the best weights) takes the newest training commits: enough text for a few
    # blocks (about 4 characters a token), and the training data itself when the history is too short.
    validation = validation_commits(training, VALIDATION_FRACTION, min_chars=16 * opts.block_size * opts.eval_batches)
    fit = [r for r in training if r.commit not in validation]
    check = [r for r in training if r.commit in validation] or fit

    # 2. Examples in the shared prompt format, and the tokenizer (the engineer's own, or the base's).
    texts = examples(fit, opts.mix, opts.seed)
    val_texts = examples(check, opts.mix, opts.seed + 1)
    out = Path(loop.shared(run, str(opts.out or _default_out(manifest, opts.resume))))
    work = loop.work_folder(out, opts.resume, run)
    forgotten = tombstones.from_manifest(manifest)
    if opts.resume:
        _check_data_seen(work, forgotten)
    base = opts.base or (None if opts.from_scratch else require_shipped_base())
    method = None if base is None else opts.finetune or ("lora" if opts.base else "full")
    if method not in {None, "full", "lora"}:
        raise TrainError(f"--finetune {method}: choose full or lora")
    if base is not None:
        model, tokenizer, added = load_base(base)
        if method == "lora":
            model = with_lora(model, tokenizer, opts.lora_rank, added)
    else:
        if run.rank == 0 and not (work / "tokenizer" / "tokenizer.json").is_file():
            with atomic.directory(work / "tokenizer") as folder:  # a killed run never leaves half a tokenizer
                train_tokenizer(texts, opts.vocab_size).save_pretrained(folder)
        loop.wait_for_rank_0(run)  # every rank uses rank 0's tokenizer
        tokenizer = PreTrainedTokenizerFast.from_pretrained(work / "tokenizer", local_files_only=True)
        torch.manual_seed(opts.seed)
        # The model's context is the block it trains on: RoPE positions it never saw would serve badly.
        size = replace(opts.size, context=min(opts.size.context, opts.block_size))
        model = from_scratch(size, len(tokenizer), tokenizer.convert_tokens_to_ids(prompt.EOS))
    # General code rehearsed beside the engineer's, so that fine-tuning adds to the base and does not overwrite
    # it (trainer/training/rehearsal.py); a model from scratch has nothing to keep.
    rehearsed = rehearsal.texts(opts.rehearsal if base is not None else 0.0, sum(map(len, texts)), opts.seed)
    if rehearsed.texts:
        texts = [*texts, *rehearsed.texts]
        random.Random(opts.seed).shuffle(texts)
    stream = loop.token_stream(tokenizer, texts)
    val_stream = loop.token_stream(tokenizer, val_texts)
    block = min(opts.block_size, getattr(model.config, "max_position_embeddings", opts.block_size))
    opts = replace(opts, block_size=block)
    needed = 4 * block * opts.batch_size
    if len(stream) < needed:
        raise TrainError(
            f"too little data to train: {len(records)} records gave {len(stream):,} training tokens; at least "
            f"{needed:,} are needed with --block-size {block} and --batch-size {opts.batch_size}. Mine more "
            "history (--since, more --author identities) or lower --block-size/--batch-size."
        )
    if len(val_stream) <= block:
        val_stream = stream  # a history this short has no newer commits to spare: validate on training text

    # 3. The loop, shared with the base's pretraining; the model comes back with the best weights.
    # A full fine-tune at a tenth of the base's pretraining peak (2e-3): on rich, 2e-4 for 365 steps took the
    # model from 17.5 to 19.5 % next-line EM (README "The Llama base on rich"); 1e-3 was the GPT-2's.
    learning_rate = opts.learning_rate or (2e-3 if base is None else 5e-4 if method == "lora" else 2e-4)
    loop_opts = loop.options(opts, block_size=block, learning_rate=learning_rate, default_minutes=10.0)
    if not opts.resume:
        _note_data_seen(work, forgotten, run)
    # Each language's validation examples, scored by the base now and by the double after: the server answers
    # with the base in a language the double did not learn better (trainer/training/languages.py). Only with
    # validation commits of its own: scored on text it trained on, the double would always look better.
    measured = base is not None and run.rank == 0 and check is not fit
    streams = languages.validation_streams(check, tokenizer, opts.mix, opts.seed + 1, block) if measured else {}
    model.to(run.device)
    base_losses = languages.losses(model, streams, block, opts.batch_size, run.device)
    fitted = loop.fit(model, stream, val_stream, loop_opts, work, run, progress)
    double_losses = languages.losses(model, streams, block, opts.batch_size, run.device)

    # 4. The artifact: best weights (LoRA merged in), tokenizer, provenance; written whole or not at all.
    if run.rank == 0:
        export = model.merge_and_unload() if method == "lora" else model
        export.to("cpu")
        # Every training text ends in the prompt format's EOS; a base may know another end-of-text token.
        eos_ids = {int(tokenizer.convert_tokens_to_ids(prompt.EOS))}
        base_eos = export.generation_config.eos_token_id
        eos_ids.update(base_eos if isinstance(base_eos, list) else [base_eos] if base_eos is not None else [])
        export.generation_config.eos_token_id = sorted(eos_ids) if len(eos_ids) > 1 else eos_ids.pop()

        # The module-level lines of the training commits (the records hold definitions only), of every repository.
        module = [
            found
            for repository, commits, paths in commit_sources(manifest, training, {r.commit for r in training})
            for found in module_level.snippets(repository, commits, paths)
        ]
        snippets = corpus_snippets(training, module)
        shapes = snippet_mining.mine(training)

        def fill(folder: Path) -> None:
            export.save_pretrained(folder, safe_serialization=True)
            tokenizer.save_pretrained(folder)
            corpus.write(folder, snippets)  # what the n-gram and retrieval draw on
            tuned = _tune_abstention(folder, manifest, fit, module, validation, training, opts)
            tuned_bodies = bodies.tune_on_validation(
                folder,
                fit,
                module,
                [r for r in training if r.commit in validation],
                opts.tune_bodies,
                opts.tune_bodies_seconds,
                opts.seed,
            )
            # Past messages for drafting new ones, and which source drafts better. Every mined commit's: the
            # held-out ones are the engineer's newest, and the index is what drafts read, not training text
            # (their messages and code stay out of the model; eval drafts each from the commits before it).
            commits.write(folder, commit_index.entries(records))
            # The shapes the engineer keeps writing, as completion snippets (training commits only).
            snippet_file.write(folder, shapes)
            drafting = commit_index.measure(folder, [r for r in training if r.commit in validation])
            # The engineer's recurring rewrites, for next-edit proposals (training commits only).
            habits = edit_patterns.mine(training)
            # How often each class of edit, made once, was made again elsewhere in the same file: the gate of the
            # edit just made (server/edits/propose.py), measured on the training commits as eval measures it.
            sources = commit_sources(manifest, training, {r.commit for r in training})
            edits.write(folder, habits, edit_patterns.measure_classes(sources, opts.seed))
            artifact.write_manifest(
                folder,
                {
                    "prompt_format": prompt.PROMPT_FORMAT_VERSION,
                    "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    "dataset": {
                        "path": str(dataset_dir.resolve()),
                        "manifest_hash": data_hash(manifest),
                        "repository": manifest["repository"],
                        "head": manifest["head"],
                        # Every repository it learned from, the primary (above) first.
                        "repositories": [
                            {"path": e["path"], "head": e["head"]} for e in repositories.entries(manifest)
                        ],
                        "time_span": manifest.get("time_span"),
                        # Which shards it learned from: a later `forget` of records in one makes it stale.
                        "shards": manifest["shards"],
                        "secrets_scrubbed": manifest["counts"].get("secrets", {}),
                    },
                    # What `forget` had removed before this training: the proof travels with the double.
                    tombstones.ARTIFACT_KEY: [t.to_dict() for t in forgotten],
                    "identities": manifest["identities"],
                    "all_authors": manifest["all_authors"],
                    "split": split.to_dict(),
                    "records": {
                        "total": len(records),
                        "heldout": len(heldout),
                        "train": len(fit),
                        "validation": len(check),
                        "near_duplicates_dropped": near_duplicates,
                        "corpus_snippets": len(snippets),
                        "corpus_module_snippets": sum(s.kind == "module" for s in snippets),
                        "snippets": len(shapes),
                        "languages": dict(sorted(Counter(r.language for r in fit).items())),
                    },
                    "training": {
                        **{k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
                        # A base's own size and vocabulary are what was trained, not the from-scratch defaults.
                        **({"size": None, "vocab_size": len(tokenizer)} if base is not None else {}),
                        "learning_rate": learning_rate,
                        "steps_done": fitted.steps,
                        "train_tokens": len(stream),
                        "parameters": parameter_count(export),
                        "device": str(run.device),
                        "world_size": run.world_size,
                        "base": base_identity(base) if base else None,
                        "finetune": method,
                        "rehearsal": rehearsed.to_dict(),
                    },
                    "validation_loss": fitted.best_validation_loss,
                    "abstention": tuned.to_dict() if tuned is not None else None,
                    BODIES_KEY: tuned_bodies.to_dict() if tuned_bodies is not None else None,
                    commit_index.MANIFEST_KEY: drafting,
                    languages.MANIFEST_KEY: (
                        languages.choose(Counter(r.language for r in fit), base_losses, double_losses)
                        if base is not None
                        else None
                    ),
                    "edit_patterns": edit_patterns.summary(habits),
                    artifact.FILES: artifact.member_hashes(folder),
                },
            )

        previous = artifact.current_artifact(manifest["repository"]) if opts.out is None else None
        loop.publish(out, fill, work)
        if opts.out is None:
            artifact.mark_current(out)
            # The server looks a double up by the repository it has open: any of the dataset's will find it.
            for path in repositories.paths(manifest)[1:]:
                artifact.mark_current_of(path, out)
            if previous is not None:  # wherever else the replaced double was served from (your default)
                artifact.repoint(previous, out)
    return TrainResult(out, fitted.steps, fitted.best_validation_loss, len(stream), time.monotonic() - started)
