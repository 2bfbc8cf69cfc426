"""The one typed context every report format is rendered from, built from the run directory alone.

No model is loaded here: the context is read from run.json, claims.jsonl, papers.jsonl, verdicts.jsonl and the optional
replication.json, calibration.json and diff.json.

Optional inputs and their schemas (extra keys are ignored, so writers may add fields):

replication.json -> `ReplicationSummary`::

    {"scale": "full" | "miniature",
     "description": "what was rerun, in one sentence",
     "model": "xlm-roberta-large", "hardware": "1x H200", "seconds": 5400.0,
     "rows": [{"task": "XNLI", "size": "large", "intermediate": "MNLI", "metric": "acc",
               "paper": 80.1, "ours": 79.4, "note": null}, ...],
     "notes": ["..."], "configs": {...}}

calibration.json -> `CalibrationData` (reliability of our confidence on held-out data, e.g. SciFact dev)::

    {"source": "SciFact dev (300 claims)", "ece": 0.041,
     "bins": [{"lo": 0.0, "hi": 0.1, "mean_confidence": 0.06, "accuracy": 0.1, "count": 20}, ...]}

diff.json -> `claimscope.types.ReverifyDiff`.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, model_validator

from claimscope import __version__
from claimscope.errors import BadRunDir
from claimscope.rundir import RunDir, read_json, read_jsonl
from claimscope.types import (
    Claim,
    Evidence,
    Gap,
    Label,
    ModelInfo,
    Paper,
    ReverifyDiff,
    RunManifest,
    Verdict,
)

logger = logging.getLogger(__name__)

LABEL_ORDER = [Label.SUPPORTED, Label.CONTRADICTED, Label.NOT_ENOUGH_INFO]
LABEL_TEXT = {
    Label.SUPPORTED: "✔ SUPPORTED",
    Label.CONTRADICTED: "✘ CONTRADICTED",
    Label.NOT_ENOUGH_INFO: "? NOT ENOUGH INFO",
}
LABEL_CSS = {Label.SUPPORTED: "sup", Label.CONTRADICTED: "con", Label.NOT_ENOUGH_INFO: "nei"}

# What the report we were given may write in its "Verified" column, mapped to our labels.
_AS_REPORTED_MAP = {
    "✓": Label.SUPPORTED,
    "✔": Label.SUPPORTED,
    "verified": Label.SUPPORTED,
    "supported": Label.SUPPORTED,
    "supports": Label.SUPPORTED,
    "yes": Label.SUPPORTED,
    "true": Label.SUPPORTED,
    "✗": Label.CONTRADICTED,
    "✘": Label.CONTRADICTED,
    "contradicted": Label.CONTRADICTED,
    "contradicts": Label.CONTRADICTED,
    "refuted": Label.CONTRADICTED,
    "false": Label.CONTRADICTED,
    "no": Label.CONTRADICTED,
    "not verified": Label.CONTRADICTED,  # what verify.claims_io reads a report table's ✗ / no / false as
    "not enough info": Label.NOT_ENOUGH_INFO,
    "nei": Label.NOT_ENOUGH_INFO,
    "?": Label.NOT_ENOUGH_INFO,
    "unverified": Label.NOT_ENOUGH_INFO,
}


class _Ctx(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Lenient(BaseModel):
    """Optional inputs written by other stages: unknown keys are ignored."""

    model_config = ConfigDict(extra="ignore")


# --- optional inputs ----------------------------------------------------------------------------------------------


class ReplicationRow(_Lenient):
    task: str = Field(description="target task, e.g. XNLI")
    size: str | None = Field(None, description="model size or name, e.g. 'large' or 'tiny-2L'")
    intermediate: str | None = Field(None, description="intermediate task, e.g. MNLI; None = no intermediate training")
    metric: str = Field("score", description="metric name, e.g. acc, F1, EM")
    paper: float | None = Field(None, description="the paper's number")
    ours: float | None = Field(None, description="our number")
    note: str | None = None

    @property
    def label(self) -> str:
        parts = [self.task]
        if self.intermediate:
            parts.append(f"← {self.intermediate}")
        if self.size:
            parts.append(f"({self.size})")
        return " ".join(parts)

    @property
    def delta(self) -> float | None:
        if self.paper is None or self.ours is None:
            return None
        return self.ours - self.paper


class ReplicationSummary(_Lenient):
    """replication.json as the report reads it (see the module docstring)."""

    scale: Literal["full", "miniature"]
    description: str = ""
    model: str | None = None
    hardware: str | None = None
    seconds: float | None = None
    rows: list[ReplicationRow] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    configs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_replicate_stage(cls, data: Any) -> Any:
        """Also read the layout the replicate stage writes (replicate/results.py: cells, or a miniature summary)."""
        if isinstance(data, dict) and data.get("kind", "").startswith("claimscope.") and "rows" not in data:
            return replication_rows_from_stage(data)
        return data


# English-minus-rest XNLI gaps published for full-scale models (Conneau et al. 2020, XLM-R paper), shown beside a
# miniature run so the reader sees the full-scale trend the miniature is about.
PUBLISHED_XNLI_GAPS = [("mBERT", 16.5), ("XLM-R base", 10.3), ("XLM-R large", 8.8)]


def replication_rows_from_stage(data: dict[str, Any]) -> dict[str, Any]:
    """replicate's replication.json (full-scale cells or miniature summary) → the report's ReplicationSummary dict."""
    env = data.get("environment") or {}
    rows: list[dict[str, Any]] = []
    if data.get("summary"):
        # smallest model first: the question is how the gap moves as the model grows
        by_size = sorted(data["summary"], key=lambda s: (s.get("params") or {}).get("non_embedding") or 0)
        for s in by_size:
            size = f"{s.get('size')} ({(s.get('params') or {}).get('non_embedding', 0) / 1e6:.2f} M non-emb.)"
            inter = next((k[: -len("_gap")] for k in s if k.endswith("_gap") and not k.startswith(("baseline",
                                                                                                    "delta"))), None)
            for key, intermediate, metric in (("baseline_en", None, "English"),
                                              ("baseline_non_en_avg", None, "non-English avg"),
                                              ("baseline_gap", None, "gap (en − rest)"),
                                              (f"{inter}_gap" if inter else "", inter, "gap (en − rest)"),
                                              ("delta_gap", inter, "change of gap from intermediate training")):
                cell = s.get(key) or {}
                if cell.get("mean") is None:
                    continue
                ci = cell.get("ci95")
                rows.append({"task": s.get("target", "?"), "size": size, "intermediate": intermediate,
                             "metric": metric, "ours": round(float(cell["mean"]), 2),
                             "note": f"± {ci:.1f} (95% CI over {cell.get('n')} seeds)" if ci is not None else None})
        for name, gap in PUBLISHED_XNLI_GAPS:
            rows.append({"task": "XNLI (published, full scale)", "size": name, "metric": "gap (en − rest)",
                         "paper": gap, "note": "Conneau et al. 2020; not run here"})
    for cell in data.get("cells") or []:
        if data.get("summary"):
            break
        paper = cell.get("paper") or {}
        rows.append({"task": cell.get("target", "?"), "size": cell.get("size") or (data.get("recipe") or {}).get(
            "model"), "intermediate": cell.get("intermediate"), "metric": cell.get("metric", "score"),
            "paper": paper.get("avg"), "ours": cell.get("avg"),
            "note": f"seed {cell.get('seed')}; gap en − rest {cell['gap']:.1f}" if cell.get("gap") is not None
            else f"seed {cell.get('seed')}"})
    return {"scale": data.get("scale", "full"), "description": data.get("question") or "",
            "model": (data.get("recipe") or {}).get("model"), "hardware": env.get("gpu"),
            "seconds": data.get("wall_seconds"), "rows": rows,
            "configs": data.get("spec") or data.get("recipe") or {}}


class CalibrationBin(_Lenient):
    lo: float | None = None
    hi: float | None = None
    mean_confidence: float = Field(ge=0.0, le=1.0)
    accuracy: float = Field(ge=0.0, le=1.0)
    count: int = Field(ge=0)


class CalibrationData(_Lenient):
    source: str = Field("unknown", description="which data the bins come from, e.g. 'SciFact dev'")
    ece: float | None = None
    bins: list[CalibrationBin] = Field(
        default_factory=list,
        validation_alias=AliasChoices("bins", "reliability"),
        description="also read from 'reliability' (verify.calibrate.reliability output)",
    )

    @property
    def n(self) -> int:
        return sum(b.count for b in self.bins)


# --- the context --------------------------------------------------------------------------------------------------


class EvidenceView(_Ctx):
    quote: str
    paper: str
    page: int
    section: str | None
    stance: str
    p_support: float
    p_contradict: float
    rank: int
    retrieval_score: float


class VerdictBrief(_Ctx):
    label: Label
    label_text: str
    css: str
    confidence: float


class ClaimRow(_Ctx):
    index: int = Field(description="1-based row number, as in the report we were given")
    id: str
    anchor: str = Field(description="HTML id of the claim's detail section")
    text: str = Field(description="the claim as written in the report")
    truncated: bool
    full_text: str | None
    source: str
    cited: list[str]
    as_reported_verdict: str | None
    as_reported_label: Label | None
    as_reported_confidence: float | None
    verdict: VerdictBrief | None = Field(description="None = the claim was not verified (see gaps)")
    full_text_verdict: VerdictBrief | None
    changed: bool | None = Field(description="our verdict differs from the report's; None = not comparable")
    best: EvidenceView | None
    evidence_for: list[EvidenceView]
    evidence_against: list[EvidenceView]
    evidence_neutral: list[EvidenceView] = Field(description="at most settings.report.max_evidence_shown")
    numbers_status: str = Field(description="the verdict's numbers check; 'not_checked' when there is no verdict")
    numbers_details: list[str]
    warnings: list[str]
    own_warnings: list[str] = Field(description="warnings not shared by every claim (the table shows these)")
    version_cited: str | None
    versions_used: list[str]
    scope: str | None
    model: str | None
    gold_label: str | None


class PaperView(_Ctx):
    key: str
    anchor: str
    arxiv_id: str | None
    version_used: int | None
    versions_cited: list[str] = Field(description="keys under which the claims cite this paper")
    version_mismatch: bool
    title: str | None
    authors: list[str]
    published: str | None
    source: str
    fmt: str
    partial: bool
    secondary: bool
    pages: int
    notes: list[str]
    sha256: str
    claims: list[int] = Field(description="row numbers of the claims citing it")


class Summary(_Ctx):
    n_claims: int
    n_verified: int = Field(description="claims we produced a verdict for")
    counts: dict[str, int] = Field(description="our verdicts per label")
    as_reported_supported: int = Field(description="claims the report marked verified / supported")
    as_reported_other: int = Field(description="claims the report marked otherwise or not at all")
    changed: int = Field(description="claims whose verdict differs from the report's")
    comparable: int = Field(description="claims with both an as-reported and our verdict")
    truncated: int
    version_mismatches: int
    common_warnings: list[str] = Field(description="warnings that every claim carries (shown once)")
    gaps: list[Gap]
    unchecked_claims: list[int] = Field(description="row numbers of claims with no verdict")


class SettingItem(_Ctx):
    key: str
    value: str


class Methodology(_Ctx):
    run_name: str
    created: str
    input: str | None
    stages_done: list[str]
    models: list[ModelInfo]
    settings: list[SettingItem]
    versions: dict[str, str]
    timings: dict[str, float]
    counts: dict[str, int]
    corpus_papers: int
    corpus_passages: int | None
    limitations: list[str]


class ReportContext(_Ctx):
    title: str
    question: str | None
    generator: str
    summary: Summary
    claims: list[ClaimRow]
    papers: list[PaperView]
    replication: ReplicationSummary | None
    calibration: CalibrationData | None
    diff: ReverifyDiff | None
    claim_rows: dict[str, int] = Field(description="claim id -> row number")
    methodology: Methodology
    plots: dict[str, str] = Field(
        default_factory=dict, exclude=True, description="inline SVG by name (html only; not part of report.json)"
    )


# --- building -----------------------------------------------------------------------------------------------------


def normalize_as_reported(verdict: str | None) -> Label | None:
    """Map what the given report wrote ("✓", "verified", ...) to our labels; None when unknown or absent."""
    if verdict is None:
        return None
    v = verdict.strip()
    if not v:
        return None
    if v in _AS_REPORTED_MAP:
        return _AS_REPORTED_MAP[v]
    return _AS_REPORTED_MAP.get(re.sub(r"[\s_-]+", " ", v.lower()))


def _anchor(prefix: str, value: str) -> str:
    return prefix + "-" + (re.sub(r"[^A-Za-z0-9_-]", "-", value).strip("-") or "x")


def _ev(e: Evidence) -> EvidenceView:
    return EvidenceView(
        quote=e.quote,
        paper=e.paper,
        page=e.page,
        section=e.section,
        stance=e.stance,
        p_support=e.p_support,
        p_contradict=e.p_contradict,
        rank=e.rank,
        retrieval_score=e.retrieval_score,
    )


def _brief(v: Verdict) -> VerdictBrief:
    return VerdictBrief(label=v.label, label_text=LABEL_TEXT[v.label], css=LABEL_CSS[v.label], confidence=v.confidence)


def _best_evidence(v: Verdict) -> Evidence | None:
    """The first-ranked passage: verify ranks first the passage that shows the verdict (stated word for word, stating
    the claim's numbers, or read most strongly for it) from a version that does not read otherwise."""
    return min(v.evidence, key=lambda e: e.rank) if v.evidence else None


def _claim_row(index: int, claim: Claim, verdict: Verdict | None, max_neutral: int) -> ClaimRow:
    ar = claim.as_reported
    ar_label = normalize_as_reported(ar.verdict if ar else None)
    changed = None if (verdict is None or ar_label is None) else verdict.label != ar_label
    evidence = sorted(verdict.evidence, key=lambda e: e.rank) if verdict else []
    best = _best_evidence(verdict) if verdict else None
    return ClaimRow(
        index=index,
        id=claim.id,
        anchor=_anchor("claim", claim.id),
        text=claim.text,
        truncated=claim.truncated,
        full_text=claim.full_text,
        source=claim.source,
        cited=[r.key for r in claim.cited],
        as_reported_verdict=ar.verdict if ar else None,
        as_reported_label=ar_label,
        as_reported_confidence=ar.confidence if ar else None,
        verdict=_brief(verdict) if verdict else None,
        full_text_verdict=_brief(verdict.full_text_verdict) if verdict and verdict.full_text_verdict else None,
        changed=changed,
        best=_ev(best) if best else None,
        evidence_for=[_ev(e) for e in evidence if e.stance == "support"],
        evidence_against=[_ev(e) for e in evidence if e.stance == "contradict"],
        evidence_neutral=[_ev(e) for e in evidence if e.stance == "neutral"][:max_neutral],
        numbers_status=verdict.checks.numbers.status if verdict else "not_checked",
        numbers_details=list(verdict.checks.numbers.details) if verdict else [],
        warnings=list(verdict.checks.warnings) if verdict else [],
        own_warnings=list(verdict.checks.warnings) if verdict else [],
        version_cited=verdict.checks.version_cited if verdict else None,
        versions_used=list(verdict.checks.version_used) if verdict else [],
        scope=verdict.scope if verdict else None,
        model=verdict.model or None if verdict else None,
        gold_label=claim.gold_label,
    )


def _paper_view(paper: Paper, claims: list[Claim]) -> PaperView:
    ref = paper.ref
    cited_keys: list[str] = []
    rows: list[int] = []
    mismatch = False
    for i, c in enumerate(claims, 1):
        for r in c.cited:
            if r.same_paper(ref):
                if r.key not in cited_keys:
                    cited_keys.append(r.key)
                if i not in rows:
                    rows.append(i)
                mismatch = mismatch or (r.version is not None and r.version != ref.version)
    return PaperView(
        key=ref.key,
        anchor=_anchor("paper", ref.key),
        arxiv_id=ref.arxiv_id,
        version_used=ref.version,
        versions_cited=cited_keys,
        version_mismatch=mismatch,
        title=paper.meta.title or ref.title,
        authors=list(paper.meta.authors),
        published=paper.meta.published,
        source=paper.source,
        fmt=paper.fmt,
        partial=paper.partial,
        secondary=paper.secondary,
        pages=paper.pages,
        notes=list(paper.notes),
        sha256=paper.sha256,
        claims=rows,
    )


def _flatten(prefix: str, value: Any, out: list[SettingItem]) -> None:
    if isinstance(value, dict):
        for k in sorted(value):
            _flatten(f"{prefix}.{k}" if prefix else str(k), value[k], out)
    else:
        out.append(SettingItem(key=prefix, value=json.dumps(value, ensure_ascii=False, default=str)))


def _count_lines(path: Path) -> int | None:
    if not path.exists():
        return None
    with path.open("rb") as f:
        return sum(1 for line in f if line.strip())


def _load_optional(path: Path, model: type[BaseModel], gaps: list[Gap]) -> Any:
    """Read an optional input; a broken one becomes a gap in the report instead of stopping it."""
    if not path.exists():
        return None
    try:
        return model.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, ValueError, OSError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        logger.warning("%s: not a valid %s, left out of the report: %s", path, model.__name__, first)
        gaps.append(Gap(stage="report", item=path.name, reason=f"not a valid {model.__name__}: {first}"))
        return None


def _find_calibration(rd: RunDir, manifest: RunManifest) -> Path | None:
    """calibration.json in the run dir, else next to a model the run used (shipped with the stance model)."""
    here = rd.root / "calibration.json"
    if here.exists():
        return here
    for m in manifest.models:
        if not m.path:
            continue
        p = Path(m.path)
        for cand in (p / "calibration.json", p.parent / "calibration.json"):
            if cand.is_file():
                return cand
    return None


def _limitations(ctx_claims: list[ClaimRow], papers: list[PaperView], manifest: RunManifest,
                 replication: ReplicationSummary | None, calibration: CalibrationData | None) -> list[str]:
    out: list[str] = []
    n_trunc = sum(c.truncated for c in ctx_claims)
    if n_trunc:
        with_full = sum(1 for c in ctx_claims if c.truncated and c.full_text)
        out.append(
            f"{n_trunc} claim(s) were cut off in the report we were given; each is checked for what it says, "
            f"and for {with_full} of them the full sentence was found in the paper and checked as well."
        )
    for p in papers:
        if p.version_mismatch:
            out.append(
                f"{p.arxiv_id} is cited as {', '.join(p.versions_cited)}, and evidence also comes from {p.key}, a "
                "different version; versions of a paper can differ in substance, so every quote names its version."
            )
        if p.partial:
            out.append(f"Only part of {p.key} was available (e.g. the abstract); absence of evidence in it is weak.")
        if p.secondary:
            out.append(f"{p.key} is text about the paper from elsewhere and was not counted as evidence.")
    if any(c.scope == "open" for c in ctx_claims):
        out.append("Some claims were checked against the whole corpus because their cited papers were unavailable.")
    if manifest.gaps:
        out.append(f"{len(manifest.gaps)} item(s) could not be processed; see 'What could not be checked'.")
    if calibration is None:
        out.append("No calibration data was available for this run, so the confidences are model probabilities "
                   "whose reliability was not measured here.")
    if replication is not None and replication.scale == "miniature":
        out.append("The replication ran at miniature scale: it checks that the recipe runs and moves in the reported "
                   "direction, not that the paper's numbers are reproduced.")
    out.append("Verdicts come from automatic retrieval and a stance model; read the quoted evidence before relying "
               "on a verdict.")
    return out


def build_context(run_dir: Path) -> ReportContext:
    """Read a finished (or partly finished) run directory into the report context. Raises BadRunDir."""
    rd = RunDir(Path(run_dir))
    if not rd.root.is_dir():
        raise BadRunDir(str(rd.root), "not a directory")
    manifest = read_json(rd.manifest, RunManifest)
    claims = read_jsonl(rd.claims, Claim)
    papers = read_jsonl(rd.papers_index, Paper) if rd.papers_index.exists() else []
    verdicts = read_jsonl(rd.verdicts, Verdict) if rd.verdicts.exists() else []
    by_claim = {v.claim_id: v for v in verdicts}
    unknown = [v.claim_id for v in verdicts if v.claim_id not in {c.id for c in claims}]
    if unknown:
        raise BadRunDir(str(rd.verdicts), f"verdicts for claims not in claims.jsonl: {', '.join(unknown[:5])}")

    gaps = list(manifest.gaps)
    replication = _load_optional(rd.replication, ReplicationSummary, gaps)
    cal_path = _find_calibration(rd, manifest)
    calibration = _load_optional(cal_path, CalibrationData, gaps) if cal_path else None
    if calibration is not None and not calibration.bins:
        calibration = None
    diff = _load_optional(rd.root / "diff.json", ReverifyDiff, gaps)

    report_settings = manifest.settings.get("report") or {}
    max_neutral = int(report_settings.get("max_evidence_shown", 3)) if isinstance(report_settings, dict) else 3
    rows = [_claim_row(i, c, by_claim.get(c.id), max_neutral) for i, c in enumerate(claims, 1)]
    common: list[str] = []
    if len(rows) >= 2 and all(r.verdict for r in rows):
        common = [w for w in rows[0].warnings if all(w in r.warnings for r in rows[1:])]
        for r in rows:
            r.own_warnings = [w for w in r.warnings if w not in common]
    paper_views = [_paper_view(p, claims) for p in papers]

    counts = {lab.value: sum(1 for r in rows if r.verdict and r.verdict.label == lab) for lab in LABEL_ORDER}
    summary = Summary(
        n_claims=len(rows),
        n_verified=sum(1 for r in rows if r.verdict),
        counts=counts,
        as_reported_supported=sum(1 for r in rows if r.as_reported_label == Label.SUPPORTED),
        as_reported_other=sum(1 for r in rows if r.as_reported_label != Label.SUPPORTED),
        changed=sum(1 for r in rows if r.changed),
        comparable=sum(1 for r in rows if r.changed is not None),
        truncated=sum(1 for r in rows if r.truncated),
        version_mismatches=sum(1 for p in paper_views if p.version_mismatch),
        common_warnings=common,
        gaps=gaps,
        unchecked_claims=[r.index for r in rows if r.verdict is None],
    )
    settings: list[SettingItem] = []
    _flatten("", manifest.settings, settings)
    methodology = Methodology(
        run_name=manifest.name,
        created=manifest.created,
        input=manifest.input,
        stages_done=list(manifest.stages_done),
        models=list(manifest.models),
        settings=settings,
        versions=dict(manifest.versions),
        timings=dict(manifest.timings),
        counts=dict(manifest.counts),
        corpus_papers=len(papers),
        corpus_passages=manifest.counts.get("passages", _count_lines(rd.passages)),
        limitations=_limitations(rows, paper_views, manifest, replication, calibration),
    )
    return ReportContext(
        title=manifest.title or manifest.name,
        question=manifest.question,
        generator=f"claimscope {__version__}",
        summary=summary,
        claims=rows,
        papers=paper_views,
        replication=replication,
        calibration=calibration,
        diff=diff,
        claim_rows={r.id: r.index for r in rows},
        methodology=methodology,
    )
