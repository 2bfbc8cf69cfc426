"""A plain training loop (the fast path; no HF Trainer): bf16 autocast on CUDA, length-bucketed batches, fused AdamW,
linear warm-up/decay, gradient accumulation, optional torch.compile, DDP under torchrun, multi-task sampling, and
model selection on the English dev set.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .config import TaskSpec, TrainSpec
from .dist import DistEnv
from .model import MultiTaskModel, collate, drop_full_mask, encoder_config, mask_tokens

logger = logging.getLogger(__name__)


@dataclass
class PhaseResult:
    steps: int = 0
    examples: int = 0
    tokens: int = 0
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    dev_scores: list[float] = field(default_factory=list)
    best_epoch: int | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "examples": self.examples,
            "tokens": self.tokens,
            "seconds": round(self.seconds, 3),
            "final_loss": self.losses[-1] if self.losses else None,
            "dev_scores": self.dev_scores,
            "best_epoch": self.best_epoch,
        }


def _length(f: dict[str, Any]) -> int:
    ids = f["input_ids"]
    return max(len(s) for s in ids) if ids and isinstance(ids[0], list) else len(ids)


def bucketed_batches(
    lengths: list[int], batch: int, *, seed: int, bucket_size: int = 64, rank: int = 0, world: int = 1
) -> list[list[int]]:
    """Shuffle, sort by length inside windows of `bucket_size` batches, cut into batches, shuffle the batches; every
    rank gets the same number of batches (the tail is dropped so DDP ranks stay in step)."""
    rng = random.Random(seed)
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    window = max(1, bucket_size) * batch
    batches: list[list[int]] = []
    for w in range(0, len(idx), window):
        chunk = idx[w : w + window]
        if bucket_size > 1:
            chunk.sort(key=lambda i: lengths[i])
        batches += [chunk[b : b + batch] for b in range(0, len(chunk), batch)]
    rng.shuffle(batches)
    n = len(batches) - len(batches) % world if len(batches) >= world else len(batches)
    return batches[rank:n:world] if world > 1 else batches


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    return named_param_groups(model.named_parameters(), weight_decay)


def named_param_groups(named: Any, weight_decay: float, *, stacked: bool = False) -> list[dict[str, Any]]:
    """Weight decay on matrices only: biases and LayerNorm weights are not decayed (as in the HF Trainer).
    `stacked`: each tensor holds several models' copies along a leading dimension (replicate.stacked)."""
    decay: list[torch.Tensor] = []
    no_decay: list[torch.Tensor] = []
    for name, p in named:
        if not p.requires_grad:
            continue
        vector = p.ndim - stacked < 2
        norm = "LayerNorm" in name or "layer_norm" in name
        (no_decay if vector or norm or name.endswith("bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, lr: float, spec: TrainSpec, device: torch.device) -> torch.optim.Optimizer:
    return adamw(param_groups(model, spec.weight_decay), lr, spec, device)


def adamw(groups: list[dict[str, Any]], lr: float, spec: TrainSpec, device: torch.device) -> torch.optim.Optimizer:
    kwargs: dict[str, Any] = {"lr": lr, "eps": spec.adam_eps}
    if device.type == "cuda" and spec.fused_adamw:
        kwargs["fused"] = True
    return torch.optim.AdamW(groups, **kwargs)


def clip_and_step(opt: torch.optim.Optimizer, params: Sequence[torch.Tensor], max_norm: float | None) -> None:
    """Clip the global gradient norm to `max_norm`, then step. (Folding the clip factor into fused AdamW's
    `grad_scale` was measured on the H200 at 560 vs 624 seq/s for this plain path: no gain, so not used.)"""
    if max_norm:
        torch.nn.utils.clip_grad_norm_(params, max_norm)
    opt.step()


def linear_schedule(opt: torch.optim.Optimizer, total: int, warmup_ratio: float) -> torch.optim.lr_scheduler.LambdaLR:
    warm = max(1, int(total * warmup_ratio))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return max(0.0, (total - step) / max(1, total - warm))

    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def autocast(spec: TrainSpec, device: torch.device) -> Any:
    if spec.precision == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@dataclass
class TaskStream:
    """The training batches of one task, refilled each pass."""

    task: TaskSpec
    features: list[dict[str, Any]]
    micro_batch: int
    accum: int
    seed: int
    env: DistEnv
    bucket_size: int
    epoch: int = 0
    _queue: list[list[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lengths = [_length(f) for f in self.features]

    def batches_per_pass(self) -> int:
        per_rank = len(self.features) // max(1, self.env.world)
        return max(1, math.ceil(per_rank / self.micro_batch))

    def next(self) -> list[dict[str, Any]]:
        if not self._queue:
            self._queue = bucketed_batches(
                self.lengths, self.micro_batch, seed=self.seed * 1000 + self.epoch,
                bucket_size=self.bucket_size, rank=self.env.rank, world=self.env.world,
            )  # fmt: skip
            self.epoch += 1
        return [self.features[i] for i in self._queue.pop(0)]


def train_phase(
    model: MultiTaskModel,
    streams: dict[str, tuple[TaskSpec, list[dict[str, Any]]]],
    spec: TrainSpec,
    env: DistEnv,
    *,
    lr: float,
    epochs: float,
    seed: int,
    pad_id: int,
    mask_id: int | None = None,
    special_ids: list[int] | None = None,
    eval_fn: Callable[[MultiTaskModel], float] | None = None,
    progress: Callable[[int, int, torch.Tensor], None] | None = None,
) -> PhaseResult:
    """Train `model` on one or more tasks (multi-task: sample a task per step with p_m ∝ min(e_m, K)).

    Each task's `batch_size` is its effective batch: split over ranks, with gradient accumulation when the per-device
    batch (`spec.per_device_batch`) is smaller. With `eval_fn`, the English dev score is computed after each epoch and
    the best epoch's weights are kept (model selection on English dev).
    """
    device = env.device
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    task_streams: dict[str, TaskStream] = {}
    for name, (task, feats) in streams.items():
        if not feats:
            continue
        per_rank = max(1, task.batch_size // env.world)
        micro = min(per_rank, spec.per_device_batch or per_rank)
        accum = max(1, per_rank // micro)
        task_streams[name] = TaskStream(task, feats, micro, accum, seed, env, spec.bucket_size)
    if not task_streams:
        raise ValueError("no training examples in any task of this phase")
    names = list(task_streams)
    sizes = [min(len(task_streams[n].features), spec.multitask_size_cap) for n in names]
    probs = [s / sum(sizes) for s in sizes]
    # An epoch = one pass over the non-MLM tasks; MLM co-training batches come on top in proportion to p_mlm.
    counted = [n for n in names if task_streams[n].task.kind != "mlm"] or names
    passes = sum(max(1, task_streams[n].batches_per_pass() // task_streams[n].accum) for n in counted)
    steps_per_epoch = max(1, round(passes / sum(probs[names.index(n)] for n in counted)))
    total = max(1, int(round(steps_per_epoch * epochs)))
    if spec.max_steps is not None:
        total = min(total, spec.max_steps)

    model.to(device)
    model.train()
    train_model: nn.Module = model
    if env.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        train_model = DDP(model, device_ids=ids, find_unused_parameters=len(names) > 1)
    opt = make_optimizer(model, lr, spec, device)
    params = [p for p in model.parameters() if p.requires_grad]
    sched = linear_schedule(opt, total, spec.warmup_ratio)
    special = torch.tensor(sorted(set(special_ids or [])), dtype=torch.long)
    vocab = encoder_config(model.encoder).vocab_size
    rng = random.Random(seed)
    result = PhaseResult()
    best_score, best_state = -math.inf, None
    loss_hist: list[torch.Tensor] = []
    t0 = time.perf_counter()
    for step in range(total):
        name = names[0] if len(names) == 1 else rng.choices(names, probs)[0]
        stream = task_streams[name]
        for micro_step in range(stream.accum):
            feats = stream.next()
            batch = collate(feats, pad_id)
            if stream.task.kind == "mlm":
                batch["input_ids"], batch["labels"] = mask_tokens(
                    batch["input_ids"], batch["attention_mask"], mask_id=int(mask_id or 0), vocab=vocab,
                    special=special, p=spec.mlm_probability, gen=gen,
                )  # fmt: skip
            n_tokens = int(batch["attention_mask"].sum())  # counted on the CPU: no device sync
            batch = {k: v.to(device, non_blocking=True) for k, v in drop_full_mask(batch).items()}
            last = micro_step == stream.accum - 1
            sync = nullcontext() if (last or not env.enabled) else train_model.no_sync()  # type: ignore[operator]
            with sync, autocast(spec, device):
                loss, _ = train_model(name, batch)
                assert loss is not None
                (loss / stream.accum).backward()
            result.examples += len(feats) * env.world
            result.tokens += n_tokens * env.world
        clip_and_step(opt, params, spec.max_grad_norm)
        sched.step()
        opt.zero_grad(set_to_none=True)
        result.steps += 1
        if step % 10 == 0 or step == total - 1:
            loss_hist.append(loss.detach())  # converted at the end: no device sync in the loop
        if progress is not None:
            progress(step + 1, total, loss.detach())
        end_of_epoch = (step + 1) % steps_per_epoch == 0 or step == total - 1
        if eval_fn is not None and end_of_epoch:
            model.eval()
            score = eval_fn(model)
            model.train()
            result.dev_scores.append(round(score, 4))
            if spec.select_on_dev and score > best_score:
                best_score = score
                result.best_epoch = len(result.dev_scores)
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
    if device.type == "cuda":
        torch.cuda.synchronize()
    result.seconds = time.perf_counter() - t0
    result.losses = [round(float(x), 5) for x in loss_hist]
    if best_state is not None and result.best_epoch != len(result.dev_scores):
        model.load_state_dict(best_state)
        logger.info("model selection: kept epoch %s (dev %.2f)", result.best_epoch, best_score)
    model.eval()
    return result
