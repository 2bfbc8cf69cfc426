"""The cache / arXiv part of `collect_papers`: for refs with no local file."""

from __future__ import annotations

import logging
from pathlib import Path

from claimscope.errors import ClaimscopeError
from claimscope.retrieve.arxiv_source import ArxivSource
from claimscope.retrieve.local import store_paper
from claimscope.retrieve.pdf import parse_pdf
from claimscope.settings import RetrieveSettings
from claimscope.types import Gap, Paper, PaperRef, ParsedDoc

logger = logging.getLogger(__name__)


def collect_online(
    refs: list[PaperRef],
    settings: RetrieveSettings,
    papers_out: Path,
    *,
    source: ArxivSource | None = None,
) -> tuple[list[tuple[Paper, ParsedDoc]], list[Gap]]:
    """Fetch each ref from the cache (exact version, no network) or arXiv (when online); a Gap per failure.

    Offline, only the cache is used. Each paper is parsed, copied to papers_out/<key>/ and described in meta.json.
    """
    refs = list({r.key: r for r in refs if r.arxiv_id is not None}.values())
    if not refs:
        return [], []
    source = source or ArxivSource(settings)
    results: list[tuple[Paper, ParsedDoc]] = []
    gaps: list[Gap] = []
    seen: set[str] = set()
    for ref, got in zip(refs, source.fetch_many(refs), strict=True):
        if isinstance(got, Exception):
            where = "offline; not in cache" if settings.offline else "arXiv"
            level = logging.INFO if settings.offline else logging.WARNING  # offline misses are reported as gaps
            logger.log(level, "%s not retrieved (%s): %s", ref.key, where, got)
            gaps.append(Gap(stage="retrieve", item=ref.key, reason=str(got)))
            continue
        if got.ref.key in seen:
            continue
        seen.add(got.ref.key)
        try:
            doc = parse_pdf(got.path, max_pages=settings.max_pages, max_bytes=settings.max_bytes)
            notes = list(got.notes)
            if got.from_cache:
                notes.append(f"served from cache ({got.entry.fetched})")
            paper = store_paper(
                got.ref, got.path.read_bytes(), "pdf", doc, papers_out,
                source="arxiv", partial=False, notes=notes, meta=got.entry.meta,
            )
        except (ClaimscopeError, OSError) as e:
            logger.warning("%s: %s", got.ref.key, e)
            gaps.append(Gap(stage="retrieve", item=got.ref.key, reason=str(e)))
            continue
        results.append((paper, doc))
    return results, gaps
