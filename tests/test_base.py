"""The pretrained base (`codedouble base corpus|train`): licence decisions, the corpus built from sources made in
tmp_path (fake installed distributions, a fake Debian package, a fake node_modules), a tiny pretraining run, its
base folder, fine-tuning a double from it, the command line, and the base shipped with the package.

Every source is built by the test: nothing here reads the machine's own packages or reaches the network. The
pretrained model is tiny and trains for a few steps: the tests check the pipeline's contract, not what it learns.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import shlex
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_train import TINY, build_history, mine_all
from transformers import AutoModelForCausalLM, AutoTokenizer

import codedouble.trainer.base as base_package
from codedouble.server.contract import prompt
from codedouble.server.engine import engine as engines
from codedouble.server.engine.document import Request
from codedouble.server.engine.neural import Neural
from codedouble.server.engine.routing import ByLanguage
from codedouble.trainer import cli
from codedouble.trainer.base import corpus, licenses, shipped, sources
from codedouble.trainer.base import pretrain as pretraining
from codedouble.trainer.base.corpus import CorpusOptions
from codedouble.trainer.base.licenses import Licence
from codedouble.trainer.base.pretrain import PretrainOptions, pretrain
from codedouble.trainer.base.sources import Source
from codedouble.trainer.mining import filters
from codedouble.trainer.training import rehearsal
from codedouble.trainer.training.train import TrainError, train
from conftest import GitRepo, isolate_git

PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
# A planted AWS access key id (AKIA + 16 of A-Z2-7): detect-secrets' AWS plugin finds it, as in test_secrets.py.
AWS_KEY = "AKIAQ3EGRPXK7TZW2M5B"
STEPS, BATCH, BLOCK = 4, 2, 64


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def corpus_files(folder: Path) -> list[dict[str, str]]:
    return list(corpus.read_files(folder))


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def _own_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes a double into the real data directory."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


# --- 1. licence decisions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "MIT",
        "BSD-3-Clause",
        "Apache-2.0",
        "PSF-2.0",
        "ISC",
        "Zlib",
        "Unlicense",
        "Apache-2.0 OR GPL-3.0",
        "GPL-3.0 OR Apache-2.0",
        "MIT AND BSD-2-Clause",
        "Apache-2.0 WITH LLVM-exception",
        "(MIT OR GPL-2.0) AND ISC",
        "mit",
    ],
)
def test_a_permissive_spdx_expression_is_kept(expression: str) -> None:
    assert licenses.spdx_permissive(expression)
    decided = licenses.decide(expression=expression)
    assert decided == Licence(expression, "License-Expression", True)


@pytest.mark.parametrize(
    "expression",
    [
        "GPL-3.0-only",
        "LGPL-2.1-or-later",
        "MPL-2.0",
        "AGPL-3.0-or-later",
        "MIT AND GPL-2.0",
        "GPL-2.0 AND MIT",
        "GPL-2.0 WITH Classpath-exception-2.0",
        "LicenseRef-Proprietary",
        "(MIT OR GPL-2.0) AND LGPL-3.0",
    ],
)
def test_a_copyleft_or_unknown_spdx_expression_is_rejected(expression: str) -> None:
    assert not licenses.spdx_permissive(expression)
    decided = licenses.decide(expression=expression)
    assert decided == Licence(expression, "License-Expression", False)


@pytest.mark.parametrize(
    "expression",
    ["MIT (", "(MIT", "MIT)", "MIT AND", "OR MIT", "MIT MIT", "MIT WITH", "", "   ", "MIT OR OR", "OR OR MIT"],
)
def test_a_malformed_spdx_expression_is_rejected(expression: str) -> None:
    """An expression that does not parse says nothing reliable about the licence: it is never kept."""
    assert not licenses.spdx_permissive(expression)


MIT_TEXT = """MIT License

Copyright (c) 2021 Example Authors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software."""

GPL_TEXT = """GNU GENERAL PUBLIC LICENSE
Version 3, 29 June 2007

Copyright (C) 2007 Free Software Foundation, Inc. Everyone is permitted to copy and distribute
verbatim copies of this license document, but changing it is not allowed."""


@pytest.mark.parametrize(
    ("expression", "field", "classifiers", "spdx", "evidence", "kept"),
    [
        (None, "Apache 2.0", [], "Apache-2.0", "License", True),
        (None, "BSD-3-Clause", [], "BSD-3-Clause", "License", True),
        (None, "MIT License", [], "MIT", "License", True),
        (None, "", ["License :: OSI Approved :: MIT License"], "MIT", "classifier", True),
        (None, "UNKNOWN", ["License :: OSI Approved :: BSD License"], "BSD-3-Clause", "classifier", True),
        (
            None,
            None,
            ["Programming Language :: Python", "License :: OSI Approved :: Apache Software License"],
            "Apache-2.0",
            "classifier",
            True,
        ),
        (None, MIT_TEXT, [], "MIT", "licence text", True),
        # The expression outranks the rest; the field outranks the classifiers.
        (
            "MIT",
            "GPL-3.0",
            ["License :: OSI Approved :: GNU General Public License v3 (GPLv3)"],
            "MIT",
            "License-Expression",
            True,
        ),
        ("GPL-3.0-only", "MIT", [], "GPL-3.0-only", "License-Expression", False),
        (None, "GPL-3.0-or-later", [], "GPL-3.0-or-later", "License", False),
        (None, "UNKNOWN", [], "", "unknown", False),
        (None, None, [], "", "unknown", False),
        (
            None,
            "",
            ["License :: OSI Approved :: GNU General Public License v3 (GPLv3)"],
            "GPL-3.0",
            "classifier",
            False,
        ),
        (
            None,
            "",
            [
                "License :: OSI Approved :: MIT License",
                "License :: OSI Approved :: GNU General Public License v2 (GPLv2)",
            ],
            "MIT AND GPL-2.0",
            "classifier",
            False,
        ),  # several classifiers: all of them apply
        (None, "", ["License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)"], "MPL-2.0", "classifier", False),
        (
            None,
            "",
            ["License :: Other/Proprietary License"],
            "LicenseRef-Other-Proprietary-License",
            "classifier",
            False,
        ),
        (None, GPL_TEXT, [], "GPL", "licence text", False),
        (None, "MIT (", [], None, None, False),
    ],
)
def test_decide_reads_core_metadata_in_order_of_authority(
    expression: str | None,
    field: str | None,
    classifiers: list[str],
    spdx: str | None,
    evidence: str | None,
    kept: bool,
) -> None:
    decided = licenses.decide(expression, field, classifiers)
    assert decided.permissive is kept, decided
    if spdx is not None:
        assert decided.spdx == spdx, decided
    if evidence is not None:
        assert decided.evidence == evidence, decided


# --- 2. fake installed distributions through the corpus ------------------------------------------------------


def make_distribution(site: Path, name: str, headers: list[str], files: dict[str, str | bytes]) -> None:
    """An installed distribution as pip leaves it: NAME-1.0.dist-info/{METADATA,RECORD} and its files in `site`."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    metadata = "\n".join(["Metadata-Version: 2.4", f"Name: {name}", "Version: 1.0", *headers]) + "\n\nA description.\n"
    (info / "METADATA").write_text(metadata, encoding="utf-8")
    for relpath, content in files.items():
        path = site / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    record = [f"{relpath},," for relpath in files] + [
        f"{info.name}/METADATA,,",
        f"{info.name}/RECORD,,",
        "../../bin/tool,,",
    ]
    (info / "RECORD").write_text("\n".join(record) + "\n", encoding="utf-8")


