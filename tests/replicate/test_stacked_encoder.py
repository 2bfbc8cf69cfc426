"""The hand-written stacked XLM-R forward computes what K separate `MultiTaskModel`s compute: losses, logits and
every parameter's gradient, for each head kind, on padded batches (so positions, the padding row and the attention
mask all matter)."""

from __future__ import annotations

from pathlib import Path

import pytest

from claimscope.replicate.config import TaskSpec
from claimscope.replicate.model import build_model, load_encoder
from claimscope.replicate.stacked import StackedModels

TASKS = {
    "classification": TaskSpec(name="nli", kind="classification", labels=["e", "n", "c"]),
    "multiple_choice": TaskSpec(name="mc", kind="multiple_choice", labels=[]),
    "qa": TaskSpec(name="qa", kind="qa", labels=[]),
    "tagging": TaskSpec(name="pos", kind="tagging", labels=[]),
}


def _batch(kind: str, vocab: int, pad: int):
    import torch

    g = torch.Generator().manual_seed(3)
    lengths = [12, 7, 9, 4]
    ids = torch.full((4, 12), pad, dtype=torch.long)
    mask = torch.zeros((4, 12), dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(5, vocab, (n,), generator=g)
        ids[i, 0] = 0
        mask[i, :n] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if kind == "classification":
        batch["labels"] = torch.tensor([0, 2, 1, 2])
    elif kind == "multiple_choice":
        batch = {"input_ids": ids.view(2, 2, 12), "attention_mask": mask.view(2, 2, 12), "labels": torch.tensor([1, 0])}
    elif kind == "qa":
        batch["start_positions"] = torch.tensor([3, 1, 8, 0])
        batch["end_positions"] = torch.tensor([5, 6, 8, 0])
    else:
        labels = torch.randint(0, 4, (4, 12), generator=g)
        batch["labels"] = labels.masked_fill(mask == 0, -100)
    return batch


@pytest.mark.parametrize("kind", list(TASKS))
def test_stacked_forward_and_gradients_equal_separate_models(tiny_model: Path, kind: str) -> None:
    import copy

    import torch

    torch.manual_seed(0)
    task = TASKS[kind]
    models = []
    for i in range(3):
        torch.manual_seed(10 + i)
        encoder = load_encoder(tiny_model)
        models.append(build_model(encoder, [task], tag_sets={"pos": ["A", "B", "C", "D"]}))
    separate = [copy.deepcopy(m).train(False) for m in models]
    config = models[0].encoder.config
    batch = _batch(kind, config.vocab_size, config.pad_token_id)

    stacked = StackedModels(models).train(False)
    assert not stacked.uses_vmap(task.name)
    losses, logits = stacked(task.name, batch)
    losses.sum().backward()

    real = batch["attention_mask"].reshape(-1, 12).bool()
    for i, alone in enumerate(separate):
        loss, ref = alone(task.name, batch)
        loss.backward()
        assert torch.allclose(losses[i], loss, atol=1e-5), (kind, i, losses[i].item(), loss.item())
        if kind in ("qa", "tagging"):  # per-token outputs: compare the real (non-padding) positions
            width = ref.shape[-1]
            assert torch.allclose(logits[i].reshape(-1, 12, width)[real], ref.reshape(-1, 12, width)[real], atol=1e-5)
        else:
            assert torch.allclose(logits[i], ref, atol=1e-5)
        for name, p in alone.named_parameters():
            g_stacked = stacked.params[name].grad[i]
            g_alone = p.grad if p.grad is not None else torch.zeros_like(p)
            assert torch.allclose(g_stacked, g_alone, atol=1e-5), name
    # the padding rows of both embedding tables get no gradient, as with nn.Embedding(padding_idx=pad): padding is
    # masked as keys and unused by the losses
    pad = config.pad_token_id
    assert stacked.params["encoder.embeddings.word_embeddings.weight"].grad[:, pad].abs().max() == 0
    assert stacked.params["encoder.embeddings.position_embeddings.weight"].grad[:, pad].abs().max() == 0


def test_explicit_path_matches_the_vmapped_path_in_training_mode_without_dropout(tiny_model: Path) -> None:
    import copy

    import torch
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(tiny_model)
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0
    task = TASKS["classification"]
    models = []
    for i in range(2):
        torch.manual_seed(20 + i)
        models.append(build_model(load_encoder(tiny_model, config=cfg), [task]))
        for mod in models[-1].modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
    twins = [copy.deepcopy(m) for m in models]
    batch = _batch("classification", cfg.vocab_size, cfg.pad_token_id)
    explicit = StackedModels(models).train()
    vmapped = StackedModels(twins, use_vmap=True).train()
    assert vmapped.uses_vmap(task.name)
    a, _ = explicit(task.name, batch)
    b, _ = vmapped(task.name, batch)
    assert torch.allclose(a, b, atol=1e-5)


def test_dropout_draws_different_masks_per_model(tiny_model: Path) -> None:
    """Identical weights, dropout on: the K copies must not see the same masks (separate runs would not)."""
    import copy

    import torch

    task = TASKS["classification"]
    torch.manual_seed(0)
    model = build_model(load_encoder(tiny_model), [task])
    models = [model, copy.deepcopy(model)]
    batch = _batch("classification", model.encoder.config.vocab_size, model.encoder.config.pad_token_id)
    losses, _ = StackedModels(models).train()(task.name, batch)
    assert not torch.allclose(losses[0], losses[1])
    same, _ = StackedModels([copy.deepcopy(model), copy.deepcopy(model)]).train(False)(task.name, batch)
    assert torch.allclose(same[0], same[1])


def _no_dropout_pair(tiny_model: Path, kind: str = "classification"):
    import copy

    import torch
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(tiny_model)
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = 0.0
    models = []
    for i in range(2):
        torch.manual_seed(30 + i)
        models.append(build_model(load_encoder(tiny_model, config=cfg), [TASKS[kind]]))
    return cfg, models, [copy.deepcopy(m) for m in models]


def test_low_precision_weight_copies_train_exactly_as_casting_every_forward(tiny_model: Path) -> None:
    """Under bf16 autocast, training through the bf16 weight copies (StackedModels(low_precision=): the matmuls read
    them, their bf16 gradients feed the clipping and AdamW on the fp32 weights, which rewrites them) gives the very
    losses and weights that casting the fp32 weights in each forward gives, when that path's weight gradients are
    bf16-rounded too (as here on the CPU, and in autocast's own matmuls): the copies never go stale, across optimiser
    steps with weight decay and clipping."""
    import torch

    from claimscope.replicate.config import TrainSpec

    cfg, models, twins = _no_dropout_pair(tiny_model)
    task = TASKS["classification"]
    with_copies = StackedModels(models, lazy_rows=True, low_precision=torch.bfloat16).train()
    casting = StackedModels(twins, lazy_rows=True).train()
    assert with_copies.low and not casting.low
    assert all(".embeddings." not in n and n.endswith(".weight") for n in with_copies.low)
    start = with_copies.params["encoder.encoder.layer.0.intermediate.dense.weight"].detach().clone()
    spec = TrainSpec(weight_decay=0.1, max_grad_norm=0.5)
    opts = [s.optimizer(3e-3, spec) for s in (with_copies, casting)]
    batch = _batch("classification", cfg.vocab_size, cfg.pad_token_id)
    for _ in range(3):
        out = []
        for stacked, opt in zip((with_copies, casting), opts, strict=True):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                losses, _ = stacked(task.name, batch)
            losses.sum().backward()
            opt.step()
            opt.zero_grad()
            out.append(losses.detach())
        assert torch.equal(out[0], out[1])
    for name, low in with_copies.low.items():
        assert low.grad is None  # zero_grad reached the copies
        assert torch.equal(low, with_copies.params[name].detach().to(torch.bfloat16)), name
        # equal but for the clip factor's float rounding (the norm is summed per tensor here, per model slice
        # there), which Adam's normalisation can carry into near-zero gradients: under 1 % of one lr-sized step
        assert (with_copies.params[name] - casting.params[name]).abs().max() < 0.01 * 3e-3, name
    name = "encoder.encoder.layer.0.intermediate.dense.weight"
    assert not torch.equal(with_copies.params[name], start)  # training moved the weights


def test_low_precision_residual_stores_layer_norm_outputs_in_bf16_only_under_autocast(tiny_model: Path) -> None:
    import torch

    from claimscope.replicate.stacked_encoder import StackedEncoder

    cfg, models, _ = _no_dropout_pair(tiny_model, "qa")
    stacked = StackedModels(models).train(False)
    low = StackedEncoder(cfg, low_precision_residual=True)
    batch = _batch("qa", cfg.vocab_size, cfg.pad_token_id)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    # without autocast the option changes nothing
    assert torch.equal(low.encode(stacked.params, ids, mask, False), stacked._encoder.encode(stacked.params, ids, mask,
                                                                                             False))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h_low = low.encode(stacked.params, ids, mask, False)
        h_fp32 = stacked._encoder.encode(stacked.params, ids, mask, False)
        loss_low, _ = low(stacked.params, TASKS["qa"], batch, False)
        loss_fp32, _ = stacked._encoder(stacked.params, TASKS["qa"], batch, False)
    assert h_low.dtype == torch.bfloat16 and h_fp32.dtype == torch.float32
    # bf16 rounding of a LayerNorm output (values ~1): differences of a few bf16 steps, not a different model
    assert 0 < (h_low.float() - h_fp32).abs().max() < 0.1
    assert torch.allclose(loss_low, loss_fp32, rtol=0.02)
