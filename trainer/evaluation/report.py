"""The eval report in three forms: a terminal table, report.md for people, report.json and report.png beside it."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from codedouble.server.contract import atomic
from codedouble.trainer.evaluation.replay import ReplayRow
from codedouble.trainer.evaluation.summary import ALL, AbstentionRow, EvalReport, Row, task_key

DEFAULT_MARK = "*"
BEST_MARK = "↑"
EXAMPLE_LINES = 10  # lines of each example text shown in report.md
EXAMPLE_WIDTH = 160  # characters of each example line shown in report.md
HEADERS = ("task", "language", "system", "n", "EM %", "ES %", "p50 ms", "p95 ms")
REPOSITORY_HEADERS = ("task", "repository", "system", "n", "EM %", "ES %")
REPLAY_REPOSITORY_HEADERS = ("user", "repository", "system", "lines", "saved %", "shown %", "precision %")
REPLAY_HEADERS = ("user", "language", "system", "lines", "saved %", "shown %", "precision %", "p50 ms", "p95 ms")
REPLAY_LEGEND = (
    "typing replay: held-out lines typed key by key; the line user takes a suggestion only when it is exactly the "
    "rest of the line, the word user takes its matching whole words; saved: characters not typed; shown: "
    "keystrokes with a suggestion; precision: shown suggestions that were right"
)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _best(rows: list[Row]) -> tuple[set[int], set[int]]:
    """Indices of rows with the best EM and the best ES in their (task, language, repository), ties included.

    Compared as displayed (one decimal of a percent) so that two values that read the same are both marked;
    a group of one system has nothing to be best against, so it is not marked.
    """
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r.task, r.language, r.repository), []).append(i)
    best_em: set[int] = set()
    best_es: set[int] = set()
    for members in groups.values():
        if len(members) < 2:
            continue
        for best, value in ((best_em, lambda r: r.exact_match), (best_es, lambda r: r.edit_similarity)):
            top = max(round(100 * value(rows[i]), 1) for i in members)
            best.update(i for i in members if round(100 * value(rows[i]), 1) == top)
    return best_em, best_es


def _replay_cells(r: ReplayRow, default: str) -> list[str]:
    return [
        r.user,
        r.language,
        r.system + (f" {DEFAULT_MARK}" if r.system == default else ""),
        str(r.lines),
        _pct(r.saved),
        _pct(r.shown),
        "-" if r.precision is None else _pct(r.precision),
        _ms(r.p50_ms),
        _ms(r.p95_ms),
    ]


def _fixed_width(cells: list[list[str]], left: int) -> list[str]:
    """Rows of cells in columns: the first `left` columns are text (left-aligned), the rest numbers."""
    widths = [max(len(row[c]) for row in cells) for c in range(len(cells[0]))]

    def line(row: list[str]) -> str:
        return "  ".join(
            v.ljust(w) if c < left else v.rjust(w) for c, (v, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    return [line(cells[0]), "  ".join("-" * w for w in widths), *(line(row) for row in cells[1:])]


def format_replay_table(report: EvalReport, per_language: bool = False) -> str:
    """The typing replay's rows for the terminal; empty when the run typed no lines."""
    rows = [r for r in report.replay if r.repository == ALL and (per_language or r.language == ALL)]
    if not rows:
        return ""
    cells = [list(REPLAY_HEADERS), *(_replay_cells(r, report.default_system) for r in rows)]
    return "\n".join([*_fixed_width(cells, 3), REPLAY_LEGEND]) + "\n"


ABSTENTION_HEADERS = ("task", "system", "n", "declined", "shown", "EM % of shown", "ES % of shown")
ABSTENTION_LEGEND = (
    "with abstention: the engine as the server shows it, on the same samples; declined: samples where it showed "
    "nothing (its confidence below the double's threshold); EM % of shown is its precision"
)


def _abstention_cells(r: AbstentionRow, default: str) -> list[str]:
    return [
        r.task,
        r.system + (f" {DEFAULT_MARK}" if r.system == default else ""),
        str(r.samples),
        str(r.declined),
        str(r.samples - r.declined),
        "-" if r.exact_match is None else _pct(r.exact_match),
        "-" if r.edit_similarity is None else _pct(r.edit_similarity),
    ]


