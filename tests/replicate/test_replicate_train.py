"""The training loop learns, buckets by length, splits batches over ranks; recipe configs load."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from claimscope.replicate.config import list_configs, load_recipe
from claimscope.replicate.dist import DistEnv
from claimscope.replicate.errors import BadRecipe
from claimscope.replicate.evaluate import evaluate_task
from claimscope.replicate.features import featurize
from claimscope.replicate.model import build_model, load_encoder
from claimscope.replicate.train import bucketed_batches, train_phase

from .conftest import WORDS


def test_loop_learns_a_learnable_task(tiny_model: Path) -> None:
    import torch
    from transformers import AutoTokenizer

    from claimscope.replicate.config import TaskSpec, TrainSpec

    torch.set_num_threads(1)
    rng = random.Random(0)

    def rows(n):
        out = []
        for _ in range(n):
            words = [rng.choice([w for w in WORDS if w != "cat"]) for _ in range(6)]
            label = rng.random() < 0.5
            if label:
                words[rng.randrange(6)] = "cat"
            out.append({"text_a": " ".join(words), "label": "1" if label else "0"})
        return out

    task = TaskSpec(name="hascat", kind="classification", labels=["0", "1"], batch_size=16, epochs=8, max_len=16)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    spec = TrainSpec(precision="fp32", select_on_dev=True)
    env = DistEnv()
    torch.manual_seed(0)
    model = build_model(load_encoder(tiny_model), [task])
    dev = rows(64)
    res = train_phase(model, {"hascat": (task, featurize(task, tok, rows(256), train=True))}, spec, env, lr=3e-3,
                      epochs=task.epochs, seed=0, pad_id=tok.pad_token_id,
                      eval_fn=lambda m: evaluate_task(m, task, tok, dev, "en", spec, env)["accuracy"])  # fmt: skip
    assert res.steps == 8 * 16
    assert max(res.dev_scores) >= 90.0
    assert res.losses[-1] < res.losses[0]
    # model selection kept the best epoch's weights
    assert evaluate_task(model, task, tok, dev, "en", spec, env)["accuracy"] == max(res.dev_scores)


def test_bucketed_batches_cover_and_split() -> None:
    r = random.Random(1)
    lengths = [r.randrange(5, 100) for _ in range(103)]
    one = bucketed_batches(lengths, 8, seed=3, bucket_size=4)
    assert sorted(i for b in one for i in b) == list(range(103))
    spreads = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in one if len(b) == 8]
    flat = bucketed_batches(lengths, 8, seed=3, bucket_size=1)
    flat_spreads = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in flat if len(b) == 8]
    assert sum(spreads) < sum(flat_spreads) / 2  # bucketing packs similar lengths together
    r0 = bucketed_batches(lengths, 4, seed=3, rank=0, world=2)
    r1 = bucketed_batches(lengths, 4, seed=3, rank=1, world=2)
    assert len(r0) == len(r1)
    assert not {i for b in r0 for i in b} & {i for b in r1 for i in b}


def test_bundled_configs_load() -> None:
    names = list_configs()
    assert "paper-grid" in names
    for name in names:
        recipe = load_recipe(name)
        assert recipe.targets
    grid = load_recipe("paper-grid")
    assert len(grid.phase2_groups()) == 1 + 8 * 2  # baseline + 8 intermediate settings x {no MLM, MLM}
    assert grid.task("xquad").batch_size == 16 and grid.task("xquad").lr == 3e-6
    assert grid.task("squad").lr == 1e-5 and grid.train.weight_decay == 0.01 and grid.train.warmup_ratio == 0.1
    assert grid.intermediate_tasks("multitask", True)[-1] == "mlm"
    assert "squad" not in grid.intermediate_tasks("multitask", False)
    with pytest.raises(BadRecipe, match="no such config"):
        load_recipe("nope")
    with pytest.raises(BadRecipe, match="unknown target"):
        load_recipe("paper-grid", targets=["squad"])


def test_dropping_an_all_ones_mask_is_exact(tiny_model: Path) -> None:
    import torch
    from transformers import AutoTokenizer

    from claimscope.replicate.config import TaskSpec
    from claimscope.replicate.model import collate, drop_full_mask

    tok = AutoTokenizer.from_pretrained(tiny_model)
    task = TaskSpec(name="c", kind="classification", labels=["0", "1"], max_len=16)
    model = build_model(load_encoder(tiny_model), [task]).eval()
    feats = featurize(task, tok, [{"text_a": "the cat sat on a tree", "label": "0"}] * 2, train=True)
    batch = collate(feats, tok.pad_token_id, pad_to=1)
    dropped = drop_full_mask(batch)
    assert "attention_mask" not in dropped
    with torch.no_grad():
        torch.testing.assert_close(model("c", batch)[1], model("c", dropped)[1])
    padded = collate(feats, tok.pad_token_id, pad_to=32)
    assert "attention_mask" in drop_full_mask(padded)
