"""`codedouble audit ARTIFACT`: what a double is made of, and every check of it that can be run here.

Provenance comes from the double's own manifest (so an exported double can be audited without its dataset);
the checks recompute what can be recomputed: each file's SHA-256, the base's weights and corpus, the licences
of the base's sources, a secret scan of the completion corpus, the absence of every forgotten definition's
text and path, and whether training came after the last `forget`. A check that needs something not on this
machine (the dataset, the base) says so and does not fail; any check that fails makes the exit status 1.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from codedouble.server.contract import artifact, corpus, edits, tombstones
from codedouble.trainer.base import licenses, shipped
from codedouble.trainer.mining.secrets import SecretScrubber

Status = Literal["ok", "failed", "not checked"]


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str


@dataclass
class Audit:
    artifact: Path
    provenance: list[tuple[str, str]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "failed" for c in self.checks)

    def add(self, name: str, status: Status, detail: str) -> None:
        self.checks.append(Check(name, status, detail))

    def render(self) -> str:
        width = max((len(k) for k, _ in self.provenance), default=0)
        lines = [f"codedouble audit — {self.artifact}", ""]
        lines += [f"  {key:<{width}}  {value}" for key, value in self.provenance]
        lines += ["", "checks:"]
        marks = {"ok": "ok    ", "failed": "FAILED", "not checked": "--    "}
        lines += [f"  {marks[c.status]}  {c.name}: {c.detail}" for c in self.checks]
        failed = [c.name for c in self.checks if c.status == "failed"]
        lines += ["", f"{len(failed)} check(s) failed: {', '.join(failed)}" if failed else "all checks hold"]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": str(self.artifact),
            "ok": self.ok,
            "provenance": dict(self.provenance),
            "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in self.checks],
        }


def audit(path: Path, dataset: Path | None = None) -> Audit:
    """Audit the double at `path`; `dataset` overrides the dataset path its manifest names (a moved dataset)."""
    report = Audit(path)
    try:
        manifest = artifact.read_manifest(path)
    except artifact.ArtifactError as exc:
        report.add("manifest", "failed", str(exc))
        return report
    report.add("manifest", "ok", f"artifact format {manifest['artifact_format']}")
    data = manifest.get("dataset") or {}
    dataset = dataset or (Path(data["path"]) if isinstance(data.get("path"), str) else None)
    _provenance(report, manifest)
    _files(report, path, manifest)
    _base(report, manifest)
    snippets = _corpus(report, path)
    if snippets is not None:
        _secrets(report, snippets)
    dataset_graves = tombstones.of_dataset(dataset) if dataset is not None else None
    graves = {t.id: t for t in tombstones.from_manifest(manifest, tombstones.ARTIFACT_KEY)}
    graves.update({t.id: t for t in dataset_graves or ()})
    if snippets is not None:
        _forgotten(report, list(graves.values()), snippets)
    _forgotten_habits(report, path, list(graves.values()))
    _after_forget(report, manifest, dataset, dataset_graves)
    return report


def _provenance(report: Audit, manifest: dict[str, Any]) -> None:
    data = manifest.get("dataset") or {}
    training = manifest.get("training") or {}
    records = manifest.get("records") or {}
    span = data.get("time_span") or {}
    base = training.get("base")
    add = report.provenance.append
    add(("created", str(manifest.get("created"))))
    add(("repository", f"{data.get('repository')} @ {str(data.get('head'))[:12]}"))
    for other in (data.get("repositories") or [])[1:]:  # a double of several repositories: the primary is above
        add(("repository", f"{other.get('path')} @ {str(other.get('head'))[:12]}"))
    add(("dataset", str(data.get("path"))))
    if span:
        add(("commits from", f"{span.get('first')} to {span.get('last')}"))
    add(("held out after", str((manifest.get("split") or {}).get("cutoff"))))
    add(("identities", ", ".join(manifest.get("identities") or []) or "every author"))
    add(
        (
            "records",
            f"{records.get('train')} trained on, {records.get('validation')} validation, "
            f"{records.get('heldout')} held out, {records.get('corpus_snippets')} in the completion corpus",
        )
    )
    languages = records.get("languages")
    if languages:
        add(("per language", ", ".join(f"{k} {v}" for k, v in languages.items())))
    add(("model", f"{training.get('parameters')} parameters, {training.get('finetune') or 'from scratch'}"))
    add(("base", f"{base.get('name')} sha256 {str(base.get('sha256'))[:16]}…" if base else "none (from scratch)"))
    secrets = data.get("secrets_scrubbed")
    if secrets is not None:
        add(("secrets scrubbed", ", ".join(f"{k} {v}" for k, v in secrets.items()) or "none found"))
    for t in tombstones.from_manifest(manifest, tombstones.ARTIFACT_KEY):
        add((f"forgotten #{t.id}", f"{t.day}: {t.rule.describe()} ({t.records} records)"))
    mark = manifest.get(tombstones.STALE_KEY)
    if isinstance(mark, dict):
        add(("stale", f"since {str(mark.get('since'))[:10]}: {mark.get('rule')}"))


def _files(report: Audit, path: Path, manifest: dict[str, Any]) -> None:
    recorded = manifest.get(artifact.FILES)
    if not isinstance(recorded, dict) or not recorded:
        report.add(
            "files", "failed", "the manifest records no file hashes (an older codedouble trained it): train again"
        )
        return
    actual = artifact.member_hashes(path)
    missing = sorted(set(recorded) - set(actual))
    changed = sorted(name for name in set(recorded) & set(actual) if recorded[name] != actual[name])
    extra = sorted(set(actual) - set(recorded))
    problems = [f"{name} missing" for name in missing] + [f"{name} changed" for name in changed]
    problems += [f"{name} not recorded" for name in extra]
    if problems:
        report.add("files", "failed", "; ".join(problems))
    else:
        report.add("files", "ok", f"{len(recorded)} files match their SHA-256 (weights, tokenizer, corpus, config)")


def _base(report: Audit, manifest: dict[str, Any]) -> None:
    base = (manifest.get("training") or {}).get("base")
    if not base:
        report.add("base", "ok", "trained from scratch: no base to verify")
        return
    candidates = [Path(p) for p in (base.get("path"),) if isinstance(p, str)]
    installed = shipped.shipped_base()
    candidates += [installed] if installed is not None else []
    for folder in candidates:
        if (folder / "model.safetensors").is_file() and shipped.identity(folder)["sha256"] == base.get("sha256"):
            report.add("base", "ok", f"{base.get('name')} at {folder}: weights match their SHA-256")
            _base_corpus(report, folder, base)
            return
    report.add("base", "not checked", f"no base with weights sha256 {str(base.get('sha256'))[:16]}… on this machine")


def _base_corpus(report: Audit, folder: Path, base: dict[str, Any]) -> None:
    path = folder / "corpus-manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        report.add("base licences", "not checked", f"{path} is not there")
        return
    if base.get("corpus_sha256") and manifest.get("sha256") != base["corpus_sha256"]:
        report.add("base licences", "failed", f"{path} is not the manifest of the corpus the base was trained on")
        return
    sources = manifest.get("sources") or []
    by_licence = Counter(str(s.get("licence")) for s in sources)
    refused = sorted(
        {f"{s.get('name')} ({s.get('licence')})" for s in sources if not _permissive(str(s.get("licence", "")))}
    )
    summary = ", ".join(f"{k} {n}" for k, n in by_licence.most_common())
    if refused:
        report.add("base licences", "failed", f"not permissive: {', '.join(refused)}")
    else:
        report.add("base licences", "ok", f"{len(sources)} sources, all permissive: {summary}")


def _permissive(expression: str) -> bool:
    try:
        return licenses.spdx_permissive(expression)
    except ValueError:
        return False


def _corpus(report: Audit, path: Path) -> list[corpus.Snippet] | None:
    try:
        snippets = corpus.load(path)
    except corpus.CorpusError as exc:
        report.add("corpus", "failed", str(exc))
        return None
    kinds = Counter(s.kind for s in snippets)
    report.add("corpus", "ok", f"{kinds['definition']} definitions and {kinds['module']} module-level runs")
    return snippets


def _secrets(report: Audit, snippets: list[corpus.Snippet]) -> None:
    """The scrubber that cleaned the data, run again over what the double will show: nothing may be found.
    Only paths and kinds are printed, never a value."""
    scrubber = SecretScrubber()
    found: Counter[str] = Counter()
    where: list[str] = []
    for s in snippets:
        kinds = scrubber.scrub(s.text).kinds
        if kinds:
            found.update(kinds)
            where.append(s.path)
    if found:
        kinds = ", ".join(f"{k} {n}" for k, n in found.most_common())
        report.add("secrets", "failed", f"{kinds} in {', '.join(sorted(set(where))[:5])}")
    else:
        report.add("secrets", "ok", f"none found in {len(snippets)} corpus entries")


def _forgotten(report: Audit, graves: list[tombstones.Tombstone], snippets: list[corpus.Snippet]) -> None:
    if not graves:
        report.add("forgotten", "ok", "nothing was forgotten")
        return
    gone = {h for t in graves for h in t.text_hashes}
    # A rule of some repositories only is checked by its fingerprints: the corpus does not record which
    # repository an entry came from, and another repository may hold the same path.
    rules = [t.rule for t in graves if not t.rule.repositories]
    texts = [s.path for s in snippets if tombstones.text_hash(s.text) in gone]
    paths = [s.path for s in snippets if any(rule.path_matches(s.path) for rule in rules)]
    if texts or paths:
        detail = []
        if texts:
            detail.append(
                f"{len(texts)} forgotten definition(s) still in the corpus ({', '.join(sorted(set(texts))[:5])})"
            )
        if paths:
            detail.append(f"{len(paths)} corpus entries from forgotten paths ({', '.join(sorted(set(paths))[:5])})")
        report.add("forgotten", "failed", "; ".join(detail))
    else:
        records = sum(t.records for t in graves)
        report.add(
            "forgotten",
            "ok",
            f"none of the {len(gone)} forgotten definitions ({records} records, {len(graves)} forget(s)) "
            "and nothing from a forgotten path is in the corpus",
        )


def _forgotten_habits(report: Audit, path: Path, graves: list[tombstones.Tombstone]) -> None:
    """The recurring rewrites the double ships (edits.jsonl) name the commits they were learnt from: none may be
    a commit a forget removed records of."""
    try:
        habits = edits.load(path)
    except edits.EditsError as exc:
        report.add("forgotten habits", "failed", str(exc))
        return
    if habits is None:
        return  # trained before doubles kept habits: nothing to check
    gone = {c for t in graves for c in t.commits}
    stale = [p for p in habits if gone.intersection(p.commits)]
    if stale:
        shown = ", ".join(p.rewrite.describe() for p in stale[:3])
        report.add(
            "forgotten habits", "failed", f"{len(stale)} recurring rewrite(s) learnt from forgotten commits ({shown})"
        )
    else:
        report.add(
            "forgotten habits", "ok", f"none of the {len(habits)} recurring rewrites comes from a forgotten commit"
        )


def _after_forget(
    report: Audit, manifest: dict[str, Any], dataset: Path | None, dataset_graves: list[tombstones.Tombstone] | None
) -> None:
    mark = manifest.get(tombstones.STALE_KEY)
    later = tombstones.stale_by(manifest, dataset_graves or [])
    if isinstance(mark, dict) or later is not None:
        when = str(mark.get("since") if isinstance(mark, dict) else later.created)[:10]  # type: ignore[union-attr]
        report.add(
            "trained after forget", "failed", f"trained before a `forget` of {when} removed data it saw: train again"
        )
    elif dataset_graves is None:
        honoured = len(tombstones.from_manifest(manifest, tombstones.ARTIFACT_KEY))
        report.add(
            "trained after forget",
            "not checked",
            f"its dataset ({dataset}) is not here; it honoured the {honoured} forget(s) it records",
        )
    else:
        report.add("trained after forget", "ok", f"trained after each of the dataset's {len(dataset_graves)} forget(s)")