def format_abstention_table(report: EvalReport) -> str:
    """The engine with abstention, per task, for the terminal; empty when the run has no such rows."""
    if not report.abstention:
        return ""
    cells = [list(ABSTENTION_HEADERS), *(_abstention_cells(r, report.default_system) for r in report.abstention)]
    return "\n".join([*_fixed_width(cells, 2), ABSTENTION_LEGEND]) + "\n"


COMMIT_HEADERS = ("task", "system", "n", "B-Norm", "ROUGE-L", "word 1 %", "words 1-2 %", "ES %", "p50 ms")
COMMIT_LEGEND = (
    "commit messages: held-out commits' summary lines; B-Norm: smoothed sentence BLEU-4 of lowercased words (Tao "
    "et al., ICSME 2021); ROUGE-L: LCS F-measure; word 1 / words 1-2: exact match of the first word(s); "
    "ES: edit similarity"
)
_COMMIT_VALUES = (
    lambda r: r.b_norm,
    lambda r: r.rouge_l,
    lambda r: r.first_word,
    lambda r: r.first_two_words,
    lambda r: r.edit_similarity,
)


def _commit_cells(report: EvalReport, mark: Callable[[str, bool], str]) -> list[list[str]]:
    """One row of cells per system of the commit-message task; `mark(value, best)` writes a best value."""
    rows = report.commit_rows
    tops = [max(round(100 * value(r), 1) for r in rows) for value in _COMMIT_VALUES] if rows else []
    cells = []
    for r in rows:
        system = r.system + (f" {DEFAULT_MARK}" if r.system == report.commit_default else "")
        values = [
            mark(_pct(value(r)), len(rows) > 1 and round(100 * value(r), 1) == top)
            for value, top in zip(_COMMIT_VALUES, tops, strict=True)
        ]
        cells.append(["commit message", system, str(r.samples), *values, _ms(r.p50_ms)])
    return cells


def format_commit_table(report: EvalReport) -> str:
    """The commit-message task's rows for the terminal; empty when the run drafted none."""
    if not report.commit_rows:
        return ""
    cells = [
        [h + "  " if 3 <= c < 8 else h for c, h in enumerate(COMMIT_HEADERS)],
        *_commit_cells(report, lambda v, best: v + (f" {BEST_MARK}" if best else "  ")),
    ]
    legend = f"{DEFAULT_MARK} the source `codedouble commit-message` drafts with   {COMMIT_LEGEND}"
    return "\n".join([*_fixed_width(cells, 2), legend]) + "\n"


EDIT_HEADERS = (
    "task",
    "system",
    "files",
    "hunks",
    "proposed",
    "precision %",
    "exact %",
    "found %",
    "edit EM %",
    "p95 ms",
)
EDIT_LEGEND = (
    "next edits: held-out files changed in two hunks or more, the first made, the rest to propose; precision: "
    "proposals within ±2 lines of a hunk still to make; exact: proposals that make their hunk exactly; found: "
    "hunks with a proposal there; edit EM: hunks made exactly"
)


def _edit_cells(report: EvalReport) -> list[list[str]]:
    cells = []
    for r in report.edit_rows:
        cells.append(
            [
                "next edit",
                r.system,
                str(r.samples),
                str(r.hunks),
                str(r.proposals),
                "-" if r.precision is None else _pct(r.precision),
                "-" if r.exact_precision is None else _pct(r.exact_precision),
                _pct(r.location_recall),
                _pct(r.edit_em),
                _ms(r.p95_ms),
            ]
        )
    return cells


def format_edit_table(report: EvalReport) -> str:
    """The next-edit task's rows for the terminal; empty when the run proposed none."""
    if not report.edit_rows:
        return ""
    return "\n".join([*_fixed_width([list(EDIT_HEADERS), *_edit_cells(report)], 2), EDIT_LEGEND]) + "\n"


