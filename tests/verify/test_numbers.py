"""numbers.py on real phrasings from 2005.13013 v1/v2, XLM-R (1911.02116) and the example report."""

from __future__ import annotations

import pytest

from claimscope.verify.numbers import check_numbers, compare_quantities, extract_quantities

# --- evidence sentences copied from the papers ---------------------------------------------------------------------
V1_ABSTRACT_TASKS = (
    "Using a set of 7 intermediate language understanding tasks, we evaluate intermediate-task transfer in a "
    "zero-shot cross-lingual setting on 9 target tasks from the XTREME benchmark."
)
V1_BULLET_AVG = (
    "Evaluating our best performing models for each target task on the XTREME benchmark yields an average "
    "improvement of 6.1 points, setting the state of the art as of writing."
)
V1_ABSTRACT_AVG = (
    "Selecting the best intermediate task model for each target task, we obtain a 6.1 point improvement over "
    "XLM-R Large on the XTREME benchmark, setting a new state of the art."
)
V2_ABSTRACT_AVG = (
    "Using our best intermediate-task models for each target task, we obtain a 5.4 point improvement over XLM-R "
    "Large on the XTREME benchmark, setting the state of the art as of June 2020."
)
V2_ABSTRACT_TASKS = (
    "Using nine intermediate language-understanding tasks, we evaluate intermediate-task transfer in a zero-shot "
    "cross-lingual setting on the XTREME benchmark."
)
V1_SECTION_TASKS = (
    "We experiment with seven different intermediate tasks, all of them with English labeled data, as illustrated "
    "in Table 1."
)
V1_TARGET = (
    "We use the 9 target tasks from the XTREME benchmark (Hu et al., 2020), which span 40 different languages "
    "(hereafter referred to as the target languages)."
)
XLMR_ABSTRACT = (
    "Our model, dubbed XLM-R, significantly outperforms multilingual BERT (mBERT) on a variety of cross-lingual "
    "benchmarks, including +14.6% average accuracy on XNLI, +13% average F1 score on MLQA, and +2.4% F1 score on NER."
)
XLMR_CURSE = (
    "Specifically, the overall XNLI accuracy decreases from 71.8% to 67.7% as we go from XLM-7 to XLM-100."
)


def _one(text: str):
    qs = extract_quantities(text)
    assert len(qs) == 1, [q.text for q in qs]
    return qs[0]


# --- extraction: counts, units, nouns ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "value", "noun", "modifier"),
    [
        (V1_ABSTRACT_TASKS, 7, "task", "intermedi"),
        ("Using nine intermediate language-understanding tasks, we evaluate", 9, "task", "intermedi"),
        ("We experiment with seven different intermediate tasks, all of them with English labeled data", 7, "task",
         "intermedi"),
        ("We evaluate 7 intermediate tasks and investigate how intermediate-task training impacts", 7, "task",
         "intermedi"),
        ("We use the 9 target tasks from the XTREME benchmark", 9, "task", "target"),
        ("XLM-R is trained on 100 languages; we provide a full list", 100, "languag", None),
        ("Scaling to a hundred languages.", 100, "languag", None),
        ("We consider one CommonCrawl dump for English and twelve dumps for all other languages", 12, "dump", None),
        ("We train our XLM-R model for 1.5 Million updates on GPUs", 1.5e6, "updat", None),
        ("In total, we use 2 million sentences sampled across all languages", 2e6, "sentenc", None),
        ("We pick a dozen tasks at random.", 12, "task", None),
    ],
)
def test_counts_with_their_noun(text, value, noun, modifier):
    qs = [q for q in extract_quantities(text) if q.noun == noun]
    assert qs, [(q.text, q.noun) for q in extract_quantities(text)]
    assert qs[0].value == pytest.approx(value)
    if modifier:
        assert modifier in qs[0].modifiers


