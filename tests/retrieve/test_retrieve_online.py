from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pymupdf
import pytest

from claimscope.retrieve import arxiv_source
from claimscope.retrieve.ids import parse_arxiv_id
from claimscope.retrieve.local import collect_papers
from claimscope.retrieve.ratelimit import RateLimiter
from claimscope.types import PaperRef

from .conftest import EXAMPLES


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("2005.13013", "2005.13013"),
        ("2005.13013v1", "2005.13013v1"),
        ("arXiv:2005.13013v2", "2005.13013v2"),
        ("https://arxiv.org/abs/2005.13013v2", "2005.13013v2"),
        ("http://arxiv.org/pdf/2005.13013v1.pdf", "2005.13013v1"),
        ("https://export.arxiv.org/abs/hep-th/9901001", "hep-th/9901001"),
        ("hep-th/9901001v3", "hep-th/9901001v3"),
        ("0704.0001", "0704.0001"),
        ("1412.8999v2", "1412.8999v2"),
    ],
)
def test_parse_ids(text, key):
    assert parse_arxiv_id(text).key == key


@pytest.mark.parametrize(
    "bad",
    ["205.13013", "2005.13013v", "../2005.13013", "2005.13013/../../etc", "hep-th/../9901001", "2005.13013v0",
     "a\\b", "",
     "2005.1301", "1412.12345", "2013.13013", "0004.1234"],  # 5 digits from 1501 on, 4 before; months 01-12
)
def test_reject_bad_ids(bad):
    with pytest.raises(ValueError):
        parse_arxiv_id(bad)


def test_rate_limiter_with_fake_clock(clock):
    lim = RateLimiter(3.0, clock=clock, sleep=clock.sleep)
    lim.wait()
    lim.wait()
    clock.now += 10
    lim.wait()
    lim.wait()
    assert clock.sleeps == [3.0, 3.0]
    lim.defer(20)
    lim.wait()
    assert clock.sleeps[-1] == 20.0


@pytest.fixture
def fast_shared_limiter(monkeypatch, clock):
    """The CLI builds its own ArxivSource: give it a limiter on the fake clock (no real 3 s sleeps)."""
    lim = RateLimiter(3.0, clock=clock, sleep=clock.sleep)
    monkeypatch.setattr(arxiv_source, "shared_limiter", lambda *_: lim)
    return lim


def test_collect_papers_online_local_first_then_arxiv(fake_arxiv, online_settings, fast_shared_limiter, tmp_path):
    settings = online_settings.model_copy(update={"papers_dir": EXAMPLES})
    refs = [PaperRef(arxiv_id="2005.13013", version=2), PaperRef(arxiv_id="2104.07412")]
    results, gaps = collect_papers(refs, settings, tmp_path / "papers")
    assert gaps == []
    got = {p.ref.key: p for p, _ in results}
    assert set(got) == {"2005.13013v1", "2005.13013v2", "2104.07412v1"}
    assert got["2005.13013v2"].source == "local"  # the local file wins; arXiv is not asked for it
    assert got["2104.07412v1"].source == "arxiv" and got["2104.07412v1"].meta.authors == ["Sebastian Ruder"]
    assert not any("2005.13013" in r for r in fake_arxiv.requests)


def test_cli_writes_both_versions_side_by_side(fake_arxiv, fast_shared_limiter, tmp_path, capsys):
    from claimscope.cli import main

    out = tmp_path / "runs" / "x"
    rc = main(["-q", "retrieve", "2005.13013v1", "2005.13013v2", "--out", str(out), "--online",
               "--cache", str(tmp_path / "cache")])
    assert rc == 0
    for key in ("2005.13013v1", "2005.13013v2"):
        meta = json.loads((out / "papers" / key / "meta.json").read_text())
        assert meta["ref"]["version"] == int(key[-1]) and meta["source"] == "arxiv"
        assert (out / "papers" / key / "paper.pdf").exists()
    passages = [json.loads(line) for line in (out / "passages.jsonl").read_text().splitlines()]
    assert {p["paper"] for p in passages} == {"2005.13013v1", "2005.13013v2"}
    assert any("5.4 point improvement" in p["text"] for p in passages if p["paper"] == "2005.13013v2")
    assert any("6.1 point" in p["text"] for p in passages if p["paper"] == "2005.13013v1")
    # second run: everything from the cache, no network
    n = len(fake_arxiv.requests)
    assert main(["-q", "retrieve", "2005.13013v1", "--out", str(out), "--cache", str(tmp_path / "cache")]) == 0
    assert len(fake_arxiv.requests) == n
    passages2 = (out / "passages.jsonl").read_text().splitlines()
    assert len(passages2) == len(passages)  # re-ingesting v1 replaced its passages, v2's were kept


