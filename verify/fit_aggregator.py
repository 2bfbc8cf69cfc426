"""Fit the claim-level aggregator (verify/models/aggregator.json) and its SciFact decision rules on SciFact train;
report both on SciFact dev.

The product's own verify path is used end to end (EvidenceIndex → stance scorer → numbers → features) over the
SciFact corpus index. The aggregator is fitted on claim rows: each claim restricted to the abstracts it cites, as
`claimscope run` restricts a claim to its cited papers. Then the SciFact output rules (which abstracts get a
SUPPORT/CONTRADICT label; `scifact_pipeline.DecisionRule`) are fitted on the same train claims' per-abstract
probabilities, for open retrieval (top 3 abstracts) and for oracle (cited) abstracts, with always-SUPPORT among the
candidates, so the train F1 is never below the train floor. Dev is only scored.

    python -m claimscope.verify.fit_aggregator --scifact ../shared/benchmarks/scifact [--all-train]
    python -m claimscope.verify.fit_aggregator --scifact DIR --fold-adapters folds.json   # out-of-fold stance

Train claims: by default those the shipped stance adapter did not train on (its held-out fold, listed in its
training.json); `--all-train` takes all 809 (the stance scores of the adapter's own training claims are then
in-sample, so the fit is somewhat overconfident); `--fold-adapters FILE` scores every train claim with an adapter
that did not see it: FILE is JSON ``{"<adapter dir>": [claim ids], ...}`` (cross-fitting folds trained by
train_stance.py, loaded as ``bundled@<dir>``), which is the honest out-of-fold fit.

Writes `verify/models/aggregator.json` (weights, SciFact rules, provenance, train/dev metrics) and
`verify/models/calibration.json` (reliability bins of the claim verdict confidence on dev, the report's plot).
Per SciFact mode it also fits a calibration map of the per-abstract probabilities (on train abstracts) before the
rule, since retrieved abstracts have other base rates than the cited ones the aggregator is fitted on.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from claimscope.rundir import write_json
from claimscope.settings import VerifySettings
from claimscope.types import Label
from claimscope.verify import scifact as sf
from claimscope.verify import scifact_pipeline as sp
from claimscope.verify.aggregate import AGGREGATOR_FILE, FEATURES, LABELS, Aggregator, fit_aggregator, hit_features

logger = logging.getLogger(__name__)
MODELS = Path(__file__).parent / "models"
DEFAULT_INDEX = Path("runs/bench-scifact/index")
TOP_K_GRID = (2, 3, 4, 6)  # sentences per abstract also reported (F1 with the rules fitted at --top-k)


def claim_features(scores: Mapping[int, sp.ClaimScores], claim_ids: Sequence[int]) -> np.ndarray:
    """One feature row per claim: the aggregator's features over all scored sentences of its cited abstracts."""
    return np.vstack([hit_features([h for d in scores[c].cited for h in scores[c].hits.get(d, [])])
                      for c in claim_ids])


def expected_calibration(conf: np.ndarray, correct: np.ndarray, bins: int = 15) -> tuple[float, list[dict]]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    table, ece = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        mask = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if not mask.any():
            continue
        mean_conf, acc = float(conf[mask].mean()), float(correct[mask].mean())
        ece += mask.mean() * abs(mean_conf - acc)
        table.append({"lo": round(float(lo), 4), "hi": round(float(hi), 4), "mean_confidence": round(mean_conf, 4),
                      "accuracy": round(acc, 4), "count": int(mask.sum())})
    return float(ece), table


def evaluate(agg: Aggregator, features: np.ndarray, gold: list[Label]) -> dict:
    probs = np.vstack([agg.probs(f) for f in features])
    pred = probs.argmax(1)
    y = np.array([LABELS.index(g) for g in gold])
    conf = probs[np.arange(len(pred)), pred]
    correct = (pred == y).astype(float)
    ece, table = expected_calibration(conf, correct)
    f1s = {}
    for k, lab in enumerate(LABELS):
        tp = float(((pred == k) & (y == k)).sum())
        p = tp / max((pred == k).sum(), 1)
        r = tp / max((y == k).sum(), 1)
        f1s[lab.value] = 2 * p * r / (p + r) if p + r else 0.0
    brier = float(np.mean(np.sum((probs - np.eye(3)[y]) ** 2, axis=1)))
    floor = float((y == 0).mean())
    return {"n": len(y), "accuracy": float(correct.mean()), "always_supported_accuracy": floor,
            "macro_f1": float(np.mean(list(f1s.values()))), "f1": f1s, "ece_15": ece, "brier": brier,
            "bins": table}


