"""Find cited papers in a local folder (files named by arXiv id), read them, and copy them into the run dir."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from claimscope.errors import ClaimscopeError, PaperNotFound
from claimscope.rundir import atomic_write_bytes, write_json
from claimscope.settings import RetrieveSettings
from claimscope.types import Gap, Paper, PaperMeta, PaperRef, ParsedDoc

logger = logging.getLogger(__name__)

FORMATS = {".pdf": "pdf", ".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
           ".html": "html", ".htm": "html"}
EXT_FOR_FMT = {"pdf": "pdf", "text": "txt", "markdown": "md", "html": "html"}
_FMT_PREFERENCE = {"pdf": 0, "html": 1, "markdown": 2, "text": 3}
PARTIAL_WORDS = ("partial", "abstract", "excerpt", "abs")
_NAME = re.compile(
    r"^(?P<id>\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?_\d{7})(?:v(?P<v>\d+))?(?P<suffix>_[A-Za-z0-9_\-]+)?$"
)


@dataclass(frozen=True)
class LocalFile:
    path: Path
    arxiv_id: str
    version: int | None
    fmt: str
    partial: bool
    suffix: str


def parse_filename(path: Path) -> LocalFile | None:
    """`2005.13013v1.pdf` -> LocalFile(2005.13013, 1, pdf); `hep-th_9901001v2_partial.md` -> partial; else None."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        return None
    m = _NAME.match(path.stem)
    if not m:
        return None
    arxiv_id = m.group("id")
    if "_" in arxiv_id:  # old-style id stored with '/' replaced by '_'
        arxiv_id = arxiv_id.replace("_", "/", 1)
    suffix = (m.group("suffix") or "").lstrip("_")
    partial = any(w in suffix.lower().split("_") for w in PARTIAL_WORDS)
    return LocalFile(path, arxiv_id, int(m.group("v")) if m.group("v") else None, fmt, partial, suffix)


def inside_folder(path: Path, folder: Path) -> bool:
    """True when `path` (after following symlinks) is a regular file inside `folder`: links that lead out of the
    papers folder are never read."""
    try:
        return path.resolve().is_relative_to(folder.resolve()) and path.is_file()
    except (OSError, RuntimeError):  # a symlink loop or an unreadable link
        return False


def scan_folder(folder: Path) -> dict[str, list[LocalFile]]:
    """All paper files in `folder` by arXiv id. Files whose names are not exactly an id are ignored, and so are
    symlinks that point outside the folder."""
    found: dict[str, list[LocalFile]] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        if not inside_folder(p, folder):
            logger.warning("%s: ignored, it is a link to %s outside the papers folder", p, p.resolve())
            continue
        lf = parse_filename(p)
        if lf is not None:
            found.setdefault(lf.arxiv_id, []).append(lf)
    return found


# files that describe a folder rather than being a paper in it (examples/papers/SOURCES.md lists where each paper
# came from and warns that synthesis reports "must never count as evidence"; read as a paper it became evidence)
FOLDER_NOTES = frozenset({"readme", "sources", "license", "licence", "changelog", "changes", "notes", "index",
                          "manifest", "contributing", "authors", "copying"})


def is_folder_note(path: Path) -> bool:
    """A README-style file (README.md, SOURCES.md, LICENSE.txt, ...): about the folder, not a paper."""
    return path.stem.lower() in FOLDER_NOTES


def check_papers_folder(folder: Path) -> None:
    """PaperNotFound unless `folder` is a folder: a missing one, or a paper file given where its folder belongs."""
    if folder.is_file():
        raise PaperNotFound(str(folder), "is a file, not a folder: --papers takes the folder that holds the papers, "
                                         "named by arXiv id (e.g. 2005.13013v1.pdf)")
    if not folder.is_dir():
        raise PaperNotFound(str(folder), "papers folder does not exist")


def folder_refs(folder: Path) -> list[PaperRef]:
    """A ref for every paper in `folder`: one per arXiv id (all its versions there are read) and one per other paper
    file, by its name (README-style files describing the folder are not papers: `is_folder_note`)."""
    refs = [PaperRef(arxiv_id=arxiv_id) for arxiv_id in scan_folder(folder)]
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in FORMATS and parse_filename(p) is None and p.is_file() and inside_folder(p, folder):
            if is_folder_note(p):
                logger.info("%s: not read as a paper (it describes the folder)", p)
                continue
            refs.append(PaperRef(local_name=p.stem))
    return refs


def read_document(path: Path, fmt: str, settings: RetrieveSettings) -> ParsedDoc:
    if fmt == "pdf":
        from claimscope.retrieve.pdf import parse_pdf

        return parse_pdf(path, max_pages=settings.max_pages, max_bytes=settings.max_bytes)
    from claimscope.retrieve.text import parse_text

    return parse_text(path, max_bytes=settings.max_bytes)


