"""The rehearsal pack: a little of the base's corpus in the languages an engineer's machine has no free code in,
shipped with the base so that a fine-tune can rehearse them.

A double fine-tuned on a Python history forgot the other languages: bits per byte on the base's held-out Go,
Rust and JavaScript rose 16 % (0.902 → 1.046) although half of its text was rehearsal, all of it the standard
library's Python (README "The Llama base on rich"). Rehearsal text has to be on the engineer's machine and
free to train on; Python's standard library is, Go or Rust source usually is not, and the 17 M base cannot
write it either (sampled, it drifts back to Python within a line or two). So a sample of the base's own
corpus in those languages ships in the package:

    PACK/texts.jsonl.xz   one file a line: {"source", "path", "language", "text"}, scrubbed as the corpus is
    PACK/manifest.json    format, per language and per source what it holds (licence, evidence, files, bytes),
                          the SHA-256 of texts.jsonl.xz, how it was chosen and the command that made it
    PACK/NOTICE           each source's own licence and copyright files, as its licence asks of a copy

It is built from the same sources as the base's corpus, through the same filters (`corpus.build`), never from a
file the base held out for validation (so `codedouble base score` still measures code neither model trained
on), and only from sources that have a licence file to ship beside their code.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import random
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codedouble.server.contract import atomic
from codedouble.server.contract.errors import CodedoubleError
from codedouble.trainer.base import corpus
from codedouble.trainer.base.pretrain import held_out
from codedouble.trainer.base.sources import Source

PACK_FORMAT = 1
TEXTS = "texts.jsonl.xz"
MANIFEST = "manifest.json"
NOTICE = "NOTICE"
SHIPPED = Path(__file__).parent / "rehearsal"
# Per language: a fine-tune of 365 steps sees about 0.75 M tokens, so a language at a tenth of the mix sees
# about 0.25 MB of it; twice that keeps a longer fine-tune from seeing the same file many times, and the four
# languages' 2 MB pack into about 0.4 MB.
BYTES_PER_LANGUAGE = 500_000
# Python is left to the running interpreter's standard library (more of it, and already on the machine).
LEFT_TO_THE_MACHINE = frozenset({"python"})


class RehearsalPackError(CodedoubleError):
    """A rehearsal pack that is missing, damaged or of another format."""


@dataclass(frozen=True)
class PackFile:
    source: str
    path: str
    language: str
    text: str


def build(
    sources: Iterable[Source],
    out: Path,
    bytes_per_language: int = BYTES_PER_LANGUAGE,
    seed: int = 0,
    jobs: int = 1,
    command: str = "",
) -> dict[str, Any]:
    """Write a pack into `out` (replacing one there, never half-written) from `sources`, at most about
    `bytes_per_language` of each language's files in a seeded order; return its manifest."""
    listed = list(sources)
    notices = {s.name: s for s in listed}
    with tempfile.TemporaryDirectory(prefix="codedouble-pack-") as tmp:
        built = corpus.build(listed, Path(tmp), jobs=jobs)  # the corpus's filters, duplicates and scrubbing
        rows, held = _candidates(corpus.read_files(Path(tmp)))
    unshippable = sorted({r.source for r in rows if not notices[r.source].notices})
    chosen = _sample([r for r in rows if r.source not in unshippable], bytes_per_language, seed)
    if not chosen:
        raise RehearsalPackError(
            "none of these sources has a file to pack: code in a language other than "
            f"{', '.join(sorted(LEFT_TO_THE_MACHINE))}, not held out, from a source with a licence file"
        )
    chosen.sort(key=lambda r: (r.language, r.source, r.path))
    texts = _compressed(chosen)
    used = sorted({r.source for r in chosen})
    entries = {s["name"]: s for s in built["sources"]}
    per_source = _totals(chosen, lambda r: r.source)
    manifest: dict[str, Any] = {
        "format": PACK_FORMAT,
        "kind": "codedouble-rehearsal-pack",
        "texts_sha256": hashlib.sha256(texts).hexdigest(),
        "files": len(chosen),
        "bytes": sum(map(_size, chosen)),
        "languages": _totals(chosen, lambda r: r.language),
        "sources": [
            {k: entries[name][k] for k in ("name", "version", "kind", "licence", "evidence")} | per_source[name]
            for name in used
        ],
        "left_out": {
            "files the base held out": held,
            "sources without a licence file to ship": unshippable,
        },
        "chosen": {"bytes_per_language": bytes_per_language, "seed": seed, "corpus_sha256": built["sha256"]},
        "command": command,
    }
    with atomic.directory(out) as staging:
        (staging / TEXTS).write_bytes(texts)
        (staging / NOTICE).write_text(_notice(used, notices), encoding="utf-8")
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _candidates(rows: Iterable[dict[str, str]]) -> tuple[list[PackFile], int]:
    """The corpus rows a pack may hold, and how many were left out because the base held them out."""
    found: list[PackFile] = []
    held = 0
    for r in rows:
        if not r["language"] or r["language"] in LEFT_TO_THE_MACHINE:
            continue
        if held_out(r["path"]):
            held += 1
            continue
        found.append(PackFile(r["source"], r["path"], r["language"], r["text"]))
    return found, held


