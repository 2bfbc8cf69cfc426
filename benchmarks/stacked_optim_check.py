"""Check, on the device at hand, that the stacked step's optimiser path trains K models as session 3's did.

Two copies of the same K random XLM-R models (small, dropout off) train on the same varying batches with bf16 autocast:
(a) `StackedAdamW` (compiled on CUDA) with lazy word-embedding rows, (b) torch's fused AdamW after `clip_per_model`
with dense embedding gradients. Both use `replicate.stacked_encoder` (so on CUDA also its fp32-output weight-gradient
matmul). Prints the largest weight difference between (a) and (b) and how far training moved the weights; exits 1
when the paths disagree. The CPU tests check the same maths eagerly (tests/replicate/test_stacked_optim.py).

    python3 -P benchmarks/stacked_optim_check.py            # CUDA if present
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    import torch
    from transformers import XLMRobertaConfig

    from replicate.config import TaskSpec, TrainSpec
    from replicate.model import build_model, load_encoder
    from replicate.stacked import StackedModels, clip_per_model
    from replicate.train import adamw, autocast

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--models", type=int, default=3)
    p.add_argument("--vocab", type=int, default=3000)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default="fp32", help="fp32 (the paths must agree to rounding) or bf16 (Adam turns "
                   "bf16 rounding differences in near-zero gradients into lr-sized steps, so expect ~lr differences)")
    args = p.parse_args(argv)
    dev = torch.device(args.device)
    kernel = _rows_kernel_diff(dev)
    config = XLMRobertaConfig(
        vocab_size=args.vocab, hidden_size=256, num_hidden_layers=2, num_attention_heads=4, intermediate_size=512,
        max_position_embeddings=130, type_vocab_size=1, pad_token_id=1, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, attn_implementation="sdpa",
    )  # fmt: skip
    task = TaskSpec(name="cls", kind="classification", labels=["a", "b", "c"], batch_size=16, max_len=64)
    spec = TrainSpec(precision=args.precision, compile=dev.type == "cuda", weight_decay=0.1, max_grad_norm=1.0)
    models = []
    for i in range(args.models):
        torch.manual_seed(i)
        models.append(build_model(load_encoder("random", attn_implementation="sdpa", config=config), [task]).to(dev))
    twins = [copy.deepcopy(m) for m in models]
    start = {k: v.detach().clone() for k, v in models[0].state_dict().items()}
    new = StackedModels(models, compile_forward=spec.compile, lazy_rows=True).train()
    old = StackedModels(twins, compile_forward=spec.compile, lazy_rows=False).train()
    assert new.rows is not None and old.rows is None
    opt_new = new.optimizer(1e-3, spec, compiled=spec.compile)
    opt_old = adamw(old.param_groups(spec.weight_decay), 1e-3, spec, dev)
    g = torch.Generator().manual_seed(0)
    for step in range(args.steps):
        # a different slice of the vocabulary each step, so rows join the active set over time
        low = 5 + (step * 97) % (args.vocab - 400)
        ids = torch.randint(low, low + 300, (task.batch_size, 64), generator=g)
        batch = {"input_ids": ids.to(dev), "labels": torch.randint(0, 3, (task.batch_size,), generator=g).to(dev)}
        lr = 1e-3 * (step + 1) / args.steps
        for opt in (opt_new, opt_old):
            for group in opt.param_groups:
                group["lr"] = lr
        with autocast(spec, dev):
            losses_new, _ = new("cls", batch, ids)
        losses_new.sum().backward()
        opt_new.step()
        opt_new.zero_grad()
        with autocast(spec, dev):
            losses_old, _ = old("cls", batch)
        losses_old.sum().backward()
        clip_per_model(old.parameters(), 1.0, args.models)
        opt_old.step()
        opt_old.zero_grad(set_to_none=True)
    new.materialise()
    worst = max((new.params[k] - old.params[k]).abs().max().item() for k in new.params)
    moved = max((models[0].state_dict()[k] - start[k]).abs().max().item() for k in start)
    out = {"device": str(dev), "precision": args.precision, "steps": args.steps, "models": args.models,
           "active_rows": new.rows.n_active, "vocab": args.vocab, "max_weight_diff": worst, "max_weight_change": moved,
           "rows_kernel_max_diff": kernel}  # fmt: skip
    out.update(_low_precision_check(dev, config, task, spec, args.steps))
    out["ok"] = (worst < 1e-4 < moved and (kernel is None or kernel < 1e-5)
                 and out["low_copies_max_rel_loss_diff"] < 0.01 and not out["low_copies_stale"])  # fmt: skip
    print(json.dumps(out))
    return 0 if out["ok"] else 1


def _low_precision_check(dev: object, config: object, task: object, spec: object, steps: int) -> dict:
    """Under bf16 autocast (compiled on CUDA): training through the bf16 weight copies (bf16 weight gradients, as
    autocast's matmuls give) against casting in every forward (fp32 weight gradients from the matmul): the copies
    must equal their rounded weights after every step and the losses agree to bf16 rounding (a second casting
    run gives the run-to-run floor); and bf16 against fp32 LayerNorm outputs (losses reported)."""
    import copy
    import dataclasses

    import torch

    from replicate.model import build_model, load_encoder
    from replicate.stacked import StackedModels
    from replicate.train import autocast

    spec = dataclasses.replace(spec, precision="bf16")
    bf16 = torch.bfloat16 if getattr(dev, "type", None) == "cuda" else None  # autocast is CUDA-only here
    torch.manual_seed(7)
    base = [build_model(load_encoder("random", attn_implementation="sdpa", config=config), [task]).to(dev)
            for _ in range(2)]  # fmt: skip
    variants = {"copies": (bf16, False), "casting": (None, False), "casting_again": (None, False),
                "bf16_residual": (bf16, True)}  # fmt: skip
    stacks = {name: StackedModels([copy.deepcopy(m) for m in base], compile_forward=spec.compile, lazy_rows=True,
                                  low_precision=low, low_precision_residual=res).train()
              for name, (low, res) in variants.items()}  # fmt: skip
    opts = {name: s.optimizer(1e-3, spec, compiled=spec.compile) for name, s in stacks.items()}
    g = torch.Generator().manual_seed(1)
    losses: dict[str, list[float]] = {name: [] for name in stacks}
    for _ in range(steps):
        ids = torch.randint(5, 2000, (task.batch_size, 64), generator=g)
        batch = {"input_ids": ids.to(dev), "labels": torch.randint(0, 3, (task.batch_size,), generator=g).to(dev)}
        for name, stacked in stacks.items():
            with autocast(spec, dev):
                loss, _ = stacked("cls", batch, ids)
            loss.sum().backward()
            opts[name].step()
            opts[name].zero_grad()
            losses[name].append(loss.detach().float().mean().item())
    for stacked in stacks.values():
        stacked.materialise()
    a, b, c = stacks["copies"], stacks["casting"], stacks["casting_again"]
    rel = max(abs(x - y) / abs(y) for x, y in zip(losses["copies"], losses["casting"], strict=True))
    return {
        "low_copies_max_weight_diff": max((a.params[k] - b.params[k]).abs().max().item() for k in a.params),
        "casting_rerun_max_weight_diff": max((c.params[k] - b.params[k]).abs().max().item() for k in c.params),
        "low_copies_max_rel_loss_diff": rel,
        # each copy must equal its weight rounded to bf16 after the optimiser's last step
        "low_copies_stale": max((low.float() - a.params[n].to(low.dtype).float()).abs().max().item()
                                for n, low in a.low.items()) if a.low else None,
        "losses_casting": [round(x, 5) for x in losses["casting"]],
        "losses_copies": [round(x, 5) for x in losses["copies"]],
        "losses_bf16_residual": [round(x, 5) for x in losses["bf16_residual"]],
    }


def _rows_kernel_diff(dev: object) -> float | None:
    """The Triton row update against the eager one on random rows (None when there is no Triton on this device)."""
    import torch

    from replicate.stacked_optim import rows_update_, rows_update_cuda_

    if rows_update_cuda_ is None or getattr(dev, "type", None) != "cuda":
        return None
    g = torch.Generator(device="cpu").manual_seed(0)
    k, v, d = 3, 500, 1000
    table, m, var = (torch.randn(k, v, d, generator=g) for _ in range(3))
    var = var.abs()
    rows = torch.sort(torch.randperm(v, generator=g)[:120]).values
    grad = torch.randn(k, 40, d, generator=g).bfloat16()
    slot = torch.full((120,), -1, dtype=torch.long)
    slot[torch.randperm(120, generator=g)[:40]] = torch.arange(40)
    scale, hyper = torch.tensor([1.0, 0.5, 0.1]), torch.tensor([0.999, 2e-3, 0.3])
    ref = [x.clone() for x in (table, m, var)]
    rows_update_(*ref, rows, grad, slot, scale, hyper, 1e-8)
    got = [x.to(dev) for x in (table, m, var)]
    rows_update_cuda_(*got, rows.to(dev), grad.to(dev), slot.to(dev), scale.to(dev), hyper.to(dev), 1e-8)
    return max((a - b.cpu()).abs().max().item() for a, b in zip(ref, got, strict=True))


if __name__ == "__main__":
    raise SystemExit(main())
