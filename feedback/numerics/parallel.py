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

The process model cannot deadlock (docs/decisions.md, "Processes and
signals"): each worker has its own pipe to this process and no lock is
shared, so a worker killed at any moment is seen as the end of its pipe or
its exit; this process waits only in ``poll`` on those pipes and the workers'
exits, which a signal always interrupts; the workers die on ``SIGTERM`` and
``SIGINT`` (default handlers, no traceback); after the work they are told to
stop and joined, never terminated while idle; on an interrupt or an error
here they are killed and reaped before the exception propagates.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import traceback
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from typing import Callable, Sequence, TypeVar

from crnfb.feedback.numerics.signals_guard import held     # absolute: tests load this file on its own too

__all__ = ["available_workers", "run_all", "WorkerError"]

T = TypeVar("T")

#: The tasks of the running :func:`run_all` (read by the forked workers, which inherit it).
_TASKS: Sequence[Callable[[], object]] = ()
#: Held back while workers are forked: a worker gets its default handlers before it can act on them.
_STOP = {signal.SIGINT, signal.SIGTERM}
#: Seconds a worker may take to exit after being told to stop (it is idle): then it is killed.
JOIN_TIMEOUT = 30.0


class WorkerError(RuntimeError):
    """A worker process died (killed, or exited) before it returned its task's result."""


class RemoteTraceback(Exception):
    """The traceback of a task's exception in its worker (the ``__cause__`` of the exception raised here)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


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


def _encode(i: int) -> memoryview:
    """Task ``i``'s outcome, pickled: ``(True, value)`` or ``(False, exception, traceback text)``."""
    try:
        out: tuple = (True, _TASKS[i]())
    except Exception as e:  # noqa: BLE001 - every task error goes back to the parent
        out = (False, e, traceback.format_exc())
    try:
        return ForkingPickler.dumps(out)
    except Exception as e:  # noqa: BLE001 - an unpicklable value or exception is the task's error
        text = traceback.format_exc()
        return ForkingPickler.dumps((False, RuntimeError(f"task {i}: {type(e).__name__}: {e}"), text))


def _worker(conn: Connection, inherited: list[Connection]) -> None:
    """A worker's life: run the task indices it receives until ``None`` or the parent's end closes."""
    for c in inherited:             # other workers' parent ends: their EOF must not wait on this process
        c.close()
    # default actions: SIGTERM/SIGINT end the worker, without the parent's Python handlers' tracebacks
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP)
    try:
        while (i := conn.recv()) is not None:
            conn.send_bytes(_encode(i))
    except (EOFError, OSError):     # the parent is gone (or went away while we sent)
        return


def _start(n: int, workers: list[tuple[BaseProcess, Connection]]) -> None:
    """Fork ``n`` workers into the caller's list ``workers``, each with a duplex pipe whose far end only it
    holds. Signals are held back during the forks and delivered when the mask is restored: the
    interrupt is then raised in the caller's ``try`` with every started worker already in its list
    (raised in this function's ``finally``, it once left the workers alive and the parent waiting
    for them at exit)."""
    ctx = multiprocessing.get_context("fork")
    with held(_STOP):               # delivered after the forks, here and there
        for _ in range(n):
            here, there = ctx.Pipe()
            ends = [c for _, c in workers] + [here]
            p = ctx.Process(target=_worker, args=(there, ends), daemon=True, name="crnfb-worker")
            p.start()
            there.close()
            workers.append((p, here))


def _kill(workers: list[tuple[BaseProcess, Connection]]) -> None:
    """SIGKILL and reap every worker (signals held back meanwhile: this must finish)."""
    with held(_STOP):
        for p, _ in workers:
            if p.exitcode is None:
                p.kill()
        for p, c in workers:
            p.join()
            c.close()


def _stop(workers: list[tuple[BaseProcess, Connection]]) -> None:
    """Tell the (idle) workers to exit and join them; one that does not exit in time is killed."""
    for p, c in workers:
        try:
            c.send(None)
        except OSError:             # it has already exited
            pass
    for p, _ in workers:
        p.join(JOIN_TIMEOUT)
    _kill(workers)                  # reaps the joined ones; kills only one that hung


def _died(i: int, p: BaseProcess) -> WorkerError:
    p.join(1.0)                     # its exit code, when it is already gone
    code = p.exitcode
    how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0
           else f"exit code {code}")
    return WorkerError(f"worker process {p.pid} died running task {i} ({how})")


def _send(c: Connection, i: int, p: BaseProcess) -> None:
    try:
        c.send(i)
    except OSError:                 # its end is closed: it died
        raise _died(i, p) from None


def _dispatch(workers: list[tuple[BaseProcess, Connection]]) -> list:
    """Hand out the task indices one at a time to idle workers; the results in task order."""
    results: list = [None] * len(_TASKS)
    todo = iter(range(len(_TASKS)))
    busy: dict[Connection, tuple[int, BaseProcess]] = {}
    for p, c in workers:
        i = next(todo, None)
        if i is None:
            break
        _send(c, i, p)
        busy[c] = (i, p)
    while busy:
        ready = wait(list(busy) + [p.sentinel for _, p in busy.values()])
        for c, (i, p) in list(busy.items()):
            if c in ready:
                try:
                    out = c.recv()
                except (EOFError, OSError):  # it died while (or instead of) sending its result
                    raise _died(i, p) from None
                if not out[0]:
                    raise out[1] from RemoteTraceback(out[2])
                results[i] = out[1]
                del busy[c]
                j = next(todo, None)
                if j is not None:
                    _send(c, j, p)
                    busy[c] = (j, p)
            elif p.sentinel in ready and not c.poll():
                raise _died(i, p)
    return results


def run_all(tasks: Sequence[Callable[[], T]], workers: int | None = None) -> list[T]:
    """``[task() for task in tasks]``, in forked processes when there are several tasks and cores.

    Each task must return a picklable value; an exception in a task is raised
    here (its worker's traceback is the ``__cause__``). A worker that dies
    raises :class:`WorkerError`. An interrupt (``KeyboardInterrupt`` or any
    other exception raised here) kills and reaps the workers, then propagates.
    """
    global _TASKS
    tasks = list(tasks)
    n = min(len(tasks), available_workers() if workers is None else max(1, int(workers)))
    if (n <= 1 or not sys.platform.startswith("linux") or _TASKS      # nested calls run in order
            or multiprocessing.current_process().daemon):               # e.g. a Dask worker: no children
        return [t() for t in tasks]
    _TASKS = tasks
    pool: list[tuple[BaseProcess, Connection]] = []
    try:
        try:
            _start(n, pool)
            results = _dispatch(pool)
        except BaseException:
            _kill(pool)
            raise
        _stop(pool)
        return results
    finally:
        _TASKS = ()