def module(marker: str) -> str:
    """A small hand-written-looking module that names `marker`, so that the test can find it in files.jsonl."""
    return f'''"""Helpers of {marker}."""


def {marker.lower()}(values):
    total = 0
    for value in values:
        total += value
    return total
'''


# (distribution, METADATA licence lines, kept)
LICENSED: list[tuple[str, list[str], bool]] = [
    ("mit_pkg", ["License: MIT"], True),
    ("bsd_pkg", ["License: UNKNOWN", "Classifier: License :: OSI Approved :: BSD License"], True),
    ("apache_pkg", ["License-Expression: Apache-2.0"], True),
    (
        "pasted_pkg",
        [
            "License: MIT License",
            "        ",
            "        Permission is hereby granted, free of charge, to any person",
            "        obtaining a copy of this software",
        ],
        True,
    ),
    ("gpl_pkg", ["License: GPL-3.0-or-later"], False),
    ("gpl_classifier_pkg", ["Classifier: License :: OSI Approved :: GNU General Public License v3 (GPLv3)"], False),
    ("mpl_pkg", ["License-Expression: MPL-2.0"], False),
    ("unknown_pkg", [], False),
]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A site-packages folder with one distribution per licence above, and one to exclude."""
    folder = tmp_path / "site-packages"
    for name, headers, _ in LICENSED:
        make_distribution(folder, name, headers, {f"{name}/__init__.py": module(f"MARKER_{name.upper()}")})
    make_distribution(folder, "Excluded_Pkg", ["License: MIT"], {"excluded_pkg/core.py": module("MARKER_EXCLUDED")})
    return folder


def test_the_licence_filter_keeps_permissive_distributions_and_rejects_the_rest(site: Path, tmp_path: Path) -> None:
    found = list(sources.python_distributions(exclude=frozenset({"excluded-pkg"}), path=[str(site)]))
    assert sorted(s.name for s in found) == sorted(name for name, _, _ in LICENSED)
    assert all(s.kind == "python-distribution" and s.version == "1.0" for s in found)
    for s in found:
        # Only the package's .py files: never the dist-info files or a path outside the site folder.
        assert [p for p, _ in s.files] == [f"{s.name}/{s.name}/__init__.py"], s
        assert all(location.is_file() and site in location.parents for _, location in s.files)

    out = tmp_path / "corpus"
    manifest = corpus.build(found, out)
    assert read_json(out / corpus.MANIFEST) == manifest
    kept = {s["name"]: s for s in manifest["sources"]}
    rejected = {s["name"]: s for s in manifest["rejected_sources"]}
    assert set(kept) == {name for name, _, ok in LICENSED if ok}
    assert set(rejected) == {name for name, _, ok in LICENSED if not ok}
    assert kept["bsd_pkg"]["evidence"] == "classifier" and kept["bsd_pkg"]["licence"] == "BSD-3-Clause"
    assert kept["apache_pkg"]["evidence"] == "License-Expression"
    assert kept["pasted_pkg"]["evidence"] == "licence text" and kept["pasted_pkg"]["licence"] == "MIT"
    assert rejected["unknown_pkg"]["reason"] == "licence unknown" and rejected["unknown_pkg"]["licence"] == "unknown"
    for name in ("gpl_pkg", "gpl_classifier_pkg", "mpl_pkg"):
        assert rejected[name]["reason"] == "licence not permissive", rejected[name]

    texts = corpus_files(out)
    by_source: dict[str, list[dict[str, str]]] = {}
    for row in texts:
        by_source.setdefault(row["source"], []).append(row)
    assert set(by_source) == set(kept)
    for name, entry in kept.items():
        rows = by_source[name]
        assert entry["files"] == len(rows) == 1
        assert entry["bytes"] == sum(len(r["text"].encode()) for r in rows)
        assert entry["languages"] == {"python": entry["bytes"]}
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
        assert f"MARKER_{name.upper()}" in rows[0]["text"] and rows[0]["language"] == "python"
    everything = (out / corpus.FILES).read_text(encoding="utf-8")
    for name, _, ok in LICENSED:
        assert (f"MARKER_{name.upper()}" in everything) is ok, name
    assert "MARKER_EXCLUDED" not in everything
    assert manifest["files"] == len(texts) and manifest["bytes"] == sum(s["bytes"] for s in kept.values())
    assert manifest["languages"] == {"python": {"files": len(texts), "bytes": manifest["bytes"]}}


def test_exclude_drops_a_named_distribution_and_the_first_on_the_path_wins(site: Path, tmp_path: Path) -> None:
    assert "Excluded_Pkg" in {s.name for s in sources.python_distributions(path=[str(site)])}
    assert "Excluded_Pkg" not in {
        s.name for s in sources.python_distributions(exclude=frozenset({"excluded-pkg"}), path=[str(site)])
    }
    # A second copy later on the path (an older install) is shadowed, as it is for imports.
    later = tmp_path / "later"
    make_distribution(later, "mit_pkg", ["License: GPL-3.0-only"], {"mit_pkg/__init__.py": module("MARKER_SHADOWED")})
    found = [s for s in sources.python_distributions(path=[str(site), str(later)]) if s.name == "mit_pkg"]
    assert len(found) == 1 and found[0].licence.spdx == "MIT"
    assert all(later not in location.parents for _, location in found[0].files)


# --- 3. the miner's filters, secrets, caps and the manifest's hash ---------------------------------------------

CORE = module("MARKER_CORE")
GOOD = {
    "filtered/core.py": CORE,
    "filtered/util.py": module("MARKER_UTIL"),
    "filtered/settings.py": f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"\nREGION = "eu-west-1"\n',
}
BAD: dict[str, tuple[str, str | bytes]] = {
    "filtered/tests/test_x.py": (filters.TEST, module("MARKER_TEST_DIR")),
    "filtered/conftest.py": (filters.TEST, module("MARKER_CONFTEST")),
    "filtered/_vendor/six.py": (filters.VENDORED, module("MARKER_UNDERSCORE_VENDOR")),
    "filtered/vendor/lib.py": (filters.VENDORED, module("MARKER_VENDOR")),
    "filtered/api_pb2.py": (filters.GENERATED, module("MARKER_PB2")),
    "filtered/models.py": (filters.GENERATED, "# Code generated by modelgen. DO NOT EDIT.\n" + module("MARKER_HEADER")),
    "filtered/blob.py": (filters.BINARY, b"MARKER_BINARY = 1\n\x00\x01\x02\x00\n"),
    "filtered/latin1.py": (filters.NOT_UTF8, "MARKER_LATIN1 = 'caf\xe9'\n".encode("latin-1")),
    "filtered/copy_of_core.py": (corpus.DUPLICATE, CORE),
    "filtered/table.py": (filters.TOO_LARGE, "MARKER_LARGE = [\n" + "    1,\n" * 800 + "]\n"),
}
MAX_FILE_BYTES = 4000


def filtered_source(tmp_path: Path) -> Source:
    """One MIT source holding hand-written files, a secret, and one file of each kind the filters refuse."""
    root = tmp_path / "filtered-src"
    files = []
    for relpath, content in [*GOOD.items(), *((p, c) for p, (_, c) in BAD.items())]:
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        files.append((relpath, path))
    return Source("filtered", "1.0", "python-distribution", Licence("MIT", "License", True), tuple(files))


def test_corpus_files_go_through_the_miners_filters(tmp_path: Path) -> None:
    assert len(BAD["filtered/table.py"][1]) > MAX_FILE_BYTES
    out = tmp_path / "corpus"
    manifest = corpus.build([filtered_source(tmp_path)], out, CorpusOptions(max_file_bytes=MAX_FILE_BYTES))
    expected: dict[str, int] = {}
    for reason, _ in BAD.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert manifest["rejected_files"] == expected
    rows = corpus_files(out)
    assert sorted(r["path"] for r in rows) == sorted(GOOD)
    everything = (out / corpus.FILES).read_text(encoding="utf-8")
    for relpath, (reason, content) in BAD.items():
        if reason != corpus.DUPLICATE:
            marker = re.search(rb"MARKER_\w+", content if isinstance(content, bytes) else content.encode())
            assert marker and marker[0].decode() not in everything, relpath
    assert everything.count("MARKER_CORE") == 1  # the duplicate went, the first copy stayed
    # The secret's file is kept, the secret is not.
    settings_row = next(r for r in rows if r["path"] == "filtered/settings.py")
    assert AWS_KEY not in everything and "eu-west-1" in settings_row["text"]
    assert manifest["secrets_scrubbed"] == {"AWS Access Key": 1}
    assert manifest["options"]["max_file_bytes"] == MAX_FILE_BYTES


def test_a_sources_hash_covers_exactly_its_kept_files(tmp_path: Path) -> None:
    """The per-source sha256 is over (path, scrubbed text) of each kept file, in order: recomputable from files.jsonl."""
    out = tmp_path / "corpus"
    manifest = corpus.build([filtered_source(tmp_path)], out, CorpusOptions(max_file_bytes=MAX_FILE_BYTES))
    digest = hashlib.sha256()
    for row in corpus_files(out):
        digest.update(row["path"].encode() + b"\0" + row["text"].encode() + b"\0")
    (entry,) = manifest["sources"]
    assert entry["sha256"] == digest.hexdigest()


def test_max_source_bytes_caps_one_source_and_not_the_next(tmp_path: Path) -> None:
    def source(name: str, count: int) -> Source:
        files = []
        for i in range(count):
            path = tmp_path / name / f"m{i}.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(module(f"MARKER_{name.upper()}_{i}"), encoding="utf-8")
            files.append((f"{name}/m{i}.py", path))
        return Source(name, "1.0", "npm", Licence("MIT", "package.json", True), tuple(files))

    size = len(module("MARKER_BIG_0").encode())
    cap = 2 * size + 10  # room for three files at most: the cap is checked before each file
    manifest = corpus.build(
        [source("big", 8), source("small", 3)], tmp_path / "corpus", CorpusOptions(max_source_bytes=cap)
    )
    kept = {s["name"]: s for s in manifest["sources"]}
    assert kept["small"]["files"] == 3
    assert 1 <= kept["big"]["files"] <= 3 and kept["big"]["bytes"] < cap + size
    assert manifest["rejected_files"] == {"over the per-source cap": 8 - kept["big"]["files"]}
    assert manifest["options"]["max_source_bytes"] == cap


def test_the_manifest_hash_is_its_identity(tmp_path: Path) -> None:
    first = corpus.build([filtered_source(tmp_path)], tmp_path / "one")
    second = corpus.build([filtered_source(tmp_path)], tmp_path / "two")
    assert re.fullmatch(r"[0-9a-f]{64}", first["sha256"])
    assert (
        first["sha256"]
        == corpus.manifest_hash(first)
        == corpus.manifest_hash(read_json(tmp_path / "one" / corpus.MANIFEST))
    )
    assert second["sha256"] == first["sha256"], "building the same sources twice gives the same corpus"
    # One changed byte in one kept file is another corpus.
    changed = filtered_source(tmp_path)
    util = dict(changed.files)["filtered/util.py"]
    util.write_text(util.read_text().replace("total = 0", "total = 1"))
    third = corpus.build([changed], tmp_path / "three")
    assert third["sha256"] != first["sha256"]
    assert corpus.read_manifest(tmp_path / "three") == third


def test_a_folder_without_a_corpus_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(corpus.BaseCorpusError, match="codedouble base corpus"):
        corpus.read_manifest(tmp_path)
    (tmp_path / corpus.MANIFEST).write_text('{"format": 999}')
    with pytest.raises(corpus.BaseCorpusError, match="format"):
        corpus.read_manifest(tmp_path)


# --- 4. Debian packages: DEP-5, judged per file -------------------------------------------------------------

BSD_TEXT = """\
 Redistribution and use in source and binary forms, with or without
 modification, are permitted provided that the following conditions are
 met:
 .
    * Redistributions of source code must retain the above copyright
 notice, this list of conditions and the following disclaimer."""

COPYRIGHT = f"""\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: golang
Source: https://github.com/golang/go

