"""replication.json: per-cell scores per language, English vs non-English gap, and the paper's published value.

Layout (a plain dict, so it can be read without this package):
{"kind": "claimscope.replication", "version": 1, "scale": "full"|"miniature", "recipe": {...}, "seeds": [...],
 "environment": {"gpu": ..., "torch": ..., "transformers": ..., "world_size": ...}, "wall_seconds": ...,
 "cells": [{"intermediate": "squad"|null, "mlm": false, "seed": 1, "target": "xquad", "metric": "f1",
            "scores": {"de": {"f1": .., "exact_match": ..}, ...}, "primary": {"de": ..},
            "en": .., "non_en_avg": .., "gap": .., "avg": .., "paper": {"avg": .., "delta": ..} | null,
            "diff_from_paper": .., "phases": {...}}],
 "paper_source": {...}}
"""

from __future__ import annotations

import json
import platform
from functools import lru_cache
from pathlib import Path
from statistics import mean
from typing import Any

PAPER_TABLE = Path(__file__).parent / "data" / "paper_v1_table2.json"


@lru_cache(maxsize=1)
def paper_table() -> dict[str, Any]:
    return json.loads(PAPER_TABLE.read_text(encoding="utf-8"))


def paper_value(target: str, intermediate: str | None, mlm: bool, metric: str) -> dict[str, float] | None:
    """The paper's mean over languages for this cell (baseline + the row's delta), or None if not in Table 2."""
    t = paper_table()
    if target not in t["baseline"]:
        return None

    def pick(v: Any) -> float:
        return float(v[metric] if isinstance(v, dict) else v)

    base = pick(t["baseline"][target])
    if intermediate is None:
        return {"avg": base, "delta": 0.0}
    row = t["delta"]["mlm" if mlm else "no_mlm"].get(intermediate)
    if row is None:
        return None
    d = pick(row[target])
    return {"avg": round(base + d, 2), "delta": d}


def summarize_cell(primary: dict[str, float]) -> dict[str, float | None]:
    """English score, mean of the other languages, the gap (English minus the rest), and the mean of all languages."""
    en = primary.get("en")
    others = [v for k, v in primary.items() if k != "en"]
    non_en = mean(others) if others else None
    return {
        "en": en,
        "non_en_avg": non_en,
        "gap": (en - non_en) if en is not None and non_en is not None else None,
        "avg": mean(primary.values()) if primary else None,
    }


def environment(world: int = 1) -> dict[str, Any]:
    import torch
    import transformers

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "gpu": gpu,
        "device_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "world_size": world,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "host_cpu": platform.processor() or platform.machine(),
    }


def compare_line(cell: dict[str, Any]) -> str:
    """One human-readable line: ours vs the paper for a cell."""
    inter = cell["intermediate"] or "baseline"
    ours = cell.get("avg")
    paper = (cell.get("paper") or {}).get("avg")
    ours_s = "-" if ours is None else f"{ours:.1f}"
    paper_s = "-" if paper is None else f"{paper:.1f}"
    gap = cell.get("gap")
    gap_s = "-" if gap is None else f"{gap:.1f}"
    return (f"{inter:>14}{'+MLM' if cell['mlm'] else '    '} -> {cell['target']:<8} seed {cell['seed']}: "
            f"{cell['metric']} ours {ours_s} paper {paper_s} | en-vs-rest gap {gap_s}")  # fmt: skip


def format_table(doc: dict[str, Any]) -> str:
    """The cells as the paper's Table 2 lays them out: a row per intermediate setting (+MLM), a column per target;
    each entry is our mean over languages (averaged over seeds) / the paper's value, '-' where there is none."""
    rows: dict[tuple[str | None, bool], dict[str, list[dict[str, Any]]]] = {}
    targets: list[str] = []
    for c in doc.get("cells") or []:
        rows.setdefault((c["intermediate"], bool(c["mlm"])), {}).setdefault(c["target"], []).append(c)
        if c["target"] not in targets:
            targets.append(c["target"])
    width = max([11, *(len(t) for t in targets)])
    lines = [f"{'intermediate':<20}" + "".join(f"{t:>{width}}" for t in targets)]
    for (inter, mlm), by_target in rows.items():
        line = f"{(inter or 'baseline') + (' +MLM' if mlm else ''):<20}"
        for t in targets:
            cells = by_target.get(t, [])
            ours = [c["avg"] for c in cells if c.get("avg") is not None]
            paper = next(((c.get("paper") or {}).get("avg") for c in cells if c.get("paper")), None)
            text = ("-" if not ours else f"{mean(ours):.1f}") + ("" if paper is None else f"/{paper:.1f}")
            line += f"{text if cells else '':>{width}}"
        lines.append(line)
    seeds = sorted({c["seed"] for c in doc.get("cells") or []})
    lines.append(f"ours (mean over languages; seeds {', '.join(map(str, seeds))}) / paper v1 Table 2")
    return "\n".join(lines)