def _pick_per_version(files: list[LocalFile]) -> dict[int | None, LocalFile]:
    """One file per version: full text before partial, then PDF > HTML > Markdown > text."""
    best: dict[int | None, LocalFile] = {}
    for lf in sorted(files, key=lambda f: (f.partial, _FMT_PREFERENCE[f.fmt], f.path.name)):
        best.setdefault(lf.version, lf)
    return best


def store_paper(
    ref: PaperRef,
    data: bytes,
    fmt: str,
    doc: ParsedDoc,
    papers_out: Path,
    *,
    source: str,
    partial: bool,
    notes: list[str],
    meta: PaperMeta | None = None,
) -> Paper:
    """Copy the file into papers_out/<safe_key>/paper.<ext> and write meta.json next to it (both atomic)."""
    sha = hashlib.sha256(data).hexdigest()
    folder = papers_out / ref.safe_key
    dest = folder / f"paper.{EXT_FOR_FMT[fmt]}"
    if not (dest.exists() and hashlib.sha256(dest.read_bytes()).hexdigest() == sha):
        atomic_write_bytes(dest, data)
    try:
        rel = dest.relative_to(papers_out.parent)
    except ValueError:
        rel = dest
    if meta is None:
        meta = PaperMeta(title=doc.meta.get("title"))
    elif not meta.title and doc.meta.get("title"):
        meta = meta.model_copy(update={"title": doc.meta.get("title")})
    all_notes = list(notes)
    all_notes += list(doc.meta.get("notes") or [])  # before the pages: a damaged PDF's note explains them
    all_notes += [f"page {n} skipped: {why}" for n, why in doc.skipped_pages]
    partial = partial or bool(doc.meta.get("incomplete"))  # e.g. a damaged PDF whose later pages lost their text
    paper = Paper(
        ref=ref,
        sha256=sha,
        source=source,
        path=str(rel),
        fmt=fmt,
        meta=meta,
        partial=partial,
        pages=len(doc.pages),
        notes=all_notes,
    )
    write_json(folder / "meta.json", paper)
    return paper


def _version_notes(cited: set[int | None], held: list[int | None], arxiv_id: str, where: str) -> list[str]:
    notes = []
    held_str = ", ".join(f"v{v}" if v else "unversioned" for v in held)
    for v in sorted(x for x in cited if x is not None):
        if v not in held:
            notes.append(f"cited v{v}; only {held_str} available {where}")
    return notes


def collect_local(
    refs: list[PaperRef], settings: RetrieveSettings, papers_out: Path
) -> tuple[list[tuple[Paper, ParsedDoc]], list[Gap], list[PaperRef], list[PaperRef]]:
    """Local-folder part of `collect_papers`; also returns the refs with no local file and the cited versions that
    are missing locally while other versions of the paper are there (both for the cache / online path)."""
    folder = settings.papers_dir
    if folder is not None:
        check_papers_folder(Path(folder))
    found = scan_folder(Path(folder)) if folder is not None else {}

    results: list[tuple[Paper, ParsedDoc]] = []
    gaps: list[Gap] = []
    missing: list[PaperRef] = []
    other_versions: list[PaperRef] = []
    by_id: dict[str, list[PaperRef]] = {}
    for ref in refs:
        if ref.arxiv_id is None:
            continue
        by_id.setdefault(ref.arxiv_id, []).append(ref)

    for arxiv_id, id_refs in by_id.items():
        files = found.get(arxiv_id, [])
        if not files:
            missing.extend(id_refs)
            continue
        cited = {r.version for r in id_refs}
        chosen = _pick_per_version(files)
        held = sorted(chosen, key=lambda v: (v is None, v or 0))
        vnotes = _version_notes(cited, held, arxiv_id, "locally")
        other_versions.extend(r for r in id_refs if r.version is not None and r.version not in chosen)
        for version in held:
            lf = chosen[version]
            ref = PaperRef(arxiv_id=arxiv_id, version=version, title=id_refs[0].title, url=id_refs[0].url)
            notes = list(vnotes)
            cited_versions = sorted(v for v in cited if v is not None)
            if cited_versions and version not in cited_versions:
                cited_str = ", ".join(f"v{v}" for v in cited_versions)
                notes.append(f"not the cited version: cited {cited_str}, this file is {ref.key}")
            others = [f.path.name for f in files if f.version == version and f is not lf]
            if others:
                notes.append(f"also present, not used: {', '.join(others)}")
            if version is None:
                notes.append(f"local file {lf.path.name} has no version in its name; version unknown")
            try:
                doc = read_document(lf.path, lf.fmt, settings)
                partial = lf.partial or bool(doc.meta.get("marked_partial"))
                if partial and not lf.partial:
                    notes.append("file is marked PARTIAL in its header")
                paper = store_paper(
                    ref, lf.path.read_bytes(), lf.fmt, doc, papers_out,
                    source="local", partial=partial, notes=notes,
                )
            except (ClaimscopeError, OSError) as e:
                logger.warning("skipping %s: %s", lf.path, e)
                gaps.append(Gap(stage="retrieve", item=ref.key, reason=str(e)))
                continue
            logger.info("local paper %s from %s (%d pages)", ref.key, lf.path.name, paper.pages)
            results.append((paper, doc))
    return results, gaps, missing, other_versions


