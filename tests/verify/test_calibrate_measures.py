"""ECE, Brier, reliability data and the calibrators, on inputs with hand-computed answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from claimscope.verify import calibrate as cal


def test_ece_hand_computed() -> None:
    # 0.95 falls in bin 15 (14/15, 1]; 0.55 in bin 9 (8/15, 9/15]
    conf = [0.95, 0.95, 0.55, 0.55]
    ok = [True, False, True, True]
    rel = cal.reliability(conf, ok)
    assert [(r["count"], r["accuracy"], r["mean_confidence"]) for r in rel] == [(2, 1.0, 0.55), (2, 0.5, 0.95)]
    assert rel[0]["lo"] == pytest.approx(8 / 15) and rel[1]["hi"] == pytest.approx(1.0)
    assert cal.ece(conf, ok) == pytest.approx(0.45 * 0.5 + 0.45 * 0.5)
    assert cal.ece([1.0, 0.0], [True, False]) == pytest.approx(0.0)  # the edges land in the first/last bin
    assert cal.ece([0.3, 0.3], [False, True], n_bins=15) == pytest.approx(0.2)


def test_brier_hand_computed() -> None:
    assert cal.brier(np.array([[0.7, 0.2, 0.1]]), [0]) == pytest.approx(0.09 + 0.04 + 0.01)
    assert cal.brier(np.array([0.8, 0.3]), [1, 0]) == pytest.approx((0.04 + 0.09) / 2)


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, size=(n, 3))
    p_true = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p_true])
    over = np.exp(2 * z) / np.exp(2 * z).sum(1, keepdims=True)  # overconfident by temperature 2
    return over, y


def test_temperature_recovers_known_temperature() -> None:
    probs, y = _synthetic(4000, 0)
    c = cal.fit(probs, y, "temperature")
    assert c.temperature == pytest.approx(2.0, abs=0.25)
    before = cal.calibration_metrics(probs, y)
    after = cal.calibration_metrics(c(probs), y)
    assert after["ece"] < before["ece"] / 2 and after["nll"] < before["nll"]


def test_logistic_and_json_roundtrip(tmp_path: Path) -> None:
    probs, y = _synthetic(3000, 1)
    test_p, test_y = _synthetic(2000, 2)
    c = cal.fit(probs, y, "auto")
    assert c.method in ("temperature", "logistic")
    out = c(test_p)
    assert np.allclose(out.sum(1), 1.0)
    assert cal.calibration_metrics(out, test_y)["ece"] < cal.calibration_metrics(test_p, test_y)["ece"]
    lg = cal.fit(probs, y, "logistic")
    lg.adapter_sha256 = "abc"
    path = tmp_path / "c.json"
    cal.save_calibrator(lg, path)
    back = cal.load_calibrator(path, adapter_sha256="abc")
    assert back is not None and np.allclose(back(test_p), lg(test_p))
    assert cal.load_calibrator(path, adapter_sha256="other") is None  # fitted for another adapter
    assert cal.load_calibrator(tmp_path / "missing.json") is None


def test_ece_if_calibrated_shrinks_with_n_and_is_reproducible() -> None:
    """Perfectly calibrated confidences still show a binned ECE on few predictions; it falls as n grows (roughly as
    1/sqrt(n)), and a measured ECE below it cannot be told apart from perfect calibration."""
    rng = np.random.default_rng(0)
    small = rng.uniform(0.34, 1.0, 340)  # the size of SciFact dev's oracle abstracts
    large = rng.uniform(0.34, 1.0, 34000)
    mean_small, p95_small = cal.ece_if_calibrated(small)
    mean_large, _ = cal.ece_if_calibrated(large, draws=50)
    assert 0.03 < mean_small < 0.09
    assert p95_small > mean_small
    assert mean_large < mean_small / 5
    assert cal.ece_if_calibrated(small) == (mean_small, p95_small)  # seeded
    assert cal.ece_if_calibrated([]) == (0.0, 0.0)
