"""Independent computations on the machine's cores (forked worker processes).

The validation of a large loop integrates the nonlinear ODE a dozen times
or more, each run independent of the others. Those runs are Python-driven
(SciPy's BDF step loop holds the GIL), so threads do not overlap them;
forked processes do, and start without re-importing anything. Fork is used
only where it is the platform's well-trodden path (Linux); elsewhere, for
one task or one core, inside a worker of this pool and inside a daemonic
process (a Dask worker, which may not have children), the tasks run in
this process, in order.

``CRNFB_WORKERS`` (environment) caps the number of processes; the default
is the number of cores this process may run on.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from typing import Callable, Sequence, TypeVar

__all__ = ["available_workers", "run_all"]

T = TypeVar("T")

#: The tasks of the running :func:`run_all` (read by the forked workers, which inherit it).
_TASKS: Sequence[Callable[[], object]] = ()


def available_workers() -> int:
    """Processes :func:`run_all` may use: ``CRNFB_WORKERS`` if set, else the usable cores."""
    env = os.environ.get("CRNFB_WORKERS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"CRNFB_WORKERS must be a whole number of processes, got {env!r}") from None
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:      # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _run(i: int):
    return _TASKS[i]()


def run_all(tasks: Sequence[Callable[[], T]], workers: int | None = None) -> list[T]:
    """``[task() for task in tasks]``, in forked processes when there are several tasks and cores.

    Each task must return a picklable value; an exception in a task is raised here.
    """
    global _TASKS
    tasks = list(tasks)
    n = min(len(tasks), available_workers() if workers is None else max(1, int(workers)))
    if (n <= 1 or not sys.platform.startswith("linux") or _TASKS      # nested calls run in order
            or multiprocessing.current_process().daemon):               # e.g. a Dask worker: no children
        return [t() for t in tasks]
    _TASKS = tasks
    try:
        with multiprocessing.get_context("fork").Pool(n) as pool:
            return pool.map(_run, range(len(tasks)), chunksize=1)
    finally:
        _TASKS = ()
