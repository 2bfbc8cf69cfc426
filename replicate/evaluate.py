"""Evaluation of each task kind: predictions per language and the paper's metric for them.

QA uses the standard span post-processing (best start/end pair inside the context, end >= start, at most
`max_answer_len` tokens, over all windows of an example). Retrieval mean-pools a middle layer and uses cosine nearest
neighbours (BUCC: F1 at a similarity threshold tuned on dev; Tatoeba: accuracy).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from . import metrics
from .config import TaskSpec, TrainSpec
from .data import Example
from .dist import DistEnv
from .features import featurize, label_index
from .model import MultiTaskModel, collate, drop_full_mask, encoder_config
from .train import autocast

logger = logging.getLogger(__name__)


@torch.no_grad()
def predict_logits(
    model: MultiTaskModel, task_name: str, feats: list[dict[str, Any]], spec: TrainSpec, env: DistEnv, pad_id: int
) -> list[np.ndarray]:
    """Logits per feature (sorted by length for speed, returned in input order; padding positions trimmed)."""
    model.eval()
    order = sorted(range(len(feats)), key=lambda i: len(feats[i]["input_ids"]))
    out: list[np.ndarray | None] = [None] * len(feats)
    for b in range(0, len(order), spec.eval_batch):
        idx = order[b : b + spec.eval_batch]
        batch = collate([feats[i] for i in idx], pad_id)
        batch.pop("labels", None)
        batch = {k: v.to(env.device) for k, v in drop_full_mask(batch).items()}
        with autocast(spec, env.device):
            _, logits = model(task_name, batch)
        logits = logits.float().cpu().numpy()
        for j, i in enumerate(idx):
            n = len(feats[i]["input_ids"])
            out[i] = logits[j, :n] if logits.ndim == 3 else logits[j]
    return [x for x in out if x is not None]


def qa_postprocess(
    examples: list[Example],
    feats: list[dict[str, Any]],
    logits: list[np.ndarray],
    *,
    n_best: int = 20,
    max_answer_len: int = 30,
) -> dict[str, str]:
    """The best answer text per example id from start/end logits over all of the example's windows."""
    by_example: dict[int, list[int]] = {}
    for i, f in enumerate(feats):
        by_example.setdefault(f["example_index"], []).append(i)
    preds: dict[str, str] = {}
    for ex_idx, ex in enumerate(examples):
        best_score, best_text = -np.inf, ""
        for i in by_example.get(ex_idx, []):
            start, end = logits[i][:, 0], logits[i][:, 1]
            offsets = feats[i]["offset_mapping"]
            for s in np.argsort(start)[::-1][:n_best]:
                for e in np.argsort(end)[::-1][:n_best]:
                    if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                        continue
                    if e < s or e - s + 1 > max_answer_len:
                        continue
                    score = start[s] + end[e]
                    if score > best_score:
                        best_score = score
                        best_text = ex["context"][offsets[s][0] : offsets[e][1]]
        preds[str(ex.get("id", ex_idx))] = best_text
    return preds


