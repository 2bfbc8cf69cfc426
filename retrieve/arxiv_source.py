"""arXiv as a paper source: metadata via the `arxiv` package (4.x), PDFs downloaded by us, everything cached.

The `arxiv.Client` is given our `PoliteSession`, so API pages and PDF downloads share one rate limiter, one timeout and
one retry policy. Tests point `arxiv.Client.query_url_format` and `PDF_BASE_URL` at a loopback server.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import arxiv
import requests
from pydantic import Field

from claimscope.errors import (
    DownloadError,
    LimitExceeded,
    NetworkError,
    OfflineError,
    PaperNotFound,
    RateLimited,
    RequestTimeout,
)
from claimscope.retrieve.cache import CacheEntry, PaperCache
from claimscope.retrieve.http import PoliteSession
from claimscope.retrieve.ids import parse_arxiv_id, versioned_id
from claimscope.retrieve.ratelimit import shared_limiter
from claimscope.settings import RetrieveSettings
from claimscope.types import Model, PaperMeta, PaperRef

logger = logging.getLogger(__name__)

PDF_BASE_URL = "https://arxiv.org/pdf/"
PDF_CONTENT_TYPES = ("application/pdf", "application/x-pdf", "application/octet-stream", "binary/octet-stream")
_STOP = frozenset(
    "a an and are as at be by can do does for from has have how in is it its of on or that the this to was were what "
    "when which who why will with whether vs than into over under about".split()
)


@dataclass
class FetchedPaper:
    ref: PaperRef  # with the version actually held
    path: Path  # the cached PDF
    entry: CacheEntry
    from_cache: bool
    notes: list[str] = field(default_factory=list)


class SearchHit(Model):
    ref: PaperRef = Field(description="latest version as returned by arXiv")
    meta: PaperMeta
    score: float = Field(description="relevance to the question (lexical overlap blended with arXiv's rank)")
    arxiv_rank: int


def result_meta(result: arxiv.Result) -> PaperMeta:
    return PaperMeta(
        title=" ".join((result.title or "").split()) or None,
        authors=[a.name for a in result.authors],
        published=result.published.isoformat() if result.published else None,
        updated=result.updated.isoformat() if result.updated else None,
        abstract=" ".join((result.summary or "").split()) or None,
        categories=list(result.categories or []),
        doi=result.doi,
        journal_ref=result.journal_ref,
        pdf_url=result.pdf_url,
        entry_url=result.entry_id,
    )


def _tokens(text: str) -> list[str]:
    import Stemmer

    words = [w for w in re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text.lower()) if w not in _STOP and len(w) > 1]
    return Stemmer.Stemmer("english").stemWords(words)


def relevance(question: str, title: str, abstract: str) -> float:
    """Share of the question's content words found in the title (weight 2) and abstract (weight 1), in [0, 1]."""
    q = set(_tokens(question))
    if not q:
        return 0.0
    t, a = set(_tokens(title)), set(_tokens(abstract))
    return sum(2 * (w in t) + (w in a) for w in q) / (3 * len(q))


