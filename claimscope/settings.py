"""One nested settings object with named presets; the resolved settings are written to run.json."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def default_cache_dir() -> Path:
    import os

    env = os.environ.get("CLAIMSCOPE_HOME")
    return Path(env) if env else Path(platformdirs.user_cache_dir("claimscope"))


class RetrieveSettings(_Section):
    papers_dir: Path | None = Field(
        None, description="local folder of papers named by arXiv id (e.g. 2005.13013v1.pdf)"
    )
    cache_dir: Path = Field(default_factory=default_cache_dir, description="content-addressed cache shared by runs")
    offline: bool = Field(True, description="never touch the network; use only local papers and the cache")
    delay_seconds: float = Field(3.0, description="minimum seconds between arXiv requests (arXiv asks for 3)")
    num_retries: int = Field(4, description="retries on 429/5xx/timeouts")
    timeout_seconds: float = Field(30.0, description="per-request timeout")
    max_pages: int = Field(300, description="pages read from one PDF at most")
    max_bytes: int = Field(50_000_000, description="largest paper file accepted, in bytes")
    window_sentences: int = Field(2, description="sentences per passage window")
    window_stride: int = Field(1, description="sentences between window starts")


class VerifySettings(_Section):
    embedding_model: str = Field("bundled:all-MiniLM-L6-v2", description="sentence-transformers model name or path")
    stance_model: str = Field(
        "bundled", description="'bundled' (shipped cross-encoder adapter), a HF NLI model name/path, or 'lexical'"
    )
    query_adapter: bool = Field(
        True, description="open claims: rank documents with the claim vector through the shipped query-side adapter "
        "(verify/models/query-adapter, trained on SciFact train; bundled MiniLM only, other embedders ignore it)"
    )
    top_k: int = Field(8, description="evidence passages scored per claim")
    rrf_k: int = Field(60, description="reciprocal-rank-fusion constant")
    max_claims: int = Field(5000, description="claims read from one file at most")
    max_passages: int = Field(2_000_000, description="passages indexed at most")
    batch_size: int = Field(32, description="encoder batch size")
    embed_precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="embedding inference dtype on CPU: 'auto' = bf16 autocast when the CPU has native bf16 "
        "(AVX-512 BF16/AMX; ~2.6x faster, cosine to fp32 >= 0.9999, benchmarks/embed_speed.py), else fp32; "
        "'fp32' = full precision"
    )
    stance_precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="bundled stance cross-encoder inference dtype on CPU, as embed_precision "
        "(bf16 + unpadded batches: ~3.8x faster than the old fp32 path, probabilities within 0.02 of fp32)"
    )


ReportFormat = Literal["md", "html", "csv", "json"]


def _all_report_formats() -> list[ReportFormat]:
    return ["md", "html", "csv", "json"]


class ReportSettings(_Section):
    formats: list[ReportFormat] = Field(default_factory=_all_report_formats)
    max_evidence_shown: int = Field(3, description="evidence quotes per claim in the detail section")


class Settings(_Section):
    retrieve: RetrieveSettings = Field(default_factory=RetrieveSettings)
    verify: VerifySettings = Field(default_factory=VerifySettings)
    report: ReportSettings = Field(default_factory=ReportSettings)


PRESETS: dict[str, dict] = {
    "laptop": {},
    "fast": {"verify": {"top_k": 4}},
    "thorough": {"verify": {"top_k": 16}, "retrieve": {"window_sentences": 3}},
}


def load_settings(preset: str = "laptop", **overrides: object) -> Settings:
    if preset not in PRESETS:
        from claimscope.errors import BadSettings

        raise BadSettings(preset, f"unknown settings preset; choose one of {', '.join(PRESETS)}")
    data: dict = {k: dict(v) for k, v in PRESETS[preset].items()}
    for dotted, value in overrides.items():
        section, _, field = dotted.partition("__")
        data.setdefault(section, {})[field] = value
    return Settings.model_validate(data)
