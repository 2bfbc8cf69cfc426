"""StackedAdamW and LazyRows train K stacked models exactly as K separate torch AdamW runs with `clip_grad_norm_`:
the clip factor is per model, the schedule moves the learning rate, and embedding rows are touched at different
steps (never, once then idle, every step), with weight decay large enough that a missed or doubled decay shows."""

from __future__ import annotations

import torch

from claimscope.replicate.stacked_optim import LazyRows, StackedAdamW

K, V, D = 3, 40, 6
LRS = [0.05, 0.03, 0.02, 0.01, 0.005, 0.02]
WD = 0.2
# rows 0-4 appear in every batch, 10-12 only in the first, 30 only in the fifth; 35-39 never
BATCHES = [[0, 1, 2, 3, 4, 10, 11, 12, 1], [0, 1, 2, 3, 4, 5, 2], [0, 1, 2, 3, 4, 6, 6, 7],
           [0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 30], [0, 1, 2, 3, 4, 8, 9]]  # fmt: skip


def _setup(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(K, V, D, generator=g)
    dense = torch.randn(K, D, D, generator=g)
    targets = torch.randn(K, D, generator=g) * 5
    return table, dense, targets


def _loss_one(emb: torch.Tensor, w: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((emb @ w - target) ** 2).mean() * 10  # gradients large enough that clipping at 1.0 acts


def test_stacked_adamw_with_lazy_rows_equals_separate_runs() -> None:
    table, dense, targets = _setup()
    # reference: K separate models, a dense embedding table each, torch AdamW, clip_grad_norm_ per model
    refs = [(table[k].clone().requires_grad_(), dense[k].clone().requires_grad_()) for k in range(K)]
    ref_opts = [torch.optim.AdamW(list(r), lr=LRS[0], weight_decay=WD, foreach=False) for r in refs]

    s_table, s_dense = table.clone(), dense.clone().requires_grad_()
    rows = LazyRows(s_table)
    opt = StackedAdamW([{"params": [s_dense], "weight_decay": WD}], K, lr=LRS[0], max_grad_norm=1.0, rows=rows,
                       row_weight_decay=WD)  # fmt: skip
    clipped = 0
    for step, ids_list in enumerate(BATCHES):
        ids = torch.tensor(ids_list)
        for k, ((emb, w), o) in enumerate(zip(refs, ref_opts, strict=True)):
            for group in o.param_groups:
                group["lr"] = LRS[step]
            _loss_one(emb[ids], w, targets[k]).backward()
            norm = torch.nn.utils.clip_grad_norm_([emb, w], 1.0)
            clipped += int(norm > 1.0)
            o.step()
            o.zero_grad()
        for group in opt.param_groups:
            group["lr"] = LRS[step]
        leaf, inverse = rows.take(ids)
        assert leaf.shape == (K, len(ids_list), D)  # padded to the batch size: one shape for a compiled forward
        losses = torch.stack([_loss_one(leaf[k][inverse], s_dense[k], targets[k]) for k in range(K)])
        losses.sum().backward()
        opt.step()
        opt.zero_grad()
    assert clipped > K  # clipping acted, per model
    assert rows.n_active == len({i for b in BATCHES for i in b})
    assert rows.pending < 0.99  # untouched rows still owe their decay ...
    rows.materialise()  # ... until the table is read
    for k, (emb, w) in enumerate(refs):
        assert torch.allclose(s_dense[k], w, atol=1e-6), k
        assert torch.allclose(s_table[k], emb.detach(), atol=1e-6), (k, (s_table[k] - emb).abs().max())
    # the decay alone moved the never-seen rows; seen rows moved by more
    assert not torch.allclose(s_table[:, 35:], table[:, 35:], atol=1e-3)
    assert torch.allclose(s_table[:, 35:], table[:, 35:] * torch.tensor([1 - lr * WD for lr in LRS]).prod(), atol=1e-6)


def test_gradient_accumulation_sums_batches_over_rows() -> None:
    table, dense, targets = _setup(1)
    ref, ref_w = table.clone().requires_grad_(), dense.clone().requires_grad_()
    ref_opt = torch.optim.AdamW([ref, ref_w], lr=0.01, weight_decay=WD, foreach=False)
    rows, w = LazyRows(table.clone()), dense.clone().requires_grad_()
    opt = StackedAdamW([{"params": [w], "weight_decay": WD}], K, lr=0.01, max_grad_norm=None, rows=rows,
                       row_weight_decay=WD)  # fmt: skip
    for _ in range(2):
        for micro in ([0, 1, 2, 20], [2, 3, 21, 21]):
            ids = torch.tensor(micro)
            sum(_loss_one(ref[k][ids], ref_w[k], targets[k]) for k in range(K)).backward()
            leaf, inverse = rows.take(ids)
            sum(_loss_one(leaf[k][inverse], w[k], targets[k]) for k in range(K)).backward()
        ref_opt.step()
        ref_opt.zero_grad()
        opt.step()
        opt.zero_grad()
    rows.materialise()
    assert torch.allclose(rows.table, ref.detach(), atol=1e-6)
    assert torch.allclose(w, ref_w, atol=1e-6)


def test_without_rows_equals_torch_adamw_and_per_model_clipping() -> None:
    g = torch.Generator().manual_seed(2)
    shapes = [(K, 5, 4), (K, 7)]
    start = [torch.randn(s, generator=g) for s in shapes]
    stacked = [x.clone().requires_grad_() for x in start]
    opt = StackedAdamW([{"params": stacked[:1], "weight_decay": WD}, {"params": stacked[1:], "weight_decay": 0.0}],
                       K, lr=0.02, max_grad_norm=1.0)  # fmt: skip
    alone = [[x[k].clone().requires_grad_() for x in start] for k in range(K)]
    opts = [torch.optim.AdamW([{"params": a[:1], "weight_decay": WD}, {"params": a[1:], "weight_decay": 0.0}],
                              lr=0.02, foreach=False) for a in alone]  # fmt: skip
    for _ in range(4):
        grads = [torch.randn(s, generator=g) * torch.tensor([3.0, 0.01, 1.0]).view(K, *[1] * (len(s) - 1))
                 for s in shapes]  # fmt: skip
        for p, gr in zip(stacked, grads, strict=True):
            p.grad = gr.clone()
        opt.step()
        for k in range(K):
            for p, gr in zip(alone[k], grads, strict=True):
                p.grad = gr[k].clone()
            torch.nn.utils.clip_grad_norm_(alone[k], 1.0)
            opts[k].step()
    assert opt.last_norms is not None and opt.last_norms[1] < 1.0 < opt.last_norms[0]
    for k in range(K):
        for p, q in zip(stacked, alone[k], strict=True):
            assert torch.allclose(p[k], q, atol=1e-6)
