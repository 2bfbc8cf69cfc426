"""The miniature grid: per model size, MLM-pretrain a random XLM-R on the multilingual corpus (phase 1), then the
pipeline's phases 2-3 with and without the English intermediate task, over several seeds; one replication.json.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean, stdev
from typing import Any

from ..config import Recipe, TaskSpec, TrainSpec
from ..dist import DistEnv, init_distributed
from ..fileio import write_json

logger = logging.getLogger(__name__)

# XLM-R architecture at miniature sizes (non-embedding parameters: about 0.05M, 0.4M, 3.2M, 19M, 57M).
MODEL_SIZES: dict[str, dict[str, int]] = {
    "xxs": {"layers": 1, "hidden": 64, "heads": 2, "ffn": 256},
    "xs": {"layers": 2, "hidden": 128, "heads": 2, "ffn": 512},
    "s": {"layers": 4, "hidden": 256, "heads": 4, "ffn": 1024},
    "m": {"layers": 6, "hidden": 512, "heads": 8, "ffn": 2048},
    "l": {"layers": 8, "hidden": 768, "heads": 12, "ffn": 3072},
    "toy1": {"layers": 1, "hidden": 32, "heads": 2, "ffn": 64},  # CPU tests
    "toy2": {"layers": 2, "hidden": 64, "heads": 2, "ffn": 128},
}
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


@dataclass
class MiniatureSpec:
    sizes: list[str] = field(default_factory=lambda: ["xs", "s", "m"])
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    pretrain_steps: int = 3000
    pretrain_batch: int = 128
    pretrain_lr: float = 3e-4
    alpha: float = 0.3  # language sampling exponent for MLM data (XLM / XLM-R, and the paper's MLM corpus)
    max_len: int = 128
    finetune_lr: float = 1e-4  # small models pretrained here need more than the paper's 1e-5 / 3e-6
    target_epochs: float = 3.0
    intermediate_epochs: float = 2.0
    batch: int = 32
    precision: str = "bf16"
    compile: bool = False
    limit_train: int | None = None
    limit_eval: int | None = None
    finetune_max_steps: int | None = None
    num_threads: int | None = None


def encoder_config(size: str, vocab: int, pad_id: int, max_len: int) -> Any:
    from transformers import XLMRobertaConfig

    a = MODEL_SIZES[size]
    return XLMRobertaConfig(
        vocab_size=vocab, hidden_size=a["hidden"], num_hidden_layers=a["layers"], num_attention_heads=a["heads"],
        intermediate_size=a["ffn"], max_position_embeddings=max_len + pad_id + 2, type_vocab_size=1,
        layer_norm_eps=1e-5, pad_token_id=pad_id, bos_token_id=0, eos_token_id=2,
    )  # fmt: skip


def count_params(model: Any) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    emb = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    return {"total": total, "non_embedding": total - emb}


def sampled_mlm_rows(rows_by_lang: dict[str, list[dict[str, Any]]], alpha: float, seed: int) -> list[dict[str, Any]]:
    """Re-balance languages: language l gets a share ∝ n_l^alpha of the corpus (small languages repeated)."""
    rng = random.Random(seed)
    total = sum(len(r) for r in rows_by_lang.values())
    weights = {lang: len(r) ** alpha for lang, r in rows_by_lang.items() if r}
    z = sum(weights.values())
    out: list[dict[str, Any]] = []
    for lang, w in weights.items():
        rows = rows_by_lang[lang]
        want = max(1, round(total * w / z))
        out += [rows[i % len(rows)] for i in range(want)]
    rng.shuffle(out)
    return out


def pretrain(
    size: str, data_dir: Path, tokenizer_dir: Path, out_dir: Path, spec: MiniatureSpec, env: DistEnv
) -> dict[str, Any]:
    """Phase 1 at miniature scale: MLM from random init; saves the encoder to `out_dir/encoder`."""
    import torch
    from transformers import AutoTokenizer

    from ..data import load_examples
    from ..features import featurize
    from ..model import build_model, load_encoder, save_encoder
    from ..train import train_phase

    enc_dir = out_dir / "encoder"
    info_path = out_dir / "pretrain.json"
    if (enc_dir / "config.json").exists() and info_path.exists():
        return json.loads(info_path.read_text())
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    task = TaskSpec(name="mlm", kind="mlm", role="intermediate", batch_size=spec.pretrain_batch, max_len=spec.max_len)
    by_lang: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((data_dir / "mlm").glob("train.*.jsonl*")):
        lang = path.name.split(".")[1]
        by_lang[lang] = load_examples(task, "train", lang, source="local", data_dir=data_dir, limit=spec.limit_train)
    rows = sampled_mlm_rows(by_lang, spec.alpha, seed=0)
    feats = featurize(task, tok, rows, train=True)
    torch.manual_seed(0)
    cfg = encoder_config(size, len(tok), tok.pad_token_id, spec.max_len)
    encoder = load_encoder("random", config=cfg, attn_implementation="sdpa")
    model = build_model(encoder, [task])
    tspec = TrainSpec(precision=spec.precision, compile=spec.compile, max_steps=spec.pretrain_steps,
                      select_on_dev=False, warmup_ratio=0.05, num_threads=spec.num_threads)  # fmt: skip
    t0 = time.perf_counter()
    res = train_phase(
        model, {"mlm": (task, feats)}, tspec, env, lr=spec.pretrain_lr, epochs=1e9, seed=0,
        pad_id=tok.pad_token_id, mask_id=tok.mask_token_id, special_ids=list(tok.all_special_ids),
    )  # fmt: skip
    if env.is_main:
        save_encoder(model, tok, enc_dir)
    info = {"size": size, "arch": MODEL_SIZES[size], "params": count_params(model.encoder), **res.summary()}
    info |= {"corpus_rows": len(rows), "languages": sorted(by_lang), "wall_seconds": round(time.perf_counter() - t0, 2)}
    if env.is_main:
        write_json(info_path, info)
    return info


def miniature_recipe(size: str, encoder: Path, tokenizer_dir: Path, data_dir: Path, spec: MiniatureSpec) -> Recipe:
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    lr, b, L = spec.finetune_lr, spec.batch, spec.max_len
    extra = {
        "debsec": {"kind": "classification", "labels": manifest["labels"], "languages": manifest["target_languages"],
                   "batch_size": b, "epochs": spec.target_epochs, "max_len": L, "lr": lr, "metric": "accuracy"},
        "debret": {"kind": "retrieval", "protocol": "tatoeba", "languages": manifest["retrieval_languages"],
                   "max_len": 64, "metric": "accuracy"},
        "debmatch": {"kind": "multiple_choice", "num_choices": 4, "role": "intermediate", "batch_size": b,
                     "epochs": spec.intermediate_epochs, "max_len": L, "lr": lr, "metric": "accuracy"},
    }  # fmt: skip
    train = TrainSpec(
        precision=spec.precision, compile=spec.compile, eval_batch=256, limit_train=spec.limit_train,
        limit_eval=spec.limit_eval, max_steps=spec.finetune_max_steps, num_threads=spec.num_threads,
    )  # fmt: skip
    return Recipe(
        name=f"miniature-{size}", model=str(encoder), tokenizer=str(tokenizer_dir), scale="miniature",
        description=f"XTREME in miniature on Debian package descriptions, XLM-R architecture size {size}",
        seeds=list(spec.seeds), intermediate=[None, "debmatch"], mlm_cotrain=[False], targets=["debsec", "debret"],
        data_source="local", data_dir=str(data_dir), train=train, extra_tasks=extra,
    )  # fmt: skip


def _ci(values: list[float]) -> dict[str, float | int | None]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return {"mean": None, "ci95": None, "n": 0}
    half = T975.get(len(vals) - 1, 1.96) * stdev(vals) / math.sqrt(len(vals)) if len(vals) > 1 else None
    return {"mean": mean(vals), "ci95": half, "n": len(vals)}


def summarize(cells: list[dict[str, Any]], sizes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per size, target and setting: English, non-English average and gap with 95% CIs over seeds, and the paired
    change from intermediate training (intermediate minus baseline, same seed)."""
    out = []
    for size, info in sizes.items():
        for target in sorted({c["target"] for c in cells if c["size"] == size}):
            by = {(c["intermediate"], c["seed"]): c for c in cells if c["size"] == size and c["target"] == target}
            seeds = sorted({s for _, s in by})
            row: dict[str, Any] = {"size": size, "params": info.get("params"), "target": target}
            for setting in (None, "debmatch"):
                key = setting or "baseline"
                for m in ("en", "non_en_avg", "gap"):
                    row[f"{key}_{m}"] = _ci([by[(setting, s)][m] for s in seeds if (setting, s) in by])
            for m in ("non_en_avg", "gap", "en"):
                diffs = [by[("debmatch", s)][m] - by[(None, s)][m] for s in seeds
                         if (None, s) in by and ("debmatch", s) in by and by[(None, s)][m] is not None]  # fmt: skip
                row[f"delta_{m}"] = _ci(diffs)
            out.append(row)
    return out