def test_points_and_improvement_noun_before_and_after():
    q = _one("Using SQuAD for intermediate training achieves the best results across target tasks, with an average "
             "improvement of 8.4 points on development sets.")
    assert (q.value, q.unit, q.noun, q.direction) == (8.4, "points", "improv", "increase")
    assert "averag" in q.modifiers
    q = _one(V1_ABSTRACT_AVG)
    assert (q.value, q.unit, q.noun) == (6.1, "points", "improv")
    q = _one("Multi-task intermediate-task training on all 9 tasks performs best, improving by 8.7 points.".split(
        "best, ")[1])
    assert (q.value, q.unit, q.noun, q.direction) == (8.7, "points", "improv", "increase")


def test_table_row_signed_deltas_and_f1_em_pairs():
    qs = extract_quantities("ANLI+ - 0.8 + 0.4 - 0.9 - 0.8 - 0.6 / - 0.1 - 0.6 / - 0.8 + 2.2 / + 3.1 +20.1 +49.8 + 7.7")
    assert [q.value for q in qs if q.kind == "delta"] == [-0.8, 0.4, -0.9, -0.8, 20.1, 49.8, 7.7]
    pairs = [(q.value, q.high) for q in qs if q.kind == "pair"]
    assert pairs == [(-0.6, -0.1), (-0.6, -0.8), (2.2, 3.1)]
    assert qs[0].direction == "decrease" and qs[-1].direction == "increase"
    q = _one("XLM-R 80.1 / 86.5"[6:].replace("80.1 / 86.5", "76.1 / 60.0"))
    assert (q.kind, q.value, q.high) == ("pair", 76.1, 60.0)


def test_ranges_and_thousands_separators():
    qs = extract_quantities("POS 21,253 3,974 47–20,436 tagging NER 20,000 10,000 1,000–10,000 named entity")
    assert [q.value for q in qs if q.kind == "number"] == [21253, 3974, 20000, 10000]
    assert [(q.value, q.high) for q in qs if q.kind == "range"] == [(47, 20436), (1000, 10000)]
    assert _one("ANLI+ 1,104,934").value == 1104934
    q = _one("Each model uses between 3 and 5 layers.")
    assert (q.kind, q.value, q.high, q.noun) == ("range", 3, 5, "layer")


def test_percent_deltas_with_measure():
    qs = extract_quantities(XLMR_ABSTRACT)
    assert [(q.value, q.unit, q.noun) for q in qs] == [(14.6, "%", "accuraci"), (13, "%", "score"),
                                                         (2.4, "%", "score")]
    assert all(q.direction == "increase" for q in qs)
    assert "f1" in qs[1].modifiers and "averag" in qs[1].modifiers


def test_change_from_to_has_direction_and_measured_noun():
    q = _one(XLMR_CURSE)
    assert (q.kind, q.value, q.high, q.direction, q.noun) == ("change", 71.8, 67.7, "decrease", "accuraci")
    q = _one("The overall XNLI accuracy increases from 67.7 to 71.8 with more capacity.")
    assert q.direction == "increase"


def test_sizes_and_multiples():
    assert _one("trained on 2.5TB of clean CommonCrawl data").value == pytest.approx(2.5e12)
    q = _one("using more than two terabytes of filtered CommonCrawl data")
    assert (q.value, q.unit, q.qualifier) == (2e12, "bytes", "at_least")
    q = _one("a 2× speedup")
    assert (q.kind, q.value) == ("multiple", 2)
    assert _one("10x larger corpora").unit == "x"


@pytest.mark.parametrize(
    "text",
    [
        "XLM-R (Conneau et al., 2020) is strong.",
        "Following Conneau and Lample (2019) we sample.",
        "Results are shown in Table 2 and described in Section 2.1.",
        "Intermediate tasks are described in detail in Section 2.1.",
        "See arXiv:2004.04721 for details.",
        "as it currently achieves state-of-the-art performance on many tasks.5 Details on the intermediate",
        "setting the state of the art as of June 2020.",
        "we extract the representations from the 13th self-attention layer",
        "as we go from XLM-7 to XLM-100 on V100 GPUs",
        "One might find it surprising that this works.",
    ],
)
def test_ignores_years_references_footnotes_ids(text):
    assert extract_quantities(text) == []


