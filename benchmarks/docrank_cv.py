"""SciFact: alternatives to the shipped open-claim document fusion, every choice made by cross-validation on TRAIN.

    .venv/bin/python benchmarks/docrank_cv.py --scifact .data/scifact [--oof-cache runs/bench-scifact/oof.npz]

The shipped ranking (`verify.docrank`, in-memory EvidenceIndex path): z-scored stemmed BM25 of title + abstract
(k1 1.5, b 0.75) + w_max * best sentence cosine + w_top2 * two best + w_title * title cosine, with the claim vector
through the query adapter (`verify.query_adapter`; weights 1 / 1 / 0.5 / 0.5 chosen for adapted vectors).

Train claims get out-of-fold adapted vectors: the adapter's own 5 folds (seed 13) and hyper-parameters
(training.json), each fold's vectors from an adapter trained on the other four (`train_query_adapter.out_of_fold`;
minutes on 2 cores, cached with --oof-cache). Every alternative below is a family of configurations; for each
held-out fold the configuration with the best recall@3 (ties @1, then @10) on the other four folds is chosen and
scored on the held-out fold ("train CV", micro over the 564 gold evidence abstracts of the 505 train claims with
evidence). Dev (claims_dev.jsonl) is scored once per family, with the configuration chosen on all of train and the
shipped adapter. Families:
- shipped: the fixed shipped weights (chosen on these out-of-fold vectors, so its train figure is in-sample);
- weights: the adapter trainer's weight grid re-chosen per fold;
- bm25 params: k1 x b x title written once or twice, times the weight grid;
- learned fusion: a linear listwise (softmax over each claim's top-150 candidates of the shipped fusion) model on
  the shipped signals plus abstract-centroid cosine, soft-max-pooled sentence cosine, base-vector cosines, title BM25,
  best-sentence BM25, reciprocal ranks (1/(60+rank)) of BM25 / best cosine / shipped fusion; L2 in a small grid;
- dense PRF: the claim vector moved toward the mean centroid / title vector of the top-k fused abstracts;
- RM3: the BM25 query mixed with the top terms of the top-k fused abstracts (weights softmax of the fused score).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize

from claimscope.verify import scifact as sf
from claimscope.verify import train_query_adapter as tqa
from claimscope.verify.docrank import DocParams, _z, top_two
from claimscope.verify.index import _tokenize
from claimscope.verify.query_adapter import DEFAULT_DIR, QueryAdapter

KS = (1, 3, 10)
SHIPPED = (1.0, 1.0, 0.5, 0.5)  # w_bm25, w_max, w_top2, w_title for adapted vectors
WGRID = [(1.0, *w) for w in itertools.product(*tqa.WEIGHT_GRID.values())]
CANDIDATES = 150


class Lexical:
    """Stemmed BM25 (bm25s, as verify.docrank) as a sparse (docs, terms) matrix, so weighted queries score too."""

    def __init__(self, texts: list[str], k1: float, b: float) -> None:
        import bm25s

        tok = _tokenize(texts)
        model = bm25s.BM25(k1=k1, b=b)
        model.index(tok, show_progress=False)
        s = model.scores
        self.terms = len(s["indptr"]) - 1
        self.matrix = sp.csc_matrix((s["data"], s["indices"], s["indptr"]), shape=(s["num_docs"], self.terms)).tocsr()
        self.vocab = {t: i for t, i in model.vocab_dict.items() if i < self.terms}
        self._tok = tok

    def queries(self, texts: list[str]) -> sp.csr_matrix:
        q = _tokenize(texts)
        inv = {v: k for k, v in q.vocab.items()}
        rows, cols = [], []
        for i, ids in enumerate(q.ids):
            for t in ids:
                if inv[t] in self.vocab:
                    rows.append(i)
                    cols.append(self.vocab[inv[t]])
        return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(texts), self.terms))

    def scores(self, q: sp.csr_matrix) -> np.ndarray:
        return np.asarray((q @ self.matrix.T).todense(), dtype=np.float32)

    def term_freqs(self) -> sp.csr_matrix:
        """Each document's term distribution (tf / length) in this vocabulary."""
        inv = {v: k for k, v in self._tok.vocab.items()}
        rows, cols = [], []
        for i, ids in enumerate(self._tok.ids):
            for t in ids:
                if inv[t] in self.vocab:
                    rows.append(i)
                    cols.append(self.vocab[inv[t]])
        tf = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(self.matrix.shape[0], self.terms))
        return sp.diags(1 / np.maximum(np.asarray(tf.sum(1)).ravel(), 1)) @ tf


