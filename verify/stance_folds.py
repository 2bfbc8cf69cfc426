"""Install a cross-fitted stance adapter: the final adapter and its K folds, as `train_stance.py --folds K
--only-fold -1 / 0..K-1` wrote them into one folder, become the shipped adapter folder and a FOLDS.json.

- copies the final adapter (`adapter_config.json`, `adapter_model.safetensors`) into the model folder;
- pools the folds' held-out predictions (`oof-fold-K.jsonl`) into the model folder's `oof.jsonl` (what
  `calibrate --oof` fits the stance calibrator on);
- writes `training.json`: the final run's record plus each fold's record (steps, held-out metrics, claim count);
- writes FOLDS.json, ``{"<fold adapter dir>": [its held-out claim ids]}``, for `fit_aggregator --fold-adapters`.

    python -m claimscope.verify.stance_folds --runs RUNS --model-dir verify/models/stance-minilm-lora \\
        --folds-json .data/stance-folds/folds.json
    python -m claimscope.verify.calibrate --oof verify/models/stance-minilm-lora/oof.jsonl
    python -m claimscope.verify.fit_aggregator --scifact DIR --fold-adapters .data/stance-folds/folds.json

RUNS must stay where it is (FOLDS.json names its fold folders); keep it out of git (`.data/` is ignored).

`--check-scale` compares the shipped adapter's sharpness with the folds' on pairs that no adapter trained on and
that are not from dev: titles of corpus abstracts no train or dev claim cites, read as claims, against their own
abstract and the top 3 retrieved (the SciFact verify path, top-k sentences each); it prints the mean entropy of each
adapter's raw probabilities and the temperature that would bring the shipped adapter to the folds' mean. The
calibrator and the aggregator are fitted on fold predictions, so a shipped adapter far outside the folds' range
would feed them inputs on another scale::

    python -m claimscope.verify.stance_folds --check-scale --scifact DIR --folds-json .data/stance-folds/folds.json
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from claimscope.errors import ClaimscopeError
from claimscope.rundir import atomic_write_text

logger = logging.getLogger(__name__)
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def install(runs: Path, model_dir: Path, folds_json: Path) -> dict:
    """Install the final adapter of `runs` into `model_dir` and write `folds_json`; returns a summary."""
    record_path = runs / "training.json"
    folds = sorted(runs.glob("fold-*/fold.json"), key=lambda p: int(p.parent.name.split("-")[1]))
    missing = [name for name in (*ADAPTER_FILES, "training.json") if not (runs / name).is_file()]
    if missing or not folds:
        raise ClaimscopeError(str(runs), "not a cross-fitting run folder (train_stance.py --folds K --only-fold -1 and "
                              f"0..K-1 into it): missing {', '.join(missing) or 'fold-K/fold.json'}")
    fold_records = [json.loads(p.read_text(encoding="utf-8")) for p in folds]
    oof_lines: list[str] = []
    for rec in fold_records:
        oof = runs / f"oof-fold-{rec['fold']}.jsonl"
        if not oof.is_file():
            raise ClaimscopeError(str(oof), "missing: every fold writes its held-out predictions")
        oof_lines += [line for line in oof.read_text(encoding="utf-8").splitlines() if line.strip()]
    record = json.loads(record_path.read_text(encoding="utf-8"))
    record["folds"] = [{k: v for k, v in rec.items() if k != "claims"} | {"n_claims": len(rec["claims"])}
                       for rec in fold_records]
    record["oof"] = ("oof.jsonl: each train claim's held-out pairs predicted by the fold adapter that did not train "
                     "on it (train_stance.py --only-fold K, the final adapter's recipe)")
    model_dir.mkdir(parents=True, exist_ok=True)
    for name in ADAPTER_FILES:
        shutil.copyfile(runs / name, model_dir / name)
    atomic_write_text(model_dir / "oof.jsonl", "\n".join(oof_lines) + "\n")
    atomic_write_text(model_dir / "training.json", json.dumps(record, indent=2))
    folds_map = {str((p.parent).resolve()): rec["claims"] for p, rec in zip(folds, fold_records, strict=True)}
    folds_json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folds_json, json.dumps(folds_map))
    summary = {"adapter_sha256": record.get("adapter_sha256"), "folds": len(fold_records),
               "claims": sum(len(v) for v in folds_map.values()), "oof_pairs": len(oof_lines)}
    logger.info("installed %s into %s; %s", runs, model_dir, summary)
    return summary


def mean_entropy(probs: np.ndarray) -> float:
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    return float(-(p * np.log(p)).sum(1).mean())


def tempered(probs: np.ndarray, t: float) -> np.ndarray:
    z = np.log(np.clip(np.asarray(probs, dtype=np.float64), 1e-7, 1.0)) / t
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def matching_temperature(final: np.ndarray, folds: Sequence[np.ndarray]) -> float:
    """T with mean entropy of softmax(log final / T) = the folds' mean entropy (entropy rises with T)."""
    from scipy.optimize import brentq

    target = float(np.mean([mean_entropy(f) for f in folds]))
    return float(brentq(lambda t: mean_entropy(tempered(final, t)) - target, 0.05, 20.0))


