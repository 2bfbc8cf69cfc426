"""Fit the claim-level aggregator (verify/models/aggregator.json) on SciFact train, report it on SciFact dev.

The product's own verify path is used end to end (EvidenceIndex → stance scorer → numbers → features), with each
claim restricted to the abstracts it cites, as `claimscope run` restricts a claim to its cited papers. Only train
claims the stance adapter did not see (its held-out fold, listed in training.json) are used to fit, so the fitted
confidences are not inflated by the adapter's training fit. Dev is only scored.

    python -m claimscope.verify.fit_aggregator --scifact ../shared/benchmarks/scifact

Writes `verify/models/aggregator.json` (weights + provenance) and `verify/models/calibration.json` (reliability bins
on dev, shown as the report's calibration plot).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from claimscope.rundir import write_json
from claimscope.settings import VerifySettings
from claimscope.types import Claim, Label, Paper, PaperRef
from claimscope.verify import scifact as sf
from claimscope.verify.aggregate import AGGREGATOR_FILE, FEATURES, LABELS, Aggregator, fit_aggregator, hit_features

logger = logging.getLogger(__name__)
MODELS = Path(__file__).parent / "models"


def _papers_for(doc_ids: set[int]) -> list[Paper]:
    return [Paper(ref=PaperRef(local_name=sf.paper_key(d)), sha256="", source="local", path="", fmt="text")
            for d in sorted(doc_ids)]


def claim_features(claims: Sequence[Claim], corpus: dict[int, dict], settings: VerifySettings,
                   index_dir: Path) -> np.ndarray:
    """One feature row per claim, computed by the product's Verifier over the claim's cited abstracts."""
    from claimscope.verify.run import Verifier

    doc_ids = {d for c in claims for d in sf.cited_doc_ids(c)}
    passages = [p for d in sorted(doc_ids) for p in sf.doc_passages(corpus[d])]
    verifier = Verifier.from_passages(passages, _papers_for(doc_ids), settings, index_dir)
    rows = {claim.id: hit_features(scored) for claim, _, _, scored in verifier.score_hits(claims)}
    return np.vstack([rows[c.id] for c in claims])


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


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scifact", type=Path, required=True, help="folder with corpus.jsonl, claims_train/dev.jsonl")
    ap.add_argument("--out", type=Path, default=AGGREGATOR_FILE)
    ap.add_argument("--calibration-out", type=Path, default=MODELS / "calibration.json")
    ap.add_argument("--stance-model", default="bundled")
    ap.add_argument("--all-train", action="store_true",
                    help="fit on every train claim, not only the adapter's held-out fold (more data, some leakage)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    corpus = sf.read_corpus(args.scifact / "corpus.jsonl")
    training = json.loads((MODELS / "stance-minilm-lora" / "training.json").read_text())
    heldout = {str(i) for i in training["data"]["holdout_claim_ids"]}
    train = [c for c in sf.read_claims(args.scifact / "claims_train.jsonl")
             if (args.all_train or c.id in heldout) and c.cited]
    dev = [c for c in sf.read_claims(args.scifact / "claims_dev.jsonl") if c.cited]
    settings = VerifySettings(stance_model=args.stance_model)
    with tempfile.TemporaryDirectory() as tmp:
        x_train = claim_features(train, corpus, settings, Path(tmp) / "train-index")
        x_dev = claim_features(dev, corpus, settings, Path(tmp) / "dev-index")
    y_train = [Label(c.gold_label) for c in train]
    y_dev = [Label(c.gold_label) for c in dev]
    which = "SciFact train claims" if args.all_train else "held-out SciFact train claims"
    fitted = fit_aggregator(x_train, y_train, source=f"fitted on {len(train)} {which}")
    agg = Aggregator(np.array(fitted["coef"]), np.array(fitted["intercept"]), fitted["source"])
    dev_metrics = evaluate(agg, x_dev, y_dev)
    train_metrics = evaluate(agg, x_train, y_train)
    fitted.update({
        "features": FEATURES,
        "stance_adapter_sha256": training.get("adapter_sha256"),
        "train": {k: v for k, v in train_metrics.items() if k != "bins"},
        "dev": {k: v for k, v in dev_metrics.items() if k != "bins"},
        "command": "python -m claimscope.verify.fit_aggregator --scifact DIR",
        "seconds": round(time.perf_counter() - t0, 1),
    })
    write_json(args.out, fitted)
    write_json(args.calibration_out, {
        "source": f"claim-level verdict confidence on SciFact dev ({len(dev)} claims, cited abstracts), "
                  f"aggregator {fitted['source']}",
        "ece": dev_metrics["ece_15"], "bins": dev_metrics["bins"]})
    logger.info("dev: %s", json.dumps(fitted["dev"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
