"""Claims input: the example report, JSON, CSV and SciFact JSONL, and clear errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claimscope.errors import BadClaimsFile
from claimscope.verify.claims_io import parse_ref, read_claims, truncation_kind

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "examples" / "assignee_report.txt"


def test_example_report_has_nine_claims_with_as_reported_fields():
    parsed = read_claims(REPORT)
    assert len(parsed.claims) == 9
    assert parsed.title.startswith("Scaling Pretrained Model Size")
    assert parsed.question.startswith("Does scaling the size of the pretrained model")
    assert parsed.question.endswith("XTREME-R?")
    confidences = [c.as_reported.confidence for c in parsed.claims]
    assert confidences == [0.26, 0.25, 0.29, 0.17, 0.33, 0.32, 0.32, 0.42, 0.28]
    assert {c.as_reported.verdict for c in parsed.claims} == {"verified"}
    assert len({c.id for c in parsed.claims}) == 9


def test_example_report_references_keep_versions():
    refs = read_claims(REPORT).references
    assert [r.key for r in refs] == ["2509.23657v1", "2005.13013v2", "2310.09917v3"]
    claim = read_claims(REPORT).claims[0]
    assert [r.key for r in claim.cited] == ["2509.23657v1", "2005.13013v2", "2310.09917v3"]


def test_example_report_truncation_flags():
    claims = read_claims(REPORT).claims
    flags = [c.truncated for c in claims]
    # only "Multi-task ... improving by 8.7 points." is a complete sentence
    assert flags == [True, False, True, True, True, True, True, True, True]
    kinds = [truncation_kind(c.text) for c in claims]
    assert kinds[2] == "mid-word"  # "... that have no training d"
    assert kinds[5] == "mid-word"  # "... multilingual MLM duri"
    assert kinds[4] == "mid-sentence"  # "... an average improvement of 5.4"


def test_report_notes_flag_the_invented_quality_score():
    notes = read_claims(REPORT).notes
    assert any("quality score" in n for n in notes)
    assert any("8 of 9 claims are cut off" in n for n in notes)


@pytest.mark.parametrize("text,key", [
    ("http://arxiv.org/abs/2005.13013v2", "2005.13013v2"),
    ("<https://arxiv.org/pdf/2005.13013v1>", "2005.13013v1"),
    ("arXiv:2005.13013", "2005.13013"),
    ("2005.13013v1", "2005.13013v1"),
    ("https://arxiv.org/abs/hep-th/9901001v3", "hep-th/9901001v3"),
])
def test_parse_ref(text, key):
    assert parse_ref(text).key == key


def test_json_csv_and_scifact_inputs(tmp_path):
    j = tmp_path / "claims.json"
    j.write_text(json.dumps({"question": "Q?", "claims": [
        {"id": "a", "claim": "XLM-R uses 100 languages.", "cited": ["1911.02116"], "verified": True,
         "confidence": 0.9}]}))
    parsed = read_claims(j)
    assert parsed.question == "Q?"
    assert parsed.claims[0].id == "a" and parsed.claims[0].cited[0].key == "1911.02116"
    assert parsed.claims[0].as_reported.verdict == "verified"

    c = tmp_path / "claims.csv"
    c.write_text("claim,cited,confidence\nSeven intermediate tasks are used.,2005.13013v1,42%\n,,\n")
    rows = read_claims(c).claims
    assert len(rows) == 1 and rows[0].as_reported.confidence == pytest.approx(0.42)

    s = tmp_path / "dev.jsonl"
    s.write_text(json.dumps({"id": 7, "claim": "A claim.", "evidence": {"1": [{"sentences": [0],
                                                                             "label": "CONTRADICT"}]},
                             "cited_doc_ids": [1]}) + "\n")
    sc = read_claims(s).claims
    assert sc[0].id == "7" and sc[0].gold_label == "CONTRADICTED"


@pytest.mark.parametrize("name,content,problem", [
    ("empty.txt", "", "empty"),
    ("notable.txt", "Title\n\nNo table here.\n", "no claims table"),
    ("bad.json", "{not json", "not valid JSON"),
    ("nocol.csv", "foo,bar\n1,2\n", "no 'claim' or 'text' column"),
    ("conf.txt", "T\n\nClaim\tVerified\tConfidence\nA claim.\t✓\thigh\n", "confidence 'high'"),
    ("weird.xlsx", "x", "unknown claims format"),
])
def test_bad_claims_files_name_the_file_and_problem(tmp_path, name, content, problem):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(BadClaimsFile) as err:
        read_claims(path)
    assert name in str(err.value) and problem in str(err.value)
    assert "\n" not in str(err.value)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Claim\tVerified\nCaf\xe9 claim.\t\u2713\n".encode("latin-1", errors="replace"))
    with pytest.raises(BadClaimsFile, match="not UTF-8"):
        read_claims(path)


def test_cited_papers_column_aliases_and_unused_columns_are_named(tmp_path):
    table = tmp_path / "claims.csv"
    table.write_text('Claim,Paper,reviewer\n"XLM-R Large is the starting point.",2005.13013v1,ana\n'
                     '"Nine intermediate tasks are studied.","arXiv:2005.13013v2; 1911.02116",bo\n')
    parsed = read_claims(table)
    assert [[r.key for r in c.cited] for c in parsed.claims] == [["2005.13013v1"], ["2005.13013v2", "1911.02116"]]
    assert parsed.notes == [next(n for n in parsed.notes if "reviewer" in n)] and "claims.csv" in parsed.notes[0]
    records = tmp_path / "claims.json"
    records.write_text(json.dumps([{"claim": "A claim.", "arxiv_id": "2005.13013v1", "page": 3}]))
    parsed = read_claims(records)
    assert parsed.claims[0].cited[0].key == "2005.13013v1" and "page" in parsed.notes[0]
    known = tmp_path / "known.csv"
    known.write_text('claim,cited,verdict,confidence,id\n"A claim.",2005.13013v1,verified,0.4,c1\n')
    assert read_claims(known).notes == []


def test_claimscope_claims_jsonl_as_extract_writes_it(tmp_path):
    from claimscope.rundir import write_jsonl
    from claimscope.types import Claim, PaperRef

    claims = [Claim(id="c1", text="XLM-R Large is the starting point.", source="2005.13013v1 p.2",
                    cited=[PaperRef(arxiv_id="2005.13013", version=1)])]
    for name in ("claims.jsonl", "claims"):  # `extract --out claims` writes no extension
        write_jsonl(tmp_path / name, claims)
        parsed = read_claims(tmp_path / name)
        assert parsed.fmt == "jsonl" and parsed.claims == claims
    scifact = tmp_path / "scifact.jsonl"
    scifact.write_text('{"id": 3, "claim": "A claim.", "evidence": {}, "cited_doc_ids": [1]}\n')
    assert read_claims(scifact).fmt == "scifact"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "A claim.", "cited": "not a list"}\n')
    with pytest.raises(BadClaimsFile, match=r"bad.jsonl:1: .*cited"):
        read_claims(bad)


def test_a_named_format_reads_a_file_of_any_extension(tmp_path):
    table = tmp_path / "claims.dat"
    table.write_text('claim,cited\n"XLM-R Large is the starting point.",2005.13013v1\n')
    with pytest.raises(BadClaimsFile, match="unknown claims format"):
        read_claims(table)
    assert [c.cited[0].key for c in read_claims(table, "csv").claims] == ["2005.13013v1"]


REVIEW = """# Literature review: intermediate-task training for cross-lingual transfer

