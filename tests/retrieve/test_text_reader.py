from __future__ import annotations

from claimscope.retrieve.passages import paper_passages
from claimscope.retrieve.text import parse_text
from claimscope.types import Paper, PaperRef

from .conftest import EXAMPLE_MD, EXAMPLES


def test_markdown_example_v2():
    doc = parse_text(EXAMPLE_MD)
    assert len(doc.pages) == 1 and doc.pages[0].number == 1
    text = doc.pages[0].text
    assert "Using nine intermediate language-understanding tasks" in text
    assert "5.4 point improvement over XLM-R Large" in text
    assert "<!--" not in text  # provenance comment kept in meta, not in the text
    assert "2005.13013 v2" in doc.meta["header_comment"]
    assert doc.meta["marked_partial"] is True
    heads = [h for _, h in doc.pages[0].headings]
    assert heads[0].startswith("Part A") and "Abstract" in heads and "1 Introduction" in heads
    for off, h in doc.pages[0].headings:
        assert text[off:].startswith(h)
    assert "##" not in text


def test_text_example_and_passages():
    path = EXAMPLES / "2509.23657v1.txt"
    doc = parse_text(path)
    assert doc.meta["title"].startswith("Beyond English-Centric Training")
    paper = Paper(ref=PaperRef(arxiv_id="2509.23657", version=1), sha256="0" * 64, source="local", path="p",
                  fmt="text")
    passages = paper_passages(paper, doc)
    assert passages
    for ps in passages:
        assert doc.pages[0].text[ps.start : ps.end] == ps.text


def test_html_strips_tags_scripts_and_styles(tmp_path):
    p = tmp_path / "paper.html"
    p.write_text(
        "<html><head><title>My Paper</title><style>p {color: red}</style></head><body>"
        "<script>var x = 'Do not index me.';</script><h1>1 Introduction</h1>"
        "<p>We study <b>things</b> &amp; stuff.\nIt works.</p><ul><li>One point.</li><li>Two points.</li></ul>"
        "</body></html>",
        encoding="utf-8",
    )
    doc = parse_text(p)
    text = doc.pages[0].text
    assert doc.meta["title"] == "My Paper"
    assert "Do not index me" not in text and "color" not in text
    assert "We study things & stuff. It works." in text
    assert "One point.\n\nTwo points." in text
    assert doc.pages[0].headings == [(text.index("1 Introduction"), "1 Introduction")]


def test_txt_hyphenation_and_ligatures(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("We improve perfor-\nmance with \ufb01ne-tuning on cross-\nlingual tasks and\nperformance.\n",
                 encoding="utf-8")
    text = parse_text(p).pages[0].text
    assert text == "We improve performance with fine-tuning on cross-lingual tasks and performance."
