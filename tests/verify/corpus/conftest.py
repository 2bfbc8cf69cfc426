"""FAISS on one OpenMP thread in these tests: on a shared 2-core machine, spinning OpenMP threads made IVF-PQ training
six times slower than one thread (44 s vs 7 s)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _faiss_one_thread():
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)
