"""Shared fixtures for the retrieve tests: the real example PDF, parsed once."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "papers"
EXAMPLE_PDF = EXAMPLES / "2005.13013v1.pdf"
EXAMPLE_MD = EXAMPLES / "2005.13013v2.md"


@pytest.fixture(scope="session")
def example_doc():
    from claimscope.retrieve.pdf import parse_pdf

    return parse_pdf(EXAMPLE_PDF)
