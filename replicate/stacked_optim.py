"""AdamW for K stacked models (replicate.stacked): one pass per tensor, each model's gradient clipping folded into the
update, and exact lazy updates of the word-embedding rows that no batch has reached yet.

Profiled on the H200 (8 stacked XLM-R large, batch 32, 128 tokens), the optimiser took 6.8 of 26.6 ms per model and
step: `torch.optim.AdamW(fused=True)` over 560 M fp32 parameters, then a second and third pass for clipping (norm, then
scale every gradient). 46 % of those parameters are the 250k-row word-embedding table, of which one batch touches a
few thousand rows. Two changes, both exact:

- `adamw_update_` is AdamW written as one element-wise expression of (p, g, m, v) with the model's clip factor
  folded in; `torch.compile` turns it into one kernel per tensor (read p, g, m, v; write p, m, v).
- `LazyRows`: a word-embedding row that has never had a gradient has m = v = 0, so AdamW only decays it:
  p_t = p_0 · Π(1 − lr_s · wd). Such rows are left alone and owe one running factor (`pending`), paid when a batch
  first needs the row (`take`, before the forward reads it) or when the full table is read (`materialise`). Rows
  that have had a gradient (the active set) get the full AdamW update every step, gradient or not, as torch's AdamW
  gives them. The forward reads the batch's rows from a compact [K, U, D] leaf, so backward produces a [K, U, D]
  gradient instead of a dense one of the whole table.

Equal to torch's AdamW + `clip_grad_norm_` per model up to float rounding (tests/replicate/test_stacked_optim.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import torch

BETA1, BETA2 = 0.9, 0.999


def adamw_update_(
    p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor, scale: torch.Tensor, hyper: torch.Tensor,
    eps: float, low: torch.Tensor | None = None,
) -> None:
    """One AdamW step, in place, of K models' copies of one tensor viewed [K, N]. `scale` [K, 1]: each model's clip
    factor for its gradient. `hyper` [3]: 1 − lr·wd, lr / (1 − β1^t), √(1 − β2^t) (tensors, so a compiled version
    is not recompiled as the schedule moves). `low`: p's copy in a lower precision, rewritten in the same pass."""
    g = g.float() * scale
    m_new = m + (g - m) * (1 - BETA1)
    v_new = v * BETA2 + g * g * (1 - BETA2)
    denom = v_new.sqrt() / hyper[2] + eps
    p_new = p * hyper[0] - hyper[1] * m_new / denom
    p.copy_(p_new)
    m.copy_(m_new)
    v.copy_(v_new)
    if low is not None:
        low.copy_(p_new)


def rows_update_(
    table: torch.Tensor, m: torch.Tensor, v: torch.Tensor, rows: torch.Tensor, g: torch.Tensor, slot: torch.Tensor,
    scale: torch.Tensor, hyper: torch.Tensor, eps: float,
) -> None:
    """`adamw_update_` on rows `rows` [A] of tables [K, V, D]; active row a's gradient is g[:, slot[a]] ([K, U, D]),
    zero where slot[a] is -1."""
    p_a, m_a, v_a = table[:, rows], m[:, rows], v[:, rows]
    g = torch.where((slot >= 0).view(1, -1, 1), g[:, slot.clamp(min=0)].float(), 0.0) * scale.view(-1, 1, 1)
    m_new = m_a + (g - m_a) * (1 - BETA1)
    v_new = v_a * BETA2 + g * g * (1 - BETA2)
    denom = v_new.sqrt() / hyper[2] + eps
    table[:, rows] = p_a * hyper[0] - hyper[1] * m_new / denom
    m[:, rows] = m_new
    v[:, rows] = v_new


try:  # on CUDA, one Triton kernel reads and writes each active row in place: no gathered copies
    import triton
    import triton.language as tl

    @triton.jit
    def _rows_adamw_kernel(
        table, m, v, g, rows, slot, scale, hyper, n_vocab, n_slots, eps, beta1, beta2,
        D: tl.constexpr, BLOCK: tl.constexpr,
    ):
        a = tl.program_id(0)
        k = tl.program_id(1)
        row = tl.load(rows + a).to(tl.int64)
        s = tl.load(slot + a)
        cols = tl.arange(0, BLOCK)
        keep = cols < D
        at = (k * n_vocab + row) * D + cols
        grad = tl.load(g + (k * n_slots + tl.maximum(s, 0)).to(tl.int64) * D + cols, mask=keep & (s >= 0), other=0.0)
        grad = grad.to(tl.float32) * tl.load(scale + k)
        p0 = tl.load(table + at, mask=keep)
        m1 = tl.load(m + at, mask=keep)
        v1 = tl.load(v + at, mask=keep)
        m1 = m1 + (grad - m1) * (1 - beta1)
        v1 = v1 * beta2 + grad * grad * (1 - beta2)
        denom = tl.sqrt(v1) / tl.load(hyper + 2) + eps
        tl.store(table + at, p0 * tl.load(hyper + 0) - tl.load(hyper + 1) * m1 / denom, mask=keep)
        tl.store(m + at, m1, mask=keep)
        tl.store(v + at, v1, mask=keep)

    def rows_update_cuda_(
        table: torch.Tensor, m: torch.Tensor, v: torch.Tensor, rows: torch.Tensor, g: torch.Tensor,
        slot: torch.Tensor, scale: torch.Tensor, hyper: torch.Tensor, eps: float,
    ) -> None:
        k, n_vocab, d = table.shape
        g = g.contiguous()
        _rows_adamw_kernel[(len(rows), k)](
            table, m, v, g, rows, slot, scale.float().contiguous(), hyper, n_vocab, g.shape[1], eps,
            BETA1, BETA2, D=d, BLOCK=triton.next_power_of_2(d),
        )

