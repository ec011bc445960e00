"""`codedouble base corpus`: the base's training code, gathered from permissively licensed sources.

    CORPUS/files.jsonl     one file a line: {"source", "path", "language", "text"} (scrubbed)
    CORPUS/manifest.json   per source: name, version, licence and its evidence, files, bytes, languages,
                           a hash of what was kept; the rejected sources and why; totals per language

Files go through the miner's own filters (language, vendored, generated, minified, binary, not UTF-8,
size), then test code, exact duplicates and secrets are dealt with as the miner does.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from codedouble.grammars.languages import language_for_path
from codedouble.server.contract import atomic
from codedouble.server.contract.errors import CodedoubleError
from codedouble.trainer.base.sources import Source
from codedouble.trainer.mining import filters
from codedouble.trainer.mining.secrets import SecretScrubber

CORPUS_FORMAT = 1
FILES = "files.jsonl"
MANIFEST = "manifest.json"
DUPLICATE = "duplicate"
MAX_FILE_BYTES = 200_000  # bigger files are tables and generated code far more often than hand-written


class BaseCorpusError(CodedoubleError):
    """A base corpus directory that is missing, damaged or of another format."""


@dataclass(frozen=True)
class CorpusOptions:
    max_source_bytes: int = 8_000_000  # no one project (torch, transformers) drowns out the others
    max_file_bytes: int = MAX_FILE_BYTES


@dataclass
class _Totals:
    languages: Counter[str] = field(default_factory=Counter)  # bytes
    files_per_language: Counter[str] = field(default_factory=Counter)
    rejected_files: Counter[str] = field(default_factory=Counter)
    secrets: Counter[str] = field(default_factory=Counter)
    kept_sources: list[dict[str, Any]] = field(default_factory=list)
    rejected_sources: list[dict[str, Any]] = field(default_factory=list)


def build(sources: Iterable[Source], out: Path, options: CorpusOptions = CorpusOptions()) -> dict[str, Any]:
    """Write the corpus into `out` (replacing one there) and return its manifest."""
    out.mkdir(parents=True, exist_ok=True)
    scrubber = SecretScrubber()
    path_filter = filters.PathFilter()
    seen: set[str] = set()
    totals = _Totals()
    with atomic.file(out / FILES) as sink:  # a failed build leaves the previous corpus, and nothing half-written
        for source in sources:
            _add(source, sink, options, scrubber, path_filter, seen, totals)
    kept_sources, rejected_sources = totals.kept_sources, totals.rejected_sources
    manifest = {
        "format": CORPUS_FORMAT,
        "sources": kept_sources,
        "rejected_sources": rejected_sources,
        "languages": {
            lang: {"files": totals.files_per_language[lang], "bytes": n} for lang, n in sorted(totals.languages.items())
        },
        "bytes": sum(totals.languages.values()),
        "files": sum(s["files"] for s in kept_sources),
        "rejected_files": dict(sorted(totals.rejected_files.items())),
        "secrets_scrubbed": dict(sorted(totals.secrets.items())),
        "options": {"max_source_bytes": options.max_source_bytes, "max_file_bytes": options.max_file_bytes},
    }
    manifest["sha256"] = manifest_hash(manifest)
    atomic.write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def _add(
    source: Source,
    sink: TextIO,
    options: CorpusOptions,
    scrubber: SecretScrubber,
    path_filter: filters.PathFilter,
    seen: set[str],
    totals: _Totals,
) -> None:
    """One source's admissible files, scrubbed, into `sink`; its manifest entry into the kept or rejected list."""
    entry = {
        "name": source.name,
        "version": source.version,
        "kind": source.kind,
        "licence": source.licence.spdx or "unknown",
        "evidence": source.licence.evidence,
    }
    if not source.licence.permissive:
        totals.rejected_sources.append(
            {**entry, "reason": "licence not permissive" if source.licence.spdx else "licence unknown"}
        )
        return
    digest = hashlib.sha256()
    files = size = 0
    languages: Counter[str] = Counter()
    for path, location in source.files:
        if size >= options.max_source_bytes:
            totals.rejected_files["over the per-source cap"] += 1
            continue
        reason, text = _admit(path, location, path_filter, options, seen)
        if reason is not None:
            totals.rejected_files[reason] += 1
            continue
        assert text is not None
        scrubbed = scrubber.scrub(text)
        totals.secrets.update(scrubbed.kinds)
        language = language_for_path(path) or ""
        data = scrubbed.text.encode("utf-8", "surrogatepass")
        digest.update(path.encode() + b"\0" + data + b"\0")
        files += 1
        size += len(data)
        languages[language] += len(data)
        totals.files_per_language[language] += 1
        sink.write(
            json.dumps(
                {"source": source.name, "path": path, "language": language, "text": scrubbed.text}, ensure_ascii=False
            )
            + "\n"
        )
    if files:
        totals.languages.update(languages)
        totals.kept_sources.append(
            {**entry, "files": files, "bytes": size, "languages": dict(languages), "sha256": digest.hexdigest()}
        )
    else:
        totals.rejected_sources.append({**entry, "reason": "no admissible files"})
    if source.rejected_files:
        totals.rejected_files["another licence (per-file)"] += source.rejected_files


def manifest_hash(manifest: dict[str, Any]) -> str:
    """The corpus's identity: its manifest without the hash itself (each source's hash covers its files)."""
    return hashlib.sha256(
        json.dumps({k: v for k, v in manifest.items() if k != "sha256"}, sort_keys=True).encode()
    ).hexdigest()


def _admit(
    path: str, location: Path, path_filter: filters.PathFilter, options: CorpusOptions, seen: set[str]
) -> tuple[str | None, str | None]:
    """(reason to leave the file out, None) or (None, its text)."""
    reason = path_filter.reject(path)
    if reason is not None:
        return reason, None
    if filters.is_test_path(path):
        return filters.TEST, None
    try:
        if location.is_symlink() or not location.is_file():
            return filters.NOT_A_FILE, None
        if location.stat().st_size > options.max_file_bytes:
            return filters.TOO_LARGE, None
        data = location.read_bytes()
    except OSError:
        return "unreadable", None
    reason = filters.reject_content(data)
    if reason is not None:
        return reason, None
    key = hashlib.sha256(data).hexdigest()
    if key in seen:
        return DUPLICATE, None
    seen.add(key)
    return None, data.decode("utf-8")


def read_manifest(corpus: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((corpus / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BaseCorpusError(f"{corpus} holds no corpus (no {MANIFEST}); run `codedouble base corpus` first") from None
    except (OSError, ValueError) as exc:
        raise BaseCorpusError(f"{corpus / MANIFEST} is not a readable corpus manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != CORPUS_FORMAT:
        raise BaseCorpusError(f"{corpus / MANIFEST}: not a corpus of format {CORPUS_FORMAT}; build it again")
    return manifest


def read_files(corpus: Path) -> Iterable[dict[str, str]]:
    with (corpus / FILES).open(encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)