class Split:
    """One split's claims, gold evidence units, claim vectors (adapted and base) and shipped-fusion signals."""

    def __init__(self, claims: list[str], evidence: list[list[int]], q: np.ndarray, q_base: np.ndarray,
                 data: tqa.TrainData, lexical: Lexical) -> None:
        self.claims, self.evidence, self.q, self.q_base, self.data = claims, evidence, q, q_base, data
        self.total = sum(len(e) for e in evidence)
        self.qm = lexical.queries(claims)
        self.bm25 = lexical.scores(self.qm)
        self.z = [_z(self.bm25), *(_z(x) for x in tqa.dense_parts(data, q))]
        self.fused = fuse(self.z, SHIPPED)

    def found(self, fused: np.ndarray, cols: np.ndarray | None = None, rows: np.ndarray | None = None) -> np.ndarray:
        """(claims, 3): gold evidence abstracts in the top 1 / 3 / 10 (`fused` over `cols`, or over all units), of
        all claims or of the claims `rows` (a boolean mask; `fused` then has their rows only)."""
        evidence = self.evidence if rows is None else [e for e, keep in zip(self.evidence, rows, strict=True) if keep]
        order = np.argsort(-fused, axis=1, kind="stable")[:, : max(KS)]
        top = order if cols is None else np.take_along_axis(cols, order, axis=1)
        out = np.zeros((len(evidence), len(KS)))
        for i, ev in enumerate(evidence):
            if ev:
                got = top[i].tolist()
                out[i] = [len(set(ev) & set(got[:k])) for k in KS]
        return out


def fuse(z: list[np.ndarray], w: tuple[float, ...]) -> np.ndarray:
    return sum(wi * x for wi, x in zip(w, z, strict=True) if wi)


def choose(found: np.ndarray) -> int:
    """The configuration with the best recall@3 (ties @1, @10) over these claims; found: (configs, claims, 3)."""
    s = found.sum(1)
    return int(np.argmax(s[:, 1] * 1e6 + s[:, 0] * 1e3 + s[:, 2]))


def cv(found: np.ndarray, folds: np.ndarray, total: int) -> tuple[np.ndarray, list[int], int]:
    """Held-out recall@1/3/10 with each fold's configuration chosen on the other folds; those choices; the all-train
    choice."""
    held = np.zeros(len(KS))
    chosen = []
    for f in sorted(set(folds.tolist())):
        g = choose(found[:, folds != f])
        chosen.append(g)
        held += found[g, folds == f].sum(0)
    return held / total, chosen, choose(found)