except ImportError:  # no Triton (CPU builds): the eager version
    rows_update_cuda_ = None  # type: ignore[assignment]


def per_model_grad_squares(grads: list[torch.Tensor], n: int) -> torch.Tensor:
    """Each of the n stacked models' sum of squared gradients over `grads` (tensors [n, ...]), as one tensor [n]: one
    multi-tensor kernel over every model's slice of every gradient instead of a launch per tensor, no device sync."""
    slices = [g[i] for i in range(n) for g in grads]
    return torch.stack(torch._foreach_norm(slices)).float().view(n, len(grads)).pow(2).sum(1)


def per_model_grad_squares_by_reduction(grads: list[torch.Tensor], n: int) -> torch.Tensor:
    """`per_model_grad_squares` as one reduction per tensor, summed in fp32: for low-precision gradients under
    `torch.compile` (one call per step). `torch._foreach_norm` has no multi-tensor kernel for a bf16 input with an
    fp32 result, and falling back to one norm per model slice cost ~96 ms of CPU per step for 8 XLM-R large models
    (profiled on the H200); an fp32 norm of bf16 values is what clipping fp32 gradients would compute."""
    total = torch.zeros(n, dtype=torch.float32, device=grads[0].device)
    for g in grads:
        total = total + g.reshape(n, -1).float().pow(2).sum(1)
    return total


