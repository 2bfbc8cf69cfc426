"""Calibration of stance probabilities, and the measures that say whether a confidence means what it says.

The calibrator is fitted on out-of-fold predictions on SciFact **train** (written by ``train_stance`` as ``oof.jsonl``)
and stored as a small JSON file (no pickle) tied to the adapter it was fitted for by sha256::

    python -m claimscope.verify.calibrate --oof verify/models/stance-minilm-lora/oof.jsonl \
        --out verify/models/stance-calibration.json

Methods: ``temperature`` (one scalar on the log-probabilities) and ``logistic`` (multinomial logistic regression on the
log-probabilities, i.e. vector scaling plus class bias, which also undoes the class balance used in training).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from claimscope.errors import ClaimscopeError
from claimscope.rundir import atomic_write_text

logger = logging.getLogger(__name__)

LABELS = ("SUPPORT", "CONTRADICT", "NEUTRAL")
DEFAULT_PATH = Path(__file__).parent / "models" / "stance-calibration.json"
_EPS = 1e-7

# every function here reads its inputs through np.asarray: a list or a NumPy array
Floats = Sequence[float] | np.ndarray
Flags = Sequence[bool] | np.ndarray
ClassIds = Sequence[int] | np.ndarray


class BadCalibration(ClaimscopeError):
    pass


# ------------------------------------------------------------------------------------------------------ measures


def _bin_index(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bins over [0, 1]; bin b holds (b/n, (b+1)/n], with 0 in the first bin."""
    return np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)


def reliability(confidence: Floats, correct: Flags, n_bins: int = 15) -> list[dict]:
    """Reliability-diagram data: per non-empty bin its edges, mean confidence, accuracy and count."""
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    b = _bin_index(conf, n_bins)
    out = []
    for k in range(n_bins):
        m = b == k
        if m.any():
            out.append({"lo": k / n_bins, "hi": (k + 1) / n_bins, "mean_confidence": float(conf[m].mean()),
                        "accuracy": float(ok[m].mean()), "count": int(m.sum())})
    return out


def ece(confidence: Floats, correct: Flags, n_bins: int = 15) -> float:
    """Expected calibration error: sum over bins of |accuracy - mean confidence| weighted by the bin's share."""
    n = len(confidence)
    if n == 0:
        return 0.0
    return float(sum(abs(r["accuracy"] - r["mean_confidence"]) * r["count"] / n
                     for r in reliability(confidence, correct, n_bins)))


def ece_if_calibrated(confidence: Floats, n_bins: int = 15, draws: int = 400,
                      seed: int = 13) -> tuple[float, float]:
    """The ECE these confidences would show if they were perfectly calibrated: each prediction counted right with
    probability equal to its confidence, `draws` times. (mean, 95th percentile). Binned ECE is biased upwards on a
    few hundred predictions, so a measured ECE is read against this, not against zero."""
    conf = np.asarray(confidence, dtype=np.float64)
    if not len(conf):
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    values = [ece(conf, rng.random(len(conf)) < conf, n_bins) for _ in range(draws)]
    return float(np.mean(values)), float(np.percentile(values, 95))


def top_label(probs: np.ndarray, y: ClassIds) -> tuple[np.ndarray, np.ndarray]:
    """(confidence of the predicted class, whether it is right) for multi-class probabilities."""
    p = np.asarray(probs, dtype=np.float64)
    return p.max(1), p.argmax(1) == np.asarray(y)


def brier(probs: np.ndarray, y: ClassIds | Flags) -> float:
    """Brier score: mean squared error of the probabilities against the one-hot outcome.

    For an (n, k) array this is the multi-class form (sum over classes, mean over rows); for a 1-D array of P(event)
    it is the binary form with y the 0/1 outcomes.
    """
    p = np.asarray(probs, dtype=np.float64)
    t = np.asarray(y)
    if p.ndim == 1:
        return float(np.mean((p - t.astype(np.float64)) ** 2))
    onehot = np.zeros_like(p)
    onehot[np.arange(len(t)), t.astype(int)] = 1.0
    return float(np.mean(((p - onehot) ** 2).sum(1)))


