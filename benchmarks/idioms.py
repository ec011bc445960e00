"""Common idioms in the six languages, cut mid-line in a scratch file: does a model still know code in general?

    python benchmarks/idioms.py MODEL_DIR [MODEL_DIR ...] [--runtime fp32|int8] [--show]

MODEL_DIR is the base (`trainer/base/weights`) or a double. Each line below is one every programmer types
(imports, `if err != nil {`, `public static void main(String[] args) {`), typed into a small new file up to
the cursor; the model's one-line completion (the server's own path: `Neural`, prompt cut, token healing,
greedy) is right when it is one of the accepted rests of the line. Scored per language and in all.

A double gets two more rows: `answering`, the model its engine asks (the double's own, or its base in a
language the double did not learn: server/engine/routing.py), and `served`, what the editor is shown
(the whole engine with abstention: right of shown, of all).

This is the kind of check a new user makes in the first minute, and the one a fine-tune on a Python history
can quietly fail at in Go or Java: `codedouble base score` measures the same forgetting in bits per byte,
this in lines a user would see. It is this repository's own list, written once and not tuned against (the
issue's check of the same kind is hidden, and a list one optimises for stops measuring anything). Only the
model is asked: the n-gram and retrieval of a double have no evidence in a scratch file of another language.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from codedouble.server.engine import engine as engines
from codedouble.server.engine.document import Request
from codedouble.server.engine.neural import Neural


@dataclass(frozen=True)
class Idiom:
    path: str  # the scratch file's name: it says the language, as an editor's buffer does
    prefix: str  # the file up to the cursor
    accepted: tuple[str, ...]  # rests of the line that are right


def _i(path: str, prefix: str, *accepted: str) -> Idiom:
    return Idiom(path, prefix, accepted)


IDIOMS: tuple[Idiom, ...] = (
    # Python
    _i("tool.py", "from __fu", "ture__ import annotations"),
    _i("tool.py", 'import sys\n\n\ndef main() -> int:\n    return 0\n\n\nif __name__ == "__ma', 'in__":'),
    _i(
        "tool.py",
        'import sys\n\n\ndef main() -> int:\n    return 0\n\n\nif __name__ == "__main__":\n    sys.ex',
        "it(main())",
    ),
    _i("tool.py", "import json\n\n\ndef load(path):\n    with open(path) as f:\n        return json.lo", "ad(f)"),
    _i("tool.py", "import logging\n\nlogger = logging.getLogger(__", "name__)"),
    _i("tool.py", "import argparse\n\nparser = argparse.ArgumentParser()\nargs = parser.parse_", "args()"),
    _i("tool.py", "import os\n\nHERE = os.path.dirname(os.path.abspath(__fi", "le__))"),
    _i("tool.py", "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y", " = y"),
    # Go
    _i("main.go", 'package main\n\nimport "f', 'mt"'),
    _i(
        "main.go",
        'package main\n\nimport "os"\n\nfunc main() {\n\tf, err := os.Open("data.txt")\n\tif err != n',
        "il {",
    ),
    _i(
        "main.go",
        'package main\n\nimport "os"\n\nfunc main() {\n\tf, err := os.Open("data.txt")\n\tif err != nil {\n\t\tpanic(err)\n\t}\n\tdefer f.Cl',
        "ose()",
    ),
    _i("main.go", "package main\n\nfunc main() {\n\tmu.Lock()\n\tdefer mu.Un", "lock()"),
    _i("main.go", 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hello, wor', 'ld")'),
    _i("main.go", "package main\n\nfunc sum(items []int) int {\n\ttotal := 0\n\tfor _, item := range it", "ems {"),
    _i("main.go", 'package main\n\nimport "net/http"\n\nfunc handler(w http.ResponseWriter, r *http.Req', "uest) {"),
    _i(
        "main.go",
        "package main\n\nfunc main() {\n\tctx, cancel := context.WithCancel(context.Background())\n\tdefer can",
        "cel()",
    ),
    # Rust
    _i("main.rs", "use std::collections::Hash", "Map;"),
    _i("main.rs", 'fn main() {\n    println!("Hello, wor', 'ld!");'),
    _i("main.rs", "fn main() {\n    let mut v = Vec::ne", "w();"),
    _i("main.rs", "use std::env;\n\nfn main() {\n    let args: Vec<String> = env::args().coll", "ect();"),
    _i("lib.rs", "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\n#[cfg(te", "st)]"),
    _i(
        "lib.rs",
        "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\n#[cfg(test)]\nmod tests {\n    use super::",
        "*;",
    ),
    _i(
        "main.rs",
        "use std::fs::File;\nuse std::io;\n\nfn open(path: &str) -> io::Result<File> {\n    let file = File::open(path)",
        "?;",
    ),
    _i("main.rs", "#[derive(Debug, Clone, Part", "ialEq)]", "ialEq, Eq)]"),
    # JavaScript
    _i("index.js", "const fs = requ", "ire('fs');", 'ire("fs");', "ire('fs')", 'ire("fs")'),
    _i("index.js", "'use str", "ict';", "ict'"),
    _i("index.js", "const path = require('pa", "th');", "th')"),
    _i("index.js", "const express = require('express');\nconst app = expr", "ess();", "ess()"),
    _i("index.js", "function load(items) {\n  for (let i = 0; i < items.len", "gth; i++) {"),
    _i(
        "index.js",
        "async function get(url) {\n  const response = await fetch(url);\n  const data = await response.js",
        "on();",
        "on()",
    ),
    _i(
        "index.js", "function wait(ms) {\n  return new Promise((resolve) => setTimeout(res", "olve, ms));", "olve, ms))"
    ),
    _i("index.js", "function parse(text) {\n  try {\n    return JSON.parse(text);\n  } catch (er", "r) {", "ror) {"),
    # TypeScript
    _i("extension.ts", "import * as vscode from 'vsc", "ode';", "ode'"),
    _i("App.tsx", "import React, { useState } from 're", "act';", "act'"),
    _i(
        "App.tsx",
        "import React, { useState } from 'react';\n\nexport function Counter() {\n  const [count, setCount] = useSt",
        "ate(0);",
        "ate(0)",
    ),
    _i("types.ts", "export type Maybe<T> = T | nu", "ll;", "ll"),
    _i("types.ts", "interface User {\n  id: number;\n  name: str", "ing;"),
    _i(
        "util.ts", "export function sum(items: number[]): number {\n  let total = 0;\n  for (const item of ite", "ms) {"
    ),
    _i("util.ts", "export async function load(url: string): Promise<str", "ing> {"),
    _i(
        "util.ts",
        "export class Store {\n  private readonly items: Map<string, number> = new M",
        "ap();",
        "ap<string, number>();",
    ),
    # Java
    _i("Main.java", "public class Main {\n    public static void main(String[] ar", "gs) {"),
    _i(
        "Main.java",
        'public class Main {\n    public static void main(String[] args) {\n        System.out.println("Hello, World',
        '!");',
    ),
    _i("Main.java", "import java.util.Li", "st;"),
    _i(
        "Main.java",
        "import java.util.ArrayList;\nimport java.util.List;\n\npublic class Main {\n    private final List<String> names = new ArrayL",
        "ist<>();",
    ),
    _i("Main.java", "public class Point {\n    private final int x;\n\n    @Over", "ride"),
    _i(
        "Main.java",
        "public class Main {\n    public static void main(String[] args) {\n        for (int i = 0; i < args.length; i+",
        "+) {",
    ),
    _i(
        "Main.java",
        "import java.util.HashMap;\nimport java.util.Map;\n\npublic class Main {\n    private final Map<String, Integer> counts = new HashM",
        "ap<>();",
    ),
    _i(
        "Point.java",
        "public class Point {\n    private final int x;\n\n    @Override\n    public String toStr",
        "ing() {",
    ),
)


def score(ask: Callable[[Request], str], idioms: tuple[Idiom, ...] = IDIOMS) -> list[tuple[Idiom, str, bool]]:
    """Each idiom with the answer `ask` gives (empty: nothing shown) and whether it is one of the accepted rests."""
    out = []
    for idiom in idioms:
        got = ask(Request(idiom.path, idiom.prefix, "", "line"))
        out.append((idiom, got, got.rstrip() in idiom.accepted))
    return out


def _fresh(model: Neural) -> Callable[[Request], str]:
    def ask(request: Request) -> str:
        model.clear()  # each idiom is a new file: nothing of the last one's key-value cache applies
        return model.complete(request)

    return ask


def _language(idiom: Idiom) -> str:
    return Request(idiom.path, "", "", "line").language or "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", type=Path, metavar="MODEL_DIR")
    parser.add_argument("--runtime", default="fp32", choices=("fp32", "int8"))
    parser.add_argument("--show", action="store_true", help="print every completion")
    args = parser.parse_args()
    languages = sorted({_language(i) for i in IDIOMS})
    print("right of", len(IDIOMS), "idioms:", "  ".join(languages), "  all  (shown)  model")
    for folder in args.models:
        model = Neural(folder, threads=None, runtime=args.runtime)
        rows: list[tuple[str, Callable[[Request], str]]] = [("model", _fresh(model))]
        if (folder / "corpus.jsonl").is_file():  # a double (the base has no corpus of anyone's code)
            engine = engines.load(folder)
            answering = engine.combined.model
            rows.append(("answering", lambda r, m=answering: m.complete(r)))
            rows.append(("served", lambda r, e=engine: e.propose(r).text))
        for row, ask in rows:
            results = score(ask)
            right: dict[str, int] = defaultdict(int)
            total: dict[str, int] = defaultdict(int)
            for idiom, got, ok in results:
                total[_language(idiom)] += 1
                right[_language(idiom)] += ok
                if args.show:
                    print(f"  {row} {'✓' if ok else '✗'} {idiom.path}: …{idiom.prefix[-30:]!r} → {got!r}")
            shown = sum(bool(got.strip()) for _, got, _ in results)
            cells = "  ".join(f"{right[lang]}/{total[lang]}" for lang in languages)
            print(f"{cells}  {sum(right.values())}/{len(results)}  ({shown})  {row}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