def test_list_of_values_shares_the_noun_even_when_cut():
    qs = extract_quantities(
        "Intermediate-task training on SQuAD, MNLI, and HellaSwag yields large target-task improvements of 8.2, "
        "7.5, and 7.0 point"
    )
    assert [q.value for q in qs] == [8.2, 7.5, 7.0]
    assert {q.noun for q in qs} == {"improv"} and {q.unit for q in qs} == {"points"}
    qs = extract_quantities("Our best models obtain 5.9 and 25.5 point gains on BUCC and Tatoeba, respectively")
    assert [(q.value, q.unit, q.noun) for q in qs] == [(5.9, "points", "improv"), (25.5, "points", "improv")]


# --- comparison: the cases the example report needs ---------------------------------------------------------------
REPORT_AVG = "Evaluating our best performing models for each target task on the XTREME benchmark yields an average " \
             "improvement of 5.4"


def test_average_improvement_v1_mismatch_v2_consistent():
    r = compare_quantities(REPORT_AVG, [V1_BULLET_AVG])
    assert r.status == "mismatch"
    m = r.matches[0]
    assert (m.claim.value, m.evidence.value, m.evidence_index) == (5.4, 6.1, 0)
    assert "5.4" in r.details[0] and "6.1" in r.details[0]
    assert check_numbers("average improvement of 5.4", [V1_ABSTRACT_AVG]).status == "mismatch"
    assert check_numbers("average improvement of 5.4", [V2_ABSTRACT_AVG]).status == "consistent"
    assert check_numbers(REPORT_AVG, [V2_ABSTRACT_AVG]).status == "consistent"


def test_task_counts_aligned_by_noun_modifiers():
    claim = "We study the effect of intermediate-task training with nine different English intermediate tasks."
    r = compare_quantities(claim, [V1_ABSTRACT_TASKS])
    assert r.status == "mismatch"
    assert r.matches[0].evidence.value == 7
    assert r.details[0].startswith("claim says nine different English intermediate tasks; evidence (passage 1) says 7")
    assert check_numbers(claim, [V2_ABSTRACT_TASKS]).status == "consistent"
    assert check_numbers(claim, [V1_SECTION_TASKS]).status == "mismatch"  # "seven different intermediate tasks"
    # the report's cut-off version still aligns with the intermediate-task count
    cut = "We study the effect of intermediate-task training (STILTs; Phang et al., 2018) with nine different " \
          "English intermediate"
    assert check_numbers(cut, [V1_ABSTRACT_TASKS]).status == "mismatch"
    assert check_numbers(cut, [V2_ABSTRACT_TASKS]).status == "consistent"


def test_target_tasks_not_confused_with_intermediate_tasks():
    r = compare_quantities("We evaluate on 9 target tasks.", [V1_ABSTRACT_TASKS])
    assert r.status == "consistent"
    assert r.matches[0].evidence.noun == "task" and "target" in r.matches[0].evidence.modifiers
    assert check_numbers("The target tasks span 40 languages.", [V1_TARGET]).status == "consistent"
    assert check_numbers("The target tasks span 33 languages.", [V1_TARGET]).status == "mismatch"


def test_evidence_index_points_to_the_right_passage():
    r = compare_quantities("Using nine intermediate tasks helps.", [V1_TARGET, V2_ABSTRACT_TASKS])
    assert r.status == "consistent" and r.matches[0].evidence_index == 1
    assert "passage 2" in r.details[0]


