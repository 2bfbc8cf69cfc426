"""The CLI's log output: third-party debug messages stay out of the terminal unless -vv is given."""

from __future__ import annotations

import logging

import pytest

from claimscope.cli import configure_logging


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _shown(name: str, level: int) -> bool:
    logger = logging.getLogger(name)
    record = logger.makeRecord(name, level, __file__, 1, "Building index from IDs objects", None, None)
    return logger.isEnabledFor(level) and all(h.filter(record) for h in logging.getLogger().handlers)


def test_bm25s_debug_lines_are_hidden_even_though_bm25s_sets_its_logger_to_debug_on_import(restore_logging):
    configure_logging(1, False)
    import bm25s  # noqa: F401  (its import sets the "bm25s" logger to DEBUG)

    bm25s.BM25().index([[0, 1], [1, 2]], show_progress=False)
    assert not _shown("bm25s", logging.DEBUG)
    assert _shown("bm25s", logging.WARNING) and _shown("claimscope.verify", logging.INFO)
    configure_logging(3, False)  # -vv: debug shown
    assert _shown("bm25s", logging.INFO)
