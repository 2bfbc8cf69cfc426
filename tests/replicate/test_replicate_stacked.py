"""K grid cells trained as one batched model end where K separate runs end (same batches, clipping, AdamW, schedule)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from claimscope.replicate.config import TaskSpec, TrainSpec
from claimscope.replicate.dist import DistEnv
from claimscope.replicate.evaluate import evaluate_task
from claimscope.replicate.features import featurize
from claimscope.replicate.model import build_model, load_encoder
from claimscope.replicate.stacked import StackedModels, clip_per_model, train_phase_stacked
from claimscope.replicate.train import train_phase

from .conftest import WORDS


def _rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice([w for w in WORDS if w != "cat"]) for _ in range(rng.randrange(3, 8))]
        label = rng.random() < 0.5
        if label:
            words[rng.randrange(len(words))] = "cat"
        out.append({"text_a": " ".join(words), "label": "1" if label else "0"})
    return out


def _models(tiny_model: Path, task: TaskSpec, k: int, *, dropout: float = 0.0):
    """k different encoders (as after k different intermediate tasks), each with its fresh head."""
    import torch
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(tiny_model)
    cfg.hidden_dropout_prob = cfg.attention_probs_dropout_prob = dropout
    out = []
    for i in range(k):
        torch.manual_seed(100 + i)
        out.append(build_model(load_encoder(tiny_model, config=cfg), [task]))
        for mod in out[-1].modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = dropout
    return out


def test_stacked_training_equals_separate_runs(tiny_model: Path) -> None:
    import copy

    import torch
    from transformers import AutoTokenizer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    task = TaskSpec(name="hascat", kind="classification", labels=["0", "1"], batch_size=8, epochs=2, max_len=16)
    feats = featurize(task, tok, _rows(40, 0), train=True)
    # max_grad_norm small enough that clipping acts on every step: per-model clipping is part of the check
    spec = TrainSpec(precision="fp32", select_on_dev=False, max_grad_norm=0.05, bucket_size=2)
    env = DistEnv()
    models = _models(tiny_model, task, 3)
    separate = [copy.deepcopy(m) for m in models]
    initial = [copy.deepcopy(m.state_dict()) for m in models]
    assert not torch.equal(
        separate[0].encoder.encoder.layer[0].attention.self.query.weight,
        separate[1].encoder.encoder.layer[0].attention.self.query.weight,
    )
    for m in separate:
        train_phase(m, {"hascat": (task, feats)}, spec, env, lr=2e-3, epochs=2, seed=7, pad_id=tok.pad_token_id)
    results = train_phase_stacked(models, task, feats, spec, env, lr=2e-3, epochs=task.epochs, seed=7,
                                  pad_id=tok.pad_token_id)  # fmt: skip
    assert [r.steps for r in results] == [10, 10, 10]
    for stacked_model, alone, before in zip(models, separate, initial, strict=True):
        a, b = stacked_model.state_dict(), alone.state_dict()
        assert a.keys() == b.keys()
        worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
        moved = max((a[k].float() - before[k].float()).abs().max().item() for k in a)
        assert moved > 1e-3  # training changed the weights ...
        assert worst < 1e-5  # ... exactly as the separate run did
    # the three models stayed different models
    w = [m.heads["hascat"].out_proj.weight for m in models]
    assert not torch.allclose(w[0], w[1])


def test_stacked_models_learn_and_select_on_dev(tiny_model: Path) -> None:
    import torch
    from transformers import AutoTokenizer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    task = TaskSpec(name="hascat", kind="classification", labels=["0", "1"], batch_size=16, epochs=6, max_len=16)
    spec = TrainSpec(precision="fp32", select_on_dev=True)
    env = DistEnv()
    dev = _rows(64, 5)
    models = _models(tiny_model, task, 2, dropout=0.1)
    results = train_phase_stacked(
        models, task, featurize(task, tok, _rows(256, 1), train=True), spec, env, lr=3e-3, epochs=task.epochs,
        seed=0, pad_id=tok.pad_token_id,
        eval_fn=lambda m: evaluate_task(m, task, tok, dev, "en", spec, env)["accuracy"],
    )  # fmt: skip
    for m, r in zip(models, results, strict=True):
        assert len(r.dev_scores) == 6
        assert max(r.dev_scores) >= 90.0
        assert r.losses[-1] < r.losses[0]
        # the kept weights are the best epoch's, in the model the caller holds
        assert evaluate_task(m, task, tok, dev, "en", spec, env)["accuracy"] == max(r.dev_scores)


def test_per_model_clipping_matches_clip_grad_norm() -> None:
    import torch

    torch.manual_seed(0)
    grads = [torch.randn(3, 5, 4), torch.randn(3, 7)]
    grads[0][1] *= 0.001  # model 1 is below the threshold: left alone
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    clip_per_model(params, 1.0, 3)
    for i in range(3):
        alone = [torch.zeros_like(g[i], requires_grad=True) for g in grads]
        for p, g in zip(alone, grads, strict=True):
            p.grad = g[i].clone()
        torch.nn.utils.clip_grad_norm_(alone, 1.0)
        for p, q in zip(params, alone, strict=True):
            assert torch.allclose(p.grad[i], q.grad, atol=1e-7)


def test_models_of_different_shape_are_refused(tiny_model: Path) -> None:
    a = build_model(load_encoder(tiny_model), [TaskSpec(name="t", kind="classification", labels=["0", "1"])])
    b = build_model(load_encoder(tiny_model), [TaskSpec(name="t", kind="classification", labels=["0", "1", "2"])])
    with pytest.raises(ValueError, match="same structure"):
        StackedModels([a, b])
