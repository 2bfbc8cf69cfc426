"""A SUPPORTED reading whose evidence states other values for what the claim quantifies is withdrawn."""

from __future__ import annotations

import numpy as np

from claimscope.types import Label
from claimscope.verify.aggregate import _numbers_override


def test_full_text_that_states_other_numbers_contradicts() -> None:
    probs, label, why = _numbers_override(np.array([0.6, 0.1, 0.3]), partial=False)
    assert label == Label.CONTRADICTED and np.allclose(probs, [0.0, 0.7, 0.3]) and "CONTRADICTED" in why


def test_partial_text_only_withdraws_the_support() -> None:
    probs, label, _ = _numbers_override(np.array([0.6, 0.1, 0.3]), partial=True)
    assert label == Label.NOT_ENOUGH_INFO and np.allclose(probs, [0.0, 0.1, 0.9])
    # with the full text, a reading that barely speaks to the claim ends as NOT ENOUGH INFO, not CONTRADICTED
    assert _numbers_override(np.array([0.4, 0.0, 0.6]), partial=False)[1] == Label.NOT_ENOUGH_INFO
