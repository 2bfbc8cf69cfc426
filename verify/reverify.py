"""`claimscope reverify`: add new papers (or new versions of cited papers) to a finished run and re-check its claims.

Cost grows with what is new, not with the run: only the new papers are read and only their passages are embedded
(`EvidenceIndex.add`); only claims that can see the new passages are scored again, the other verdicts are kept.

Everything is staged under `RUN_DIR/.reverify/` and committed at the end with renames, following a small redo log:
the `COMMIT` marker is written only when every staged file is complete, so a crash before it leaves the old run
untouched (the staging folder is discarded on the next start), and a crash during the renames is rolled forward on
the next start. The verdicts, claims, papers list and diff that are replaced are kept under `history/<timestamp>/`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from claimscope.errors import BadRunDir, ClaimscopeError, PaperNotFound
from claimscope.rundir import RunDir, read_json, read_jsonl, write_json, write_jsonl
from claimscope.settings import Settings
from claimscope.types import (
    Claim,
    Evidence,
    Gap,
    Paper,
    PaperRef,
    ParsedDoc,
    Passage,
    ReverifyDiff,
    RunManifest,
    Verdict,
    VerdictChange,
)

logger = logging.getLogger(__name__)

STAGING = ".reverify"
COMMIT = "COMMIT"
LOCK = ".reverify.lock"
HISTORY = "history"
DIFF = "diff.json"
CONFIDENCE_DELTA = 0.05
# run-dir files a reverify may replace, in the order they are swapped in (passages before the index that refers
# to them, verdicts and diff last)
RUN_FILES = ["passages.jsonl", "papers.jsonl", "claims.jsonl", "verdicts.jsonl", DIFF, "run.json"]
HISTORY_FILES = ["verdicts.jsonl", "claims.jsonl", "papers.jsonl", DIFF, "run.json"]


@dataclass
class ReverifyResult:
    """What one reverify did."""

    diff: ReverifyDiff
    new_papers: list[str] = field(default_factory=list)  # paper keys added (or replaced: same key, other content)
    skipped: list[str] = field(default_factory=list)  # paper keys given that the run already holds unchanged
    gaps: list[Gap] = field(default_factory=list)
    embedded: int = 0
    rescored: list[str] = field(default_factory=list)
    history: str | None = None
    reports: list[Path] = field(default_factory=list)

    @property
    def changed_anything(self) -> bool:
        return bool(self.new_papers)


# ---- settings ---------------------------------------------------------------------------------------------------
def load_run_settings(run_dir: Path, **overrides: object) -> Settings:
    """The settings the run was made with (from run.json), with `section__field` overrides applied."""
    rd = RunDir(run_dir)
    if not rd.manifest.exists():
        raise BadRunDir(str(rd.root), "not a run directory (no run.json); make one with `claimscope run` first")
    manifest = read_json(rd.manifest, RunManifest)
    data: dict = {k: dict(v) for k, v in manifest.settings.items() if isinstance(v, dict)}
    for dotted, value in overrides.items():
        section, _, name = dotted.partition("__")
        data.setdefault(section, {})[name] = value
    try:
        return Settings.model_validate(data)
    except ValueError as e:
        raise BadRunDir(str(rd.manifest), f"settings do not validate: {str(e).splitlines()[0]}") from e


# ---- staging and commit -----------------------------------------------------------------------------------------
@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One reverify per run dir at a time (an OS lock: released when the process dies)."""
    fd = os.open(root / LOCK, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise BadRunDir(str(root), "another reverify is running on this run directory") from e
        yield
    finally:
        os.close(fd)


def recover(run_dir: Path) -> str | None:
    """Finish a committed reverify that was cut off during its renames, or discard an uncommitted one.

    Returns "rolled forward", "discarded" or None (nothing to do).
    """
    root = Path(run_dir)
    staging = root / STAGING
    if not staging.exists():
        return None
    if (staging / COMMIT).exists():
        logger.warning("%s: finishing a reverify that was interrupted while committing", root)
        _apply(root, staging)
        return "rolled forward"
    logger.warning("%s: discarding an unfinished reverify (the run is as it was before it)", root)
    shutil.rmtree(staging)
    return "discarded"


def _swap_dir(src: Path, dest: Path) -> None:
    old = dest.with_name(f".{dest.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        os.replace(dest, old)
    os.replace(src, dest)
    shutil.rmtree(old, ignore_errors=True)


def _apply(root: Path, staging: Path) -> None:
    """Move every staged file into the run dir. Safe to repeat: each move removes its source."""
    for hist in sorted((staging / HISTORY).glob("*")) if (staging / HISTORY).is_dir() else []:
        target = root / HISTORY / hist.name
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            os.replace(hist, target)
    for folder in sorted((staging / "papers").glob("*")) if (staging / "papers").is_dir() else []:
        _swap_dir(folder, root / "papers" / folder.name)
    for name in RUN_FILES[:2]:
        if (staging / name).exists():
            os.replace(staging / name, root / name)
    if (staging / "index").is_dir():
        _swap_dir(staging / "index", root / "index")
    for name in RUN_FILES[2:]:
        if (staging / name).exists():
            os.replace(staging / name, root / name)
    shutil.rmtree(staging)


# ---- collecting the new papers ----------------------------------------------------------------------------------
def _resolve_inputs(items: Sequence[str | Path]) -> tuple[list[Path], list[PaperRef]]:
    """Local files (or folders of them) named by arXiv id, and arXiv ids to fetch."""
    from claimscope.retrieve.ids import parse_arxiv_id
    from claimscope.retrieve.local import FORMATS, parse_filename

    files: list[Path] = []
    refs: list[PaperRef] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and parse_filename(p) is not None)
            if not found:
                raise PaperNotFound(str(path), "folder holds no paper file named by arXiv id (e.g. 2005.13013v2.pdf)")
            files.extend(found)
        elif path.is_file():
            if path.suffix.lower() not in FORMATS:
                raise PaperNotFound(str(path), f"cannot read {path.suffix or 'a file without extension'}: a paper "
                                               "is a .pdf, .txt, .md or .html file named by its arXiv id")
            if parse_filename(path) is None:
                raise PaperNotFound(str(path), "a new paper file must be named by its arXiv id, e.g. 2005.13013v2.md")
            files.append(path)
        else:
            try:
                refs.append(parse_arxiv_id(str(item)))
            except ValueError as e:
                raise PaperNotFound(str(item), "neither an existing file nor an arXiv id") from e
    return files, refs


def _read_local_file(path: Path, settings: Settings, papers_out: Path,
                     cited: dict[str, set[int | None]]) -> tuple[Paper, ParsedDoc]:
    from claimscope.retrieve.local import parse_filename, read_document, store_paper

    lf = parse_filename(path)
    assert lf is not None  # checked by _resolve_inputs
    ref = PaperRef(arxiv_id=lf.arxiv_id, version=lf.version)
    notes = []
    cited_versions = sorted(v for v in cited.get(lf.arxiv_id, set()) if v is not None)
    if cited_versions and lf.version not in cited_versions:
        notes.append(f"not the cited version: cited {', '.join(f'v{v}' for v in cited_versions)}, "
                     f"this file is {ref.key}")
    if lf.version is None:
        notes.append(f"local file {path.name} has no version in its name; version unknown")
    doc = read_document(path, lf.fmt, settings.retrieve)
    partial = lf.partial or bool(doc.meta.get("marked_partial"))
    if partial and not lf.partial:
        notes.append("file is marked PARTIAL in its header")
    paper = store_paper(ref, path.read_bytes(), lf.fmt, doc, papers_out, source="local", partial=partial, notes=notes)
    return paper, doc


def collect_new(items: Sequence[str | Path], settings: Settings, papers_out: Path, claims: list[Claim], *,
                search: str | None = None, search_max: int = 10) -> tuple[list[tuple[Paper, ParsedDoc]], list[Gap]]:
    """Read the new papers into `papers_out/<key>/`: local files, arXiv ids (papers folder, cache, or arXiv when
    online) and, online, the hits of an arXiv search."""
    from claimscope.retrieve.local import collect_papers

    files, refs = _resolve_inputs(items)
    cited: dict[str, set[int | None]] = {}
    for c in claims:
        for r in c.cited:
            if r.arxiv_id:
                cited.setdefault(r.arxiv_id, set()).add(r.version)
    if search:
        if settings.retrieve.offline:
            raise ClaimscopeError(f"--search {search!r}", "searching arXiv needs --online")
        from claimscope.retrieve.arxiv_source import ArxivSource

        hits = ArxivSource(settings.retrieve).search(search, max_results=search_max)
        logger.info("search %r: %d papers", search, len(hits))
        known = {r.key for r in refs}
        refs += [h.ref for h in hits if h.ref.key not in known]
    found: list[tuple[Paper, ParsedDoc]] = []
    gaps: list[Gap] = []
    for path in files:
        try:
            found.append(_read_local_file(path, settings, papers_out, cited))
        except (ClaimscopeError, OSError) as e:
            logger.warning("skipping %s: %s", path, e)
            gaps.append(Gap(stage="reverify", item=path.name, reason=str(e)))
    if refs and not settings.retrieve.offline:
        refs += _latest_versions(refs, settings)
    if refs:
        rs = settings.retrieve
        if rs.papers_dir is not None and not Path(rs.papers_dir).is_dir():
            # the folder the run was made with (run.json) is gone, e.g. a temporary one: the cache / arXiv remain
            logger.warning("papers folder %s no longer exists; looking %s up in the cache%s", rs.papers_dir,
                           ", ".join(r.key for r in refs), "" if rs.offline else " and on arXiv")
            rs = rs.model_copy(update={"papers_dir": None})
        got, ref_gaps = collect_papers(refs, rs, papers_out)
        # a versioned id asks for that version only; an unversioned one for every version found
        exact = {r.key for r in refs if r.version is not None}
        any_version = {r.arxiv_id for r in refs if r.version is None}
        found += [(p, d) for p, d in got if p.ref.key in exact or p.ref.arxiv_id in any_version]
        gaps += [Gap(stage="reverify", item=g.item, reason=g.reason) for g in ref_gaps]
        # a pinned version that is nowhere, while other versions of the paper are: say so, not "nothing new"
        got_keys, gap_items = {p.ref.key for p, _ in got}, {g.item for g in ref_gaps}
        for r in refs:
            if r.version is None or r.key in got_keys or r.key in gap_items:
                continue
            others = ", ".join(f"v{p.ref.version}" if p.ref.version else "an unversioned file"
                               for p, _ in got if p.ref.arxiv_id == r.arxiv_id)
            reason = f"not found: only {others} in {rs.papers_dir}, and not in the cache {rs.cache_dir}"
            if rs.offline:
                reason += "; --online fetches it from arXiv"
            gaps.append(Gap(stage="reverify", item=r.key, reason=reason))
    unique: dict[str, tuple[Paper, ParsedDoc]] = {}
    for paper, doc in found:
        unique.setdefault(paper.ref.key, (paper, doc))
    return list(unique.values()), gaps


# ---- the diff ---------------------------------------------------------------------------------------------------
def _latest_versions(refs: list[PaperRef], settings: Settings) -> list[PaperRef]:
    """Online, an id asked without a version also asks for its latest version on arXiv, pinned: otherwise a papers
    folder holding v1 answers for the paper and a newer version is never looked for ("nothing new")."""
    from claimscope.retrieve.arxiv_source import ArxivSource
    from claimscope.retrieve.ids import parse_arxiv_id, versioned_id

    loose = [r for r in refs if r.arxiv_id and r.version is None]
    if not loose:
        return []
    try:
        found = ArxivSource(settings.retrieve).lookup(loose)
    except ClaimscopeError as e:  # no answer from arXiv: the versions held or cached still count
        logger.warning("could not ask arXiv for the latest versions of %s: %s", ", ".join(r.key for r in loose), e)
        return []
    pinned = {r.key for r in refs}
    out = []
    for r in loose:
        result = found.get(versioned_id(r))
        latest = parse_arxiv_id(result.get_short_id()) if result is not None else None
        if latest is not None and latest.version is not None and latest.key not in pinned:
            out.append(r.model_copy(update={"version": latest.version}))
            pinned.add(latest.key)
    return out


def _evidence_of(v: Verdict) -> list[Evidence]:
    return list(v.evidence) + (list(v.full_text_verdict.evidence) if v.full_text_verdict else [])


def _version_notes(v: Verdict) -> list[str]:
    keys = ("states different numbers", "reads as", "is not available", "checked against")
    notes = list(v.checks.warnings) + (list(v.full_text_verdict.checks.warnings) if v.full_text_verdict else [])
    return list(dict.fromkeys(w for w in notes if any(k in w for k in keys)))


def _moved(before: Verdict | None, after: Verdict, threshold: float) -> bool:
    if before is None or before.label != after.label or abs(before.confidence - after.confidence) >= threshold:
        return True
    if before.scope != after.scope:  # e.g. none of its cited papers was held, now one is
        return True
    if set(_version_notes(after)) - set(_version_notes(before)):
        return True  # a version added since reads otherwise or states other numbers, though the verdict holds
    b, a = before.full_text_verdict, after.full_text_verdict
    if (b is None) != (a is None):
        return True
    return a is not None and b is not None and (a.label != b.label or abs(a.confidence - b.confidence) >= threshold)


_SCOPES = {"cited": "its cited papers", "open": "all papers held (no cited paper held)", "none": "nothing"}


def change_reason(before: Verdict | None, after: Verdict, new_keys: set[str]) -> str:
    """One line: what moved, which new version decides now, and what the other versions say differently."""
    parts = []
    if before is None:
        parts.append("claim not checked before")
    else:
        if before.scope != after.scope:
            parts.append(f"checked against: {_SCOPES[before.scope]} \u2192 {_SCOPES[after.scope]}")
        if before.label != after.label:
            parts.append(f"{_words(before.label.value)} \u2192 {_words(after.label.value)}")
        elif abs(before.confidence - after.confidence) >= 0.005:
            parts.append(f"confidence {before.confidence:.2f} \u2192 {after.confidence:.2f}")
        bf, af = before.full_text_verdict, after.full_text_verdict
        if af is not None and (bf is None or bf.label != af.label):
            was = _words(bf.label.value) if bf else "not checked"
            parts.append(f"full sentence: {was} \u2192 {_words(af.label.value)}")
        elif af is not None and bf is not None and abs(bf.confidence - af.confidence) >= 0.005:
            parts.append(f"full sentence: confidence {bf.confidence:.2f} \u2192 {af.confidence:.2f}")
        elif af is None and bf is not None:
            parts.append("full sentence no longer checked")
    used_before = before.checks.version_used[:1] if before else []
    used_after = after.checks.version_used[:1]
    if used_after and used_after != used_before:
        cited = after.checks.version_cited
        what = " (the cited version, now held)" if cited and used_after[0] == cited else ""
        parts.append(f"{used_after[0]}{what} decides" + (f" instead of {used_before[0]}" if used_before else ""))
    came = sorted({e.paper for e in _evidence_of(after) if e.paper in new_keys})
    if came:
        parts.append(f"new evidence from {', '.join(came)}")
    if before is not None and before.checks.numbers.status != after.checks.numbers.status:
        parts.append(f"numbers: {_words(before.checks.numbers.status)} \u2192 {_words(after.checks.numbers.status)}")
    parts += _version_notes(after)
    return "; ".join(parts)


def _words(value: str) -> str:
    """A label or status as the report writes it: NOT_ENOUGH_INFO -> NOT ENOUGH INFO, not_found -> not found."""
    return value.replace("_", " ")


def diff_verdicts(before: Sequence[Verdict], after: Sequence[Verdict], new_keys: set[str], *,
                  threshold: float = CONFIDENCE_DELTA) -> list[VerdictChange]:
    """Claims whose label changed or whose confidence moved by at least `threshold` (also for the full sentence)."""
    old = {v.claim_id: v for v in before}
    changes = []
    for v in after:
        prev = old.get(v.claim_id)
        if not _moved(prev, v, threshold):
            continue
        shown = {e.passage_id for e in _evidence_of(prev)} if prev else set()
        fresh = [e for e in _evidence_of(v) if e.passage_id not in shown]
        caused = [e for e in fresh if e.paper in new_keys] or fresh
        changes.append(VerdictChange(
            claim_id=v.claim_id,
            before_label=prev.label if prev else None,
            before_confidence=prev.confidence if prev else None,
            after_label=v.label,
            after_confidence=v.confidence,
            new_evidence=list({e.passage_id: e for e in caused}.values()),
            reason=change_reason(prev, v, new_keys),
        ))
    return changes


# ---- the reverify -----------------------------------------------------------------------------------------------
def _now_stamp() -> tuple[str, str]:
    now = datetime.now(UTC)
    return now.isoformat(timespec="seconds"), now.strftime("%Y%m%dT%H%M%S%fZ")


def _absolute(papers: Sequence[Paper], base: Path) -> list[Paper]:
    return [p if Path(p.path).is_absolute() else p.model_copy(update={"path": str(base / p.path)}) for p in papers]


class _StagedRun:
    """Just enough of `pipeline.Run` for `attach_full_sentences` (a `pipeline.RunLike`), writing into the staging
    folder."""

    def __init__(self, staging: Path, settings: Settings) -> None:
        self.dir = RunDir(staging)
        self.settings = settings


def _refresh_notes(paper: Paper, held: set[str]) -> Paper:
    """Drop 'cited vN; only ... available' / 'not the cited version' notes that a newly held version answers."""
    keep = []
    for note in paper.notes:
        if note.startswith("cited v") and "available" in note:
            version = note[len("cited v"):].split(";")[0]
            if f"{paper.ref.arxiv_id}v{version}" in held:
                continue
        keep.append(note)
    return paper if keep == paper.notes else paper.model_copy(update={"notes": keep})


def _model_drift(manifest: RunManifest, before: Sequence[Verdict], verifier: object) -> str | None:
    """Say so when the stance model or the aggregator differs from the one that made the earlier verdicts."""
    info = verifier.scorer.info  # type: ignore[attr-defined]
    recorded = next((m for m in manifest.models if m.role == info.role), None)
    if recorded is not None and (recorded.name, recorded.sha256) != (info.name, info.sha256):
        return (f"stance model {info.name} ({(info.sha256 or '?')[:12]}) differs from the run's {recorded.name} "
                f"({(recorded.sha256 or '?')[:12]})")
    earlier = {v.model for v in before if v.model}
    now = verifier.model_name  # type: ignore[attr-defined]
    if earlier and earlier != {now}:
        return f"verdicts were made by {', '.join(sorted(earlier))}; now {now}"
    return None


def _sees(allowed: set[str] | None, new_keys: set[str]) -> bool:
    """A claim checked against all papers (none of its cited ones held) or citing a new paper sees new passages."""
    return allowed is None or bool(allowed & new_keys)


def reverify(run_dir: Path, new: Sequence[str | Path], *, settings: Settings | None = None,
             search: str | None = None, search_max: int = 10, rescore_all: bool = False, render: bool = True,
             progress: Callable[[str], None] | None = None) -> ReverifyResult:
    """Add new papers to a finished run, re-check the claims they bear on, and write the diff.

    Args:
        run_dir: a run directory made by `claimscope run` (claims.jsonl, papers.jsonl, passages.jsonl, verdicts.jsonl).
        new: local paper files or folders (named by arXiv id, e.g. 2005.13013v2.md) and/or arXiv ids.
        settings: defaults to the run's own settings from run.json (so scores stay comparable).
        search: an arXiv search whose hits are added too (needs settings.retrieve.offline False).
        rescore_all: score every claim again, not only those that can see the new passages.
        render: re-render the report files after committing.

    Returns what was added, embedded and re-scored, and the diff (also written to RUN_DIR/diff.json). With inputs
    that are already in the run nothing is written and the diff is empty.
    """
    from claimscope.pipeline import attach_full_sentences, verify_fingerprint
    from claimscope.retrieve.passages import paper_passages
    from claimscope.verify.index import EvidenceIndex
    from claimscope.verify.run import Verifier

    say = progress or (lambda msg: logger.info(msg))
    root = Path(run_dir)
    rd = RunDir(root)
    if not rd.verdicts.exists():
        raise BadRunDir(str(rd.verdicts), "missing; reverify needs a finished run (`claimscope run` first)")
    with _locked(root):
        recover(root)
        settings = settings or load_run_settings(root)
        manifest = read_json(rd.manifest, RunManifest)
        claims = read_jsonl(rd.claims, Claim)
        papers = read_jsonl(rd.papers_index, Paper)
        passages = read_jsonl(rd.passages, Passage)
        before = read_jsonl(rd.verdicts, Verdict)
        t0 = time.perf_counter()
        staging = root / STAGING
        staging.mkdir()
        try:
            say(f"reading {len(new)} new input(s)")
            found, gaps = collect_new(new, settings, staging / "papers", claims, search=search,
                                      search_max=search_max)
            held = {p.ref.key: p for p in papers}
            added, skipped = [], []
            for paper, doc in found:
                old = held.get(paper.ref.key)
                if (old is None or old.sha256 != paper.sha256) and paper.ref.version is None:
                    # a file with no version in its name whose bytes are a version the run holds: that version
                    old = next((p for p in papers if p.ref.arxiv_id == paper.ref.arxiv_id
                                and p.sha256 == paper.sha256), old)
                if old is not None and old.sha256 == paper.sha256:
                    skipped.append(old.ref.key)
                    shutil.rmtree(staging / "papers" / paper.ref.safe_key, ignore_errors=True)
                else:
                    added.append((paper, doc))
            new_keys = {p.ref.key for p, _ in added}
            if not added and not rescore_all:
                say("nothing new: every paper given is already in the run with the same content")
                shutil.rmtree(staging)
                return ReverifyResult(diff=ReverifyDiff(previous_run=None), skipped=skipped, gaps=gaps)
            rs = settings.retrieve
            new_passages = [ps for p, d in added
                            for ps in paper_passages(p, d, window_sentences=rs.window_sentences,
                                                     stride=rs.window_stride)]
            all_papers = [_refresh_notes(p, set(held) | new_keys) for p in papers if p.ref.key not in new_keys]
            all_papers = sorted(all_papers + [p for p, _ in added], key=lambda p: p.ref.key)
            kept_passages = [ps for ps in passages if ps.paper not in new_keys]
            all_passages = kept_passages + new_passages

            # the index: old vectors kept, only the new passages embedded
            vs = settings.verify
            usable = {p.ref.key for p in all_papers if not p.secondary}
            old_usable = [ps for ps in passages if ps.paper in held and not held[ps.paper].secondary]
            index = EvidenceIndex.load(rd.index, old_usable)
            if index is None or index.model_name != vs.embedding_model:
                logger.warning("%s: no usable saved index; embedding the run's passages again", rd.index)
                index = EvidenceIndex.build([ps for ps in old_usable if ps.paper not in new_keys],
                                            vs.embedding_model, batch_size=vs.batch_size,
                                            max_passages=vs.max_passages)
            if new_keys & {ps.paper for ps in index.passages}:  # a paper whose file changed: drop its old vectors
                keep = [i for i, ps in enumerate(index.passages) if ps.paper not in new_keys]
                index = EvidenceIndex([index.passages[i] for i in keep], index.embeddings[keep], index.model_name,
                                      index.additions + [{"removed": len(index.passages) - len(keep),
                                                          "at": _now_stamp()[0],
                                                          "reason": f"replaced {', '.join(sorted(new_keys))}"}])
            say(f"embedding {len(new_passages)} passages of {len(added)} new paper(s)")
            fresh = index.add([ps for ps in new_passages if ps.paper in usable], batch_size=vs.batch_size,
                              reason=f"reverify: {', '.join(sorted(new_keys))}")
            index.save(staging / "index")

            # truncated claims citing a version that just arrived: look for their full sentence in it again
            full_before = {c.id: c.full_text for c in claims}
            for c in claims:
                if c.truncated and any(r.key in new_keys for r in c.cited):
                    c.full_text = None
            base_papers = _absolute([p for p in all_papers if p.ref.key not in new_keys], root)
            staged_papers = _absolute([p for p, _ in added], staging)
            claims = attach_full_sentences(_StagedRun(staging, settings), claims, base_papers + staged_papers)
            full_changed = {c.id for c in claims if c.full_text != full_before.get(c.id)}

            index.search_quotable_only()
            verifier = Verifier(index, all_papers, vs)
            drift = _model_drift(manifest, before, verifier)
            if drift:
                logger.warning("%s: %s; verdict changes may come from the model, not the new papers", root, drift)
                gaps.append(Gap(stage="reverify", item="models", reason=drift))
            old_by_id = {v.claim_id: v for v in before}
            todo = [c for c in claims if rescore_all or c.id in full_changed or c.id not in old_by_id
                    or _sees(verifier.allowed_papers(c), new_keys)]
            say(f"re-checking {len(todo)} of {len(claims)} claims")
            rescored = {v.claim_id: v for v in verifier.verify(todo)} if todo else {}
            after = [rescored.get(c.id) or old_by_id[c.id] for c in claims]

            created, stamp = _now_stamp()
            history = f"{HISTORY}/{stamp}"
            shown = {e.paper for v in after for e in _evidence_of(v)}
            diff = ReverifyDiff(
                previous_run=f"{root.name} before this reverify (kept in {history}/)",
                created=created,
                changed=diff_verdicts(before, after, new_keys),
                new_papers=sorted(new_keys),
                papers_bearing_on_no_claim=sorted(k for k in new_keys if k not in shown),
            )

            # stage the files, the history of what they replace, then the commit marker
            hist = staging / HISTORY / stamp
            hist.mkdir(parents=True)
            for name in HISTORY_FILES:
                if (root / name).exists():
                    shutil.copy2(root / name, hist / name)
            write_jsonl(staging / "passages.jsonl", all_passages)
            write_jsonl(staging / "papers.jsonl", all_papers)
            if (staging / "claims.jsonl").exists() or full_changed:
                write_jsonl(staging / "claims.jsonl", claims)
            write_jsonl(staging / "verdicts.jsonl", after)
            write_json(staging / DIFF, diff)
            manifest.counts.update(papers=len(all_papers), passages=len(all_passages), verdicts=len(after))
            manifest.timings["reverify"] = round(time.perf_counter() - t0, 3)
            known_gaps = {(g.stage, g.item) for g in manifest.gaps}
            manifest.gaps = [g for g in manifest.gaps if not (g.stage == "retrieve" and g.item in new_keys)]
            manifest.gaps += [g for g in gaps if (g.stage, g.item) not in known_gaps]
            manifest.stages_done = [s for s in manifest.stages_done if not s.startswith("verify:")]
            manifest.stages_done.append("verify:" + verify_fingerprint(claims, all_passages, vs))
            write_json(staging / "run.json", manifest)
            write_json(staging / COMMIT, {"at": created, "new_papers": sorted(new_keys), "history": history})
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _apply(root, staging)
        say(f"{len(diff.changed)} claim(s) changed; previous files kept in {history}/")
    reports: list[Path] = []
    if render:
        from claimscope.report_templates.render import render_run

        say("rendering the report")
        reports = render_run(root, settings.report.formats)
    return ReverifyResult(diff=diff, new_papers=sorted(new_keys), skipped=skipped, gaps=gaps,
                          embedded=len(fresh), rescored=sorted(rescored), history=history, reports=reports)
