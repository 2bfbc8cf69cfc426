"""Two-level search for open claims: document units, their merged text, the fused document ranking, and the
sentence windows taken inside the best documents."""

from __future__ import annotations

import numpy as np
import pytest

from claimscope.types import Passage
from claimscope.verify.docrank import DocParams, DocRanker, doc_units, merged_text


def _windows(paper: str, page: int, sentences: list[str], section: str | None = None, start: int = 0
             ) -> list[Passage]:
    """Two-sentence windows with stride one over `sentences` joined by spaces, as retrieve makes them."""
    spans, pos = [], start
    for s in sentences:
        spans.append((pos, pos + len(s)))
        pos += len(s) + 1
    page_text = " " * start + " ".join(sentences)
    out = []
    for i in range(len(sentences)):
        a, b = spans[i][0], spans[min(i + 1, len(sentences) - 1)][1]
        out.append(Passage(paper=paper, page=page, section=section, start=a, end=b, text=page_text[a:b]))
    return out


def test_merged_text_counts_overlapping_windows_once() -> None:
    sents = ["Alpha beta gamma.", "Delta epsilon.", "Zeta eta theta."]
    ps = _windows("p1v1", 1, sents) + _windows("p1v1", 2, ["Iota kappa.", "Lambda mu."])
    assert merged_text(ps[::-1]) == " ".join(sents) + " " + "Iota kappa. Lambda mu."


def test_short_paper_is_one_unit_long_paper_splits_by_section_then_pages() -> None:
    short = _windows("short", 1, ["One sentence here.", "Another one there."])
    long_sec = (_windows("long", 1, ["Intro words. " * 30] * 3, section="1 Introduction")
                + _windows("long", 2, ["Method words. " * 30] * 3, section="2 Method"))
    no_sec = [p for page in (1, 2, 3) for p in _windows("nosec", page, [f"Page {page} text. " * 30] * 3)]
    params = DocParams(unit_chars=1000, min_unit_chars=100, pages_per_unit=2)
    units = doc_units(short + long_sec + no_sec, params)
    by_paper: dict[str, list] = {}
    for u in units:
        by_paper.setdefault(u.paper, []).append(u)
    assert [u.key for u in by_paper["short"]] == ["short"] and by_paper["short"][0].label == ""
    assert [u.label for u in by_paper["long"]] == ["1 Introduction", "2 Method"]
    assert [u.label for u in by_paper["nosec"]] == ["pp. 1-2", "pp. 3-4"]
    rows = sorted(int(r) for u in units for r in u.rows)
    assert rows == list(range(len(short + long_sec + no_sec)))  # every passage in exactly one unit


def test_tiny_sections_of_a_long_paper_are_joined() -> None:
    sents = [f"Sentence number {i} of a very long abstract." for i in range(60)]
    ps = []
    for i, p in enumerate(_windows("scifact:1", 1, sents)):  # SciFact passages: one "section" per sentence
        ps.append(p.model_copy(update={"section": f"s{i}"}))
    units = doc_units(ps, DocParams(unit_chars=1000, min_unit_chars=600))
    assert 2 <= len(units) <= 60 * 90 // 600 + 1
    assert all(len(u.rows) > 1 for u in units[:-1])
    assert sorted(int(r) for u in units for r in u.rows) == list(range(60))


