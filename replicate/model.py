"""The shared encoder and the task heads; the encoder carries over between phases, heads are re-created.

Heads follow the `transformers` RoBERTa heads: classification (dense-tanh-out on <s>), multiple choice (the same head
scoring each choice), extractive QA (start/end logits), token tagging (linear per token), MLM (tied decoder).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import torch
from torch import nn

from .config import TaskSpec

if TYPE_CHECKING:
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)


def load_encoder(name_or_path: str | Path, *, attn_implementation: str = "sdpa", config: Any = None) -> nn.Module:
    """A pretrained encoder by hub name or local folder, or a randomly initialised one from `config`."""
    from transformers import AutoModel

    if config is not None:
        return AutoModel.from_config(config, add_pooling_layer=False, attn_implementation=attn_implementation)
    return AutoModel.from_pretrained(
        str(name_or_path), add_pooling_layer=False, attn_implementation=attn_implementation
    )


class EncoderConfig(Protocol):
    """The fields of a `transformers` encoder config that this package reads."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int


def encoder_config(encoder: nn.Module) -> EncoderConfig:
    """`encoder.config`, typed (torch types an nn.Module's attribute access as Tensor | Module)."""
    return cast(EncoderConfig, encoder.config)


def hf_model(encoder: nn.Module) -> PreTrainedModel:
    """`encoder` as the `transformers` model it is, for its methods (get_input_embeddings, save_pretrained)."""
    return cast("PreTrainedModel", encoder)


class ClassificationHead(nn.Module):
    def __init__(self, hidden: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(hidden, num_labels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.dropout(h[:, 0])
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out_proj(x)


class MLMHead(nn.Module):
    def __init__(self, hidden: int, vocab: int, eps: float, embeddings: nn.Embedding) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.layer_norm = nn.LayerNorm(hidden, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab))
        self.embeddings = [embeddings]  # a list so the tied weight is not registered twice

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(nn.functional.gelu(self.dense(h)))
        return nn.functional.linear(x, self.embeddings[0].weight, self.bias)


def make_head(
    task: TaskSpec, encoder_config: Any, *, num_tags: int = 0, embeddings: nn.Embedding | None = None
) -> nn.Module:
    h = encoder_config.hidden_size
    p = getattr(encoder_config, "hidden_dropout_prob", 0.1)
    if task.kind == "classification":
        return ClassificationHead(h, len(task.labels), p)
    if task.kind == "multiple_choice":
        return ClassificationHead(h, 1, p)
    if task.kind == "qa":
        return nn.Linear(h, 2)
    if task.kind == "tagging":
        return nn.Sequential(nn.Dropout(p), nn.Linear(h, num_tags))
    if task.kind == "mlm":
        if embeddings is None:
            raise ValueError("an MLM head needs the encoder's word embeddings")
        return MLMHead(h, encoder_config.vocab_size, encoder_config.layer_norm_eps, embeddings)
    raise ValueError(f"no head for kind {task.kind}")


class MultiTaskModel(nn.Module):
    """One encoder, one head per task; `forward(task, batch)` returns (loss or None, logits)."""

    def __init__(self, encoder: nn.Module, tasks: dict[str, TaskSpec], heads: dict[str, nn.Module]) -> None:
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads)
        self.tasks = tasks

    def forward(self, task_name: str, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, torch.Tensor]:
        task = self.tasks[task_name]
        ids, mask = batch["input_ids"], batch.get("attention_mask")  # None: no padding in this batch
        n_choices = 0
        if task.kind == "multiple_choice":
            b, n_choices, length = ids.shape
            ids = ids.reshape(b * n_choices, length)
            mask = mask.reshape(b * n_choices, length) if mask is not None else None
        h = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        logits = self.heads[task_name](h)
        labels = batch.get("labels")
        loss = None
        if task.kind == "multiple_choice":
            logits = logits.reshape(-1, n_choices)
        if task.kind == "qa":
            logits, start, end = span_logits(logits, mask)
            if "start_positions" in batch:
                ce = nn.functional.cross_entropy
                loss = (ce(start, batch["start_positions"]) + ce(end, batch["end_positions"])) / 2
        elif labels is not None:
            flat = logits.float().reshape(-1, logits.shape[-1]) if logits.dim() > 2 else logits.float()
            loss = nn.functional.cross_entropy(flat, labels.reshape(-1), ignore_index=-100)
        return loss, logits