def nll(probs: np.ndarray, y: ClassIds) -> float:
    p = np.asarray(probs, dtype=np.float64)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), np.asarray(y)], 1e-12, 1.0))))


def calibration_metrics(probs: np.ndarray, y: ClassIds, n_bins: int = 15, prefix: str = "") -> dict[str, float]:
    """Flat dict: ECE (top label, 15 bins), Brier, NLL, accuracy."""
    conf, ok = top_label(probs, y)
    return {f"{prefix}ece": ece(conf, ok, n_bins), f"{prefix}brier": brier(probs, y), f"{prefix}nll": nll(probs, y),
            f"{prefix}accuracy": float(ok.mean()) if len(ok) else 0.0, f"{prefix}n": float(len(ok))}


# ---------------------------------------------------------------------------------------------------- calibrator


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


@dataclass
class Calibrator:
    """Maps raw (n, 3) probabilities to calibrated ones; serialisable as JSON."""

    method: str
    temperature: float = 1.0
    coef: list[list[float]] = field(default_factory=list)
    intercept: list[float] = field(default_factory=list)
    adapter_sha256: str | None = None
    meta: dict = field(default_factory=dict)

    def __call__(self, probs: np.ndarray) -> np.ndarray:
        logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0))
        if self.method == "temperature":
            return _softmax(logp / self.temperature)
        if self.method == "logistic":
            return _softmax(logp @ np.asarray(self.coef).T + np.asarray(self.intercept))
        if self.method == "identity":
            return np.asarray(probs, dtype=np.float64)
        raise BadCalibration(self.method, "unknown calibration method")

    def to_json(self) -> str:
        return json.dumps({"method": self.method, "labels": list(LABELS), "temperature": self.temperature,
                           "coef": self.coef, "intercept": self.intercept, "adapter_sha256": self.adapter_sha256,
                           "meta": self.meta}, indent=2)

    @classmethod
    def from_json(cls, text: str, where: str = "calibrator") -> Calibrator:
        try:
            d = json.loads(text)
            return cls(method=d["method"], temperature=float(d.get("temperature", 1.0)), coef=d.get("coef", []),
                       intercept=d.get("intercept", []), adapter_sha256=d.get("adapter_sha256"), meta=d.get("meta", {}))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise BadCalibration(where, f"not a calibrator file: {e}") from e


def fit_temperature(probs: np.ndarray, y: ClassIds) -> Calibrator:
    """One temperature minimising the negative log-likelihood (golden-section search on log T)."""
    from scipy.optimize import minimize_scalar

    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0))
    yy = np.asarray(y)

    def loss(log_t: float) -> float:
        return nll(_softmax(logp / np.exp(log_t)), yy)

    res = minimize_scalar(loss, bounds=(-3.0, 3.0), method="bounded")
    return Calibrator("temperature", temperature=float(np.exp(res.x)))


def fit_logistic(probs: np.ndarray, y: ClassIds, c: float = 1.0) -> Calibrator:
    """Multinomial logistic regression on the log-probabilities."""
    from sklearn.linear_model import LogisticRegression

    logp = np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1.0))
    yy = np.asarray(y)
    lr = LogisticRegression(C=c, max_iter=2000)
    lr.fit(logp, yy)
    coef = np.zeros((3, 3))
    intercept = np.zeros(3)
    for row, cls in enumerate(lr.classes_):  # classes absent from y keep a zero row (-> small probability)
        if lr.coef_.shape[0] == 1:  # binary case: sklearn gives one row for the positive class
            coef[lr.classes_[1]] = lr.coef_[0] / 2
            coef[lr.classes_[0]] = -lr.coef_[0] / 2
            intercept[lr.classes_[1]] = lr.intercept_[0] / 2
            intercept[lr.classes_[0]] = -lr.intercept_[0] / 2
            break
        coef[int(cls)] = lr.coef_[row]
        intercept[int(cls)] = lr.intercept_[row]
    return Calibrator("logistic", coef=coef.tolist(), intercept=intercept.tolist())


