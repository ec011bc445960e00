"""`codedouble export` / `codedouble import`: one double as one tar file, checked member by member on the way in.

    FILE (tar; gzip when its name ends in .gz or .tgz)
        codedouble-export.json   first member: format, tool version, the artifact's name, each member's SHA-256
                                 and size, which manifest paths were redacted
        manifest.json, model.safetensors, config.json, tokenizer.json, corpus.jsonl, ...   the artifact's files

What travels is the double itself: every regular file of the artifact directory except its `eval/` report
(derived from this machine's repository, full of this machine's paths, and remade by `codedouble eval` where
the history is). The feedback log (`feedback.jsonl`, beside the artifact, not in it) stays home: it is the
engineer's record of using all the repository's doubles, not part of one double.

Import trusts nothing before it is checked: the export manifest must come first and be ours; every member must
be a regular file with a plain relative name (tarfile's `data` filter, then our own stricter rule), listed in
that manifest, of the listed size and SHA-256; none may be missing or repeated. Members are written into the
staging directory of `atomic.directory`, so a refused or interrupted import installs nothing. The SHA-256s
catch damage and truncation; they are no signature: whoever can rewrite the archive can rewrite its manifest.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from codedouble.server.contract import artifact, atomic
from codedouble.server.contract.errors import CodedoubleError
from codedouble.server.contract.version import tool_version

EXPORT_MANIFEST = "codedouble-export.json"
EXPORT_FORMAT = 1
FORMAT_NAME = "codedouble-export"
LEFT_OUT = {"eval"}  # top-level entries of an artifact that are not the double (see the module's docstring)
MANIFEST_LIMIT = 1 << 20  # an export manifest is a few KB; refuse to read a huge "manifest" into memory
CHUNK = 1 << 20
REDACTED = "<redacted>"
# A default install name must be a plain folder name that is not one of the doubles folder's own files.
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
RESERVED_NAMES = {artifact.CURRENT, "feedback.jsonl"}


class ArchiveError(CodedoubleError):
    """An export or import that cannot go ahead; the message names the problem and the fix."""


@dataclass(frozen=True)
class Exported:
    archive: Path
    members: int
    bytes: int
    redacted: list[str]


@dataclass(frozen=True)
class Imported:
    artifact: Path
    already_there: bool  # the target already held exactly this double (a re-run): nothing was written


# --- export ----------------------------------------------------------------------------------------------


def redact_paths(manifest: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The manifest with every absolute path of this machine cut to `<redacted>/BASENAME`, and the dotted keys
    it cut. The basename keeps what a reader wants (which repository, which dataset) without the home directory;
    the `<redacted>/` prefix keeps it from ever resolving against another machine's working directory (eval
    reads `dataset.path` and `dataset.repository`, and must say they are gone, not read a stranger's folder)."""
    redacted: list[str] = []

    def walk(value: Any, key: str) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, f"{key}.{k}" if key else k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{key}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str) and _is_absolute_path(value):
            redacted.append(key)
            return f"{REDACTED}/{PurePosixPath(value.replace(chr(92), '/')).name}"
        return value

    return walk(manifest, ""), redacted


def _is_absolute_path(value: str) -> bool:
    # POSIX and Windows spellings alike: an artifact trained elsewhere may be exported here.
    return value.startswith(("/", "~/", "\\\\")) or bool(re.match(r"[A-Za-z]:[\\/]", value))


def _artifact_files(folder: Path) -> list[tuple[str, Path]]:
    """(member name, path) of every file the double is made of, sorted; a link or a special file is refused,
    since an archive of links would point at this machine's files."""
    files: list[tuple[str, Path]] = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if relative.parts[0] in LEFT_OUT:
            continue
        if path.is_symlink() or not (path.is_dir() or path.is_file()):
            raise ArchiveError(f"{path} is a link or a special file; an exported double holds regular files only")
        if path.is_file():
            files.append((relative.as_posix(), path))
    return files


