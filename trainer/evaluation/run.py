"""`codedouble eval`: the double, its parts and the baselines on the same held-out samples, in one run."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from codedouble.server.contract import artifact as artifacts
from codedouble.server.contract import edits as contract_edits
from codedouble.server.contract.errors import CodedoubleError
from codedouble.server.edits import propose
from codedouble.server.engine import engine as engines
from codedouble.server.engine.document import Request
from codedouble.server.engine.engine import System
from codedouble.server.engine.neural import Neural
from codedouble.server.engine.workspace import WorkspaceContext
from codedouble.trainer.evaluation import commit_task, metrics, next_edit, replay, summary, tasks
from codedouble.trainer.evaluation.context import RepositoryWorkspaces
from codedouble.trainer.mining import dataset, repositories
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
    # Every system sees the repository at the held-out commit's parent as workspace context, as the server
    # does; engine, ngram and bm25 are also scored without it (`<name>/no-workspace`) in the same run.
    workspace: bool = True
    commit_samples: int = 100  # held-out commits whose messages are drafted (0 skips the task)
    edit_samples: int = 100  # held-out files whose changes after the first hunk are proposed (0 skips the task)


NO_WORKSPACE = "/no-workspace"


class _NoWorkspace:
    """A system asked without workspace context: the figure workspace context is measured against."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.name = system.name + NO_WORKSPACE
        self.description = f"{system.name} without workspace context (only its corpus and the file itself)"

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:
        return self.system.complete(replace(request, workspace=None), cancelled)


class _Renamed:
    """Another artifact's model, named after its folder: the no-personalisation control."""

    def __init__(self, model: Neural, name: str, description: str) -> None:
        self.model, self.name, self.description = model, name, description

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:
        return self.model.complete(request, cancelled)


def _heldout(artifact: Path, manifest: dict) -> tuple[list, dict[str, Any], int]:  # type: ignore[type-arg]
    """The held-out records, the dataset's manifest and the number of held-out commits; every repository the
    records come from must still be there (eval reads their files)."""
    data = Path(manifest["dataset"]["path"])
    mined = dataset.read_manifest(data)
    if mined is None:
        raise EvalError(f"the dataset this double was trained on is gone ({data}); eval needs its held-out records")
    split = Split.from_dict(manifest["split"])
    if not split.heldout_commits:
        raise EvalError(f"{artifact} was trained with nothing held out (--heldout 0): there is nothing to evaluate on")
    records = [r for r in dataset.load_records(data) if split.is_heldout(r)]
    for repository in sorted({r.repository for r in records}):
        if not Path(repository).exists():
            raise EvalError(
                f"the mined repository is gone ({repository}); eval reads the held-out files from it: put it back "
                "there, or mine the dataset again without it and train a new double"
            )
    return records, mined, len(split.heldout_commits)


