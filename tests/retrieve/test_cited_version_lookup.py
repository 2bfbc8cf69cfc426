"""A cited version that the papers folder lacks is still looked up in the cache (and on arXiv when online), while the
versions held locally are read as before; a version-pinned id is never served by another version."""

from __future__ import annotations

import hashlib
import json
import shutil

from claimscope.retrieve.cache import CacheEntry, PaperCache
from claimscope.retrieve.local import collect_papers
from claimscope.settings import RetrieveSettings
from claimscope.types import PaperRef

from .conftest import EXAMPLE_PDF, _text_pdf


def _cache_v2(cache_dir) -> bytes:
    data = _text_pdf(["Using nine intermediate language-understanding tasks, we evaluate transfer.",
                      "We obtain a 5.4 point improvement over XLM-R Large on the XTREME benchmark."], pages=1)
    ref = PaperRef(arxiv_id="2005.13013", version=2)
    cache = PaperCache(cache_dir)
    with cache.writer(ref) as (f, tmp):
        f.write(data)
    cache.commit(ref, tmp, CacheEntry(ref=ref, sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    return data


def test_cited_version_missing_locally_is_taken_from_the_cache(tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    shutil.copy(EXAMPLE_PDF, folder / "2005.13013v1.pdf")
    data = _cache_v2(tmp_path / "cache")
    settings = RetrieveSettings(papers_dir=folder, cache_dir=tmp_path / "cache")  # offline
    out = tmp_path / "run" / "papers"
    results, gaps = collect_papers([PaperRef(arxiv_id="2005.13013", version=2)], settings, out)
    assert gaps == []
    got = {p.ref.key: p for p, _ in results}
    assert set(got) == {"2005.13013v1", "2005.13013v2"}
    assert got["2005.13013v1"].source == "local" and got["2005.13013v2"].source == "arxiv"
    assert (out / "2005.13013v2" / "paper.pdf").read_bytes() == data
    # the held v1 no longer claims that v2 is unavailable (in memory and in its meta.json)
    assert not any("only v1 available" in n for n in got["2005.13013v1"].notes)
    meta = json.loads((out / "2005.13013v1" / "meta.json").read_text())
    assert not any("only v1 available" in n for n in meta["notes"])
    assert any("not the cited version" in n for n in got["2005.13013v1"].notes)


def test_cited_version_in_neither_folder_nor_cache_stays_a_note(tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    shutil.copy(EXAMPLE_PDF, folder / "2005.13013v1.pdf")
    _cache_v2(tmp_path / "cache")
    settings = RetrieveSettings(papers_dir=folder, cache_dir=tmp_path / "cache")
    results, gaps = collect_papers([PaperRef(arxiv_id="2005.13013", version=3)], settings, tmp_path / "out")
    assert gaps == []
    assert [p.ref.key for p, _ in results] == ["2005.13013v1"]  # the cached v2 is not a stand-in for v3
    assert "cited v3; only v1 available locally" in results[0][0].notes


def test_cited_version_missing_locally_is_fetched_online(fake_arxiv, online_settings, tmp_path, monkeypatch, clock):
    from claimscope.retrieve import arxiv_source
    from claimscope.retrieve.ratelimit import RateLimiter

    monkeypatch.setattr(arxiv_source, "shared_limiter", lambda *_: RateLimiter(3.0, clock=clock, sleep=clock.sleep))
    folder = tmp_path / "papers"
    folder.mkdir()
    shutil.copy(EXAMPLE_PDF, folder / "2005.13013v1.pdf")
    settings = online_settings.model_copy(update={"papers_dir": folder})
    results, gaps = collect_papers([PaperRef(arxiv_id="2005.13013", version=2)], settings, tmp_path / "out")
    assert gaps == []
    assert {p.ref.key: p.source for p, _ in results} == {"2005.13013v1": "local", "2005.13013v2": "arxiv"}
    assert not any("2005.13013v1" in r for r in fake_arxiv.requests)  # v1 came from the folder


def test_a_cache_entry_filed_under_another_version_is_not_served(tmp_path):
    # v1's files copied under v2's names (by hand, or a broken sync): asking for v2 must not get v1
    from claimscope.retrieve.arxiv_source import ArxivSource

    data = EXAMPLE_PDF.read_bytes()
    v1 = PaperRef(arxiv_id="2005.13013", version=1)
    cache = PaperCache(tmp_path / "cache")
    with cache.writer(v1) as (f, tmp):
        f.write(data)
    cache.commit(v1, tmp, CacheEntry(ref=v1, sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    papers = tmp_path / "cache" / "papers"
    shutil.copy(papers / "2005.13013v1.pdf", papers / "2005.13013v2.pdf")
    shutil.copy(papers / "2005.13013v1.json", papers / "2005.13013v2.json")
    v2 = PaperRef(arxiv_id="2005.13013", version=2)
    assert cache.get(v2) is None and cache.get(v1) is not None
    (got,) = ArxivSource(RetrieveSettings(cache_dir=tmp_path / "cache")).fetch_many([v2])
    assert isinstance(got, Exception)
