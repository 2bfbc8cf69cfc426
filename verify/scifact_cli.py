"""`claimscope eval scifact` (official SciFact scores) and `claimscope verify-scifact` (SciFact-format predictions)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    from claimscope.verify.corpus.cli import at_least

    ev = subparsers.add_parser("eval", help="score predictions against a benchmark's gold labels")
    ev_sub = ev.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    p = ev_sub.add_parser("scifact", help="SciFact official metrics (abstract and sentence level) + retrieval recall")
    p.add_argument("--pred", type=Path, required=True, help="predictions JSONL in the SciFact format")
    p.add_argument("--gold", type=Path, required=True, help="SciFact claims JSONL with evidence (claims_dev.jsonl)")
    p.add_argument("--corpus", type=Path, default=None, help="corpus.jsonl (checks that predicted doc ids exist)")
    p.add_argument("--out", type=Path, default=None, help="also write the metrics as JSON here")
    p.set_defaults(handler=eval_scifact)

    v = subparsers.add_parser("verify-scifact", help="predict SciFact claims against a SciFact corpus")
    v.add_argument("--corpus", type=Path, required=True, help="SciFact corpus.jsonl")
    v.add_argument("--claims", type=Path, required=True, help="SciFact claims JSONL")
    v.add_argument("--out", type=Path, required=True, help="predictions JSONL to write")
    v.add_argument("--oracle-abstracts", action="store_true", help="use each claim's cited_doc_ids instead of search")
    v.add_argument("--stance-model", default="bundled", help="bundled | lexical | HF NLI name/path | openai:<m>@<url>")
    v.add_argument("--index-dir", type=Path, default=None,
                   help="persist the hybrid sentence index here (default: built in memory)")
    v.add_argument("--embedding-model", default="bundled:all-MiniLM-L6-v2", help="for --index-dir")
    v.add_argument("--top-docs", type=at_least(1), default=3,
                   help="abstracts retrieved per claim with open retrieval; only those the fitted rule can label "
                        "(aggregator.json scifact.open.rule.max_rank) are scored")
    v.add_argument("--top-k", type=at_least(1), default=8, help="sentences of each abstract scored (verify.top_k)")
    v.add_argument("--device", default=None)
    v.set_defaults(handler=verify_scifact)


def eval_scifact(args: argparse.Namespace) -> int:
    from claimscope.rundir import write_json
    from claimscope.verify import scifact as sf

    gold = sf.read_gold(args.gold)  # each checked, an id at most once
    pred = sf.read_predictions(args.pred)
    for path, rows, what in ((args.gold, gold, "gold claims"), (args.pred, pred, "predictions")):
        if not rows:
            raise sf.BadSciFactFile(str(path), f"empty file: no {what}")
    if not any("evidence" in g for g in gold):
        raise sf.BadSciFactFile(str(args.gold), "no gold labels: no claim has an 'evidence' field (SciFact's "
                                                "claims_test.jsonl is unlabelled; score against claims_dev.jsonl)")
    gold_ids = {int(g["id"]) for g in gold}
    unknown = sorted({int(p["id"]) for p in pred} - gold_ids)
    if unknown:
        raise sf.BadSciFactFile(str(args.pred), f"{len(unknown)} claim ids not in the gold file {args.gold}: "
                                                 f"{unknown[:5]}")
    unpredicted = len(gold_ids - {int(p["id"]) for p in pred})
    if unpredicted:
        logger.warning("%d of %d gold claims have no prediction in %s; they count as predicting no evidence",
                       unpredicted, len(gold_ids), args.pred)
    if args.corpus is not None:
        known = set(sf.read_corpus(args.corpus))
        for row in pred:
            missing = [d for d in row["evidence"] if int(d) not in known]
            if missing:
                raise sf.BadSciFactFile(f"{args.pred} claim {row['id']}", f"doc ids not in the corpus: {missing[:3]}")
    metrics = sf.scifact_metrics(gold, pred)
    # share of gold abstracts that appear among the predicted ones, label ignored (the prediction format holds no
    # ranking, so this is the retrieval recall of what was kept, not recall@k of the search)
    kept = {int(r["id"]): [int(d) for d in r["evidence"]] for r in pred}
    metrics["predicted_abstract_recall"] = sf.retrieval_recall(gold, kept, ks=(10_000,))["retrieval_recall@10000"]
    conf = _confidence_ece(gold, pred)
    metrics |= conf
    if args.out:
        write_json(args.out, metrics)
    for k, v in metrics.items():
        if not k.startswith("count_"):
            print(f"{k:36s} {v:.4f}")
    return 0


def _confidence_ece(gold: list[dict], pred: list[dict]) -> dict[str, float]:
    """ECE of the written confidences over predicted abstracts (right = doc in gold with that label)."""
    from claimscope.verify.calibrate import brier, ece

    gold_by = {int(g["id"]): g.get("evidence", {}) for g in gold}
    conf, ok = [], []
    for row in pred:
        for d, dp in row["evidence"].items():
            if dp.get("confidence") is None:
                continue
            ev = gold_by.get(int(row["id"]), {}).get(str(d))
            conf.append(float(dp["confidence"]))
            ok.append(bool(ev) and ev[0]["label"] == dp["label"])
    if not conf:
        return {}
    return {"predicted_abstract_ece": ece(conf, ok), "predicted_abstract_brier": brier(conf, ok)}


def verify_scifact(args: argparse.Namespace) -> int:
    from claimscope.settings import VerifySettings
    from claimscope.verify import scifact as sf
    from claimscope.verify.scifact_pipeline import DocRetriever, predict, scifact_index, scifact_verifier

    corpus = sf.read_corpus(args.corpus)
    claims = sf.read_claim_rows(args.claims)
    for path, found, what in ((args.corpus, corpus, "abstracts"), (args.claims, claims, "claims")):
        if not found:
            raise sf.BadSciFactFile(str(path), f"empty file: no {what}")
    if args.oracle_abstracts:
        absent = {int(c["id"]): [int(d) for d in c.get("cited_doc_ids", []) if int(d) not in corpus] for c in claims}
        absent = {k: v for k, v in absent.items() if v}
        if absent:
            first = next(iter(absent))
            logger.warning("%d of %d claims cite doc ids not in %s (claim %s: %s); they get no prediction for those",
                           len(absent), len(claims), args.corpus, first, absent[first][:3])
        uncited = [int(c["id"]) for c in claims if not c.get("cited_doc_ids")]
        if uncited:
            logger.warning("%d of %d claims have no cited_doc_ids (claim %s), so --oracle-abstracts gives them no "
                           "abstract to label; run without it to search the corpus", len(uncited), len(claims),
                           uncited[0])
    index = scifact_index(corpus, args.index_dir, args.embedding_model)
    settings = VerifySettings(stance_model=args.stance_model, embedding_model=args.embedding_model, top_k=args.top_k)
    verifier = scifact_verifier(index, corpus, settings)
    if args.device:
        from claimscope.verify.stance import load_scorer

        verifier.scorer = load_scorer(args.stance_model, device=args.device, precision=settings.stance_precision)
    retriever = None if args.oracle_abstracts else DocRetriever(index)
    run = predict(claims, corpus, verifier, retriever=retriever, oracle=args.oracle_abstracts, top_docs=args.top_docs)
    sf.write_predictions(args.out, run.predictions)
    n_ev = sum(len(p.evidence) for p in run.predictions)
    logger.info("wrote %s: %d claims, %d abstracts with a label, %.1f claims/s", args.out, len(run.predictions), n_ev,
                len(claims) / max(run.seconds, 1e-9))
    print(json.dumps({"out": str(args.out), "claims": len(run.predictions), "abstracts_labelled": n_ev,
                      "stance_model": verifier.scorer.info.name, "seconds": round(run.seconds, 2)}))
    return 0
