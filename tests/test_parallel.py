"""Forked workers for independent runs (crnfb.feedback.numerics.parallel).

The process model must never wait forever: a task's error, a worker killed
at any moment and an interrupt of the parent all end :func:`run_all` with an
exception, with every worker reaped (docs/decisions.md, "Processes and signals").
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from crnfb.feedback.numerics import parallel


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
    before = set(_children(os.getpid()))     # another test's processes may still be ending (xdist worker)

    def bad():
        raise ValueError("task 1 failed")
    with pytest.raises(ValueError, match="task 1 failed") as info:
        parallel.run_all([partial(_square_and_pid, 1), bad, partial(_square_and_pid, 2)])
    # the worker's traceback travels with it (shown with --debug)
    assert isinstance(info.value.__cause__, parallel.RemoteTraceback)
    assert "task 1 failed" in str(info.value.__cause__) and "bad" in str(info.value.__cause__)
    assert set(_children(os.getpid())) - before == set()      # the other worker was reaped


def _kill_self(sig):
    os.kill(os.getpid(), sig)
    time.sleep(60)          # a worker that outlived the signal would turn this test into a timeout


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_a_dead_worker_is_an_error_not_a_wait(monkeypatch, sig):
    """A worker killed mid-task raises WorkerError at once. SIGTERM/SIGINT kill a worker (default
    handlers) even where this process has Python handlers for them, as the CLI has."""
    monkeypatch.setenv("CRNFB_WORKERS", "2")
    before = set(_children(os.getpid()))
    previous = signal.signal(signal.SIGTERM, lambda *a: (_ for _ in ()).throw(AssertionError("parent")))
    try:
        t0 = time.monotonic()
        with pytest.raises(parallel.WorkerError, match=f"task 1 .*killed by {sig.name}"):
            parallel.run_all([partial(time.sleep, 0.5), partial(_kill_self, sig), partial(time.sleep, 0.5)])
        assert time.monotonic() - t0 < 30      # not the 60 s sleep: the death was noticed, not waited out
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert set(_children(os.getpid())) - before == set()


def test_unpicklable_result_is_the_tasks_error(monkeypatch):
    monkeypatch.setenv("CRNFB_WORKERS", "2")
    with pytest.raises(RuntimeError, match="task 1: .*pickle"):
        parallel.run_all([partial(_square_and_pid, 1), lambda: (lambda: None)])


def _nested(x):
    return parallel.run_all([partial(_square_and_pid, x)] * 2)


def test_nested_calls_run_in_the_worker(monkeypatch):
    monkeypatch.setenv("CRNFB_WORKERS", "2")
    out = parallel.run_all([partial(_nested, 2), partial(_nested, 3)])
    for inner in out:
        assert {p for _, p in inner} != {os.getpid()} and len({p for _, p in inner}) == 1


def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:          # it ended meanwhile
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == pid and state != "Z":
                out.append(int(d.name))
    return out


_SCRIPT = textwrap.dedent("""
    import importlib.util, os, signal, sys, time
    from functools import partial

    # the module alone (it needs only the standard library): the test does not wait for crnfb's imports
    spec = importlib.util.spec_from_file_location("parallel", sys.argv[2])
    parallel = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parallel)
    run_all = parallel.run_all

    class Terminated(BaseException):
        pass

    def on_term(signum, frame):     # what crnfb's CLI installs (analysis/cli/entry.py)
        raise Terminated()

    signal.signal(signal.SIGTERM, on_term)
    os.environ["CRNFB_WORKERS"] = "2"
    tasks = [partial(time.sleep, float(sys.argv[1]))] * 4
    try:
        run_all(tasks)
        print("done", flush=True)
    except (KeyboardInterrupt, Terminated) as e:
        print("interrupted", type(e).__name__, flush=True)
        sys.exit(3)
""")


def _signal_masks(pid: int) -> dict[str, str]:
    """The ``SigBlk``, ``SigIgn`` and ``SigCgt`` lines of ``/proc/<pid>/status`` (hex signal sets)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in lines if line.startswith(("SigBlk", "SigIgn", "SigCgt")))


