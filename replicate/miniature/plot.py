"""The miniature's figure: English vs non-English gap against model size, with and without intermediate training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ReplicateError


def plot_gap_vs_size(replication: Path, out: Path, target: str = "debsec") -> Path:
    """SVG (or PNG by suffix) of the gap (English minus non-English mean, points) per size, 95% CIs over seeds."""
    if out.suffix.lower() not in (".svg", ".png", ".pdf"):
        raise ReplicateError(str(out), "the figure is written as .svg, .png or .pdf (by the suffix)")
    try:
        doc: dict[str, Any] = json.loads(Path(replication).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReplicateError(str(replication), f"cannot read it as JSON: {e}") from e
    summary = doc.get("summary") if isinstance(doc, dict) else None
    rows = [r for r in summary or [] if isinstance(r, dict) and r.get("target") == target and r.get("params")]
    if not rows:
        raise ReplicateError(str(replication), f"no summary rows for the miniature target {target!r}: not the "
                                               "replication.json of `claimscope replicate-miniature grid`?")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows.sort(key=lambda r: r["params"]["non_embedding"])
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for key, label, marker in (("baseline", "target task only", "o"), ("debmatch", "+ English intermediate task", "s")):
        xs = [r["params"]["non_embedding"] / 1e6 for r in rows]
        ys = [r[f"{key}_gap"]["mean"] for r in rows]
        err = [r[f"{key}_gap"]["ci95"] or 0.0 for r in rows]
        ax.errorbar(xs, ys, yerr=err, marker=marker, capsize=3, label=label)
    for r in rows:
        ax.annotate(r["size"], (r["params"]["non_embedding"] / 1e6, r["baseline_gap"]["mean"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("non-embedding parameters (millions, log scale)")
    ax.set_ylabel("English minus non-English accuracy (points)")
    ax.set_title(f"Miniature ({target}): gap vs model size, 95% CI over seeds", fontsize=9)
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
