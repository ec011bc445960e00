"""Per-sample outcomes folded into per-system rows, and the report that `codedouble eval` writes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from codedouble.server.stats import percentile
from codedouble.trainer.evaluation.replay import ReplayRow

ALL = "all"  # the language of a task's overall row
TASK_ORDER = ("line", "block")  # shown first, in this order; any other task follows alphabetically


@dataclass(frozen=True)
class Outcome:
    system: str
    task: str
    language: str
    sample_id: str
    prediction: str
    exact_match: bool
    edit_similarity: float
    latency_ms: float
    repository: str = ""  # the sample's repository, by its display name


@dataclass(frozen=True)
class Row:
    system: str
    task: str
    language: str  # ALL for the task's overall row
    samples: int
    exact_match: float  # fraction 0..1
    edit_similarity: float  # mean 0..1
    p50_ms: float
    p95_ms: float
    repository: str = ALL  # a repository's display name for its own row, when the samples span several


def task_key(task: str) -> tuple[int, str]:
    return (TASK_ORDER.index(task), "") if task in TASK_ORDER else (len(TASK_ORDER), task)


def language_key(language: str) -> tuple[bool, str]:
    return (language != ALL, language)


def _row(system: str, task: str, language: str, outcomes: Sequence[Outcome], repository: str = ALL) -> Row:
    n = len(outcomes)
    latencies = [o.latency_ms for o in outcomes]
    return Row(
        system=system,
        task=task,
        language=language,
        samples=n,
        exact_match=sum(o.exact_match for o in outcomes) / n,
        edit_similarity=sum(o.edit_similarity for o in outcomes) / n,
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
        repository=repository,
    )


def aggregate(outcomes: Iterable[Outcome], systems: Sequence[str]) -> list[Row]:
    """One row per (system, task) over all languages, plus one per language where a task spans several.

    Ordered by task, then language (ALL first), then the order of `systems`; a system with no outcomes for a
    task gets no row there rather than a row of zeros that would read as a score. When the outcomes span
    several repositories, each task's rows end with one per repository (over all its languages).
    """
    groups: dict[tuple[str, str, str], list[Outcome]] = defaultdict(list)
    by_repository: dict[tuple[str, str, str], list[Outcome]] = defaultdict(list)
    languages: dict[str, set[str]] = defaultdict(set)
    repositories: set[str] = set()
    for outcome in outcomes:
        if outcome.system not in systems:
            raise ValueError(f"outcome for unknown system {outcome.system!r}; systems are {list(systems)}")
        groups[(outcome.system, outcome.task, ALL)].append(outcome)
        groups[(outcome.system, outcome.task, outcome.language)].append(outcome)
        by_repository[(outcome.system, outcome.task, outcome.repository)].append(outcome)
        languages[outcome.task].add(outcome.language)
        repositories.add(outcome.repository)
    rows: list[Row] = []
    for task in sorted(languages, key=task_key):
        shown = [ALL] + (sorted(languages[task]) if len(languages[task]) > 1 else [])
        for language in shown:
            for system in systems:
                members = groups.get((system, task, language))
                if members:
                    rows.append(_row(system, task, language, members))
        for repository in sorted(repositories) if len(repositories) > 1 else []:
            for system in systems:
                members = by_repository.get((system, task, repository))
                if members:
                    rows.append(_row(system, task, ALL, members, repository))
    return rows


@dataclass(frozen=True)
class Shown:
    """What the default engine shows on one sample, abstention applied (empty: it declined)."""

    task: str
    shown: bool
    exact_match: bool
    edit_similarity: float


@dataclass(frozen=True)
class AbstentionRow:
    """The default engine with abstention on one task: how many samples it declined, and how right the rest
    were (the forced rows score every sample, so a declined one counts there as the engine's forced answer)."""

    system: str
    task: str
    samples: int
    declined: int
    exact_match: float | None  # of the shown, 0..1 (the precision); None when nothing was shown
    edit_similarity: float | None


def abstained(system: str, shown: Iterable[Shown]) -> list[AbstentionRow]:
    """One row per task, in task order."""
    by_task: dict[str, list[Shown]] = defaultdict(list)
    for s in shown:
        by_task[s.task].append(s)
    rows = []
    for task in sorted(by_task, key=task_key):
        members = by_task[task]
        kept = [s for s in members if s.shown]
        rows.append(
            AbstentionRow(
                system,
                task,
                len(members),
                len(members) - len(kept),
                sum(s.exact_match for s in kept) / len(kept) if kept else None,
                sum(s.edit_similarity for s in kept) / len(kept) if kept else None,
            )
        )
    return rows


@dataclass(frozen=True)
class CommitRow:
    system: str
    samples: int
    b_norm: float  # mean, 0..1
    rouge_l: float
    first_word: float  # share of drafts whose first word is the engineer's
    first_two_words: float
    edit_similarity: float
    p50_ms: float


@dataclass(frozen=True)
class EditRow:
    """One system of the next-edit task (next_edit.py)."""

    system: str
    samples: int
    hunks: int  # hunks still to make after the first
    proposals: int
    located: int  # proposals within ±NEAR lines of a hunk still to make
    exact: int  # proposals that are part of a hunk made exactly
    hunks_found: int  # hunks with a proposal within ±NEAR lines
    hunks_exact: int  # hunks the proposals made exactly
    p50_ms: float
    p95_ms: float

    @property
    def precision(self) -> float | None:
        return self.located / self.proposals if self.proposals else None

    @property
    def exact_precision(self) -> float | None:
        return self.exact / self.proposals if self.proposals else None

    @property
    def location_recall(self) -> float:
        return self.hunks_found / self.hunks if self.hunks else 0.0

    @property
    def edit_em(self) -> float:
        return self.hunks_exact / self.hunks if self.hunks else 0.0


@dataclass(frozen=True)
class EvalReport:
    artifact: str
    repository: str
    created: str  # ISO 8601
    seed: int
    heldout_commits: int
    samples: dict[str, int]  # task -> number of samples
    systems: tuple[str, ...]
    descriptions: dict[str, str]  # system -> one-line description
    default_system: str  # the engine `codedouble serve` uses
    rows: tuple[Row, ...]
    machine: str  # e.g. "2 CPU cores, cpu"
    examples: tuple[dict[str, str], ...] = ()  # keys: task, language, prompt_tail, target, and one per system
    replay_lines: int = 0  # lines of the held-out commits typed keystroke by keystroke
    replay: tuple[ReplayRow, ...] = ()
    repositories: dict[str, str] = field(default_factory=dict)  # display name -> path, of every repository
    # The commit-message task: held-out commits' messages drafted by each source (commit_task.py).
    commit_samples: int = 0
    commit_rows: tuple[CommitRow, ...] = ()
    commit_default: str = ""  # the source `codedouble commit-message` drafts with
    commit_examples: tuple[dict[str, str], ...] = ()  # commit, message, and one draft per system
    # The next-edit task: held-out files' changes after their first hunk, proposed by each system (next_edit.py).
    edit_samples: int = 0
    edit_rows: tuple[EditRow, ...] = ()
    # The default engine as the server shows it (abstention applied) on the next-line and block samples.
    abstention: tuple[AbstentionRow, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["systems"] = list(self.systems)
        data["rows"] = [asdict(r) for r in self.rows]
        data["examples"] = [dict(e) for e in self.examples]
        data["replay"] = [asdict(r) for r in self.replay]
        data["commit_rows"] = [asdict(r) for r in self.commit_rows]
        data["commit_examples"] = [dict(e) for e in self.commit_examples]
        data["edit_rows"] = [
            {
                **asdict(r),
                "precision": r.precision,
                "exact_precision": r.exact_precision,
                "location_recall": r.location_recall,
                "edit_em": r.edit_em,
            }
            for r in self.edit_rows
        ]
        data["abstention"] = [asdict(r) for r in self.abstention]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalReport:
        return cls(
            artifact=data["artifact"],
            repository=data["repository"],
            created=data["created"],
            seed=int(data["seed"]),
            heldout_commits=int(data["heldout_commits"]),
            samples={str(k): int(v) for k, v in data["samples"].items()},
            systems=tuple(data["systems"]),
            descriptions=dict(data["descriptions"]),
            default_system=data["default_system"],
            rows=tuple(Row(**r) for r in data["rows"]),
            machine=data["machine"],
            examples=tuple(dict(e) for e in data.get("examples", ())),
            replay_lines=int(data.get("replay_lines", 0)),
            replay=tuple(ReplayRow(**r) for r in data.get("replay", ())),
            repositories=dict(data.get("repositories", {})),
            commit_samples=int(data.get("commit_samples", 0)),
            commit_rows=tuple(CommitRow(**r) for r in data.get("commit_rows", ())),
            commit_default=str(data.get("commit_default", "")),
            commit_examples=tuple(dict(e) for e in data.get("commit_examples", ())),
            edit_samples=int(data.get("edit_samples", 0)),
            edit_rows=tuple(
                EditRow(**{k: v for k, v in r.items() if k in _EDIT_FIELDS}) for r in data.get("edit_rows", ())
            ),
            abstention=tuple(AbstentionRow(**r) for r in data.get("abstention", ())),
        )


_EDIT_FIELDS = {f.name for f in fields(EditRow)}


def row(report: EvalReport, system: str, task: str, language: str = ALL, repository: str = ALL) -> Row | None:
    wanted = (system, task, language, repository)
    return next((r for r in report.rows if (r.system, r.task, r.language, r.repository) == wanted), None)