class LazyRows:
    """The K stacked word-embedding tables [K, V, D], read per batch as a compact leaf and updated row-wise."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table  # the stacked parameter itself (requires_grad False: gradients go to the compact leaves)
        self.m = torch.zeros_like(table)
        self.v = torch.zeros_like(table)
        self.active_host = torch.zeros(table.shape[1], dtype=torch.bool)
        self.active = torch.empty(0, dtype=torch.long, device=table.device)  # sorted row ids with a gradient so far
        self.pending = 1.0  # the decay every never-touched row still owes
        self._taken: list[tuple[torch.Tensor, torch.Tensor, int]] = []

    @property
    def n_active(self) -> int:
        return int(self.active.numel())

    def take(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows for the batch `ids` (on the host, so no device sync): (leaf [K, U, D] with requires_grad, indices into
        it shaped like `ids`, on the table's device). U is `ids.numel()` (capped at V) whatever the number of
        distinct ids, so a compiled forward sees one shape; the filler slots repeat a row and get no gradient."""
        uniq, inverse = torch.unique(ids.cpu(), return_inverse=True)
        self.activate(uniq)
        width = min(ids.numel(), self.table.shape[1])
        slots = torch.cat([uniq, uniq[:1].expand(width - len(uniq))])
        dev = self.table.device
        leaf = self.table.index_select(1, slots.to(dev, non_blocking=True)).requires_grad_()
        self._taken.append((leaf, uniq.to(dev, non_blocking=True), len(uniq)))
        return leaf, inverse.to(dev, non_blocking=True)

    def activate(self, rows: torch.Tensor) -> None:
        """Pay the owed decay of the rows in `rows` (host ids) that were never touched, and make them active."""
        new = rows[~self.active_host[rows]]
        if not len(new):
            return
        self.active_host[new] = True
        idx = new.to(self.table.device)
        if self.pending != 1.0:
            self.table[:, idx] *= self.pending
        self.active = torch.nonzero(self.active_host).squeeze(1).to(self.table.device)

    def grad(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The gradient of the batches taken since the last step: (compact [K, U, D], slot [A]) where slot[a] is the
        position in the compact gradient of active row a, or -1 for an active row no batch touched this step."""
        got = [(leaf.grad, rows, n) for leaf, rows, n in self._taken if leaf.grad is not None]
        if not got:
            return None
        if len(got) == 1:
            g, rows, n = got[0]
        else:  # gradient accumulation: sum the micro-batches' rows into one compact gradient
            rows = torch.unique(torch.cat([r for _, r, _ in got]))
            n = len(rows)
            g = torch.zeros(self.table.shape[0], n, self.table.shape[2], dtype=got[0][0].dtype, device=rows.device)
            for leaf_grad, r, m in got:
                g.index_add_(1, torch.searchsorted(rows, r), leaf_grad[:, :m])
        slot = torch.full((self.n_active,), -1, dtype=torch.long, device=self.table.device)
        slot[torch.searchsorted(self.active, rows)] = torch.arange(n, device=self.table.device)
        return g, slot

    def clear(self) -> None:
        self._taken.clear()

    def materialise(self) -> None:
        """Write the owed decay into every never-touched row, so the table holds every model's current weights."""
        if self.pending != 1.0:
            idle = torch.nonzero(~self.active_host).squeeze(1).to(self.table.device)
            self.table[:, idle] *= self.pending
            self.pending = 1.0


class StackedAdamW(torch.optim.Optimizer):
    """AdamW (torch's defaults: β = (0.9, 0.999)) over tensors [K, ...] holding K models, with per-model clipping of
    the global gradient norm to `max_grad_norm` (None: no clipping) done inside `step`; optional `rows` (LazyRows)
    is updated as part of the decayed group. A torch Optimizer, so LR schedulers drive `lr` as usual."""

    def __init__(
        self, groups: list[dict[str, Any]], n_models: int, *, lr: float, eps: float = 1e-8,
        max_grad_norm: float | None = 1.0, rows: LazyRows | None = None, row_weight_decay: float = 0.0,
        compiled: bool = False, shadows: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
    ) -> None:
        """`shadows`: (parameter, its copy in a lower precision) pairs: the forward used the copy, so the gradient
        is the copy's (`.grad` of the copy, in its dtype); the parameter is updated from it and the copy rewritten
        in the same pass."""
        super().__init__(groups, {"lr": lr, "weight_decay": 0.0})
        self.shadows = {id(p): low for p, low in shadows}
        self.n = n_models
        self.eps = eps
        self.max_grad_norm = max_grad_norm
        self.rows = rows
        self.row_weight_decay = row_weight_decay
        self.t = 0
        self.last_norms: torch.Tensor | None = None
        self._update = torch.compile(adamw_update_, dynamic=True) if compiled else adamw_update_
        self._low_squares = (
            torch.compile(per_model_grad_squares_by_reduction) if compiled else per_model_grad_squares_by_reduction
        )
        self._rows_update = rows_update_
        if compiled and rows is not None and rows.table.is_cuda and rows_update_cuda_ is not None:
            self._rows_update = rows_update_cuda_

    def _hyper(self, lr: float, wd: float, device: torch.device) -> torch.Tensor:
        bc1, bc2 = 1 - BETA1**self.t, 1 - BETA2**self.t
        return torch.tensor([1 - lr * wd, lr / bc1, math.sqrt(bc2)], dtype=torch.float32).to(device, non_blocking=True)

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]  # noqa: ARG002 (no closure support)
        self.t += 1
        dense = [p for group in self.param_groups for p in group["params"] if self._grad(p) is not None]
        row_grad = self.rows.grad() if self.rows is not None else None
        device = (dense[0] if dense else self.rows.table).device  # type: ignore[union-attr]
        scale = torch.ones(self.n, device=device)
        if self.max_grad_norm:
            squares = torch.zeros(self.n, device=device)
            grads = cast("list[torch.Tensor]", [self._grad(p) for p in dense])  # dense: those with a gradient
            full = [g for g in grads if g.dtype == torch.float32]
            low_grads = [g for g in grads if g.dtype != torch.float32]
            if full:
                squares += per_model_grad_squares(full, self.n)
            if low_grads:
                squares += self._low_squares(low_grads, self.n)
            if row_grad is not None:
                squares += row_grad[0].float().pow(2).sum((1, 2))
            self.last_norms = squares.sqrt()
            scale = torch.clamp(self.max_grad_norm / (self.last_norms + 1e-6), max=1.0)
        per_model = scale.view(self.n, 1)
        lr = self.param_groups[0]["lr"]
        for group in self.param_groups:
            hyper = self._hyper(group["lr"], group["weight_decay"], device)
            for p in group["params"]:
                grad = self._grad(p)
                if grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                low = self.shadows.get(id(p))
                self._update(p.view(self.n, -1), grad.view(self.n, -1), state["exp_avg"].view(self.n, -1),
                             state["exp_avg_sq"].view(self.n, -1), per_model, hyper, self.eps,
                             None if low is None else low.view(self.n, -1))
        if self.rows is not None:
            rows = self.rows
            if rows.n_active:
                if row_grad is None:  # active rows still move (their m and v decay), as in torch's AdamW
                    row_grad = (torch.zeros(self.n, 1, rows.table.shape[2], device=device),
                                torch.full((rows.n_active,), -1, dtype=torch.long, device=device))  # fmt: skip
                hyper = self._hyper(lr, self.row_weight_decay, device)
                self._rows_update(rows.table, rows.m, rows.v, rows.active, *row_grad, scale, hyper, self.eps)
            rows.pending *= 1 - lr * self.row_weight_decay
            rows.clear()

    def _grad(self, p: torch.Tensor) -> torch.Tensor | None:
        low = self.shadows.get(id(p))
        return p.grad if low is None else low.grad

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        for low in self.shadows.values():
            low.grad = None
        if self.rows is not None:
            self.rows.clear()
