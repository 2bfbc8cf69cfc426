"""Verify a claims table against a corpus index: verify.run.Verifier on a ShardedEvidenceIndex, in batches.

The Verifier needs `Paper`s only to map a claim's cited ids to paper keys and to read version facts; for a corpus
index they are made from the paper keys the index holds (`2005.13013v2` -> arXiv id + version, any other key a local
name, e.g. `scifact:4983`), only for the papers the claims cite. A claim whose cited papers are all absent from the
index is searched against the whole corpus (scope "open"), as the Verifier does with a run's papers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from claimscope.settings import VerifySettings
from claimscope.types import Claim, Paper, PaperRef, Verdict
from claimscope.verify.corpus.search import ShardedEvidenceIndex

logger = logging.getLogger(__name__)

_VERSIONED = re.compile(r"^(?P<id>\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7})(?:v(?P<v>\d+))?$")


def ref_of_key(key: str) -> PaperRef:
    m = _VERSIONED.match(key)
    if m:
        return PaperRef(arxiv_id=m.group("id"), version=int(m.group("v")) if m.group("v") else None)
    return PaperRef(local_name=key)


def cited_papers(index: ShardedEvidenceIndex, claims: Sequence[Claim]) -> list[Paper]:
    """Stand-in Papers for every held paper key that some claim cites (by arXiv id, any version, or local name)."""
    wanted = {r.arxiv_id or r.local_name for c in claims for r in c.cited}
    out = []
    for key in index.manifest.paper_shards:
        ref = ref_of_key(key)
        if (ref.arxiv_id or ref.local_name) in wanted:
            out.append(Paper(ref=ref, sha256="", source="local", path=str(index.dir), fmt="text",
                             notes=[f"from corpus index {index.dir}"]))
    return out


def verify_against_index(index_dir: Path, claims: Sequence[Claim], settings: VerifySettings, *,
                         batch: int = 128, progress: bool = True) -> list[Verdict]:
    """One verdict per claim, in order; claims are searched and stance-scored `batch` at a time."""
    from claimscope.verify.corpus.engines import PassageProgress
    from claimscope.verify.run import Verifier

    index = ShardedEvidenceIndex(index_dir, query_adapter=settings.query_adapter)
    if settings.embedding_model != index.model_name and settings.embedding_model != VerifySettings().embedding_model:
        logger.warning("the index was embedded with %s; queries use it too (not %s)", index.model_name,
                       settings.embedding_model)
    papers = cited_papers(index, claims)
    verifier = Verifier(cast(Any, index), papers, settings)
    verdicts: list[Verdict] = []
    with PassageProgress(progress, "verifying", len(claims), unit="claims") as advance:
        for s in range(0, len(claims), batch):
            part = list(claims[s: s + batch])
            verdicts.extend(verifier.verify(part))
            advance(len(part))
    return verdicts
