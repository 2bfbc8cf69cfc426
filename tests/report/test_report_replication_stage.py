"""The report reads replication.json as the replicate stage writes it (miniature summary and full-scale cells)."""

from __future__ import annotations

import json
from pathlib import Path

from claimscope.report_templates.context import ReplicationSummary

ROOT = Path(__file__).resolve().parents[2]
MINIATURE = ROOT / "benchmarks" / "results" / "miniature" / "replication.json"


def test_miniature_summary_becomes_rows_with_published_gaps_beside():
    summary = ReplicationSummary.model_validate_json(MINIATURE.read_text())
    assert summary.scale == "miniature" and summary.hardware == "NVIDIA H200"
    gaps = [r for r in summary.rows if r.metric == "gap (en − rest)" and r.ours is not None]
    sizes = {r.size.split()[0] for r in gaps}
    assert sizes == {"xxs", "xs", "s"}
    raw = json.loads(MINIATURE.read_text())
    xs = next(s for s in raw["summary"] if s["size"] == "xs" and s["target"] == "debsec")
    row = next(r for r in gaps if r.size.startswith("xs") and r.task == "debsec" and r.intermediate is None)
    assert row.ours == round(xs["baseline_gap"]["mean"], 2)
    published = [r for r in summary.rows if r.task.startswith("XNLI (published")]
    assert [r.paper for r in published] == [16.5, 10.3, 8.8] and all(r.ours is None for r in published)


def test_full_scale_cells_carry_the_paper_number_beside_ours():
    data = {"kind": "claimscope.replication", "version": 1, "scale": "full", "recipe": {"model": "xlm-roberta-large"},
            "environment": {"gpu": "NVIDIA H200"}, "wall_seconds": 12.0,
            "cells": [{"intermediate": "squad", "mlm": False, "seed": 1, "target": "xquad", "metric": "f1",
                       "avg": 77.1, "gap": 9.0, "paper": {"avg": 77.2, "delta": 1.1}}]}
    summary = ReplicationSummary.model_validate(data)
    (row,) = summary.rows
    assert (row.task, row.intermediate, row.paper, row.ours) == ("xquad", "squad", 77.2, 77.1)
    assert summary.model == "xlm-roberta-large" and summary.scale == "full"


def test_miniature_rows_go_from_the_smallest_model_up():
    """The question is whether the gap shrinks as the model grows, so the rows (and the plot) run from the smallest
    model to the largest, whatever order the replicate stage stored them in (its file has xs, s, xxs)."""
    raw = json.loads(MINIATURE.read_text())
    assert [s["size"] for s in raw["summary"]][::2] == ["xs", "s", "xxs"]  # the case that was shown out of order
    summary = ReplicationSummary.model_validate(raw)
    sizes = [r.size.split()[0] for r in summary.rows if r.ours is not None]
    assert list(dict.fromkeys(sizes)) == ["xxs", "xs", "s"]
    first = [(r.task, r.metric) for r in summary.rows if r.size.startswith("xxs")]
    assert first[0] == ("debret", "non-English avg")  # within a size the stored order stays
