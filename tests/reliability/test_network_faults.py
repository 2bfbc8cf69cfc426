"""Faults from the loopback arXiv server: each download either succeeds after retries or ends in a typed one-line
error that names the URL or id, and the cache never holds a partial file under a final name."""

from __future__ import annotations

import pytest

from claimscope.errors import ClaimscopeError
from claimscope.retrieve.ids import parse_arxiv_id
from claimscope.retrieve.online import collect_online

from .checks import assert_one_line
from .registry import NETWORK_FAULTS

PDF = "/pdf/2005.13013v1"
FALLBACK = "/fallback/pdf/2005.13013v1"
HTML = b"<html><body>Please verify you are a human</body></html>"
# fault -> (script, "ok" or words of the error, settings overrides)
FAULTS: dict[str, tuple[dict[str, list[tuple]], str, dict]] = {
    "api_429_retry_after": ({"/api": [("status", 429, {"Retry-After": "7"})]}, "ok", {}),
    "api_429_no_retry_after": ({"/api": [("status", 429, {})]}, "ok", {}),
    "api_500_then_ok": ({"/api": [("status", 500, {})]}, "ok", {}),
    "api_503_forever": ({"/api": [("status", 503, {})] * 10}, "HTTP 503", {}),
    "api_html_instead_of_feed": ({"/api": [("ctype", "text/html", HTML)] * 10}, "arXiv", {}),
    "api_json_instead_of_feed": ({"/api": [("ctype", "application/json", b'{"error": "busy"}')] * 10}, "arXiv", {}),
    "api_reset_then_ok": ({"/api": [("reset",)]}, "ok", {}),
    "api_stall_timeout": ({"/api": [("stall", 3)] * 3}, "no answer within 0.3s", {"timeout_seconds": 0.3,
                                                                                   "num_retries": 1}),
    "pdf_429_retry_after": ({PDF: [("status", 429, {"Retry-After": "5"})]}, "ok", {}),
    "pdf_500_then_ok": ({PDF: [("status", 500, {})]}, "ok", {}),
    "pdf_slow_body": ({PDF: [("drip", 1 << 16, 0.05)]}, "ok", {}),
    "pdf_reset_then_ok": ({PDF: [("reset",)]}, "ok", {}),
    "pdf_reset_forever": ({PDF: [("reset",)] * 20, FALLBACK: [("reset",)] * 20}, "connection", {}),
    "pdf_octet_stream": ({PDF: [("ctype", "application/octet-stream", None)]}, "ok", {}),
    "pdf_html_forever": ({PDF: [("html",)] * 20, FALLBACK: [("html",)] * 20}, "not a PDF", {}),
    "pdf_truncated_then_ok": ({PDF: [("truncate", 5000)]}, "ok", {}),
    "pdf_oversized": ({}, "max_bytes=10,000", {"max_bytes": 10_000}),
}


def _cache_is_clean(cache_dir) -> list[str]:  # type: ignore[no-untyped-def]
    papers = cache_dir / "papers"
    if not papers.exists():
        return []
    names = {p.name for p in papers.iterdir()}
    bad = [n for n in names if n.endswith(".part")]
    bad += [n for n in names if n.endswith(".pdf") and n[:-4] + ".json" not in names]  # a PDF without its sidecar
    return bad


def test_every_registered_fault_has_an_expectation():
    assert set(FAULTS) == set(NETWORK_FAULTS)


@pytest.mark.parametrize("fault", NETWORK_FAULTS)
def test_network_fault(fault, fake_arxiv, make_source, online_settings, fake_pdfs, clock, tmp_path, probe):
    o = probe("fault", f"net:{fault}")
    script, expect, overrides = FAULTS[fault]
    for path, actions in script.items():
        fake_arxiv.script[path] = list(actions)
    settings = online_settings.model_copy(update=overrides)
    source = make_source(settings, timeout=settings.timeout_seconds)
    found, gaps = collect_online([parse_arxiv_id("2005.13013v1")], settings, tmp_path / "run" / "papers",
                                 source=source)
    o.notes.append(f"{len(fake_arxiv.requests)} requests, slept {sum(clock.sleeps):.1f}s (fake clock)")
    assert _cache_is_clean(settings.cache_dir) == []
    if expect == "ok":
        assert gaps == [], gaps
        (paper, _doc), = found
        assert (tmp_path / "run" / paper.path).read_bytes() == fake_pdfs["2005.13013v1"]
        if fault.endswith("retry_after") and "no_retry" not in fault:
            assert float(script[next(iter(script))][0][2]["Retry-After"]) in clock.sleeps
    else:
        assert found == [] and len(gaps) == 1
        o.error = gaps[0].reason
        assert_one_line(gaps[0].reason, "2005.13013", "127.0.0.1")
        assert expect in gaps[0].reason, gaps[0].reason
        assert not (tmp_path / "run" / "papers" / "2005.13013v1").exists()


def test_fault_through_fetch_is_typed(fake_arxiv, make_source, probe):
    o = probe("fault", "net:api_garbage_fetch")
    fake_arxiv.script["/api"] = [("ctype", "text/html", HTML)] * 10
    with pytest.raises(ClaimscopeError) as e:
        make_source().fetch(parse_arxiv_id("2005.13013v1"))
    o.error = str(e.value)
    assert_one_line(str(e.value), "2005.13013", "127.0.0.1")
