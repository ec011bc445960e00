"""`codedouble base corpus`: the base's training code, gathered from permissively licensed sources.

    CORPUS/files.jsonl     one file a line: {"source", "path", "language", "text"} (scrubbed)
    CORPUS/manifest.json   per source: name, version, licence and its evidence, files, bytes, languages,
                           a hash of what was kept; the rejected sources and why; totals per language

Files go through the miner's own filters (language, vendored, generated, minified, binary, not UTF-8,
size), then test code, exact duplicates and secrets are dealt with as the miner does.

Each source is scanned on its own (its files read, filtered, capped and scrubbed), in worker processes when
`jobs` > 1; this process then drops the files an earlier source already holds and writes, in source order.
So the corpus is the same whatever `jobs` is. Another corpus (a part built on another machine) can be
merged in with `include`: its rows keep their sources' entries, and its duplicates of earlier files go too.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
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


@dataclass(frozen=True)
class _Admitted:
    """One file a source's scan admitted, scrubbed."""

    key: str  # SHA-256 of the file as read: files an earlier source holds are dropped by it
    path: str
    language: str
    text: str
    secrets: tuple[str, ...]


@dataclass
class _Scan:
    admitted: list[_Admitted] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)  # reason → files


def build(
    sources: Iterable[Source],
    out: Path,
    options: CorpusOptions = CorpusOptions(),
    jobs: int = 1,
    include: Iterable[Path] = (),
) -> dict[str, Any]:
    """Write the corpus into `out` (replacing one there) and return its manifest: `sources` scanned by `jobs`
    processes, then the rows of each corpus in `include`."""
    included = [(folder, read_manifest(folder)) for folder in include]  # refuse a bad one before any work
    out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    totals = _Totals()
    with atomic.file(out / FILES) as sink:  # a failed build leaves the previous corpus, and nothing half-written
        for source, scan in _scans(sources, options, jobs):
            _add(source, scan, sink, seen, totals)
        for folder, other in included:
            _include(folder, other, sink, seen, totals)
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
    if included:
        manifest["included"] = [{"sha256": other["sha256"], "options": other.get("options")} for _, other in included]
    manifest["sha256"] = manifest_hash(manifest)
    atomic.write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def _scans(sources: Iterable[Source], options: CorpusOptions, jobs: int) -> Iterator[tuple[Source, _Scan]]:
    """Each source with its scan, in the sources' order."""
    if jobs <= 1:
        for source in sources:
            yield source, _scan(source, options)
        return
    import multiprocessing
    from functools import partial

    listed = list(sources)
    # forkserver: workers do not inherit the caller's threads (torch's, a tokenizer's). imap keeps the order;
    # one source per task, since their sizes differ by a thousandfold.
    with multiprocessing.get_context("forkserver").Pool(jobs) as pool:
        yield from zip(listed, pool.imap(partial(_scan, options=options), listed), strict=True)


_SCRUBBER: SecretScrubber | None = None  # one per process: detect-secrets' plugins take a while to set up


def _scan(source: Source, options: CorpusOptions) -> _Scan:
    """One source's admissible files, scrubbed, up to the per-source cap (which counts files before the
    duplicates of other sources are dropped: a scan knows only its own source)."""
    global _SCRUBBER
    scan = _Scan()
    if not source.licence.permissive:
        return scan
    _SCRUBBER = _SCRUBBER or SecretScrubber()
    path_filter = filters.PathFilter()
    seen: set[str] = set()
    size = 0
    for path, location in source.files:
        if size >= options.max_source_bytes:
            scan.rejected["over the per-source cap"] += 1
            continue
        reason, text, key = _admit(path, location, path_filter, options, seen)
        if reason is not None or text is None:
            scan.rejected[reason or "unreadable"] += 1
            continue
        scrubbed = _SCRUBBER.scrub(text)
        size += len(scrubbed.text.encode("utf-8", "surrogatepass"))
        scan.admitted.append(_Admitted(key, path, language_for_path(path) or "", scrubbed.text, scrubbed.kinds))
    return scan


