"""extract.py on the real example PDF (2005.13013v1) and the example report's cut-off claims."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pymupdf
import pytest

from claimscope.types import Claim, PaperRef
from claimscope.verify.extract import extract_claims, find_full_sentence, normalize, paper_ref_for

ROOT = Path(__file__).resolve().parents[2]
PDF = ROOT / "examples" / "papers" / "2005.13013v1.pdf"
REPORT = ROOT / "examples" / "assignee_report.txt"

BULLETS = [
    "Applying intermediate-task training to BUCC and Tatoeba, the two sentence retrieval target tasks that have no "
    "training data, yields dramatic improvements with almost every intermediate training configuration.",
    "The question-answering target tasks show consistent smaller improvement with many intermediate tasks.",
    "Evaluating our best performing models for each target task on the XTREME benchmark yields an average "
    "improvement of 6.1 points, setting the state of the art as of writing.",
    "Neither continuing multilingual MLM training during intermediate-task training nor multi-task training "
    "meaningfully bolster transfer performance.",
]


@pytest.fixture(scope="module")
def doc():
    from claimscope.retrieve.pdf import parse_pdf

    return parse_pdf(PDF)


@pytest.fixture(scope="module")
def ref() -> PaperRef:
    return paper_ref_for(PDF)


@pytest.fixture(scope="module")
def claims(doc, ref) -> list[Claim]:
    return extract_claims(doc, ref, top_n=30)


@pytest.fixture(scope="module")
def raw_pages() -> list[str]:
    """Page texts straight from PyMuPDF (independent of retrieve's reader), normalised like the claims."""
    with pymupdf.open(PDF) as d:
        pages = [p.get_text() for p in d]
    out = []
    for t in pages:
        t = re.sub(r"(?<=[a-z)\]])([.,;:])\d{1,2}(?=\s)", r"\1", t)  # footnote markers "experiments.5"
        out.append(_squash(t))
    return out


def _squash(text: str) -> str:
    """Letters and digits only: line-end hyphenation ("multi-\ntask" vs "multi-task") cannot differ."""
    return re.sub(r"[^a-z0-9]", "", normalize(text))


def test_paper_ref_from_file_name(ref):
    assert (ref.arxiv_id, ref.version) == ("2005.13013", 1)


def test_all_four_contribution_bullets_are_claims(claims):
    texts = [c.text for c in claims]
    for b in BULLETS:
        assert b in texts, b[:60]
    bullet_claims = [c for c in claims if c.text in BULLETS]
    assert all(c.source == "2005.13013v1 p.2 §1 Introduction" for c in bullet_claims)
    assert all(not c.text.startswith("•") for c in claims)


def test_every_claim_is_a_whole_sentence(claims):
    assert 20 <= len(claims) <= 30
    for c in claims:
        assert re.match(r"[A-Z0-9(]", c.text), c.text
        assert re.search(r"[.!?]\)?$", c.text), c.text
        assert not re.search(r"[a-z]- [a-z]", c.text), c.text  # "perfor- mance"
        assert "\n" not in c.text
        assert c.cited and c.cited[0].key == "2005.13013v1"


def test_no_two_sentences_glued_and_no_duplicates(claims):
    for c in claims:
        # a sentence end followed by a new capitalised sentence inside one claim (outside abbreviations/numbers)
        inner = re.findall(r"[a-z]{3,}\. [A-Z][a-z]", c.text)
        assert not inner, c.text
    keys = [normalize(c.text) for c in claims]
    assert len(keys) == len(set(keys))


def test_page_numbers_are_right(claims, raw_pages):
    for c in claims:
        page = int(re.search(r" p\.(\d+)", c.source).group(1))
        text = _squash(c.text)
        here, after = raw_pages[page - 1], raw_pages[page] if page < len(raw_pages) else ""
        # the sentence starts on that page and ends on it or on the next (a sentence may run over a page break)
        head = text[:20]
        if head not in here:  # the page ends inside the first 20 characters
            head = next(text[:k] for k in range(20, 0, -1) if here.endswith(text[:k]))
            assert len(head) >= 10, (page, c.text[:80])
        assert head in here, (page, c.text[:80])
        assert text[-30:] in here or text[-30:] in after, (page, c.text[-80:])


def test_sentence_joined_across_a_page_break(doc, ref):
    texts = {c.text: c for c in extract_claims(doc, ref, top_n=200)}
    s = "We improve over XLM-R by 6.1 points on average on the XTREME benchmark, setting a new state of the art."
    assert s in texts and " p.6 " in texts[s].source + " "
    assert not any(t.startswith("6.1 points on average") for t in texts)


def test_references_figures_and_authors_are_skipped(doc, ref):
    texts = [c.text for c in extract_claims(doc, ref, top_n=500)]
    assert not any("Computational Linguistics" in t and "Proceedings" in t for t in texts)
    assert not any("New York University" in t for t in texts)
    assert not any("Target Task: #j" in t or "宿" in t for t in texts)
    assert not any(t.startswith(("Table 2:", "Figure 1:")) for t in texts)


def _report_claims() -> list[str]:
    return [line.split("\t")[0] for line in REPORT.read_text(encoding="utf-8").splitlines() if "\t✓\t" in line]


def test_full_sentence_for_cut_bullet(doc, ref):
    cut = [c for c in _report_claims() if c.startswith("Applying intermediate-task training to BUCC")][0]
    assert cut.endswith("no training d")
    found = find_full_sentence(cut, [(ref, doc)])
    assert found is not None
    text, got_ref, page = found
    assert text == BULLETS[0] and got_ref.key == "2005.13013v1" and page == 2


def test_full_sentence_near_match_and_miss(doc, ref):
    three = [c for c in _report_claims() if c.startswith("We follow a three-phase")][0]
    found = find_full_sentence(three, [(ref, doc)])
    assert found is not None and found[0].startswith("We propose a three-phase approach to training")
    assert found[2] == 2
    # v2-only wording: v1 has a sentence with the same opening but not this claim
    study = [c for c in _report_claims() if c.startswith("We study the effect")][0]
    assert find_full_sentence(study, [(ref, doc)]) is None
    tydi = [c for c in _report_claims() if c.startswith("TyDiQA shows")][0]
    assert find_full_sentence(tydi, [(ref, doc)]) is None
    # the v1 sentence ends before the claim does ("..., as it curren"): not its full form
    xlmr = [c for c in _report_claims() if c.startswith("We use the pretrained XLM-R Large")][0]
    assert find_full_sentence(xlmr, [(ref, doc)]) is None


def test_extract_cli_writes_jsonl(tmp_path):
    from claimscope.cli import main

    out = tmp_path / "claims.jsonl"
    assert main(["-q", "extract", str(PDF), "--out", str(out), "--top", "12"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 12
    assert all(r["cited"][0]["arxiv_id"] == "2005.13013" and r["cited"][0]["version"] == 1 for r in rows)
    assert any(r["text"] == BULLETS[2] for r in rows)