class ArxivSource:
    def __init__(
        self,
        settings: RetrieveSettings,
        *,
        session: PoliteSession | None = None,
        page_size: int = 100,
    ) -> None:
        self.settings = settings
        self.session = session or PoliteSession(
            limiter=shared_limiter(settings.delay_seconds),
            timeout=settings.timeout_seconds,
            num_retries=settings.num_retries,
        )
        self.client = arxiv.Client(page_size=page_size, delay_seconds=0.0, num_retries=0)
        # arxiv 4.x fetches every API page through `Client._session`; ours adds the shared limit, retries and timeout.
        self.client._session = self.session
        self.cache = PaperCache(settings.cache_dir)

    # ---- metadata -----------------------------------------------------------------------------------------------

    def lookup(self, refs: list[PaperRef]) -> dict[str, arxiv.Result]:
        """One batched id_list query; results keyed by the id as asked (versioned or not; unversioned: the latest)."""
        if self.settings.offline:
            raise OfflineError(", ".join(r.key for r in refs), "arXiv lookup needs --online")
        asked = [versioned_id(r) for r in refs]
        search = arxiv.Search(id_list=asked, max_results=len(asked))
        out: dict[str, arxiv.Result] = {}
        latest: dict[str, int] = {}
        for result in self.client.results(search):
            got = parse_arxiv_id(result.get_short_id())
            for r, key in zip(refs, asked, strict=True):
                if r.arxiv_id != got.arxiv_id:
                    continue
                if r.version is None:  # the latest version among the entries, not the first one that matches
                    if (got.version or 0) > latest.get(key, -1):
                        latest[key] = got.version or 0
                        out[key] = result
                elif r.version == got.version:
                    out.setdefault(key, result)
        return out

    # ---- fetching -----------------------------------------------------------------------------------------------

    def fetch_many(self, refs: list[PaperRef]) -> list[FetchedPaper | NetworkError | PaperNotFound | LimitExceeded]:
        """Each ref's PDF: from the cache when this exact version is there (no network), else from arXiv."""
        results: dict[int, FetchedPaper | NetworkError | PaperNotFound | LimitExceeded] = {}
        todo: list[tuple[int, PaperRef]] = []
        for i, ref in enumerate(refs):
            hit = self.cache.get(ref) if ref.version else None
            if hit:
                path, entry = hit
                logger.info("%s served from cache %s", ref.key, path)
                results[i] = FetchedPaper(
                    ref=entry.ref, path=path, entry=entry, from_cache=True, notes=list(entry.notes)
                )
            elif self.settings.offline:
                results[i] = self._offline_fallback(ref)
            else:
                todo.append((i, ref))
        if todo:
            try:
                found = self.lookup([r for _, r in todo])
            except NetworkError as e:
                for i, _ in todo:
                    results[i] = e
                found = None
            if found is not None:
                for i, ref in todo:
                    res = found.get(versioned_id(ref))
                    if res is None:
                        results[i] = PaperNotFound(ref.key, "arXiv API returned no entry for this id")
                        continue
                    try:
                        results[i] = self._fetch_result(ref, res)
                    except (NetworkError, PaperNotFound, LimitExceeded) as e:
                        results[i] = e
        return [results[i] for i in range(len(refs))]

    def fetch(self, ref: PaperRef) -> FetchedPaper:
        (res,) = self.fetch_many([ref])
        if isinstance(res, Exception):
            raise res
        return res

    def _offline_fallback(self, ref: PaperRef) -> FetchedPaper | OfflineError:
        versions = self.cache.versions(str(ref.arxiv_id)) if ref.version is None else []
        if versions:
            pinned = PaperRef(arxiv_id=ref.arxiv_id, version=versions[-1])
            hit = self.cache.get(pinned)
            if hit:
                path, entry = hit
                note = f"unversioned {ref.arxiv_id}: offline, used latest cached v{versions[-1]} (arXiv may be newer)"
                return FetchedPaper(ref=entry.ref, path=path, entry=entry, from_cache=True, notes=[note])
        return OfflineError(ref.key, f"not in the cache at {self.cache.root} and offline")

    def _fetch_result(self, asked: PaperRef, result: arxiv.Result) -> FetchedPaper:
        got = parse_arxiv_id(result.get_short_id())
        if asked.version is not None and got.version != asked.version:
            raise PaperNotFound(asked.key, f"arXiv returned {got.key} when v{asked.version} was asked for")
        notes = []
        if asked.version is None:
            notes.append(f"unversioned id {asked.arxiv_id} resolved to latest version v{got.version}")
            hit = self.cache.get(got)
            if hit:
                path, entry = hit
                return FetchedPaper(ref=entry.ref, path=path, entry=entry, from_cache=True, notes=notes)
        ref = PaperRef(arxiv_id=got.arxiv_id, version=got.version, title=asked.title, url=asked.url)
        meta = result_meta(result)
        urls = [u for u in (result.pdf_url, f"{PDF_BASE_URL}{versioned_id(got)}") if u]
        path, entry = self.download_pdf(ref, list(dict.fromkeys(urls)), meta, notes)
        return FetchedPaper(ref=ref, path=path, entry=entry, from_cache=False, notes=notes)

    def download_pdf(
        self, ref: PaperRef, urls: list[str], meta: PaperMeta, notes: list[str] | None = None
    ) -> tuple[Path, CacheEntry]:
        """Try each URL (entry pdf_url, then the one built from the versioned id); cache the first good PDF."""
        errors: list[Exception] = []
        for url in urls:
            try:
                return self._download_with_retries(ref, url, meta, notes or [])
            except RateLimited:
                raise  # another URL on the same host will be limited too
            except (NetworkError, LimitExceeded) as e:
                logger.warning("PDF for %s from %s failed: %s", ref.key, url, e)
                errors.append(e)
                if isinstance(e, LimitExceeded):
                    raise
        last = errors[-1] if errors else DownloadError(ref.key, "no PDF URL")
        raise DownloadError(ref.key, f"PDF not downloaded from {len(urls)} URL(s); last error: {last}") from last

    def _download_with_retries(
        self, ref: PaperRef, url: str, meta: PaperMeta, notes: list[str]
    ) -> tuple[Path, CacheEntry]:
        attempts = self.settings.num_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                return self._download_once(ref, url, meta, notes)
            except (DownloadError, RequestTimeout) as e:
                if not getattr(e, "retryable", False) or attempt == attempts:
                    raise
                wait = min(60.0, 2.0 * 2 ** (attempt - 1))
                logger.warning("%s; retry %d/%d in %.1fs", e, attempt, attempts - 1, wait)
                self.session.retry_sleep(wait)
        raise AssertionError("unreachable")

    def _download_once(self, ref: PaperRef, url: str, meta: PaperMeta, notes: list[str]) -> tuple[Path, CacheEntry]:
        max_bytes = self.settings.max_bytes
        resp = self.session.get(url, stream=True)
        with resp:
            if resp.status_code != 200:
                raise DownloadError(url, f"HTTP {resp.status_code}")
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype and ctype not in PDF_CONTENT_TYPES:
                raise DownloadError(url, f"content-type {ctype!r} is not a PDF (a landing or captcha page?)")
            length = resp.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            if expected is not None and expected > max_bytes:
                raise LimitExceeded(url, f"PDF is {expected:,} bytes, more than max_bytes={max_bytes:,}")
            h = hashlib.sha256()
            size = 0
            with self.cache.writer(ref) as (f, tmp):
                try:
                    for chunk in resp.iter_content(chunk_size=1 << 16):
                        size += len(chunk)
                        if size > max_bytes:
                            raise LimitExceeded(url, f"PDF exceeds max_bytes={max_bytes:,}")
                        h.update(chunk)
                        f.write(chunk)
                    head_tail = _head_tail(f, tmp, size)
                except requests.RequestException as e:  # reset, read timeout, incomplete chunked body
                    err = DownloadError(url, f"connection broke after {size:,} bytes ({type(e).__name__})")
                    err.retryable = True
                    raise err from e
                if expected is not None and size != expected:
                    err = DownloadError(url, f"truncated: got {size:,} of {expected:,} bytes")
                    err.retryable = True
                    raise err
                if not head_tail[0].startswith(b"%PDF-"):
                    raise DownloadError(url, "response body is not a PDF (no %PDF- header)")
                if b"%%EOF" not in head_tail[1]:
                    err = DownloadError(url, f"truncated PDF: no %%EOF marker in the last bytes ({size:,} bytes)")
                    err.retryable = True
                    raise err
                entry = CacheEntry(ref=ref, sha256=h.hexdigest(), size=size, source_url=url, meta=meta, notes=notes)
                path = self.cache.commit(ref, tmp, entry)
        return path, entry

    # ---- search -------------------------------------------------------------------------------------------------

    def search(self, question: str, *, max_results: int = 10, since: date | None = None) -> list[SearchHit]:
        """Candidate papers for a question: arXiv relevance search, re-ranked by overlap with the question,
        one hit per paper (versions merged), optionally only papers first published on/after `since`."""
        if self.settings.offline:
            raise OfflineError(question[:60], "arXiv search needs --online")
        query = question if ":" in question else _query_from_question(question)
        if since is not None:
            query = f"({query}) AND submittedDate:[{since:%Y%m%d}0000 TO 299912312359]"
        search = arxiv.Search(query=query, max_results=min(300, max_results * 3), sort_by=arxiv.SortCriterion.Relevance)
        hits: dict[str, SearchHit] = {}
        started = time.monotonic()
        for rank, result in enumerate(self.client.results(search)):
            ref = parse_arxiv_id(result.get_short_id())
            if since is not None and result.published and result.published.date() < since:
                continue
            if ref.arxiv_id in hits:
                continue
            meta = result_meta(result)
            lex = relevance(question, meta.title or "", meta.abstract or "")
            score = 0.7 * lex + 0.3 / (1 + rank)
            hits[str(ref.arxiv_id)] = SearchHit(ref=ref, meta=meta, score=round(score, 4), arxiv_rank=rank)
        ranked = sorted(hits.values(), key=lambda h: (-h.score, h.arxiv_rank))[:max_results]
        logger.info("search %r: %d papers in %.1fs", question[:60], len(ranked), time.monotonic() - started)
        return ranked


def _head_tail(f, tmp: Path, size: int) -> tuple[bytes, bytes]:
    f.flush()
    with open(tmp, "rb") as r:
        head = r.read(8)
        r.seek(max(0, size - 2048))
        tail = r.read()
    return head, tail


def _query_from_question(question: str) -> str:
    words = [w for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9\-]+", question) if w.lower() not in _STOP]
    if not words:
        return f'all:"{question}"'
    joiner = " AND " if len(words) <= 4 else " OR "
    return joiner.join(f"all:{w}" for w in words[:12])


def parse_since(text: str) -> date:
    """`2020`, `2020-05`, `2020-05-26` -> date (first day of the period)."""
    parts = [int(p) for p in text.strip().split("-")]
    if not 1 <= len(parts) <= 3:
        raise ValueError(f"not a date: {text!r} (use YYYY, YYYY-MM or YYYY-MM-DD)")
    return date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
