"""Render a run directory into report.md, report.html, claims.csv and report.json.

Everything comes from one typed context (`context.build_context`); no model is loaded and torch is never imported.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from claimscope.errors import BadRunDir
from claimscope.rundir import atomic_write_text
from claimscope.types import Label

from .context import LABEL_TEXT, ReportContext, build_context

logger = logging.getLogger(__name__)

FORMATS = ("md", "html", "csv", "json")
OUTPUT_NAMES = {"md": "report.md", "html": "report.html", "csv": "claims.csv", "json": "report.json"}
PLOTS_DIR = "report_plots"

CSV_COLUMNS = [
    "row",
    "claim_id",
    "claim",
    "truncated",
    "full_text",
    "cited",
    "as_reported_verdict",
    "as_reported_confidence",
    "verdict",
    "confidence",
    "changed_vs_reported",
    "full_text_verdict",
    "full_text_confidence",
    "best_quote",
    "best_paper",
    "best_page",
    "n_evidence_for",
    "n_evidence_against",
    "numbers_check",
    "numbers_details",
    "warnings",
    "version_cited",
    "versions_used",
]


# --- Markdown escaping ---------------------------------------------------------------------------------------------


class MdRaw(str):
    """A string already valid as Markdown (built by the template from escaped parts); not escaped again."""


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#!~&$])")
_MD_LIST_START = re.compile(r"^(\d{1,9}[.)]|[-+])(?=\s|$)")


def md_escape(value: object) -> str:
    """One line of literal text: whitespace runs (incl. newlines) become one space, Markdown/HTML syntax is escaped.

    Pipes are escaped so table cells stay intact; `<`/`>` are escaped so raw HTML in a claim renders as text; `~`
    (strikethrough), `&` (entities) and `$` (math on GitHub) too; a leading list marker ("2020. ", "- ") is escaped
    so a claim quoted as `> text` stays a paragraph.
    """
    s = _MD_SPECIAL.sub(r"\\\1", " ".join(str(value).split()))
    return _MD_LIST_START.sub(lambda m: m.group(1)[:-1] + "\\" + m.group(1)[-1], s, count=1)


def md_code(value: object) -> MdRaw:
    """A code span showing `value` literally (backslash escapes do not work inside code spans)."""
    s = " ".join(str(value).split())
    fence = "`" * (max((len(r) for r in re.findall(r"`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return MdRaw(f"{fence}{pad}{s}{pad}{fence}")


def _md_finalize(value: Any) -> Any:
    if isinstance(value, MdRaw) or not isinstance(value, str):
        return value
    return md_escape(value)


# --- shared filters ------------------------------------------------------------------------------------------------


def fmt_conf(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def fmt_num(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}" if abs(value) >= 1 else f"{value:.3f}"


def fmt_signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.1f}"


def truncate_words(value: str, n: int = 40) -> str:
    words = str(value).split()
    return " ".join(words[:n]) + (" …" if len(words) > n else "")


def label_text(value: Label | str | None) -> str:
    if value is None:
        return "—"
    return LABEL_TEXT[Label(value)]


def _add_filters(env: jinja2.Environment) -> None:
    env.filters.update(
        conf=fmt_conf, secs=fmt_seconds, num=fmt_num, signed=fmt_signed, words=truncate_words, label=label_text
    )


@lru_cache(maxsize=1)
def _loader() -> jinja2.BaseLoader:
    return jinja2.FileSystemLoader(str(Path(__file__).parent))


def markdown_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=_loader(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        finalize=_md_finalize,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    _add_filters(env)
    env.filters["raw"] = MdRaw
    env.filters["md"] = md_escape
    env.filters["code"] = md_code
    return env


def html_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=_loader(),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default=True),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    _add_filters(env)
    return env


# --- renderers -----------------------------------------------------------------------------------------------------


def _template_vars(ctx: ReportContext) -> dict[str, Any]:
    # The pydantic objects themselves (not dumps): a misspelt field raises instead of rendering blank.
    return {"ctx": ctx, "s": ctx.summary, "m": ctx.methodology, "plots": ctx.plots, "plots_dir": PLOTS_DIR}


def render_markdown(ctx: ReportContext, env: jinja2.Environment | None = None) -> str:
    return (env or markdown_env()).get_template("report.md.j2").render(**_template_vars(ctx))


@lru_cache(maxsize=1)
def _assets() -> tuple[str, str]:
    here = Path(__file__).parent
    return (here / "report.css").read_text(encoding="utf-8"), (here / "report.js").read_text(encoding="utf-8")


def csp_hash(script: str) -> str:
    """The Content-Security-Policy source for exactly this inline script (no other script may run)."""
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")


def render_html(ctx: ReportContext, env: jinja2.Environment | None = None) -> str:
    css, script = _assets()
    return (env or html_env()).get_template("report.html.j2").render(
        **_template_vars(ctx), css=Markup(css), script=Markup(script), script_hash=csp_hash(script)
    )


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: object) -> object:
    """Text that a spreadsheet would run as a formula gets a leading apostrophe (CSV injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def render_csv(ctx: ReportContext) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for c in ctx.claims:
        v, ft, b = c.verdict, c.full_text_verdict, c.best
        row = [
            c.index,
            c.id,
            c.text,
            c.truncated,
            c.full_text or "",
            ";".join(c.cited),
            c.as_reported_verdict or "",
            "" if c.as_reported_confidence is None else f"{c.as_reported_confidence:.2f}",
            v.label.value if v else "",
            f"{v.confidence:.3f}" if v else "",
            "" if c.changed is None else c.changed,
            ft.label.value if ft else "",
            f"{ft.confidence:.3f}" if ft else "",
            b.quote if b else "",
            b.paper if b else "",
            b.page if b else "",
            len(c.evidence_for) if v else "",
            len(c.evidence_against) if v else "",
            c.numbers_status if v else "",
            "; ".join(c.numbers_details),
            "; ".join(c.warnings),
            c.version_cited or "",
            ";".join(c.versions_used),
        ]
        w.writerow([_csv_cell(x) for x in row])
    return buf.getvalue()


def render_json(ctx: ReportContext) -> str:
    return ctx.model_dump_json(indent=2) + "\n"


def _make_plots(ctx: ReportContext) -> dict[str, str]:
    from . import plots

    out: dict[str, str] = {}
    if ctx.replication is not None:
        svg = plots.replication_svg(ctx.replication)
        if svg:
            out["replication"] = svg
    if ctx.calibration is not None:
        svg = plots.reliability_svg(ctx.calibration)
        if svg:
            out["reliability"] = svg
    return out


def _shareable(path: Path) -> None:
    """Reports are made to be handed on: readable by others like a normally created file (temp files are 0600)."""
    try:
        path.chmod(0o644)
    except OSError as e:  # e.g. a filesystem without modes; the report is still written
        logger.debug("could not chmod %s: %s", path, e)


def render_run(run_dir: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Render the report files of a run directory from its files alone; returns the paths written.

    Formats: md -> report.md (+ report_plots/*.svg when there are plots), html -> report.html (one self-contained
    file), csv -> claims.csv, json -> report.json (the report context). Raises BadRunDir for a missing/invalid input.
    """
    run_dir = Path(run_dir)
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise BadRunDir(str(run_dir), f"unknown report format(s) {', '.join(bad)}; choose from {', '.join(FORMATS)}")
    ctx = build_context(run_dir)
    if "md" in formats or "html" in formats:
        ctx.plots = _make_plots(ctx)
    written: list[Path] = []
    for fmt in FORMATS:  # fixed order, whatever order was asked
        if fmt not in formats:
            continue
        if fmt == "md":
            for name, svg in ctx.plots.items():
                p = run_dir / PLOTS_DIR / f"{name}.svg"
                atomic_write_text(p, svg + "\n")
                _shareable(p)
                written.append(p)
            text = render_markdown(ctx)
        elif fmt == "html":
            text = render_html(ctx)
        elif fmt == "csv":
            text = render_csv(ctx)
        else:
            text = render_json(ctx)
        path = run_dir / OUTPUT_NAMES[fmt]
        atomic_write_text(path, text)
        _shareable(path)
        written.append(path)
        logger.debug("wrote %s", path)
    return written