def evaluate_task(
    model: MultiTaskModel,
    task: TaskSpec,
    tokenizer: Any,
    examples: list[Example],
    lang: str,
    spec: TrainSpec,
    env: DistEnv,
    *,
    tags: list[str] | None = None,
) -> dict[str, float]:
    """The task's metrics on `examples` of one language (scores in %)."""
    pad = tokenizer.pad_token_id
    feats = featurize(task, tokenizer, examples, train=False, tags=tags)
    logits = predict_logits(model, task.name, feats, spec, env, pad)
    if task.kind in ("classification", "multiple_choice"):
        preds = [int(np.argmax(x)) for x in logits]
        if task.kind == "classification":
            golds = [label_index(task, ex["label"]) for ex in examples]
        else:
            golds = [int(ex["label"]) for ex in examples]
        return {"accuracy": metrics.accuracy(preds, golds)}
    if task.kind == "qa":
        preds_text = qa_postprocess(examples, feats, logits, max_answer_len=task.max_answer_len)
        golds_text = {str(ex.get("id", i)): list(ex["answers"]["text"]) or [""] for i, ex in enumerate(examples)}
        style = "mlqa" if task.name == "mlqa" else "squad"
        return metrics.qa_scores(preds_text, golds_text, lang=lang, style=style)
    if task.kind == "tagging":
        assert tags is not None
        fill = "O" if "O" in tags else tags[0]
        pred_tags, gold_tags = [], []
        for f, lg, ex in zip(feats, logits, examples, strict=True):
            words = [fill] * len(ex["tokens"])  # words cut off by max_len keep the fill tag
            for pos, w in f["first_pos"]:
                words[w] = tags[int(np.argmax(lg[pos]))]
            pred_tags.append(words)
            gold_tags.append([str(t) for t in ex["tags"]])
        return {"f1": metrics.tagging_f1(pred_tags, gold_tags)}
    raise ValueError(f"evaluate_task does not handle kind {task.kind}")


@torch.no_grad()
def encode_sentences(
    encoder: torch.nn.Module,
    tokenizer: Any,
    texts: list[str],
    layer: int,
    spec: TrainSpec,
    env: DistEnv,
    max_len: int = 128,
) -> np.ndarray:
    """Mean-pooled hidden states of `layer` (0 = embeddings, L = last layer) for each text."""
    encoder.eval()
    out = np.zeros((len(texts), encoder_config(encoder).hidden_size), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for b in range(0, len(order), spec.eval_batch):
        idx = order[b : b + spec.eval_batch]
        enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_len, padding=True, return_tensors="pt")
        enc = {k: v.to(env.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        with autocast(spec, env.device):
            hs = encoder(**enc, output_hidden_states=True).hidden_states[layer].float()
        m = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (hs * m).sum(1) / m.sum(1).clamp(min=1.0)
        out[idx] = pooled.cpu().numpy()
    return out


def evaluate_retrieval(
    encoder: torch.nn.Module,
    task: TaskSpec,
    tokenizer: Any,
    test: list[Example],
    spec: TrainSpec,
    env: DistEnv,
    layer: int,
    dev: list[Example] | None = None,
) -> dict[str, float]:
    """Tatoeba: accuracy of finding each sentence's English translation. BUCC: F1 at a threshold tuned on `dev`
    (or, with no dev data, on the test set itself: an optimistic oracle, flagged in the result)."""

    def emb(texts: list[str]) -> np.ndarray:
        return encode_sentences(encoder, tokenizer, texts, layer, spec, env, task.max_len)

    if task.protocol == "tatoeba":
        pairs = [r for r in test if r.get("src") and r.get("tgt")]
        return {"accuracy": metrics.tatoeba_accuracy(emb([r["src"] for r in pairs]), emb([r["tgt"] for r in pairs]))}

    def cands_gold(rows: list[Example]) -> tuple[list[tuple[str, str, float]], set[tuple[str, str]]]:
        src = [r for r in rows if r.get("src")]
        tgt = [r for r in rows if r.get("tgt")]
        gold = {(str(r["src_id"]), str(r["tgt_id"])) for r in rows if r.get("src") and r.get("tgt")}
        c = metrics.bucc_candidates(
            emb([r["src"] for r in src]), emb([r["tgt"] for r in tgt]),
            [str(r["src_id"]) for r in src], [str(r["tgt_id"]) for r in tgt],
        )  # fmt: skip
        return c, gold

    test_c, test_g = cands_gold(test)
    if dev:
        th, _ = metrics.bucc_best_threshold(*cands_gold(dev))
        return {"f1": metrics.bucc_f1_at(test_c, test_g, th), "threshold": th}
    th, f1 = metrics.bucc_best_threshold(test_c, test_g)
    return {"f1": f1, "threshold": th, "threshold_tuned_on_test": 1.0}
