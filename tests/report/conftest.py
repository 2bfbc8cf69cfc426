"""A realistic run directory for the report tests, built from the types (no model, no pipeline).

It mirrors the example report (`examples/assignee_report.txt`): nine claims about arXiv 2005.13013 cited as v2, of
which we hold v1 in full and v2 in part; a gap for 2310.09917 (not available offline); truncated claims with the full
sentence from the paper; a claim containing `<script>alert(1)</script>`, a pipe and a newline; and evidence holding HTML
from a PDF.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claimscope.rundir import RunDir, read_jsonl, write_json, write_jsonl
from claimscope.types import (
    AsReported,
    Checks,
    Claim,
    Evidence,
    Gap,
    ModelInfo,
    NumberCheck,
    Paper,
    PaperMeta,
    PaperRef,
    Passage,
    ReverifyDiff,
    RunManifest,
    Verdict,
    VerdictChange,
)

XSS = "<script>alert(1)</script>"
PDF_HTML = 'Table 2 <b>XNLI</b> <img src="http://evil.example/x.png" onerror="alert(2)"> acc. | 80.1'

V2 = PaperRef(arxiv_id="2005.13013", version=2)
V1 = "2005.13013v1"

# (text as in the report, truncated, full sentence from the paper or None, report's confidence)
CLAIMS = [
    ("Intermediate-task training on SQuAD, MNLI, and HellaSwag yields large target-task improvements of 8.2, 7.5, and "
     "7.0 point", True, None, 0.26),
    ("Multi-task intermediate-task training on all 9 tasks performs best, improving by 8.7 points.", False, None, 0.25),
    ("Applying intermediate-task training to BUCC and Tatoeba, the two sentence retrieval target tasks that have no "
     "training d", True,
     "Applying intermediate-task training to BUCC and Tatoeba, the two sentence retrieval target tasks that have no "
     "training data, yields dramatic improvements with almost every intermediate training configuration.", 0.29),
    ("TyDiQA shows consistent improvements | with many intermediate tasks,\nwhereas XNLI does not see benefits from "
     "intermediate", True, None, 0.17),
    ("Evaluating our best performing models for each target task on the XTREME benchmark yields an average improvement "
     "of 5.4", True,
     "Evaluating our best performing models for each target task on the XTREME benchmark yields an average improvement "
     "of 6.1 points, setting the state of the art as of writing.", 0.33),
    ("Training on English intermediate tasks outperforms the more complex alternatives of (i) continuing multilingual "
     "MLM duri " + XSS, True, None, 0.32),
    ("We use the pretrained XLM-R Large model (Conneau et al., 2020) as a starting point for all our experiments, "
     "as it curren", True,
     "We use the pretrained XLM-R Large model (Conneau et al., 2019) as a starting point for all our "
     "experiments.", 0.32),
    ("We follow a three-phase approach to training: (i) we use a publicly available MLM; (ii) we perform "
     "intermediate-task tra", True, None, 0.42),
    ("We study the effect of intermediate-task training (STILTs; Phang et al., 2018) with nine different English "
     "intermediate", True, None, 0.28),
]

# (label, confidence, [(quote, page, stance, p_support, p_contradict)], numbers status, number details, full-text label)
VERDICTS = [
    ("NOT_ENOUGH_INFO", 0.55, [("Using SQuAD for intermediate training gives the best results on question answering",
                                1, "neutral", 0.30, 0.15)], "not_found", ["8.2, 7.5, 7.0 not found in 2005.13013v1"],
     None),
    ("CONTRADICTED", 0.71, [("Multi-task - 1.6 - 0.2 - 2.3 - 2.4 - 2.6 / - 3.1 - 1.4 / - 1.7 + 1.9 / + 1.9 +18.4 "
                             "+48.3 + 6.4", 5, "contradict", 0.10, 0.71),
                            ("neither multi- task intermediate-task training nor continuing multilingual MLM "
                             "training meaningfully bolster transfer performance", 1, "contradict", 0.08, 0.64)],
     "mismatch", ["claim: 9 tasks; v1: seven intermediate tasks", "claim: 8.7 points; v1 multi-task row: + 6.4"], None),
    ("SUPPORTED", 0.83, [("Applying intermediate-task training to BUCC and Tatoeba, the two sentence retrieval target "
                          "tasks that have no training data, yields dramatic improvements with almost every "
                          "intermediate training configuration", 2, "support", 0.83, 0.02),
                         ("In particular, BUCC and Tatoeba, the two sentence retrieval tasks with no training", 5,
                          "support", 0.77, 0.03)], "not_applicable", [], "SUPPORTED"),
    ("SUPPORTED", 0.48, [("The target tasks TyDiQA, BUCC and Tatoeba see consistent gains from most or all the "
                          "intermediate tasks.", 5, "support", 0.48, 0.10),
                         (PDF_HTML, 5, "neutral", 0.20, 0.12)], "not_applicable", [], None),
    ("CONTRADICTED", 0.78, [("Evaluating our best performing models for each target task on the XTREME benchmark "
                             "yields an average improvement of 6.1 points", 2, "contradict", 0.05, 0.78),
                            ("Using our best intermediate-task models for each target task, we obtain a 5.4 point "
                             "improvement over XLM-R Large on the XTREME benchmark", 1, "support", 0.60, 0.02)],
     "mismatch", ["claim: 5.4 points; 2005.13013v1 p. 2: 6.1 points; 2005.13013v2 abstract: 5.4 points"],
     "CONTRADICTED"),
    ("NOT_ENOUGH_INFO", 0.44, [("we found that neither incorporating multilingual MLM into the intermediate-task "
                                "training", 7, "neutral", 0.25, 0.31)], "not_applicable", [], None),
    ("SUPPORTED", 0.91, [("We use the pretrained XLM-R Large model (Con- neau et al., 2019) as a starting point for "
                          "all our experiments.", 4, "support", 0.91, 0.01)], "not_applicable", [], "SUPPORTED"),
    ("SUPPORTED", 0.86, [("We propose a three-phase approach to training, il- lustrated in Figure 1: (i) we use a "
                          "publicly available model pretrained on raw multilingual text using MLM", 2, "support",
                          0.86, 0.02)], "not_applicable", [], None),
    ("CONTRADICTED", 0.74, [("We experiment with seven different in- termediate tasks, all of them with English "
                             "labeled data", 2, "contradict", 0.06, 0.74)], "mismatch",
     ["claim: nine intermediate tasks; 2005.13013v1 p. 2: seven"], None),
]


def build_example_run(root: Path) -> Path:
    """Write a complete run directory (as the pipeline would) under `root` and return it."""
    rd = RunDir(root).create()
    claims: list[Claim] = []
    for n, (text, truncated, full, conf) in enumerate(CLAIMS, 1):
        claims.append(
            Claim(
                text=text,
                source=f"assignee_report.txt:row {n}",
                cited=[V2],
                truncated=truncated,
                full_text=full,
                as_reported=AsReported(verdict="✓", confidence=conf),
            )
        )
    write_jsonl(rd.claims, claims)

    papers = [
        Paper(
            ref=PaperRef(arxiv_id="2005.13013", version=1),
            sha256="3f5a" * 16,
            source="local",
            path="papers/2005.13013v1/paper.pdf",
            fmt="pdf",
            meta=PaperMeta(
                title="English Intermediate-Task Training Improves Zero-Shot Cross-Lingual Transfer Too",
                authors=["Jason Phang", "Iacer Calixto", "Phu Mon Htut", "Yada Pruksachatkun", "Haokun Liu",
                         "Clara Vania", "Katharina Kann", "Samuel R. Bowman"],
                published="2020-05-26",
            ),
            pages=11,
        ),
        Paper(
            ref=PaperRef(arxiv_id="2005.13013", version=2),
            sha256="9c1e" * 16,
            source="local",
            path="papers/2005.13013v2/paper.md",
            fmt="markdown",
            meta=PaperMeta(title="English Intermediate-Task Training Improves Zero-Shot Cross-Lingual Transfer Too"),
            partial=True,
            pages=1,
            notes=["abstract and the first two sentences of the introduction only"],
        ),
        Paper(
            ref=PaperRef(arxiv_id="2509.23657", version=1),
            sha256="77ab" * 16,
            source="local",
            path="papers/2509.23657v1/paper.txt",
            fmt="text",
            meta=PaperMeta(
                title="Beyond English-Centric Training: How Reinforcement Learning Improves Cross-Lingual Reasoning "
                "in LLMs",
                authors=["Shulin Huang", "Yiran Ding", "Junshu Pan", "Yue Zhang"],
            ),
            partial=True,
            pages=1,
        ),
    ]
    write_jsonl(rd.papers_index, papers)

    passages: list[Passage] = []
    verdicts: list[Verdict] = []
    for claim, (label, conf, evs, num_status, num_details, ft_label) in zip(claims, VERDICTS, strict=True):
        evidence = []
        for rank, (quote, page, stance, ps, pc) in enumerate(evs, 1):
            paper = "2005.13013v2" if "5.4 point" in quote else V1
            p = Passage(paper=paper, arxiv_id="2005.13013", version=int(paper[-1]), page=page, start=0,
                        end=len(quote), text=quote)
            passages.append(p)
            evidence.append(
                Evidence(passage_id=p.id, quote=quote, paper=paper, page=page, retrieval_score=round(1 / rank, 3),
                         rank=rank, stance=stance, p_support=ps, p_contradict=pc,
                         p_neutral=round(1 - ps - pc, 3))
            )
        warnings = ["cited 2005.13013v2; only v1 is held in full (v2: abstract only)"]
        if claim.truncated:
            warnings.insert(0, "claim cut off in the report; judged for what it says")
        ft = None
        if ft_label:
            ft = Verdict(claim_id=claim.id, label=ft_label, confidence=min(0.99, conf + 0.05), evidence=evidence[:1])
        verdicts.append(
            Verdict(
                claim_id=claim.id,
                label=label,
                confidence=conf,
                probs={label: conf},
                evidence=evidence,
                checks=Checks(numbers=NumberCheck(status=num_status, details=num_details), warnings=warnings,
                              version_cited="2005.13013v2", version_used=[V1, "2005.13013v2"]),
                model="stance:bundled-minilm-xe",
                full_text_verdict=ft,
            )
        )
    write_jsonl(rd.passages, passages)
    write_jsonl(rd.verdicts, verdicts)

    write_json(
        rd.manifest,
        RunManifest(
            name="assignee_report-example",
            created="2026-11-29T12:00:00+00:00",
            input="examples/assignee_report.txt",
            title="Scaling Pretrained Model Size and Cross-Lingual Zero-Shot Reasoning Performance Gaps",
            question="Does scaling the size of the pretrained model mitigate the performance gap between English and "
            "non-English intermediate-task training on zero-shot cross-lingual reasoning tasks in XTREME-R?",
            settings={"verify": {"top_k": 8, "rrf_k": 60, "stance_model": "bundled"},
                      "retrieve": {"offline": True, "window_sentences": 2}, "report": {"max_evidence_shown": 3}},
            versions={"claimscope": "0.1.0", "python": "3.11.9", "pymupdf": "1.24.10"},
            models=[
                ModelInfo(name="all-MiniLM-L6-v2", path="bundled", sha256="53aa51172d142c89d9012cce15ae4d6c"
                          "c0ca6895895114379cacb4fab128d9db", role="embedding"),
                ModelInfo(name="stance:bundled-minilm-xe", path=None, sha256=None, role="stance"),
            ],
            timings={"retrieve": 4.21, "index": 6.83, "verify": 11.4, "report": 0.35},
            gaps=[Gap(stage="retrieve", item="2310.09917v3",
                      reason="cited by the report; not in the local papers folder and the run was offline")],
            stages_done=["retrieve", "index", "verify"],
            counts={"claims": 9, "papers": 3, "passages": len(passages)},
        ),
    )
    return rd.root


def add_optional_inputs(root: Path) -> Path:
    """Add replication.json, calibration.json and diff.json (as the replicate/calibrate/reverify stages would)."""
    (root / "replication.json").write_text(json.dumps({
        "scale": "miniature",
        "description": "Three-phase recipe on a 2-layer XLM-R with 64 training examples per task.",
        "model": "xlmr-tiny-2L", "hardware": "2 CPU cores", "seconds": 41.5,
        "rows": [
            {"task": "XNLI", "size": "tiny", "intermediate": None, "metric": "acc", "paper": 80.1, "ours": 35.2},
            {"task": "XNLI", "size": "tiny", "intermediate": "MNLI", "metric": "acc", "paper": 80.9, "ours": 37.0},
            {"task": "PAWS-X", "size": "tiny", "intermediate": "MNLI", "metric": "acc", "paper": 86.9, "ours": None,
             "note": "not run <b>here</b>"},
        ],
        "notes": ["Absolute numbers are not comparable at this scale."],
        "unknown_extra_key": 1,
    }), encoding="utf-8")
    (root / "calibration.json").write_text(json.dumps({
        "source": "SciFact dev", "ece": 0.052,
        "bins": [{"lo": i / 5, "hi": (i + 1) / 5, "mean_confidence": i / 5 + 0.1, "accuracy": min(1, i / 5 + 0.05),
                  "count": 10 + 5 * i} for i in range(5)],
    }), encoding="utf-8")
    claims = read_jsonl(root / "claims.jsonl", Claim)
    write_json(root / "diff.json", ReverifyDiff(
        previous_run="runs/assignee_report-2026-11-01", created="2026-11-29T12:30:00+00:00",
        changed=[VerdictChange(claim_id=claims[4].id, before_label="NOT_ENOUGH_INFO", before_confidence=0.41,
                               after_label="CONTRADICTED", after_confidence=0.78,
                               reason="new paper 2005.13013v1 <i>p. 2</i>")],
        new_papers=["2005.13013v1"], papers_bearing_on_no_claim=["2509.23657v1"],
    ))
    return root


@pytest.fixture
def example_run(tmp_path: Path) -> Path:
    return build_example_run(tmp_path / "run")


@pytest.fixture
def example_run_full(tmp_path: Path) -> Path:
    """The example run plus replication.json, calibration.json and diff.json."""
    return add_optional_inputs(build_example_run(tmp_path / "run_full"))
