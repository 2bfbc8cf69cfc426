"""The dry-run plan: every phase of every cell, its token count, and GPU-hours from measured throughput.

Throughput comes from `benchmarks/results/replicate_throughput.json` when it exists (written by
`benchmarks/replicate_throughput.py` on the H200), else from the figures measured by hand on the H200 for XLM-R large at
128 tokens, batch 32 (issue 8): fp32 eager 373 seq/s, bf16 alone 720 seq/s, four concurrent bf16 runs 1,200 seq/s.
Rates at other lengths/sizes are scaled by training FLOPs per token (6·N_nonemb + 12·layers·L·d).
Token counts assume every sequence padded to the task's max length (the XTREME sample implementation's padding),
so the optimised column does not even count the savings of length bucketing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Recipe, TaskSpec

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RATES_FILE = REPO_ROOT / "benchmarks" / "results" / "replicate_throughput.json"
MODES = ("naive", "optimised", "shared", "stacked")
PEAK_FLOPS = 989e12  # H200 dense bf16

# Architecture of the two published sizes (the `transformers` configs of xlm-roberta-base / -large).
ARCH = {
    "xlm-roberta-large": {"layers": 24, "hidden": 1024, "ffn": 4096, "vocab": 250002},
    "xlm-roberta-base": {"layers": 12, "hidden": 768, "ffn": 3072, "vocab": 250002},
}
ISSUE_RATES: dict[str, Any] = {  # seq/s, XLM-R large, 128 tokens, batch 32, measured on the H200 (issue 8)
    "source": "issue 8 hand measurements (H200, random XLM-R large, 128 tokens, batch 32)",
    "xlm-roberta-large": {"128": {"naive": 373.0, "optimised": 720.0, "shared": 1200.0, "stacked": 1200.0}},
}


def nonembedding_params(layers: int, hidden: int, ffn: int) -> int:
    per_layer = 4 * (hidden * hidden + hidden) + 2 * hidden * ffn + ffn + hidden + 4 * hidden
    return layers * per_layer


def train_flops_per_token(arch: dict[str, int], seq_len: int) -> float:
    """6·N_nonemb (forward + backward matmuls) + 12·layers·L·d (QK^T and AV, both directions, forward + backward)."""
    n = nonembedding_params(arch["layers"], arch["hidden"], arch["ffn"])
    return 6.0 * n + 12.0 * arch["layers"] * seq_len * arch["hidden"]


def _arch(model: str) -> dict[str, int]:
    for key, a in ARCH.items():
        if key in str(model):
            return a
    return ARCH["xlm-roberta-large"]


def load_rates(path: Path | None = None) -> dict[str, Any]:
    """Rates in seq/s per model, seq length and mode; the benchmark's JSON when present, else the issue's figures."""
    path = path or DEFAULT_RATES_FILE
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        rates: dict[str, Any] = {"source": f"{path.name} ({data.get('device', '?')}, {data.get('created', '?')})"}
        for r in data.get("results", []):
            if r.get("smoke"):
                continue
            model = r["model"]
            mode = {"naive": "naive", "optimised": "optimised", "shared": "shared", "stacked": "stacked"}.get(r["mode"])
            if mode:
                cur = rates.setdefault(model, {}).setdefault(str(r["seq_len"]), {})
                cur[mode] = max(float(r["seq_per_s"]), cur.get(mode, 0.0))
        for model, table in rates.items():
            if model == "source":
                continue
            for cur in table.values():  # sharing/stacking is only chosen where it beats one cell alone
                if "optimised" in cur:
                    cur["shared"] = max(cur.get("shared", 0.0), cur["optimised"])
                if "shared" in cur:
                    cur["stacked"] = max(cur.get("stacked", 0.0), cur["shared"])
        if any(k.startswith("xlm-roberta") for k in rates):
            return rates
        logger.warning("%s has no usable rates; using the issue's figures", path)
    return dict(ISSUE_RATES)


def seq_rate(rates: dict[str, Any], model: str, seq_len: int, mode: str) -> float:
    """Training sequences/s at `seq_len`: the measured rate nearest in length (same model if measured, else large),
    scaled by FLOPs per sequence."""
    key = next((k for k in rates if k != "source" and k in str(model)), None) or "xlm-roberta-large"
    table = rates.get(key) or rates["xlm-roberta-large"]
    measured = sorted((int(L), v[mode]) for L, v in table.items() if mode in v)
    if not measured:
        measured = [(128, ISSUE_RATES["xlm-roberta-large"]["128"][mode])]
    ref_len, ref_rate = min(measured, key=lambda x: abs(x[0] - seq_len))
    ref_arch, arch = _arch(key), _arch(model)
    ref_flops = train_flops_per_token(ref_arch, ref_len) * ref_len
    flops = train_flops_per_token(arch, seq_len) * seq_len
    return ref_rate * ref_flops / flops


@dataclass
class PlanRow:
    phase: str
    what: str
    sequences: float  # training sequences (incl. eval cost converted to training-equivalent sequences)
    seq_len: int
    hours: dict[str, float]
    # (setting, mlm, seed) for a phase-2 row, (setting, mlm, seed, target) for a phase-3 row: what a shard runs
    key: tuple = ()


def _seqs_per_example(task: TaskSpec) -> int:
    return max(1, task.num_choices) if task.kind == "multiple_choice" else 1


def _train_seqs(task: TaskSpec, limit: int | None) -> float:
    n = task.train_size if limit is None else min(task.train_size, limit)
    return n * task.epochs * _seqs_per_example(task)


def _eval_seqs(task: TaskSpec, limit: int | None) -> float:
    """Forward-only work of evaluating every language (+ one English dev pass per epoch), in training-equivalent
    sequences (a forward is about a third of a training step)."""
    test = task.test_size if limit is None else min(task.test_size, limit)
    dev = min(task.dev_size, task.early_stop_dev or task.dev_size) * (task.epochs if task.trained else 0)
    return (test * len(task.languages) + dev) * _seqs_per_example(task) / 3.0


def plan_recipe(recipe: Recipe, rates: dict[str, Any]) -> list[PlanRow]:
    rows: list[PlanRow] = []
    lim_t, lim_e = recipe.train.limit_train, recipe.train.limit_eval

    def hours(seqs: float, L: int, stackable: bool = False) -> dict[str, float]:
        """Phase-3 runs of one target share data and hyper-parameters, so they can be stacked into one batched
        model; other runs fall back to sharing the GPU as separate processes."""
        h = {m: seqs / seq_rate(rates, recipe.model, L, m) / 3600.0 for m in MODES if m != "stacked"}
        h["stacked"] = seqs / seq_rate(rates, recipe.model, L, "stacked" if stackable else "shared") / 3600.0
        return h

    for setting, mlm, seed in recipe.phase2_groups():
        label = f"{setting or 'baseline'}{'+MLM' if mlm else ''} s{seed}"
        group = (setting, mlm, seed)
        if setting is not None:
            tasks = [recipe.task(n) for n in recipe.intermediate_tasks(setting, False)]
            for t in tasks:
                seqs = _train_seqs(t, lim_t) * (3.0 / t.epochs if len(tasks) > 1 else 1.0)
                seqs += min(t.dev_size, t.early_stop_dev or t.dev_size) * _seqs_per_example(t) * t.epochs / 3.0
                rows.append(
                    PlanRow("2 intermediate", f"{label}: {t.name}", seqs, t.max_len, hours(seqs, t.max_len), group)
                )
            if mlm:
                m = recipe.task("mlm")
                task_n = sum(min(t.train_size, recipe.train.multitask_size_cap) for t in tasks)
                share = min(m.train_size, recipe.train.multitask_size_cap) / task_n
                task_steps = sum(_train_seqs(t, lim_t) / t.batch_size for t in tasks)
                seqs = task_steps * share * m.batch_size
                what = f"{label}: mlm co-training"
                rows.append(PlanRow("2 intermediate", what, seqs, m.max_len, hours(seqs, m.max_len), group))
        for target in recipe.targets:
            t = recipe.task(target)
            seqs = (_train_seqs(t, lim_t) if t.trained else 0.0) + _eval_seqs(t, lim_e)
            phase = "3 target" if t.trained else "3 retrieval eval"
            h = hours(seqs, t.max_len, t.trained)
            rows.append(PlanRow(phase, f"{label} -> {target}", seqs, t.max_len, h, (*group, target)))
    return rows


def format_plan(rows: list[PlanRow], rates: dict[str, Any], recipe_name: str = "", model: str = "") -> str:
    flops = sum(r.sequences * r.seq_len * train_flops_per_token(_arch(model), r.seq_len) for r in rows) if model else 0
    lines = [
        f"plan{(' for ' + recipe_name) if recipe_name else ''}: {len(rows)} phase runs",
        f"rates from {rates.get('source')}",
        "GPU-hours on one H200: naive = fp32 batch 32 (HF Trainer defaults); optimised = bf16+SDPA+fused AdamW+compile",
        "alone; shared = optimised cells sharing the GPU (aggregate rate, or alone where that is faster); stacked =",
        "phase-3 cells of one target trained as one batched model (replicate.stacked), other runs shared.",
        "Sequences padded to max length (no bucketing gain counted); base scaled from large by FLOPs if unmeasured.",
        "",
        f"{'phase':<17} {'run':<44} {'len':>4} {'train-eq seqs':>14} {'naive h':>8} {'optim h':>8} {'shared h':>8}"
        f" {'stack h':>8}",
    ]
    tot = dict.fromkeys(MODES, 0.0)
    for r in rows:
        for m in MODES:
            tot[m] += r.hours[m]
        lines.append(
            f"{r.phase:<17} {r.what[:44]:<44} {r.seq_len:>4} {r.sequences:>14,.0f} "
            + " ".join(f"{r.hours[m]:>8.2f}" for m in MODES)
        )
    lines.append(f"{'TOTAL':<17} {'':<44} {'':>4} {sum(r.sequences for r in rows):>14,.0f} "
                 + " ".join(f"{tot[m]:>8.1f}" for m in MODES))  # fmt: skip
    if tot["shared"] > 0:
        lines.append("speed-up over naive: " + ", ".join(f"{m} {tot['naive'] / tot[m]:.2f}x" for m in MODES[1:]))
    if flops:
        mfu = {m: flops / (tot[m] * 3600 * PEAK_FLOPS) for m in MODES if tot[m] > 0}
        lines.append("grid-weighted MFU (non-embedding training FLOPs / 989 TFLOP/s): "
                     + ", ".join(f"{m} {v:.1%}" for m, v in mfu.items()))  # fmt: skip
    return "\n".join(lines)


def plan_totals(rows: list[PlanRow]) -> dict[str, float]:
    return {m: sum(r.hours[m] for r in rows) for m in MODES}