def _sha256(stream: IO[bytes]) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: stream.read(CHUNK), b""):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def export(folder: Path, out: Path, redact: bool = True) -> Exported:
    """Write the double at `folder` to the archive `out` (replaced whole or not at all)."""
    manifest = artifact.read_manifest(folder)
    if out.resolve().is_relative_to(folder.resolve()):
        raise ArchiveError(f"{out} lies inside the double it would hold; write the archive elsewhere")
    if out.is_dir():
        raise ArchiveError(f"{out} is a directory; --out names the archive file to write (e.g. double.tar)")
    redacted: list[str] = []
    if redact:
        manifest, redacted = redact_paths(manifest)
        manifest["exported"] = {"redacted_paths": redacted, "tool_version": tool_version()}
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()

    # First pass: the hashes, which the export manifest (the first member) must hold before any file is written.
    members: dict[str, dict[str, Any]] = {}
    sources = _artifact_files(folder)
    for name, path in sources:
        if name == artifact.MANIFEST:
            digest, size = hashlib.sha256(manifest_bytes).hexdigest(), len(manifest_bytes)
        else:
            with path.open("rb") as f:
                digest, size = _sha256(f)
        members[name] = {"sha256": digest, "size": size}
    header = {
        "format": FORMAT_NAME,
        "export_format": EXPORT_FORMAT,
        "tool_version": tool_version(),
        "artifact_format": artifact.ARTIFACT_FORMAT,
        "name": folder.resolve().name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "redacted_paths": redacted,
        "members": members,
    }
    header_bytes = (json.dumps(header, indent=2, sort_keys=True) + "\n").encode()

    compressed = out.name.endswith((".gz", ".tgz"))
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic.file(out, "wb") as handle, tarfile.open(fileobj=handle, mode="w|gz" if compressed else "w|") as tar:
        _add(tar, EXPORT_MANIFEST, len(header_bytes), _bytes_reader(header_bytes))
        for name, path in sources:
            if name == artifact.MANIFEST:
                _add(tar, name, len(manifest_bytes), _bytes_reader(manifest_bytes))
                continue
            # Second pass: a file that changed since it was hashed would make an archive import refuses.
            with path.open("rb") as f:
                hashing = _Hashing(f)
                _add(tar, name, members[name]["size"], hashing)
                if hashing.digest.hexdigest() != members[name]["sha256"]:
                    raise ArchiveError(f"{path} changed while it was being exported; export again")
    return Exported(out, len(members), out.stat().st_size, redacted)


def _add(tar: tarfile.TarFile, name: str, size: int, stream: IO[bytes]) -> None:
    # A header of our own: gettarinfo() would record this machine's user and group names and ids.
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime, info.type = size, 0o644, int(time.time()), tarfile.REGTYPE
    tar.addfile(info, stream)


def _bytes_reader(data: bytes) -> IO[bytes]:
    return io.BytesIO(data)


class _Hashing:
    """A reader that hashes what passes through it (tarfile reads exactly the member's size)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream, self.digest = stream, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.digest.update(data)
        return data


# --- import ----------------------------------------------------------------------------------------------


def default_target(repo: Path, name: str) -> Path:
    """Where `import` puts a double by default: the doubles folder of the repository around `repo`, found and
    resolved as the server finds a workspace's repository, so that `serve` there picks it up."""
    import git

    try:
        found = git.Repo(repo, search_parent_directories=True).working_tree_dir
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        found = None
    if found is None:
        raise ArchiveError(
            f"{repo.resolve()} is not inside a git repository with a working tree; run import in the repository "
            "the double is for, pass --repo REPO, or install at a path of your choice with --out DIR"
        )
    safe = SAFE_NAME.fullmatch(name) and name not in RESERVED_NAMES
    return artifact.doubles_dir(str(Path(found).resolve())) / (name if safe else "imported")


def read_header(archive: Path) -> dict[str, Any]:
    """The archive's export manifest, checked, without reading the rest."""
    with _opened(archive) as tar:
        return _header(archive, tar, next(iter(tar), None))


def install(archive: Path, target: Path, force: bool = False) -> Imported:
    """Check every member of `archive` and install the double at `target` (whole or not at all)."""
    if target.exists() and not target.is_dir():
        raise ArchiveError(f"{target} exists and is not a directory; choose another --out")
    if target.exists() and not force:
        header = read_header(archive)
        if _holds(target, header):  # a re-run (say, after the first was killed before marking it current)
            return Imported(target, already_there=True)
        raise ArchiveError(
            f"{target} already holds a double; pass --force to replace it, or --out DIR to install elsewhere"
        )
    with _opened(archive) as tar, atomic.directory(target) as staging:
        members = iter(tar)
        header = _header(archive, tar, next(members, None))
        expected: dict[str, dict[str, Any]] = header["members"]
        seen: set[str] = set()
        for member in _guarded(archive, members):
            _check_member(archive, member, staging, expected, seen)
            _extract(archive, tar, member, staging, expected[member.name])
            seen.add(member.name)
        missing = sorted(set(expected) - seen)
        if missing:
            raise ArchiveError(
                f"{archive} is missing {', '.join(missing)} (truncated, or not as exported); export it again"
            )
        try:
            artifact.read_manifest(staging)
        except artifact.ArtifactError:
            raise ArchiveError(f"{archive} holds no double this codedouble can read (its manifest.json)") from None
    return Imported(target, already_there=False)


class _opened:
    """The archive open for streaming (one pass, gzip or plain), with tarfile's and gzip's complaints about a
    damaged file turned into one clear error."""

    def __init__(self, archive: Path) -> None:
        self.archive = archive

    def __enter__(self) -> tarfile.TarFile:
        if not self.archive.is_file():
            raise ArchiveError(f"{self.archive} does not exist or is not a file")
        try:
            self.tar = tarfile.open(self.archive, mode="r|*")
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ArchiveError(f"{self.archive} is not a codedouble export (not a tar archive: {exc})") from None
        return self.tar

    def __exit__(self, *exc: object) -> None:
        self.tar.close()


def _guarded(archive: Path, members: Iterator[tarfile.TarInfo]) -> Iterator[tarfile.TarInfo]:
    """The members, with reading past a damaged or cut-off end reported as such."""
    while True:
        try:
            member = next(members)
        except StopIteration:
            return
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise ArchiveError(f"{archive} is truncated or damaged ({exc}); export it again") from None
        yield member