def _markdown_edits(report: EvalReport) -> list[str]:
    if not report.edit_rows:
        return []
    out = ["", f"## Next edits ({report.edit_samples:,} held-out files)", ""]
    out.append("| " + " | ".join(EDIT_HEADERS[1:]) + " |")
    out.append("|---|" + "---:|" * (len(EDIT_HEADERS) - 2))
    for cells in _edit_cells(report):
        out.append("| " + " | ".join(_cell(c) for c in cells[1:]) + " |")
    out += ["", EDIT_LEGEND[0].upper() + EDIT_LEGEND[1:] + ".", ""]
    from codedouble.trainer.evaluation.next_edit import DESCRIPTIONS

    out += [f"- **{r.system}**: {DESCRIPTIONS.get(r.system, '')}" for r in report.edit_rows]
    return out


def _repository_cells(r: Row, default: str, best_em: bool, best_es: bool) -> list[str]:
    return [
        r.task,
        r.repository,
        r.system + (f" {DEFAULT_MARK}" if r.system == default else ""),
        str(r.samples),
        _pct(r.exact_match) + (f" {BEST_MARK}" if best_em else "  "),
        _pct(r.edit_similarity) + (f" {BEST_MARK}" if best_es else "  "),
    ]


def _replay_repository_cells(r: ReplayRow, default: str) -> list[str]:
    precision = "-" if r.precision is None else _pct(r.precision)
    system = r.system + (f" {DEFAULT_MARK}" if r.system == default else "")
    return [r.user, r.repository, system, str(r.lines), _pct(r.saved), _pct(r.shown), precision]


def format_repository_table(report: EvalReport) -> str:
    """The main metrics per repository (a double trained on several); empty when the samples span one."""
    rows = [r for r in report.rows if r.repository != ALL]
    replay = [r for r in report.replay if r.repository != ALL]
    if not rows and not replay:
        return ""
    out = ["per repository:"]
    if rows:
        best_em, best_es = _best(rows)
        cells = [[h + "  " if h in ("EM %", "ES %") else h for h in REPOSITORY_HEADERS]]
        cells += [_repository_cells(r, report.default_system, i in best_em, i in best_es) for i, r in enumerate(rows)]
        out += _fixed_width(cells, 3)
    if replay:
        cells = [list(REPLAY_REPOSITORY_HEADERS), *(_replay_repository_cells(r, report.default_system) for r in replay)]
        out += ["", *_fixed_width(cells, 3)]
    return "\n".join(out) + "\n"