def span_logits(logits: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """QA head output [..., L, 2] -> (fp32 logits with padding at -1e4, start logits, end logits)."""
    start, end = logits.float().unbind(-1)
    if mask is not None:
        start = start.masked_fill(mask == 0, -1e4)
        end = end.masked_fill(mask == 0, -1e4)
    return torch.stack([start, end], -1), start, end


def build_model(
    encoder: nn.Module, tasks: list[TaskSpec], tag_sets: dict[str, list[str]] | None = None
) -> MultiTaskModel:
    """Fresh heads for `tasks` on top of `encoder` (heads are never carried between phases)."""
    tag_sets = tag_sets or {}
    emb = cast(nn.Embedding, hf_model(encoder).get_input_embeddings())
    heads = {
        t.name: make_head(t, encoder.config, num_tags=len(tag_sets.get(t.name, [])), embeddings=emb) for t in tasks
    }
    return MultiTaskModel(encoder, {t.name: t for t in tasks}, heads)


def collate(features: list[dict[str, Any]], pad_id: int, pad_to: int = 8) -> dict[str, torch.Tensor]:
    """Pad to the longest sequence in the batch (rounded up to `pad_to` for tensor-core friendly shapes)."""
    first = features[0]["input_ids"]
    nested = isinstance(first[0], list)
    seqs = [s for f in features for s in (f["input_ids"] if nested else [f["input_ids"]])]
    length = max(len(s) for s in seqs)
    length = -(-length // pad_to) * pad_to
    ids = torch.full((len(seqs), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), length), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    out: dict[str, torch.Tensor] = {"input_ids": ids, "attention_mask": mask}
    if nested:
        n = len(first)
        out["input_ids"] = ids.view(len(features), n, length)
        out["attention_mask"] = mask.view(len(features), n, length)
    if "labels" in features[0]:
        lab = features[0]["labels"]
        if isinstance(lab, list):
            t = torch.full((len(features), length), -100, dtype=torch.long)
            for i, f in enumerate(features):
                t[i, : len(f["labels"])] = torch.tensor(f["labels"], dtype=torch.long)
            out["labels"] = t
        else:
            out["labels"] = torch.tensor([f["labels"] for f in features], dtype=torch.long)
    for key in ("start_positions", "end_positions"):
        if key in features[0]:
            out[key] = torch.tensor([f[key] for f in features], dtype=torch.long)
    return out


def drop_full_mask(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove an all-ones attention mask (on the CPU, before the batch moves): exact, and it lets SDPA use its fastest
    kernels. Length-bucketed batches often have no padding at all."""
    mask = batch.get("attention_mask")
    if mask is not None and bool(mask.all()):
        batch = {k: v for k, v in batch.items() if k != "attention_mask"}
    return batch


def mask_tokens(
    ids: torch.Tensor,
    mask: torch.Tensor,
    *,
    mask_id: int,
    vocab: int,
    special: torch.Tensor,
    p: float,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: p of the real tokens are targets; of those 80 % -> <mask>, 10 % -> random, 10 % unchanged."""
    labels = ids.clone()
    prob = torch.full(ids.shape, p)
    prob[(mask == 0) | torch.isin(ids, special)] = 0.0
    chosen = torch.bernoulli(prob, generator=gen).bool()
    labels[~chosen] = -100
    ids = ids.clone()
    repl = torch.bernoulli(torch.full(ids.shape, 0.8), generator=gen).bool() & chosen
    ids[repl] = mask_id
    rand = torch.bernoulli(torch.full(ids.shape, 0.5), generator=gen).bool() & chosen & ~repl
    ids[rand] = torch.randint(vocab, ids.shape, generator=gen)[rand]
    return ids, labels


def save_encoder(model: MultiTaskModel | nn.Module, tokenizer: Any, out_dir: Path) -> Path:
    """Write the encoder (and tokenizer) so the next phase can start from it."""
    encoder = model.encoder if isinstance(model, MultiTaskModel) else model
    encoder = getattr(encoder, "_orig_mod", encoder)
    out_dir.mkdir(parents=True, exist_ok=True)
    hf_model(encoder).save_pretrained(out_dir)
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    return out_dir
