"""Plots for the report as inline SVG strings (matplotlib Agg), safe to paste into one self-contained HTML file."""

from __future__ import annotations

import io
import logging
import re
import textwrap
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .context import CalibrationData, ReplicationSummary

logger = logging.getLogger(__name__)

_XML_HEADER = re.compile(r"<\?xml[^>]*\?>\s*", re.S)
_DOCTYPE = re.compile(r"<!DOCTYPE[^>]*>\s*", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_COMMENT = re.compile(r"<!--.*?-->\s*", re.S)


def _figure(width: float, height: float) -> Figure:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _wrap(text: str, width_in: float, fontsize: float) -> str:
    """Text broken into lines that fit `width_in` inches at `fontsize` (constrained layout makes room for more lines,
    never for a line wider than the figure: a long calibration source was cut off at both ends)."""
    width_pt = width_in * 72
    chars = max(12, int(width_pt / (0.62 * fontsize)))  # DejaVu Sans averages under 0.62 em per character
    return textwrap.fill(text, chars, break_long_words=True, break_on_hyphens=False)


def figure_to_svg(fig: Figure, *, title: str, salt: str) -> str:
    """Serialise a figure to an <svg> element: no XML header, DOCTYPE, metadata or comments (nothing to fetch)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    for pat in (_XML_HEADER, _DOCTYPE, _METADATA, _COMMENT):
        svg = pat.sub("", svg)
    svg = svg.strip()
    # matplotlib numbers its ids per figure (figure_1, axes_1, patch_1, ...): two plots in one page would share them
    ids = set(re.findall(r'\sid="([^"]+)"', svg))
    svg = re.sub(r'(\sid="|url\(#|href="#)([^")]+)', lambda m: m.group(1) + (f"{salt}-{m.group(2)}" if m.group(2) in
                 ids else m.group(2)), svg)
    # responsive: keep the viewBox, let CSS size it; label it for screen readers
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", svg, count=1)
    from markupsafe import escape

    svg = svg.replace("<svg", f'<svg role="img" aria-label="{escape(title)}"', 1)
    return svg


def replication_svg(rep: ReplicationSummary) -> str | None:
    """Paper's number beside ours for each replicated row; None when no row has both."""
    fig = replication_figure(rep)
    if fig is None:
        return None
    return figure_to_svg(fig, title="Replication: the paper's numbers beside ours", salt="replication")


def replication_figure(rep: ReplicationSummary) -> Figure | None:
    """The figure behind `replication_svg`."""
    rows = [r for r in rep.rows if r.paper is not None or r.ours is not None]
    if not rows:
        return None
    import numpy as np

    n = len(rows)
    width = 7.0
    labels = [_wrap(f"{r.label} [{r.metric}]", 0.45 * width, 8) for r in rows]
    lines = max(label.count("\n") + 1 for label in labels)
    fig = _figure(width, max(2.2, max(0.42, 0.15 * lines + 0.12) * n + 1.2))
    ax = fig.add_subplot()
    y = np.arange(n)
    h = 0.38
    paper = [r.paper if r.paper is not None else 0.0 for r in rows]
    ours = [r.ours if r.ours is not None else 0.0 for r in rows]
    ax.barh(y - h / 2, paper, height=h, label="paper", color="#9aa5b1", edgecolor="#333", hatch="//")
    ax.barh(y + h / 2, ours, height=h, label=f"ours ({rep.scale})", color="#2b6cb0", edgecolor="#333")
    for i, r in enumerate(rows):
        if r.paper is None:
            ax.text(0, i - h / 2, " paper: n/a", va="center", fontsize=8, color="#333")
        if r.ours is None:
            ax.text(0, i + h / 2, " ours: not run", va="center", fontsize=8, color="#333")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("score")
    ax.set_title(_wrap(f"Replication ({rep.scale} scale): paper vs ours", width, 10), fontsize=10)
    fig.legend(fontsize=8, loc="outside lower center", ncols=2, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return fig


def reliability_svg(cal: CalibrationData) -> str | None:
    """Reliability diagram: accuracy per confidence bin against the diagonal; None when there are no counted bins."""
    fig = reliability_figure(cal)
    if fig is None:
        return None
    return figure_to_svg(fig, title="Reliability of our confidence", salt="reliability")


def reliability_figure(cal: CalibrationData) -> Figure | None:
    """The figure behind `reliability_svg`."""
    bins = [b for b in cal.bins if b.count > 0]
    if not bins:
        return None
    width = 4.6
    fig = _figure(width, 4.2)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="#666", linewidth=1, label="perfectly calibrated")
    xs = [b.mean_confidence for b in bins]
    ys = [b.accuracy for b in bins]
    sizes = [20 + 180 * b.count / max(c.count for c in bins) for b in bins]
    ax.plot(xs, ys, color="#2b6cb0", linewidth=1.2)
    ax.scatter(xs, ys, s=sizes, color="#2b6cb0", edgecolor="#1a365d", zorder=3, label="our confidence (size = count)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean confidence in bin")
    ax.set_ylabel("fraction correct")
    title = f"Reliability on {cal.source}"
    if cal.ece is not None:
        title += f" (ECE {cal.ece:.3f})"
    ax.set_title(_wrap(title, width, 9), fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    return fig
