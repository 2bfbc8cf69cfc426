from __future__ import annotations

import hashlib
from datetime import date

import pytest

from claimscope.errors import DownloadError, LimitExceeded, OfflineError, RateLimited, RequestTimeout, ServerError
from claimscope.retrieve.http import USER_AGENT, parse_retry_after
from claimscope.retrieve.ids import parse_arxiv_id
from claimscope.types import PaperRef


def _pdf_requests(server):
    return [r for r in server.requests if r.startswith("/pdf/")]


def test_version_pinning_fetches_exact_versions(fake_arxiv, make_source, fake_pdfs):
    src = make_source()
    v1 = src.fetch(parse_arxiv_id("2005.13013v1"))
    v2 = src.fetch(parse_arxiv_id("arXiv:2005.13013v2"))
    assert (v1.ref.key, v2.ref.key) == ("2005.13013v1", "2005.13013v2")
    assert v1.path.read_bytes() == fake_pdfs["2005.13013v1"]
    assert v2.path.read_bytes() == fake_pdfs["2005.13013v2"]
    assert v1.entry.sha256 == hashlib.sha256(fake_pdfs["2005.13013v1"]).hexdigest()
    assert v1.entry.meta.title == "English Intermediate-Task Training Improves Zero-Shot Cross-Lingual Transfer Too"
    assert "7 intermediate" in v1.entry.meta.abstract and "nine intermediate" in v2.entry.meta.abstract
    assert v2.entry.meta.journal_ref == "AACL-IJCNLP 2020" and v2.entry.meta.categories == ["cs.CL"]
    assert _pdf_requests(fake_arxiv) == ["/pdf/2005.13013v1", "/pdf/2005.13013v2"]
    api = [r for r in fake_arxiv.requests if r.startswith("/api/")]
    assert "id_list=2005.13013v1" in api[0]


def test_unversioned_resolves_to_latest_and_says_so(fake_arxiv, make_source):
    got = make_source().fetch(parse_arxiv_id("https://arxiv.org/abs/2005.13013"))
    assert got.ref.key == "2005.13013v2"
    assert any("resolved to latest version v2" in n for n in got.notes)


def test_old_style_id(fake_arxiv, make_source):
    got = make_source().fetch(parse_arxiv_id("hep-th/9901001v1"))
    assert got.ref.arxiv_id == "hep-th/9901001" and got.path.name == "hep-th_9901001v1.pdf"


def test_batched_lookup_one_api_request(fake_arxiv, make_source):
    src = make_source()
    out = src.fetch_many([parse_arxiv_id("2005.13013v1"), parse_arxiv_id("2104.07412"), parse_arxiv_id("2001.99999")])
    assert [getattr(o, "ref", None) and o.ref.key for o in out[:2]] == ["2005.13013v1", "2104.07412v1"]
    assert "no entry" in str(out[2])
    assert len([r for r in fake_arxiv.requests if r.startswith("/api/")]) == 1


def test_rate_limiter_spaces_requests_three_seconds(fake_arxiv, make_source, clock):
    src = make_source()
    src.fetch(parse_arxiv_id("2005.13013v1"))  # API + PDF
    src.fetch(parse_arxiv_id("2104.07412v1"))  # API + PDF
    assert len(fake_arxiv.requests) == 4
    assert clock.sleeps == [3.0, 3.0, 3.0]


def test_cache_hit_makes_zero_requests(fake_arxiv, make_source):
    make_source().fetch(parse_arxiv_id("2005.13013v1"))
    n = len(fake_arxiv.requests)
    again = make_source().fetch(parse_arxiv_id("2005.13013v1"))
    assert again.from_cache and len(fake_arxiv.requests) == n


def test_corrupted_cache_file_is_refetched(fake_arxiv, make_source, fake_pdfs):
    first = make_source().fetch(parse_arxiv_id("2005.13013v1"))
    first.path.write_bytes(b"%PDF-1.5 garbage")
    again = make_source().fetch(parse_arxiv_id("2005.13013v1"))
    assert not again.from_cache and again.path.read_bytes() == fake_pdfs["2005.13013v1"]


def test_offline_uses_cache_only(fake_arxiv, make_source, online_settings):
    make_source().fetch(parse_arxiv_id("2005.13013v2"))
    offline = online_settings.model_copy(update={"offline": True})
    n = len(fake_arxiv.requests)
    src = make_source(offline)
    assert src.fetch(parse_arxiv_id("2005.13013v2")).from_cache
    unversioned = src.fetch(parse_arxiv_id("2005.13013"))
    assert unversioned.ref.version == 2 and "latest cached v2" in unversioned.notes[0]
    with pytest.raises(OfflineError, match="2104.07412"):
        src.fetch(parse_arxiv_id("2104.07412v1"))
    assert len(fake_arxiv.requests) == n


def test_429_then_success_honours_retry_after(fake_arxiv, make_source, clock):
    fake_arxiv.script["/api"] = [("status", 429, {"Retry-After": "17"})]
    got = make_source().fetch(parse_arxiv_id("2005.13013v1"))
    assert got.ref.key == "2005.13013v1"
    assert 17.0 in clock.sleeps  # the server's Retry-After, not our backoff
    assert len([r for r in fake_arxiv.requests if r.startswith("/api/")]) == 2