def _add(source: Source, scan: _Scan, sink: TextIO, seen: set[str], totals: _Totals) -> None:
    """One scanned source's files into `sink`, but those an earlier source holds; its manifest entry into the
    kept or rejected list."""
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
    totals.rejected_files.update(scan.rejected)
    kept = []
    for admitted in scan.admitted:
        if admitted.key in seen:
            totals.rejected_files[DUPLICATE] += 1
            continue
        seen.add(admitted.key)
        totals.secrets.update(admitted.secrets)
        kept.append(
            {"source": source.name, "path": admitted.path, "language": admitted.language, "text": admitted.text}
        )
    _write(entry, kept, sink, totals)
    if source.rejected_files:
        totals.rejected_files["another licence (per-file)"] += source.rejected_files


def _write(entry: dict[str, Any], rows: list[dict[str, str]], sink: TextIO, totals: _Totals) -> None:
    """A source's kept rows into `sink`, and its entry (files, bytes, languages, hash) into the manifest."""
    digest = hashlib.sha256()
    size = 0
    languages: Counter[str] = Counter()
    for row in rows:
        data = row["text"].encode("utf-8", "surrogatepass")
        digest.update(row["path"].encode() + b"\0" + data + b"\0")
        size += len(data)
        languages[row["language"]] += len(data)
        totals.files_per_language[row["language"]] += 1
        sink.write(json.dumps(row, ensure_ascii=False) + "\n")
    if rows:
        totals.languages.update(languages)
        totals.kept_sources.append(
            {**entry, "files": len(rows), "bytes": size, "languages": dict(languages), "sha256": digest.hexdigest()}
        )
    else:
        totals.rejected_sources.append({**entry, "reason": "no admissible files"})


def _include(folder: Path, other: dict[str, Any], sink: TextIO, seen: set[str], totals: _Totals) -> None:
    """Another corpus's rows (already filtered and scrubbed where it was built), source by source; its
    rejected sources and file counts join this corpus's."""
    entries = {s["name"]: s for s in other["sources"]}
    rows: dict[str, list[dict[str, str]]] = {name: [] for name in entries}
    for row in read_files(folder):
        key = hashlib.sha256(row["text"].encode("utf-8", "surrogatepass")).hexdigest()
        if key in seen:
            totals.rejected_files[DUPLICATE] += 1
            continue
        seen.add(key)
        rows.setdefault(row["source"], []).append(row)
    for name, kept in rows.items():
        known = entries.get(name, {"name": name})
        entry = {k: known.get(k, "") for k in ("name", "version", "kind", "licence", "evidence")}
        _write(entry, kept, sink, totals)
    totals.rejected_sources.extend(other["rejected_sources"])
    totals.rejected_files.update(other["rejected_files"])
    totals.secrets.update(other["secrets_scrubbed"])


def manifest_hash(manifest: dict[str, Any]) -> str:
    """The corpus's identity: its manifest without the hash itself (each source's hash covers its files)."""
    return hashlib.sha256(
        json.dumps({k: v for k, v in manifest.items() if k != "sha256"}, sort_keys=True).encode()
    ).hexdigest()


def _admit(
    path: str, location: Path, path_filter: filters.PathFilter, options: CorpusOptions, seen: set[str]
) -> tuple[str | None, str | None, str]:
    """(reason to leave the file out, None, "") or (None, its text, the SHA-256 of its bytes)."""
    reason = path_filter.reject(path)
    if reason is not None:
        return reason, None, ""
    if filters.is_test_path(path):
        return filters.TEST, None, ""
    try:
        if location.is_symlink() or not location.is_file():
            return filters.NOT_A_FILE, None, ""
        if location.stat().st_size > options.max_file_bytes:
            return filters.TOO_LARGE, None, ""
        data = location.read_bytes()
    except OSError:
        return "unreadable", None, ""
    reason = filters.reject_content(data)
    if reason is not None:
        return reason, None, ""
    key = hashlib.sha256(data).hexdigest()
    if key in seen:
        return DUPLICATE, None, ""
    seen.add(key)
    return None, data.decode("utf-8"), key


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