def read_folds(path: Path) -> dict[str, set[int]]:
    """``{"<adapter dir>": [claim ids]}`` → adapter dir → claim ids; a claim may sit in one fold only."""
    from claimscope.errors import ClaimscopeError

    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        folds = {str(k): {int(i) for i in v} for k, v in raw.items()}
    except (OSError, ValueError, AttributeError, TypeError) as e:
        raise ClaimscopeError(str(path), f"not a fold file ({{adapter dir: [claim ids]}}): {e}") from e
    seen: set[int] = set()
    for ids in folds.values():
        if seen & ids:
            raise ClaimscopeError(str(path), f"claims in more than one fold: {sorted(seen & ids)[:5]}")
        seen |= ids
    return folds


def score(verifier, rows: list[dict], corpus: Mapping[int, Mapping], retriever: sp.DocRetriever,
          folds: Mapping[str, set[int]] | None = None) -> dict[int, sp.ClaimScores]:
    """Open (top 3) and cited abstracts of every claim; with `folds`, each claim scored by its fold's adapter."""
    if not folds:
        return sp.score_claims(verifier, rows, corpus, retriever=retriever)
    from claimscope.verify.stance import load_scorer

    shipped = verifier.scorer
    out: dict[int, sp.ClaimScores] = {}
    try:
        for adapter, ids in folds.items():
            verifier.scorer = load_scorer(f"bundled@{adapter}", precision=verifier.settings.stance_precision,
                                          calibrate=False)
            # the shipped adapter's calibration map, as dev and the product apply it: the fold adapters have no
            # calibrator of their own, and raw probabilities here would put train and dev features on other scales
            verifier.scorer.calibrator = shipped.calibrator
            out |= sp.score_claims(verifier, [r for r in rows if int(r["id"]) in ids], corpus, retriever=retriever)
    finally:
        verifier.scorer = shipped
    return out


