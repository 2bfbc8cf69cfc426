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
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

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


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, required=True, help="the folder train_stance.py --only-fold wrote into")
    ap.add_argument("--model-dir", type=Path, default=Path(__file__).parent / "models" / "stance-minilm-lora")
    ap.add_argument("--folds-json", type=Path, required=True, help="where to write FOLDS.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    install(args.runs, args.model_dir, args.folds_json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