Key findings, as we read them. Earlier work is summarised in the survey.

1. Selecting the best intermediate task for each target task gives a 6.1 point improvement over XLM-R Large on
   XTREME (arXiv:2005.13013v1).
2. Intermediate-task training helps the sentence retrieval tasks BUCC and Tatoeba a lot [2005.13013].
- XLM-R was pretrained on 2.5TB of filtered CommonCrawl data in 100 languages (arXiv 1911.02116).
- **Multi-task** intermediate training is clearly better than any single intermediate task.
- Too short to check.

Phang et al. report that MLM co-training does not help (https://arxiv.org/abs/2005.13013v2). We agree.

## References

- Phang et al. 2020. https://arxiv.org/abs/2005.13013v1
"""


def test_a_report_without_a_claims_table_is_read_as_prose(tmp_path):
    # before: "no claims table found (expected a tab-separated header line starting 'Claim')"
    path = tmp_path / "review.md"
    path.write_text(REVIEW)
    got = read_claims(path)
    texts = [c.text for c in got.claims]
    assert texts == [
        "Selecting the best intermediate task for each target task gives a 6.1 point improvement over XLM-R Large on "
        "XTREME.",
        "Intermediate-task training helps the sentence retrieval tasks BUCC and Tatoeba a lot.",
        "XLM-R was pretrained on 2.5TB of filtered CommonCrawl data in 100 languages.",
        "Multi-task intermediate training is clearly better than any single intermediate task.",
        "Phang et al. report that MLM co-training does not help.",
    ]
    assert [[r.key for r in c.cited] for c in got.claims] == [
        ["2005.13013v1"], ["2005.13013"], ["1911.02116"], ["2005.13013v1"], ["2005.13013v2"]]  # 4th: the References
    assert [c.source for c in got.claims] == [f"review.md:{n}" for n in (5, 7, 8, 9, 12)]
    assert got.title == "Literature review: intermediate-task training for cross-lingual transfer"
    assert not any(c.truncated for c in got.claims) and not any(c.as_reported for c in got.claims)
    assert any("no claims table: 5 claims" in n for n in got.notes)


def test_a_markdown_claims_table_with_its_own_citations(tmp_path):
    path = tmp_path / "table.md"
    path.write_text("# Report\n\n| Claim | Paper | Verified | Confidence |\n|---|---|:-:|---:|\n"
                    "| BUCC and Tatoeba improve with intermediate training. | arXiv:2005.13013v1 | ✓ | 42% |\n"
                    "| XLM-R covers 100 languages. | | ✗ | 0.3 |\n\nReferences\nhttps://arxiv.org/abs/2005.13013v2\n")
    claims = read_claims(path).claims
    assert [c.text for c in claims] == ["BUCC and Tatoeba improve with intermediate training.",
                                        "XLM-R covers 100 languages."]
    assert [[r.key for r in c.cited] for c in claims] == [["2005.13013v1"], ["2005.13013v2"]]
    assert [(c.as_reported.verdict, c.as_reported.confidence) for c in claims] == [("verified", 0.42),
                                                                                    ("not verified", 0.3)]


@pytest.mark.parametrize("text", [
    "在XTREME基准上，使用最佳中间任务模型可以比XLM-R Large提高6.1个百分点。",
    "中間タスク学習はXNLIを改善しますか？",
    "Das ist ein vollständiger Satz!",
    "「中間タスク学習は有効である。」",
    "Der Satz endet mit einem Zitat.“",
])
def test_sentences_ending_in_other_scripts_are_complete(text):
    # a Chinese or Japanese full stop (。), full-width ？/！ or a closing quote after the stop ends a sentence; such
    # claims were flagged 'cut off mid-sentence' and the report said so in every output
    assert truncation_kind(text) is None


def test_cut_claim_in_another_script_is_still_cut():
    assert truncation_kind("在XTREME基准上，使用最佳中间任务模型可以比") == "mid-sentence"


def test_claims_a_user_wrote_are_not_cut_off_for_lack_of_a_full_stop(tmp_path):
    # before: every CSV/JSON claim without a final period was marked "cut off in the report" (✂)
    path = tmp_path / "claims.csv"
    path.write_text("claim\n"
                    "Intermediate-task training gives moderate improvements on question answering tasks\n"
                    "The largest gains are on TyDiQA\n"
                    "Neither approach outperforms continuing multilingual MLM duri\n"
                    "MNLI helps XNLI in some languages...\n")
    got = [(c.text.split()[-1], c.truncated) for c in read_claims(path).claims]
    assert got == [("tasks", False), ("TyDiQA", False), ("duri", True), ("languages...", True)]
    # the machine-written report's table cuts at a fixed length: there any unfinished ending counts (unchanged)
    assert truncation_kind("Intermediate-task training gives moderate improvements on question answering tasks") == (
        "mid-sentence")
