"""SciFact: re-rank the top few abstracts of the open-claim document search by the stance model's evidence signal.

    .venv/bin/python benchmarks/docrank_rerank.py --scifact .data/scifact \
        --oof-cache runs/bench-scifact/oof_adapter_vectors.npz --folds .data/stance-folds/folds.json

For each claim, the top `--depth` abstracts of the shipped fusion (`verify.docrank`, query adapter) are each searched
on their own as the verifier searches a cited paper (`Verifier.score_hits`: RRF of BM25 and cosine inside the
abstract), and the best `--sentences` of them are stance-scored. An abstract's evidence signal is the max over its
best m sentences of 1 - P(NEUTRAL) (the stance adapter was trained with retrieval hard negatives labelled NEUTRAL,
so it reads as relevance). The top D abstracts are re-ordered by fused score + w * f(signal) (f: the probability,
its logit, or its z-score over the claim's top D); the rest keep their order below them.

Everything out of fold on TRAIN: the fused ranking with out-of-fold adapted claim vectors (as benchmarks/docrank_cv.py,
the query adapter's 5 folds), the stance probabilities from the cross-fitting fold adapter that did not train on the
claim (`--folds`, FOLDS.json of verify.stance_folds; the shipped stance calibrator applied, as fit_aggregator does).
The re-ranking setting (D, m, f, w) is chosen per held-out fold on the other four (the adapter's folds, best recall@3,
ties @1 then @10) and on all of train for dev; dev (shipped adapters) is scored once with the all-train choice.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from claimscope.settings import VerifySettings
from claimscope.types import Claim, PaperRef
from claimscope.verify import scifact as sf
from claimscope.verify.docrank import _z

logger = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
KS = (1, 3, 10)


def _docrank_cv():  # type: ignore[no-untyped-def]
    if "docrank_cv" not in sys.modules:
        spec = importlib.util.spec_from_file_location("docrank_cv", HERE / "docrank_cv.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["docrank_cv"] = module
        spec.loader.exec_module(module)
    return sys.modules["docrank_cv"]


def stance_of_top(verifier, claims: list[str], top_docs: np.ndarray, m: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(claims, D, m) 1 - P(NEUTRAL) of the best m sentences (the verifier's within-abstract order) of each top doc;
    NaN where an abstract has fewer than m sentences."""
    settings = verifier.settings
    verifier.settings = settings.model_copy(update={"top_k": m})
    try:
        todo = [Claim(id=str(i), text=c, source="scifact",
                      cited=[PaperRef(local_name=sf.paper_key(int(d))) for d in top_docs[i]])
                for i, c in enumerate(claims)]
        out = np.full((len(claims), top_docs.shape[1], m), np.nan)
        for s in range(0, len(todo), 64):
            for claim, _, _, scored in verifier.score_hits(todo[s: s + 64]):
                i = int(claim.id)
                col = {sf.paper_key(int(d)): j for j, d in enumerate(top_docs[i])}
                seen: dict[int, int] = {}
                for h in scored:
                    j = col[h.evidence.paper]
                    r = seen.get(j, 0)
                    seen[j] = r + 1
                    out[i, j, r] = 1.0 - h.evidence.p_neutral
        return out
    finally:
        verifier.settings = settings


def rerank(fused: np.ndarray, rel: np.ndarray, depth: int, m: int, f: str, w: float) -> np.ndarray:
    """(claims, 10) unit order: the top `depth` by fused + w * f(max of the first m signals), then the rest by fused.
    `fused` is (claims, D_max) of the D_max candidates (best first); returns positions into them."""
    n, d_max = fused.shape
    sig = np.nanmax(rel[:, :depth, :m], axis=2)
    sig = np.nan_to_num(sig, nan=0.0)
    if f == "logit":
        p = np.clip(sig, 1e-4, 1 - 1e-4)
        sig = np.log(p / (1 - p))
    elif f == "z":  # standardised over the claim's top D, as the fused signals are over all units
        sig = _z(sig)
    head = fused[:, :depth] + w * sig
    order = np.argsort(-head, axis=1, kind="stable")
    return np.concatenate([order, np.broadcast_to(np.arange(depth, d_max), (n, d_max - depth))], axis=1)


def found_at(order: np.ndarray, cand: np.ndarray, evidence: list[list[int]], tail: np.ndarray) -> np.ndarray:
    """(claims, 3) gold abstracts in the top 1/3/10: `order` positions into `cand` (claims, D_max), then `tail`
    (claims, >=10) of the fused order for ranks past D_max."""
    out = np.zeros((len(evidence), len(KS)))
    for i, ev in enumerate(evidence):
        if not ev:
            continue
        got = list(cand[i][order[i]]) + [u for u in tail[i] if u not in set(cand[i])]
        out[i] = [len(set(ev) & set(got[:k])) for k in KS]
    return out