def _fake_embeddings(texts: list[str], vocab: list[str]) -> np.ndarray:
    x = np.array([[t.lower().count(w) for w in vocab] + [0.1] for t in texts], dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_ranker_fuses_lexical_and_dense_and_keeps_bm25_alone() -> None:
    vocab = ["insulin", "tumour", "mice", "growth", "vaccine", "dose"]
    docs = {
        "a": ["Insulin lowers glucose in mice.", "The dose was small."],
        "b": ["Tumour growth slowed in mice.", "Tumour size fell."],
        "c": ["Vaccine dose schedules.", "Antibodies rose."],
    }
    passages = [p for key, sents in docs.items() for p in _windows(key, 1, sents)]
    emb = _fake_embeddings([p.text for p in passages], vocab)
    ranker = DocRanker.build(passages, emb, titles={"b": "Tumour growth in mice"})
    q = ["tumour growth in mice"]
    hits = ranker.rank(q, _fake_embeddings(q, vocab), 2)[0]
    assert [h.unit.key for h in hits] == ["b", "a"] and [h.rank for h in hits] == [1, 2]
    assert hits[0].score > hits[1].score
    assert hits[0].dense_max == pytest.approx(float((emb[2:4] @ _fake_embeddings(q, vocab)[0]).max()), abs=1e-6)
    lexical = ranker.rank(q, None, 3, dense=False)[0]
    assert lexical[0].unit.key == "b" and lexical[0].score == lexical[0].bm25


def test_dense_best_and_second_best_per_unit() -> None:
    passages = _windows("x", 1, ["a.", "b.", "c."]) + _windows("y", 1, ["d."])
    emb = np.eye(4, dtype=np.float32)
    ranker = DocRanker.build(passages, emb)
    best, second = ranker.dense_scores(np.array([[0.9, 0.2, 0.5, 0.1]], dtype=np.float32))
    assert best[0].tolist() == pytest.approx([0.9, 0.1]) and second[0].tolist() == pytest.approx([0.5, 0.1])


def test_open_search_reads_the_best_documents_and_keeps_quotes_and_pages() -> None:
    from claimscope.verify.embed import BUNDLED
    from claimscope.verify.index import EvidenceIndex

    papers = {
        "2005.13013v1": [(1, ["We use seven intermediate tasks for transfer.", "Results improve by 6.1 points."]),
                         (2, ["XNLI accuracy rises for every language.", "The cat sat on the mat."])],
        "1911.02116v2": [(1, ["XLM-R is trained on 2.5TB of CommonCrawl data.", "It covers 100 languages."])],
        "0000.00001v1": [(1, ["Protein folding is studied in yeast.", "Chaperones assist folding."])],
        "0000.00002v1": [(3, ["Soil bacteria fix nitrogen.", "Rain washes nitrate away."])],
    }
    passages = [p for key, pages in papers.items() for page, sents in pages for p in _windows(key, page, sents)]
    index = EvidenceIndex.build(passages, BUNDLED)
    docs = index.search_docs(["How many languages does XLM-R cover?"], 2)[0]
    assert docs[0].unit.paper == "1911.02116v2"
    hits = index.search_many(["How many languages does XLM-R cover?", "seven intermediate tasks"], 4, docs=2)
    assert [h.doc_rank for h in hits[0]] == [1, 1, 2, 2]
    assert hits[0][0].passage.paper == "1911.02116v2" and "100 languages" in hits[0][0].passage.text
    assert hits[1][0].passage.paper == "2005.13013v1" and hits[1][0].passage.page == 1
    for h in hits[0] + hits[1]:  # the hit is the indexed passage itself: exact text, page and span
        assert h.passage in passages
    restricted = index.search_many(["seven intermediate tasks"], 3, allowed=[{"0000.00002v1"}])[0]
    assert {h.passage.paper for h in restricted} == {"0000.00002v1"} and all(h.doc_rank == 0 for h in restricted)


def test_title_vectors_are_made_once_beside_a_persisted_index(tmp_path, monkeypatch) -> None:
    import claimscope.verify.index as mod
    from claimscope.verify.embed import BUNDLED

    passages = _windows("scifact:1", 1, ["Aspirin lowers stroke risk.", "Adults were studied."]) + _windows(
        "scifact:2", 1, ["Rain fell in Peru.", "Highlands were wet."])
    titles = {"scifact:1": "Aspirin and stroke", "scifact:2": "Rainfall in Peru"}
    first = mod.EvidenceIndex.load_or_build(tmp_path / "index", passages, BUNDLED)
    first.set_titles(titles)
    made = first.doc_ranker().title_embeddings
    assert made is not None and (tmp_path / "index" / mod.TITLES_FILE).is_file()

    calls: list[list[str]] = []
    real = mod.embed_texts
    monkeypatch.setattr(mod, "embed_texts", lambda texts, *a, **k: calls.append(texts) or real(texts, *a, **k))
    again = mod.EvidenceIndex.load_or_build(tmp_path / "index", passages, BUNDLED)
    again.set_titles(titles)
    assert np.array_equal(again.doc_ranker().title_embeddings, made) and calls == []
    again.set_titles({"scifact:1": "Another title", "scifact:2": "Rainfall in Peru"})
    again.doc_ranker()
    assert calls == [["Another title", "Rainfall in Peru"]]  # other titles: made anew
