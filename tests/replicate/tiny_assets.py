"""Tiny XLM-R + tokenizer + generated task data for the replicate tests and the GPU DDP check
(benchmarks/replicate_ddp_check.py): no model hub, no network, no pytest.
"""

from __future__ import annotations

import random
from pathlib import Path

WORDS = ("cat dog bird fish tree house river stone cloud sun moon star red blue green big small old new fast slow "
         "runs sees eats likes finds the a and in on paris berlin rome anna marco lena").split()  # fmt: skip


def _sentence(rng: random.Random, n: int = 6) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _xx(text: str) -> str:
    """A stand-in 'second language': every word reversed (a deterministic translation)."""
    return " ".join(w[::-1] for w in text.split())


def build_tokenizer(out: Path):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok = Tokenizer(models.WordPiece(unk_token="<unk>", max_input_chars_per_word=100))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    corpus = [" ".join(WORDS), _xx(" ".join(WORDS))] * 3
    tok.train_from_iterator(corpus, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", 2), ("<s>", 0), add_prefix_space=False, trim_offsets=False
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
    )  # fmt: skip
    fast.save_pretrained(out)
    return fast


def build_tiny_xlmr(out: Path, layers: int = 2, hidden: int = 32) -> Path:
    """A random-init 2-layer XLM-R (hidden 32) with its tokenizer, saved like a hub checkpoint."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    tok = build_tokenizer(out)
    cfg = XLMRobertaConfig(
        vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=160, pad_token_id=tok.pad_token_id,
        bos_token_id=0, eos_token_id=2, type_vocab_size=1,
    )  # fmt: skip
    torch.manual_seed(0)
    XLMRobertaModel(cfg, add_pooling_layer=False).save_pretrained(out)
    return out


def write_task_data(root: Path, seed: int = 0, n_train: int = 24, n_eval: int = 8) -> Path:
    """Generated examples for one task of each kind, English train/dev/test and an 'xx' test set."""
    try:
        from claimscope.replicate.data import write_jsonl
    except ImportError:  # a machine without the claimscope install: the top-level package from the repo root
        from replicate.data import write_jsonl

    rng = random.Random(seed)

    def langs(rows_fn, n):  # same examples in en and xx (translated)
        return rows_fn(n)

    def nli(n):
        out = []
        for _ in range(n):
            a = _sentence(rng)
            same = rng.random() < 0.5
            out.append({"text_a": a, "text_b": a if same else _sentence(rng), "label": "1" if same else "0"})
        return out

    def mc(n):
        out = []
        for _ in range(n):
            ctx = _sentence(rng)
            gold = rng.randrange(3)
            choices = [ctx.split()[0] + " " + _sentence(rng, 2) if i == gold else _sentence(rng, 3) for i in range(3)]
            out.append({"context": ctx, "question": "which", "choices": choices, "label": gold})
        return out

    def qa(n):
        out = []
        for i in range(n):
            words = [rng.choice(WORDS) for _ in range(12)]
            k = rng.randrange(2, 10)
            ans = words[k]
            ctx = " ".join(words)
            start = len(" ".join(words[:k])) + 1
            out.append({"id": f"q{i}", "context": ctx, "question": f"where {ans}",
                        "answers": {"text": [ans], "answer_start": [start]}})  # fmt: skip
        return out

    def tag(n):
        out = []
        for _ in range(n):
            toks = [rng.choice(WORDS) for _ in range(7)]
            tags = ["B-LOC" if t in ("paris", "berlin", "rome") else "B-PER" if t in ("anna", "marco", "lena") else "O"
                    for t in toks]  # fmt: skip
            out.append({"tokens": toks, "tags": tags})
        return out

    def xx_cls(rows):
        return [{**r, "text_a": _xx(r["text_a"]), "text_b": _xx(r["text_b"])} for r in rows]

    def xx_tag(rows):
        return [{**r, "tokens": [_xx(t) for t in r["tokens"]]} for r in rows]

    for task, gen, xx in (("pawsx", nli, xx_cls), ("tinytag", tag, xx_tag)):
        write_jsonl(root / task / "train.en.jsonl", gen(n_train))
        write_jsonl(root / task / "dev.en.jsonl", gen(n_eval))
        test = gen(n_eval)
        write_jsonl(root / task / "test.en.jsonl", test)
        write_jsonl(root / task / "test.xx.jsonl", xx(test))
    write_jsonl(root / "commonsenseqa" / "train.en.jsonl", mc(n_train))
    write_jsonl(root / "commonsenseqa" / "dev.en.jsonl", mc(n_eval))
    write_jsonl(root / "squad" / "train.en.jsonl", qa(n_train))
    write_jsonl(root / "tinyqa" / "train.en.jsonl", qa(n_train))
    write_jsonl(root / "tinyqa" / "dev.en.jsonl", qa(n_eval))
    write_jsonl(root / "tinyqa" / "test.en.jsonl", qa(n_eval))
    pairs = [_sentence(rng) for _ in range(n_eval)]
    tatoeba = [{"src_id": f"x{i}", "src": _xx(s), "tgt_id": f"e{i}", "tgt": s} for i, s in enumerate(pairs)]
    write_jsonl(root / "tatoeba" / "test.xx.jsonl", tatoeba)
    bucc = [{"src_id": f"x{i}", "src": _xx(s), "tgt_id": f"e{i}", "tgt": s} for i, s in enumerate(pairs[:5])]
    bucc += [{"tgt_id": f"d{i}", "tgt": _sentence(rng)} for i in range(4)]
    write_jsonl(root / "bucc" / "test.xx.jsonl", bucc)
    for lang in ("en", "xx"):
        texts = [_sentence(rng) for _ in range(16)]
        rows = [{"text": s if lang == "en" else _xx(s), "lang": lang} for s in texts]
        write_jsonl(root / "mlm" / f"train.{lang}.jsonl", rows)
    return root


def tiny_recipe_dict(model: Path, data: Path, **over) -> dict:
    """A recipe over the generated tasks: one of each kind, tiny batches, few steps."""
    d = {
        "name": "tiny",
        "model": str(model),
        "scale": "miniature",
        "seeds": [1],
        "intermediate": [None, "commonsenseqa", "squad"],
        "mlm_cotrain": [False],
        "targets": ["pawsx", "tinyqa", "tinytag", "tatoeba", "bucc"],
        "data_source": "local",
        "data_dir": str(data),
        "train": {"precision": "fp32", "max_steps": 3, "eval_batch": 8, "num_threads": 1},
        "task_overrides": {
            "pawsx": {"languages": ["en", "xx"], "batch_size": 8, "epochs": 1, "max_len": 32},
            "commonsenseqa": {"batch_size": 4, "epochs": 1, "max_len": 32},
            "squad": {"batch_size": 4, "epochs": 1, "max_len": 48, "doc_stride": 16},
            "tatoeba": {"languages": ["xx"], "max_len": 32},
            "bucc": {"languages": ["xx"], "max_len": 32},
            "mlm": {"languages": ["en", "xx"], "batch_size": 4, "max_len": 32},
        },
        "extra_tasks": {
            "tinyqa": {
                "kind": "qa",
                "languages": ["en"],
                "batch_size": 4,
                "epochs": 1,
                "max_len": 48,
                "doc_stride": 16,
                "metric": "f1",
                "lr": 1e-4,
            },
            "tinytag": {
                "kind": "tagging",
                "languages": ["en", "xx"],
                "batch_size": 8,
                "epochs": 1,
                "max_len": 32,
                "metric": "f1",
            },
        },  # fmt: skip
    }
    d.update(over)
    return d
