"""`codedouble snippets DATASET|ARTIFACT`: the engineer's snippets, mined on the fly from a dataset's records
or read from what a double ships, as text for people or JSON for scripts."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from codedouble.grammars.languages import LANGUAGES
from codedouble.server.contract import artifact
from codedouble.server.contract import snippets as snippet_file
from codedouble.server.contract.errors import CodedoubleError
from codedouble.server.contract.snippets import Snippet
from codedouble.trainer.mining import dataset


class SnippetsListError(CodedoubleError):
    """A path that is neither a dataset nor a double, or a language codedouble does not know."""


def load(path: Path) -> tuple[list[Snippet], str]:
    """The snippets of `path` and where they came from: a dataset's (mined now from all its records) or a
    double's (its snippets.jsonl, from its training commits)."""
    if not path.is_dir():
        raise SnippetsListError(f"{path} is not a directory: name a dataset (`codedouble mine`) or a double")
    manifest = path / artifact.MANIFEST
    try:
        data = json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnippetsListError(f"{manifest} is not readable JSON ({exc}): name a dataset or a double") from exc
    if isinstance(data, dict) and "dataset_format" in data:
        from codedouble.trainer.snippets.mine import mine  # tree-sitter parsing: only when a dataset is named

        dataset.read_manifest(path)  # an outdated dataset is named as such, with its fix
        return mine(dataset.load_records(path)), f"mined from the records of the dataset {path}"
    if isinstance(data, dict) and "artifact_format" in data:
        artifact.read_manifest(path)  # a double of another format is named as such
        found = snippet_file.load(path)
        if found is None:
            raise SnippetsListError(
                f"the double {path} has no {snippet_file.SNIPPETS}: it was trained before snippets; train it again "
                "(`codedouble train`) or list the dataset's"
            )
        return found, f"shipped with the double {path}"
    raise SnippetsListError(
        f"{path} is neither a dataset nor a double (no codedouble {artifact.MANIFEST}): name a dataset "
        "(`codedouble mine --out`) or a double (`codedouble train`)"
    )


def check_language(language: str | None) -> None:
    if language is not None and language not in LANGUAGES:
        known = ", ".join(sorted(LANGUAGES))
        raise SnippetsListError(f"--language {language!r} is not a language codedouble knows ({known})")


def render(items: list[Snippet], source: str) -> str:
    """Each snippet with how often and when it was written, then its body as the editor receives it."""
    if not items:
        return f"no snippets ({source}): no shape was written in enough distinct commits\n"
    lines = [f"{len(items)} snippets, {source}", ""]
    for number, s in enumerate(items, 1):
        where = {"": "top level", "class": "in a class", "function": "in a function"}.get(s.enclosing, s.enclosing)
        tests = f", {round(100 * s.test_share)}% in tests" if s.test_share else ""
        lines.append(
            f"#{number} {s.language} {s.scope} ({s.node}, {where}{tests}): written {s.occurrences} times in "
            f"{s.commits} commits, {s.first} .. {s.last}"
        )
        lines.extend("    " + line for line in s.body.split("\n"))
        lines.append("")
    return "\n".join(lines)


def listing(path: Path, as_json: bool = False, language: str | None = None) -> str:
    check_language(language)
    items, source = load(path)
    if language is not None:
        items = [s for s in items if s.language == language]
    if as_json:
        return json.dumps({"source": source, "snippets": [asdict(s) for s in items]}, indent=1, ensure_ascii=False)
    return render(items, source)