def _header(archive: Path, tar: tarfile.TarFile, first: tarfile.TarInfo | None) -> dict[str, Any]:
    foreign = f"{archive} is not a codedouble export"
    if first is None or first.name != EXPORT_MANIFEST or not first.isreg():
        raise ArchiveError(f"{foreign} (its first member is not {EXPORT_MANIFEST}); make one with `codedouble export`")
    if first.size > MANIFEST_LIMIT:
        raise ArchiveError(f"{foreign} ({EXPORT_MANIFEST} is {first.size:,} bytes)")
    try:
        stream = tar.extractfile(first)
        assert stream is not None  # a regular member always has a stream
        header = json.loads(stream.read().decode("utf-8"))
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ArchiveError(f"{archive} is truncated or damaged ({exc}); export it again") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ArchiveError(f"{archive}: {EXPORT_MANIFEST} is not valid JSON (damaged or altered)") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise ArchiveError(f"{foreign} ({EXPORT_MANIFEST} is not codedouble's)")
    if header.get("export_format") != EXPORT_FORMAT:
        raise ArchiveError(
            f"{archive} is in export format {header.get('export_format')} (written by codedouble "
            f"{header.get('tool_version')}); this codedouble reads format {EXPORT_FORMAT}: use a matching version"
        )
    members = header.get("members")
    if not isinstance(members, dict) or artifact.MANIFEST not in members:
        raise ArchiveError(f"{archive}: {EXPORT_MANIFEST} lists no artifact manifest (damaged or altered)")
    for name, entry in members.items():
        if not _plain_name(name) or name == EXPORT_MANIFEST:
            raise ArchiveError(f"{archive} lists the member {name!r}, which is not a plain relative path; refused")
        if not (
            isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and isinstance(entry.get("size"), int)
        ):
            raise ArchiveError(f"{archive}: {EXPORT_MANIFEST} has no SHA-256 and size for {name} (damaged or altered)")
    return header


def _plain_name(name: str) -> bool:
    """A relative POSIX path of plain components: no root, no drive, no `..` or `.`, no backslash, no empties."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name or ":" in name:
        return False
    return all(part not in {"", ".", ".."} for part in name.split("/"))


def _check_member(
    archive: Path, member: tarfile.TarInfo, staging: Path, expected: dict[str, dict[str, Any]], seen: set[str]
) -> None:
    # tarfile's own rules first (absolute names, escapes from the destination, links, devices) ...
    try:
        tarfile.data_filter(member, str(staging))
    except tarfile.FilterError as exc:
        raise ArchiveError(f"{archive} holds a member codedouble refuses to extract: {exc}") from None
    # ... then ours, stricter: regular files only, each listed once, at its listed size.
    if not member.isreg():
        kind = "link" if member.issym() or member.islnk() else "directory" if member.isdir() else "special file"
        raise ArchiveError(f"{archive} holds a {kind}, {member.name!r}; an export holds regular files only")
    if not _plain_name(member.name):
        raise ArchiveError(f"{archive} holds the member {member.name!r}, which is not a plain relative path; refused")
    if member.name not in expected:
        raise ArchiveError(f"{archive} holds {member.name}, which its {EXPORT_MANIFEST} does not list (altered)")
    if member.name in seen:
        raise ArchiveError(f"{archive} holds {member.name} twice (altered)")
    if member.size != expected[member.name]["size"]:
        raise ArchiveError(
            f"{archive}: {member.name} is {member.size:,} bytes, its manifest says "
            f"{expected[member.name]['size']:,} (altered); export it again"
        )


def _extract(
    archive: Path, tar: tarfile.TarFile, member: tarfile.TarInfo, staging: Path, entry: dict[str, Any]
) -> None:
    path = staging / member.name
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        source = tar.extractfile(member)
        assert source is not None  # a regular member always has a stream
        with path.open("wb") as f:
            digest, size = hashlib.sha256(), 0
            for chunk in iter(lambda: source.read(CHUNK), b""):
                digest.update(chunk)
                size += len(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())  # the directory's rename is the commit point; its files must be on disk first
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ArchiveError(f"{archive} is truncated or damaged ({exc}); export it again") from None
    os.chmod(path, atomic.FILE_MODE)
    if size != entry["size"]:
        raise ArchiveError(f"{archive} is truncated: {member.name} ends after {size:,} of {entry['size']:,} bytes")
    if digest.hexdigest() != entry["sha256"]:
        raise ArchiveError(
            f"{archive}: {member.name} does not match its SHA-256 (damaged or altered in transit); export it again"
        )


def _holds(target: Path, header: dict[str, Any]) -> bool:
    """Whether `target` holds exactly the archive's files (same names, same SHA-256s)."""
    try:
        present = {name for name, _ in _artifact_files(target)}
    except ArchiveError:
        return False
    if present != set(header["members"]):
        return False
    for name, entry in header["members"].items():
        with (target / name).open("rb") as f:
            if _sha256(f) != (entry["sha256"], entry["size"]):
                return False
    return True