def pair_accuracy(score: np.ndarray, cand: np.ndarray, evidence: list[list[int]], depth: int) -> float:
    """Share of (gold, non-gold) pairs within each claim's top `depth` candidates that `score` (claims, D_max; higher
    first) orders gold first; ties count half."""
    good = total = 0.0
    for i, ev in enumerate(evidence):
        gold = np.isin(cand[i, :depth], ev)
        if not ev or gold.all() or not gold.any():
            continue
        a, b = score[i, :depth][gold][:, None], score[i, :depth][~gold][None, :]
        good += float((a > b).sum() + 0.5 * (a == b).sum())
        total += a.size * b.size
    return good / total if total else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scifact", type=Path, required=True)
    ap.add_argument("--index-dir", type=Path, default=Path("runs/bench-scifact/index"))
    ap.add_argument("--oof-cache", type=Path, default=None, help="out-of-fold adapted train claim vectors (npz)")
    ap.add_argument("--folds", type=Path, default=Path(".data/stance-folds/folds.json"),
                    help="FOLDS.json: stance fold adapter dir -> its held-out train claim ids")
    ap.add_argument("--depth", type=int, default=8, help="most abstracts re-ranked")
    ap.add_argument("--sentences", type=int, default=3, help="most sentences stance-scored per abstract")
    ap.add_argument("--pairs-cache", type=Path, default=Path("runs/bench-scifact/rerank_stance.npz"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t_start = time.perf_counter()
    cvmod = _docrank_cv()

    setup = cvmod.load_setup(args.scifact, args.index_dir, args.oof_cache)
    data, adapter, folds, corpus, index, dev = (setup.data, setup.adapter, setup.folds, setup.corpus, setup.index,
                                                setup.dev_rows)
    dev_claims = [r["claim"] for r in dev]
    tr, dv = setup.train, setup.dev
    from claimscope.verify.scifact_pipeline import scifact_verifier
    from claimscope.verify.stance import load_scorer

    d_max, m_max = args.depth, args.sentences
    splits = {"train": tr, "dev": dv}
    cand, cand_fused, tail = {}, {}, {}
    for name, s in splits.items():
        order = np.argsort(-s.fused, axis=1, kind="stable")[:, : max(d_max, 10) + d_max]
        cand[name], tail[name] = order[:, :d_max], order
        cand_fused[name] = np.take_along_axis(s.fused, cand[name], axis=1)

    # ---- stance signals of the top abstracts: train by the fold adapter that did not see the claim ----------
    rel: dict[str, np.ndarray] = {}
    cache_key = f"{adapter.sha256}:{d_max}:{m_max}:{len(data.claims)}:{len(dev)}"
    if args.pairs_cache.is_file():
        z = np.load(args.pairs_cache)
        if str(z["key"]) == cache_key and np.array_equal(z["cand_train"], cand["train"]) \
                and np.array_equal(z["cand_dev"], cand["dev"]):
            rel = {"train": z["train"], "dev": z["dev"]}
    seconds_stance = 0.0
    if not rel:
        settings = VerifySettings()
        verifier = scifact_verifier(index, corpus, settings)
        shipped = verifier.scorer
        t0 = time.perf_counter()
        rel["dev"] = stance_of_top(verifier, dev_claims, data.doc_ids[cand["dev"]], m_max)
        fold_map = {k: {int(i) for i in v} for k, v in json.loads(args.folds.read_text()).items()}
        rel["train"] = np.full((len(data.claims), d_max, m_max), np.nan)
        pos = {int(c): i for i, c in enumerate(data.claim_ids)}
        for adapter_dir, ids in fold_map.items():
            verifier.scorer = load_scorer(f"bundled@{adapter_dir}", calibrate=False)
            verifier.scorer.calibrator = shipped.calibrator  # type: ignore[attr-defined]
            own = [pos[i] for i in sorted(ids) if i in pos]
            rel["train"][own] = stance_of_top(verifier, [data.claims[r] for r in own],
                                              data.doc_ids[cand["train"][own]], m_max)
            logger.info("fold %s: %d claims", adapter_dir, len(own))
        seconds_stance = time.perf_counter() - t0
        missing = [int(c) for c, r in zip(data.claim_ids, rel["train"], strict=True) if np.isnan(r[:, 0]).all()]
        if missing:
            raise SystemExit(f"train claims in no stance fold: {missing[:5]}")
        args.pairs_cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.pairs_cache, key=cache_key, train=rel["train"], dev=rel["dev"], cand_train=cand["train"],
                 cand_dev=cand["dev"])
        logger.info("stance signals of %d x %d x %d pairs in %.0fs", len(data.claims) + len(dev), d_max, m_max,
                    seconds_stance)

    # ---- the grid, chosen per fold on train ---------------------------------------------------------------------
    weights = {"prob": (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 10.0, 1e3),
               "logit": (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 1e3),
               "z": (0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 1e3)}
    configs = [(1, 1, "prob", 0.0)] + [(d, m, f, w) for d in range(2, d_max + 1) for m in range(1, m_max + 1)
                                       for f, ws in weights.items() for w in ws]
    found = {name: np.array([found_at(rerank(cand_fused[name], rel[name], *c), cand[name], s.evidence, tail[name])
                             for c in configs]) for name, s in splits.items()}
    rows: dict[str, dict] = {}

    def record(label: str, sel: list[int], by_top1: bool = False) -> None:
        f_tr = found["train"][sel]
        # cv() chooses by recall@3 (ties @1, @10): for the recall@1 variant the columns are swapped going in
        held, chosen, g = cvmod.cv(f_tr[..., [1, 0, 2]] if by_top1 else f_tr, folds, tr.total)
        held = held[[1, 0, 2]] if by_top1 else held
        rows[label] = {"train_cv": dict(zip(KS, held.round(4).tolist(), strict=True)),
                       "train_in_sample": dict(zip(KS, (found["train"][sel][g].sum(0) / tr.total).round(4).tolist(),
                                                   strict=True)),
                       "dev": dict(zip(KS, (found["dev"][sel][g].sum(0) / dv.total).round(4).tolist(), strict=True)),
                       "chosen_per_fold": [str(configs[sel[c]]) for c in chosen],
                       "chosen_on_train": str(configs[sel[g]]), "configurations": len(sel)}
        logger.info("%s: %s", label, rows[label])

    record("shipped fusion (no re-ranking)", [0])
    record("stance re-rank, D/m/f/w chosen per fold (or none)", list(range(len(configs))))
    for d in range(2, d_max + 1):
        record(f"  depth {d} fixed, m/f/w chosen", [0] + [i for i, c in enumerate(configs) if c[0] == d])
    record("stance re-rank chosen by recall@1 (ties @3)", list(range(len(configs))), by_top1=True)
    record("  depth <= 3, chosen by recall@1 (ties @3)", [i for i, c in enumerate(configs) if c[0] <= 3],
           by_top1=True)
    for m in range(1, m_max + 1):
        record(f"  sentences {m} fixed, D/f/w chosen", [0] + [i for i, c in enumerate(configs) if c[1] == m])
    # the ceiling of re-ranking: gold abstracts within the top D_max of the fused order
    ceiling = {name: float(sum(len(set(ev) & set(cand[name][i].tolist())) for i, ev in enumerate(s.evidence))
                           / s.total) for name, s in splits.items()}
    # how well each signal alone orders gold above the other candidates (the fused order: its rank)
    separation = {name: {f"depth {d}": {"fused": round(pair_accuracy(-np.arange(d_max)[None].repeat(len(cand[name]), 0)
                                                                   .astype(float), cand[name], s.evidence, d), 3),
                                        **{f"stance m={m}": round(pair_accuracy(
                                            np.nan_to_num(np.nanmax(rel[name][:, :, :m], axis=2)), cand[name],
                                            s.evidence, d), 3) for m in range(1, m_max + 1)}}
                         for d in (3, d_max)} for name, s in splits.items()}
    sweep = {name: {f"D={d} m={m} prob": {f"{w:g}": (found[name][configs.index((d, m, "prob", w))].sum(0)
                                                     / s.total).round(3).tolist() for w in weights["prob"]}
                    for d, m in ((3, m_max), (d_max, 1), (d_max, m_max))} for name, s in splits.items()}
    out = {"train_evidence_abstracts": tr.total, "dev_evidence_abstracts": dv.total, "depth_max": d_max,
           "sentences_max": m_max, "adapter": adapter.sha256, "stance_seconds": round(seconds_stance),
           "seconds": round(time.perf_counter() - t_start), "recall_at_depth_max": ceiling, "rows": rows,
           "pair_accuracy": separation, "weight_sweep": sweep}
    print(f"SciFact open-claim document ranking, stance re-ranking of the top abstracts: train CV (5 folds, the "
          f"setting chosen on the other four, out-of-fold adapter vectors and stance folds) vs dev (chosen on all of "
          f"train); recall of gold evidence abstracts, train {tr.total} / dev {dv.total}")
    print(f"  {'':52s} {'train CV @1/@3/@10':22s} {'dev @1/@3/@10':20s} chosen on train (D, m, f, w)")
    for name, r in rows.items():
        fmt = "/".join(f"{r['train_cv'][k]:.3f}" for k in KS)
        fmt_dev = "/".join(f"{r['dev'][k]:.3f}" for k in KS)
        print(f"  {name:52s} {fmt:22s} {fmt_dev:20s} {r['chosen_on_train']}")
    print(f"  ceiling (gold within the top {d_max} of the fused order): "
          + ", ".join(f"{n} {c:.3f}" for n, c in ceiling.items()))
    print("  gold-vs-other pair order within a claim's top D (fused order vs the stance signal alone): " + "; ".join(
        f"{n} {d}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()) for n, sep in separation.items()
        for d, r in sep.items()))
    print("  recall@1/@3 by weight (every setting shown, none chosen here; dev for information only):")
    for n, sw in sweep.items():
        for what, r in sw.items():
            print(f"    {n:5s} {what:16s} " + "  ".join(f"w {w}: {v[0]:.3f}/{v[1]:.3f}" for w, v in r.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
