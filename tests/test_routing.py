"""Which model answers: the double in the languages it learned, its base elsewhere (server/engine/routing.py),
and how training decides it (trainer/training/languages.py)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from codedouble.server.contract import prompt
from codedouble.server.engine import engine as engines
from codedouble.server.engine import routing
from codedouble.server.engine.document import Request
from codedouble.server.engine.neural import Generated, Neural
from codedouble.server.engine.routing import ByLanguage
from codedouble.trainer.training import languages


class Scripted:
    """A stand-in model that answers with its own name, and counts what it was asked."""

    def __init__(self, name: str) -> None:
        self.name, self.asked = name, 0

    def generate(self, request: Request, cancelled: Callable[[], bool] | None = None) -> Generated:
        self.asked += 1
        return Generated(self.name, -0.1, 1)

    def complete(self, request: Request, cancelled: Callable[[], bool] | None = None) -> str:
        return self.generate(request).text

    def confirm(self, request: Request, line: str) -> float | None:
        self.asked += 1
        return 0.5 if line == self.name else None


def routed(load: Callable[[], Any]) -> tuple[ByLanguage, Scripted]:
    double = Scripted("double")
    return ByLanguage(cast(Neural, double), frozenset({"python"}), load), double


def ask(model: ByLanguage, path: str) -> str:
    return model.complete(Request(path, "x = ", "", "line"))


def test_the_double_answers_in_its_languages_and_the_base_in_the_others_loaded_once() -> None:
    base, loads = Scripted("base"), []

    def load() -> Scripted:
        loads.append(1)
        return base

    model, double = routed(load)
    assert ask(model, "app.py") == "double"
    assert loads == [], "no base is loaded while the double's own languages are asked"
    assert ask(model, "main.go") == "base"
    assert ask(model, "index.js") == "base"
    assert model.confirm(Request("main.go", "x := ", "", "line"), "base") == 0.5
    assert model.generate(Request("app.py", "x = ", "", "line")).text == "double"
    assert loads == [1]
    # A file of no language the server knows (a README) has no base to prefer: the double, as before.
    assert ask(model, "README") == "double"


def test_a_base_that_fails_to_load_leaves_the_double_answering_everywhere() -> None:
    def load() -> Scripted:
        raise OSError("the weights are unreadable")

    model, double = routed(load)
    assert ask(model, "main.go") == "double"
    assert ask(model, "main.rs") == "double"
    assert double.asked == 2


def test_the_manifest_says_which_languages_the_double_answers_in() -> None:
    assert routing.double_languages({}) is None, "a double trained before the record answers in every language"
    entries = {
        "python": {"records": 90, "served_by": "double"},
        "go": {"records": 3, "served_by": "base", "validation_loss": {"base": 1.2, "double": 1.5}},
    }
    assert routing.double_languages({"languages": entries}) == frozenset({"python"})


def _base_folder(root: Path, vocabulary: list[str]) -> tuple[Path, str]:
    root.mkdir()
    (root / "model.safetensors").write_bytes(b"weights")
    (root / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {t: i for i, t in enumerate(vocabulary)}}}))
    return root, hashlib.sha256(b"weights").hexdigest()


def test_the_base_is_used_only_where_training_found_it_with_the_same_weights_and_tokens(tmp_path: Path) -> None:
    folder, sha = _base_folder(tmp_path / "base", ["a", *prompt.SPECIAL_TOKENS])
    manifest = {"training": {"base": {"path": str(folder), "sha256": sha}}}
    assert routing.base_of(manifest) == folder
    assert routing.base_of({"training": {"base": {"path": str(folder), "sha256": "0" * 64}}}) is None, "changed"
    assert routing.base_of({"training": {"base": {"path": str(tmp_path / "gone"), "sha256": sha}}}) is None
    assert routing.base_of({"training": {"base": None}}) is None, "a double from scratch has no base"
    lacking, lacking_sha = _base_folder(tmp_path / "other", ["a", prompt.EOS])
    assert routing.base_of({"training": {"base": {"path": str(lacking), "sha256": lacking_sha}}}) is None


def test_an_engine_asks_the_double_alone_when_its_manifest_does_not_route(tmp_path: Path) -> None:
    double = cast(Neural, Scripted("double"))
    logged: list[str] = []
    assert engines._by_language(double, {}, None, logged.append) is double
    # A record, but the base is gone: the double answers everywhere, and the log says why.
    manifest = {"languages": {"python": {"served_by": "double"}}, "training": {"base": {"path": str(tmp_path)}}}
    assert engines._by_language(double, manifest, None, logged.append) is double
    assert logged and "every language" in logged[-1]


def test_training_serves_a_language_by_the_double_only_where_it_measured_better() -> None:
    trained = Counter({"python": 80, "go": 12, "rust": 2, "java": 6})
    chosen = languages.choose(trained, {"python": 1.4, "go": 1.1}, {"python": 1.2, "go": 1.3})
    assert chosen["python"]["served_by"] == "double" and chosen["python"]["by"] == "validation loss"
    assert chosen["python"]["validation_loss"] == {"base": 1.4, "double": 1.2}
    assert chosen["go"]["served_by"] == "base", "the fine-tune made its Go worse: the base answers in Go"
    # No validation text: the share of the training records decides (6 of 100 is the double's, 2 is not).
    assert chosen["rust"] == {"records": 2, "by": "share of records", "served_by": "base"}
    assert chosen["java"] == {"records": 6, "by": "share of records", "served_by": "double"}
    assert set(chosen) == set(trained), "a language the history never had is not listed: the base's"


@pytest.mark.parametrize("double_loss", [1.0, 1.2])
def test_a_tie_is_the_bases(double_loss: float) -> None:
    chosen = languages.choose(Counter({"go": 5}), {"go": 1.0}, {"go": double_loss})
    assert chosen["go"]["served_by"] == "base"
