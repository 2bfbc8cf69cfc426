"""`claimscope eval scifact` and `claimscope verify-scifact` called through main()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claimscope.cli import main

CORPUS = [
    {"doc_id": 11, "title": "Aspirin and stroke", "abstract": ["We studied 900 adults.",
                                                               "Aspirin reduces the risk of stroke in adults."]},
    {"doc_id": 12, "title": "Rainfall in Peru", "abstract": ["Rainfall in Peru was measured.", "It rained a lot."]},
    {"doc_id": 13, "title": "Statins", "abstract": ["Statins lower cholesterol levels.", "Side effects were rare."]},
]
CLAIMS = [
    {"id": 1, "claim": "Aspirin reduces stroke risk in adults.", "cited_doc_ids": [11],
     "evidence": {"11": [{"sentences": [1], "label": "SUPPORT"}]}},
    {"id": 2, "claim": "Statins lower cholesterol.", "cited_doc_ids": [13],
     "evidence": {"13": [{"sentences": [0], "label": "SUPPORT"}]}},
]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_scifact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gold = _write(tmp_path / "gold.jsonl", CLAIMS)
    corpus = _write(tmp_path / "corpus.jsonl", CORPUS)
    pred = _write(tmp_path / "pred.jsonl", [
        {"id": 1, "evidence": {"11": {"label": "SUPPORT", "sentences": [1], "confidence": 0.9},
                               "12": {"label": "SUPPORT", "sentences": [0], "confidence": 0.6}}},
        {"id": 2, "evidence": {}}])
    assert main(["-q", "eval", "scifact", "--pred", str(pred), "--gold", str(gold), "--corpus", str(corpus),
                 "--out", str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["abstract_label_only_precision"] == pytest.approx(0.5) and m["abstract_label_only_recall"] == 0.5
    assert m["predicted_abstract_ece"] == pytest.approx((0.1 + 0.6) / 2)  # 0.9 right, 0.6 wrong, separate bins
    assert "abstract_label_only_f1" in capsys.readouterr().out
    bad = _write(tmp_path / "bad.jsonl", [{"id": 1, "evidence": {"99": {"label": "SUPPORT", "sentences": []}}}])
    assert main(["-q", "eval", "scifact", "--pred", str(bad), "--gold", str(gold), "--corpus", str(corpus)]) == 2


@pytest.mark.parametrize("oracle", [True, False])
def test_verify_scifact_lexical(tmp_path: Path, oracle: bool) -> None:
    corpus = _write(tmp_path / "corpus.jsonl", CORPUS)
    claims = _write(tmp_path / "claims.jsonl", CLAIMS)
    out = tmp_path / "preds.jsonl"
    args = ["-q", "verify-scifact", "--corpus", str(corpus), "--claims", str(claims), "--out", str(out),
            "--stance-model", "lexical", "--top-docs", "1"] + (["--oracle-abstracts"] if oracle else [])
    assert main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2]
    # lexical overlap + the untrained rule: the matching abstract is SUPPORT, with its matching sentence first
    assert rows[0]["evidence"]["11"]["label"] == "SUPPORT" and rows[0]["evidence"]["11"]["sentences"][0] == 1
    assert 0.5 < rows[0]["evidence"]["11"]["confidence"] <= 1.0
    assert "13" in rows[1]["evidence"]
