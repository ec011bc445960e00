"""Which sources the base may learn from: permissive licences only, decided from each source's own metadata.

A source is kept when its licence is known and every part of it is permissive: an SPDX `AND` needs all its
terms permissive, an `OR` needs one. Anything unknown, copyleft (GPL, LGPL, AGPL), weak-copyleft (MPL, EPL)
or unreadable is rejected, and the decision is recorded with its evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# SPDX identifiers (lower-cased) of licences that allow training on and redistributing derived weights
# with attribution alone. Exceptions after WITH (e.g. LLVM-exception) only add permissions.
PERMISSIVE: frozenset[str] = frozenset(
    {
        "mit",
        "mit-0",
        "mit-cmu",
        "x11",
        "bsd-2-clause",
        "bsd-3-clause",
        "bsd-3-clause-clear",
        "0bsd",
        "apache-2.0",
        "psf-2.0",
        "python-2.0",
        "python-2.0.1",
        "cnri-python",
        "isc",
        "zlib",
        "unlicense",
        "bsl-1.0",
        "cc0-1.0",
        "hpnd",
        "ncsa",
        "upl-1.0",
        "wtfpl",
        "bsd-4-clause-uc",
        "unicode-dfs-2016",
        "unicode-3.0",
        "blueoak-1.0.0",
    }
)

# Free-text `License:` fields and trove classifiers as packages write them, mapped to SPDX.
_ALIASES: dict[str, str] = {
    "mit": "MIT",
    "mit license": "MIT",
    "the mit license": "MIT",
    "expat": "MIT",
    "mit/expat": "MIT",
    "bsd": "BSD-3-Clause",
    "bsd license": "BSD-3-Clause",
    "new bsd": "BSD-3-Clause",
    "new bsd license": "BSD-3-Clause",
    "modified bsd": "BSD-3-Clause",
    "3-clause bsd": "BSD-3-Clause",
    "bsd 3-clause": "BSD-3-Clause",
    "bsd-3": "BSD-3-Clause",
    "bsd 3-clause license": "BSD-3-Clause",
    "simplified bsd": "BSD-2-Clause",
    "2-clause bsd": "BSD-2-Clause",
    "bsd 2-clause": "BSD-2-Clause",
    "bsd-2": "BSD-2-Clause",
    "apache": "Apache-2.0",
    "apache 2": "Apache-2.0",
    "apache 2.0": "Apache-2.0",
    "apache-2": "Apache-2.0",
    "apache license": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "apache 2.0 license": "Apache-2.0",
    "apache software license": "Apache-2.0",
    "apache license version 2.0": "Apache-2.0",
    "psf": "PSF-2.0",
    "psfl": "PSF-2.0",
    "python software foundation license": "PSF-2.0",
    "isc": "ISC",
    "isc license": "ISC",
    "isc license (iscl)": "ISC",
    "zlib": "Zlib",
    "zlib/libpng": "Zlib",
    "zlib/libpng license": "Zlib",
    "the unlicense": "Unlicense",
    "the unlicense (unlicense)": "Unlicense",
    "public domain": "Unlicense",
    "boost software license 1.0 (bsl-1.0)": "BSL-1.0",
    "cc0 1.0 universal (cc0 1.0) public domain dedication": "CC0-1.0",
    "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
    "mpl 2.0": "MPL-2.0",
    "gnu general public license (gpl)": "GPL",
    "gnu general public license v2 (gplv2)": "GPL-2.0",
    "gnu general public license v3 (gplv3)": "GPL-3.0",
    "gnu lesser general public license v3 (lgplv3)": "LGPL-3.0",
    "gnu lesser general public license v2 (lgplv2)": "LGPL-2.0",
    "gnu library or lesser general public license (lgpl)": "LGPL",
    "gnu affero general public license v3": "AGPL-3.0",
    "gpl": "GPL",
    "gplv2": "GPL-2.0",
    "gplv3": "GPL-3.0",
    "lgpl": "LGPL",
    "eclipse public license 2.0 (epl-2.0)": "EPL-2.0",
}

# Phrases that identify a licence whose full text was pasted into the `License:` field.
_TEXT_MARKERS: tuple[tuple[str, str], ...] = (
    ("gnu general public license", "GPL"),
    ("gnu lesser general public license", "LGPL"),
    ("mozilla public license", "MPL-2.0"),
    ("permission is hereby granted, free of charge", "MIT"),
    ("redistribution and use in source and binary forms", "BSD-3-Clause"),
    ("apache license", "Apache-2.0"),
    ("python software foundation license", "PSF-2.0"),
    ("permission to use, copy, modify, and/or distribute this software for any", "ISC"),
)
_CLASSIFIER = "License :: "
_SPDX_TOKEN = re.compile(r"\(|\)|[^\s()]+")


@dataclass(frozen=True)
class Licence:
    """A source's licence as decided: the SPDX expression, where it came from, and whether it is kept."""

    spdx: str  # "" when unknown
    evidence: str  # License-Expression, License, classifier, licence text, file, unknown
    permissive: bool


