"""Forked workers for independent runs (crnfb.feedback.parallel)."""

from __future__ import annotations

import os
from functools import partial

import numpy as np
import pytest

from crnfb.feedback import parallel


def _square_and_pid(x):
    return x * x, os.getpid()


def test_results_in_order_and_in_other_processes(monkeypatch):
    monkeypatch.setenv("CRNFB_WORKERS", "2")
    out = parallel.run_all([partial(_square_and_pid, np.arange(3) + i) for i in range(5)])
    for i, (v, _) in enumerate(out):
        assert np.array_equal(v, (np.arange(3) + i) ** 2)
    pids = {p for _, p in out}
    assert os.getpid() not in pids          # the work ran in forked workers (Linux)


def test_one_worker_runs_here(monkeypatch):
    monkeypatch.setenv("CRNFB_WORKERS", "1")
    assert {p for _, p in parallel.run_all([partial(_square_and_pid, 2)] * 3)} == {os.getpid()}


def test_a_task_error_is_raised_here(monkeypatch):
    monkeypatch.setenv("CRNFB_WORKERS", "2")

    def bad():
        raise ValueError("task 1 failed")
    with pytest.raises(ValueError, match="task 1 failed"):
        parallel.run_all([partial(_square_and_pid, 1), bad])


def test_bad_worker_count_is_refused(monkeypatch):
    monkeypatch.setenv("CRNFB_WORKERS", "two")
    with pytest.raises(ValueError, match="CRNFB_WORKERS must be a whole number"):
        parallel.available_workers()


def test_validation_is_the_same_in_parallel(monkeypatch, e3):
    """E3's validation with one process and with two: the same checks and numbers (each run is independent)."""
    from crnfb.analysis.validation import validate

    def numbers(checks):
        def f(x):
            return None if x != x else x        # NaN (a check not made) compares equal as None
        return [(c.quantity, f(c.predicted), f(c.simulated), c.passed) for c in checks]

    monkeypatch.setenv("CRNFB_WORKERS", "1")
    one = numbers(validate(e3, noise=False))
    monkeypatch.setenv("CRNFB_WORKERS", "2")
    two = numbers(validate(e3, noise=False))
    assert one == two


def test_daemonic_processes_run_in_order(monkeypatch):
    """A daemonic process (a Dask worker) may not fork a pool: the tasks run in it."""
    import multiprocessing

    monkeypatch.setenv("CRNFB_WORKERS", "2")
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True, raising=False)
    try:
        pids = {p for _, p in parallel.run_all([partial(_square_and_pid, 1)] * 2)}
    finally:
        monkeypatch.undo()
    assert pids == {os.getpid()}
