"""Hybrid evidence index on the bundled MiniLM: ranking, restriction to cited papers, persistence, incremental add."""

from __future__ import annotations

import json

import pytest

from claimscope.types import Passage
from claimscope.verify.embed import BUNDLED
from claimscope.verify.index import MANIFEST, EvidenceIndex


def _p(paper: str, text: str, page: int = 1) -> Passage:
    return Passage(paper=paper, arxiv_id=paper.split("v")[0], version=int(paper.split("v")[1]), page=page, start=0,
                   end=len(text), text=text)


@pytest.fixture(scope="module")
def passages():
    return [
        _p("2005.13013v1", "Using a set of 7 intermediate language understanding tasks, we evaluate transfer.", 1),
        _p("2005.13013v1", "Evaluating our best models yields an average improvement of 6.1 points.", 2),
        _p("2005.13013v2", "Using nine intermediate language-understanding tasks, we evaluate transfer.", 1),
        _p("1911.02116v2", "XLM-R is trained on 2.5TB of filtered CommonCrawl data in 100 languages.", 1),
        _p("1911.02116v2", "The cat sat on the mat while it rained in Paris.", 3),
    ]


def test_search_ranks_the_relevant_passage_first_and_respects_restriction(passages, tmp_path):
    index = EvidenceIndex.build(passages, BUNDLED)
    hits = index.search("How many languages is XLM-R trained on?", 3)
    assert hits[0].passage.paper == "1911.02116v2" and "100 languages" in hits[0].passage.text
    only_v2 = index.search("number of intermediate tasks", 5, allowed={"2005.13013v2"})
    assert {h.passage.paper for h in only_v2} == {"2005.13013v2"}
    assert index.search("anything", 5, allowed={"9999.99999v1"}) == []


def test_index_is_persisted_reused_and_extended_without_re_embedding(passages, tmp_path, monkeypatch):
    directory = tmp_path / "index"
    EvidenceIndex.load_or_build(directory, passages[:3], BUNDLED)
    manifest = json.loads((directory / MANIFEST).read_text())
    assert manifest["count"] == 3 and manifest["dims"] == 384 and manifest["model"] == BUNDLED

    embedded: list[int] = []
    import claimscope.verify.index as mod

    real = mod.embed_texts
    monkeypatch.setattr(mod, "embed_texts", lambda texts, *a, **k: embedded.append(len(texts)) or real(texts, *a, **k))
    again = EvidenceIndex.load_or_build(directory, passages[:3], BUNDLED)
    assert len(again.passages) == 3 and embedded == []  # reused, nothing embedded

    grown = EvidenceIndex.load_or_build(directory, passages, BUNDLED)
    assert embedded == [2]  # only the two new passages were embedded
    assert len(grown.passages) == 5
    manifest = json.loads((directory / MANIFEST).read_text())
    assert [a["added"] for a in manifest["additions"]] == [3, 2]
    assert not (tmp_path / "index.tmp").exists()


def test_bf16_embeddings_stay_within_rounding_of_fp32(passages):
    from claimscope.verify.index import embed_texts

    texts = [p.text for p in passages]
    fp32 = embed_texts(texts, BUNDLED, precision="fp32")
    bf16 = embed_texts(texts, BUNDLED, precision="bf16")
    cosines = (fp32 * bf16).sum(axis=1)
    assert cosines.min() >= 0.999, cosines


def test_index_passes_its_precision_to_every_embedding(passages, monkeypatch):
    import claimscope.verify.index as mod

    seen: list[str] = []
    real = mod.embed_texts
    def spy(texts, *a, **k):  # type: ignore[no-untyped-def]
        seen.append(k.get("precision"))
        return real(texts, *a, **k)

    monkeypatch.setattr(mod, "embed_texts", spy)
    index = EvidenceIndex.build(passages[:2], BUNDLED, precision="fp32")
    index.add(passages[2:3])
    index.search("languages", 2)
    assert seen == ["fp32", "fp32", "fp32"]


def test_figure_labels_and_reference_entries_of_the_real_pdf_are_not_evidence():
    # before: a claim about XLM-R quoted 'XLM-R\n\nOR' (labels of v1's Figure 1, p.2) as its best evidence
    from pathlib import Path

    from claimscope.retrieve.passages import paper_passages
    from claimscope.retrieve.pdf import parse_pdf
    from claimscope.types import Paper, PaperRef
    from claimscope.verify.index import quotable

    pdf = Path(__file__).resolve().parents[2] / "examples" / "papers" / "2005.13013v1.pdf"
    paper = Paper(ref=PaperRef(arxiv_id="2005.13013", version=1), sha256="0" * 64, source="local", path=str(pdf),
                  fmt="pdf")
    passages = paper_passages(paper, parse_pdf(pdf))
    dropped = [p for p in passages if not quotable(p)]
    texts = {" ".join(p.text.split()) for p in dropped}
    assert {"XLM-R OR", "Target Task: #j EN Ж"} <= texts  # Figure 1's labels
    assert any(t.startswith("Rowan Zellers, Ari Holtzman") for t in texts)  # the reference list, 54 % of the passages
    body = [p for p in passages if p.section != "References"]
    kept = [p for p in body if quotable(p)]
    assert len(body) - len(kept) == 22  # 20 figure-label fragments (p.2) and 2 table headers (p.5)
    assert all(p.page in (2, 5) for p in body if p not in kept)
    index = EvidenceIndex.build(passages, BUNDLED)
    query = "XLM-R model OR target task EN"
    assert not all(quotable(h.passage) for h in index.search(query, 10, allowed={"2005.13013v1"}))
    index.search_quotable_only()  # as a run over papers sets it
    hits = index.search(query, 10, allowed={"2005.13013v1"})
    assert len(hits) == 10 and all(quotable(h.passage) for h in hits)
