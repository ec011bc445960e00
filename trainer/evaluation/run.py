"""`codedouble eval`: the double, its parts and the baselines on the same held-out samples, in one run."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from codedouble.server.contract import artifact as artifacts
from codedouble.server.contract.errors import CodedoubleError
from codedouble.server.engine import engine as engines
from codedouble.server.engine.document import Request
from codedouble.server.engine.engine import System
from codedouble.server.engine.neural import Neural
from codedouble.trainer.evaluation import metrics, replay, summary, tasks
from codedouble.trainer.mining import dataset
from codedouble.trainer.training.split import Split

EXAMPLES = 3  # sample predictions per task kept for report.md


class EvalError(CodedoubleError):
    """A problem the user must fix; the message says what and how."""


@dataclass(frozen=True)
class EvalOptions:
    compare: tuple[Path, ...] = ()
    base: Path | None = None  # also score this base alone (no personal data); the CLI passes the shipped one
    line_samples: int = 200
    block_samples: int = 30
    replay_lines: int = 20  # lines typed keystroke by keystroke: each costs about as many requests as characters
    seed: int = 0
    threads: int | None = None


class _Renamed:
    """Another artifact's model, named after its folder: the no-personalisation control."""

    def __init__(self, model: Neural, name: str, description: str) -> None:
        self.model, self.name, self.description = model, name, description

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:
        return self.model.complete(request, cancelled)


def _heldout(artifact: Path, manifest: dict) -> tuple[list, Path, int]:  # type: ignore[type-arg]
    data = Path(manifest["dataset"]["path"])
    if dataset.read_manifest(data) is None:
        raise EvalError(f"the dataset this double was trained on is gone ({data}); eval needs its held-out records")
    split = Split.from_dict(manifest["split"])
    if not split.heldout_commits:
        raise EvalError(f"{artifact} was trained with nothing held out (--heldout 0): there is nothing to evaluate on")
    records = [r for r in dataset.load_records(data) if split.is_heldout(r)]
    repository = Path(manifest["dataset"]["repository"])
    if not repository.exists():
        raise EvalError(f"the mined repository is gone ({repository}); eval reads the held-out files from it")
    return records, repository, len(split.heldout_commits)


def evaluate(artifact: Path, opts: EvalOptions, progress: bool = True) -> summary.EvalReport:
    from tqdm import tqdm

    try:
        manifest = artifacts.read_manifest(artifact)
        records, repository, heldout_commits = _heldout(artifact, manifest)
        samples = tasks.sample(records, repository, opts.line_samples, opts.block_samples, opts.seed)
        heldout_shas = Split.from_dict(manifest["split"]).heldout_commits
        mined = dataset.read_manifest(Path(manifest["dataset"]["path"])) or {}
        typed_lines = replay.lines(repository, heldout_shas, opts.replay_lines, opts.seed, dataset.path_filter(mined))
        if not samples:
            raise EvalError(
                f"the {heldout_commits} held-out commits hold no code to complete (only deletions, or files that cannot be read)"
            )
        engine = engines.load(artifact, opts.threads)
        systems: list[System] = list(engine.systems)
        if opts.base is not None:
            systems.append(
                _Renamed(
                    engines.load_model(opts.base, opts.threads),
                    "base",
                    f"the pretrained base alone ({opts.base.name}): no personal data",
                )
            )
        for other in opts.compare:
            name = f"compare:{other.name}"
            systems.append(
                _Renamed(
                    engines.load_model(other, opts.threads),
                    name,
                    f"the model of {other} (another history): no personalisation",
                )
            )
    except OSError as exc:
        raise EvalError(str(exc)) from exc

    # One untimed completion per system first: the first forward pass pays for allocation and kernel choice.
    for system in systems:
        system.complete(Request(samples[0].path, samples[0].prefix, samples[0].suffix, samples[0].task))  # type: ignore[arg-type]
    outcomes: list[summary.Outcome] = []
    examples: list[dict[str, str]] = []
    for sample in tqdm(samples, desc="eval", unit="sample", disable=None if progress else True):
        request = Request(sample.path, sample.prefix, sample.suffix, sample.task)  # type: ignore[arg-type]
        predictions: dict[str, str] = {}
        for system in systems:
            started = time.perf_counter()
            prediction = system.complete(request)
            elapsed = (time.perf_counter() - started) * 1000
            predictions[system.name] = prediction
            outcomes.append(
                summary.Outcome(
                    system.name,
                    sample.task,
                    sample.language,
                    sample.id,
                    prediction,
                    metrics.exact_match(prediction, sample.target, sample.task),
                    metrics.edit_similarity(prediction, sample.target, sample.task),
                    elapsed,
                )
            )
        if sum(e["task"] == sample.task for e in examples) < EXAMPLES:
            examples.append(
                {
                    "task": sample.task,
                    "language": sample.language,
                    "prompt_tail": sample.prefix[-200:],
                    "target": sample.target,
                    **predictions,
                }
            )
    typed: list[replay.Typed] = []
    if typed_lines:
        # The engine is typed against as the server shows it: only what clears the double's threshold. The
        # others show whatever they have, which is what abstention is measured against.
        shown: dict[str, Callable[[Request], str]] = {engine.combined.name: lambda r: engine.propose(r).text}
        for system in tqdm(systems, desc="typing replay", unit="system", disable=None if progress else True):
            complete = shown.get(system.name, system.complete)
            for line in typed_lines:
                memo: dict[int, tuple[str, float]] = {}  # both users type the same prefixes until one accepts
                for user in replay.USERS:
                    typed.append(replay.type_line(complete, system.name, line, user, memo=memo))
    names = [s.name for s in systems]
    counts: dict[str, int] = {}
    for sample in samples:
        counts[sample.task] = counts.get(sample.task, 0) + 1
    return summary.EvalReport(
        artifact=str(artifact),
        repository=str(repository),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        seed=opts.seed,
        heldout_commits=heldout_commits,
        samples=counts,
        systems=tuple(names),
        descriptions={s.name: s.description for s in systems},
        default_system=engine.combined.name,
        rows=tuple(summary.aggregate(outcomes, names)),
        machine=_machine(opts.threads),
        examples=tuple(examples),
        replay_lines=len(typed_lines),
        replay=tuple(replay.aggregate(typed, names)),
    )


def _machine(threads: int | None) -> str:
    import torch

    return f"{os.cpu_count()} CPU cores, torch {torch.__version__} on CPU, {threads or torch.get_num_threads()} threads"


def default_report_dir(artifact: Path) -> Path:
    return artifact / "eval"
