"""The four limits in settings (retrieve.max_pages, retrieve.max_bytes, verify.max_claims, verify.max_passages):
each exists, is enforced, and says so in one line naming the file/item, the number and the setting."""

from __future__ import annotations

import pytest

from claimscope.errors import LimitExceeded
from claimscope.retrieve.local import read_document
from claimscope.settings import load_settings
from claimscope.types import Passage
from claimscope.verify.claims_io import read_claims

from .checks import assert_one_line
from .hostile import hostile_claims, many_pages_pdf


def test_limits_are_settings():
    s = load_settings("fast", retrieve__max_pages=7, retrieve__max_bytes=1234, verify__max_claims=3,
                      verify__max_passages=9)
    assert (s.retrieve.max_pages, s.retrieve.max_bytes, s.verify.max_claims, s.verify.max_passages) == (7, 1234, 3, 9)


def test_max_pages(tmp_path, probe):
    o = probe("input", "limit:max_pages")
    pdf = tmp_path / "2104.00001v1.pdf"
    pdf.write_bytes(many_pages_pdf(40))
    s = load_settings(retrieve__max_pages=12)
    doc = read_document(pdf, "pdf", s.retrieve)
    assert [p.number for p in doc.pages] == list(range(1, 13))
    (note,) = [why for n, why in doc.skipped_pages if n == 13]
    o.error = note
    assert_one_line(note, "max_pages=12")
    assert "13-40" in note


@pytest.mark.parametrize("fmt,suffix", [("pdf", ".pdf"), ("text", ".txt"), ("html", ".html")])
def test_max_bytes(fmt, suffix, tmp_path, probe):
    o = probe("input", f"limit:max_bytes:{fmt}")
    path = tmp_path / f"2104.00001v1{suffix}"
    path.write_bytes(many_pages_pdf(5) if fmt == "pdf" else b"A sentence that repeats. " * 400)
    s = load_settings(retrieve__max_bytes=2000)
    with pytest.raises(LimitExceeded) as e:
        read_document(path, fmt, s.retrieve)
    o.error = str(e.value)
    assert_one_line(str(e.value), path.name)
    assert "max_bytes=2,000" in str(e.value)


def test_max_claims(tmp_path, probe):
    o = probe("input", "limit:max_claims")
    path = hostile_claims("too_many_claims", tmp_path)
    s = load_settings(verify__max_claims=29)
    with pytest.raises(Exception) as e:
        read_claims(path, max_claims=s.verify.max_claims)
    o.error = str(e.value)
    assert_one_line(str(e.value), path.name)
    assert "30 claims exceed the limit of 29 (verify.max_claims)" in str(e.value)


def test_max_passages(probe):
    from claimscope.verify.index import EvidenceIndex

    o = probe("input", "limit:max_passages")
    s = load_settings(verify__max_passages=5)
    passages = [Passage(id=f"p{i}", paper="2005.13013v1", page=1, start=0, end=10, text=f"Passage number {i}.")
                for i in range(6)]
    with pytest.raises(LimitExceeded) as e:
        EvidenceIndex.build(passages, s.verify.embedding_model, max_passages=s.verify.max_passages)
    o.error = str(e.value)
    assert_one_line(str(e.value), "verify.max_passages=5")
    assert "6 passages" in str(e.value)