def title_rows(corpus: dict[int, dict], cited: set[int], n: int, seed: int = 13) -> list[dict]:
    """SciFact-style claim rows from the titles (6+ words) of `n` random abstracts outside `cited`, each citing its
    own abstract."""
    import random

    pool = sorted(d for d, doc in corpus.items() if d not in cited and len(str(doc["title"]).split()) >= 6)
    docs = random.Random(seed).sample(pool, min(n, len(pool)))
    return [{"id": d, "claim": str(corpus[d]["title"]), "cited_doc_ids": [d]} for d in docs]


def check_scale(scifact: Path, folds_json: Path, n_titles: int = 300) -> dict:
    """Raw-probability sharpness of the shipped adapter and of each fold on the title pairs (see the module doc)."""
    from claimscope.settings import VerifySettings
    from claimscope.verify import scifact as sf
    from claimscope.verify import scifact_pipeline as sp
    from claimscope.verify.fit_aggregator import DEFAULT_INDEX, read_folds
    from claimscope.verify.stance import load_scorer

    corpus = sf.read_corpus(scifact / "corpus.jsonl")
    cited = {int(d) for name in ("claims_train.jsonl", "claims_dev.jsonl")
             for r in sf.read_jsonl_rows(scifact / name) for d in r.get("cited_doc_ids", [])}
    rows = title_rows(corpus, cited, n_titles)
    settings = VerifySettings()
    index = sp.scifact_index(corpus, DEFAULT_INDEX, settings.embedding_model)
    verifier = sp.scifact_verifier(index, corpus, settings)
    shipped = load_scorer("bundled", calibrate=False)
    pairs: list[tuple[str, str]] = []

    class Recorder:  # the (claim, sentence) pairs the verify path scores, with the shipped adapter's raw scores
        info = shipped.info

        def score(self, batch: list[tuple[str, str]]) -> np.ndarray:
            pairs.extend(batch)
            return shipped.raw_scores(batch)

    verifier.scorer = Recorder()
    sp.score_claims(verifier, rows, corpus, retriever=sp.DocRetriever(index, adapter=False))
    pairs = list(dict.fromkeys(pairs))
    final = shipped.raw_scores(pairs)
    folds = [load_scorer(f"bundled@{d}", calibrate=False).raw_scores(pairs)
             for d in read_folds(folds_json)]
    out = {"pairs": len(pairs), "titles": len(rows), "entropy_shipped": mean_entropy(final),
           "entropy_folds": [mean_entropy(f) for f in folds],
           "temperature_to_folds_mean": matching_temperature(final, folds)}
    logger.info("scale check: %s", json.dumps(out))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, help="the folder train_stance.py --only-fold wrote into")
    ap.add_argument("--model-dir", type=Path, default=Path(__file__).parent / "models" / "stance-minilm-lora")
    ap.add_argument("--folds-json", type=Path, required=True, help="where to write FOLDS.json (--check-scale: read)")
    ap.add_argument("--check-scale", action="store_true", help="the shipped adapter's sharpness vs the folds'")
    ap.add_argument("--scifact", type=Path, help="with --check-scale: folder with corpus.jsonl, claims_train/dev.jsonl")
    ap.add_argument("--titles", type=int, default=300, help="with --check-scale: title pseudo-claims")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.check_scale:
        if not args.scifact:
            ap.error("--check-scale needs --scifact")
        print(json.dumps(check_scale(args.scifact, args.folds_json, args.titles), indent=1))
        return 0
    if not args.runs:
        ap.error("--runs is required (or --check-scale)")
    install(args.runs, args.model_dir, args.folds_json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