def test_direction_reversal_is_a_mismatch():
    r = compare_quantities("XNLI accuracy increases from 67.7% to 71.8% when going from XLM-7 to XLM-100.",
                           [XLMR_CURSE])
    assert r.status == "mismatch" and "opposite direction" in r.details[0]
    assert check_numbers("XNLI accuracy decreases from 71.8% to 67.7%.", [XLMR_CURSE]).status == "consistent"
    # a drop reported as an improvement
    assert check_numbers("SQuAD improves XNLI accuracy by 1.4 points.", ["SQuAD - 1.4 XNLI accuracy"]).status in (
        "mismatch", "not_found")


def test_percent_claims_against_xlmr():
    assert check_numbers("XLM-R improves XNLI average accuracy by 14.6% over mBERT.", [XLMR_ABSTRACT]).status == \
        "consistent"
    assert check_numbers("XLM-R gains +13% average F1 score on MLQA.", [XLMR_ABSTRACT]).status == "consistent"
    assert check_numbers("XLM-R gains +15% average F1 score on MLQA.", [XLMR_ABSTRACT]).status == "mismatch"


def test_rounding_and_fraction_tolerance():
    assert check_numbers("an average improvement of 6.10 points", [V1_BULLET_AVG]).status == "consistent"
    assert check_numbers("XLM-R obtains 80.9% accuracy on XNLI", ["XLM-R obtains an accuracy of 0.809 on XNLI"]) \
        .status == "consistent"
    assert check_numbers("an average improvement of 6.2 points", [V1_BULLET_AVG]).status == "mismatch"


def test_qualified_and_size_claims():
    ev = "We train on 2.5 TB of newly created clean CommonCrawl data in 100 languages."
    assert check_numbers("trained on more than two terabytes of data", [ev]).status == "consistent"
    assert check_numbers("trained on a hundred languages", [ev]).status == "consistent"
    assert check_numbers("with an improvement of at least 2 points on TyDiQA",
                         ["every combination has strictly positive transfer to TyDiQA with an improvement of at least "
                          "2 points"]).status == "consistent"


def test_no_numbers_and_nothing_aligned():
    assert check_numbers("Intermediate-task training helps zero-shot transfer.", [V1_BULLET_AVG]).status == \
        "not_applicable"
    r = check_numbers("The model has 550 million parameters.", [V1_ABSTRACT_TASKS])
    assert r.status == "not_found" and r.details
    assert check_numbers("improving by 8.7 points", []).status == "not_found"


# v1 p.6, as `claimscope extract` takes it from the PDF: a claim that is the paper's own sentence must agree with it
V1_P6_GAINS = (
    "On the other hand, our best models show gains in 8 out of the 9 XTREME tasks relative to both baseline "
    "implementations, attaining an average score of 74.2 across target tasks, a 6.1 point improvement over the "
    "previous best reported average score of 68.1."
)
V1_P6_QA = (
    "We also observed gains in question-answering tasks, particularly using SQuAD as an intermediate task, with "
    "absolute gains of 0.6 F1 for XQuAD, 0.7 F1 for MLQA, and 5.7 for F1 TyDiQA, again over the best available "
    "baseline scores."
)


@pytest.mark.parametrize("sentence", [V1_P6_GAINS, V1_P6_QA])
def test_bare_numbers_align_with_the_same_phrase_not_a_nearby_count(sentence):
    # "8" (no noun) used to be aligned with "9 XTREME tasks", and "5.7" with "0.6 F1": a verbatim claim contradicted
    r = compare_quantities(sentence, [sentence])
    assert r.status == "consistent", r.details
    assert all(m.status == "match" and m.evidence is not None and m.evidence.text == m.claim.text for m in r.matches)


def test_same_phrase_with_another_value_is_still_a_mismatch():
    r = compare_quantities(V1_P6_GAINS.replace("gains in 8 out", "gains in 7 out"), [V1_P6_GAINS])
    assert r.status == "mismatch"
    assert next(m for m in r.matches if m.status == "mismatch").evidence.text == "8"