def test_cli_search(fake_arxiv, fast_shared_limiter, tmp_path, capsys):
    from claimscope.cli import main

    out = tmp_path / "run"
    rc = main(["-q", "retrieve", "--search", "zero-shot cross-lingual transfer intermediate tasks", "--max", "2",
               "--since", "2020", "--online", "--out", str(out), "--cache", str(tmp_path / "cache")])
    assert rc == 0
    hits = json.loads((out / "search.json").read_text())
    assert [h["ref"]["arxiv_id"] for h in hits][0] == "2005.13013"
    assert len(hits) == 2
    assert "2005.13013v2" in capsys.readouterr().out


def _bad_pdfs(tmp_path: Path) -> dict[str, bytes]:
    enc = pymupdf.open()
    enc.new_page().insert_text((72, 72), "secret text")
    enc_bytes = enc.tobytes(encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="pw", owner_pw="pw2")
    img = pymupdf.open()
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 16, 16), False)
    img.new_page().insert_image(pymupdf.Rect(72, 72, 200, 200), pixmap=pix)
    return {
        "encrypted": enc_bytes,
        "image": img.tobytes(),
        "corrupt": b"%PDF-1.5\n" + os.urandom(3000) + b"\n%%EOF\n",
    }


def test_bad_pdfs_from_arxiv_become_gaps(fake_arxiv, online_settings, fast_shared_limiter, tmp_path):
    bad = _bad_pdfs(tmp_path)
    fake_arxiv.pdfs["2104.07412v1"] = bad["encrypted"]
    fake_arxiv.pdfs["1811.01088v2"] = bad["image"]
    fake_arxiv.pdfs["hep-th/9901001v1"] = bad["corrupt"]
    refs = [parse_arxiv_id(i) for i in ("2104.07412v1", "1811.01088v2", "hep-th/9901001v1", "2005.13013v1")]
    results, gaps = collect_papers(refs, online_settings, tmp_path / "papers")
    assert [p.ref.key for p, _ in results] == ["2005.13013v1"]
    reasons = {g.item: g.reason for g in gaps}
    assert "encrypted" in reasons["2104.07412v1"]
    assert "OCR" in reasons["1811.01088v2"]
    assert "not a readable PDF" in reasons["hep-th/9901001v1"]


KILLED_DOWNLOAD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import arxiv
    from claimscope.retrieve import arxiv_source
    from claimscope.retrieve.arxiv_source import ArxivSource
    from claimscope.retrieve.ids import parse_arxiv_id
    from claimscope.settings import RetrieveSettings
    base, cache = sys.argv[1], Path(sys.argv[2])
    arxiv.Client.query_url_format = base + "/api/query?{}"
    settings = RetrieveSettings(cache_dir=cache, offline=False, delay_seconds=0.0, timeout_seconds=60)
    ArxivSource(settings).fetch(parse_arxiv_id("2005.13013v1"))
    """
)


def test_kill_mid_download_then_clean_resume(fake_arxiv, make_source, online_settings, fake_pdfs):
    fake_arxiv.script["/pdf/2005.13013v1"] = [("stall_midway", 60)]
    cache = online_settings.cache_dir
    proc = subprocess.Popen([sys.executable, "-c", KILLED_DOWNLOAD, fake_arxiv.base_url, str(cache)])
    try:
        assert fake_arxiv.midway.wait(60), "download never started"
        papers = cache / "papers"
        for _ in range(100):  # the half body reaches the temp file
            parts = list(papers.glob(".*.part"))
            if parts and parts[0].stat().st_size > 0:
                break
            import time

            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (papers / "2005.13013v1.pdf").exists()
    assert not (papers / "2005.13013v1.json").exists()
    assert len(list(papers.glob(".*.part"))) == 1  # the killed writer's temp file, never under the final name
    got = make_source().fetch(parse_arxiv_id("2005.13013v1"))
    assert not got.from_cache and got.path.read_bytes() == fake_pdfs["2005.13013v1"]
    assert list(papers.glob(".*.part")) == []  # swept: its writer is dead
    assert make_source().fetch(parse_arxiv_id("2005.13013v1")).from_cache