def _sample(rows: list[PackFile], bytes_per_language: int, seed: int) -> list[PackFile]:
    """Each language's files in a seeded order (from a sorted one, so the corpus's order does not matter), up
    to the file that reaches `bytes_per_language`."""
    by_language: dict[str, list[PackFile]] = defaultdict(list)
    for row in rows:
        by_language[row.language].append(row)
    rng = random.Random(seed)
    chosen: list[PackFile] = []
    for language in sorted(by_language):
        candidates = sorted(by_language[language], key=lambda r: (r.source, r.path))
        rng.shuffle(candidates)
        size = 0
        for row in candidates:
            if size >= bytes_per_language:
                break
            chosen.append(row)
            size += _size(row)
    return chosen


def _size(row: PackFile) -> int:
    return len(row.text.encode("utf-8", "surrogatepass"))


def _totals(rows: list[PackFile], key: Any) -> dict[str, dict[str, int]]:
    files: Counter[str] = Counter()
    size: Counter[str] = Counter()
    for row in rows:
        files[key(row)] += 1
        size[key(row)] += _size(row)
    return {name: {"files": files[name], "bytes": size[name]} for name in sorted(files)}


def _compressed(rows: list[PackFile]) -> bytes:
    lines = "".join(
        json.dumps({"source": r.source, "path": r.path, "language": r.language, "text": r.text}, ensure_ascii=False)
        + "\n"
        for r in rows
    )
    # xz at its strongest: the pack is written once and ships in every install.
    return lzma.compress(lines.encode("utf-8", "surrogatepass"), preset=9 | lzma.PRESET_EXTREME)


def _notice(used: list[str], sources: dict[str, Source]) -> str:
    """Each used source's licence files, under a heading that names the source and its licence."""
    parts = [
        "The rehearsal pack holds files of the sources below, each under its own licence, given here as the\n"
        "source ships it.\n"
    ]
    for name in used:
        source = sources[name]
        parts.append(f"\n{'=' * 78}\n{source.name} {source.version} ({source.licence.spdx})\n{'=' * 78}\n")
        for path in source.notices:
            parts.append(f"--- {path.name} ---\n{path.read_text(encoding='utf-8', errors='replace').rstrip()}\n")
    return "".join(parts)


def read(pack: Path = SHIPPED) -> tuple[dict[str, Any], list[PackFile]]:
    """The pack's manifest and files, checked against the manifest's hash."""
    try:
        manifest = json.loads((pack / MANIFEST).read_text(encoding="utf-8"))
        if not isinstance(manifest, dict) or manifest.get("format") != PACK_FORMAT:
            raise RehearsalPackError(f"{pack / MANIFEST}: not a rehearsal pack of format {PACK_FORMAT}")
        data = (pack / TEXTS).read_bytes()
    except FileNotFoundError as exc:
        raise RehearsalPackError(f"{pack} holds no rehearsal pack ({Path(exc.filename).name} is missing)") from None
    except (OSError, ValueError) as exc:
        raise RehearsalPackError(f"{pack} is not a readable rehearsal pack: {exc}") from None
    if hashlib.sha256(data).hexdigest() != manifest.get("texts_sha256"):
        raise RehearsalPackError(f"{pack / TEXTS} does not match its manifest's hash: the pack is damaged")
    try:
        lines = io.StringIO(lzma.decompress(data).decode("utf-8", "surrogatepass"))
        files = [PackFile(**json.loads(line)) for line in lines]
    except (lzma.LZMAError, UnicodeDecodeError, ValueError, TypeError) as exc:
        raise RehearsalPackError(f"{pack / TEXTS} cannot be read: {exc}") from None
    return manifest, files
