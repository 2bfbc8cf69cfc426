"""K RoBERTa-family encoders (XLM-R, RoBERTa) and their task heads run as one network over stacked weights.

`replicate.stacked` can train any architecture by `vmap`-ing the module's forward over the stacked weights, but then
attention must be plain matmuls: PyTorch's fused attention kernels have no working batching rule (see
`stacked._plain_attention`). This module writes the XLM-R forward out by hand for weights of shape [K, ...]: every
Linear is one `baddbmm` over the K models, LayerNorm is normalised once and scaled per model, and attention runs as
one `scaled_dot_product_attention` call over the merged [K·batch] dimension, so the flash / memory-efficient kernels
apply. The maths is `transformers`' XLM-R (absolute positions counted from the padding index, token type 0, post-norm
layers, exact GELU) and `replicate.model`'s heads and losses, checked against them on CPU
(tests/replicate/test_stacked_encoder.py); parameter names are those of `MultiTaskModel`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F  # noqa: N812

from .config import TaskSpec
from .model import span_logits

ENCODER = "encoder."
WORD_EMBEDDINGS = ENCODER + "embeddings.word_embeddings.weight"
KINDS = ("classification", "multiple_choice", "qa", "tagging")


def supports(config: Any, task: TaskSpec) -> bool:
    """True when this module computes exactly what the `transformers` model with `config` and the task head do."""
    return (
        getattr(config, "model_type", None) in ("xlm-roberta", "roberta")
        and task.kind in KINDS
        and getattr(config, "position_embedding_type", "absolute") in (None, "absolute")
        and getattr(config, "hidden_act", None) == "gelu"
        and not getattr(config, "is_decoder", False)
        and not getattr(config, "add_cross_attention", False)
    )


class _StackedMatmul(torch.autograd.Function):
    """x [K, N, in] @ w[K, out, in]^T -> [K, N, out]: one batched matmul for the K models.

    Written as a Function for its backward: autograd through `bmm(x, w.transpose(1, 2))` yields the weight gradient
    in the transposed layout, and turning that into the weight's own layout was a strided copy of every weight
    gradient each step (32 ms of a 229 ms step for 8 XLM-R large models, profiled on the H200). Here the weight
    gradient is computed as dy^T @ x, already [K, out, in], in the weight's dtype: for fp32 weights under autocast
    written straight in fp32 by the matmul on CUDA rather than by a cast of its bf16 result; for weights already in
    the autocast dtype (`StackedModels(low_precision=)`) in that dtype, as autocast's own matmuls round it."""

    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda")
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        dtype = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        ctx.w_dtype = w.dtype
        x, w = x.to(dtype), w.to(dtype)
        ctx.save_for_backward(x, w)
        return torch.bmm(x, w.transpose(1, 2))

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, w = ctx.saved_tensors
        dy = dy.to(x.dtype)
        if dy.is_cuda and x.dtype != ctx.w_dtype:
            dw = torch.bmm(dy.transpose(1, 2), x, out_dtype=ctx.w_dtype)
        else:
            dw = torch.bmm(dy.transpose(1, 2), x)
        return torch.bmm(dy, w), dw


def _dense(p: dict[str, torch.Tensor], name: str, x: torch.Tensor) -> torch.Tensor:
    """The stacked Linear `name` (its `.weight` [K, out, in] and `.bias` [K, out]) applied to x [K, N, in]. The bias
    is added outside the matmul so that, compiled, the add fuses into whatever element-wise work follows (dropout,
    residual, LayerNorm, GELU) instead of `baddbmm` first writing the broadcast bias into its output."""
    y = _StackedMatmul.apply(x, p[name + ".weight"])
    return y + p[name + ".bias"].to(y.dtype).unsqueeze(1)


def is_matmul_weight(name: str, tensor: torch.Tensor) -> bool:
    """The stacked parameters `_dense` multiplies by (every [K, out, in] weight but the embedding tables)."""
    return name.endswith(".weight") and tensor.dim() == 3 and ".embeddings." not in name