def spdx_permissive(expression: str) -> bool:
    """Whether an SPDX expression leaves a permissive choice: AND binds tighter than OR, WITH adds rights."""
    tokens = _SPDX_TOKEN.findall(expression)
    position = 0

    def term() -> bool:
        nonlocal position
        if position >= len(tokens):
            raise ValueError(expression)
        token = tokens[position]
        position += 1
        if token == "(":
            value = either()
            if position >= len(tokens) or tokens[position] != ")":
                raise ValueError(expression)
            position += 1
        elif token.upper() in {"AND", "OR", "WITH"} or token == ")":
            raise ValueError(expression)  # an operator where a licence belongs: malformed
        else:
            value = token.lower().removesuffix("+") in PERMISSIVE
        if position < len(tokens) and tokens[position].upper() == "WITH":
            if (
                position + 1 >= len(tokens)
                or tokens[position + 1].upper() in {"AND", "OR", "WITH"}
                or tokens[position + 1] in "()"
            ):
                raise ValueError(expression)
            position += 2  # the exception's name
        return value

    def both() -> bool:
        nonlocal position
        value = term()
        while position < len(tokens) and tokens[position].upper() == "AND":
            position += 1
            value = term() and value
        return value

    def either() -> bool:
        nonlocal position
        value = both()
        while position < len(tokens) and tokens[position].upper() == "OR":
            position += 1
            value = both() or value
        return value

    try:
        result = either()
    except (ValueError, IndexError):
        return False
    return result and position == len(tokens)


def _alias(text: str) -> str | None:
    key = " ".join(text.strip().lower().split())
    if key in _ALIASES:
        return _ALIASES[key]
    # An SPDX identifier written in the free-text field (e.g. "BSD-3-Clause", "Apache-2.0").
    if re.fullmatch(r"[A-Za-z0-9.+-]+((\s+(AND|OR|WITH)\s+|\s*\(\s*|\s*\)\s*)[A-Za-z0-9.+-]*)*", text.strip()):
        words = [
            w.lower().removesuffix("+")
            for w in re.findall(r"[A-Za-z0-9.+-]+", text)
            if w.upper() not in {"AND", "OR", "WITH"}
        ]
        if words and all(w in PERMISSIVE or w.startswith(("gpl", "lgpl", "agpl", "mpl", "epl")) for w in words):
            return text.strip()
    return None


def from_text(text: str) -> str | None:
    """The licence a pasted licence text is, by its tell-tale phrases; copyleft phrases are checked first."""
    lower = " ".join(text.lower().split())
    for phrase, spdx in _TEXT_MARKERS:
        if phrase in lower:
            return spdx
    return None


def from_classifiers(classifiers: Iterable[str]) -> str | None:
    """`License :: OSI Approved :: MIT License` and the like, as an SPDX expression (several: AND, the
    conservative reading), or None when none is recognised."""
    found = []
    for c in classifiers:
        if not c.startswith(_CLASSIFIER):
            continue
        name = c.rsplit("::", 1)[-1].strip()
        if name in {"OSI Approved", "Other/Proprietary License", "Freeware", "Free for non-commercial use"}:
            if name != "OSI Approved":
                found.append("LicenseRef-" + name.replace(" ", "-").replace("/", "-"))
            continue
        found.append(_alias(name) or "LicenseRef-" + re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-"))
    return " AND ".join(dict.fromkeys(found)) if found else None


def decide(expression: str | None = None, licence_field: str | None = None, classifiers: Iterable[str] = ()) -> Licence:
    """A Python distribution's licence from its core metadata, in order of authority: PEP 639's
    License-Expression, a short `License:` field, the trove classifiers, a licence text pasted into `License:`."""
    if expression and expression.strip():
        return Licence(expression.strip(), "License-Expression", spdx_permissive(expression))
    field_value = (licence_field or "").strip()
    if (
        field_value
        and field_value.upper() not in {"UNKNOWN", "NONE"}
        and "\n" not in field_value
        and len(field_value) < 100
    ):
        spdx = _alias(field_value)
        if spdx:
            return Licence(spdx, "License", spdx_permissive(spdx))
    spdx = from_classifiers(classifiers)
    if spdx:
        return Licence(spdx, "classifier", spdx_permissive(spdx))
    spdx = from_text(field_value) if field_value else None
    if spdx:
        return Licence(spdx, "licence text", spdx_permissive(spdx))
    return Licence("", "unknown", False)
