"""A shared multilingual tokenizer trained on the miniature MLM corpus.

BPE by default (trains in seconds); `algorithm="unigram"` gives XLM-R's SentencePiece-style model (minutes on a CPU).
"""

from __future__ import annotations

import gzip
import json
import logging
import random
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # XLM-R's ids: <s>=0, <pad>=1, </s>=2, <unk>=3


def corpus_texts(data_dir: Path, per_language: int = 20000, seed: int = 0) -> list[str]:
    """Up to `per_language` MLM texts of each language (so small languages get their share of the vocabulary)."""
    rng = random.Random(seed)
    texts: list[str] = []
    for path in sorted((Path(data_dir) / "mlm").glob("train.*.jsonl*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            rows = [json.loads(line)["text"] for line in f if line.strip()]
        rng.shuffle(rows)
        texts += rows[:per_language]
    return texts


def train_tokenizer(texts: list[str], out_dir: Path, vocab_size: int = 16000, algorithm: str = "bpe") -> Any:
    """Train, wrap as a `transformers` fast tokenizer with XLM-R's special tokens and pair template, and save."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    trainer: Any
    if algorithm == "unigram":
        tok = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=SPECIALS, unk_token="<unk>", max_piece_length=16, show_progress=False
        )
    else:
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False)
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", tok.token_to_id("<s>")), ("</s>", tok.token_to_id("</s>"))],
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
    )  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    logger.info("tokenizer: %d pieces -> %s", len(fast), out_dir)
    return fast
