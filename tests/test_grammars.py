"""The tree-sitter definition queries, checked against one hand-read fixture file per language."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pytest
import tree_sitter as ts

from codedouble.grammars.definitions import ParsedFile, parse
from codedouble.grammars.languages import (
    LANGUAGES,
    UnknownLanguageError,
    language_for_path,
    query,
    spec,
    ts_language,
)

FIXTURES = Path(__file__).parent / "fixtures" / "grammars"


@dataclass(frozen=True)
class Case:
    language: str
    fixture: str
    # (qualified_name, kind, start line) in source order; lines are 1-based, as an editor shows them.
    definitions: list[tuple[str, str, int]]
    header: list[str]
    # qualified_name -> the qualified_name of its enclosing definition; anything absent has no parent.
    parents: dict[str, str] = field(default_factory=dict)
    # Exact signatures for the definitions whose signature is easy to get wrong.
    signatures: dict[str, str] = field(default_factory=dict)


CASES = [
    Case(
        "python",
        "python/sample.py",
        [
            ("retry", "function", 13),
            ("retry.decorate", "function", 16),
            ("retry.decorate.wrapper", "function", 17),  # its decorator's line
            ("Job", "class", 31),
            ("Job.describe", "method", 36),
            ("Queue", "class", 40),
            ("Queue.Empty", "class", 43),
            ("Queue.Empty.__init__", "method", 44),
            ("Queue.__init__", "method", 47),
            ("Queue.size", "method", 51),
            ("Queue.parse", "method", 55),
            ("Queue.run", "method", 63),
            ("Queue.pop", "method", 70),
            ("main", "function", 76),
        ],
        [
            "from __future__ import annotations",
            "import asyncio",
            "import functools",
            "from dataclasses import dataclass, field",
            "from typing import Callable",
        ],
        parents={
            "retry.decorate": "retry",
            "retry.decorate.wrapper": "retry.decorate",
            "Job.describe": "Job",
            "Queue.Empty": "Queue",
            "Queue.Empty.__init__": "Queue.Empty",
            "Queue.__init__": "Queue",
            "Queue.size": "Queue",
            "Queue.parse": "Queue",
            "Queue.run": "Queue",
            "Queue.pop": "Queue",
        },
        signatures={
            "retry.decorate.wrapper": "@functools.wraps(fn)\n        async def wrapper(*args, **kwargs):",
            "Job": "@dataclass\nclass Job:",
            "Queue.parse": '@staticmethod\n    def parse(\n        line: str,\n        sep: str = ",",\n    ) -> Job:',
            "main": "async def main() -> None:",
        },
    ),
    Case(
        "javascript",
        "javascript/sample.js",
        [
            ("normalize", "function", 10),
            ("readBody", "function", 14),
            ("walk", "function", 20),
            ("notFound", "function", 24),
            ("json", "function", 29),
            ("legacyHandler", "function", 31),
            ("ok", "function", 35),  # two declarators in one `let`: each is its own definition
            ("created", "function", 35),
            ("Router", "class", 37),
            ("Router.constructor", "method", 40),
            ("Router.size", "method", 44),
            ("Router.add", "method", 48),
            ("Router.handle", "method", 54),
            ("Router.methods", "method", 60),
            ("middleware.logger", "method", 66),
            ("middleware.timer", "method", 69),
            ("serve", "function", 75),
            ("serve.onListen", "function", 76),
        ],
        [
            'import http from "node:http";',
            'import { parse as parseUrl } from "node:url";',
            'import * as log from "./log.js";',
            'const path = require("node:path");',
        ],
        parents={
            "Router.constructor": "Router",
            "Router.size": "Router",
            "Router.add": "Router",
            "Router.handle": "Router",
            "Router.methods": "Router",
            "serve.onListen": "serve",
        },
        signatures={
            "readBody": "export async function readBody(req)",
            "walk": "function* walk(routes)",
            "notFound": "const notFound = (res) =>",
            "json": "export const json = async (res, body) =>",
            "legacyHandler": "var legacyHandler = function (req, res)",
            "ok": "ok = () =>",
            "Router": "export class Router",
            "Router.size": "get size()",
            "Router.handle": "handle = async (req, res) =>",
            "Router.methods": "static *methods()",
            "middleware.timer": "timer: (label) =>",
            "serve": "export default function serve(router, port = DEFAULT_PORT)",
        },
    ),
    Case(
        "typescript",
        "typescript/sample.ts",
        [
            ("Entry", "interface", 8),
            ("Clock", "interface", 14),
            ("Policy", "enum", 18),
            ("Level", "enum", 23),
            ("hashKey", "function", 26),  # the implementation, not the overload signature on line 25
            ("Store", "class", 30),
            ("Store.constructor", "method", 33),
            ("Store.get", "method", 39),  # not the abstract evict() on line 37
            ("Store.onExpire", "method", 44),
            ("LruStore", "class", 49),  # its decorator's line
            ("LruStore.evict", "method", 51),
            ("LruStore.save", "method", 56),
            ("Stats.ratio", "function", 62),
            ("systemClock.now", "method", 68),
            ("create", "function", 73),
            ("sealed", "function", 76),
        ],
        [
            'import type { Logger } from "./logger";',
            'import { EventEmitter } from "node:events";',
            'import fs = require("node:fs");',
        ],
        parents={
            "Store.constructor": "Store",
            "Store.get": "Store",
            "Store.onExpire": "Store",
            "LruStore.evict": "LruStore",
            "LruStore.save": "LruStore",
        },
        signatures={
            "Entry": "export interface Entry<T>",
            "Policy": "export enum Policy",
            "Level": "const enum Level",
            "hashKey": "export function hashKey(key: Key, seed = 7): string",
            "Store": "export abstract class Store<T> extends EventEmitter",
            "Store.onExpire": "onExpire = (key: string): void =>",
            "LruStore": "@sealed\nexport class LruStore<T> extends Store<T>",
            "create": "export const create = <T,>(policy: Policy = Policy.Lru): Store<T> =>",
        },
    ),
    Case(
        "tsx",
        "tsx/sample.tsx",
        [
            ("Todo", "interface", 6),
            ("ItemProps", "interface", 12),
            ("Filter", "enum", 17),
            ("Item", "function", 23),
            ("visible", "function", 29),
            ("TodoList", "function", 40),
            ("TodoList.renderEmpty", "function", 47),  # `toggle` holds a useCallback(...) call, not a function
            ("ErrorBoundary", "class", 61),
            ("ErrorBoundary.getDerivedStateFromError", "method", 64),
            ("ErrorBoundary.handleRetry", "method", 68),
            ("ErrorBoundary.render", "method", 72),
        ],
        [
            'import React, { useCallback, useState } from "react";',
            'import type { ReactNode } from "react";',
            'import styles from "./TodoList.module.css";',
        ],
        parents={
            "TodoList.renderEmpty": "TodoList",
            "ErrorBoundary.getDerivedStateFromError": "ErrorBoundary",
            "ErrorBoundary.handleRetry": "ErrorBoundary",
            "ErrorBoundary.render": "ErrorBoundary",
        },
        signatures={
            "Item": "const Item = ({ todo, onToggle }: ItemProps) =>",
            "TodoList": "export default function TodoList({ initial }: { initial: Todo[] })",
            "ErrorBoundary.getDerivedStateFromError": "static getDerivedStateFromError(): { failed: boolean }",
        },
    ),
    Case(
        "go",
        "go/sample.go",
        [
            ("Store", "interface", 15),
            ("Memory", "struct", 21),
            ("Snapshot", "struct", 27),  # grouped `type ( ... )`: each spec on its own
            ("Watcher", "interface", 28),
            ("Stack", "struct", 33),
            ("NewMemory", "function", 38),
            ("Memory.Get", "method", 42),
            ("Memory.Set", "method", 52),
            ("Memory.Len", "method", 58),
            ("Stack.Push", "method", 60),
            ("Stack.Peek", "method", 64),
            ("Map", "function", 72),
        ],
        ["package store", 'import "errors"', 'import (\n\t"fmt"\n\t"sync"\n)'],
        signatures={
            "Store": "type Store interface",
            "Memory": "type Memory struct",
            "Snapshot": "Snapshot struct",
            "Stack": "type Stack[T any] struct",
            "Memory.Len": "func (m Memory) Len() int",
            "Stack.Push": "func (s *Stack[T]) Push(v T)",
            "Map": "func Map[T, U any](xs []T, f func(T) U) []U",
        },
    ),
    Case(
        "rust",
        "rust/sample.rs",
        [
            ("Point", "struct", 8),  # attributes are the item's siblings, not part of it
            ("Shape", "enum", 13),
            ("Area", "trait", 18),
            ("Area.describe", "method", 21),  # not the bodiless area() on line 19
            ("Shape.area", "method", 27),
            ("Point.fmt", "method", 36),
            ("Stack", "struct", 41),
            ("Stack.new", "method", 47),
            ("Stack.push", "method", 51),
            ("largest", "function", 61),
            ("tests.unit", "function", 72),
            ("tests.square_area", "function", 77),
        ],
        ["extern crate alloc;", "use std::collections::VecDeque;", "use std::fmt::{self, Display};"],
        parents={"Area.describe": "Area"},
        signatures={
            "Point": "pub struct Point",
            "Point.fmt": "fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result",
            "Stack.push": "pub fn push(&mut self, item: T) -> Option<T>",
            "largest": "pub fn largest<S: Area>(shapes: &[S]) -> Option<&S>\nwhere\n    S: Display,",
        },
    ),
    Case(
        "java",
        "java/sample.java",
        [
            ("OrderService", "class", 8),  # its annotation's line
            ("OrderService.OrderService", "constructor", 12),
            ("OrderService.OrderService", "constructor", 16),
            ("OrderService.toString", "method", 20),
            ("OrderService.place", "method", 25),
            ("OrderService.Listener", "interface", 30),
            ("OrderService.Listener.wants", "method", 33),  # not the bodiless onPlaced on line 31
            ("OrderService.Status", "enum", 38),
            ("OrderService.Status.isFinal", "method", 42),
            ("OrderService.Line", "record", 47),
            ("OrderService.Line.Line", "constructor", 48),
            ("OrderService.Order", "class", 55),
            ("OrderService.Order.total", "method", 58),
            ("OrderService.Order.Builder", "class", 62),
            ("OrderService.Order.Builder.add", "method", 65),
            ("OrderService.Base", "class", 72),  # its abstract validate() is no record
        ],
        [
            "package com.example.orders;",
            "import java.util.ArrayList;",
            "import java.util.List;",
            "import static java.util.Objects.requireNonNull;",
        ],
        parents={
            "OrderService.OrderService": "OrderService",
            "OrderService.toString": "OrderService",
            "OrderService.place": "OrderService",
            "OrderService.Listener": "OrderService",
            "OrderService.Listener.wants": "OrderService.Listener",
            "OrderService.Status": "OrderService",
            "OrderService.Status.isFinal": "OrderService.Status",
            "OrderService.Line": "OrderService",
            "OrderService.Line.Line": "OrderService.Line",
            "OrderService.Order": "OrderService",
            "OrderService.Order.total": "OrderService.Order",
            "OrderService.Order.Builder": "OrderService.Order",
            "OrderService.Order.Builder.add": "OrderService.Order.Builder",
            "OrderService.Base": "OrderService",
        },
        signatures={
            "OrderService": '@Deprecated(since = "2.0")\npublic class OrderService',
            "OrderService.toString": "@Override\n    public String toString()",
            "OrderService.place": "public <T extends Order> T place(T order)",
            "OrderService.Line": "public record Line(String sku, int quantity)",
            "OrderService.Line.Line": "public Line",
        },
    ),
]


def _parsed(case: Case) -> tuple[bytes, ParsedFile]:
    source = (FIXTURES / case.fixture).read_bytes()
    return source, parse(case.language, source)


@pytest.mark.parametrize("case", CASES, ids=[c.language for c in CASES])
def test_definitions(case: Case) -> None:
    _, parsed = _parsed(case)
    found = [(d.qualified_name, d.kind, d.start_line + 1) for d in parsed.definitions]
    assert found == case.definitions
    assert not parsed.has_error
    assert not any(d.has_error for d in parsed.definitions)


@pytest.mark.parametrize("case", CASES, ids=[c.language for c in CASES])
def test_signatures_end_where_the_body_starts(case: Case) -> None:
    source, parsed = _parsed(case)
    by_name = {d.qualified_name: d.signature for d in parsed.definitions}
    for qualified_name, signature in case.signatures.items():
        assert by_name[qualified_name] == signature, qualified_name
    for d in parsed.definitions:
        text = source[d.start_byte : d.end_byte].decode()
        assert text.startswith(d.signature), d.qualified_name
        assert d.name in d.signature, d.qualified_name
        # The body's opening brace (or, for Python, anything after the colon) is never in a signature.
        assert not d.signature.endswith("{"), d.qualified_name
        if case.language == "python":
            assert d.signature.endswith(":"), d.qualified_name
        else:
            assert len(d.signature) < len(text), d.qualified_name


@pytest.mark.parametrize("case", CASES, ids=[c.language for c in CASES])
def test_header_holds_the_imports(case: Case) -> None:
    _, parsed = _parsed(case)
    assert parsed.header == "\n".join(case.header)


@pytest.mark.parametrize("case", CASES, ids=[c.language for c in CASES])
def test_parents(case: Case) -> None:
    _, parsed = _parsed(case)
    for d in parsed.definitions:
        parent = parsed.definitions[d.parent].qualified_name if d.parent is not None else None
        assert parent == case.parents.get(d.qualified_name), d.qualified_name
        if d.parent is not None:
            outer = parsed.definitions[d.parent]
            assert outer.start_byte <= d.start_byte and d.end_byte <= outer.end_byte
    for index, d in enumerate(parsed.definitions):
        assert all(child.parent == index for child in parsed.children(index))
        if d.parent is not None:
            assert d in parsed.children(d.parent)


def test_enclosing_signatures() -> None:
    case = next(c for c in CASES if c.language == "java")
    _, parsed = _parsed(case)
    index = next(i for i, d in enumerate(parsed.definitions) if d.qualified_name == "OrderService.Order.Builder.add")
    assert parsed.enclosing_signatures(index) == (
        '@Deprecated(since = "2.0")\npublic class OrderService',
        "public static class Order",
        "static class Builder",
    )


def test_every_language_has_a_fixture_case() -> None:
    assert sorted(c.language for c in CASES) == sorted(LANGUAGES)


QUERY_FILES = sorted(p.parent.name for p in Path(str(resources.files("codedouble.grammars"))).glob("*/definitions.scm"))
CAPTURES = {"name", "receiver", "scope", "import"}


@pytest.mark.parametrize("folder", QUERY_FILES)
def test_query_compiles_for_its_languages(folder: str) -> None:
    languages = [name for name, s in LANGUAGES.items() if s.query_dir == folder]
    assert languages, f"grammars/{folder}/definitions.scm belongs to no language"
    source = (Path(str(resources.files("codedouble.grammars"))) / folder / "definitions.scm").read_text()
    for language in languages:
        compiled = ts.Query(ts_language(language), source)
        assert compiled.pattern_count > 0
        for i in range(compiled.capture_count):
            name = compiled.capture_name(i)
            # Captures starting with `_` only feed predicates; parse() reads no others than these.
            assert name in CAPTURES or name.startswith(("definition.", "_")), (language, name)
    assert folder == "typescript" or len(languages) == 1
    if folder == "typescript":
        assert sorted(languages) == ["tsx", "typescript"]


def test_every_language_has_a_query() -> None:
    for language in LANGUAGES:
        assert query(language).pattern_count > 0


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("pkg/mod.py", "python"),
        ("stubs/mod.pyi", "python"),
        ("src/app.js", "javascript"),
        ("src/app.mjs", "javascript"),
        ("src/app.cjs", "javascript"),
        ("src/App.jsx", "javascript"),
        ("src/app.ts", "typescript"),
        ("src/app.mts", "typescript"),
        ("src/app.cts", "typescript"),
        ("src/App.tsx", "tsx"),
        ("cmd/main.go", "go"),
        ("src/lib.rs", "rust"),
        ("src/Main.java", "java"),
        ("SRC/MAIN.PY", "python"),
        ("types/index.d.ts", None),
        ("types/index.d.mts", None),
        ("types/index.d.cts", None),
        ("types/INDEX.D.TS", None),
        ("src/d.ts", "typescript"),  # a file named `d.ts` is no declaration file
        ("main.cob", None),
        ("Makefile", None),
        ("notes.txt", None),
    ],
)
def test_language_for_path(path: str, language: str | None) -> None:
    assert language_for_path(path) == language


def test_unknown_language() -> None:
    with pytest.raises(UnknownLanguageError, match="cobol") as excinfo:
        spec("cobol")
    message = str(excinfo.value)
    for known in LANGUAGES:
        assert known in message
    assert isinstance(excinfo.value, ValueError)


BROKEN = {
    "python": (
        "import os\n"
        "\n"
        "\n"
        "def good(a):\n"
        "    return a + 1\n"
        "\n"
        "\n"
        "def broken(x):\n"
        "    total = x +* 2\n"
        "    return total\n"
        "\n"
        "\n"
        "class Fine:\n"
        "    def method(self):\n"
        "        return os.sep\n"
    ),
    "typescript": (
        'import { a } from "./a";\n'
        "\n"
        "export function good(x: number): number {\n"
        "  return x + a;\n"
        "}\n"
        "\n"
        "function broken(x: number) {\n"
        "  const y = x +* 2;\n"
        "  return y;\n"
        "}\n"
        "\n"
        "class Fine {\n"
        "  method(): string {\n"
        '    return "ok";\n'
        "  }\n"
        "}\n"
    ),
}


@pytest.mark.parametrize("language", sorted(BROKEN))
def test_syntax_error_keeps_the_definitions_that_parse(language: str) -> None:
    parsed = parse(language, BROKEN[language].encode())
    assert parsed.has_error
    found = {d.qualified_name: d for d in parsed.definitions}
    assert list(found) == ["good", "broken", "Fine", "Fine.method"]
    assert found["broken"].has_error
    assert not any(d.has_error for name, d in found.items() if name != "broken")
    assert "import" in parsed.header


@pytest.mark.parametrize(
    ("language", "source", "expected"),
    [
        # Impl types written with a path and generics qualify by their bare name.
        (
            "rust",
            "impl<T> std::fmt::Debug for crate::a::Wrapper<T> { fn fmt(&self) {} }\n"
            "impl Wrapper2 { fn new() -> Self { Wrapper2 } }\n",
            [("Wrapper.fmt", "method"), ("Wrapper2.new", "method")],
        ),
        # A receiver in parentheses is still a method, just unqualified.
        ("go", "package p\n\nfunc (s *(Server)) Run() {}\n", [("Run", "method")]),
        # A declaration with two function declarators gives each its declarator.
        (
            "javascript",
            "export const a = () => 1, b = function () {};\n",
            [("a", "function"), ("b", "function")],
        ),
        # Namespaces qualify what they hold; `declare` overloads are no records.
        (
            "typescript",
            "namespace A.B {\n  export function f(): void {}\n  export declare function g(): void;\n}\n",
            [("A.B.f", "function")],
        ),
    ],
)
def test_edge_cases(language: str, source: str, expected: list[tuple[str, str]]) -> None:
    parsed = parse(language, source.encode())
    assert [(d.qualified_name, d.kind) for d in parsed.definitions] == expected
