from __future__ import annotations

import pytest

from claimscope.retrieve.passages import paper_passages, split_sentences
from claimscope.types import Paper, PaperRef, ParsedDoc, ParsedPage, Passage


def _sents(text: str) -> list[str]:
    return [text[s:e] for s, e in split_sentences(text)]


def test_no_split_on_abbreviations_initials_decimals():
    text = (
        "As shown by Phang et al. (2018), STILTs help. We see e.g. gains of 6.1 points vs. 5.4 points in Fig. 2. "
        "Samuel R. Bowman wrote it, i.e. the last author. Results improve (see Table 2). Why? Because."
    )
    assert _sents(text) == [
        "As shown by Phang et al. (2018), STILTs help.",
        "We see e.g. gains of 6.1 points vs. 5.4 points in Fig. 2.",
        "Samuel R. Bowman wrote it, i.e. the last author.",
        "Results improve (see Table 2).",
        "Why?",
        "Because.",
    ]


def test_paragraph_break_ends_sentence_and_spans_are_exact():
    text = "Heading without period\n\nFirst sentence here. Second one follows.\n\n• A bullet item"
    spans = split_sentences(text)
    assert [text[s:e] for s, e in spans] == [
        "Heading without period",
        "First sentence here.",
        "Second one follows.",
        "• A bullet item",
    ]
    assert all(not text[s].isspace() and not text[e - 1].isspace() for s, e in spans)


def test_run_on_text_is_cut_into_bounded_pieces():
    text = " ".join(["cell"] * 1000)
    spans = split_sentences(text)
    assert len(spans) > 1 and all(e - s <= 800 for s, e in spans)
    assert " ".join(text[s:e] for s, e in spans) == text


def _paper(key_version: int | None = 1) -> Paper:
    return Paper(ref=PaperRef(arxiv_id="2005.13013", version=key_version), sha256="0" * 64, source="local",
                 path="x.pdf", fmt="pdf")


def test_windows_on_real_pdf_keep_exact_substring_invariant(example_doc):
    paper = _paper()
    passages = paper_passages(paper, example_doc, window_sentences=2, stride=1)
    assert len(passages) > 200
    pages = {p.number: p.text for p in example_doc.pages}
    for ps in passages:
        assert pages[ps.page][ps.start : ps.end] == ps.text
        assert ps.paper == "2005.13013v1" and ps.version == 1 and ps.arxiv_id == "2005.13013"
    found = [ps for ps in passages if "average improvement of 6.1 points" in ps.text]
    assert found and all(ps.page == 2 for ps in found)
    # "et al." never ends a sentence in the real text
    for page in example_doc.pages:
        for s, e in split_sentences(page.text):
            assert not page.text[s:e].endswith(" et al.")
            assert not page.text[s:e].endswith(" 6.")
    assert len({ps.id for ps in passages}) == len(passages)


def test_sections_carry_over_pages(example_doc):
    passages = paper_passages(_paper(), example_doc)
    by_text = {ps.text: ps for ps in passages}
    approach = next(ps for t, ps in by_text.items() if t.startswith("We propose a three-phase approach"))
    assert approach.page == 2 and approach.section == "2 Approach"
    # page 3 has no heading of its own: its passages belong to the last heading of page 2
    p3 = [ps for ps in passages if ps.page == 3]
    assert p3 and all(ps.section == "2.1 Intermediate Tasks" for ps in p3)


@pytest.mark.parametrize(("n", "size", "stride"), [(5, 2, 1), (5, 3, 2), (2, 3, 1), (7, 2, 3), (1, 2, 1)])
def test_windows_cover_every_sentence(n, size, stride):
    text = " ".join(f"Sentence number {i}." for i in range(n))
    doc = ParsedDoc(path="x", pages=[ParsedPage(number=1, text=text)])
    passages = paper_passages(_paper(), doc, window_sentences=size, stride=stride)
    covered = set()
    for ps in passages:
        covered.update(i for i in range(n) if f"number {i}." in ps.text)
        assert ps.text.count("Sentence") <= size
    assert covered == set(range(n))


def test_fast_built_passages_equal_validated_ones(example_doc):
    passages = paper_passages(_paper(), example_doc)[:50]
    for ps in passages:
        assert Passage.model_validate(ps.model_dump(exclude={"id"})) == ps