def _layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float, low: bool = False) -> torch.Tensor:
    """`low`: under autocast, store the output (the residual stream of a post-norm encoder) in the autocast dtype;
    the normalisation itself is computed in fp32 either way. Autocast alone returns LayerNorm in fp32."""
    y = F.layer_norm(x, x.shape[-1:], eps=eps) * w.unsqueeze(1) + b.unsqueeze(1)
    if low and torch.is_autocast_enabled(x.device.type):
        return y.to(torch.get_autocast_dtype(x.device.type))
    return y


def _lookup(table: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Rows `ids` [B, L] of each model's table [K, V, D] -> [K, B, L, D] (one gather over the flattened tables)."""
    k, v, d = table.shape
    offsets = torch.arange(k, device=ids.device).view(k, 1, 1) * v
    return F.embedding(ids.unsqueeze(0) + offsets, table.reshape(k * v, d))


class StackedEncoder:
    """`__call__(params, task, batch, training)` -> (losses [K], logits [K, ...]), equal to K `MultiTaskModel`s."""

    def __init__(self, config: Any, *, low_precision_residual: bool = False) -> None:
        # low_precision_residual: LayerNorm outputs (the residual stream) stored in the autocast dtype (bf16), as
        # Megatron-LM stores them; autocast alone keeps them in fp32 as `transformers` does. About half the memory
        # traffic of the element-wise kernels around every LayerNorm; no effect without autocast.
        self.low = low_precision_residual
        self.layers = config.num_hidden_layers
        self.heads = config.num_attention_heads
        self.eps = config.layer_norm_eps
        self.pad = config.pad_token_id
        self.p_hidden = config.hidden_dropout_prob
        self.p_attn = config.attention_probs_dropout_prob

    def embed(
        self, p: dict[str, torch.Tensor], ids: torch.Tensor, training: bool, row_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`row_ids`: where each token's row sits in p[WORD_EMBEDDINGS] when that holds only the batch's rows
        (replicate.stacked_optim.LazyRows) rather than the whole table."""
        pre = ENCODER + "embeddings."
        real = ids.ne(self.pad)
        # positions count real tokens from pad + 1 (transformers' create_position_ids_from_input_ids)
        positions = torch.cumsum(real.int(), dim=1) * real + self.pad
        words = _lookup(p[WORD_EMBEDDINGS], ids if row_ids is None else row_ids)
        pos = _lookup(p[pre + "position_embeddings.weight"], positions)
        # nn.Embedding(padding_idx=pad) keeps the padding rows' gradient at zero; here padding positions are masked as
        # keys and unused by every head's loss, so no gradient reaches those rows either (tested)
        token_type = p[pre + "token_type_embeddings.weight"][:, 0].view(-1, 1, 1, words.shape[-1])
        x = (words + token_type + pos).flatten(1, 2)  # [K, B·L, D]
        x = _layer_norm(x, p[pre + "LayerNorm.weight"], p[pre + "LayerNorm.bias"], self.eps, self.low)
        return F.dropout(x, self.p_hidden, training)

    def layer(
        self, p: dict[str, torch.Tensor], i: int, x: torch.Tensor, mask: torch.Tensor | None, shape: tuple[int, int],
        training: bool,
    ) -> torch.Tensor:
        pre = f"{ENCODER}encoder.layer.{i}."
        k, (b, length) = x.shape[0], shape
        d = x.shape[-1]

        def heads(name: str) -> torch.Tensor:  # [K, B·L, D] -> [K·B, H, L, D/H]
            y = _dense(p, pre + f"attention.self.{name}", x)
            return y.view(k * b, length, self.heads, d // self.heads).transpose(1, 2)

        attn = F.scaled_dot_product_attention(
            heads("query"), heads("key"), heads("value"), attn_mask=mask, dropout_p=self.p_attn if training else 0.0
        )
        attn = attn.transpose(1, 2).reshape(k, b * length, d)
        h = F.dropout(_dense(p, pre + "attention.output.dense", attn), self.p_hidden, training)
        x = _layer_norm(h + x, p[pre + "attention.output.LayerNorm.weight"], p[pre + "attention.output.LayerNorm.bias"],
                        self.eps, self.low)
        h = F.gelu(_dense(p, pre + "intermediate.dense", x))
        h = F.dropout(_dense(p, pre + "output.dense", h), self.p_hidden, training)
        return _layer_norm(h + x, p[pre + "output.LayerNorm.weight"], p[pre + "output.LayerNorm.bias"], self.eps,
                           self.low)

    def encode(
        self, p: dict[str, torch.Tensor], ids: torch.Tensor, mask: torch.Tensor | None, training: bool,
        row_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Last hidden states [K, B, L, D] of the K encoders for the shared batch `ids` [B, L]."""
        k = p[WORD_EMBEDDINGS].shape[0]
        b, length = ids.shape
        x = self.embed(p, ids, training, row_ids)
        attn_mask = None
        if mask is not None:  # keys that are padding get no attention; [K·B, 1, 1, L] broadcast over heads and queries
            attn_mask = mask.bool().view(1, b, 1, 1, length).expand(k, b, 1, 1, length).reshape(k * b, 1, 1, length)
        for i in range(self.layers):
            x = self.layer(p, i, x, attn_mask, (b, length), training)
        return x.view(k, b, length, -1)

    def __call__(
        self, p: dict[str, torch.Tensor], task: TaskSpec, batch: dict[str, torch.Tensor], training: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        ids, mask, row_ids = batch["input_ids"], batch.get("attention_mask"), batch.get("row_ids")
        n_choices = 0
        if task.kind == "multiple_choice":
            bsz, n_choices, length = ids.shape
            ids = ids.reshape(bsz * n_choices, length)
            mask = mask.reshape(bsz * n_choices, length) if mask is not None else None
            row_ids = row_ids.reshape(bsz * n_choices, length) if row_ids is not None else None
        h = self.encode(p, ids, mask, training, row_ids)
        k = h.shape[0]
        pre = f"heads.{task.name}."
        if task.kind in ("classification", "multiple_choice"):
            x = F.dropout(h[:, :, 0], self.p_hidden, training)
            x = torch.tanh(_dense(p, pre + "dense", x))
            x = F.dropout(x, self.p_hidden, training)
            logits = _dense(p, pre + "out_proj", x)
            if task.kind == "multiple_choice":
                logits = logits.reshape(k, -1, n_choices)
        elif task.kind == "qa":
            logits = _dense(p, pre[:-1], h.flatten(1, 2)).view(*h.shape[:3], 2)
        else:  # tagging
            x = F.dropout(h.flatten(1, 2), self.p_hidden, training)
            logits = _dense(p, pre + "1", x).view(*h.shape[:3], -1)
        return _losses(task, logits, batch, mask, k)


def _per_model_ce(logits: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Mean cross-entropy of each model over the shared labels (positions labelled -100 skipped), shape [K]."""
    flat = logits.reshape(-1, logits.shape[-1])
    target = labels.reshape(1, -1).expand(k, -1).reshape(-1)
    ce = F.cross_entropy(flat, target, ignore_index=-100, reduction="none").view(k, -1)
    return ce.sum(1) / labels.ne(-100).sum()


def _losses(
    task: TaskSpec, logits: torch.Tensor, batch: dict[str, torch.Tensor], mask: torch.Tensor | None, k: int
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """`MultiTaskModel.forward`'s losses and logits, per model (logits in fp32 where it returns fp32)."""
    if task.kind == "qa":
        logits, start, end = span_logits(logits, mask)
        if "start_positions" not in batch:
            return None, logits
        loss = (_per_model_ce(start, batch["start_positions"], k) + _per_model_ce(end, batch["end_positions"], k)) / 2
        return loss, logits
    labels = batch.get("labels")
    if labels is None:
        return None, logits
    return _per_model_ce(logits.float(), labels, k), logits
