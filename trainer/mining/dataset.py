"""The dataset directory `codedouble mine` writes and `codedouble train` reads.

    DATASET/manifest.json          what was mined, from where, with which options, and the counts
    DATASET/records/part-NNNN.jsonl  change records, one shard per mining run
    DATASET/report.txt             the data report of the whole dataset

The manifest is the commit point: it is replaced atomically after its shards are complete, and lists them,
so an interrupted run leaves the previous dataset readable and its stray shard is swept on the next run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codedouble.server.contract import atomic, tombstones
from codedouble.server.contract.errors import CodedoubleError
from codedouble.trainer.mining import filters
from codedouble.trainer.mining.records import RECORD_FORMAT, ChangeRecord

DATASET_FORMAT = 1
MANIFEST = "manifest.json"
RECORDS_DIR = "records"


class DatasetError(CodedoubleError):
    """A dataset directory codedouble cannot read or must not write into."""


def read_manifest(dataset: Path, check_format: bool = True) -> dict[str, Any] | None:
    """The dataset's manifest, None when the directory holds no dataset yet. A manifest another tool wrote is
    always an error (so nothing of theirs is overwritten); an older codedouble format only with check_format."""
    path = dataset / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} is not a readable codedouble manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("tool") != "codedouble" or "dataset_format" not in manifest:
        raise DatasetError(f"{dataset} holds a manifest.json that codedouble did not write; choose another --out")
    outdated = manifest["dataset_format"] != DATASET_FORMAT or manifest.get("record_format") != RECORD_FORMAT
    if check_format and outdated:
        raise DatasetError(
            f"{dataset} was written in dataset format {manifest['dataset_format']}/record format "
            f"{manifest.get('record_format')}; this codedouble reads {DATASET_FORMAT}/{RECORD_FORMAT}: mine again with --fresh"
        )
    return manifest


def path_filter(manifest: dict[str, Any], repository: str | None = None) -> filters.PathFilter:
    """The paths a dataset was mined from (its --include/--exclude, less the paths `forget` took back): what
    eval and tuning type lines of, and where the corpus's module-level lines come from. Each repository was
    mined with its own options (the primary's when `repository` is not given)."""
    entry = next((e for e in manifest.get("repositories") or () if e["path"] == repository), None)
    options = (entry or manifest).get("options", {})
    which = repository if repository is not None else manifest.get("repository")
    forgotten = tuple(
        glob for t in tombstones.from_manifest(manifest) if t.rule.applies_to(which) for glob in t.rule.paths
    )
    return filters.PathFilter(tuple(options.get("include", ())), tuple(options.get("exclude", ())) + forgotten)


def write_manifest(dataset: Path, manifest: dict[str, Any]) -> None:
    manifest = {"tool": "codedouble", "dataset_format": DATASET_FORMAT, "record_format": RECORD_FORMAT, **manifest}
    atomic.write_text(dataset / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def sweep_unlisted_shards(dataset: Path, listed: list[str]) -> None:
    """Remove shards an interrupted or replaced run left behind; the manifest is the truth."""
    folder = dataset / RECORDS_DIR
    if not folder.is_dir():
        return
    keep = {Path(name).name for name in listed}
    for path in folder.iterdir():
        if path.name not in keep and (path.suffix in {".jsonl", ".tmp"}):
            path.unlink(missing_ok=True)


class ShardWriter:
    """Writes one shard of records to a temporary name; `commit()` gives it its final name."""

    def __init__(self, dataset: Path, name: str) -> None:
        folder = dataset / RECORDS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / name
        self._file = atomic.AtomicFile(self.path)
        self.count = 0

    def write(self, record: ChangeRecord) -> None:
        self._file.handle.write(record.to_json())
        self._file.handle.write("\n")
        self.count += 1

    def write_line(self, line: str) -> None:
        """A record line as read from another shard, kept byte for byte (`forget` rewriting a shard)."""
        self._file.handle.write(line if line.endswith("\n") else line + "\n")
        self.count += 1

    def commit(self) -> None:
        self._file.commit()

    def abort(self) -> None:
        self._file.abort()


def shard_lines(dataset: Path, name: str) -> Iterator[str]:
    with (dataset / RECORDS_DIR / name).open(encoding="utf-8") as f:
        yield from f


def _shard_lines(dataset: Path, manifest: dict[str, Any]) -> Iterator[str]:
    for name in manifest.get("shards", []):
        with (dataset / RECORDS_DIR / name).open(encoding="utf-8") as f:
            yield from f


def load_records(dataset: Path) -> Iterator[ChangeRecord]:
    """Every record of a mined dataset, in the order mined (oldest commit first within each run)."""
    manifest = read_manifest(dataset)
    if manifest is None:
        raise DatasetError(f"{dataset} holds no codedouble dataset (no {MANIFEST}); run `codedouble mine` first")
    for line in _shard_lines(dataset, manifest):
        yield ChangeRecord.from_dict(json.loads(line))


def content_hashes(dataset: Path, manifest: dict[str, Any]) -> set[str]:
    """The content hashes already in the dataset, so an incremental run drops repeats of earlier changes."""
    return {json.loads(line)["content_hash"] for line in _shard_lines(dataset, manifest)}
