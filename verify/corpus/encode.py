"""Shard encoder: texts -> L2-normalised embeddings, independent of how the texts are batched.

`ShardEncoder` is a callable class so the same object runs in the local process pool and as a Ray Data
`map_batches(ShardEncoder, fn_constructor_kwargs=...)` actor. Model loading and the precision switch come from
`claimscope.verify.embed` (`load_embedder`, `inference_precision`).

Batch independence: sentence-transformers pads each batch to its longest text, and a row's result then depends on
which other rows share its batch (measured: up to 1.6e-7 apart). Here texts are grouped by exact token length, so no
row is padded and every row's embedding is the same bytes whatever batch, shard or worker it arrives in. That is what
lets the local engine with N workers and the Ray engine write byte-identical shards. The torch thread count also
changes the summation order (measured: 1 row in 100 differs by 1e-7 between 1 and 2 threads), so the encoder runs
with a fixed number of threads (`threads`, default 1) and engines scale out with processes / actors.

`model="hash"` (or `"hash:<dims>"`) is a deterministic embedder without a model, for measuring how the index and
search scale when embedding a million passages with MiniLM on a laptop CPU would take hours: each word is hashed into
one of 2^14 signed buckets and the bucket counts (log tf) are projected to `dims` by a fixed Gaussian matrix, so texts
sharing words are close. It is not a semantic model; results built with it say so in the manifest.
"""

from __future__ import annotations

import logging
import os
import re
import zlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from claimscope.types import EncoderSpec
from claimscope.verify.embed import BUNDLED

logger = logging.getLogger(__name__)

# oneDNN keeps a compiled primitive per input shape seen (1024 by default); exact-length batches have many shapes, and
# with the default a MiniLM worker grew by ~2.5 GB over a 50k-passage build. Read when oneDNN first runs.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")

HASH = "hash"
HASH_BUCKETS = 1 << 14
_WORD = re.compile(r"[a-z0-9]+")


def is_hash_model(model: str) -> bool:
    return model == HASH or model.startswith(HASH + ":")


def hash_dims(model: str) -> int:
    return int(model.split(":", 1)[1]) if ":" in model else 384


@lru_cache(maxsize=2)
def _projection(dims: int) -> np.ndarray:
    return (np.random.default_rng(20240611).standard_normal((HASH_BUCKETS, dims)) / np.sqrt(dims)).astype(np.float32)


def hash_embed(texts: Sequence[str], dims: int = 384, chunk: int = 512) -> np.ndarray:
    """Deterministic bag-of-words embedding (see module doc); L2-normalised float32 [len(texts), dims]."""
    proj = _projection(dims)
    out = np.zeros((len(texts), dims), dtype=np.float32)
    for s in range(0, len(texts), chunk):
        part = texts[s: s + chunk]
        rows: list[int] = []
        keys: list[int] = []
        signs: list[float] = []
        for i, text in enumerate(part):
            for word in _WORD.findall(str(text).lower()):
                h = zlib.crc32(word.encode())
                rows.append(i)
                keys.append(i * HASH_BUCKETS + (h & (HASH_BUCKETS - 1)))
                signs.append(1.0 if (h >> 20) & 1 else -1.0)
        if not keys:
            continue
        uniq, inverse = np.unique(np.asarray(keys, dtype=np.int64), return_inverse=True)
        counts = np.bincount(inverse, weights=np.asarray(signs)).astype(np.float32)
        weights = np.sign(counts) * np.log1p(np.abs(counts))
        row_of, bucket = uniq // HASH_BUCKETS, uniq % HASH_BUCKETS
        starts = np.flatnonzero(np.r_[True, row_of[1:] != row_of[:-1]])
        out[s + row_of[starts]] = np.add.reduceat(proj[bucket] * weights[:, None], starts, axis=0)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)


def _trim_heap() -> None:
    """Give freed heap pages back to the OS (glibc): many differently shaped batches fragment the heap."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class ShardEncoder:
    """Callable: a batch `{"passage_id": [...], "text": [...], ...}` -> `{"passage_id": [...], "embedding": [n, d]}`.

    Holds the model (loaded once per process or Ray actor). Output rows are float32, L2-normalised, in input order.
    """

    def __init__(self, model: str = BUNDLED, precision: str = "auto", batch_size: int = 64,
                 device: str = "cpu", threads: int = 1) -> None:
        self.spec = EncoderSpec(model=model, precision=precision, batch_size=batch_size,
                                device=device, threads=threads)
        self._model: Any = None
        if not is_hash_model(model):
            from claimscope.verify.embed import load_embedder, resolve_precision

            self._model = load_embedder(model)
            if not str(device).startswith("cpu"):
                self._model.to(device)
            self.resolved_precision = resolve_precision(precision, device)
        else:
            self.resolved_precision = "fp32"

    @classmethod
    def from_spec(cls, spec: EncoderSpec) -> ShardEncoder:
        return cls(spec.model, spec.precision, spec.batch_size, spec.device, spec.threads)

    @property
    def dims(self) -> int:
        if self._model is None:
            return hash_dims(self.spec.model)
        getter = getattr(self._model, "get_embedding_dimension", None) or self._model.get_sentence_embedding_dimension
        return int(getter())

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in batch["text"]]
        return {"passage_id": np.asarray(batch["passage_id"]), "embedding": self.encode(texts)}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`, float32 [n, dims]; each row independent of the others in the call."""
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        if self._model is None:
            return hash_embed(texts, self.dims)
        out = self._encode_model(list(texts))
        _trim_heap()
        return out

    def _encode_model(self, texts: list[str]) -> np.ndarray:
        import torch

        from claimscope.verify.embed import inference_precision

        model = self._model
        enc = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)
        by_length: dict[int, list[int]] = {}
        for i, ids in enumerate(enc["input_ids"]):
            by_length.setdefault(len(ids), []).append(i)
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        device = model.device
        threads = torch.get_num_threads()
        torch.set_num_threads(self.spec.threads)  # results depend on the thread count (summation order)
        try:
            with torch.inference_mode(), inference_precision(self.spec.precision, str(device)):
                self._forward(enc, by_length, out)
        finally:
            torch.set_num_threads(threads)
        return out

    def _forward(self, enc: Any, by_length: dict[int, list[int]], out: np.ndarray) -> None:
        import torch

        model = self._model
        device = model.device
        for length in sorted(by_length):
            same = by_length[length]
            for s in range(0, len(same), self.spec.batch_size):
                idx = same[s: s + self.spec.batch_size]
                features = {k: torch.tensor([enc[k][i] for i in idx], device=device) for k in enc}
                emb = model.forward(features)["sentence_embedding"].float()
                emb = torch.nn.functional.normalize(emb, p=2, dim=1)
                out[idx] = emb.cpu().numpy()
