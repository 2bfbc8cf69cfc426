"""Typed artifacts passed between stages and written to the run directory.

Every artifact has an id derived from its content, so re-running a stage on the same input gives the same keys.
"""

from __future__ import annotations

import hashlib
import re
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


def content_id(*parts: object, length: int = 16) -> str:
    """A short stable hash of the given parts (used for content-derived ids)."""
    h = hashlib.sha256()
    for p in parts:
        h.update(str(p).encode("utf-8"))
        h.update(b"\x1f")
    return h.hexdigest()[:length]


_NEW_ID = re.compile(r"^\d{4}\.\d{4,5}$")
_OLD_ID = re.compile(r"^[a-z][a-z\-]*(\.[A-Z]{2})?/\d{7}$")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PaperRef(Model):
    """A paper as cited. `2005.13013` v1 and v2 are different documents."""

    arxiv_id: str | None = Field(None, description="arXiv id without version, e.g. 2005.13013 or hep-th/9901001")
    version: int | None = Field(None, description="arXiv version number; None = unversioned (latest)")
    title: str | None = None
    url: str | None = None
    local_name: str | None = Field(None, description="name of a local paper that is not on arXiv")

    @model_validator(mode="after")
    def _check(self) -> PaperRef:
        if self.arxiv_id is None and self.local_name is None:
            raise ValueError("a PaperRef needs an arxiv_id or a local_name")
        if self.arxiv_id is not None and not (_NEW_ID.match(self.arxiv_id) or _OLD_ID.match(self.arxiv_id)):
            raise ValueError(f"not an arXiv id: {self.arxiv_id!r}")
        if self.version is not None and self.version < 1:
            raise ValueError(f"arXiv versions start at 1, got {self.version}")
        return self

    @property
    def key(self) -> str:
        """`2005.13013v1`, `2005.13013` (unversioned) or the local name."""
        if self.arxiv_id is None:
            return str(self.local_name)
        return f"{self.arxiv_id}v{self.version}" if self.version else self.arxiv_id

    @property
    def safe_key(self) -> str:
        """The key made safe for use as one path component (old-style ids contain '/')."""
        return re.sub(r"[^A-Za-z0-9._-]", "_", self.key).lstrip(".") or "_"

    def same_paper(self, other: PaperRef) -> bool:
        if self.arxiv_id is not None:
            return self.arxiv_id == other.arxiv_id
        return self.local_name == other.local_name


class PaperMeta(Model):
    title: str | None = None
    authors: list[str] = Field(default_factory=list)
    published: str | None = None
    updated: str | None = None
    abstract: str | None = None
    categories: list[str] = Field(default_factory=list)
    doi: str | None = None
    journal_ref: str | None = None
    pdf_url: str | None = None
    entry_url: str | None = None


class Paper(Model):
    """One document we hold the text of: a specific version of a paper."""

    ref: PaperRef = Field(description="what this document is (id + version actually held)")
    sha256: str
    source: Literal["arxiv", "local"]
    path: str = Field(description="file holding the document, relative to the run dir when inside it")
    fmt: Literal["pdf", "text", "markdown", "html"]
    meta: PaperMeta = Field(default_factory=PaperMeta)
    partial: bool = Field(False, description="the file holds only part of the paper (e.g. abstract only)")
    secondary: bool = Field(False, description="text about the paper from elsewhere; never evidence for it")
    pages: int = 0
    notes: list[str] = Field(default_factory=list, description="what was skipped or doubtful while reading it")


class ParsedPage(Model):
    """The text of one page in reading order; paragraphs separated by a blank line."""

    number: int = Field(ge=1, description="1-based page number")
    text: str
    headings: list[tuple[int, str]] = Field(
        default_factory=list, description="(char offset into text, heading text) of section headings on this page"
    )


class ParsedDoc(Model):
    """A paper file read into pages (retrieve.pdf / retrieve.text)."""

    path: str
    pages: list[ParsedPage] = Field(default_factory=list)
    skipped_pages: list[tuple[int, str]] = Field(default_factory=list, description="(page number, reason) not read")
    meta: dict[str, Any] = Field(default_factory=dict, description="title, page_count, parser name + version, ...")


class Passage(Model):
    """A sentence window of a paper, with the page it is on."""

    id: str = ""
    paper: str = Field(description="paper key, id + version, e.g. 2005.13013v1")
    arxiv_id: str | None = None
    version: int | None = None
    page: int = Field(description="1-based page number (1 for single-page text sources)")
    section: str | None = None
    start: int = Field(description="character offset of the text in the page text")
    end: int
    text: str

    @model_validator(mode="after")
    def _derive_id(self) -> Passage:
        if not self.id:
            self.id = content_id(self.paper, self.page, self.start, self.text)
        return self


class AsReported(Model):
    """What the report we were given said about a claim."""

    verdict: str | None = None
    confidence: float | None = None


class Claim(Model):
    id: str = ""
    text: str
    source: str = Field(description="where the claim came from: file name and row")
    cited: list[PaperRef] = Field(default_factory=list)
    truncated: bool = False
    full_text: str | None = Field(None, description="the complete sentence from the cited paper when it was cut")
    as_reported: AsReported | None = None
    gold_label: str | None = Field(None, description="benchmark label when known (SciFact)")

    @model_validator(mode="after")
    def _derive_id(self) -> Claim:
        if not self.id:
            self.id = "c" + content_id(self.text, length=10)
        return self


class Label(str, Enum):  # noqa: UP042 (str() stays "Label.X" as the templates expect)
    SUPPORTED = "SUPPORTED"
    CONTRADICTED = "CONTRADICTED"
    NOT_ENOUGH_INFO = "NOT_ENOUGH_INFO"


Stance = Literal["support", "contradict", "neutral"]


