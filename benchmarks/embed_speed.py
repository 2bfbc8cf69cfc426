"""CPU speed of the bundled encoders: the fp32 path against cheaper candidates, in one run on the same inputs.

Embedding (bundled all-MiniLM-L6-v2 via sentence-transformers): sentences/s on up to 2,000 real sentences (the example
PDF through parse_pdf + split_sentences, then ../shared/papers/1911.02116.md and the other example / shared paper
texts, then SciFact corpus abstract sentences until the count is reached; sentences over 256 tokens are cut by the
model as in the index build), and the min/mean cosine
of each candidate's embedding to the fp32 one.
Stance (bundled MiniLM cross-encoder + merged LoRA, uncalibrated): pairs/s on up to 500 real (claim, sentence) pairs
(SciFact dev claims x sentences of their cited abstracts, or sentence pairs from the papers if SciFact is absent), and
the max |Δp| against fp32, raw and after the shipped calibrator, and how much a pair's score depends on its batch.

Each candidate is timed `--repeats` times, interleaved with the others so shared-CPU load hits them alike; best-of is
printed. Usage: .venv/bin/python benchmarks/embed_speed.py [--sentences 2000] [--pairs 500] [--repeats 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PDF = ROOT / "examples" / "papers" / "2005.13013v1.pdf"
SHARED = ROOT.parent / "shared"
MD = SHARED / "papers" / "1911.02116.md"
SCIFACT = SHARED / "benchmarks" / "scifact"


def real_sentences(limit: int) -> list[str]:
    from claimscope.retrieve.passages import split_sentences
    from claimscope.retrieve.pdf import parse_pdf

    texts = [page.text for page in parse_pdf(PDF).pages]
    papers = ROOT / "examples" / "papers"
    extra = [MD] + sorted(papers.glob("*.md")) + sorted(papers.glob("*.txt"))
    extra += sorted((SHARED / "papers").glob("*.txt"))
    texts += [p.read_text(encoding="utf-8") for p in extra if p.is_file()]
    seen: set[str] = set()
    out: list[str] = []
    for text in texts:
        for start, end in split_sentences(text):
            s = " ".join(text[start:end].split())
            if len(s) >= 20 and s not in seen:
                seen.add(s)
                out.append(s)
    corpus = SCIFACT / "corpus.jsonl"  # the papers give ~800 unique sentences; SciFact abstracts (what the
    if len(out) < limit and corpus.is_file():  # 5k-abstract index embeds) make up the rest
        with open(corpus, encoding="utf-8") as f:
            for line in f:
                for sent in json.loads(line)["abstract"]:
                    s = " ".join(sent.split())
                    if len(s) >= 20 and s not in seen:
                        seen.add(s)
                        out.append(s)
                if len(out) >= limit:
                    break
    return out[:limit]


def real_pairs(limit: int, sentences: list[str]) -> tuple[list[tuple[str, str]], str]:
    claims_file, corpus_file = SCIFACT / "claims_dev.jsonl", SCIFACT / "corpus.jsonl"
    if claims_file.is_file() and corpus_file.is_file():
        corpus = {}
        with open(corpus_file, encoding="utf-8") as f:
            for line in f:
                doc = json.loads(line)
                corpus[int(doc["doc_id"])] = doc["abstract"]
        pairs: list[tuple[str, str]] = []
        with open(claims_file, encoding="utf-8") as f:
            for line in f:
                claim = json.loads(line)
                for doc_id in claim.get("cited_doc_ids", []):
                    for sent in corpus.get(int(doc_id), [])[:4]:
                        pairs.append((claim["claim"], sent.strip()))
                if len(pairs) >= limit:
                    return pairs[:limit], "SciFact dev claims x sentences of their cited abstracts"
        return pairs, "SciFact dev claims x sentences of their cited abstracts"
    pairs = [(sentences[i], sentences[i + 1]) for i in range(0, min(len(sentences) - 1, 2 * limit), 2)]
    return pairs[:limit], "consecutive sentences of the papers"


@contextlib.contextmanager
def bf16_autocast(enabled: bool) -> Iterator[None]:
    import torch

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
        yield


def quantized(model: object) -> object:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


Candidate = Callable[[list], np.ndarray]


def run_interleaved(cands: dict[str, Candidate], items: list, repeats: int) -> dict[str, tuple[float, np.ndarray]]:
    best: dict[str, tuple[float, np.ndarray]] = {}
    for fn in cands.values():  # warm-up: the first call pays one-off costs (oneDNN primitives, allocator, casts)
        fn(items[:: max(1, len(items) // 64)])
    for _ in range(repeats):
        for name, fn in cands.items():
            t0 = time.perf_counter()
            out = fn(items)
            secs = time.perf_counter() - t0
            if name not in best or secs < best[name][0]:
                best[name] = (secs, out)
    return best


def embedding_candidates() -> dict[str, Candidate]:
    import copy

    import torch

    from claimscope.verify.embed import BUNDLED, load_embedder

    model = load_embedder(BUNDLED)
    int8 = quantized(copy.deepcopy(model))
    bf16_weights = copy.deepcopy(model).to(torch.bfloat16)

    def enc(m: object, batch: int, bf16: bool = False) -> Candidate:
        def go(sentences: list[str]) -> np.ndarray:
            with torch.inference_mode(), bf16_autocast(bf16):
                e = m.encode(sentences, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True)
            return np.asarray(e, dtype=np.float32)

        return go

    def via_embed_texts(sentences: list[str]) -> np.ndarray:
        from claimscope.verify.index import embed_texts

        return embed_texts(sentences, BUNDLED)

    return {
        "fp32 batch 32 (old default)": enc(model, 32),
        "fp32 batch 128": enc(model, 128),
        "bf16 autocast batch 32": enc(model, 32, bf16=True),
        "bf16 weights batch 32": enc(bf16_weights, 32),
        "int8 dynamic batch 32": enc(int8, 32),
        "embed_texts() as shipped": via_embed_texts,
    }


def padded_raw_scores(scorer: object, pairs: list[tuple[str, str]], bf16: bool = False) -> np.ndarray:
    """The stance path before this benchmark: length-sorted batches of 64, padded to the longest pair."""
    import torch

    out = np.zeros((len(pairs), 3))
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    with torch.inference_mode(), bf16_autocast(bf16):
        for s in range(0, len(order), scorer.batch_size):
            idx = order[s : s + scorer.batch_size]
            enc = scorer.tokenizer([pairs[i][0] for i in idx], [pairs[i][1] for i in idx], truncation="only_second",
                                   max_length=scorer.max_length, padding=True, return_tensors="pt")
            out[idx] = torch.softmax(scorer.model(**enc).logits.float(), dim=-1).numpy()
    return out


def stance_candidates() -> tuple[dict[str, Candidate], dict[str, Candidate]]:
    import copy

    from claimscope.verify.embed import resolve_precision
    from claimscope.verify.stance import load_bundled

    scorer = load_bundled(device="cpu", calibrate=False, precision="fp32")
    bf16 = copy.copy(scorer)
    bf16.precision = "bf16"
    shipped = load_bundled(device="cpu", calibrate=False)
    int8 = copy.copy(scorer)
    int8.model = quantized(copy.deepcopy(scorer.model))
    cands: dict[str, Candidate] = {
        "fp32 padded (old default)": lambda pairs: padded_raw_scores(scorer, pairs),
        "fp32 exact-length batches": scorer.raw_scores,
        "bf16 autocast padded": lambda pairs: padded_raw_scores(scorer, pairs, bf16=True),
        "bf16 exact-length batches": bf16.raw_scores,
        "int8 dynamic exact-length": int8.raw_scores,
        f"load_bundled() as shipped ({resolve_precision(shipped.precision)})": shipped.raw_scores,
    }
    return cands, {k: cands[k] for k in ("fp32 padded (old default)", "bf16 autocast padded",
                                        "bf16 exact-length batches")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=2000)
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    import torch

    print(f"# embed_speed  {time.strftime('%Y-%m-%d %H:%M')}  python {platform.python_version()}  torch "
          f"{torch.__version__}  cpu capability {torch.backends.cpu.get_cpu_capability()}  threads "
          f"{torch.get_num_threads()} (interop {torch.get_num_interop_threads()})")
    sentences = real_sentences(args.sentences)
    words = sum(len(s.split()) for s in sentences) / max(len(sentences), 1)
    print(f"\n## embedding: {len(sentences)} sentences (mean {words:.1f} words), best of {args.repeats}")
    res = run_interleaved(embedding_candidates(), sentences, args.repeats)
    base_secs, base = next(iter(res.values()))
    print(f"{'candidate':32s} {'sent/s':>8s} {'speed-up':>9s} {'min cos':>9s} {'mean cos':>9s}")
    for name, (secs, emb) in res.items():
        cos = np.sum(emb * base, axis=1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(base, axis=1))
        print(f"{name:32s} {len(sentences) / secs:8.1f} {base_secs / secs:8.2f}x {cos.min():9.5f} {cos.mean():9.5f}")

    pairs, source = real_pairs(args.pairs, sentences)
    print(f"\n## stance cross-encoder: {len(pairs)} pairs ({source}), best of {args.repeats}")
    from claimscope.verify.calibrate import load_calibrator
    from claimscope.verify.stance import BUNDLED_ADAPTER, sha256_file

    calibrator = load_calibrator(adapter_sha256=sha256_file(BUNDLED_ADAPTER / "adapter_model.safetensors"))
    cands, singles = stance_candidates()
    res = run_interleaved(cands, pairs, args.repeats)
    base_secs, base = next(iter(res.values()))
    cal_base = calibrator(base) if calibrator is not None else None
    print(f"{'candidate':32s} {'pairs/s':>8s} {'speed-up':>9s} {'max|dp|':>9s} {'cal max|dp|':>12s} "
          f"{'argmax same':>12s}")
    for name, (secs, probs) in res.items():
        dp = np.abs(probs - base).max()
        cal = np.abs(calibrator(probs) - cal_base).max() if calibrator is not None else float("nan")
        same = float(np.mean(probs.argmax(1) == base.argmax(1)))
        print(f"{name:32s} {len(pairs) / secs:8.1f} {base_secs / secs:8.2f}x {dp:9.4f} {cal:12.4f} {same:12.3f}")
    print("batch dependence: max |p(pair alone) - p(same pair among the 500)| over 40 pairs")
    for name, fn in singles.items():
        alone = np.vstack([fn([pair]) for pair in pairs[:40]])
        print(f"  {name:30s} {np.abs(alone - res[name][1][:40]).max():.4f}")


if __name__ == "__main__":
    main()