def format_table(report: EvalReport, per_language: bool = False) -> str:
    """A fixed-width table for the terminal, with a legend line under it, then the typing replay's."""
    rows = [r for r in report.rows if r.repository == ALL and (per_language or r.language == ALL)]
    best_em, best_es = _best(rows)
    cells = [[h + "  " if h in ("EM %", "ES %") else h for h in HEADERS]]  # room for the mark, as in the rows
    for i, r in enumerate(rows):
        system = r.system + (f" {DEFAULT_MARK}" if r.system == report.default_system else "")
        cells.append(
            [
                r.task,
                r.language,
                system,
                str(r.samples),
                _pct(r.exact_match) + (f" {BEST_MARK}" if i in best_em else "  "),  # blank mark keeps decimals aligned
                _pct(r.edit_similarity) + (f" {BEST_MARK}" if i in best_es else "  "),
                _ms(r.p50_ms),
                _ms(r.p95_ms),
            ]
        )
    out = _fixed_width(cells, 3)  # task, language and system are text; the numbers are right-aligned
    if not rows:
        out.append("(no results)")
    out.append(
        f"{DEFAULT_MARK} the engine `codedouble serve` uses   {BEST_MARK} best in its task and language   "
        "EM exact match, ES edit similarity"
    )
    abstaining = format_abstention_table(report)
    replay = format_replay_table(report, per_language)
    drafted = format_commit_table(report)
    edited = format_edit_table(report)
    repositories = format_repository_table(report)
    if not rows and (replay or drafted or edited):
        out = []  # only other tasks were asked for (`--line-samples 0 --block-samples 0`): no empty table
    return (
        ("\n".join(out) + "\n" if out else "")
        + ("\n" + abstaining if abstaining else "")
        + ("\n" + replay if replay else "")
        + ("\n" + drafted if drafted else "")
        + ("\n" + edited if edited else "")
        + ("\n" + repositories if repositories else "")
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fenced(text: str, language: str) -> list[str]:
    """A fenced code block of at most EXAMPLE_LINES lines, fenced longer than any backtick run inside it."""
    text = text.rstrip("\n")
    if not text.strip():
        return ["*(nothing)*"]
    lines = text.split("\n")
    shown = [line if len(line) <= EXAMPLE_WIDTH else line[:EXAMPLE_WIDTH] + "…" for line in lines[:EXAMPLE_LINES]]
    if len(lines) > EXAMPLE_LINES:
        shown.append(f"… ({len(lines) - EXAMPLE_LINES} more lines)")
    body = "\n".join(shown)
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", body)), default=0))
    return [fence + re.sub(r"[^A-Za-z0-9_+-]", "", language), *shown, fence]


def format_markdown(report: EvalReport) -> str:
    """report.md: provenance, the table of all rows, what each system is, and a few sample predictions."""
    samples = ", ".join(f"{n:,} {task}" for task, n in sorted(report.samples.items(), key=lambda kv: task_key(kv[0])))
    several = len(report.repositories) > 1
    where = f"{len(report.repositories)} repositories (see Per repository)" if several else f"`{report.repository}`"
    out = [
        f"# codedouble eval: {Path(report.repository).name or report.repository}",
        "",
        (
            f"Artifact `{report.artifact}` scored on {report.heldout_commits:,} held-out commits of {where} "
            f"({samples or 'no'} samples; seed {report.seed}) on {report.machine}, {report.created}."
        ),
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" if c < 3 else "---:" for c in range(len(HEADERS))) + "|",
    ]
    overall = [r for r in report.rows if r.repository == ALL]
    best_em, best_es = _best(overall)
    for i, r in enumerate(overall):
        em, es = _pct(r.exact_match), _pct(r.edit_similarity)
        system = _cell(r.system) + (" (default)" if r.system == report.default_system else "")
        values = [
            _cell(r.task),
            _cell(r.language),
            system,
            str(r.samples),
            f"**{em}**" if i in best_em else em,
            f"**{es}**" if i in best_es else es,
            _ms(r.p50_ms),
            _ms(r.p95_ms),
        ]
        out.append("| " + " | ".join(values) + " |")
    out += [
        "",
        (
            "EM: exact match; ES: edit similarity; bold: best in its task and language; (default): the engine "
            "`codedouble serve` uses."
        ),
    ]
    if report.abstention:
        out += [
            "",
            "## With abstention",
            "",
            "| " + " | ".join(ABSTENTION_HEADERS) + " |",
            "|" + "|".join("---" if c < 2 else "---:" for c in range(len(ABSTENTION_HEADERS))) + "|",
        ]
        for r in report.abstention:
            cells = _abstention_cells(r, "")
            cells[1] = _cell(r.system) + (" (default)" if r.system == report.default_system else "")
            out.append("| " + " | ".join(cells) + " |")
        out += ["", ABSTENTION_LEGEND[0].upper() + ABSTENTION_LEGEND[1:] + "."]
    if report.replay:
        out += [
            "",
            f"## Typing replay ({report.replay_lines:,} held-out lines)",
            "",
            "| " + " | ".join(REPLAY_HEADERS) + " |",
            "|" + "|".join("---" if c < 3 else "---:" for c in range(len(REPLAY_HEADERS))) + "|",
        ]
        for r in (r for r in report.replay if r.repository == ALL):
            cells = _replay_cells(r, "")
            cells[2] = _cell(r.system) + (" (default)" if r.system == report.default_system else "")
            out.append("| " + " | ".join(cells) + " |")
        out += ["", REPLAY_LEGEND[0].upper() + REPLAY_LEGEND[1:] + "."]
    out += _markdown_commits(report)
    out += _markdown_edits(report)
    out += _markdown_repositories(report)
    out += [
        "",
        "## Systems",
        "",
    ]
    for system in report.systems:
        default = " (default)" if system == report.default_system else ""
        description = report.descriptions.get(system, "")
        out.append(f"- **{system}**{default}" + (f": {description}" if description else ""))
    if report.examples:
        out += ["", "## Examples"]
        for n, example in enumerate(report.examples, 1):
            language = example.get("language", "")
            out += ["", f"### {n}. {example.get('task', '')}, {language}", "", "Prompt (end):", ""]
            out += _fenced(example.get("prompt_tail", ""), language)
            out += ["", "Target:", ""] + _fenced(example.get("target", ""), language)
            for system in report.systems:
                if system in example:
                    out += ["", f"**{system}**:", ""] + _fenced(example[system], language)
    return "\n".join(out) + "\n"


def _markdown_commits(report: EvalReport) -> list[str]:
    """report.md's commit-message section: the table, then a few held-out messages beside each system's draft."""
    if not report.commit_rows:
        return []
    out = ["", f"## Commit messages ({report.commit_samples:,} held-out commits)", ""]
    out += ["| " + " | ".join(COMMIT_HEADERS) + " |"]
    out.append("|" + "|".join("---" if c < 2 else "---:" for c in range(len(COMMIT_HEADERS))) + "|")
    for cells in _commit_cells(report, lambda v, best: f"**{v}**" if best else v):
        cells[1] = _cell(cells[1].replace(f" {DEFAULT_MARK}", " (default)"))
        out.append("| " + " | ".join(cells) + " |")
    out += [
        "",
        COMMIT_LEGEND[0].upper() + COMMIT_LEGEND[1:] + "; bold: best; (default): the source "
        "`codedouble commit-message` drafts with.",
    ]
    for example in report.commit_examples:
        out += [
            "",
            f"- `{example.get('commit', '')[:12]}` the engineer: `{_cell(commit_summary(example.get('message', '')))}`",
        ]
        for system in (r.system for r in report.commit_rows):
            out.append(f"  - {system}: `{_cell(commit_summary(example.get(system, ''))) or '(nothing)'}`")
    return out


def commit_summary(message: str) -> str:
    return next((line.strip() for line in message.split("\n") if line.strip()), "")


def _markdown_repositories(report: EvalReport) -> list[str]:
    """report.md's per-repository section: the main metrics of each repository the double was trained on."""
    rows = [r for r in report.rows if r.repository != ALL]
    replay = [r for r in report.replay if r.repository != ALL]
    if not rows and not replay:
        return []
    out = ["", "## Per repository", ""]
    out += [f"- **{_cell(name)}**: `{path}`" for name, path in sorted(report.repositories.items())]
    if rows:
        best_em, best_es = _best(rows)
        out += ["", "| " + " | ".join(REPOSITORY_HEADERS) + " |"]
        out.append("|" + "|".join("---" if c < 3 else "---:" for c in range(len(REPOSITORY_HEADERS))) + "|")
        for i, r in enumerate(rows):
            em, es = _pct(r.exact_match), _pct(r.edit_similarity)
            system = _cell(r.system) + (" (default)" if r.system == report.default_system else "")
            values = [_cell(r.task), _cell(r.repository), system, str(r.samples)]
            values += [f"**{em}**" if i in best_em else em, f"**{es}**" if i in best_es else es]
            out.append("| " + " | ".join(values) + " |")
    if replay:
        out += ["", "| " + " | ".join(REPLAY_REPOSITORY_HEADERS) + " |"]
        out.append("|" + "|".join("---" if c < 3 else "---:" for c in range(len(REPLAY_REPOSITORY_HEADERS))) + "|")
        for r in replay:
            cells = _replay_repository_cells(r, "")
            cells[1] = _cell(r.repository)
            cells[2] = _cell(r.system) + (" (default)" if r.system == report.default_system else "")
            out.append("| " + " | ".join(cells) + " |")
    return out


def _system_ticks(ax: Any, present: list[str], default: str) -> None:
    xs = range(len(present))
    crowded = len(present) > 3
    ax.set_xticks(
        list(xs),
        [s + (" *" if s == default else "") for s in present],
        rotation=30 if crowded else 0,
        ha="right" if crowded else "center",
    )
    pad = max(0.6, (3 - len(present)) / 2 + 0.6)  # keep one or two systems' bars from filling the panel
    ax.set_xlim(-pad, len(present) - 1 + pad)
    ax.set_ylim(0, 108)  # headroom for the labels of bars at 100
    ax.set_yticks(range(0, 101, 20))
    ax.set_ylabel("%")


def _plot_replay(ax: Any, report: EvalReport) -> None:
    """The typing replay's panel: characters saved by each simulated user, and the line user's precision."""
    rows = {(r.system, r.user): r for r in report.replay if r.language == ALL and r.repository == ALL}
    present = [s for s in report.systems if (s, "line") in rows]
    width = 0.27
    bars = (
        (-width, "saved, line user", "tab:green", lambda s: rows[(s, "line")].saved),
        (0.0, "saved, word user", "tab:olive", lambda s: rows[(s, "word")].saved if (s, "word") in rows else 0.0),
        (width, "precision, line user", "tab:purple", lambda s: rows[(s, "line")].precision or 0.0),
    )
    for offset, label, color, value in bars:
        heights = [100 * value(s) for s in present]
        drawn = ax.bar([x + offset for x in range(len(present))], heights, width, label=label, color=color)
        ax.bar_label(drawn, fmt="%.0f", fontsize=7, padding=2)
    _system_ticks(ax, present, report.default_system)
    ax.set_title(f"typing replay (lines={report.replay_lines:,})")


def plot(report: EvalReport, path: Path) -> None:
    """A PNG bar chart: one panel per task, EM and ES per system side by side, and one for the typing replay
    (Agg canvas: no display needed)."""
    rows = [r for r in report.rows if r.language == ALL and r.repository == ALL]
    tasks = sorted({r.task for r in rows}, key=task_key)
    panels: list[str] = tasks + (["typing replay"] if report.replay else [])
    systems = [s for s in report.systems if any(r.system == s for r in rows)]
    panel = (max(4.0, 1.1 * len(systems) + 1.5), 4.2)
    side_by_side = panel[0] * len(panels) <= 14  # wider than a screen reads badly: stack the panels instead
    shape = (1, max(1, len(panels))) if side_by_side else (len(panels), 1)
    figure = Figure(figsize=(panel[0] * shape[1], panel[1] * shape[0] + 0.6), layout="constrained")
    FigureCanvasAgg(figure)
    figure.suptitle(f"codedouble eval: {Path(report.repository).name or report.repository}")
    if not panels:
        ax = figure.add_subplot()
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no results", ha="center", va="center")
    else:
        axes = figure.subplots(*shape, squeeze=False).flatten()
        width = 0.38
        handles: list[Any] = []
        labels: list[str] = []
        for ax, task in zip(axes, panels, strict=True):
            if task == "typing replay":
                _plot_replay(ax, report)
                replay_handles, replay_labels = ax.get_legend_handles_labels()
                handles += replay_handles
                labels += replay_labels
                continue
            by_system = {r.system: r for r in rows if r.task == task}
            present = [s for s in systems if s in by_system]
            xs = range(len(present))
            for offset, label, color, value in (
                (-width / 2, "EM", "tab:blue", lambda r: r.exact_match),
                (width / 2, "ES", "tab:orange", lambda r: r.edit_similarity),
            ):
                heights = [100 * value(by_system[s]) for s in present]
                bars = ax.bar([x + offset for x in xs], heights, width, label=label, color=color)
                ax.bar_label(bars, fmt="%.0f", fontsize=8, padding=2)
            _system_ticks(ax, present, report.default_system)
            n = report.samples.get(task, max(r.samples for r in by_system.values()))
            ax.set_title(f"{task} (n={n:,})")
            if task == panels[0]:  # EM and ES: the same two in every task's panel, listed once, first
                handles[:0], labels[:0] = ax.get_legend_handles_labels()
        if report.default_system in systems:
            handles.append(Line2D([], [], linestyle="none"))
            labels.append("* the engine codedouble serve uses")
        figure.legend(handles, labels, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    with atomic.file(path, "wb") as handle:
        figure.savefig(handle, format="png", dpi=100)


def write(report: EvalReport, out_dir: Path) -> list[Path]:
    """report.json, report.md and report.png in `out_dir`, each either complete or not there."""
    out_dir.mkdir(parents=True, exist_ok=True)
    writers: list[tuple[str, Callable[[Path], None]]] = [
        ("report.json", lambda p: atomic.write_text(p, json.dumps(report.to_dict(), indent=2) + "\n")),
        ("report.md", lambda p: atomic.write_text(p, format_markdown(report))),
        ("report.png", lambda p: plot(report, p)),
    ]
    paths = []
    for name, writer in writers:
        writer(out_dir / name)
        paths.append(out_dir / name)
    return paths