class Evidence(Model):
    passage_id: str
    quote: str = Field(description="exact substring of the passage text")
    paper: str = Field(description="paper key with version, e.g. 2005.13013v1")
    page: int
    section: str | None = None
    retrieval_score: float = 0.0
    rank: int = 0
    stance: Stance = "neutral"
    p_support: float = 0.0
    p_contradict: float = 0.0
    p_neutral: float = 1.0


class NumberCheck(Model):
    status: Literal["consistent", "mismatch", "not_found", "not_applicable"] = "not_applicable"
    details: list[str] = Field(default_factory=list)


class Checks(Model):
    numbers: NumberCheck = Field(default_factory=NumberCheck)
    warnings: list[str] = Field(default_factory=list)
    version_cited: str | None = None
    version_used: list[str] = Field(default_factory=list)


class Verdict(Model):
    claim_id: str
    label: Label
    confidence: float = Field(ge=0.0, le=1.0, description="calibrated probability that the label is right")
    probs: dict[str, float] = Field(default_factory=dict, description="P(label) for each label")
    evidence: list[Evidence] = Field(default_factory=list)
    checks: Checks = Field(default_factory=Checks)
    model: str = ""
    scope: Literal["cited", "open", "none"] = "cited"
    full_text_verdict: Verdict | None = Field(None, description="verdict for the full sentence of a truncated claim")


class Gap(Model):
    """Something that could not be done, recorded so the report can show it."""

    stage: str
    item: str
    reason: str


class ModelInfo(Model):
    name: str
    path: str | None = None
    sha256: str | None = None
    role: str = ""


class RunManifest(Model):
    """run.json: what ran, with what, and how long it took."""

    name: str
    created: str
    input: str | None = None
    title: str | None = None
    question: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    models: list[ModelInfo] = Field(default_factory=list)
    timings: dict[str, float] = Field(default_factory=dict)
    gaps: list[Gap] = Field(default_factory=list)
    stages_done: list[str] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)


class VerdictChange(Model):
    """One claim whose verdict or confidence moved between two runs (reverify)."""

    claim_id: str
    before_label: Label | None = Field(None, description="None = the claim was not in the earlier run")
    before_confidence: float | None = None
    after_label: Label
    after_confidence: float
    new_evidence: list[Evidence] = Field(default_factory=list, description="evidence not shown in the earlier run")
    reason: str | None = Field(None, description="why it changed, e.g. 'new paper 2005.13013v2'")


class ReverifyDiff(Model):
    """diff.json: what reverify found changed since an earlier run (rendered by the report when present)."""

    previous_run: str | None = Field(None, description="name or path of the run compared against")
    created: str | None = None
    changed: list[VerdictChange] = Field(default_factory=list)
    new_papers: list[str] = Field(default_factory=list, description="paper keys added since the earlier run")
    papers_bearing_on_no_claim: list[str] = Field(
        default_factory=list, description="paper keys whose passages were evidence for no claim"
    )


class EncoderSpec(Model):
    """How passages are embedded for a corpus index; every engine (local, Ray) builds a ShardEncoder from it."""

    model: str = Field("bundled:all-MiniLM-L6-v2", description="sentence-transformers name/path, or 'hash' / "
                       "'hash:<dims>' (deterministic word-vector embedder for scale tests, no model)")
    precision: Literal["auto", "fp32", "bf16"] = Field("auto", description="inference dtype (verify.embed)")
    batch_size: int = Field(64, ge=1, description="passages per forward pass")
    device: str = Field("cpu", description="torch device of the encoder")
    dtype: Literal["float32", "float16"] = Field("float32", description="dtype of the stored embedding shards")
    threads: int = Field(1, ge=1, description="torch intra-op threads per encoder on CPU; a fixed count keeps the "
                         "bytes identical across engines (the thread count changes summation order), so scale out "
                         "with workers/actors rather than threads")


class CorpusShard(Model):
    """One passage shard and its embeddings (same row order)."""

    name: str = Field(description="part-00000")
    rows: int
    first_row: int = Field(description="global row number of the shard's first passage")
    passages_sha256: str
    embeddings_sha256: str | None = None


class AnnInfo(Model):
    """The dense index over all shards."""

    kind: Literal["flat", "ivf", "hnsw", "ivfpq"]
    params: dict[str, Any] = Field(default_factory=dict, description="nlist, nprobe, M, efSearch, pq m, refine ...")
    reason: str = Field("", description="why this kind was chosen (size, memory budget)")
    recall_at_10: float | None = Field(None, description="recall@10 against exact search on a sample of queries")
    recall_queries: int = 0
    recall_on: str = Field("", description="what the recall queries were")
    bytes: int = Field(0, description="size of the ANN files on disk")
    seconds: float = 0.0


class CorpusIndexManifest(Model):
    """INDEX_DIR/manifest.json of a corpus-scale evidence index (verify.corpus)."""

    format: int = 1
    created: str
    source: str = Field(description="the corpus the index was built from")
    source_kind: str = Field(description="scifact | passages | folder")
    corpus_hash: str = Field(description="sha256 over the passage shard hashes, in order")
    encoder: EncoderSpec
    model_sha256: str | None = None
    dims: int
    count: int
    window_sentences: int = 2
    shard_size: int
    shards: list[CorpusShard] = Field(default_factory=list)
    paper_shards: dict[str, list[int]] = Field(default_factory=dict, description="paper key -> shard numbers")
    ann: AnnInfo | None = None
    bm25: str = "bm25s per passage shard (English stopwords, Snowball stemmer); per-shard statistics"
    engine: str = Field("local", description="engine that embedded the shards and its options")
    stats: dict[str, float] = Field(default_factory=dict, description="seconds per phase, passages/s, peak RSS ...")