Files: *
Copyright: 2009 The Go Authors.
License: Go

Files:
 src/gpl/*
 src/other/gpl_too.go
Copyright: 2020 Someone Else
License: GPL-2+

Files: src/dual/*
Copyright: 2021 Dual Authors
License: MIT or Apache-2.0

License: Go
{BSD_TEXT}

License: GPL-2+
 This program is free software; you can redistribute it and/or modify it under the terms of the
 GNU General Public License as published by the Free Software Foundation.
"""


def fake_debian(tmp_path: Path, package: str = "golang-1.19-src") -> tuple[Path, Path, dict[str, Path]]:
    """dpkg's database and /usr/share/doc for one installed package whose files lie under tmp_path/usr."""
    tree = tmp_path / "usr" / "share" / "go-1.19"
    files = {
        "src/fmt/print.go": "package fmt\n\n// MARKER_GO_PRINT\nfunc Println(a ...any) (n int, err error) {\n\treturn 0, nil\n}\n",
        "src/gpl/copyleft.go": "package gpl\n\n// MARKER_GO_GPL\nfunc Copyleft() int {\n\treturn 1\n}\n",
        "src/other/gpl_too.go": "package other\n\n// MARKER_GO_GPL_TOO\nfunc Too() int {\n\treturn 2\n}\n",
        "src/dual/dual.go": "package dual\n\n// MARKER_GO_DUAL\nfunc Dual() int {\n\treturn 3\n}\n",
        "README.md": "not code\n",
    }
    paths = {}
    for relpath, text in files.items():
        path = tree / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        paths[relpath] = path
    dpkg = tmp_path / "dpkg"
    (dpkg / "info").mkdir(parents=True)
    listing = ["/.", str(tmp_path / "usr"), str(tree), *(str(p) for p in paths.values()), str(tree / "src" / "gone.go")]
    (dpkg / "info" / f"{package}.list").write_text("\n".join(listing) + "\n", encoding="utf-8")
    (dpkg / "status").write_text(
        "Package: golang-1.19\nStatus: install ok installed\nVersion: 9.9-wrong\n\n"
        f"Package: {package}\nStatus: install ok installed\nArchitecture: all\nVersion: 1.19.8-2\n\n",
        encoding="utf-8",
    )
    docs = tmp_path / "doc"
    (docs / package).mkdir(parents=True)
    (docs / package / "copyright").write_text(COPYRIGHT, encoding="utf-8")
    return dpkg, docs, paths


def test_a_debian_package_keeps_the_files_its_dep5_puts_under_a_permissive_licence(tmp_path: Path) -> None:
    dpkg, docs, paths = fake_debian(tmp_path)
    source = sources.debian_package("golang-1.19-src", dpkg=dpkg, docs=docs)
    assert source.kind == "debian" and source.version == "1.19.8-2"
    assert dict(source.files) == {
        "golang-1.19-src/src/fmt/print.go": paths["src/fmt/print.go"],  # Files: * → Go, whose text is BSD's
        "golang-1.19-src/src/dual/dual.go": paths["src/dual/dual.go"],  # MIT or Apache-2.0
    }
    assert source.rejected_files == 2  # the two files the later GPL-2+ stanza covers
    assert source.licence.permissive and "BSD-3-Clause" in source.licence.spdx

    out = tmp_path / "corpus"
    manifest = corpus.build([source], out)
    assert manifest["rejected_files"] == {"another licence (per-file)": 2}
    (entry,) = manifest["sources"]
    assert entry["name"] == "golang-1.19-src" and entry["version"] == "1.19.8-2" and entry["files"] == 2
    everything = (out / corpus.FILES).read_text(encoding="utf-8")
    assert "MARKER_GO_PRINT" in everything and "MARKER_GO_DUAL" in everything
    assert "MARKER_GO_GPL" not in everything  # neither of the GPL files (MARKER_GO_GPL_TOO contains it too)
    assert {r["language"] for r in corpus_files(out)} == {"go"}


def test_a_missing_debian_package_says_how_to_install_it(tmp_path: Path) -> None:
    dpkg, docs, _ = fake_debian(tmp_path)
    with pytest.raises(sources.SourceError, match=re.escape("apt-get install rust-src")):
        sources.debian_package("rust-src", dpkg=dpkg, docs=docs)
    (docs / "golang-1.19-src" / "copyright").unlink()  # listed but without its copyright file: no licence to go by
    with pytest.raises(sources.SourceError, match="apt-get install golang-1.19-src"):
        sources.debian_package("golang-1.19-src", dpkg=dpkg, docs=docs)


# --- 5. npm packages ------------------------------------------------------------------------------------------


def make_npm(node_modules: Path, folder: str, manifest: dict[str, Any], files: dict[str, str]) -> None:
    root = node_modules / folder
    root.mkdir(parents=True)
    (root / "package.json").write_text(json.dumps(manifest), encoding="utf-8")
    for relpath, text in files.items():
        (root / relpath).parent.mkdir(parents=True, exist_ok=True)
        (root / relpath).write_text(text, encoding="utf-8")


def test_npm_packages_are_judged_by_their_package_json(tmp_path: Path) -> None:
    nm = tmp_path / "node_modules"
    make_npm(
        nm,
        "left-pad",
        {"name": "left-pad", "version": "1.3.0", "license": "MIT"},
        {
            "index.js": "module.exports = function leftPad(s, n) { return s.padStart(n); };\n",
            "lib/util.ts": "export const width = (s: string): number => s.length;\n",
            "lib/esm.mjs": "export default 1;\n",
            "index.d.ts": "export declare function leftPad(s: string, n: number): string;\n",
            "node_modules/nested-dep/index.js": "module.exports = 'nested';\n",
            "README.md": "# left-pad\n",
            # An Android side (React Native, Cordova): Java under the package's own licence; Kotlin no grammar reads.
            "android/src/main/java/pad/PadModule.java": "class PadModule {\n  int width() { return 1; }\n}\n",
            "android/src/main/java/pad/Pad.kt": "fun pad() = 1\n",
        },
    )
    make_npm(
        nm,
        "copyleft",
        {"name": "copyleft", "version": "2.0.0", "license": "GPL-3.0"},
        {"index.js": "module.exports = 1;\n"},
    )
    make_npm(
        nm,
        "old-style",
        {"name": "old-style", "version": "0.1.0", "license": {"type": "MIT", "url": "x"}},
        {"a.js": "exports.a = 1;\n"},
    )
    make_npm(nm, "no-licence", {"name": "no-licence", "version": "0.0.1"}, {"b.js": "exports.b = 1;\n"})
    make_npm(
        nm,
        "@scope/tool",
        {"name": "@scope/tool", "version": "1.0.0", "license": "(MIT OR Apache-2.0)"},
        {"cli.cjs": "exports.c = 1;\n"},
    )
    (nm / "not-a-package").mkdir()
    (nm / "broken").mkdir()
    (nm / "broken" / "package.json").write_text("{ not json", encoding="utf-8")

    found = {s.name: s for s in sources.npm_packages(nm)}
    assert set(found) == {"left-pad", "copyleft", "old-style", "no-licence", "@scope/tool"}
    assert all(s.kind == "npm" for s in found.values())
    pad = found["left-pad"]
    assert pad.version == "1.3.0" and pad.licence == Licence("MIT", "package.json", True)
    assert sorted(p for p, _ in pad.files) == [
        "left-pad/android/src/main/java/pad/PadModule.java",
        "left-pad/index.js",
        "left-pad/lib/esm.mjs",
        "left-pad/lib/util.ts",
    ]
    assert not found["copyleft"].licence.permissive and found["copyleft"].licence.spdx == "GPL-3.0"
    assert found["old-style"].licence.permissive and found["old-style"].licence.spdx == "MIT"
    assert found["no-licence"].licence == Licence("", "unknown", False)
    assert found["@scope/tool"].licence.permissive
    assert [p for p, _ in found["@scope/tool"].files] == ["@scope/tool/cli.cjs"]


# --- the base's corpus and a tiny pretraining run, shared by the tests below ------------------------------------

WORDS = [
    "order",
    "price",
    "user",
    "account",
    "item",
    "cart",
    "report",
    "invoice",
    "stock",
    "record",
    "ticket",
    "payment",
    "session",
    "token",
    "queue",
    "event",
    "message",
    "folder",
    "entry",
    "window",
]


def generated_module(i: int, rng: random.Random) -> str:
    """A short, varied, hand-written-looking Python module: imports, a class with methods, a function."""
    a, b, c = rng.sample(WORDS, 3)
    klass = a.title() + b.title()
    return f'''"""Keep {a} {b}s in a folder ({i})."""

import json
from pathlib import Path


class {klass}Store:
    def __init__(self, folder, limit={10 + i}):
        self.folder = Path(folder)
        self.limit = limit
        self.{c}s = {{}}

    def add_{c}(self, key, value):
        if len(self.{c}s) >= self.limit:
            raise ValueError(f"too many {c}s: {{self.limit}}")
        self.{c}s[key] = value
        return len(self.{c}s)

    def save(self):
        path = self.folder / "{a}_{i}.json"
        path.write_text(json.dumps(self.{c}s, sort_keys=True))
        return path


def total_{a}_{b}(values, rate={rng.randint(1, 99) / 100}):
    """Sum of `values` at `rate`, refusing negative {a}s."""
    result = 0
    for value in values:
        if value < 0:
            raise ValueError(f"negative {a}: {{value}}")
        result += value * rate
    return round(result, {rng.randint(0, 4)})
'''


def held_for_validation(path: str) -> bool:
    """pretrain holds out one file in VALIDATION_EVERY by the hash of its path."""
    return int(hashlib.sha256(path.encode()).hexdigest()[:8], 16) % pretraining.VALIDATION_EVERY == 0


@pytest.fixture(scope="module")
def base_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A corpus of ~45 generated modules (about 40 KB), one of them held out for validation by its path."""
    root = tmp_path_factory.mktemp("base-src")
    rng = random.Random(7)
    names = [f"gen/pkg/mod_{i}.py" for i in range(44)]
    names.append(next(f"gen/held/mod_{i}.py" for i in range(100_000) if held_for_validation(f"gen/held/mod_{i}.py")))
    files = []
    for i, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(generated_module(i, rng), encoding="utf-8")
        files.append((name, path))
    out = tmp_path_factory.mktemp("corpus") / "corpus"
    manifest = corpus.build(
        [Source("gen", "1.0", "python-distribution", Licence("MIT", "License", True), tuple(files))], out
    )
    assert manifest["files"] == len(names) and manifest["bytes"] > 30_000
    return out


@pytest.fixture(scope="module")
def base(base_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy base, pretrained for STEPS steps (SIZES["llama-toy"]: 2 layers of 64)."""
    out = tmp_path_factory.mktemp("base") / "toy"
    options = PretrainOptions(
        out=out,
        size="llama-toy",
        steps=STEPS,
        batch_size=BATCH,
        block_size=BLOCK,
        eval_every=2,
        eval_batches=1,
        vocab_size=400,
        warmup_steps=1,
        device="cpu",
    )
    result = pretrain(base_corpus, options, progress=False)
    assert result.base == out and result.steps == STEPS
    return out


@pytest.fixture(scope="module")
def base_tokenizer(base: Path) -> Any:
    return AutoTokenizer.from_pretrained(base)


# --- 6. the base's tokenizer ------------------------------------------------------------------------------------

CODE_TEXT = st.lists(
    st.tuples(
        st.sampled_from(["", " ", "    ", "\t", "\t\t", "  \t "]),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    ),
    max_size=6,
).map(lambda lines: "\n".join(indent + body for indent, body in lines))


@settings(max_examples=150, deadline=None)
@given(text=st.one_of(st.text(alphabet=st.characters(codec="utf-8"), max_size=200), CODE_TEXT))
def test_the_base_tokenizer_round_trips_any_text(base_tokenizer: Any, text: str) -> None:
    ids = base_tokenizer.encode(text, add_special_tokens=False)
    assert base_tokenizer.decode(ids) == text
    assert base_tokenizer.unk_token_id is None or base_tokenizer.unk_token_id not in ids


def test_the_base_tokenizer_knows_every_prompt_token_as_one_special_token(base_tokenizer: Any) -> None:
    ids = set()
    for token in prompt.SPECIAL_TOKENS:
        encoded = base_tokenizer.encode(token, add_special_tokens=False)
        assert encoded == [base_tokenizer.convert_tokens_to_ids(token)], (token, encoded)
        assert encoded[0] in base_tokenizer.encode(f"x = 1{token}def f", add_special_tokens=False)
        ids.add(encoded[0])
    assert len(ids) == len(prompt.SPECIAL_TOKENS)
    assert set(prompt.SPECIAL_TOKENS) <= set(base_tokenizer.all_special_tokens)
    assert base_tokenizer.eos_token == prompt.EOS
    assert len(base_tokenizer) <= 400


# --- 7. the base's folder -------------------------------------------------------------------------------------


def test_the_base_folder_holds_safetensors_tokenizer_and_manifests_and_no_pickle(base: Path, base_corpus: Path) -> None:
    names = {p.name for p in base.iterdir()}
    assert {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "manifest.json",
        pretraining.CORPUS_MANIFEST,
    } <= names, names
    assert not [p for p in base.rglob("*") if p.suffix in PICKLE_SUFFIXES], names
    # Neither the checkpoints (.NAME.training) nor a staging folder is left beside it.
    assert sorted(p.name for p in base.parent.iterdir()) == [base.name]
    assert (base / pretraining.CORPUS_MANIFEST).read_bytes() == (base_corpus / corpus.MANIFEST).read_bytes()


def test_the_base_manifest_records_what_it_was_made_from(base: Path, base_corpus: Path) -> None:
    manifest = read_json(base / "manifest.json")
    assert manifest["kind"] == pretraining.BASE_KIND == "codedouble-base"
    assert manifest["prompt_format"] == prompt.PROMPT_FORMAT_VERSION
    assert manifest["corpus"]["sha256"] == read_json(base_corpus / corpus.MANIFEST)["sha256"]
    assert manifest["corpus"]["files"] == 45 and manifest["corpus"]["validation_tokens"] > 0
    assert manifest["training"]["steps_done"] == STEPS
    assert manifest["training"]["tokens_seen"] == STEPS * BATCH * BLOCK
    assert manifest["training"]["block_size"] == BLOCK and manifest["training"]["world_size"] == 1
    model = AutoModelForCausalLM.from_pretrained(base)
    assert manifest["config"]["parameters"] == sum(p.numel() for p in model.parameters())
    assert manifest["config"]["layers"] == pretraining.SIZES["llama-toy"].layers == model.config.num_hidden_layers
    assert manifest["config"]["architecture"] == type(model).__name__ == "LlamaForCausalLM"
    assert manifest["config"]["context"] == BLOCK == model.config.max_position_embeddings  # the block it trained at
    assert manifest["config"]["vocab_size"] == len(AutoTokenizer.from_pretrained(base))
    loss = manifest["validation_loss"]
    assert isinstance(loss, float) and math.isfinite(loss) and loss > 0
    assert manifest["command"] == ""  # pretrain() called directly: no command line to record
    # The engine can read it like an artifact (what `--base` and the shipped base rely on), its context too.
    assert isinstance(engines.load_model(base).tokenizer.get_vocab(), dict)
    assert engines.load_model(base).context == model.config.max_position_embeddings == BLOCK
    assert math.isfinite(manifest["bits_per_byte"]["bits_per_byte"]) and manifest["training"]["batch_size"] == BATCH


def test_a_second_pretraining_through_the_cli_reuses_the_token_cache_and_records_its_command(
    base: Path, base_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (cache,) = base_corpus.glob("tokens-*")
    before = {p: p.stat().st_mtime_ns for p in [cache, *cache.rglob("*")]}

    def rebuilt(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the token cache was built again")

    monkeypatch.setattr(pretraining, "_prepare", rebuilt)
    out = tmp_path / "again"
    argv = [
        "base",
        "train",
        str(base_corpus),
        "--out",
        str(out),
        "--size",
        "llama-toy",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--block-size",
        "32",
        "--vocab-size",
        "400",
        "--device",
        "cpu",
        "--quiet",
    ]
    monkeypatch.setattr(sys, "argv", ["codedouble", *argv])
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "pretrained 2 steps" in err and str(out) in err
    assert {p: p.stat().st_mtime_ns for p in [cache, *cache.rglob("*")]} == before
    assert list(base_corpus.glob("tokens-*")) == [cache]
    manifest = read_json(out / "manifest.json")
    assert manifest["command"] == "codedouble " + shlex.join(argv)
    assert manifest["training"]["tokens_seen"] == 2 * 2 * 32
    assert AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(base).get_vocab()


def test_a_corpus_with_nothing_to_validate_on_is_a_clear_error(tmp_path: Path) -> None:
    path = next(f"only/mod_{i}.py" for i in range(1000) if not held_for_validation(f"only/mod_{i}.py"))
    (tmp_path / "mod.py").write_text(generated_module(0, random.Random(0)), encoding="utf-8")
    corpus.build(
        [Source("one", "1", "npm", Licence("MIT", "package.json", True), ((path, tmp_path / "mod.py"),))],
        tmp_path / "corpus",
    )
    with pytest.raises(pretraining.PretrainError, match="too small to pretrain"):
        pretrain(
            tmp_path / "corpus",
            PretrainOptions(out=tmp_path / "base", steps=1, vocab_size=300, device="cpu"),
            progress=False,
        )
    assert not (tmp_path / "base").exists()


# --- 8. fine-tuning a double from the base -------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """test_train's shop history (22 commits), mined."""
    with pytest.MonkeyPatch.context() as mp:
        isolate_git(mp)
        repo = GitRepo(tmp_path_factory.mktemp("history") / "shop")
        try:
            build_history(repo)
        finally:
            repo.close()
        return mine_all(repo.path, tmp_path_factory.mktemp("dataset") / "dataset")


@pytest.fixture(scope="module")
def full_double(base: Path, dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("full") / "double"
    result = train(
        dataset_dir, replace(TINY, out=out, from_scratch=False, base=base, finetune="full", steps=4), progress=False
    )
    assert result.artifact == out and result.steps == 4
    return out


def test_a_full_finetune_from_the_base_serves_completions(full_double: Path, base: Path) -> None:
    engine = engines.load(full_double)
    prefix = "class Cart:\n    def total(self):\n        return "
    request = Request("shop/cart.py", prefix, "\n", "line")
    assert isinstance(engine.complete(request), str)
    assert isinstance(engine.model.complete(request), str)  # the fine-tuned model itself, not only the n-gram
    assert AutoTokenizer.from_pretrained(full_double).get_vocab() == AutoTokenizer.from_pretrained(base).get_vocab()
    model = AutoModelForCausalLM.from_pretrained(full_double)
    assert (
        model.get_input_embeddings().num_embeddings
        == AutoModelForCausalLM.from_pretrained(base).get_input_embeddings().num_embeddings
    )


def test_a_double_answers_with_its_base_in_a_language_it_did_not_learn(full_double: Path, base: Path) -> None:
    manifest = read_json(full_double / "manifest.json")
    entries = manifest["languages"]
    assert set(entries) == {"python"}, "the shop history is Python: no other language is the double's"
    engine = engines.load(full_double)
    answering = engine.combined.model
    assert isinstance(answering, ByLanguage) and answering.double is engine.model
    go = Request("main.go", 'package main\n\nimport "', "", "line")
    python = Request("shop/cart.py", "class Cart:\n    def total(self):\n        return ", "", "line")
    on_its_own = Neural(base)
    assert answering.complete(go) == on_its_own.complete(go)
    assert answering.model_for(go) is not engine.model, "Go is answered by the base, loaded beside the double"
    python_by = engine.model if entries["python"]["served_by"] == "double" else answering.model_for(go)
    assert answering.model_for(python) is python_by
    assert answering.complete(python) == python_by.complete(python)


def test_a_double_names_the_base_it_was_finetuned_from(full_double: Path, base: Path) -> None:
    training = read_json(full_double / "manifest.json")["training"]
    assert training["finetune"] == "full"
    identity = training["base"]
    assert identity["name"] == read_json(base / "manifest.json")["name"] == "codedouble-base-llama-toy"
    assert re.fullmatch(r"[0-9a-f]{64}", identity["sha256"])
    assert identity["sha256"] == sha256_file(base / "model.safetensors")
    assert identity["shipped"] is False
    assert identity["corpus_sha256"] == read_json(base / "manifest.json")["corpus"]["sha256"]
    assert training["learning_rate"] == 2e-4  # a full fine-tune's default, not from scratch's
    # General code rehearsed beside the history (trainer/training/rehearsal.py), and said so.
    assert training["rehearsal"]["share"] == rehearsal.SHARE and training["rehearsal"]["chars"] > 0
    assert training["rehearsal"]["source"].startswith("python-stdlib ")
    assert set(training["rehearsal"]["languages"]) == {"python", "go", "javascript", "rust", "typescript"}
    assert len(training["rehearsal"]["pack"]) == 64  # the shipped pack's texts, by hash
    assert training["size"] is None and training["vocab_size"] == len(AutoTokenizer.from_pretrained(base))


def test_a_double_from_scratch_rehearses_nothing_and_a_whole_share_is_refused(
    dataset_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scratch"
    train(dataset_dir, replace(TINY, out=out, steps=1), progress=False)
    assert read_json(out / "manifest.json")["training"]["rehearsal"] == {
        "share": 0.0,
        "chars": 0,
        "files": 0,
        "source": "",
    }
    with pytest.raises(TrainError, match="--rehearsal 1.0"):
        train(dataset_dir, replace(TINY, out=tmp_path / "all", rehearsal=1.0), progress=False)
    assert not (tmp_path / "all").exists()


def test_a_lora_finetune_from_the_base_exports_plain_weights(base: Path, dataset_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "double"
    train(
        dataset_dir,
        replace(TINY, out=out, from_scratch=False, base=base, finetune="lora", steps=2, eval_every=2),
        progress=False,
    )
    names = {p.name for p in out.iterdir()}
    assert not {n for n in names if n.startswith("adapter_")}, names
    assert not [p for p in out.rglob("*") if p.suffix in PICKLE_SUFFIXES]
    model, info = AutoModelForCausalLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"], info
    assert not [
        n for n, _ in model.named_parameters() if "lora" in n.lower() or "base_model" in n or "peft" in n.lower()
    ]
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        keys = list(weights.keys())
    assert keys and not [k for k in keys if "lora" in k.lower() or "base_model" in k]
    training = read_json(out / "manifest.json")["training"]
    assert training["finetune"] == "lora" and training["base"]["sha256"] == sha256_file(base / "model.safetensors")
    assert isinstance(
        engines.load(out).model.complete(Request("shop/cart.py", "def total(self):\n    return ", "", "line")), str
    )


def test_base_score_measures_a_base_as_its_manifest_and_a_double_beside_it(
    base: Path, base_corpus: Path, full_double: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["base", "score", str(base_corpus), str(base), str(full_double), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    scored = [json.loads(line) for line in out.splitlines()]
    assert [row["model"] for row in scored] == [str(base), str(full_double)]
    recorded = read_json(base / "manifest.json")["bits_per_byte"]
    # The same measure as pretraining's step 4, on the same held-out file; the saved weights are bf16, the ones
    # pretraining measured were fp32, hence the tolerance.
    assert scored[0]["bits_per_byte"] == pytest.approx(recorded["bits_per_byte"], rel=0.02)
    assert scored[0]["bytes"] <= recorded["bytes"] and scored[0]["tokens"] % BLOCK == 0
    assert math.isfinite(scored[1]["bits_per_byte"]) and scored[1]["bits_per_byte"] != scored[0]["bits_per_byte"]


def test_base_score_on_a_corpus_without_held_out_files_exits_2(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "src.py"
    src.write_text("def f():\n    return 1\n", encoding="utf-8")
    name = next(f"kept/mod_{i}.py" for i in range(1000) if not held_for_validation(f"kept/mod_{i}.py"))
    out = tmp_path / "corpus"
    corpus.build([Source("one", "1.0", "python-distribution", Licence("MIT", "License", True), ((name, src),))], out)
    code = cli.main(["base", "score", str(out), str(base)])
    err = capsys.readouterr().err
    assert code == 2 and "no held-out file" in err and str(out) in err


# --- 9. the command line -----------------------------------------------------------------------------------


def test_a_base_continued_with_init_keeps_its_tokenizer_and_weights_and_counts_every_token(
    base: Path, base_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--init BASE`: the corpus is tokenized with that base's tokenizer (a cache of its own), training starts
    from its weights (at learning rate 0 they come out as they went in), and the manifest adds the tokens up."""
    corpus_copy = tmp_path / "corpus"
    shutil.copytree(base_corpus, corpus_copy, ignore=shutil.ignore_patterns("tokens-*"))
    out = tmp_path / "continued"
    argv = ["base", "train", str(corpus_copy), "--out", str(out), "--init", str(base), "--steps", "2"]
    argv += ["--batch-size", "2", "--block-size", "32", "--learning-rate", "0", "--device", "cpu", "--quiet"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert [p.name.split("-")[2][0] for p in corpus_copy.glob("tokens-*")] == ["t"]  # keyed by the tokenizer
    assert AutoTokenizer.from_pretrained(out).get_vocab() == AutoTokenizer.from_pretrained(base).get_vocab()
    before = AutoModelForCausalLM.from_pretrained(base).state_dict()
    after = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    earlier, manifest = read_json(base / "manifest.json"), read_json(out / "manifest.json")
    assert manifest["name"] == earlier["name"] and manifest["training"]["size"] == "llama-toy"
    assert manifest["training"]["init"] == str(base)
    assert manifest["training"]["tokens_seen"] == 2 * 2 * 32
    assert manifest["training"]["tokens_seen_total"] == earlier["training"]["tokens_seen"] + 2 * 2 * 32
    assert manifest["continued_from"] == earlier


def test_init_from_a_folder_that_is_no_base_is_a_clear_error(
    base_corpus: Path, full_double: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for folder in (tmp_path / "nothing", full_double):
        folder.mkdir(exist_ok=True)
        code = cli.main(
            ["base", "train", str(base_corpus), "--out", str(tmp_path / "b"), "--init", str(folder), "--steps", "1"]
        )
        err = capsys.readouterr().err
        assert code == 2 and f"--init {folder}: not a codedouble base" in err, err
    assert not (tmp_path / "b").exists()


def test_base_train_on_a_folder_without_a_corpus_says_to_build_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "no-corpus"
    empty.mkdir()
    code = cli.main(["base", "train", str(empty), "--out", str(tmp_path / "base"), "--steps", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "codedouble base train: error:" in err and str(empty) in err and "codedouble base corpus" in err
    assert not (tmp_path / "base").exists()


def test_base_train_resume_with_nothing_to_resume_is_a_clear_error(
    base_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "base"
    code = cli.main(["base", "train", str(base_corpus), "--out", str(out), "--resume", "--steps", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--resume" in err and str(out) in err
    assert not out.exists()


def test_base_corpus_with_a_missing_node_modules_folder_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nonexistent"
    code = cli.main(
        [
            "base",
            "corpus",
            "--out",
            str(tmp_path / "corpus"),
            "--no-stdlib",
            "--no-site",
            "--node-modules",
            str(missing),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert str(missing) in err


def test_base_corpus_with_a_debian_package_that_is_not_installed_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(
        [
            "base",
            "corpus",
            "--out",
            str(tmp_path / "corpus"),
            "--no-stdlib",
            "--no-site",
            "--debian",
            "codedouble-no-such-package",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "apt-get install codedouble-no-such-package" in err


def test_base_corpus_builds_a_corpus_from_node_modules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nm = tmp_path / "node_modules"
    make_npm(
        nm, "kept", {"name": "kept", "version": "1.0.0", "license": "ISC"}, {"index.js": "exports.keptMarker = 1;\n"}
    )
    make_npm(
        nm,
        "gone",
        {"name": "gone", "version": "1.0.0", "license": "AGPL-3.0"},
        {"index.js": "exports.goneMarker = 1;\n"},
    )
    out = tmp_path / "corpus"
    code = cli.main(["base", "corpus", "--out", str(out), "--no-stdlib", "--no-site", "--node-modules", str(nm)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "1 sources kept, 1 rejected" in err and str(out) in err
    manifest = corpus.read_manifest(out)
    assert [s["name"] for s in manifest["sources"]] == ["kept"]
    assert [(s["name"], s["reason"]) for s in manifest["rejected_sources"]] == [("gone", "licence not permissive")]
    assert [r["text"] for r in corpus_files(out)] == ["exports.keptMarker = 1;\n"]


# --- 10. the shipped base -------------------------------------------------------------------------------------


def test_the_installed_package_ships_its_base() -> None:
    """The weights travel with the package (package data of codedouble.trainer.base), small enough to ship."""
    found = shipped.shipped_base()
    assert found is not None, f"no shipped base at {shipped.WEIGHTS}"
    package_dir = Path(base_package.__file__).resolve().parent
    assert package_dir in found.resolve().parents
    manifest = read_json(found / "manifest.json")
    assert manifest["kind"] == pretraining.BASE_KIND
    assert manifest["prompt_format"] == prompt.PROMPT_FORMAT_VERSION
    assert (found / "model.safetensors").stat().st_size <= 64 * 1024 * 1024
    assert not [p for p in found.rglob("*") if p.suffix in PICKLE_SUFFIXES]
    # The Llama base pretrained on a GPU (issue 12), with the record of how: tokens seen, bits per byte on
    # held-out corpus files, the corpus's hash, the command and the device.
    assert read_json(found / "config.json")["architectures"] == ["LlamaForCausalLM"]
    assert manifest["config"]["architecture"] == "LlamaForCausalLM"
    assert manifest["training"]["device"] == "cuda" and manifest["training"]["device_name"]
    assert manifest["training"]["tokens_seen"] >= 20 * manifest["config"]["parameters"] * 0.9
    assert 0 < manifest["bits_per_byte"]["bits_per_byte"] < 1.0
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["corpus"]["sha256"])
    assert manifest["command"].startswith("codedouble base train ") and "--device cuda" in manifest["command"]
    assert read_json(found / "corpus-manifest.json")["sha256"] == manifest["corpus"]["sha256"]
    model = engines.load_model(found)
    assert all(model.tokenizer.convert_tokens_to_ids(t) is not None for t in prompt.SPECIAL_TOKENS)


def test_without_a_shipped_base_training_says_to_use_from_scratch(
    dataset_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "weights"
    empty.mkdir()
    monkeypatch.setattr(shipped, "WEIGHTS", empty)
    assert shipped.shipped_base() is None
    with pytest.raises(shipped.NoBaseError, match="--from-scratch") as raised:
        shipped.require_shipped_base()
    assert str(empty) in str(raised.value)
    out = tmp_path / "double"
    with pytest.raises(shipped.NoBaseError, match="--from-scratch") as failed:
        train(dataset_dir, replace(TINY, out=out, from_scratch=False, base=None), progress=False)
    assert str(failed.value) == str(raised.value)
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".double")]


def test_by_default_train_fully_finetunes_the_shipped_base(dataset_dir: Path, tmp_path: Path) -> None:
    """No --base, no --from-scratch: the double starts from the installed base and keeps its tokenizer."""
    found = shipped.shipped_base()
    assert found is not None, f"no shipped base at {shipped.WEIGHTS}"
    out = tmp_path / "double"
    train(dataset_dir, replace(TINY, out=out, from_scratch=False, base=None, steps=2), progress=False)
    recorded = read_json(out / "manifest.json")["training"]
    assert recorded["base"]["shipped"] is True and recorded["finetune"] == "full"
    assert recorded["base"]["sha256"] == sha256_file(found / "model.safetensors")
    assert read_json(out / "tokenizer.json")["model"]["vocab"] == read_json(found / "tokenizer.json")["model"]["vocab"]
