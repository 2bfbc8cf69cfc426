"""`claimscope eval scifact` on wrong inputs: one error line naming the file and the problem, never a traceback or
a table of zeros."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claimscope.cli import main

GOLD = [
    {"id": 1, "claim": "Aspirin reduces stroke risk in adults.", "cited_doc_ids": [11],
     "evidence": {"11": [{"sentences": [1], "label": "SUPPORT"}]}},
    {"id": 2, "claim": "Statins lower cholesterol.", "cited_doc_ids": [13],
     "evidence": {"13": [{"sentences": [0], "label": "SUPPORT"}]}},
]
PRED = [{"id": 1, "evidence": {"11": {"label": "SUPPORT", "sentences": [1]}}}, {"id": 2, "evidence": {}}]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _eval(pred: Path, gold: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["-q", "eval", "scifact", "--pred", str(pred), "--gold", str(gold)])
    out = capsys.readouterr()
    return rc, out.out, out.err.strip()


def test_the_gold_file_given_as_predictions_is_named_as_such(tmp_path, capsys):
    gold = _write(tmp_path / "gold.jsonl", GOLD)
    rc, out, err = _eval(gold, gold, capsys)
    assert rc == 2 and not out and "\n" not in err and "Traceback" not in err
    assert f"{gold}:1" in err and "gold" in err and "predictions" in err


def test_a_prediction_with_a_bad_label_names_the_file_and_line(tmp_path, capsys):
    gold = _write(tmp_path / "gold.jsonl", GOLD)
    pred = _write(tmp_path / "pred.jsonl", [PRED[0], {"id": 2, "evidence": {"13": {"label": "NEI"}}}])
    rc, out, err = _eval(pred, gold, capsys)
    assert rc == 2 and not out and "\n" not in err and f"{pred}:2" in err and "'NEI'" in err


@pytest.mark.parametrize("which", ["pred", "gold"])
def test_an_empty_file_is_an_error_not_a_table_of_zeros(tmp_path, capsys, which):
    gold = _write(tmp_path / "gold.jsonl", GOLD)
    pred = _write(tmp_path / "pred.jsonl", PRED)
    empty = {"pred": pred, "gold": gold}[which]
    empty.write_text("\n")
    rc, out, err = _eval(pred, gold, capsys)
    assert rc == 2 and not out and "\n" not in err and f"{empty}:" in err and "empty" in err


def test_prediction_ids_missing_from_gold_name_the_prediction_file(tmp_path, capsys):
    gold = _write(tmp_path / "gold.jsonl", GOLD)
    pred = _write(tmp_path / "pred.jsonl", [*PRED, {"id": 7, "evidence": {}}])
    rc, out, err = _eval(pred, gold, capsys)
    assert rc == 2 and not out and f"{pred}:" in err and "[7]" in err and "gold" in err


def test_gold_claims_without_a_prediction_are_scored_as_empty_and_said(tmp_path, capsys):
    gold = _write(tmp_path / "gold.jsonl", GOLD)
    pred = _write(tmp_path / "pred.jsonl", PRED[:1])
    rc, out, err = _eval(pred, gold, capsys)
    assert rc == 0 and "abstract_label_only_recall           0.5000" in out
    said = " ".join((out + err).split())
    assert "1 of 2 gold claims have no prediction" in said


def test_a_gold_file_without_labels_is_refused(tmp_path, capsys):
    """SciFact's claims_test.jsonl has no evidence field: scoring against it gave a table of zeros."""
    gold = _write(tmp_path / "claims_test.jsonl", [{"id": g["id"], "claim": g["claim"]} for g in GOLD])
    pred = _write(tmp_path / "pred.jsonl", PRED)
    rc, out, err = _eval(pred, gold, capsys)
    assert rc == 2 and not out and f"{gold}" in err and "no gold labels" in err


def test_a_claim_predicted_twice_is_refused(tmp_path, capsys):
    """Two rows for one claim (two prediction files concatenated): the second silently replaced the first."""
    gold = _write(tmp_path / "gold.jsonl", GOLD)
    pred = _write(tmp_path / "pred.jsonl", [*PRED, {"id": 1, "evidence": {}}])
    rc, out, err = _eval(pred, gold, capsys)
    assert rc == 2 and not out and f"{pred}:3" in err and "claim 1" in err and "line 1" in err


@pytest.mark.parametrize("which", ["pred", "gold"])
def test_a_claim_id_that_is_no_number_names_the_line(tmp_path, capsys, which):
    gold = _write(tmp_path / "gold.jsonl", GOLD)
    pred = _write(tmp_path / "pred.jsonl", PRED)
    bad = {"pred": pred, "gold": gold}[which]
    rows = [json.loads(x) for x in bad.read_text().splitlines()]
    rows[1]["id"] = "abc"
    _write(bad, rows)
    rc, out, err = _eval(pred, gold, capsys)
    assert rc == 2 and not out and f"{bad}:2" in err and "'abc' is not a whole number" in err
