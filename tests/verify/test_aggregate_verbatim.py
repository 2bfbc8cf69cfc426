"""A claim that is one of the paper's own sentences is SUPPORTED by that paper (verify.aggregate._stated_verbatim)."""

from __future__ import annotations

from pathlib import Path

from claimscope.cli import main
from claimscope.rundir import read_jsonl, write_jsonl
from claimscope.types import Claim, Evidence, Label, PaperRef, Verdict
from claimscope.verify.aggregate import ScoredHit, _stated_verbatim

ROOT = Path(__file__).resolve().parents[2]
# 2005.13013v1 as PyMuPDF reads it: the abstract's last sentence runs into the next heading; p.2 has a bulleted list
V1_P1 = ("Selecting the best intermediate task model for each target task, we obtain a 6.1 point improvement over "
         "XLM-R Large on the XTREME benchmark, setting a new state of the art. Finally, we show that neither multi-"
         "task intermediate-task training nor continuing multilingual MLM during intermediate-task training offer "
         "significant improvements.\n\n1 Introduction")
V1_P2 = ("• Neither continuing multilingual MLM training during intermediate-task training nor multi-task training "
         "meaningfully bolster transfer performance.\n\n2 Approach")
NEITHER = ("Finally, we show that neither multi-task intermediate-task training nor continuing multilingual MLM during "
           "intermediate-task training offer significant improvements.")
BULLET = ("Neither continuing multilingual MLM training during intermediate-task training nor multi-task training "
          "meaningfully bolster transfer performance.")


def _hit(text: str) -> ScoredHit:
    return ScoredHit(evidence=Evidence(passage_id="p", quote=text[:80], paper="2005.13013v1", page=1), relevance=0.9,
                     text=text)


def test_whole_sentences_across_pdf_line_breaks_hyphens_and_bullets():
    hits = [_hit(V1_P2), _hit(V1_P1)]
    assert _stated_verbatim(NEITHER, hits) is hits[1]
    assert _stated_verbatim(BULLET, hits) is hits[0]
    assert _stated_verbatim(NEITHER.replace("neither", "both").replace(" nor ", " and "), hits) is None


def test_a_claim_quoted_inside_a_longer_sentence_or_a_short_fragment_is_left_to_the_model():
    quoted = _hit("Earlier work reported that neither multi-task intermediate-task training nor continuing "
                  "multilingual MLM during intermediate-task training offer significant improvements.")
    assert _stated_verbatim(NEITHER.replace("Finally, we show that n", "N"), [quoted]) is None
    assert _stated_verbatim("Table 2.", [_hit("See Table 2. More results follow.")]) is None


def test_claims_extracted_from_the_paper_are_supported_by_it(tmp_path):
    # before: the stance model read these two sentences of v1 against themselves as CONTRADICTED (0.62 / 0.68)
    claims = [Claim(id=f"c{i}", text=t, source="2005.13013v1", cited=[PaperRef(arxiv_id="2005.13013", version=1)])
              for i, t in enumerate([NEITHER, BULLET])]
    write_jsonl(tmp_path / "claims.jsonl", claims)
    out = tmp_path / "run"
    assert main(["-q", "verify", str(out), "--claims", str(tmp_path / "claims.jsonl"), "--papers",
                 str(ROOT / "examples" / "papers"), "--cache", str(tmp_path / "cache")]) == 0
    verdicts = read_jsonl(out / "verdicts.jsonl", Verdict)
    assert [v.label for v in verdicts] == [Label.SUPPORTED, Label.SUPPORTED]
    for v in verdicts:
        assert v.confidence > 0.9 and v.checks.version_used[0] == "2005.13013v1"
        assert any("states the claim word for word" in w for w in v.checks.warnings), v.checks.warnings


def test_a_verbatim_claim_read_as_supported_keeps_the_contradiction_mass_too(tmp_path):
    # v1's abstract sentence, cited without a version: the model already says SUPPORTED; the rule adds P(CONTRADICTED)
    text = ("Using a set of 7 intermediate language understanding tasks, we evaluate intermediate-task transfer in a "
            "zero-shot cross-lingual setting on 9 target tasks from the XTREME benchmark.")
    claim = Claim(id="c", text=text, source="x", cited=[PaperRef(arxiv_id="2005.13013")])
    write_jsonl(tmp_path / "claims.jsonl", [claim])
    out = tmp_path / "run"
    assert main(["-q", "verify", str(out), "--claims", str(tmp_path / "claims.jsonl"), "--papers",
                 str(ROOT / "examples" / "papers"), "--cache", str(tmp_path / "cache")]) == 0
    (v,) = read_jsonl(out / "verdicts.jsonl", Verdict)
    assert v.label == Label.SUPPORTED and v.probs["CONTRADICTED"] == 0.0 and v.confidence > 0.9
    assert "2005.13013v1 states the claim word for word (p.1)" in v.checks.warnings
