"""Dependencies run one way: trainer → server → grammars. The serving side owns the contract it reads
(server/contract/), so nothing under server/ may import the trainer, and grammars/ imports neither."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# package → what it must never import (every form: `import x`, `from x import y`, inside functions too)
FORBIDDEN = {
    "server": ("codedouble.trainer",),
    "grammars": ("codedouble.trainer", "codedouble.server"),
}


def imports(source: str, module: str) -> list[tuple[int, str]]:
    """Every module `source` imports, absolute names, with its line; relative imports resolved from `module`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".")[: -node.level]
                name = ".".join([*package, node.module] if node.module else package)
            else:
                name = node.module or ""
            found.extend((node.lineno, f"{name}.{alias.name}") for alias in node.names)
            found.append((node.lineno, name))
    return found


def violations(package: str) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        module = "codedouble." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for line, name in imports(path.read_text(encoding="utf-8"), module):
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[package]):
                out.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_run_one_way(package: str) -> None:
    assert violations(package) == []


def test_the_walk_sees_every_form_of_import() -> None:
    """The check itself: each of these would break the rule and must be seen."""
    source = (
        "import codedouble.trainer.cli\n"
        "from codedouble.trainer import prompt\n"
        "def late():\n"
        "    from codedouble.trainer.mining.gitio import git\n"
        "from .. import trainer\n"
    )
    names = {name for _, name in imports(source, "codedouble.server.engine")}
    assert "codedouble.trainer.cli" in names
    assert "codedouble.trainer.prompt" in names
    assert "codedouble.trainer.mining.gitio" in names
    assert "codedouble.trainer" in names  # `from .. import trainer` inside codedouble.server.engine


def test_the_trainer_reads_the_contract_from_the_server() -> None:
    """The prompt format, the artifact's layout and the corpus format exist once, on the serving side."""
    for gone in ("trainer/prompt.py", "trainer/training/artifact.py", "server/engine/corpus.py"):
        assert not (ROOT / gone).exists(), f"{gone} is back: the contract lives in server/contract/"
    for contract in ("prompt", "artifact", "corpus", "atomic", "errors"):
        assert (ROOT / "server" / "contract" / f"{contract}.py").is_file()