def fit(probs: np.ndarray, y: ClassIds, method: str = "auto", seed: int = 13) -> Calibrator:
    """Fit a calibrator; "auto" picks temperature or logistic by 5-fold cross-validated NLL."""
    probs = np.asarray(probs, dtype=np.float64)
    yy = np.asarray(y)
    if method == "temperature":
        return fit_temperature(probs, yy)
    if method == "logistic":
        return fit_logistic(probs, yy)
    if method != "auto":
        raise BadCalibration(method, "method must be auto, temperature or logistic")
    folds = np.random.default_rng(seed).permutation(len(yy)) % 5
    scores: dict[str, float] = {}
    for name, fn in (("temperature", fit_temperature), ("logistic", fit_logistic)):
        losses = []
        for k in range(5):
            tr, te = folds != k, folds == k
            if te.any() and len(np.unique(yy[tr])) > 1:
                losses.append(nll(fn(probs[tr], yy[tr])(probs[te]), yy[te]) * te.sum())
        scores[name] = float(np.sum(losses) / len(yy))
    best = min(scores, key=scores.__getitem__)
    logger.info("calibration cross-validated NLL %s -> %s", scores, best)
    cal = fit_temperature(probs, yy) if best == "temperature" else fit_logistic(probs, yy)
    cal.meta["cv_nll"] = scores
    return cal


def save_calibrator(cal: Calibrator, path: Path = DEFAULT_PATH) -> None:
    atomic_write_text(path, cal.to_json() + "\n")


def load_calibrator(path: Path = DEFAULT_PATH, *, adapter_sha256: str | None = None) -> Calibrator | None:
    """The saved calibrator, or None (with a warning) when there is none or it was fitted for another adapter."""
    if not path.exists():
        logger.warning("no stance calibrator at %s; using raw probabilities", path)
        return None
    cal = Calibrator.from_json(path.read_text(encoding="utf-8"), str(path))
    if adapter_sha256 and cal.adapter_sha256 and cal.adapter_sha256 != adapter_sha256:
        logger.warning("%s was fitted for another adapter (%s); using raw probabilities", path,
                       cal.adapter_sha256[:12])
        return None
    return cal


def read_oof(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(probs (n, 3), labels (n,)) from an ``oof.jsonl`` written by train_stance."""
    probs, ys = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            probs.append([float(x) for x in row["probs"]])
            ys.append(LABELS.index(row["label"]))
        except (json.JSONDecodeError, KeyError, ValueError) as e:
            raise BadCalibration(f"{path}:{n}", f"not an out-of-fold prediction row: {e}") from e
    return np.asarray(probs), np.asarray(ys)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="fit the stance calibrator on out-of-fold predictions")
    ap.add_argument("--oof", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=DEFAULT_PATH)
    ap.add_argument("--method", default="auto", choices=["auto", "temperature", "logistic"])
    ap.add_argument("--adapter", type=Path, default=None, help="adapter file the predictions came from")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    probs, y = read_oof(args.oof)
    cal = fit(probs, y, args.method)
    adapter = args.adapter or args.oof.parent / "adapter_model.safetensors"
    if adapter.exists():
        from claimscope.verify.stance import sha256_file

        cal.adapter_sha256 = sha256_file(adapter)
    cal.meta.update({"fitted_on": str(args.oof), "before": calibration_metrics(probs, y),
                     "after_in_sample": calibration_metrics(cal(probs), y)})
    save_calibrator(cal, args.out)
    print(json.dumps({"method": cal.method, **cal.meta}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