def run_grid(
    data_dir: Path, tokenizer_dir: Path, out_dir: Path, spec: MiniatureSpec, env: DistEnv | None = None
) -> dict[str, Any]:
    """Every size: pretrain, then the baseline/intermediate x seeds grid; writes `out_dir/replication.json`."""
    from ..pipeline import Runner
    from ..results import environment

    env = env or init_distributed()
    t0 = time.perf_counter()
    sizes: dict[str, dict[str, Any]] = {}
    cells: list[dict[str, Any]] = []
    per_size: dict[str, Any] = {}
    previous = out_dir / "replication.json"
    if previous.exists():  # sizes run by an earlier command into the same folder are kept (one size per command)
        old = json.loads(previous.read_text(encoding="utf-8"))
        keep = [s for s in old.get("sizes", {}) if s not in spec.sizes]
        sizes = {s: old["sizes"][s] for s in keep}
        per_size = {s: old["per_size"][s] for s in keep if s in old.get("per_size", {})}
        cells = [c for c in old.get("cells", []) if c.get("size") in keep]
    manifest = json.loads((data_dir / "manifest.json").read_text(encoding="utf-8"))
    for size in spec.sizes:
        pre = pretrain(size, data_dir, tokenizer_dir, out_dir / size, spec, env)
        sizes[size] = pre
        recipe = miniature_recipe(size, out_dir / size / "encoder", tokenizer_dir, data_dir, spec)
        doc = Runner(recipe, out_dir / size, env).run()
        per_size[size] = {"phase2": doc["phase2"], "gaps": doc["gaps"], "wall_seconds": doc["wall_seconds"]}
        cells += [{**c, "size": size} for c in doc["cells"]]
        combined = {
            "kind": "claimscope.replication", "version": 1, "scale": "miniature",
            "question": "Does a larger pretrained model shrink the English vs non-English gap after English "
                        "intermediate-task training?",
            "data_manifest": {k: v for k, v in manifest.items() if k != "files"},
            "spec": dataclasses.asdict(spec), "seeds": sorted({c["seed"] for c in cells}),
            "environment": environment(env.world),
            "sizes": sizes, "per_size": per_size, "cells": cells, "summary": summarize(cells, sizes),
            "wall_seconds": round(time.perf_counter() - t0, 2),
        }  # fmt: skip
        if env.is_main:
            write_json(out_dir / "replication.json", combined)
    return combined
