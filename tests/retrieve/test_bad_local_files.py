"""Local files that hold no usable text, or only part of it: a gap naming the file, or a paper that says it is partial;
never a paper that silently counts as read."""

from __future__ import annotations

import shutil

import pytest

from claimscope.errors import PdfUnreadable
from claimscope.retrieve.local import collect_papers
from claimscope.retrieve.text import parse_text
from claimscope.settings import RetrieveSettings
from claimscope.types import PaperRef

from .conftest import EXAMPLE_PDF


@pytest.mark.parametrize(("name", "content"), [
    ("2104.07412v1.txt", b""),
    ("2104.07412v1.md", b"\n\n   \n<!-- only a comment -->\n"),
    ("2104.07412v1.html", b"<html><head><title>t</title><script>var x = 1;</script></head><body> </body></html>"),
])
def test_a_text_file_without_text_is_an_error_naming_it(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(PdfUnreadable, match="no text") as e:
        parse_text(path)
    assert name in str(e.value)


def test_an_empty_text_paper_is_a_gap_and_the_others_go_on(tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "2104.07412v1.txt").write_bytes(b"")
    shutil.copy(EXAMPLE_PDF, folder / "2005.13013v1.pdf")
    settings = RetrieveSettings(papers_dir=folder, cache_dir=tmp_path / "cache")
    refs = [PaperRef(arxiv_id="2104.07412", version=1), PaperRef(arxiv_id="2005.13013", version=1)]
    found, gaps = collect_papers(refs, settings, tmp_path / "run" / "papers")
    assert [p.ref.key for p, _ in found] == ["2005.13013v1"]
    (gap,) = gaps
    assert gap.item == "2104.07412v1" and "2104.07412v1.txt" in gap.reason and "no text" in gap.reason
    assert not (tmp_path / "run" / "papers" / "2104.07412v1").exists()