def _script(tmp_path, seconds: float) -> subprocess.Popen:
    env = dict(os.environ, CRNFB_WORKERS="2", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-c", _SCRIPT, str(seconds), parallel.__file__], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_success_prints_nothing_on_stderr(tmp_path):
    """The CLI's SIGTERM handler in the parent must not reach the workers (it used to print
    ``Process ForkPoolWorker-N: Traceback ... Terminated`` when the pool closed)."""
    proc = _script(tmp_path, 0.05)
    out, err = proc.communicate(timeout=120)
    assert (proc.returncode, out, err) == (0, "done\n", "")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_kills_and_reaps_the_workers(tmp_path, sig):
    """A signal to the parent alone, while its workers run: the exception propagates within
    seconds, the workers are gone, and nothing but the parent's own line is printed."""
    proc = _script(tmp_path, 60)
    try:
        deadline = time.monotonic() + 60
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = _children(proc.pid)
        assert len(workers) == 2, "the workers never started"
        time.sleep(0.2)
        masks = _signal_masks(proc.pid)          # said on failure: an ignored or blocked signal is inherited
        proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit 20 s after the signal; the parent's signal masks then: {masks}; this "
                        f"process's SIGINT handler: {signal.getsignal(signal.SIGINT)!r}, masks {_signal_masks(os.getpid())}")
    finally:
        proc.kill()
    name = "KeyboardInterrupt" if sig == signal.SIGINT else "Terminated"
    assert (proc.returncode, out, err) == (3, f"interrupted {name}\n", "")
    for w in workers:
        assert not Path(f"/proc/{w}").exists(), f"worker {w} left behind"


def test_bad_worker_count_is_refused(monkeypatch):
    monkeypatch.setenv("CRNFB_WORKERS", "two")
    with pytest.raises(ValueError, match="CRNFB_WORKERS must be a whole number"):
        parallel.available_workers()


def test_validation_is_the_same_in_parallel(monkeypatch, e3):
    """E3's validation with one process and with two: the same checks and numbers (each run is independent)."""
    from crnfb.analysis.analyses.validation import validate

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


_RACE = textwrap.dedent('''
    import importlib.util, multiprocessing, os, signal, sys, time
    from functools import partial

    spec = importlib.util.spec_from_file_location("parallel", sys.argv[1])
    parallel = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(parallel)

    real = multiprocessing.get_context

    class Ctx:                   # the fork context, with a SIGINT sent to this process while signals are held
        def __init__(self):
            self.ctx = real("fork")
        def Pipe(self):
            os.kill(os.getpid(), signal.SIGINT)
            return self.ctx.Pipe()
        def Process(self, *a, **k):
            return self.ctx.Process(*a, **k)

    parallel.multiprocessing.get_context = lambda method: Ctx()
    try:
        parallel.run_all([partial(time.sleep, 60.0)] * 4, workers=2)
        print("done", flush=True)
    except KeyboardInterrupt:
        print("interrupted", len(multiprocessing.active_children()), flush=True)
''')


def test_an_interrupt_pending_during_the_forks_still_kills_the_workers(tmp_path):
    """The interrupt that arrives while the forks hold signals back is delivered when they end; the
    workers started by then are killed and reaped, and the process exits at once (it once left them
    alive, and the parent waited 60 s for them at exit)."""
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _RACE, parallel.__file__], cwd=tmp_path, capture_output=True,
                          text=True, timeout=50)
    assert (proc.stdout, proc.stderr) == ("interrupted 0\n", "")
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("guard", ["held", "python_signals", "run_all"])
def test_an_exception_as_the_signals_are_blocked_leaves_them_deliverable(monkeypatch, guard):
    """A Python signal handler runs as a C call returns: an exception raised just as
    ``pthread_sigmask(SIG_BLOCK, ...)`` returns (simulated here) must not leave SIGINT/SIGTERM
    blocked, or this process and every process it starts ignore them (a CI flake: three signal
    tests of one pytest worker timed out)."""
    from crnfb.feedback.numerics import signals_guard

    real = signal.pthread_sigmask
    raised = []

    def interrupted_at_return(how, sigs):
        out = real(how, sigs)
        if how == signal.SIG_BLOCK and set(sigs) and not raised:
            raised.append(True)
            raise KeyboardInterrupt("as the block returned")
        return out

    monkeypatch.setattr(signals_guard.signal, "pthread_sigmask", interrupted_at_return)
    before = real(signal.SIG_BLOCK, ())
    with pytest.raises(KeyboardInterrupt, match="as the block returned"):
        if guard == "held":
            with signals_guard.held({signal.SIGINT, signal.SIGTERM}):
                pass
        elif guard == "python_signals":
            with signals_guard.python_signals():
                pass
        else:
            monkeypatch.setenv("CRNFB_WORKERS", "2")
            parallel.run_all([partial(_square_and_pid, 1)] * 2)
    monkeypatch.undo()
    assert raised and real(signal.SIG_BLOCK, ()) == before
