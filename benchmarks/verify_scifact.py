"""SciFact dev in one run: retrieval, abstract label F1 (open and oracle) with floors, calibration, speed.

    .venv/bin/python benchmarks/verify_scifact.py --scifact ../shared/benchmarks/scifact

Prints, all measured in this run on this machine:
- retrieval recall@1/3/10 of gold abstracts: the product's document search (stemmed BM25 over title + abstract fused
  with the dense cosines of the best sentences and the title; the claim vector through the query-side adapter) beside
  the same search without the adapter and stemmed BM25 alone;
- abstract label-only F1 (and the other official scores) with open retrieval and with oracle (cited) abstracts, beside
  the always-SUPPORT floors (open: the top retrieved abstract; oracle: every cited abstract);
- ECE (15 bins) and Brier of the abstract-level probabilities over every judged abstract, beside the ECE the same
  confidences would show if perfectly calibrated (binned ECE is biased upwards at a few hundred abstracts);
- warm claims/s (retrieval + stance + decision, models loaded) against the 5k-abstract index, with the full and with
  a smaller number of sentences scored per abstract (and the F1 that smaller number gives);
- index build sentences/s (the hybrid index embedding a sample of corpus sentences from scratch).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

from claimscope.settings import VerifySettings
from claimscope.verify import scifact as sf
from claimscope.verify.scifact_pipeline import (
    DocRetriever,
    decide,
    decision_calibration,
    predict,
    rule_for,
    scifact_index,
    scifact_verifier,
    to_predictions,
)


class CachedScorer:
    """Scores each distinct (claim, evidence) pair once."""

    def __init__(self, scorer: object) -> None:
        self.scorer = scorer
        self.info = scorer.info  # type: ignore[attr-defined]
        self.cache: dict[tuple[str, str], np.ndarray] = {}

    def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        todo = list(dict.fromkeys(p for p in pairs if p not in self.cache))
        if todo:
            for p, row in zip(todo, self.scorer.score(todo), strict=True):  # type: ignore[attr-defined]
                self.cache[p] = row
        return np.array([self.cache[p] for p in pairs]).reshape(-1, 3)


OFFICIAL = ("abstract_label_only", "abstract_rationalized", "sentence_selection", "sentence_label")


def line(name: str, value: float, extra: str = "") -> None:
    print(f"  {name:44s} {value:8.3f}  {extra}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scifact", type=Path, required=True)
    ap.add_argument("--index-dir", type=Path, default=Path("runs/bench-scifact/index"),
                    help="hybrid sentence index, built once and reused")
    ap.add_argument("--build-sample", type=int, default=1000, help="sentences embedded from scratch for build speed")
    ap.add_argument("--speed-claims", type=int, default=100, help="dev claims timed for warm claims/s")
    ap.add_argument("--fast-top-k", type=int, default=4,
                    help="fewer stance pairs: sentences per abstract in the second speed run (quality shown too)")
    ap.add_argument("--stance-model", default="bundled")
    ap.add_argument("--top-k", type=int, default=VerifySettings().top_k, help="sentences scored per abstract")
    ap.add_argument("--quantize", action="store_true", help="int8 dynamic quantisation of the stance model")
    ap.add_argument("--limit", type=int, default=0, help="only the first N dev claims (0 = all 300)")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure as JSON here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from claimscope.verify.index import EvidenceIndex

    corpus = sf.read_corpus(args.scifact / "corpus.jsonl")
    gold = sf.read_jsonl_rows(args.scifact / "claims_dev.jsonl")
    if args.limit:
        gold = gold[: args.limit]
    passages = sf.corpus_passages(corpus)
    out: dict = {"claims": len(gold), "abstracts": len(corpus), "sentences": len(passages),
                 "cpu": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}
    print(f"SciFact dev: {len(gold)} claims; corpus {len(corpus)} abstracts, {len(passages)} sentences; {out['cpu']}")

    # ---- index build speed (from scratch, on a sample) and the full index (built once, reused) ----------------
    model = "bundled:all-MiniLM-L6-v2"
    sample = passages[:: max(1, len(passages) // args.build_sample)][: args.build_sample]
    EvidenceIndex.build(sample[:32], model)  # load the embedder first: load time is not build speed
    t0 = time.perf_counter()
    EvidenceIndex.build(sample, model)
    out["index_build_sentences_per_s"] = len(sample) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    index = scifact_index(corpus, args.index_dir, model)
    index.doc_ranker()  # title embeddings and the document BM25: part of loading, not of the warm speed
    out["index_load_or_build_s"] = time.perf_counter() - t0

    # ---- retrieval --------------------------------------------------------------------------------------------
    bm25_only = DocRetriever(index, dense=False)
    no_adapter = DocRetriever(index, adapter=False)
    hybrid = DocRetriever(index)  # the product's default: with the query-side adapter where it applies
    adapter = index.adapter()
    queries = [g["claim"] for g in gold]
    ranked_bm25 = dict(zip([g["id"] for g in gold], bm25_only.search(queries, 10), strict=True))
    ranked_base = dict(zip([g["id"] for g in gold], no_adapter.search(queries, 10), strict=True))
    ranked_hybrid = dict(zip([g["id"] for g in gold], hybrid.search(queries, 10), strict=True))
    out["retrieval_bm25"] = sf.retrieval_recall(gold, ranked_bm25, ks=(1, 3, 10))
    out["retrieval_hybrid_no_adapter"] = sf.retrieval_recall(gold, ranked_base, ks=(1, 3, 10))
    out["retrieval_hybrid"] = sf.retrieval_recall(gold, ranked_hybrid, ks=(1, 3, 10))
    out["query_adapter"] = None if adapter is None else {"sha256": adapter.sha256, "doc_weights": adapter.doc_weights}
    print("retrieval recall of gold evidence abstracts (micro over abstracts; claims with evidence only)")
    print("  query adapter: " + ("none (base claim vectors)" if adapter is None else
                                 f"verify/models/query-adapter ({adapter.sha256[:12]}), weights {adapter.doc_weights}"))
    for k in (1, 3, 10):
        line(f"recall@{k}  hybrid documents, query adapter", out["retrieval_hybrid"][f"retrieval_recall@{k}"],
             f"without adapter {out['retrieval_hybrid_no_adapter'][f'retrieval_recall@{k}']:.3f}  "
             f"stemmed BM25 alone {out['retrieval_bm25'][f'retrieval_recall@{k}']:.3f}")

    # ---- stance + abstract decisions ---------------------------------------------------------------------------
    settings = VerifySettings(stance_model=args.stance_model, top_k=args.top_k)
    verifier = scifact_verifier(index, corpus, settings)
    if args.quantize:
        from claimscope.verify.stance import load_scorer

        verifier.scorer = load_scorer(args.stance_model, quantize=True)
    scorer = verifier.scorer
    out["stance_model"] = scorer.info.model_dump()
    index.forget_queries()  # the retrieval section embedded every dev claim: the timed runs embed theirs anew
    predict(gold[-8:], corpus, verifier, retriever=hybrid)  # warm-up, on claims not timed
    speed_runs = {}  # (top_k, every retrieved abstract scored?) -> run; the product scores only what the rule labels
    for top_k, score_all in dict.fromkeys(((args.top_k, False), (args.fast_top_k, False), (args.top_k, True))):
        verifier.settings = settings.model_copy(update={"top_k": top_k})
        index.forget_queries()
        speed_runs[top_k, score_all] = predict(gold[: args.speed_claims], corpus, verifier, retriever=hybrid,
                                               score_all=score_all)
    verifier.settings = settings
    verifier.scorer = CachedScorer(scorer)  # type: ignore[assignment]  # open and oracle share many pairs
    # every retrieved abstract scored, so calibration is measured over all of them; the product's run (only the
    # abstracts the rule can label) must give the same predictions
    open_run = predict(gold, corpus, verifier, retriever=hybrid, score_all=True)
    product_run = predict(gold, corpus, verifier, retriever=hybrid)
    same = [p.model_dump() for p in product_run.predictions] == [p.model_dump() for p in open_run.predictions]
    out["open_predictions_same_when_only_labellable_abstracts_scored"] = same
    oracle_run = predict(gold, corpus, verifier, oracle=True)
    verifier.scorer = scorer
    m_open = sf.scifact_metrics(gold, [p.model_dump() for p in open_run.predictions])
    m_oracle = sf.scifact_metrics(gold, [p.model_dump() for p in oracle_run.predictions])
    floor_open = sf.scifact_metrics(gold, sf.always_support_predictions(gold, ranked_hybrid, top=1))
    floor_oracle = sf.scifact_metrics(gold, sf.always_support_predictions(
        gold, {g["id"]: g["cited_doc_ids"] for g in gold}, top=99))
    out |= {"open": m_open, "oracle": m_oracle, "floor_open_top1_support": floor_open,
            "floor_oracle_all_cited_support": floor_oracle}
    print(f"stance: {scorer.info.name} ({(scorer.info.sha256 or '')[:12]}); per-abstract verdicts by the claim "
          f"aggregator ({verifier.aggregator.source}), top {args.top_k} sentences per abstract")
    print(f"SciFact rule (fitted on train): open: {rule_for(verifier.aggregator, 'open').describe()}; "
          f"oracle: {rule_for(verifier.aggregator, 'oracle').describe()}")
    print("abstract label-only F1 (always-SUPPORT floor beside)")
    line("open retrieval (top-3 abstracts)", m_open["abstract_label_only_f1"],
         f"floor {floor_open['abstract_label_only_f1']:.3f} (SUPPORT for the top retrieved abstract)")
    line("oracle abstracts (cited)", m_oracle["abstract_label_only_f1"],
         f"floor {floor_oracle['abstract_label_only_f1']:.3f} (SUPPORT for every cited abstract)")
    fewer = {}
    for mode, run in (("open", open_run), ("oracle", oracle_run)):
        few = decide({c: cs.top(args.fast_top_k) for c, cs in run.scores.items()}, verifier.aggregator, mode)
        fewer[mode] = sf.scifact_metrics(gold, [p.model_dump() for p in to_predictions(few, list(run.scores))])
    out["fewer_sentences"] = {"top_k": args.fast_top_k, **fewer}
    line(f"  with the best {args.fast_top_k} sentences per abstract: open", fewer["open"]["abstract_label_only_f1"],
         f"oracle {fewer['oracle']['abstract_label_only_f1']:.3f} (same aggregator and rules)")
    print("other official scores (open / oracle): P/R/F1")
    for name in OFFICIAL:
        o, c = m_open, m_oracle
        print(f"  {name:24s} open {o[name + '_precision']:.3f}/{o[name + '_recall']:.3f}/{o[name + '_f1']:.3f}   "
              f"oracle {c[name + '_precision']:.3f}/{c[name + '_recall']:.3f}/{c[name + '_f1']:.3f}")

    # ---- calibration ----------------------------------------------------------------------------------------------
    by_id = {int(g["id"]): g for g in gold}
    cal_open = decision_calibration(open_run.decisions, by_id)
    cal_oracle = decision_calibration(oracle_run.decisions, by_id)
    out["calibration_open"] = cal_open
    out["calibration_oracle"] = cal_oracle
    print("calibration of abstract-level P(SUPPORT/CONTRADICT/NEI) over every judged abstract (15 bins)")
    for name, cal in (("open", cal_open), ("oracle", cal_oracle)):
        line(f"ECE {name}", cal["ece"], f"Brier {cal['brier']:.3f}  accuracy {cal['accuracy']:.3f}  n={int(cal['n'])}  "
             f"(if perfectly calibrated at this n: {cal['ece_if_calibrated']:.3f}, "
             f"95 % up to {cal['ece_if_calibrated_p95']:.3f})")
    print("  reliability (open): " + "  ".join(f"[{r['mean_confidence']:.2f}->{r['accuracy']:.2f} n{r['count']}]"
                                             for r in cal_open["reliability"]))

    # ---- speed ------------------------------------------------------------------------------------------------------
    n_speed = len(gold[: args.speed_claims])
    load = os.getloadavg()[0]
    out["load_average_1min_at_end"] = load
    print(f"speed (machine load average {load:.1f} on {os.cpu_count()} cores at the end of the run: other work on the "
          "machine slows these)")
    print(f"  open predictions identical when only the abstracts the rule can label are scored: {same}")
    for (top_k, score_all), run in speed_runs.items():
        n_pairs = sum(len(d.hits) for ds in run.decisions.values() for d in ds)
        scope = "all 3 abstracts scored" if score_all else "abstracts the rule labels"
        key = f"warm_claims_per_s_open_top{top_k}" + ("_all_abstracts" if score_all else "")
        out[key] = n_speed / run.seconds
        line(f"warm claims/s, open, top {top_k} sentences, {scope}", n_speed / run.seconds,
             f"{n_pairs / run.seconds:.1f} claim-sentence pairs/s, {n_pairs / n_speed:.1f} pairs/claim; "
             f"dev claims 1-{n_speed}, top-3 abstracts retrieved")
    line("index build sentences/s (embedding, from scratch)", out["index_build_sentences_per_s"],
         f"sample of {len(sample)}; full index load/build {out['index_load_or_build_s']:.1f}s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2, default=lambda o: o.tolist() if isinstance(o, np.ndarray)
                                        else str(o)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
