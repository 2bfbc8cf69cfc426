"""Query-side adapter for the open-claim document ranking: a linear map on the frozen MiniLM claim vector.

The corpus (sentence and title) vectors stay the base all-MiniLM-L6-v2 ones, cached with the index; only the claim
vector used by the document ranking (`verify.docrank`) is moved, ``q' = normalise(q + A q + b)``, by a map trained on
SciFact **train** claims against those frozen vectors (`verify/train_query_adapter.py`; data, seed and metrics in
``verify/models/query-adapter/training.json``). The sentence windows inside the chosen documents, and every cosine
the verdict uses, still come from the base claim vector, so only which documents an open claim reads changes.

It applies to the bundled embedder only (it was trained on that model's geometry); any other embedder ignores it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_DIR = Path(__file__).parent / "models" / "query-adapter"
WEIGHTS = "adapter.safetensors"
CONFIG = "adapter_config.json"
BUNDLED_NAMES = ("bundled:all-MiniLM-L6-v2", "bundled")


@dataclass(frozen=True)
class QueryAdapter:
    """``q' = normalise(q + q @ delta.T + bias)``; weights as trained, plus the fusion weights chosen for them."""

    delta: np.ndarray  # (d, d)
    bias: np.ndarray  # (d,)
    base_model: str
    sha256: str
    doc_weights: dict[str, float]  # DocParams fields (w_bm25, w_max, w_top2, w_title) chosen for adapted vectors

    def apply(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float32)
        if q.size == 0:
            return q
        out = q + q @ self.delta.T + self.bias
        norm = np.linalg.norm(out, axis=-1, keepdims=True)
        return (out / np.where(norm > 0, norm, 1.0)).astype(np.float32)

    def save(self, directory: Path, extra: dict | None = None) -> str:
        """Write the weights and their config; returns the weights' sha256."""
        from safetensors.numpy import save_file

        from claimscope.rundir import sha256_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({"delta": np.ascontiguousarray(self.delta, dtype=np.float32),
                   "bias": np.ascontiguousarray(self.bias, dtype=np.float32)}, str(directory / WEIGHTS))
        sha = sha256_file(directory / WEIGHTS)
        config = {"kind": "linear", "formula": "q' = normalise(q + delta @ q + bias)", "base_model": self.base_model,
                  "dims": int(self.delta.shape[0]), "doc_weights": self.doc_weights, "sha256": sha, **(extra or {})}
        (directory / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        return sha

    @classmethod
    def load(cls, directory: Path = DEFAULT_DIR) -> QueryAdapter:
        from safetensors.numpy import load_file

        from claimscope.rundir import sha256_file

        directory = Path(directory)
        config = json.loads((directory / CONFIG).read_text())
        tensors = load_file(str(directory / WEIGHTS))
        return cls(tensors["delta"].astype(np.float32), tensors["bias"].astype(np.float32), config["base_model"],
                   sha256_file(directory / WEIGHTS), {k: float(v) for k, v in config.get("doc_weights", {}).items()})


@lru_cache(maxsize=4)
def _load_cached(directory: str) -> QueryAdapter | None:
    path = Path(directory)
    if not (path / CONFIG).is_file() or not (path / WEIGHTS).is_file():
        logger.warning("query adapter not found in %s; open claims use the base query vectors", path)
        return None
    return QueryAdapter.load(path)


def adapter_for(model_name: str, setting: bool | str | Path = True) -> QueryAdapter | None:
    """The adapter the document ranking uses for this embedder: the shipped one (`setting` True), one from a folder
    (`setting` a path), or none (`setting` False, or an embedder other than the bundled MiniLM)."""
    if setting is False or model_name not in BUNDLED_NAMES:
        return None
    return _load_cached(str(DEFAULT_DIR if setting is True else Path(setting)))
