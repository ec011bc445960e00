"""Scores, aggregation and the eval report: hand-made cases whose answers are worked out by hand."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import matplotlib.image
import pytest

from codedouble.server.stats import percentile
from codedouble.trainer.evaluation import report as report_module
from codedouble.trainer.evaluation.metrics import edit_similarity, exact_match, normalise
from codedouble.trainer.evaluation.report import format_markdown, format_table, plot, write
from codedouble.trainer.evaluation.summary import EvalReport, Outcome, Row, aggregate, row

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --- metrics -----------------------------------------------------------------------------------------------------


def test_line_exact_match_ignores_trailing_but_not_leading_whitespace() -> None:
    assert exact_match("foo(x)  \n", "foo(x)", "line")
    assert exact_match("foo(x)", "foo(x)\t ", "line")
    assert not exact_match(" foo(x)", "foo(x)", "line")
    assert not exact_match("foo(x)", "Foo(x)", "line")
    assert not exact_match("", "x", "line")
    assert exact_match("", "   ", "line")


def test_block_normalisation() -> None:
    text = "def f():\r\n    return 1   \r\n\r\n  \n\n"
    assert normalise(text, "block") == "def f():\n    return 1"
    assert normalise("\n\nx\n\n  y\n", "block") == "\n\nx\n\n  y"  # leading and inner blank lines stay
    assert normalise("  x  ", "line") == "  x"
    assert exact_match("    a = 1\r\n    return a\r\n", "    a = 1\n    return a", "block")
    assert not exact_match("    a = 1\n\n    return a", "    a = 1\n    return a", "block")
    assert not exact_match("  return a", "    return a", "block")


def test_edit_similarity_exact_values() -> None:
    assert edit_similarity("kitten", "sitting", "line") == pytest.approx(1 - 3 / 7, abs=1e-12)
    assert edit_similarity("", "", "line") == 1.0
    assert edit_similarity("", "", "block") == 1.0
    assert edit_similarity("  \n", "\n\n", "block") == 1.0  # both normalise to empty
    assert edit_similarity("", "abc", "line") == 0.0
    assert edit_similarity("abc", "", "block") == 0.0
    assert edit_similarity("ab", "ac", "line") == 0.5
    assert edit_similarity("abc   ", "abc", "line") == 1.0
    assert edit_similarity("  x", "x", "line") == pytest.approx(1 / 3, abs=1e-12)
    assert edit_similarity("a\r\nb\n\n", "a\nc", "block") == pytest.approx(2 / 3, abs=1e-12)


def test_percentile_matches_numpy_linear() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([4, 1, 3, 2], 0) == 1.0
    assert percentile([4, 1, 3, 2], 100) == 4.0
    assert percentile([1, 2, 3, 4], 25) == pytest.approx(1.75)
    assert percentile([3, 1, 2], 50) == 2.0
    assert percentile([5], 95) == 5.0
    assert percentile([float(i) for i in range(1, 21)], 95) == pytest.approx(19.05)
    assert percentile([10, 20, 30, 40], 95) == pytest.approx(38.5)
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


# --- aggregation ---------------------------------------------------------------------------------------------------


def _o(system: str, task: str, language: str, sample: str, em: bool, es: float, ms: float) -> Outcome:
    return Outcome(system, task, language, sample, prediction="p", exact_match=em, edit_similarity=es, latency_ms=ms)


OUTCOMES = [
    _o("model", "line", "python", "l1", True, 1.0, 10),
    _o("model", "line", "python", "l2", False, 0.5, 20),
    _o("model", "line", "go", "l3", False, 0.0, 30),
    _o("model", "line", "go", "l4", True, 1.0, 40),
    _o("ngram", "line", "python", "l1", False, 0.25, 1),
    _o("ngram", "line", "python", "l2", False, 0.75, 2),
    _o("ngram", "line", "go", "l3", True, 1.0, 3),
    _o("ngram", "line", "go", "l4", False, 0.0, 4),
    _o("model", "block", "python", "b1", True, 1.0, 100),
    _o("model", "block", "python", "b2", False, 0.2, 300),
    _o("ngram", "block", "python", "b1", False, 0.4, 5),
    _o("model", "alpha", "python", "a1", False, 0.1, 7),
]

EXPECTED = [  # system, task, language, n, EM, ES, p50, p95
    ("model", "line", "all", 4, 0.5, 0.625, 25.0, 38.5),
    ("ngram", "line", "all", 4, 0.25, 0.5, 2.5, 3.85),
    ("model", "line", "go", 2, 0.5, 0.5, 35.0, 39.5),
    ("ngram", "line", "go", 2, 0.5, 0.5, 3.5, 3.95),
    ("model", "line", "python", 2, 0.5, 0.75, 15.0, 19.5),
    ("ngram", "line", "python", 2, 0.0, 0.5, 1.5, 1.95),
    ("model", "block", "all", 2, 0.5, 0.6, 200.0, 290.0),  # one language: no per-language rows
    ("ngram", "block", "all", 1, 0.0, 0.4, 5.0, 5.0),
    ("model", "alpha", "all", 1, 0.0, 0.1, 7.0, 7.0),  # other tasks after line and block; no row for ngram
]


def test_aggregate_numbers_and_order() -> None:
    shuffled = list(OUTCOMES)
    random.Random(3).shuffle(shuffled)
    rows = aggregate(shuffled, ["model", "ngram"])
    assert [(r.system, r.task, r.language, r.samples) for r in rows] == [e[:4] for e in EXPECTED]
    for r, (*_, em, es, p50, p95) in zip(rows, EXPECTED, strict=True):
        assert (r.exact_match, r.edit_similarity, r.p50_ms, r.p95_ms) == pytest.approx((em, es, p50, p95), abs=1e-9)


def test_aggregate_follows_system_order_and_rejects_unknown_systems() -> None:
    rows = aggregate(OUTCOMES, ["ngram", "model"])
    assert [(r.system, r.task, r.language) for r in rows[:3]] == [
        ("ngram", "line", "all"),
        ("model", "line", "all"),
        ("ngram", "line", "go"),
    ]
    with pytest.raises(ValueError, match="bm25"):
        aggregate([*OUTCOMES, _o("bm25", "line", "go", "l3", True, 1.0, 1)], ["model", "ngram"])
    assert aggregate([], ["model"]) == []


def _report(**changes: object) -> EvalReport:
    fields: dict[str, object] = dict(
        artifact="/data/doubles/proj-1234/2025-01-01",
        repository="/home/me/proj",
        created="2025-01-02T03:04:05+00:00",
        seed=7,
        heldout_commits=12,
        samples={"line": 4, "block": 2, "alpha": 1},
        systems=("model", "ngram"),
        descriptions={"model": "the small neural double", "ngram": "cache n-gram | baseline"},
        default_system="ngram",
        rows=tuple(aggregate(OUTCOMES, ["model", "ngram"])),
        machine="2 CPU cores, cpu",
        examples=(
            {
                "task": "block",
                "language": "python",
                "prompt_tail": "def f(x):\n",
                "target": "\n".join(f"    line{i}" for i in range(14)),
                "model": "    return ```x```",
                "ngram": "",
            },
        ),
    )
    fields.update(changes)
    return EvalReport(**fields)  # type: ignore[arg-type]


def test_report_round_trips_through_json() -> None:
    report = _report()
    data = json.loads(json.dumps(report.to_dict()))
    assert data["rows"][0]["system"] == "model" and data["systems"] == ["model", "ngram"]
    back = EvalReport.from_dict(data)
    assert back == report
    assert isinstance(back.rows[0], Row) and isinstance(back.systems, tuple)
    assert row(back, "model", "block") == Row(
        "model",
        "block",
        "all",
        2,
        0.5,
        pytest.approx(0.6),
        200.0,  # type: ignore[arg-type]
        pytest.approx(290.0),
    )  # type: ignore[arg-type]
    assert row(back, "ngram", "alpha") is None
    assert row(back, "ngram", "line", "go") is not None


# --- report ----------------------------------------------------------------------------------------------------------


def _table_rows(table: str) -> dict[tuple[str, str, str], list[str]]:
    """task, language, system (without the default mark) -> the row's cells."""
    out = {}
    for line in table.splitlines()[2:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 8:
            out[(cells[0], cells[1], cells[2].removesuffix(" *"))] = cells
    return out


def test_format_table_marks_default_and_best() -> None:
    table = format_table(_report())
    lines = table.splitlines()
    assert re.split(r"\s{2,}", lines[0].strip()) == [
        "task",
        "language",
        "system",
        "n",
        "EM %",
        "ES %",
        "p50 ms",
        "p95 ms",
    ]
    rows = _table_rows(table)
    assert set(rows) == {
        ("line", "all", "model"),
        ("line", "all", "ngram"),
        ("block", "all", "model"),
        ("block", "all", "ngram"),
        ("alpha", "all", "model"),
    }
    assert rows[("line", "all", "model")] == ["line", "all", "model", "4", "50.0 ↑", "62.5 ↑", "25.0", "38.5"]
    assert rows[("line", "all", "ngram")] == ["line", "all", "ngram *", "4", "25.0", "50.0", "2.5", "3.9"]
    assert rows[("block", "all", "model")][4:6] == ["50.0 ↑", "60.0 ↑"]
    assert rows[("block", "all", "ngram")][2:6] == ["ngram *", "1", "0.0", "40.0"]
    assert rows[("alpha", "all", "model")][4:6] == ["0.0", "10.0"]  # alone in its task: nothing to be best against
    assert [line.split()[2:4] for line in lines[2:-1]] == [
        ["model", "4"],
        ["ngram", "*"],
        ["model", "2"],
        ["ngram", "*"],
        ["model", "1"],
    ]  # only the default system is marked
    assert "↑" in lines[-1] and "*" in lines[-1]  # the legend
    assert len({len(line) for line in lines[:-1]}) == 1  # fixed width: every row as wide as the header


def test_format_table_per_language_marks_ties() -> None:
    rows = _table_rows(format_table(_report(), per_language=True))
    assert rows[("line", "go", "model")][4:6] == ["50.0 ↑", "50.0 ↑"]
    assert rows[("line", "go", "ngram")][4:6] == ["50.0 ↑", "50.0 ↑"]
    assert rows[("line", "python", "model")][4:6] == ["50.0 ↑", "75.0 ↑"]
    assert rows[("line", "python", "ngram")][4:6] == ["0.0", "50.0"]
    assert len(rows) == 9


def test_format_markdown() -> None:
    md = format_markdown(_report())
    assert md.startswith("# codedouble eval: proj\n")
    assert "| task | language | system | n | EM % | ES % | p50 ms | p95 ms |" in md
    assert "| line | all | model | 4 | **50.0** | **62.5** | 25.0 | 38.5 |" in md
    assert "| line | all | ngram (default) | 4 | 25.0 | 50.0 | 2.5 | 3.9 |" in md
    assert "| line | python | ngram (default) | 2 | 0.0 | 50.0 | 1.5 | 1.9 |" in md
    assert "12 held-out commits" in md and "seed 7" in md and "2 CPU cores, cpu" in md and "2025-01-02T03:04:05" in md
    assert "4 line, 2 block, 1 alpha samples" in md
    assert "- **ngram** (default): cache n-gram | baseline" in md
    assert "## Examples" in md
    assert "    line9\n… (4 more lines)\n```" in md and "line10" not in md
    assert "````python\n    return ```x```\n````" in md  # fence longer than the backticks inside
    escaped = format_markdown(
        _report(
            systems=("model", "ng|ram"),
            rows=tuple(aggregate([_o("ng|ram", "line", "go", "x", True, 1.0, 1.0)], ["model", "ng|ram"])),
        )
    )
    assert "| line | all | ng\\|ram | 1 |" in escaped


def test_write_creates_three_complete_files(tmp_path: Path) -> None:
    report = _report()
    out = tmp_path / "eval" / "run"
    paths = write(report, out)
    assert paths == [out / "report.json", out / "report.md", out / "report.png"]
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "report.md", "report.png"]  # no temp files left
    assert EvalReport.from_dict(json.loads((out / "report.json").read_text())) == report
    assert "| task | language | system | n | EM % | ES % | p50 ms | p95 ms |" in (out / "report.md").read_text()
    png = (out / "report.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    image = matplotlib.image.imread(out / "report.png")
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400


def test_write_leaves_old_file_when_a_writer_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(_report(), tmp_path)
    before = (tmp_path / "report.md").read_text()

    def broken(report: EvalReport) -> str:
        raise RuntimeError("boom")

    monkeypatch.setattr(report_module, "format_markdown", broken)
    with pytest.raises(RuntimeError):
        write(_report(seed=8), tmp_path)
    assert (tmp_path / "report.md").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md", "report.png"]


@pytest.mark.parametrize("systems, tasks", [(1, ["block"]), (8, ["line", "block"]), (3, [])])
def test_plot_any_number_of_systems_and_missing_tasks(tmp_path: Path, systems: int, tasks: list[str]) -> None:
    names = [f"system-{i}" for i in range(systems)]
    outcomes = [_o(s, t, "go", f"{t}{i}", i % 2 == 0, 0.5, 1.0) for s in names for t in tasks for i in range(3)]
    report = _report(
        systems=tuple(names),
        default_system=names[0],
        rows=tuple(aggregate(outcomes, names)),
        samples={t: 3 for t in tasks},
        examples=(),
    )
    plot(report, tmp_path / "chart.png")
    assert (tmp_path / "chart.png").read_bytes().startswith(PNG_SIGNATURE)
    assert matplotlib.image.imread(tmp_path / "chart.png").ndim == 3