def scifact_report(scores: Mapping[int, sp.ClaimScores], agg: Aggregator, gold: list[dict]) -> dict:
    """Abstract label-only F1 of the rules beside the always-SUPPORT floors, and the per-abstract ECE."""
    out: dict = {}
    by_id = {int(g["id"]): g for g in gold}
    for mode in sp.MODES:
        decisions = sp.decide(scores, agg, mode)
        preds = [p.model_dump() for p in sp.to_predictions(decisions, list(by_id))]
        floor = sp.decide(scores, agg, mode, sp.DecisionRule("always_support", max_rank=1 if mode == "open" else 0))
        floor_preds = [p.model_dump() for p in sp.to_predictions(floor, list(by_id))]
        cal = sp.decision_calibration(decisions, by_id)
        out[mode] = {"abstract_label_only_f1": sf.scifact_metrics(gold, preds)["abstract_label_only_f1"],
                     "floor_f1": sf.scifact_metrics(gold, floor_preds)["abstract_label_only_f1"],
                     "ece_15": cal["ece"], "brier": cal["brier"]}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scifact", type=Path, required=True, help="folder with corpus.jsonl, claims_train/dev.jsonl")
    ap.add_argument("--out", type=Path, default=AGGREGATOR_FILE)
    ap.add_argument("--calibration-out", type=Path, default=MODELS / "calibration.json")
    ap.add_argument("--stance-model", default="bundled")
    ap.add_argument("--index-dir", type=Path, default=DEFAULT_INDEX, help="SciFact sentence index (built once)")
    ap.add_argument("--top-k", type=int, default=VerifySettings().top_k, help="sentences scored per abstract")
    ap.add_argument("--rules-only", action="store_true",
                    help="keep the aggregator weights in --out; refit only the SciFact calibration maps and rules")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--all-train", action="store_true",
                       help="fit on every train claim, not only the adapter's held-out fold (more data, some leakage)")
    which.add_argument("--fold-adapters", type=Path, default=None,
                       help="JSON {adapter dir: [train claim ids]}: score each claim with the adapter that did not "
                            "train on it (out-of-fold)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    corpus = sf.read_corpus(args.scifact / "corpus.jsonl")
    training = json.loads((MODELS / "stance-minilm-lora" / "training.json").read_text())
    folds = read_folds(args.fold_adapters) if args.fold_adapters else None
    held_out = training.get("data", {}).get("holdout_claim_ids")
    if not folds and not args.all_train and held_out is None:
        from claimscope.errors import ClaimscopeError

        raise ClaimscopeError(str(MODELS / "stance-minilm-lora" / "training.json"),
                              "the shipped stance adapter trained on every train claim (no held-out fold): fit with "
                              "--fold-adapters FILE (out-of-fold adapters, see verify/models/README.md)")
    keep = (set().union(*folds.values()) if folds else None if args.all_train
            else {int(i) for i in held_out})
    train = [r for r in sf.read_jsonl_rows(args.scifact / "claims_train.jsonl")
             if r.get("cited_doc_ids") and (keep is None or int(r["id"]) in keep)]
    dev = [r for r in sf.read_jsonl_rows(args.scifact / "claims_dev.jsonl") if r.get("cited_doc_ids")]
    settings = VerifySettings(stance_model=args.stance_model, top_k=args.top_k)
    index = sp.scifact_index(corpus, args.index_dir, settings.embedding_model)
    verifier = sp.scifact_verifier(index, corpus, settings)
    # train claims are ranked with the base claim vectors: the query adapter was trained on them, so its rankings
    # there are in-sample (too good); dev is ranked as the product ranks it
    s_train = score(verifier, train, corpus, sp.DocRetriever(index, adapter=False), folds)
    s_dev = score(verifier, dev, corpus, sp.DocRetriever(index))

    ids_train, ids_dev = [int(r["id"]) for r in train], [int(r["id"]) for r in dev]
    x_train, x_dev = claim_features(s_train, ids_train), claim_features(s_dev, ids_dev)
    y_train = [Label(sf.gold_label(r)) for r in train]
    y_dev = [Label(sf.gold_label(r)) for r in dev]
    what = ("out-of-fold SciFact train claims" if folds else "SciFact train claims" if args.all_train
            else "held-out SciFact train claims")
    if args.rules_only:
        fitted = json.loads(args.out.read_text(encoding="utf-8"))
        fitted["scifact_rules_fitted_on"] = f"{len(train)} {what}"
    else:
        fitted = fit_aggregator(x_train, y_train, source=f"fitted on {len(train)} {what}")
    agg = Aggregator(np.array(fitted["coef"]), np.array(fitted["intercept"]), fitted["source"])

    rules: dict[str, dict] = {}
    agg.scifact = rules
    for mode in sp.MODES:
        cal = sp.fit_calibration(s_train, agg, mode, train)
        rules[mode] = {"calibration": json.loads(cal.to_json())}
        rule, fit = sp.fit_rule(s_train, agg, mode, train)
        rules[mode] |= {"rule": rule.to_json(), "describe": rule.describe(), "train": fit}
    for mode, res in scifact_report(s_train, agg, train).items():
        rules[mode]["train"] |= res
    for mode, res in scifact_report(s_dev, agg, dev).items():
        rules[mode]["dev"] = res
    # fewer stance pairs: the same rules on only the best k sentences of each abstract (speed against quality)
    fewer = {}
    for k in TOP_K_GRID:
        if k < args.top_k:
            fewer[str(k)] = {split: {m: r["abstract_label_only_f1"] for m, r in scifact_report(
                {c: s.top(k) for c, s in scores.items()}, agg, rows).items()}
                for split, scores, rows in (("train", s_train, train), ("dev", s_dev, dev))}

    dev_metrics = evaluate(agg, x_dev, y_dev)
    train_metrics = evaluate(agg, x_train, y_train)
    if args.rules_only:  # the weights' own record (what they were fitted on) stays as it was
        train_metrics = fitted.get("train", train_metrics)
    fitted.update({
        "features": FEATURES,
        "stance_model": verifier.scorer.info.name,
        "stance_adapter_sha256": training.get("adapter_sha256"),
        "stance_folds": {k: len(v) for k, v in folds.items()} if folds else None,
        "top_k": args.top_k,
        "train": {k: v for k, v in train_metrics.items() if k != "bins"},
        "dev": {k: v for k, v in dev_metrics.items() if k != "bins"},
        "scifact": rules,
        "scifact_fewer_sentences": fewer,
        "command": "python -m claimscope.verify.fit_aggregator --scifact DIR"
                   + (" --all-train" if args.all_train else " --fold-adapters FILE" if folds else "")
                   + (" --rules-only" if args.rules_only else ""),
        "seconds": round(time.perf_counter() - t0, 1),
    })
    write_json(args.out, fitted)
    write_json(args.calibration_out, {
        "source": f"claim-level verdict confidence on SciFact dev ({len(dev)} claims, cited abstracts), "
                  f"aggregator {fitted['source']}",
        "ece": dev_metrics["ece_15"], "bins": dev_metrics["bins"]})
    logger.info("dev: %s", json.dumps({k: v for k, v in fitted["dev"].items()}, indent=1))
    logger.info("scifact rules: %s", json.dumps(rules, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
