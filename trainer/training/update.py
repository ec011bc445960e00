"""`codedouble update`: the double follows the engineer's new commits within minutes, without a full retrain.

1. Mine the new commits into the double's dataset (incremental, as `mine` does).
2. At once, a new double: the current one's weights with the new code added to its completion corpus (the
   n-gram and retrieval see it without any training), made current. This is all the post-commit hook runs.
3. Unless --no-train, fine-tune that double's weights on the new records, with older training records
   replayed beside them so it does not forget, for a bounded time (resumable), and put the result in place
   of step 2's double.

The double it replaced stays on disk for `codedouble rollback`. Held-out honesty: the split is the original
double's, so new records never come from its held-out commits, and new code that nearly copies held-out code
(a later change to a held-out function shows its text) is dropped as `train` drops it: `codedouble eval`
still scores only commits the double never saw.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codedouble.server.contract import artifact, atomic, corpus, tombstones
from codedouble.server.contract import commits as commit_log
from codedouble.server.contract import snippets as snippet_file
from codedouble.server.contract.errors import CodedoubleError
from codedouble.trainer.mining import dataset, repositories
from codedouble.trainer.mining.miner import MineOptions, mine
from codedouble.trainer.mining.records import ChangeRecord
from codedouble.trainer.snippets import mine as snippet_mining
from codedouble.trainer.training import checkpoint, commit_index, loop, module_level
from codedouble.trainer.training.examples import ExampleMix, corpus_snippets, examples
from codedouble.trainer.training.model import load_base
from codedouble.trainer.training.split import Split, drop_near_duplicates, validation_commits
from codedouble.trainer.training.train import commit_sources, data_hash

LOCK = ".update.lock"  # in the dataset: one update at a time


class UpdateError(CodedoubleError):
    """An update that cannot run as asked; nothing was changed."""


@dataclass(frozen=True)
class UpdateOptions:
    train: bool = True  # False: only mine and add the new code to the corpus (the post-commit hook)
    minutes: float = 2.0  # of fine-tuning, wall clock
    steps: int | None = None  # instead of minutes
    # Older training records replayed per new one: fine-tuning on a handful of new definitions alone would
    # pull the whole model towards them (the "repeats itself" failure of a full fine-tune on little data).
    replay: float = 3.0
    # A third of `train`'s full fine-tune rate: the weights are already fitted to this engineer.
    learning_rate: float = 3e-4
    batch_size: int = 8
    warmup_steps: int = 5
    eval_every: int = 20
    eval_batches: int = 4
    seed: int = 0
    resume: bool = False
    device: str = "auto"


@dataclass
class UpdateResult:
    artifact: Path  # the double now current (the previous one if nothing was new)
    previous: Path | None
    new_commits: int
    new_records: int
    corpus_added: int
    leaked_dropped: int = 0
    trained_steps: int = 0
    validation_loss: float | None = None
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _locked(dataset_dir: Path) -> Iterator[None]:
    """One update of a dataset at a time: two quick commits start two hooks; the second waits, then finds the
    first's work done."""
    with open(dataset_dir / LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _root(path: Path) -> Path:
    """The working tree around `path`, as `codedouble mine` and the server name a repository."""
    from codedouble.trainer.mining.gitio import GitError, repository

    try:
        with repository(path) as repo:
            tree = repo.working_tree_dir
    except GitError as exc:
        raise UpdateError(f"name the dataset, or run this inside a repository with a double: {exc}") from None
    if tree is None:
        raise UpdateError(f"{path} is a bare repository: name the dataset instead")
    return Path(tree).resolve()


def locate(dataset_dir: Path | None, repository: Path | None) -> tuple[Path, Path]:
    """The dataset and its current double: from DATASET, or from the repository the command runs in."""
    if dataset_dir is None:
        root = _root(repository or Path.cwd())
        current = artifact.current_artifact(str(root))
        if current is None:
            raise UpdateError(f"{root} has no double yet: `codedouble mine` and `codedouble train` it first")
        dataset_dir = Path(artifact.read_manifest(current)["dataset"]["path"])
        return dataset_dir, current
    manifest = dataset.read_manifest(dataset_dir)
    if manifest is None:
        raise UpdateError(f"{dataset_dir} holds no codedouble dataset; run `codedouble mine` first")
    current = artifact.current_artifact(manifest["repository"])
    if current is None:
        raise UpdateError(f"{dataset_dir} has no current double yet: run `codedouble train {dataset_dir}` first")
    return dataset_dir, current


def update(
    dataset_dir: Path | None, opts: UpdateOptions, repository: Path | None = None, progress: bool = True
) -> UpdateResult:
    dataset_dir, _ = locate(dataset_dir, repository)
    with _locked(dataset_dir):
        _, current = locate(dataset_dir, None)  # again: an update that held the lock may have replaced it
        return _update(dataset_dir, current, opts, progress)


def _update(dataset_dir: Path, current: Path, opts: UpdateOptions, progress: bool) -> UpdateResult:
    double = artifact.read_manifest(current)
    _check_double(double, current, dataset_dir)
    if opts.resume:
        return _resume(dataset_dir, current, double, opts, progress)

    # 1. The new commits of every repository of the dataset, mined as `mine` would with each one's options.
    before = dataset.read_manifest(dataset_dir)
    assert before is not None
    new_commits = 0
    for entry in repositories.entries(before) or [before]:
        path = Path(entry.get("path") or entry["repository"])
        new_commits += mine(path, dataset_dir, _mine_options(entry), progress=progress).new_commits
    manifest = dataset.read_manifest(dataset_dir)
    assert manifest is not None
    known = set(double["dataset"]["shards"])
    records = list(dataset.load_records(dataset_dir))
    fresh = [name for name in manifest["shards"] if name not in known]
    new = [r for name in fresh for r in _shard_records(dataset_dir, name)]
    if not new:
        return UpdateResult(current, None, new_commits, 0, 0, notes=["up to date: nothing new to add"])

    # Held-out honesty: the original split stands; new code must not leak held-out code.
    split = Split.from_dict(double["split"])
    heldout = [r for r in records if split.is_heldout(r)]
    # Every new commit's message goes into the commit index, also where its code is dropped below: the index
    # is what drafts read, not what the model trains on.
    mined_new = new
    new, leaked = drop_near_duplicates([r for r in new if not split.is_heldout(r)], heldout)
    trained, _ = drop_near_duplicates([r for r in records if not split.is_heldout(r)], heldout)

    # 2. The new code in the corpus at once: a new double beside the current one, the same weights.
    module = [
        found
        for repository, commits, paths in commit_sources(manifest, new, {r.commit for r in new})
        for found in module_level.snippets(repository, commits, paths)
    ]
    old_corpus = corpus.load(current)
    seen = {s.text for s in old_corpus}
    added = [s for s in corpus_snippets(new, module) if s.text not in seen]
    out = _new_name(current)
    summary = {
        "of": current.name,
        "commits": sorted({r.commit for r in new}),
        "records": len(new),
        "corpus_added": len(added),
        "near_duplicates_dropped": leaked,
        "trained": False,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    quick = _manifest(double, manifest, dataset_dir, summary, len(old_corpus) + len(added))
    with atomic.directory(out) as folder:
        for name in artifact.member_hashes(current):
            if name not in (corpus.CORPUS, commit_log.COMMITS, snippet_file.SNIPPETS):
                _link(current / name, folder / name)
        # Snippets mined again from every training-split record, old and new: a shape the new commits wrote
        # once more may now reach the commits a snippet needs, and its counts and dates change.
        snippet_file.write(folder, snippet_mining.mine(trained))
        corpus.write(folder, [*old_corpus, *added])
        # The new commits' messages join the commit index too (a double from before it has none to extend).
        old_index = commit_log.load(current)
        if old_index is not None:
            known = {e.commit for e in old_index}
            added_commits = (e for e in commit_index.entries(mined_new) if e.commit not in known)
            commit_log.write(folder, [*old_index, *added_commits])
        artifact.write_manifest(folder, {**quick, artifact.FILES: artifact.member_hashes(folder)})
    artifact.repoint(current, out)
    result = UpdateResult(out, current, new_commits, len(new), len(added), leaked)
    if opts.train:
        _fine_tune(dataset_dir, out, records, new, split, opts, progress, result)
    _prune(out)
    return result


def _check_double(double: dict[str, Any], current: Path, dataset_dir: Path) -> None:
    data = double.get("dataset") or {}
    if data.get("path") != str(dataset_dir.resolve()):
        raise UpdateError(
            f"the current double {current} was trained on {data.get('path')}, not {dataset_dir}: "
            f"update that dataset, or `codedouble train {dataset_dir}` first"
        )
    if "shards" not in data:
        raise UpdateError(f"{current} was trained by an older codedouble: `codedouble train {dataset_dir}` again")
    mark = tombstones.stale(double)
    if mark is not None:
        raise UpdateError(
            f"{current} was trained on data you removed on {str(mark.get('since'))[:10]}; an update would keep it: "
            f"`codedouble train {dataset_dir}` again"
        )


def _mine_options(manifest: dict[str, Any]) -> MineOptions:
    saved = manifest.get("options", {})
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}
    return MineOptions(**values)


def _shard_records(dataset_dir: Path, name: str) -> Iterator[ChangeRecord]:
    for line in dataset.shard_lines(dataset_dir, name):
        yield ChangeRecord.from_dict(json.loads(line))


def _new_name(current: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out, n = current.parent / stamp, 1
    while out.exists() or out == current:
        out, n = current.parent / f"{stamp}-{n}", n + 1
    return out


def _link(source: Path, target: Path) -> None:
    """A hard link where the file system allows one (every write replaces a file, none edits one in place, so
    the doubles sharing it never see each other's changes), else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _manifest(
    double: dict[str, Any], manifest: dict[str, Any], dataset_dir: Path, summary: dict[str, Any], corpus_size: int
) -> dict[str, Any]:
    kept = {k: v for k, v in double.items() if k not in {"tool", "artifact_format", artifact.FILES}}
    records = dict(kept.get("records") or {})
    records["corpus_snippets"] = corpus_size
    return {
        **kept,
        "created": summary["created"],
        "dataset": {
            **kept["dataset"],
            "manifest_hash": data_hash(manifest),
            "head": manifest["head"],
            "repositories": [{"path": e["path"], "head": e["head"]} for e in repositories.entries(manifest)],
            "time_span": manifest.get("time_span"),
            "shards": manifest["shards"],
            "secrets_scrubbed": manifest["counts"].get("secrets", {}),
        },
        tombstones.ARTIFACT_KEY: manifest.get(tombstones.DATASET_KEY, []),
        "records": records,
        "previous": summary["of"],
        "updates": [*(kept.get("updates") or []), summary],
    }


def _fine_tune(
    dataset_dir: Path,
    out: Path,
    records: list[ChangeRecord],
    new: list[ChangeRecord],
    split: Split,
    opts: UpdateOptions,
    progress: bool,
    result: UpdateResult,
) -> None:
    """Step 3: the quick double's weights fine-tuned on the new records and a replay of older ones; the
    result replaces the quick double in place (same name, so every pointer to it stays right)."""
    new_commits = {r.commit for r in new}
    older = [r for r in records if not split.is_heldout(r) and r.commit not in new_commits]
    block = int(artifact.read_manifest(out)["training"].get("block_size", 256))
    # Validation: older training code the update does not replay. Best weights are the ones that did not get
    # worse on it, so an update never ships a model that forgot the engineer's older code.
    held = validation_commits(older, 0.05, min_chars=16 * block * opts.eval_batches)
    rng = random.Random(opts.seed)
    pool = [r for r in older if r.commit not in held]
    replayed = rng.sample(pool, min(len(pool), int(len(new) * opts.replay)))
    check = [r for r in older if r.commit in held] or new
    loop.quiet_transformers()
    with loop.started(opts.device) as run:
        model, tokenizer, _ = load_base(out)
        stream = loop.token_stream(tokenizer, examples([*new, *replayed], ExampleMix(), opts.seed))
        val_stream = loop.token_stream(tokenizer, examples(check, ExampleMix(), opts.seed + 1))
        block = min(block, getattr(model.config, "max_position_embeddings", block))
        if len(stream) <= block * 2:
            result.notes.append("too little new text to fine-tune on: the new code is in the corpus only")
            return
        if len(val_stream) <= block:
            val_stream = stream
        work = loop.work_folder(out, opts.resume, run)
        loop_opts = loop.LoopOptions(
            steps=opts.steps,
            minutes=opts.minutes,
            batch_size=opts.batch_size,
            block_size=block,
            learning_rate=opts.learning_rate,
            warmup_steps=opts.warmup_steps,
            eval_every=opts.eval_every,
            eval_batches=opts.eval_batches,
            seed=opts.seed,
            resume=opts.resume,
        )
        started = time.monotonic()
        fitted = loop.fit(model, stream, val_stream, loop_opts, work, run, progress, desc="updating")
        quick = artifact.read_manifest(out)
        model.to("cpu")

        def fill(folder: Path) -> None:
            model.save_pretrained(folder, safe_serialization=True)
            tokenizer.save_pretrained(folder)
            _link(out / corpus.CORPUS, folder / corpus.CORPUS)
            if (out / commit_log.COMMITS).is_file():
                _link(out / commit_log.COMMITS, folder / commit_log.COMMITS)
            if (out / snippet_file.SNIPPETS).is_file():
                _link(out / snippet_file.SNIPPETS, folder / snippet_file.SNIPPETS)
            kept = {k: v for k, v in quick.items() if k not in {"tool", "artifact_format", artifact.FILES}}
            summary = {
                **kept["updates"][-1],
                "trained": True,
                "steps": fitted.steps,
                "seconds": round(time.monotonic() - started, 1),
                "replayed_records": len(replayed),
                "validation_loss": fitted.best_validation_loss,
            }
            kept["updates"] = [*kept["updates"][:-1], summary]
            artifact.write_manifest(folder, {**kept, artifact.FILES: artifact.member_hashes(folder)})

        if run.rank == 0:
            loop.publish(out, fill, work)
    result.trained_steps = fitted.steps
    result.validation_loss = fitted.best_validation_loss


def _resume(
    dataset_dir: Path, current: Path, double: dict[str, Any], opts: UpdateOptions, progress: bool
) -> UpdateResult:
    """Finish the fine-tuning an interrupted update started (its quick double is current, untrained)."""
    last = (double.get("updates") or [{}])[-1]
    work = current.with_name(f".{current.name}.training")
    if last.get("trained", True) or not checkpoint.exists(work / "last"):
        raise UpdateError(f"--resume: {current} has no interrupted update to finish")
    records = list(dataset.load_records(dataset_dir))
    commits = set(last["commits"])
    new = [r for r in records if r.commit in commits]
    split = Split.from_dict(double["split"])
    previous = current.parent / str(double.get("previous"))
    result = UpdateResult(current, previous, 0, len(new), int(last.get("corpus_added", 0)))
    _fine_tune(dataset_dir, current, records, new, split, replace(opts, resume=True), progress, result)
    return result


def _prune(current: Path) -> None:
    """Drop the doubles earlier updates made that nothing serves and `rollback` would not return to: a hook
    updating after every commit would otherwise leave a double each time (hard links share the unchanged
    files, but a fine-tune writes new weights). Doubles `train` made are the user's and stay."""
    keep = {current.resolve()}
    manifest = artifact.read_manifest(current)
    if manifest.get("previous"):
        keep.add((current.parent / manifest["previous"]).resolve())
    keep.update(named.resolve() for _, named in artifact.served())
    for folder in current.parent.iterdir():
        if folder.name.startswith(".") or folder.resolve() in keep or not (folder / artifact.MANIFEST).is_file():
            continue
        with contextlib.suppress(artifact.ArtifactError, OSError):
            if artifact.read_manifest(folder).get("updates"):
                shutil.rmtree(folder)


def rollback(repository: Path | None = None, dataset_dir: Path | None = None) -> tuple[Path, Path]:
    """Make the double the current one replaced its current again; returns (from, to)."""
    _, current = locate(dataset_dir, repository)
    previous = artifact.read_manifest(current).get("previous")
    target = current.parent / previous if previous else None
    if target is None or not (target / artifact.MANIFEST).is_file():
        raise UpdateError(f"{current} has no previous double to roll back to (only `codedouble update` leaves one)")
    artifact.repoint(current, target)
    return current, target
