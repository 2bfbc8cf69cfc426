"""Metrics on known inputs: values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from claimscope.replicate import metrics


def test_squad_em_f1_hand_computed() -> None:
    golds = {"q1": ["Eiffel Tower!", "the tower"], "q2": ["the Eiffel Tower"], "q3": ["1889"]}
    preds = {"q1": "the Eiffel Tower", "q2": "Eiffel Tower in Paris"}  # q3 unanswered
    s = metrics.qa_scores(preds, golds)
    # q1: exact after normalisation (EM 1, F1 1); q2: P = 2/4, R = 2/2 -> F1 = 2/3, EM 0; q3: 0, 0
    assert s["exact_match"] == pytest.approx(100 / 3)
    assert s["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)


def test_mlqa_language_specific_normalisation() -> None:
    # German articles are removed by MLQA's normalisation, not by SQuAD's
    assert metrics.qa_exact("der Hund", "Hund", "de", "mlqa") == 1.0
    assert metrics.qa_exact("der Hund", "Hund", "de", "squad") == 0.0
    assert metrics.qa_f1("der Hund", "Hund", "de", "squad") == pytest.approx(2 / 3)
    # Chinese: characters are tokens (mixed segmentation): 2 of 4 predicted chars match, both gold chars found
    assert metrics.qa_f1("北京大学", "北京", "zh", "mlqa") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert metrics.qa_f1("北京大学", "北京", "zh", "squad") == 0.0
    # Unicode punctuation is stripped (the SQuAD script only strips ASCII punctuation)
    assert metrics.qa_exact("«Berlin»", "Berlin", "de", "mlqa") == 1.0
    assert metrics.qa_exact("«Berlin»", "Berlin", "de", "squad") == 0.0


def test_tagging_entity_f1_and_token_accuracy() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"]]
    pred = [["B-PER", "I-PER", "O", "O"]]
    assert metrics.tagging_f1(pred, gold) == pytest.approx(100 * 2 * 1 * 0.5 / 1.5)
    # a wrong span boundary is a miss for entity F1
    assert metrics.tagging_f1([["B-PER", "O", "O", "B-LOC"]], gold) == pytest.approx(50.0)
    # plain tags (POS): token accuracy
    assert metrics.tagging_f1([["NOUN", "VERB", "ADJ"]], [["NOUN", "VERB", "NOUN"]]) == pytest.approx(200 / 3)


def test_retrieval_metrics() -> None:
    rng = np.random.default_rng(0)
    tgt = rng.normal(size=(5, 8))
    src = tgt + 0.01 * rng.normal(size=(5, 8))
    assert metrics.tatoeba_accuracy(src, tgt) == 100.0
    assert metrics.tatoeba_accuracy(src, tgt[[1, 0, 2, 3, 4]]) == 60.0
    cands = [("s1", "t1", 0.9), ("s2", "t2", 0.8), ("s3", "t9", 0.7), ("s4", "t4", 0.2)]
    gold = {("s1", "t1"), ("s2", "t2"), ("s4", "t4")}
    # threshold 0.8: P = 1, R = 2/3 -> F1 0.8; threshold 0.2: P = 3/4, R = 1 -> F1 6/7 (best)
    assert metrics.bucc_f1_at(cands, gold, 0.8) == pytest.approx(80.0)
    th, f1 = metrics.bucc_best_threshold(cands, gold)
    assert th == 0.2 and f1 == pytest.approx(100 * 6 / 7)
    assert metrics.accuracy([1, 0, 1], [1, 1, 1]) == pytest.approx(200 / 3)