def _collect_named(
    refs: list[PaperRef], settings: RetrieveSettings, papers_out: Path
) -> tuple[list[tuple[Paper, ParsedDoc]], list[Gap]]:
    """Refs without an arXiv id: a file whose stem is exactly the local name."""
    results: list[tuple[Paper, ParsedDoc]] = []
    gaps: list[Gap] = []
    folder = Path(settings.papers_dir) if settings.papers_dir else None
    for ref in refs:
        if ref.arxiv_id is not None:
            continue
        match = None
        if folder is not None:
            match = next(
                (p for p in sorted(folder.iterdir())
                 if p.stem == ref.local_name and p.suffix.lower() in FORMATS and inside_folder(p, folder)), None
            )
        if match is None:
            reason = f"no local file named {ref.local_name}.* in {folder}"
            gaps.append(Gap(stage="retrieve", item=ref.key, reason=reason))
            continue
        fmt = FORMATS[match.suffix.lower()]
        try:
            doc = read_document(match, fmt, settings)
            paper = store_paper(ref, match.read_bytes(), fmt, doc, papers_out, source="local",
                                partial=bool(doc.meta.get("marked_partial")), notes=[])
        except (ClaimscopeError, OSError) as e:
            gaps.append(Gap(stage="retrieve", item=ref.key, reason=str(e)))
            continue
        results.append((paper, doc))
    return results, gaps


def _drop_answered_notes(
    results: list[tuple[Paper, ParsedDoc]], found: set[str], papers_out: Path
) -> list[tuple[Paper, ParsedDoc]]:
    """Drop a local paper's 'cited vN; only ... available locally' note once vN came from the cache or arXiv."""
    out = []
    for paper, doc in results:
        keep = [n for n in paper.notes
                if not (n.startswith("cited v") and f"{paper.ref.arxiv_id}v{n[len('cited v'):].split(';')[0]}"
                        in found)]
        if keep != paper.notes:
            paper = paper.model_copy(update={"notes": keep})
            write_json(papers_out / paper.ref.safe_key / "meta.json", paper)
        out.append((paper, doc))
    return out


def collect_papers(
    refs: list[PaperRef], settings: RetrieveSettings, papers_out: Path
) -> tuple[list[tuple[Paper, ParsedDoc]], list[Gap]]:
    """Every held version of every cited paper, read and copied to papers_out/<key>/, plus a Gap per paper not found.

    Local folder first (all versions found there); then the cache (exact id@version, no network); then arXiv when
    `settings.offline` is False. A cited version the folder lacks is looked up the same way, while the versions the
    folder holds are still read; when it is found nowhere, the held versions' notes say so (no Gap offline).
    One missing or unreadable paper is a Gap, never an exception; a missing papers_dir raises PaperNotFound.
    """
    papers_out = Path(papers_out)
    results, gaps, missing, other_versions = collect_local(refs, settings, papers_out)
    named, named_gaps = _collect_named(refs, settings, papers_out)
    results += named
    gaps += named_gaps
    if missing or other_versions:
        # cache (always, no network) and then arXiv (when online); a cited version that is missing locally too
        from claimscope.retrieve.online import collect_online

        online, online_gaps = collect_online(missing + other_versions, settings, papers_out)
        results = _drop_answered_notes(results, {p.ref.key for p, _ in online}, papers_out) + online
        if not settings.offline:
            return results, gaps + online_gaps
        got = {p.ref.arxiv_id for p, _ in online}
        missing = [r for r in missing if r.arxiv_id not in got]
    where = str(settings.papers_dir) if settings.papers_dir else "(no papers folder given)"
    seen: set[str] = set()
    for ref in missing:
        if ref.arxiv_id in seen:
            continue
        seen.add(str(ref.arxiv_id))
        reason = (f"no local file for {ref.arxiv_id} in {where} and offline (not in cache {settings.cache_dir}; "
                  "--online fetches it from arXiv)")
        gaps.append(Gap(stage="retrieve", item=ref.key, reason=reason))
    return results, gaps