def test_429_forever_is_rate_limited_error(fake_arxiv, make_source, clock):
    fake_arxiv.script["/api"] = [("status", 429, {})] * 10
    out = make_source().fetch_many([parse_arxiv_id("2005.13013v1")])
    assert isinstance(out[0], RateLimited) and "429" in str(out[0])
    assert len(fake_arxiv.requests) == 4  # 1 + num_retries
    # exponential backoff with jitter: at least 1 + 2 + 4 s (half of 2, 4, 8) and at most 2 + 4 + 8 s plus the 3 s gaps
    assert 7.0 <= clock.now - 1000.0 <= 14.0 + 9.0


def test_500_exhaustion_is_server_error(fake_arxiv, make_source):
    for path in ("/pdf/2005.13013v1", "/fallback/pdf/2005.13013v1"):
        fake_arxiv.script[path] = [("status", 503, {"Retry-After": "2"})] * 20
    with pytest.raises(DownloadError) as e:
        make_source().fetch(parse_arxiv_id("2005.13013v1"))
    assert isinstance(e.value.__cause__, ServerError) and "503" in str(e.value)
    # both the entry's pdf_url and the fallback URL were tried, each 1 + 3 times
    assert len([r for r in fake_arxiv.requests if "/pdf/" in r]) == 8


def test_timeout_is_typed(fake_arxiv, make_source, online_settings):
    fake_arxiv.script["/api"] = [("stall", 5)] * 3
    settings = online_settings.model_copy(update={"num_retries": 1})
    with pytest.raises(RequestTimeout, match="no answer within 0.3s"):
        make_source(settings, timeout=0.3).lookup([parse_arxiv_id("2005.13013v1")])
    assert len(fake_arxiv.requests) == 2


def test_truncated_download_retried_then_ok(fake_arxiv, make_source, fake_pdfs):
    fake_arxiv.script["/pdf/2005.13013v1"] = [("truncate", 5000), ("no_length_truncate", 9000)]
    got = make_source().fetch(parse_arxiv_id("2005.13013v1"))
    assert got.path.read_bytes() == fake_pdfs["2005.13013v1"]
    assert len(_pdf_requests(fake_arxiv)) == 3
    assert not list(got.path.parent.glob(".*.part"))


def test_truncated_always_fails_and_leaves_no_file(fake_arxiv, make_source, online_settings):
    for path in ("/pdf/2005.13013v1", "/fallback/pdf/2005.13013v1"):
        fake_arxiv.script[path] = [("no_length_truncate", 9000)] * 20
    with pytest.raises(DownloadError, match="truncated"):
        make_source().fetch(parse_arxiv_id("2005.13013v1"))
    papers = online_settings.cache_dir / "papers"
    assert sorted(p.name for p in papers.iterdir()) == []


def test_html_instead_of_pdf_falls_back_to_built_url(fake_arxiv, make_source, fake_pdfs):
    fake_arxiv.script["/pdf/2005.13013v2"] = [("html",)]
    got = make_source().fetch(parse_arxiv_id("2005.13013v2"))
    assert got.path.read_bytes() == fake_pdfs["2005.13013v2"]
    assert got.entry.source_url.endswith("/fallback/pdf/2005.13013v2")
    assert len(fake_arxiv.requests) == 3  # API, pdf_url (HTML), fallback (PDF)


def test_size_limit(fake_arxiv, make_source, online_settings):
    small = online_settings.model_copy(update={"max_bytes": 10_000})
    with pytest.raises(LimitExceeded, match="max_bytes"):
        make_source(small).fetch(parse_arxiv_id("2005.13013v1"))


def test_search_pages_ranks_dedupes_and_filters(fake_arxiv, make_source):
    src = make_source(page_size=2)
    hits = src.search("intermediate-task training for zero-shot cross-lingual transfer", max_results=3)
    api = [r for r in fake_arxiv.requests if r.startswith("/api/")]
    assert len(api) == 2  # 4 results in pages of 2
    keys = [h.ref.key for h in hits]
    assert keys[0] == "2005.13013v2"  # most relevant to the question, although arXiv ranked it second
    assert len(keys) == len({h.ref.arxiv_id for h in hits}) == 3
    assert hits[0].score >= hits[1].score >= hits[2].score
    recent = src.search("cross-lingual transfer", max_results=10, since=date(2020, 1, 1))
    assert {h.ref.arxiv_id for h in recent} == {"2104.07412", "2005.13013"}
    assert "submittedDate" in fake_arxiv.requests[-1]


def test_user_agent_and_retry_after_parsing(fake_arxiv, make_source):
    import requests

    seen = {}
    src = make_source()
    orig = requests.Session.request

    def spy(self, method, url, *a, **kw):
        seen["ua"] = kw["headers"]["User-Agent"]
        return orig(self, method, url, *a, **kw)

    requests.Session.request = spy
    try:
        src.lookup([PaperRef(arxiv_id="2005.13013", version=1)])
    finally:
        requests.Session.request = orig
    assert seen["ua"] == USER_AGENT and USER_AGENT.startswith("claimscope/")
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None
