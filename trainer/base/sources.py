"""Where the base's code comes from: sources on this machine, each with its own licence metadata.

- the Python standard library of the running interpreter (PSF-2.0, from its LICENSE.txt);
- installed Python distributions (core metadata: License-Expression, License, classifiers);
- Debian source packages such as golang-1.19-src and rust-src (DEP-5 `copyright`, judged per file);
- npm packages in a node_modules folder (package.json `license`).
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import json
import re
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codedouble.server.contract.errors import CodedoubleError
from codedouble.trainer.base.licenses import Licence, decide, from_text, spdx_permissive


class SourceError(CodedoubleError):
    """A source named on the command line that is not on this machine."""


@dataclass(frozen=True)
class Source:
    name: str
    version: str
    kind: str  # python-stdlib, python-distribution, debian, npm
    licence: Licence
    files: tuple[tuple[str, Path], ...]  # (path as the source names it, where it is on disk)
    rejected_files: int = 0  # files another licence covers (Debian's per-file licences)
    # The source's own licence and copyright files: what must travel with any of its code that is passed on
    # (the rehearsal pack ships some), not what decides the licence (that is `licence.evidence`).
    notices: tuple[Path, ...] = ()


def python_stdlib() -> Source:
    root = Path(sysconfig.get_paths()["stdlib"])
    licence_file = root / "LICENSE.txt"
    text = licence_file.read_text(encoding="utf-8", errors="replace") if licence_file.is_file() else ""
    spdx = "PSF-2.0" if "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2" in text else ""
    licence = Licence(spdx, "file LICENSE.txt" if spdx else "unknown", bool(spdx))
    files = tuple(
        (p.relative_to(root).as_posix(), p)
        for p in sorted(root.rglob("*.py"))
        if "site-packages" not in p.relative_to(root).parts  # other distributions, judged on their own
    )
    notices = (licence_file,) if licence_file.is_file() else ()
    return Source("python-stdlib", sys.version.split()[0], "python-stdlib", licence, files, notices=notices)


def python_distributions(exclude: frozenset[str] = frozenset(), path: list[str] | None = None) -> Iterator[Source]:
    """Each installed distribution once (the first on sys.path, or `path`, wins, as for imports), with its .py files."""
    seen: set[str] = set()
    found = importlib.metadata.distributions() if path is None else importlib.metadata.distributions(path=path)
    for dist in found:
        meta: Any = dist.metadata  # an email.message.Message: .get and .get_all
        name = meta["Name"] or ""
        key = re.sub(r"[-_.]+", "-", name).lower()
        if not name or key in seen or key in exclude:
            continue
        seen.add(key)
        licence = decide(meta.get("License-Expression"), meta.get("License"), meta.get_all("Classifier") or [])
        files = []
        for f in dist.files or ():
            if f.suffix == ".py" and ".." not in f.parts and not f.name.endswith(".dist-info"):
                files.append((f"{name}/{f.as_posix()}", Path(str(dist.locate_file(f)))))
        yield Source(name, meta["Version"] or "", "python-distribution", licence, tuple(files))


@dataclass(frozen=True)
class _Stanza:
    patterns: tuple[str, ...]
    licence: str


def _dep5(text: str) -> tuple[list[_Stanza], dict[str, str]]:
    """Files stanzas (patterns, licence name) and standalone licence texts of a DEP-5 copyright file."""
    stanzas: list[_Stanza] = []
    texts: dict[str, str] = {}
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        current = None
        for line in paragraph.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in {" ", "\t"} and current:
                fields[current] += "\n" + line.strip()
            elif ":" in line:
                current, _, value = line.partition(":")
                fields[current] = value.strip()
        if "License" not in fields:
            continue
        name, _, body = fields["License"].partition("\n")
        if "Files" in fields:
            stanzas.append(_Stanza(tuple(fields["Files"].split()), name.strip()))
        elif body:
            texts[name.strip()] = body
    return stanzas, texts


def _debian_licence(name: str, texts: dict[str, str]) -> Licence:
    expression = re.sub(r"\s+or\s+", " OR ", re.sub(r"\s+and\s+", " AND ", name.strip()))
    if spdx_permissive(expression):
        return Licence(expression, "DEP-5", True)
    spdx = from_text(texts.get(name.strip(), ""))  # e.g. Debian's "Go" is the BSD-3-Clause text
    if spdx:
        return Licence(spdx, f"DEP-5 text of {name.strip()}", spdx_permissive(spdx))
    return Licence(expression, "DEP-5", False)


def debian_package(
    package: str,
    suffixes: tuple[str, ...] = (".go", ".rs"),
    dpkg: Path = Path("/var/lib/dpkg"),
    docs: Path = Path("/usr/share/doc"),
) -> Source:
    """An installed Debian package's source files that its DEP-5 copyright file puts under a permissive
    licence, judged per file (the last matching `Files:` stanza wins, as DEP-5 says)."""
    listing = dpkg / "info" / f"{package}.list"
    if not listing.is_file():
        listing = next((dpkg / "info").glob(f"{package}:*.list"), listing)
    copyright_file = docs / package / "copyright"
    if not listing.is_file() or not copyright_file.is_file():
        raise SourceError(f"Debian package {package} is not installed (apt-get install {package})")
    paths = [Path(line) for line in listing.read_text(encoding="utf-8").splitlines() if line.endswith(suffixes)]
    paths = [p for p in paths if p.is_file() and not p.is_symlink()]
    stanzas, texts = _dep5(copyright_file.read_text(encoding="utf-8", errors="replace"))
    version = _dpkg_version(package, dpkg / "status")
    kept: list[tuple[str, Path]] = []
    licences: dict[str, Licence] = {}
    rejected = 0
    for path in paths:
        upstream = _upstream_path(path)
        matching = [s for s in stanzas if any(fnmatch.fnmatchcase(upstream, p) for p in s.patterns)]
        if not matching:
            rejected += 1
            continue
        name = matching[-1].licence
        licence = licences.setdefault(name, _debian_licence(name, texts))
        if licence.permissive:
            kept.append((f"{package}/{upstream}", path))
        else:
            rejected += 1
    used = sorted(
        {
            f"({licences[m].spdx})" if " " in licences[m].spdx else licences[m].spdx
            for m in licences
            if licences[m].permissive
        }
    )
    summary = Licence(" AND ".join(used), "DEP-5 per file", bool(kept))
    return Source(package, version, "debian", summary, tuple(kept), rejected, notices=(copyright_file,))


def _upstream_path(path: Path) -> str:
    """The path inside the upstream tree: Go installs under /usr/share/go-1.19/, Rust under /usr/src/rustc-*/;
    otherwise the path below /usr/share/PACKAGE or /usr/src/PACKAGE."""
    parts = path.parts
    for i, part in enumerate(parts):
        if re.fullmatch(r"go-[\d.]+|rustc-[\d.]+", part):
            return "/".join(parts[i + 1 :])
    for i, part in enumerate(parts[:-1]):
        if part in {"share", "src"} and i + 2 < len(parts):
            return "/".join(parts[i + 2 :])
    return "/".join(parts[1:])


def _dpkg_version(package: str, status: Path) -> str:
    if status.is_file():
        for paragraph in status.read_text(encoding="utf-8", errors="replace").split("\n\n"):
            if re.search(rf"^Package: {re.escape(package)}$", paragraph, re.MULTILINE):
                found = re.search(r"^Version: (.+)$", paragraph, re.MULTILINE)
                if found:
                    return found[1]
    return ""


# What a package's files give the corpus: its JavaScript and TypeScript, and the Java of packages that ship an
# Android side (React Native and Cordova plugins), under the same package.json licence.
NPM_SUFFIXES = frozenset({".js", ".mjs", ".cjs", ".ts", ".java"})
# LICENSE, LICENSE.md, LICENCE-MIT, COPYING, NOTICE.txt; not license-checker.js.
NOTICE_NAME = re.compile(r"(?i)(licen[cs]e|copying|notice)([-_.](md|txt|markdown|rst|mit|apache(-2\.0)?|bsd|isc))*")


def npm_packages(node_modules: Path) -> Iterator[Source]:
    """Each package in a node_modules folder (scoped ones too), judged by its package.json `license`."""
    for manifest in sorted(node_modules.glob("*/package.json")) + sorted(node_modules.glob("@*/*/package.json")):
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict):
            continue
        raw = data.get("license")
        if isinstance(raw, dict):
            raw = raw.get("type")
        spdx = raw if isinstance(raw, str) else ""
        licence = Licence(spdx, "package.json" if spdx else "unknown", bool(spdx) and spdx_permissive(spdx))
        root = manifest.parent
        name = str(data.get("name") or root.name)
        files = tuple(
            (f"{name}/{p.relative_to(root).as_posix()}", p)
            for p in sorted(root.rglob("*"))
            if p.suffix in NPM_SUFFIXES
            and not p.name.endswith(".d.ts")
            and "node_modules" not in p.relative_to(root).parts
            and p.is_file()
        )
        notices = tuple(p for p in sorted(root.iterdir()) if NOTICE_NAME.fullmatch(p.name) and p.is_file())
        yield Source(name, str(data.get("version") or ""), "npm", licence, files, notices=notices)
