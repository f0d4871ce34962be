"""The command line runs with one BLAS thread unless the user chose a count (analysis/cli/entry.py, ``blas_threads``)."""

from __future__ import annotations

import os

import numpy  # noqa: F401  (loads the BLAS that threadpoolctl inspects)
from threadpoolctl import threadpool_info

from crnfb.analysis.cli.entry import THREAD_VARIABLES, blas_threads


def _blas_counts() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_one_blas_thread_inside_and_restored_after(monkeypatch):
    for v in THREAD_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    before = _blas_counts()
    with blas_threads():
        assert _blas_counts() == {1}
        assert all(os.environ[v] == "1" for v in THREAD_VARIABLES)     # for worker processes
    assert _blas_counts() == before
    assert not any(v in os.environ for v in THREAD_VARIABLES)


def test_a_users_thread_count_is_left_alone(monkeypatch):
    for v in THREAD_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    before = _blas_counts()
    with blas_threads():
        assert _blas_counts() == before
        assert "OPENBLAS_NUM_THREADS" not in os.environ
