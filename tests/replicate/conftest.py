"""Session fixtures for the replicate tests; the builders live in tiny_assets (importable without pytest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .tiny_assets import WORDS, build_tiny_xlmr, build_tokenizer, tiny_recipe_dict, write_task_data

__all__ = ["WORDS", "build_tiny_xlmr", "build_tokenizer", "tiny_recipe_dict", "write_task_data"]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_xlmr(tmp_path_factory.mktemp("tiny-xlmr"))


@pytest.fixture(scope="session")
def task_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_task_data(tmp_path_factory.mktemp("replicate-data"))