def evaluate(artifact: Path, opts: EvalOptions, progress: bool = True) -> summary.EvalReport:
    from tqdm import tqdm

    try:
        manifest = artifacts.read_manifest(artifact)
        records, mined, heldout_commits = _heldout(artifact, manifest)
        repository = Path(manifest["dataset"]["repository"])  # the primary: the report is named after it
        # A double trained on several repositories is scored on each one's held-out commits, read from it.
        samples = tasks.sample(records, opts.line_samples, opts.block_samples, opts.seed)
        heldout_shas = Split.from_dict(manifest["split"]).heldout_commits
        sources = [
            (Path(path), commits, dataset.path_filter(mined, path))
            for path, commits in repositories.commits_by_repository(records, heldout_shas).items()
        ]
        typed_lines = replay.lines_of(sources, opts.replay_lines, opts.seed)
        names = repositories.names(mined)
        if not samples and (opts.line_samples or opts.block_samples):
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
        if opts.workspace:
            systems += [_NoWorkspace(engine.combined), _NoWorkspace(engine.ngram), _NoWorkspace(engine.bm25)]
    except OSError as exc:
        raise EvalError(str(exc)) from exc

    # One untimed completion per system first: the first forward pass pays for allocation and kernel choice.
    for system in systems if samples else ():  # (only other tasks asked for: nothing to warm up for)
        system.complete(Request(samples[0].path, samples[0].prefix, samples[0].suffix, samples[0].task))  # type: ignore[arg-type]
    outcomes: list[summary.Outcome] = []
    shown: list[summary.Shown] = []
    examples: list[dict[str, str]] = []
    workspaces = RepositoryWorkspaces() if opts.workspace else None
    # In commit order: the samples of one commit share its parent's workspace, built once.
    ordered = sorted(samples, key=lambda s: (s.repository, s.commit))
    for sample in tqdm(ordered, desc="eval", unit="sample", disable=None if progress else True):
        workspace = workspaces(sample.repository, sample.commit, sample.path) if workspaces is not None else None
        request = Request(sample.path, sample.prefix, sample.suffix, sample.task, workspace)  # type: ignore[arg-type]
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
                    names.get(sample.repository, Path(sample.repository).name),
                )
            )
        # What the server would show here: the forced rows above keep every answer, comparable with earlier runs.
        offered = engine.propose(request).text
        shown.append(
            summary.Shown(
                sample.task,
                bool(offered.strip()),
                metrics.exact_match(offered, sample.target, sample.task),
                metrics.edit_similarity(offered, sample.target, sample.task),
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
        asked: dict[str, Callable[[Request], str]] = {
            engine.combined.name: lambda r: engine.propose(r).text,
            engine.combined.name + NO_WORKSPACE: lambda r: engine.propose(replace(r, workspace=None)).text,
        }
        for line in tqdm(
            sorted(typed_lines, key=lambda line: (line.repository, line.commit)),
            desc="typing replay",
            unit="line",
            disable=None if progress else True,
        ):
            workspace = workspaces(line.repository, line.commit, line.path) if workspaces is not None else None
            name = names.get(line.repository, Path(line.repository).name)
            for system in systems:
                complete = asked.get(system.name, system.complete)
                memo: dict[int, tuple[str, float]] = {}  # both users type the same prefixes until one accepts
                for user in replay.USERS:
                    typed.append(
                        replay.type_line(
                            _with_workspace(complete, workspace), system.name, line, user, memo=memo, repository=name
                        )
                    )
    if workspaces is not None:
        workspaces.close()
    drafted = None
    if opts.commit_samples:
        drafted = commit_task.evaluate(
            artifact, engine.model, commit_task.sample(records, opts.commit_samples, opts.seed), progress
        )
    edit_rows: tuple[summary.EditRow, ...] = ()
    chosen = next_edit.samples(sources, opts.edit_samples, opts.seed)
    if chosen:
        shipped = contract_edits.load_all(artifact) or ([], None)
        edit_rows = next_edit.evaluate(chosen, shipped[0], propose.MIN_PRECISION, shipped[1], progress)
    system_names = [s.name for s in systems]
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
        systems=tuple(system_names),
        descriptions={s.name: s.description for s in systems},
        default_system=engine.combined.name,
        rows=tuple(summary.aggregate(outcomes, system_names)),
        machine=_machine(opts.threads),
        examples=tuple(examples),
        replay_lines=len(typed_lines),
        replay=tuple(replay.aggregate(typed, system_names)),
        repositories={name: path for path, name in names.items()},
        commit_samples=drafted.rows[0].samples if drafted and drafted.rows else 0,
        commit_rows=drafted.rows if drafted else (),
        commit_default=drafted.default if drafted else "",
        commit_examples=drafted.examples if drafted else (),
        edit_samples=len(chosen),
        edit_rows=edit_rows,
        abstention=tuple(summary.abstained(engine.combined.name, shown)),
    )


def _with_workspace(complete: Callable[[Request], str], workspace: WorkspaceContext | None) -> Callable[[Request], str]:
    return lambda request: complete(replace(request, workspace=workspace))


def _machine(threads: int | None) -> str:
    import torch

    return f"{os.cpu_count()} CPU cores, torch {torch.__version__} on CPU, {threads or torch.get_num_threads()} threads"


def default_report_dir(artifact: Path) -> Path:
    return artifact / "eval"
