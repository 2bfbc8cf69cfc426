"""The report's plots keep every label inside the figure: an SVG clips what lies outside its viewBox, so a title wider
than the figure lost both ends (the shipped calibration source, 140 characters, showed as 'fidence on SciFact dev ...
fitted on 809 o')."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from claimscope.report_templates import plots
from claimscope.report_templates.context import CalibrationData, ReplicationSummary

SHIPPED_CALIBRATION = Path(__file__).resolve().parents[2] / "verify" / "models" / "calibration.json"


def _texts_outside(fig: Figure) -> list[str]:
    """Texts drawn (partly) outside the figure; tick labels count only for ticks within the axis limits."""
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    drawn = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis) for tick in axis._update_ticks()
             for t in (tick.label1, tick.label2) if t.get_visible()}
    tick_labels = {id(t) for ax in fig.axes for axis in (ax.xaxis, ax.yaxis)
                   for tick in axis.get_major_ticks() + axis.get_minor_ticks() for t in (tick.label1, tick.label2)}
    out = []
    for t in fig.findobj(Text):
        if not (t.get_visible() and t.get_text()) or (id(t) in tick_labels and id(t) not in drawn):
            continue
        bb = t.get_window_extent(renderer)
        if bb.x0 < -0.5 or bb.x1 > fig.bbox.width + 0.5 or bb.y0 < -0.5 or bb.y1 > fig.bbox.height + 0.5:
            out.append(t.get_text())
    return out


def test_reliability_title_of_shipped_calibration_fits() -> None:
    cal = CalibrationData.model_validate_json(SHIPPED_CALIBRATION.read_text(encoding="utf-8"))
    assert len(cal.source) > 100  # the case that was cut off
    fig = plots.reliability_figure(cal)
    assert fig is not None
    assert _texts_outside(fig) == []
    title = fig.axes[0].get_title()
    assert " ".join(title.split()) == f"Reliability on {cal.source} (ECE {cal.ece:.3f})"  # wrapped, not shortened


@pytest.mark.parametrize("n_rows", [1, 6])
def test_replication_labels_fit(n_rows: int) -> None:
    rows = [{"task": "XNLI (published, full scale)", "size": "XLM-R large (558.84 M non-emb.)",
             "intermediate": "MNLI+SQuAD+HellaSwag multi-task", "metric": "change of gap from intermediate training",
             "paper": 80.1, "ours": 79.4 - i} for i in range(n_rows)]
    rep = ReplicationSummary.model_validate({"scale": "miniature", "rows": rows})
    fig = plots.replication_figure(rep)
    assert fig is not None
    assert _texts_outside(fig) == []
    # the wrapped row labels do not run into each other
    renderer = fig.canvas.get_renderer()
    boxes = sorted((t.get_window_extent(renderer) for t in fig.axes[0].get_yticklabels()), key=lambda b: b.y0)
    assert all(lower.y1 <= upper.y0 + 0.5 for lower, upper in zip(boxes, boxes[1:], strict=False))