def listwise(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Linear weights minimising -log softmax(x @ w) of each claim's gold candidates (+ l2 |w|^2)."""
    keep = y.sum(1) > 0
    x, y = x[keep], y[keep] / y[keep].sum(1, keepdims=True)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = x @ w
        s = s - s.max(1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(1, keepdims=True)
        value = -(y * np.log(p + 1e-300)).sum() / len(x) + l2 * (w @ w)
        return value, -np.einsum("nk,nkd->d", y - p, x) / len(x) + 2 * l2 * w

    w0 = np.zeros(x.shape[2])
    w0[: len(SHIPPED)] = SHIPPED
    return minimize(loss, w0, jac=True, method="L-BFGS-B").x


def extra_features(split: Split, lex_title: Lexical, lex_sent: Lexical, cols: np.ndarray) -> np.ndarray:
    """(claims, candidates, features): the shipped four signals, then the extra ones, gathered at `cols`."""
    d = split.data
    cent = np.add.reduceat(d.sent_emb, d.starts, axis=0)
    cent /= np.linalg.norm(cent, axis=1, keepdims=True)
    lse = np.zeros_like(split.bm25, dtype=np.float64)
    for s in range(0, len(split.q), 64):
        sims = split.q[s: s + 64] @ d.sent_emb.T
        lse[s: s + 64] = np.log(np.add.reduceat(np.exp((sims - 1) / 0.05), d.starts, axis=1) + 1e-30)
    sent_bm25 = lex_sent.scores(lex_sent.queries(split.claims))
    sb1, sb2 = top_two(sent_bm25, d.starts)
    base_parts = tqa.dense_parts(d, split.q_base)

    def rr(x: np.ndarray) -> np.ndarray:
        rank = np.empty(x.shape)
        np.put_along_axis(rank, np.argsort(-x, axis=1, kind="stable"), np.arange(x.shape[1])[None], axis=1)
        return 60.0 / (60.0 + rank)

    feats = [*split.z, _z(split.q @ cent.T), _z(lse), *(_z(x) for x in base_parts),
             _z(lex_title.scores(lex_title.queries(split.claims))), _z(sb1), _z(sb1 + sb2),
             rr(split.bm25), rr(split.z[1]), rr(split.fused)]
    return np.stack([np.take_along_axis(f, cols, axis=1) for f in feats], -1)


EXTRA_NAMES = ["bm25", "max", "top2", "title", "centroid", "softmax-pool", "base max", "base top2", "base title",
               "title bm25", "sentence bm25 max", "sentence bm25 top2", "rr bm25", "rr max", "rr fused"]


def prf_fused(split: Split, cfg: tuple, lexical: Lexical, tf: sp.csr_matrix, cent: np.ndarray) -> np.ndarray:
    top = np.argsort(-split.fused, axis=1)[:, :10]
    if cfg[0] == "dense":
        _, k, beta, src = cfg
        vectors = cent if src == "centroid" else split.data.title_emb
        q = split.q + beta * vectors[top[:, :k]].mean(1)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        return fuse([split.z[0], *(_z(x) for x in tqa.dense_parts(split.data, q))], SHIPPED)
    _, k, m, lam = cfg
    top = top[:, :k]
    w = np.exp(np.take_along_axis(split.fused, top, 1))
    w /= w.sum(1, keepdims=True)
    rows = []
    for i in range(len(top)):
        fb = np.asarray((sp.csr_matrix(w[i][None]) @ tf[top[i]]).todense()).ravel()
        if m < (fb > 0).sum():
            fb = np.where(fb >= np.partition(fb, -m)[-m], fb, 0)
        orig = np.asarray(split.qm[i].todense()).ravel()
        rows.append(lam * orig / max(orig.sum(), 1e-9) + (1 - lam) * fb / max(fb.sum(), 1e-9))
    bm = lexical.scores(sp.csr_matrix(np.array(rows, np.float32)))
    return fuse([_z(bm), *split.z[1:]], SHIPPED)


def oof_vectors(data: tqa.TrainData, folds: np.ndarray, cache: Path | None, adapter_sha: str) -> np.ndarray:
    info = json.loads((DEFAULT_DIR / "training.json").read_text())
    hp = tqa.HParams(**info["hparams_chosen"])
    if cache is not None and cache.is_file():
        z = np.load(cache)
        if str(z["adapter"]) == adapter_sha and len(z["q"]) == len(data.claims):
            return z["q"]
    t0 = time.perf_counter()
    q = tqa.out_of_fold(data, hp, DocParams(), folds, info["seed"])
    logging.info("out-of-fold adapted vectors in %.0fs", time.perf_counter() - t0)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, q=q, adapter=adapter_sha)
    return q


@dataclass
class Setup:
    """What the document-ranking benchmarks share: SciFact train with its query-adapter folds, the corpus index,
    and the train (out-of-fold adapted claim vectors) and dev splits over it."""

    data: Any  # tqa.load_data's
    adapter: QueryAdapter
    folds: np.ndarray
    corpus: dict
    index: Any  # EvidenceIndex
    dev_rows: list[dict]
    titles: list[str]  # the document units' titles and texts, in the index's unit order
    texts: list[str]
    lexical: Lexical  # stemmed BM25 over title + text, the shipped parameters
    train: Split
    dev: Split


def load_setup(scifact: Path, index_dir: Path, oof_cache: Path | None) -> Setup:
    from claimscope.verify.scifact_pipeline import scifact_index

    data = tqa.load_data(scifact, index_dir)
    adapter = QueryAdapter.load()
    folds = tqa.fold_of(len(data.claims), 5, json.loads((DEFAULT_DIR / "training.json").read_text())["seed"])
    q_oof = oof_vectors(data, folds, oof_cache, adapter.sha256)
    corpus = sf.read_corpus(scifact / "corpus.jsonl")
    index = scifact_index(corpus, index_dir, tqa.MODEL)
    ranker = index.doc_ranker()
    col = {int(d): i for i, d in enumerate(data.doc_ids)}
    dev = sf.read_jsonl_rows(scifact / "claims_dev.jsonl")
    dev_claims = [r["claim"] for r in dev]
    q_dev_base = index.embed_queries(dev_claims)
    titles, texts = ranker.unit_titles(), [u.text for u in ranker.units]
    lexical = Lexical([(t + " " + x) if t else x for t, x in zip(titles, texts, strict=True)], 1.5, 0.75)
    train = Split(data.claims, data.evidence, q_oof, data.q_base, data, lexical)
    dev_split = Split(dev_claims, [[col[int(d)] for d in r.get("evidence", {}) if int(d) in col] for r in dev],
                      adapter.apply(q_dev_base), q_dev_base, data, lexical)
    return Setup(data, adapter, folds, corpus, index, dev, titles, texts, lexical, train, dev_split)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scifact", type=Path, required=True)
    ap.add_argument("--index-dir", type=Path, default=Path("runs/bench-scifact/index"))
    ap.add_argument("--oof-cache", type=Path, default=None, help="out-of-fold train vectors, kept here (npz)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t_start = time.perf_counter()

    setup = load_setup(args.scifact, args.index_dir, args.oof_cache)
    data, adapter, folds, index = setup.data, setup.adapter, setup.folds, setup.index
    titles, texts, lexical = setup.titles, setup.texts, setup.lexical
    order = np.concatenate([u.rows for u in index.doc_ranker().units])
    tr, dv = setup.train, setup.dev
    splits = {"train": tr, "dev": dv}
    rows: dict[str, dict] = {}

    def record(name: str, found_tr: np.ndarray, found_dv: np.ndarray, labels: list) -> None:
        held, chosen, g = cv(found_tr, folds, tr.total)
        rows[name] = {"train_cv": dict(zip(KS, held.tolist(), strict=True)),
                      "train_in_sample": dict(zip(KS, (found_tr[g].sum(0) / tr.total).tolist(), strict=True)),
                      "dev": dict(zip(KS, (found_dv[g].sum(0) / dv.total).tolist(), strict=True)),
                      "chosen_per_fold": [str(labels[c]) for c in chosen], "chosen_on_train": str(labels[g]),
                      "configurations": len(labels)}
        logging.info("%s: %s", name, rows[name])

    record("shipped (fixed weights)", tr.found(tr.fused)[None], dv.found(dv.fused)[None], [SHIPPED])
    record("weights re-chosen per fold", np.array([tr.found(fuse(tr.z, w)) for w in WGRID]),
           np.array([dv.found(fuse(dv.z, w)) for w in WGRID]), WGRID)

    cols = {s: np.argpartition(-sp_.fused, CANDIDATES, axis=1)[:, :CANDIDATES] for s, sp_ in splits.items()}
    found_tr, found_dv, labels = [], [], []
    for k1, b, twice in itertools.product((0.6, 0.9, 1.2, 1.5, 2.0), (0.4, 0.6, 0.75, 0.9), (False, True)):
        lex = Lexical([((t + " ") * (2 if twice else 1) + x) if t else x for t, x in zip(titles, texts, strict=True)],
                      k1, b)
        zb = {s: np.take_along_axis(_z(lex.scores(lex.queries(sp_.claims))), cols[s], 1) for s, sp_ in splits.items()}
        zd = {s: [np.take_along_axis(z, cols[s], 1) for z in sp_.z[1:]] for s, sp_ in splits.items()}
        for w in WGRID:
            labels.append((k1, b, "title x2" if twice else "title x1", w))
            found_tr.append(tr.found(fuse([zb["train"], *zd["train"]], w), cols["train"]))
            found_dv.append(dv.found(fuse([zb["dev"], *zd["dev"]], w), cols["dev"]))
    record("bm25 k1/b/title weight + weights", np.array(found_tr), np.array(found_dv), labels)

    lex_title = Lexical([t or "" for t in titles], 1.5, 0.75)
    lex_sent = Lexical([index.passages[i].text for i in order], 1.2, 0.75)
    x = {s: extra_features(sp_, lex_title, lex_sent, cols[s]) for s, sp_ in splits.items()}
    y = {s: np.array([np.isin(cols[s][i], ev) for i, ev in enumerate(sp_.evidence)], np.float32)
         for s, sp_ in splits.items()}
    for names, l2s in ((EXTRA_NAMES[:4], (1e-3, 1e-2)), (EXTRA_NAMES, (1e-3, 1e-2, 1e-1))):
        sel = [EXTRA_NAMES.index(n) for n in names]
        # the held-out folds need weights fitted without them: one fit per (l2, fold), plus one on all of train
        per_fold = np.zeros((len(l2s), len(tr.claims), len(KS)))
        found_dv = []
        for a, l2 in enumerate(l2s):
            for f in range(5):
                w = listwise(x["train"][folds != f][..., sel], y["train"][folds != f], l2)
                per_fold[a, folds == f] = tr.found(x["train"][folds == f][..., sel] @ w, cols["train"][folds == f],
                                                   folds == f)
            w = listwise(x["train"][..., sel], y["train"], l2)
            found_dv.append(dv.found(x["dev"][..., sel] @ w, cols["dev"]))
        # choosing l2 on the other folds' out-of-fold scores, as for the grids
        record(f"listwise linear fusion, {len(names)} features", per_fold, np.array(found_dv), list(l2s))

    tf = lexical.term_freqs()
    cent = np.add.reduceat(data.sent_emb, data.starts, axis=0)
    cent /= np.linalg.norm(cent, axis=1, keepdims=True)
    for name, configs in (
        ("dense PRF (Rocchio) k/beta/source", [("dense", k, beta, src) for k in (1, 2, 3, 5)
                                               for beta in (0.1, 0.2, 0.35, 0.5) for src in ("centroid", "title")]),
        ("RM3 k/terms/lambda", [("rm3", k, m, lam) for k in (2, 3, 5) for m in (10, 20) for lam in (0.3, 0.5, 0.7)]),
    ):
        configs = [("none",), *configs]
        found = {s: np.array([sp_.found(sp_.fused if c[0] == "none" else prf_fused(sp_, c, lexical, tf, cent))
                              for c in configs]) for s, sp_ in splits.items()}
        record(name + " (or none)", found["train"], found["dev"], configs)

    out = {"train_claims_with_evidence": sum(bool(e) for e in tr.evidence), "train_evidence_abstracts": tr.total,
           "dev_claims_with_evidence": sum(bool(e) for e in dv.evidence), "dev_evidence_abstracts": dv.total,
           "adapter": adapter.sha256, "seconds": round(time.perf_counter() - t_start), "rows": rows}
    print(f"SciFact open-claim document ranking: train CV (5 folds, held-out fold scored with the configuration "
          f"chosen on the other four) vs dev (configuration chosen on all of train); recall of gold evidence "
          f"abstracts, train {tr.total} / dev {dv.total}")
    print(f"  {'':44s} {'train CV @1/@3/@10':22s} {'dev @1/@3/@10':20s} chosen on train")
    for name, r in rows.items():
        fmt = "/".join(f"{r[part][k]:.3f}" for part in ("train_cv",) for k in KS)
        fmt_dev = "/".join(f"{r['dev'][k]:.3f}" for k in KS)
        print(f"  {name:44s} {fmt:22s} {fmt_dev:20s} {r['chosen_on_train'][:60]}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
