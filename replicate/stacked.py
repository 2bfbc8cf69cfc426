"""Several grid cells trained as one batched model on one GPU.

Phase 3 of the X-STILTs grid fine-tunes one encoder per intermediate setting (plus the no-intermediate baseline) on the
same target task with the same hyper-parameters and, for one seed, the same batches. Trained one after another, each
run feeds the GPU matmuls of 32 sequences, too small to keep an H200 busy. Here K such models have their weights
stacked along a new leading dimension (`torch.func.stack_module_state`) and one `vmap`-ed forward and backward trains
all K at once: every model still sees the recipe's batch of 32, keeps its own gradients, its own AdamW state (AdamW is
element-wise, so one optimiser over stacked tensors is K independent optimisers) and its own gradient clipping, so the
result equals K separate runs (tested on CPU), while the GPU sees K-times larger matmuls.

RoBERTa-family encoders (XLM-R) with the library's task heads skip `vmap`: `replicate.stacked_encoder` writes their
forward out over the stacked weights with batched matmuls and one fused attention call over the merged K·batch
dimension (the vmapped step has to fall back to plain matmul attention). Other architectures and heads use `vmap`.

After stacking, each original model's parameters are replaced by views into the stacked tensors, so the models stay
usable (evaluation, saving) and always hold the current weights without any copying.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .config import TaskSpec, TrainSpec
from .dist import DistEnv
from .model import MultiTaskModel, collate, drop_full_mask
from .stacked_encoder import WORD_EMBEDDINGS, StackedEncoder, is_matmul_weight, supports
from .stacked_optim import LazyRows, StackedAdamW, per_model_grad_squares
from .train import PhaseResult, TaskStream, autocast, linear_schedule, named_param_groups

logger = logging.getLogger(__name__)


class StackedModels:
    """K models of identical structure trained as one: `__call__(task, batch)` returns K losses and K logits."""

    def __init__(
        self, models: Sequence[nn.Module], *, compile_forward: bool = False, use_vmap: bool = False,
        lazy_rows: bool = False, low_precision: torch.dtype | None = None, low_precision_residual: bool = False,
        compile_mode: str | None = None,
    ) -> None:
        """`low_precision` (the autocast dtype, for training under autocast on the hand-written encoder): the matmuls
        read a copy of every matmul weight in that dtype, which is what autograd differentiates, so the weight
        gradients are written, clipped and read by the optimiser in that dtype (the rounding autocast's own matmul
        gives them); `StackedAdamW` updates the fp32 weights from them and rewrites the copies in the same pass.
        Without it every weight is cast in every forward and its gradient kept in fp32. (Gradient accumulation then
        sums the micro-batches' gradients in the low dtype.) `low_precision_residual`: `StackedEncoder`'s option."""
        if len(models) < 1:
            raise ValueError("StackedModels needs at least one model")
        shapes = [[(n, tuple(p.shape)) for n, p in m.named_parameters()] for m in models]
        if any(s != shapes[0] for s in shapes[1:]):
            raise ValueError("stacked models must have the same structure (same architecture and the same heads)")
        self.models = models
        self.n = len(models)
        self.params, self.buffers = stack_module_state(models)
        self.template = copy.deepcopy(models[0]).to("meta")
        _plain_attention(self.template)
        for i, m in enumerate(models):
            _point_into(m, self.params, self.buffers, i)
        self.tasks: dict[str, Any] = dict(getattr(models[0], "tasks", {}))
        config = getattr(getattr(models[0], "encoder", None), "config", None)
        self.explicit_tasks = set() if use_vmap else {n for n, t in self.tasks.items() if supports(config, t)}
        self._encoder = (
            StackedEncoder(config, low_precision_residual=low_precision_residual) if self.explicit_tasks else None
        )
        self.low: dict[str, torch.Tensor] = {}  # matmul weight name -> its copy in `low_precision` (a leaf)
        if low_precision is not None and self.explicit_tasks:
            self.low = {n: p.detach().to(low_precision).requires_grad_()
                        for n, p in self.params.items() if is_matmul_weight(n, p)}  # fmt: skip
        # lazy_rows: the word-embedding tables are read per batch and updated row-wise (replicate.stacked_optim);
        # only for stacks whose every task runs the hand-written encoder, which knows how to read them
        self.rows: LazyRows | None = None
        if lazy_rows and self.tasks and self.explicit_tasks == set(self.tasks) and WORD_EMBEDDINGS in self.params:
            self.rows = LazyRows(self.params[WORD_EMBEDDINGS].requires_grad_(False))
        self._forward = self._vmapped
        self._explicit_forward = self._explicit
        if compile_forward:
            self._forward = torch.compile(self._vmapped, mode=compile_mode)
            self._explicit_forward = torch.compile(self._explicit, mode=compile_mode)
            if compile_mode == "reduce-overhead":  # CUDA graphs: the weights stay where they are, no copy per replay
                for t in [*self.params.values(), *self.low.values()]:
                    torch._dynamo.mark_static_address(t)

    def train(self, mode: bool = True) -> StackedModels:
        self.template.train(mode)
        if not mode:
            self.materialise()
        return self

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Decay / no-decay groups of the stacked tensors that get dense gradients (not the lazy rows' table)."""
        return named_param_groups(self.params.items(), weight_decay, stacked=True)

    def optimizer(
        self, lr: float, spec: TrainSpec, *, compiled: bool = False
    ) -> StackedAdamW:
        """AdamW for the K models with each model's gradient clipping inside its step (replicate.stacked_optim)."""
        self.sync_low()
        return StackedAdamW(
            self.param_groups(spec.weight_decay), self.n, lr=lr, eps=spec.adam_eps,
            max_grad_norm=spec.max_grad_norm or None, rows=self.rows, row_weight_decay=spec.weight_decay,
            compiled=compiled, shadows=[(self.params[n], low) for n, low in self.low.items()],
        )

    def sync_low(self) -> None:
        """Rewrite the low-precision weight copies from the weights (after changing weights other than by the
        optimiser's step, which keeps them current)."""
        with torch.no_grad():
            for name, low in self.low.items():
                low.copy_(self.params[name])

    def materialise(self) -> None:
        """Make every model's weights current (the lazy rows owe a decay); call before reading the models."""
        if self.rows is not None:
            self.rows.materialise()

    def _vmapped(
        self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], task: str, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], x: dict[str, Any]) -> Any:
            return functional_call(self.template, (p, b), (task, x))

        # randomness="different": each model draws its own dropout masks, as separate runs would
        return vmap(one, in_dims=(0, 0, None), randomness="different")(params, buffers, batch)

    def _explicit(
        self, params: dict[str, torch.Tensor], task: str, batch: dict[str, Any], training: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        assert self._encoder is not None
        return self._encoder(params, self.tasks[task], batch, training)

    def uses_vmap(self, task: str) -> bool:
        return task not in self.explicit_tasks

    def __call__(
        self, task: str, batch: dict[str, Any], host_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`host_ids`: the batch's input ids on the host, when `batch` is already on the GPU and lazy rows are on (so
        finding the batch's rows needs no device sync)."""
        if task in self.explicit_tasks:
            params = {**self.params, **self.low} if self.low else self.params
            if self.rows is not None and self.template.training:
                leaf, row_ids = self.rows.take(batch["input_ids"] if host_ids is None else host_ids)
                params = {**params, WORD_EMBEDDINGS: leaf}
                batch = {**batch, "row_ids": row_ids}
            return self._explicit_forward(params, task, batch, self.template.training)  # type: ignore[return-value]
        return self._forward(self.params, self.buffers, task, batch)


def _plain_attention(model: nn.Module) -> None:
    """Attention as matmul + softmax inside the vmapped step. PyTorch's fused SDPA kernels have no CPU batching rule
    and, on CUDA, mis-handle the mask and the log-sum-exp strides once vmap folds the model dimension into the batch
    ("attn_bias: wrong shape", "LSE is not correctly aligned", measured on the H200); plain matmuls batch cleanly and
    torch.compile fuses the softmax. Same maths, so the results equal the SDPA runs to rounding."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation"):
            config._attn_implementation = "eager"


def _point_into(model: nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], i: int) -> None:
    """Make `model`'s parameters and buffers views of slice `i` of the stacked tensors (shared memory, no copy)."""
    for name, _ in list(model.named_parameters()):
        owner, attr = _owner(model, name)
        owner._parameters[attr] = nn.Parameter(params[name].detach()[i], requires_grad=False)
    for name, _ in list(model.named_buffers()):
        owner, attr = _owner(model, name)
        owner._buffers[attr] = buffers[name][i]


def _owner(model: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    *path, attr = dotted.split(".")
    mod = model
    for part in path:
        mod = getattr(mod, part)
    return mod, attr


def per_model_grad_norms(grads: list[torch.Tensor], n: int) -> torch.Tensor:
    """The global gradient norm of each of the n stacked models, as one tensor [n] (no device sync)."""
    return per_model_grad_squares(grads, n).sqrt()


def clip_per_model(params: list[torch.Tensor], max_norm: float, n: int) -> torch.Tensor:
    """Scale each model's gradients by min(1, max_norm / (norm + 1e-6)), exactly what `clip_grad_norm_` does to
    each model alone. Returns the norms before clipping."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = per_model_grad_norms(grads, n)
    scale = torch.clamp(max_norm / (norms + 1e-6), max=1.0)
    for i in range(n):
        torch._foreach_mul_([g[i] for g in grads], scale[i].to(grads[0].dtype))
    return norms


def train_phase_stacked(
    models: list[MultiTaskModel],
    task: TaskSpec,
    features: list[dict[str, Any]],
    spec: TrainSpec,
    env: DistEnv,
    *,
    lr: float,
    epochs: float,
    seed: int,
    pad_id: int,
    eval_fn: Callable[[MultiTaskModel], float] | None = None,
    progress: Callable[[int, int, torch.Tensor], None] | None = None,
) -> list[PhaseResult]:
    """Train K models on one task with identical batches (the same seed); returns one PhaseResult per model.

    Same schedule, clipping, autocast and per-epoch English-dev model selection as `train.train_phase`, per model.
    One device only: under torchrun, stack cells inside each rank's own runs instead.
    """
    if env.enabled:
        raise ValueError("stacked training runs on one device; run grid cells as separate processes under torchrun")
    if not features:
        raise ValueError(f"no training examples for {task.name}")
    device = env.device
    n = len(models)
    for m in models:
        m.to(device)
    on_gpu = spec.compile and device.type == "cuda"
    low = torch.bfloat16 if spec.precision == "bf16" and device.type == "cuda" else None
    stacked = StackedModels(
        models, compile_forward=on_gpu, lazy_rows=True, low_precision=low, low_precision_residual=spec.bf16_residual
    ).train()
    micro = min(task.batch_size, spec.per_device_batch or task.batch_size)
    accum = max(1, task.batch_size // micro)
    stream = TaskStream(task, features, micro, accum, seed, env, spec.bucket_size)
    steps_per_epoch = max(1, stream.batches_per_pass() // accum)
    total = max(1, int(round(steps_per_epoch * epochs)))
    if spec.max_steps is not None:
        total = min(total, spec.max_steps)
    opt = stacked.optimizer(lr, spec, compiled=on_gpu)
    sched = linear_schedule(opt, total, spec.warmup_ratio)
    torch.manual_seed(seed)
    results = [PhaseResult() for _ in range(n)]
    best: list[tuple[float, dict[str, torch.Tensor] | None]] = [(-math.inf, None)] * n
    loss_hist: list[torch.Tensor] = []
    t0 = time.perf_counter()
    for step in range(total):
        for _ in range(accum):
            feats = stream.next()
            batch = collate(feats, pad_id)
            n_tokens = int(batch["attention_mask"].sum())
            host_ids = batch["input_ids"]
            batch = {k: v.to(device, non_blocking=True) for k, v in drop_full_mask(batch).items()}
            with autocast(spec, device):
                losses, _ = stacked(task.name, batch, host_ids)
            (losses.sum() / accum).backward()
            for r in results:
                r.examples += len(feats)
                r.tokens += n_tokens
        opt.step()  # clips each model's gradients to spec.max_grad_norm first
        sched.step()
        opt.zero_grad(set_to_none=True)
        for r in results:
            r.steps += 1
        if step % 10 == 0 or step == total - 1:
            loss_hist.append(losses.detach())
        if progress is not None:
            progress(step + 1, total, losses.detach().mean())
        end_of_epoch = (step + 1) % steps_per_epoch == 0 or step == total - 1
        if eval_fn is not None and end_of_epoch:
            stacked.train(False)
            for i, m in enumerate(models):
                m.eval()
                score = eval_fn(m)
                results[i].dev_scores.append(round(score, 4))
                if spec.select_on_dev and score > best[i][0]:
                    results[i].best_epoch = len(results[i].dev_scores)
                    best[i] = (score, {k: v.detach().cpu().clone() for k, v in m.state_dict().items()})
            stacked.train(True)
    stacked.materialise()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    history = torch.stack(loss_hist).float().cpu() if loss_hist else None
    for i, (m, r) in enumerate(zip(models, results, strict=True)):
        r.seconds = seconds  # the models trained together: each took the whole wall time
        r.losses = [round(float(x), 5) for x in history[:, i]] if history is not None else []
        score, state = best[i]
        if state is not None and r.best_epoch != len(r.dev_scores):
            m.load_state_dict(state)
            logger.info("model selection (stacked model %d): kept epoch %s (dev %.2f)", i, r.best_epoch, score)
        m.eval()
    return results
