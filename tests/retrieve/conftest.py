"""Shared fixtures for the retrieve tests: the real example PDF, parsed once."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "papers"
EXAMPLE_PDF = EXAMPLES / "2005.13013v1.pdf"
EXAMPLE_MD = EXAMPLES / "2005.13013v2.md"


@pytest.fixture(scope="session")
def example_doc():
    from claimscope.retrieve.pdf import parse_pdf

    return parse_pdf(EXAMPLE_PDF)


def _text_pdf(lines: list[str], pages: int = 2) -> bytes:
    import pymupdf

    doc = pymupdf.open()
    for n in range(pages):
        page = doc.new_page()
        y = 72
        for line in lines:
            page.insert_text((72, y), f"{line} (page {n + 1})" if n else line)
            y += 16
    return doc.tobytes()


@pytest.fixture(scope="session")
def fake_pdfs() -> dict[str, bytes]:
    v2 = _text_pdf(["1 Introduction", "Using nine intermediate language-understanding tasks, we evaluate transfer.",
                    "We obtain a 5.4 point improvement over XLM-R Large on the XTREME benchmark."])
    other = _text_pdf(["XTREME-R extends XTREME.", "It has ten tasks covering 50 languages."], pages=1)
    return {
        "2005.13013v1": EXAMPLE_PDF.read_bytes(),
        "2005.13013v2": v2,
        "2104.07412v1": other,
        "1811.01088v2": other,
        "hep-th/9901001v1": other,
    }


@pytest.fixture
def fake_arxiv(fake_pdfs, monkeypatch):
    import arxiv

    from claimscope.retrieve import arxiv_source

    from .fake_arxiv import FakeArxiv

    server = FakeArxiv(fake_pdfs).start()
    monkeypatch.setattr(arxiv.Client, "query_url_format", server.base_url + "/api/query?{}")
    monkeypatch.setattr(arxiv_source, "PDF_BASE_URL", server.base_url + "/fallback/pdf/")
    yield server
    server.stop()


@pytest.fixture
def clock():
    from .fake_arxiv import FakeClock

    return FakeClock()


@pytest.fixture
def online_settings(tmp_path):
    from claimscope.settings import RetrieveSettings

    return RetrieveSettings(cache_dir=tmp_path / "cache", offline=False, num_retries=3, timeout_seconds=5.0)


@pytest.fixture
def make_source(online_settings, clock):
    """An ArxivSource on the real arxiv.Client whose limiter and retry sleeps use the fake clock."""
    from claimscope.retrieve.arxiv_source import ArxivSource
    from claimscope.retrieve.http import PoliteSession
    from claimscope.retrieve.ratelimit import RateLimiter

    def make(settings=None, *, page_size: int = 100, timeout: float | None = None):
        settings = settings or online_settings
        limiter = RateLimiter(settings.delay_seconds, clock=clock, sleep=clock.sleep)
        session = PoliteSession(limiter=limiter, timeout=timeout or settings.timeout_seconds,
                                num_retries=settings.num_retries, sleep=clock.sleep)
        return ArxivSource(settings, session=session, page_size=page_size)

    return make
